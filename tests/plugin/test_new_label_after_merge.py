"""napari's "new" label after a merge: a region a user paints is a phase of its own, not the
phase merged away (whose name, colour and mineral it took: "P2 copper" over aluminium)."""

from __future__ import annotations

import numpy as np
import pytest
from qtpy.QtWidgets import QPushButton
from test_editing import make_fake_result
from test_user_workflow import brush_stroke, button

from napari_sigma._napari.results import add_result_layers

pytestmark = pytest.mark.gui


def _new_label_button(viewer, layer) -> QPushButton:
    controls = viewer.window._qt_viewer.controls.widgets[layer]
    (found,) = [b for b in controls.findChildren(QPushButton) if b.objectName() == "newLabelButton"]
    return found


def _names(widget) -> dict[int, str]:
    return {i: widget.model.name(i) for i in widget.row_ids()}


def test_a_region_painted_new_after_a_merge_is_a_phase_of_its_own(
    plugin_viewer, dock, qtbot, MouseEvent
):
    viewer = plugin_viewer
    layer = add_result_layers(viewer, make_fake_result(shape=(12, 18))).phases
    phases = dock(viewer, "Phases")
    qtbot.waitUntil(lambda: phases.table_data is not None, timeout=30_000)
    before = _names(phases)
    assert sorted(before) == [1, 2, 3]
    phases.select_ids([1, 3])  # the highest phase merged into the first
    button(phases, "Merge selected").click()
    qtbot.waitUntil(lambda: not phases.pending_updates(), timeout=30_000)
    assert phases.row_ids() == [1, 2]

    viewer.layers.selection.active = layer
    layer.mode = "paint"
    layer.brush_size = 2
    _new_label_button(viewer, layer).click()  # napari's "new": the largest label + 1 = 3
    new = int(layer.selected_label)
    assert new not in before  # 3 is the merged phase, which Undo brings back
    brush_stroke(layer, MouseEvent, (6, 2), (6, 15))
    qtbot.waitUntil(lambda: not phases.pending_updates(), timeout=30_000)
    painted = int((np.asarray(layer.data) == new).sum())
    names = _names(phases)
    assert painted > 0 and phases.row_pixels()[new] == painted
    assert names[new] not in before.values() and names[new] == f"phase {new}"
    assert phases.model.color(new) != phases.model.color(3)

    button(phases, "Undo").click()  # the stroke
    button(phases, "Undo").click()  # the merge: the third phase comes back as it was
    qtbot.waitUntil(lambda: not phases.pending_updates(), timeout=30_000)
    assert _names(phases) == before
