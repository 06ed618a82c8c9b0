"""The inclusion test's window sums and interior windows made on several threads: the same
numbers as the one-thread expressions (small_phases._box_sums, _interior_windows)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import maximum_filter, minimum_filter

import napari_sigma.compute.blocks as blocks
from napari_sigma.phases._filters import box_sum
from napari_sigma.phases.small_phases import (
    _band_edges,
    _box_sums,
    _interior_windows,
    _stacked_where,
)
from napari_sigma.phases.splitting import _checkerboard


@pytest.mark.parametrize("cores", [1, 2, 3])
@pytest.mark.parametrize("radius", [1, 2])
@pytest.mark.parametrize("height", [7, 130, 333])
def test_the_window_sums_in_bands_are_those_of_the_whole_map(monkeypatch, cores, radius, height):
    monkeypatch.setattr(blocks, "usable_cores", lambda: cores)
    rng = np.random.default_rng(height + radius)
    # non-integer values: a sum in another order would differ in its last bits
    values = rng.gamma(2.0, 3.7, size=(height, 41, 5)) * rng.choice([0.0, 1.0], (height, 41, 1))
    expected = box_sum(values.copy(), radius, mode="constant")
    summed = _box_sums(values, radius)
    assert summed.shape == values.shape and summed.dtype == np.float64
    assert np.array_equal(summed, expected)


@pytest.mark.parametrize("shape", [(1, 1), (7, 12), (64, 33)])
def test_the_checkerboard_halves_are_those_of_the_stacked_array(shape):
    """_with_inclusions' odd and even pixels' counts and dose: the same numbers as the stacked
    array times the checkerboard (its expression before)."""
    rng = np.random.default_rng(shape[0])
    counts = rng.poisson(rng.gamma(1.0, 3.0, (*shape, 6))).reshape(-1, 6).astype(np.float64)
    dose = rng.gamma(2.0, 50.0, shape).reshape(-1) * rng.choice([0.0, 1.0], shape).reshape(-1)
    even = _checkerboard(shape, (slice(0, shape[0]), slice(0, shape[1])), 0)
    stacked = np.concatenate([counts, dose[:, None]], axis=1).reshape(*shape, -1)
    odd = _stacked_where(counts, dose, ~even.reshape(-1))
    assert odd.tobytes() == (stacked * ~even[..., None]).reshape(-1, 7).tobytes()
    even_half = _stacked_where(counts, dose, even.reshape(-1)).reshape(*shape, -1)
    assert even_half.tobytes() == (stacked * even[..., None]).tobytes()


def test_integer_windows_are_summed_in_float64(monkeypatch):
    monkeypatch.setattr(blocks, "usable_cores", lambda: 2)
    counts = np.random.default_rng(0).poisson(30.0, size=(200, 50, 4)).astype(np.float32)
    summed = _box_sums(counts, 2)
    assert summed.dtype == np.float64
    assert np.array_equal(summed, box_sum(counts.astype(np.float64), 2, mode="constant"))


def test_band_edges_cover_the_rows_once():
    assert _band_edges(1000, 2, 64) == [0, 500, 1000]
    assert _band_edges(1001, 3, 64) == [0, 333, 667, 1001]
    assert _band_edges(100, 2, 64) == [0, 100]  # too few rows for two bands
    assert _band_edges(100, 1, 64) == [0, 100]
    assert _band_edges(0, 2, 64) == [0, 0]


@pytest.mark.parametrize("radius", [1, 2])
def test_interior_windows_are_those_of_the_two_filters(radius):
    rng = np.random.default_rng(radius)
    grid = rng.integers(-1, 3, size=(60, 70))
    grid[10:40, 20:50] = 1  # a region with interior windows
    size = 2 * radius + 1
    low = minimum_filter(grid, size=size, mode="nearest")
    high = maximum_filter(grid, size=size, mode="nearest")
    expected = (low == high) & (grid >= 0)
    assert expected.any()
    assert np.array_equal(_interior_windows(grid, radius), expected)


@pytest.mark.parametrize("holes", [False, True])
def test_each_window_chi_square_is_that_of_the_gathered_windows(holes):
    from napari_sigma.phases.small_phases import _own_chi_square
    from napari_sigma.phases.trace import mixture_chi_square_one

    rng = np.random.default_rng(3)
    shape, n_windows, n_phases = (90, 80), 6, 3
    grid = rng.integers(0, n_phases, size=shape)
    sums = np.concatenate(
        [rng.poisson(20.0, (grid.size, n_windows)), rng.poisson(400.0, (grid.size, 1))], axis=1
    ).astype(np.float64) * rng.uniform(0.5, 1.5)
    if holes:
        grid[5:9, 10:30] = -1
        sums[::17, -1] = 0.0
    profiles = rng.dirichlet(np.ones(n_windows), n_phases) * 0.3
    flat = grid.reshape(-1)
    asked = np.flatnonzero((flat >= 0) & (sums[:, -1] > 0))
    expected = np.full(flat.shape, np.nan)
    expected[asked] = mixture_chi_square_one(
        sums[asked, :-1], sums[asked, -1], profiles, flat[asked], block=512
    )
    own = _own_chi_square(sums, grid, profiles)
    assert np.isnan(own).any() == holes
    assert np.array_equal(own, expected, equal_nan=True)
