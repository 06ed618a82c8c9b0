"""Autosave of edited phases to a recovery session, offered when the same file is opened again."""

from __future__ import annotations

import numpy as np
import pytest

from napari_sigma._napari import recovery, state
from napari_sigma._napari.results import add_result_layers
from sigma_testdata import quick_three_phase_settings, write_h5oina

pytestmark = pytest.mark.gui
PLUGIN = "napari-sigma-eds"


@pytest.fixture(scope="module")
def source_and_result(tmp_path_factory):
    """A small .h5oina file and a quick analysis of it as napari's reader reads it."""
    from napari_sigma.compute.progress import run_to_completion
    from napari_sigma.io.readers.reading import read_spectrum_image
    from napari_sigma.pipeline.analysis import analyse
    from napari_sigma.synthetic.generator import make_synthetic

    sample = make_synthetic(
        seed=1, shape=(24, 24), n_channels=512, phases=("quartz", "magnetite", "albite"),
        grain_size=8.0, title="tiny",
    )  # fmt: skip
    path = write_h5oina(
        tmp_path_factory.mktemp("src") / "map.h5oina", np.asarray(sample.image.counts)
    )
    image = read_spectrum_image(path)
    settings = quick_three_phase_settings()
    return path, run_to_completion(analyse(image, settings))


def test_edits_are_autosaved_and_offered_when_the_file_is_opened_again(
    make_napari_viewer, npe2pm, dock, qtbot, monkeypatch, tmp_path, source_and_result
):
    import napari.utils.notifications as notifications

    path, result = source_and_result
    monkeypatch.setattr(recovery, "AUTOSAVE_SECONDS", 0.2)
    with npe2pm.tmp_plugin(package=PLUGIN):
        viewer = make_napari_viewer()
        viewer.open(str(path), plugin=PLUGIN)
        layer = add_result_layers(viewer, result).phases
        saver = state.plugin_data(layer)[recovery.AUTOSAVE_KEY]
        assert saver.path == recovery.recovery_path(path) and not saver.path.exists()
        with layer.block_history():
            layer.paint((5, 5), 2)  # an edit starts the countdown
        state.plugin_data(layer)["phases"].rename(1, "quartz")
        qtbot.waitUntil(lambda: saver.saves == 1, timeout=30_000)
        assert saver.path.is_file()
        edited = np.array(layer.data, copy=True)

        offered = []
        monkeypatch.setattr(
            notifications.notification_manager, "dispatch", lambda note: offered.append(note)
        )
        again = make_napari_viewer()  # napari after a crash
        again.open(str(path), plugin=PLUGIN)
        (note,) = [n for n in offered if "unsaved phase edits" in n.message]
        assert path.name in note.message
        actions = dict(note.actions)
        assert set(actions) == {"Restore edits", "Discard"}
        monkeypatch.setattr("napari.current_viewer", lambda: again)
        actions["Restore edits"]()
        qtbot.waitUntil(
            lambda: any(state.role_of(la) == "phases" for la in again.layers), timeout=30_000
        )
        (restored,) = [la for la in again.layers if state.role_of(la) == "phases"]
        np.testing.assert_array_equal(restored.data, edited)
        assert state.plugin_data(restored)["phases"].name(1) == "quartz"
        assert sum(state.role_of(la) == "cube" for la in again.layers) == 1  # not opened twice
        actions["Discard"]()
        assert not saver.path.exists()

        with layer.block_history():
            layer.paint((9, 9), 3)  # more edits: autosaved again
        qtbot.waitUntil(lambda: saver.saves == 2, timeout=30_000)
        assert saver.path.is_file()
        phases = dock(viewer, "Phases")
        phases.set_layer(layer)
        phases.save_session(tmp_path / "work.sigma")  # saved by the user: nothing to recover
        qtbot.waitUntil(lambda: not phases.busy, timeout=30_000)
        assert (tmp_path / "work.sigma").is_file() and not saver.path.exists()


def test_maps_without_a_source_file_are_not_autosaved(plugin_viewer):
    from test_editing import make_fake_result

    layer = add_result_layers(plugin_viewer, make_fake_result(shape=(6, 9))).phases
    assert recovery.AUTOSAVE_KEY not in state.plugin_data(layer)


def test_each_map_of_a_file_of_several_autosaves_to_its_own_session(
    make_napari_viewer, npe2pm, source_and_result
):
    """A Phenom .elid holds several maps, each opened as its own spectrum image: the edits of
    one map's phases must not overwrite another's recovery session, nor be offered for it."""
    from dataclasses import replace

    from napari_sigma._napari.sessions import _same_image

    path, result = source_and_result
    image = result.image
    second = replace(image, metadata={**image.metadata, "maps": ["a", "b"], "map_index": 1})
    with npe2pm.tmp_plugin(package=PLUGIN):
        viewer = make_napari_viewer()
        first_layer = add_result_layers(viewer, result).phases
        second_layer = add_result_layers(viewer, replace(result, image=second)).phases
        paths = [
            state.plugin_data(la)[recovery.AUTOSAVE_KEY].path for la in (first_layer, second_layer)
        ]
    assert paths == [recovery.recovery_path(path), recovery.recovery_path(path, 1)]
    assert paths[0] != paths[1] and paths[1].name.endswith("-map2.sigma")
    assert "-map" not in paths[0].name  # a file of one map: its recovery file as before
    assert _same_image(image, image) and not _same_image(image, second)
