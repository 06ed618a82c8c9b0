"""Tiny and single-phase maps through the API: they analyse, or are refused naming the file."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from napari_sigma.energy import EnergyAxis
from napari_sigma.errors import AnalysisError
from napari_sigma.pipeline.analysis import AnalysisSettings, run_analysis
from napari_sigma.spectrum_image import SpectrumImage
from napari_sigma.synthetic.generator import mineral, phase_spectra

AXIS = EnergyAxis(offset=-0.1, scale=0.01, size=1024)
LINES = ("O_Ka", "Na_Ka", "Al_Ka", "Si_Ka", "K_Ka", "Ca_Ka", "Fe_Ka")


def _one_phase(shape: tuple[int, int], seed: int = 0) -> SpectrumImage:
    lines, background = phase_spectra([mineral("albite")], AXIS, 15.0)
    expected = (lines + background)[0] * 300
    counts = np.random.default_rng(seed).poisson(expected, size=(*shape, AXIS.size))
    return SpectrumImage(
        counts=counts.astype(np.uint16), energy=AXIS, beam_energy=15.0, title="albite field"
    )


def _settings(method: str = "pca") -> AnalysisSettings:
    settings = AnalysisSettings.preset("default", lines=LINES)
    return replace(settings, latent=replace(settings.latent, method=method, epochs=3))


@pytest.mark.parametrize("method", ["pca", "ae"])
def test_a_single_phase_map_gives_exactly_one_phase(method, one_torch_thread) -> None:
    result = run_analysis(_one_phase((32, 32)), _settings(method))
    assert result.n_phases == 1
    assert set(np.unique(result.labels)) == {1}


@pytest.mark.parametrize("shape", [(2, 2), (1, 24)])
def test_two_by_two_and_single_row_maps_analyse(shape, one_torch_thread) -> None:
    result = run_analysis(_one_phase(shape), _settings())
    assert result.labels.shape == shape
    assert result.labels.min() >= 1


def test_a_one_pixel_map_is_refused_naming_it() -> None:
    with pytest.raises(AnalysisError, match="albite field: a 1 x 1 map has 1 pixel"):
        run_analysis(_one_phase((1, 1)), _settings())
