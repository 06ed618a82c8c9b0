"""The Phases tab's *Apply model...* on the open file: the model's phases as a layer, and one
notification: a warning where the model may not describe the field (#13)."""

from __future__ import annotations

import numpy as np
import pytest
from qtpy.QtWidgets import QFileDialog, QPushButton

from napari_sigma._napari import state

pytestmark = pytest.mark.gui

MINERALS = ("quartz", "albite", "magnetite", "pyrite")
OTHERS = ("calcite", "barite", "chalcopyrite", "sphalerite")


def _write_field(path, seed, phases):
    from napari_sigma.io.results.writing import write_hspy
    from napari_sigma.synthetic.generator import make_synthetic

    sample = make_synthetic(seed=seed, shape=(40, 40), phases=phases, grain_size=12)
    return write_hspy(path, sample.image, compression=None)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from napari_sigma.compute.progress import run_to_completion
    from napari_sigma.io.readers.reading import read_spectrum_image
    from napari_sigma.pipeline.analysis import AnalysisSettings
    from napari_sigma.pipeline.fitting import fit_model
    from napari_sigma.pipeline.model import save_model

    root = tmp_path_factory.mktemp("apply")
    fitted_on = _write_field(root / "fitted.hspy", 4, MINERALS)
    settings = AnalysisSettings(device="cpu")
    fitting = fit_model([read_spectrum_image(fitted_on)], settings, max_pixels=4096, tile=16)
    model = save_model(root / "model.sigma", run_to_completion(fitting))
    return (
        model,
        _write_field(root / "same.hspy", 5, MINERALS),
        _write_field(root / "other.hspy", 6, OTHERS),
    )


def _apply_to(viewer, phases, qtbot, monkeypatch, model, path):
    from napari.utils import notifications

    shown, warned = [], []
    monkeypatch.setattr(notifications, "show_info", shown.append)
    monkeypatch.setattr(notifications, "show_warning", warned.append)
    viewer.open(str(path), plugin="napari-sigma-eds")
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(model), ""))
    (button,) = [b for b in phases.findChildren(QPushButton) if b.text() == "Apply model..."]
    button.click()
    qtbot.waitUntil(lambda: not phases.busy, timeout=120_000)
    return shown, warned


def test_apply_model_names_a_field_of_its_sample_quietly_and_warns_of_another(
    make_napari_viewer, npe2pm, dock, qtbot, monkeypatch, files
):
    from napari_sigma.pipeline.model import load_model

    model_path, same, other = files
    model = load_model(model_path)
    with npe2pm.tmp_plugin(package="napari-sigma-eds"):
        viewer = make_napari_viewer()
        phases = dock(viewer, "Phases")

        shown, warned = _apply_to(viewer, phases, qtbot, monkeypatch, model_path, same)
        assert warned == [] and len(shown) == 1, (shown, warned)
        assert "the model describes the field" in shown[0] and "same" in shown[0]
        layer = phases.layer
        assert state.role_of(layer) == "phases" and layer.name.startswith("phases (same")
        found = state.plugin_data(layer)["phases"]
        for phase_id, name in zip(model.phase_ids, model.phase_names, strict=True):
            assert found.name(int(phase_id)) == name
        assert not any(lyr.name.startswith("not fitted") for lyr in viewer.layers)

        shown, warned = _apply_to(viewer, phases, qtbot, monkeypatch, model_path, other)
        assert shown == [] and len(warned) == 1, (shown, warned)
        assert "other" in warned[0] and "fit no phase of the model" in warned[0]
        assert "Ba" in warned[0] and "\n" not in warned[0]
        assert phases.layer.name.startswith("phases (other") and phases.layer is not layer
        assert (np.asarray(phases.layer.data) > 0).all()  # named with the nearest, not dropped
        (mask,) = [lyr for lyr in viewer.layers if lyr.name.startswith("not fitted (other")]
        assert mask.data.mean() > 0.5


def test_apply_model_without_an_open_file_says_so(
    make_napari_viewer, npe2pm, dock, qtbot, monkeypatch, files
):
    from napari.utils import notifications

    shown = []
    monkeypatch.setattr(notifications, "show_info", shown.append)
    with npe2pm.tmp_plugin(package="napari-sigma-eds"):
        viewer = make_napari_viewer()
        phases = dock(viewer, "Phases")
        assert phases.apply_model_file(files[0]) is None
        assert not phases.busy
    assert shown == ["Apply model: no spectrum image is open (open an EDS file first)"]
