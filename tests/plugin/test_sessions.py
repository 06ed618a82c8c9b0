"""Sessions through the Phases widget's buttons: save, a new viewer, open; a broken file."""

from __future__ import annotations

import numpy as np
import pytest
from qtpy.QtWidgets import QFileDialog

from napari_sigma._napari import editing, state
from napari_sigma._napari import phases_widget as pw
from napari_sigma._napari.results import add_result_layers
from sigma_testdata import quick_three_phase_settings

pytestmark = pytest.mark.gui


@pytest.fixture(scope="module")
def tiny_result():
    from napari_sigma.compute.progress import run_to_completion
    from napari_sigma.pipeline.analysis import analyse
    from napari_sigma.synthetic.generator import make_synthetic

    sample = make_synthetic(
        seed=0, shape=(32, 32), n_channels=512, phases=("quartz", "magnetite", "albite"),
        grain_size=10.0, title="tiny",
    )  # fmt: skip
    settings = quick_three_phase_settings()
    return run_to_completion(analyse(sample.image, settings))


def click(widget, text):
    from qtpy.QtWidgets import QPushButton

    (button,) = [b for b in widget.findChildren(QPushButton) if b.text() == text]
    button.click()


def test_save_then_open_in_a_new_viewer_gives_the_same_work(
    make_napari_viewer, npe2pm, dock, qtbot, tmp_path, monkeypatch, tiny_result
):
    with npe2pm.tmp_plugin(package="napari-sigma-eds"):
        viewer = make_napari_viewer()
        layer = add_result_layers(viewer, tiny_result).phases
        phases = dock(viewer, "Phases")
        phases.merge_selected([2, 3])
        # a pixel of phase 1 and one of phase 2 swapped: every count as before, phase 1's
        # pixels not those identified (its cell marked; a count comparison did not)
        labels = np.asarray(layer.data)
        one, two = np.flatnonzero(labels == 1)[0], np.flatnonzero(labels == 2)[0]
        editing.apply_to_layer(layer, editing.assign_pixels(labels, np.array([one]), 2))
        editing.apply_to_layer(layer, editing.assign_pixels(labels, np.array([two]), 1))
        assert np.count_nonzero(layer.data == 1) == np.count_nonzero(tiny_result.labels == 1)
        phases.rename(1, "quartz")
        phases.model.set_color(2, (0.1, 0.8, 0.3, 1.0))
        path = tmp_path / "work.sigma"
        monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(path), ""))
        click(phases, "Save session...")
        qtbot.waitUntil(lambda: not phases.busy, timeout=30_000)
        assert path.is_file()

        again = make_napari_viewer()  # as after a restart of napari
        reopened = dock(again, "Phases")
        monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(path), ""))
        click(reopened, "Open session...")
        qtbot.waitUntil(lambda: reopened.layer is not None, timeout=30_000)
        new = reopened.layer
        np.testing.assert_array_equal(new.data, layer.data)
        assert new.data.dtype == layer.data.dtype == np.uint8  # drawn without napari's remap
        saved, back = state.plugin_data(layer)["phases"], state.plugin_data(new)["phases"]
        assert [(p.id, p.name) for p in back] == [(p.id, p.name) for p in saved]
        np.testing.assert_allclose([p.color for p in back], [p.color for p in saved])
        assert state.result_of(new).settings == tiny_result.settings
        # the mineral column reads the same: names, scores, the "not resolved" mark and tooltip
        column = pw.MINERAL_COLUMN
        cells = [(phases.table.item(r, column).text(), phases.table.item(r, column).toolTip())
                 for r in range(phases.table.rowCount())]  # fmt: skip
        qtbot.waitUntil(lambda: reopened.table.item(0, column).text() != "", timeout=30_000)
        assert [(reopened.table.item(r, column).text(), reopened.table.item(r, column).toolTip())
                for r in range(reopened.table.rowCount())] == cells  # fmt: skip
        # (the merged phase's: "... ≈, before edits", the same after the reopen)
        assert any("≈" in text and "not resolved from" in tip for text, tip in cells)
        edited = [k for k, (text, _) in zip(phases.row_ids(), cells, strict=True)
                  if text.endswith(pw.EDITED_MARK)]  # fmt: skip
        assert edited == [1, 2]


