"""Analysis settings: checked when made, written to run.json and read back to reproduce a run."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from napari_sigma.cli import main
from napari_sigma.errors import SettingsError
from napari_sigma.io.results.export import read_labels_tiff
from napari_sigma.io.results.writing import write_hspy
from napari_sigma.pipeline.settings import (
    AnalysisSettings,
    load_settings,
    save_settings,
    settings_from_choices,
    settings_from_json,
    settings_to_json,
)
from napari_sigma.synthetic.generator import make_synthetic


def test_settings_round_trip_through_json_for_both_presets():
    for preset in ("default", "sigma"):
        settings = AnalysisSettings.preset(preset, lines=("Fe_Ka", "O_Ka"), seed=7, bin_factor=3)
        settings = replace(settings, phase_finding=replace(settings.phase_finding, split=None))
        back = settings_from_json(json.loads(json.dumps(settings_to_json(settings))))
        assert back == settings and back.lines == ("Fe_Ka", "O_Ka")


@pytest.mark.parametrize(
    ("data", "field", "words"),
    [
        ({"bin_factor": "two"}, "bin_factor", "expected an integer"),
        ({"latent": {"epochs": "ten"}}, "latent.epochs", "expected an integer"),
        ({"latent": {"hidden": [64, "a"]}}, "latent.hidden[1]", "expected an integer"),
        ({"seed": True}, "seed", "expected an integer"),
        ({"elements": "Fe"}, "elements", "expected a list"),
        ({"bin_factor": 0}, "bin_factor", "at least 1"),
        ({"clustering": {"n_phases": 0}}, "clustering.n_phases", "at least 1"),
        ({"phase_finding": {"split": {"p_value": 2.0}}}, "phase_finding.split.p_value", "[0, 1]"),
        ({"device": "gpu"}, "device", "must be one of"),
        ({"features": {"normalisation": "log"}}, "features.normalisation", "must be one of"),
        ({"bin_facter": 2}, "bin_facter", "is not a setting"),
    ],
)
def test_a_wrong_setting_is_refused_naming_the_field(data, field, words):
    with pytest.raises(SettingsError) as caught:
        settings_from_json(data)
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ") and words in str(caught.value)


def test_python_callers_are_checked_too_and_lists_become_tuples():
    latent = AnalysisSettings().latent
    with pytest.raises(SettingsError, match=r"^latent\.learning_rate: must be above 0"):
        AnalysisSettings(latent=replace(latent, learning_rate=0.0))
    assert AnalysisSettings(elements=["Fe", "O"]).elements == ("Fe", "O")


def test_the_seed_and_the_device_are_set_once_for_every_stage():
    settings = AnalysisSettings.preset("sigma", seed=11, device="cpu")
    assert (settings.latent.seed, settings.clustering.seed) == (11, 11)
    assert (settings.latent.device, settings.clustering.device) == ("cpu", "cpu")
    assert replace(settings, seed=3).latent.seed == 3


def test_choices_give_lines_or_elements_and_keep_what_is_not_chosen():
    base = AnalysisSettings.preset("sigma", seed=4)
    lines = settings_from_choices(base, elements="Fe_Ka, O_Ka")
    assert lines.lines == ("Fe_Ka", "O_Ka") and lines.elements is None
    elements = settings_from_choices(base, elements="Fe;O", phases="3", split=False)
    assert elements.elements == ("Fe", "O") and elements.lines is None
    assert elements.clustering.n_phases == 3 and elements.phase_finding.split is None
    assert elements.seed == 4 and elements.bin_factor == base.bin_factor  # kept
    assert settings_from_choices(base, elements="auto").elements is None


def test_load_settings_reads_a_run_json_or_bare_settings(tmp_path):
    settings = AnalysisSettings.preset("default", elements=("Si", "O"), seed=2)
    assert load_settings(save_settings(settings, tmp_path / "bare.json")) == settings
    run = tmp_path / "run.json"
    run.write_text(json.dumps({"seed": 2, "settings": settings_to_json(settings)}))
    assert load_settings(run) == settings
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(SettingsError, match=r"bad\.json: not a JSON settings file"):
        load_settings(tmp_path / "bad.json")


def test_cli_run_with_settings_of_a_run_reproduces_it(tmp_path):
    sample = make_synthetic(seed=3, shape=(32, 32), counts_per_pixel=150.0)
    source = write_hspy(tmp_path / "grains.hspy", sample.image)
    first = ["run", str(source), "--out", str(tmp_path / "a"), "--latent", "pca"]
    assert main([*first, "--seed", "5", "--phases", "3", "--elements", "Si,O,Fe,Mg,Ca,Al"]) == 0
    run_json = tmp_path / "a" / "grains" / "run.json"
    again = ["run", str(source), "--out", str(tmp_path / "b"), "--settings", str(run_json)]
    assert main(again) == 0
    runs = [json.loads((tmp_path / d / "grains" / "run.json").read_text()) for d in "ab"]
    assert runs[0]["settings"] == runs[1]["settings"]
    assert runs[1]["settings"]["seed"] == 5 and runs[1]["settings"]["latent"]["method"] == "pca"
    labels = [read_labels_tiff(tmp_path / d / "grains" / "phases.tif")[0] for d in "ab"]
    np.testing.assert_array_equal(labels[0], labels[1])
    assert labels[0].max() == 3


def test_cli_refuses_a_settings_file_with_a_wrong_type_in_one_line(tmp_path, capsys):
    data = settings_to_json(AnalysisSettings())
    data["latent"]["epochs"] = "ten"
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"settings": data}))
    code = main(["run", "x.hspy", "--out", str(tmp_path / "o"), "--settings", str(path)])
    errors = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(errors) == 1
    assert "run.json: latent.epochs: expected an integer, got 'ten'" in errors[0]
