"""Per-pixel spectra kept in memory for the GUI's phase statistics: channel groups of a lazy cube."""

from __future__ import annotations

import dask.array as da
import numpy as np

from napari_sigma.energy import EnergyAxis
from napari_sigma.phases.pixel_cache import pixel_spectra


def test_an_in_memory_cube_is_used_as_it_is():
    counts = np.ones((4, 5, 16), dtype=np.uint16)
    spectra = pixel_spectra(counts, EnergyAxis(0.0, 0.01, 16))
    assert spectra.counts is counts and spectra.factor == 1


def test_a_lazy_cube_is_summed_in_channel_groups_within_the_memory_budget():
    rng = np.random.default_rng(0)
    counts = rng.poisson(2.0, size=(6, 7, 100)).astype(np.uint16)
    lazy = da.from_array(counts, chunks=(4, 4, 30))
    budget = 6 * 7 * 2 * 25  # 25 uint16 channels per pixel
    spectra = pixel_spectra(lazy, EnergyAxis(0.5, 0.01, 100), max_bytes=budget)
    assert spectra.factor == 4 and spectra.counts.shape == (6, 7, 25)
    assert spectra.counts.dtype == np.uint16 and spectra.counts.nbytes <= budget
    expected = counts.reshape(6, 7, 25, 4).sum(-1)
    np.testing.assert_array_equal(spectra.counts, expected)
    np.testing.assert_allclose(spectra.energies, 0.5 + 0.04 * np.arange(25))