def test_a_corrupted_session_gives_a_clear_error_naming_it(
    plugin_viewer, dock, qtbot, tmp_path, monkeypatch
):
    import napari.utils.notifications as notifications

    broken = tmp_path / "broken.sigma"
    broken.write_bytes(b"PK\x03\x04 not a session at all" * 20)
    errors = []
    monkeypatch.setattr(notifications, "show_error", errors.append)
    phases = dock(plugin_viewer, "Phases")
    n_layers = len(plugin_viewer.layers)
    phases.open_session(broken)
    qtbot.waitUntil(lambda: not phases.busy, timeout=30_000)
    assert len(errors) == 1 and "broken.sigma" in errors[0], errors
    assert "\n" not in errors[0]
    assert len(plugin_viewer.layers) == n_layers


def test_save_model_gives_apply_the_phases_as_edited(
    make_napari_viewer, npe2pm, dock, qtbot, tmp_path, monkeypatch, capsys
):
    """#13: the napari widget saves the current model (*Save model...*); ``napari-sigma apply``
    of that file classifies the field with the layer's ids and names (a merge, a rename)."""
    import csv

    from napari_sigma.cli import main
    from napari_sigma.compute.progress import run_to_completion
    from napari_sigma.io.readers.reading import read_spectrum_image
    from napari_sigma.io.results.export import read_labels_tiff
    from napari_sigma.io.results.writing import write_hspy
    from napari_sigma.pipeline.analysis import analyse
    from napari_sigma.pipeline.model import load_model
    from napari_sigma.synthetic.generator import make_synthetic

    sample = make_synthetic(
        seed=0, shape=(32, 32), n_channels=512, phases=("quartz", "magnetite", "albite"),
        grain_size=10.0, title="tiny",
    )  # fmt: skip
    field = write_hspy(tmp_path / "tiny.hspy", sample.image, compression=None)
    result = run_to_completion(analyse(read_spectrum_image(field), quick_three_phase_settings()))
    assert result.n_phases == 3
    with npe2pm.tmp_plugin(package="napari-sigma-eds"):
        viewer = make_napari_viewer()
        layer = add_result_layers(viewer, result).phases
        phases = dock(viewer, "Phases")
        phases.merge_selected([2, 3])
        phases.rename(1, "my quartz")
        edited = np.array(layer.data)
        ids = sorted(int(k) for k in np.unique(edited) if k > 0)
        assert ids == [1, 2]
        path = tmp_path / "model.sigma"
        monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(path), ""))
        click(phases, "Save model...")
        qtbot.waitUntil(lambda: not phases.busy, timeout=60_000)
    model = load_model(path)
    assert list(model.phase_ids) == ids and model.phase_names[0] == "my quartz"

    capsys.readouterr()
    assert main(["apply", str(path), str(field), "--out", str(tmp_path / "o")]) == 0
    labels = read_labels_tiff(tmp_path / "o" / "tiny" / "phases.tif")[0]
    assert set(np.unique(labels)) - {0} <= set(ids)
    assert (labels == edited).mean() >= 0.9  # the same file: the same map, with its ids
    stats = list(csv.DictReader((tmp_path / "o" / "tiny" / "phase_stats.csv").open()))
    assert {int(row["phase_id"]): row["name"] for row in stats}[1] == "my quartz"


def test_save_model_without_a_phases_layer_says_so(make_napari_viewer, npe2pm, dock, qtbot):
    with npe2pm.tmp_plugin(package="napari-sigma-eds"):
        viewer = make_napari_viewer()
        phases = dock(viewer, "Phases")
        assert phases.save_model("never.sigma") is None
        assert not phases.busy
