"""_napari/built_ahead.py stands in for two private napari methods (the layer controls
container's ``_add``, ``QtViewer._add_layer``) while napari is not pinned: the installed napari's
methods must be the code the stand-ins were checked against, and a napari whose methods changed
gets napari's own path (nothing built ahead), not a stand-in that silently skips new work."""

import napari
import numpy as np
from napari._qt.layer_controls.qt_layer_controls_container import QtLayerControlsContainer
from napari._qt.qt_viewer import QtViewer
from napari.layers import Image

from napari_sigma._napari import built_ahead


def test_the_installed_napari_s_privates_are_the_code_the_stand_ins_do():
    for cls, name in ((QtLayerControlsContainer, "_add"), (QtViewer, "_add_layer")):
        fingerprint = built_ahead.code_fingerprint(getattr(cls, name))
        assert built_ahead.is_known_code(cls, name), (
            f"napari {napari.__version__}'s {cls.__name__}.{name} (fingerprint {fingerprint}) is "
            "not the code _napari/built_ahead.py stands in for: read it, make the stand-in do "
            "what it does, then add the fingerprint to KNOWN_NAPARI_CODE (until then the "
            "result's layers are added napari's own way, nothing built ahead)"
        )


def test_the_fingerprint_ignores_comments_and_docstrings_and_sees_code():
    def one(x):
        """Doc."""
        return x + 1  # a comment

    def two(x):
        return x + 1

    def three(x):
        return x + 2

    assert built_ahead.code_fingerprint(one) == built_ahead.code_fingerprint(two)
    assert built_ahead.code_fingerprint(one) != built_ahead.code_fingerprint(three)
    assert built_ahead.code_fingerprint(len) is None  # no source: never known


def test_a_changed_napari_method_gets_napari_s_own_path(make_napari_viewer, monkeypatch):
    viewer = make_napari_viewer()
    layer = Image(np.zeros((4, 5), np.float32), name="ahead")
    own_add, own_add_layer = QtLayerControlsContainer._add, QtViewer._add_layer

    def changed_add(self, event):  # a napari whose _add does more than the stand-in
        own_add(self, event)

    def changed_add_layer(self, inserted):
        own_add_layer(self, inserted)

    monkeypatch.setattr(QtLayerControlsContainer, "_add", changed_add)
    monkeypatch.setattr(QtViewer, "_add_layer", changed_add_layer)
    controls = built_ahead.build_controls(viewer, layer)
    visual = built_ahead.build_visual(viewer, layer)
    assert controls is None and visual is None
    with built_ahead.taken_at_insertion(viewer, layer, controls, visual):
        viewer.add_layer(layer)
    qt_viewer = viewer.window._qt_viewer
    assert layer in qt_viewer.controls.widgets  # napari built them at the insertion
    assert layer in qt_viewer.canvas.layer_to_visual
    assert "_add" not in vars(qt_viewer.controls) and "_add_layer" not in vars(qt_viewer)


def test_napari_s_known_methods_are_stood_in_for(make_napari_viewer):
    viewer = make_napari_viewer()
    layer = Image(np.zeros((4, 5), np.float32), name="ahead")
    controls = built_ahead.build_controls(viewer, layer)
    visual = built_ahead.build_visual(viewer, layer)
    assert controls is not None and visual is not None
    with built_ahead.taken_at_insertion(viewer, layer, controls, visual):
        viewer.add_layer(layer)
    qt_viewer = viewer.window._qt_viewer
    assert qt_viewer.controls.widgets[layer] is controls
    assert qt_viewer.canvas.layer_to_visual[layer] is visual
