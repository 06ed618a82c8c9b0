"""The fitted phase model: fit on fields, apply anywhere, from an edited result, save and load."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from napari_sigma.compute.progress import run_to_completion
from napari_sigma.errors import AnalysisError, SigmaFileError
from napari_sigma.metrics import adjusted_rand_index
from napari_sigma.pipeline.analysis import AnalysisSettings, run_analysis
from napari_sigma.pipeline.fitting import fit_model, model_from_result, tile_origins
from napari_sigma.pipeline.model import apply_model, load_model, save_model
from napari_sigma.pipeline.session import load_session, save_session
from napari_sigma.synthetic.generator import make_synthetic

MINERALS = ("quartz", "albite", "magnetite", "pyrite")
SETTINGS = AnalysisSettings(device="cpu")


@pytest.fixture(scope="module")
def fields():
    return [make_synthetic(seed=s, shape=(48, 48), phases=MINERALS, grain_size=12) for s in (4, 5)]


@pytest.fixture(scope="module")
def model(fields):
    settings = replace(SETTINGS, lines=tuple(fields[0].lines))
    return run_to_completion(
        fit_model([f.image for f in fields], settings, max_pixels=4096, tile=16)
    )


def test_fit_samples_within_the_budget_and_finds_the_minerals(fields, model):
    assert model.info["sampled_pixels"] <= 4096 and model.info["fields_sampled"] == 2
    assert model.n_phases == len(MINERALS)
    assert model.phase_ids.tolist() == [1, 2, 3, 4]
    assert model.components.shape == (len(MINERALS), fields[0].image.energy.size)
    for sample in fields:
        result = run_to_completion(apply_model(model, sample.image))
        assert adjusted_rand_index(sample.labels.ravel(), result.labels.ravel()) > 0.95
        assert result.phase_names == model.phase_names
        assert result.abundances.shape == (48, 48, len(MINERALS))
        assert result.latent.shape == (48 * 48, 2)


def test_model_file_round_trip_and_tampering(model, tmp_path):
    path = save_model(tmp_path / "model.sigma", model)
    back = load_model(path)
    assert back.settings == model.settings and back.phase_names == model.phase_names
    for name in ("templates", "whitening", "phase_colors", "components", "phase_ids"):
        np.testing.assert_array_equal(getattr(back, name), getattr(model, name))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(SigmaFileError, match=r"model\.sigma"):
        load_model(path)
    session_like = save_session(tmp_path / "s.sigma", _small_result())
    with pytest.raises(SigmaFileError, match="holds a session, not a model"):
        load_model(session_like)


def _small_result():
    sample = make_synthetic(seed=2, shape=(40, 40), phases=MINERALS, grain_size=12)
    from napari_sigma.latent.embedding import LatentSettings

    latent = LatentSettings(hidden=(8,), epochs=1, train_pixels=500, device="cpu")
    settings = replace(SETTINGS, lines=tuple(sample.lines), latent=latent)
    return run_analysis(sample.image, settings)


def test_model_of_an_edited_result_keeps_the_edits_names_and_colours(tmp_path):
    result = _small_result()
    edited = np.where(result.labels == 2, 1, result.labels)  # the user merged phase 2 into 1
    kept = [k for k in range(1, result.n_phases + 1) if k != 2]
    phases = [(k, f"mineral {k}", (0.1 * k, 0.2, 0.3, 1.0)) for k in kept]
    model = run_to_completion(model_from_result(result, edited, phases))
    assert model.phase_ids.tolist() == kept
    assert model.phase_names == [f"mineral {k}" for k in kept]
    np.testing.assert_allclose(model.phase_colors[:, 0], [0.1 * k for k in kept])
    again = run_to_completion(apply_model(model, result.image))
    assert 2 not in np.unique(again.labels)
    assert (again.labels == edited).mean() > 0.97
    # the session keeps the model
    session = load_session(save_session(tmp_path / "s.sigma", result, edited, phases, model))
    assert session.model.phase_names == model.phase_names
    np.testing.assert_array_equal(session.model.templates, model.templates)


def test_apply_on_its_own_field_agrees_with_the_analysis():
    result = _small_result()
    model = run_to_completion(model_from_result(result))
    again = run_to_completion(apply_model(model, result.image))
    assert (again.labels == result.labels).mean() > 0.97


def test_tiles_are_spread_over_the_field_and_latent_space_is_refused():
    rng = np.random.default_rng(0)
    origins = tile_origins((128, 128), 4, 32, rng)
    assert len(set(origins)) == 4 and {y for y, _ in origins} == {0, 32, 64, 96}
    assert tile_origins((40, 40), 10, 32, rng) == [(0, 0)]
    with pytest.raises(AnalysisError, match="spatial"):
        next(fit_model(["x"], AnalysisSettings.preset("sigma")))


def test_components_follow_another_energy_calibration(model, fields):
    from napari_sigma.energy import EnergyAxis
    from napari_sigma.pipeline.model import components_on

    axis = fields[0].image.energy
    same = components_on(model, axis)
    assert same is model.components
    coarser = EnergyAxis(axis.offset + 0.005, axis.scale * 2, axis.size // 2)
    moved = components_on(model, coarser)
    assert moved.shape == (model.components.shape[0], axis.size // 2)
    # counts per channel double with the channel width: the totals are kept
    np.testing.assert_allclose(moved.sum(axis=1), model.components.sum(axis=1), rtol=0.02)


def test_a_model_with_minor_twins_assigns_them_by_whole_spectra():
    """Olivines 1 wt % Fe apart, half a standard deviation per pixel: a model classifies each
    pixel on its own features (ARI 0.77 on minor_twin, the twins speckled); the twins'
    assignment from whole spectra with a Potts cut cleans them (0.95)."""
    from napari_sigma.synthetic.generator import benchmark_case

    first, second = (benchmark_case("minor_twin", seed=s) for s in (0, 1))
    settings = AnalysisSettings.preset("default", lines=tuple(first.lines), device="cpu")
    model = run_to_completion(model_from_result(run_analysis(first.image, settings)))
    applied = run_to_completion(apply_model(model, second.image))
    assert adjusted_rand_index(second.labels, applied.labels) >= 0.93
