"""An applied model says where it does not describe a field (#13): pixels that fit no phase,
elements it does not analyse, another beam energy; silent on fields of its own sample."""

from __future__ import annotations

from dataclasses import replace

import pytest

from napari_sigma.compute.progress import run_to_completion
from napari_sigma.pipeline.analysis import AnalysisSettings
from napari_sigma.pipeline.fitting import fit_model
from napari_sigma.pipeline.model import apply_model, load_model, save_model
from napari_sigma.synthetic.generator import make_synthetic

MINERALS = ("quartz", "albite", "magnetite", "pyrite")
OTHERS = ("calcite", "barite", "chalcopyrite", "sphalerite")  # Ca C O, Ba S O, Cu Fe S, Zn S


def _field(seed, phases=MINERALS, **kwargs):
    return make_synthetic(seed=seed, shape=(48, 48), phases=phases, grain_size=12, **kwargs)


@pytest.fixture(scope="module")
def model():
    settings = AnalysisSettings(device="cpu")
    return run_to_completion(fit_model([_field(4).image], settings, max_pixels=4096, tile=16))


def _applied(model, sample):
    return run_to_completion(apply_model(model, sample.image))


def test_the_model_keeps_its_fields_beam_energy_elements_and_share_beyond_it(model):
    assert model.info["beam_energy_kV"] == 15.0
    assert {"O", "Si", "Al", "Na", "Fe", "S"} <= set(model.info["elements"])
    assert 0.0 <= model.info["not_fitted_fraction"] < 0.01


def test_a_field_warns_of_pixels_beyond_the_model_past_its_own_fields_share():
    """The Phenom .elid's model leaves 12.9 % of its own map beyond its phases (their tails):
    that map must not warn, test_TEM's 14.5 % under a model with 1.0 % of its own must."""
    from napari_sigma.pipeline.model_check import FieldCheck

    own = FieldCheck(1000, 129, 18.4, model_not_fitted_fraction=0.129)
    assert not own.warns and own.warning() == ""
    more = FieldCheck(1000, 240, 18.4, model_not_fitted_fraction=0.129)
    assert more.warns and "24.0 % of pixels fit no phase" in more.warning()
    assert "its own fields 12.9 %" in more.warning()
    other = FieldCheck(1000, 145, 18.4, model_not_fitted_fraction=0.010)
    assert other.warns
    older = FieldCheck(1000, 99, 18.4)  # a model saved without its share: 10 % over none
    assert not older.warns and FieldCheck(1000, 100, 18.4).warns


def test_a_field_of_the_same_sample_passes_without_a_warning(model):
    check = _applied(model, _field(5)).model_check
    assert not check.warns and check.warning() == ""
    assert check.not_fitted_fraction < 0.01
    assert check.foreign_elements == ()
    assert check.beam_energy_kV == check.model_beam_energy_kV == 15.0


def test_another_sample_is_named_with_every_reason_and_no_pixel_is_dropped(model):
    sample = _field(6, OTHERS)
    result = _applied(model, sample)
    check = result.model_check
    assert check.warns
    assert check.not_fitted_fraction > 0.5
    assert {"Ba", "Zn", "Cu", "Ca"} <= set(check.foreign_elements)
    warning = check.warning()
    assert "% of pixels fit no phase of the model" in warning and "Ba" in warning
    assert "\n" not in warning
    # the pixels keep their nearest phase: every pixel labelled, the mask counts them
    assert (result.labels > 0).all()
    assert check.mask.shape == result.labels.shape
    assert check.mask.sum() == check.not_fitted
    assert result.model_check.record()["warning"] == warning


def test_the_pixels_of_a_mineral_the_model_lacks_are_the_ones_that_fit_no_phase(model):
    sample = _field(7, (*MINERALS, "zircon"))
    check = _applied(model, sample).model_check
    zircon = sample.labels == len(MINERALS) + 1
    assert zircon.mean() > 0.1
    assert check.mask[zircon].mean() > 0.8  # the zircon grains (their mixed rims aside)
    assert check.mask[~zircon].mean() < 0.05
    assert "Zr" in check.foreign_elements


def test_another_beam_energy_is_named(model):
    check = _applied(model, _field(5, beam_energy=20.0)).model_check
    assert check.beam_mismatch and check.warns
    assert "beam 20 kV, the model's 15 kV" in check.warning()


def test_a_model_saved_without_beam_energy_and_elements_still_loads_and_checks(model, tmp_path):
    """A model file of the previous version (no beam energy, no elements in its info)."""
    new_keys = ("beam_energy_kV", "elements", "not_fitted_fraction")
    old = replace(model, info={k: v for k, v in model.info.items() if k not in new_keys})
    loaded = load_model(save_model(tmp_path / "old.sigma", old))
    assert "beam_energy_kV" not in loaded.info
    same = _applied(loaded, _field(5)).model_check
    assert not same.warns and same.model_beam_energy_kV is None
    assert same.model_not_fitted_fraction is None
    # its elements come from its phase spectra: a field with others is still named
    other = _applied(loaded, _field(6, OTHERS)).model_check
    assert {"Ba", "Zn"} <= set(other.foreign_elements)
    # the beam energy is not compared (not known): no beam clause
    assert "beam" not in _applied(loaded, _field(5, beam_energy=20.0)).model_check.warning()


def test_pixels_beyond_the_model_are_the_same_from_a_tensor():
    """On a GPU the distances stay a tensor on the device (apply's path there): same mask."""
    import numpy as np
    import torch

    from napari_sigma.pipeline.model_check import beyond_model, distance_threshold

    rng = np.random.default_rng(0)
    log_likelihood = -0.5 * rng.chisquare(4, size=(20, 30, 3)) * rng.choice([1, 20], (20, 30, 1))
    mask = beyond_model(log_likelihood, 4)
    expected = -2 * log_likelihood.max(axis=-1) > distance_threshold(4)
    assert 0 < expected.mean() < 1 and np.array_equal(mask, expected)
    assert np.array_equal(beyond_model(torch.as_tensor(log_likelihood), 4), expected)
