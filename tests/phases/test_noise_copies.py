"""A candidate that one other candidate explains within one smoothed pixel's noise is a noise
copy only when the two, as classified on the map, are not two compositions grain by grain
(phases.end_members.mixture_zones' ``distinct``, phases.finding._without_mixture_zones)."""

from __future__ import annotations

import numpy as np

from napari_sigma.features.intensities import anscombe
from napari_sigma.phases.end_members import mixture_zones
from napari_sigma.phases.finding import PhaseFindingSettings, _without_mixture_zones

# counts per pixel (O, Si, Fe): a silica-like matrix and two iron oxides that differ in their
# O/Fe ratio only, 0.67 standard deviations of counting noise apart in one pixel, 2.0 in one
# smoothed (3x3) pixel: within the noise-copy distance of 3
MATRIX = np.array([28.0, 26.0, 0.1])
FIRST = np.array([12.0, 0.5, 17.0])
SECOND = np.array([14.0, 0.5, 15.5])


def _grains() -> np.ndarray:
    """Grid 0 matrix, 1 and 2 six round grains (radius 10) each, apart from each other."""
    yy, xx = np.mgrid[:128, :128]
    grid = np.zeros((128, 128), dtype=int)
    for i, (cy, cx) in enumerate((cy, cx) for cy in (14, 46, 78, 110) for cx in (14, 50, 86)):
        grid[(yy - cy) ** 2 + (xx - cx) ** 2 <= 10**2] = 1 + i % 2
    return grid


def _candidates(grid: np.ndarray, second: np.ndarray, rng) -> tuple:
    """Anscombe features of Poisson counts (grains of 1 hold FIRST, of 2 ``second``), training
    pixels every third pixel of the matrix and of the grains' cores, candidate 2 trained on
    only 20 of them (the mixture's few homogeneous pixels of a minority phase)."""
    from scipy.ndimage import binary_erosion

    counts = np.select([grid[..., None] == 1, grid[..., None] == 2], [FIRST, second], MATRIX)
    raw = anscombe(rng.poisson(counts)).astype(np.float32)
    core = binary_erosion(grid > 0, np.ones((5, 5), dtype=bool)) | (grid == 0)
    mask = core & (np.add.outer(np.arange(128), np.arange(128)) % 3 == 0)
    hard = grid[mask].copy()
    trained = np.flatnonzero(hard == 2)
    hard[trained[20:]] = -1  # only 20 training pixels of candidate 2
    mask[mask] = hard >= 0
    return raw, mask, hard[hard >= 0]


def test_two_compositions_that_a_pixel_cannot_tell_apart_are_not_a_noise_copy():
    rng = np.random.default_rng(0)
    grid = _grains()
    raw, mask, hard = _candidates(grid, SECOND, rng)
    settings = PhaseFindingSettings(mix_space="anscombe")
    used, kept, n_phases = _without_mixture_zones(raw, mask, hard, grid.reshape(-1), settings)
    assert n_phases == 3 and used is mask and kept is hard
    # without the grain-wise test (no split search) candidate 2 is joined to 1, as before
    plain = PhaseFindingSettings(mix_space="anscombe", split=None)
    _, joined, n_joined = _without_mixture_zones(raw, mask, hard, grid.reshape(-1), plain)
    assert n_joined == 2 and np.array_equal(joined, np.minimum(hard, 1))


def test_a_noise_split_of_one_composition_is_still_a_noise_copy():
    rng = np.random.default_rng(1)
    grid = _grains()
    raw, mask, hard = _candidates(grid, FIRST, rng)  # both kinds of grain hold FIRST
    # the map as classified: the grains' pixels cut in two at random (a noise split)
    labels = np.where(grid > 0, 1 + (rng.random(grid.shape) < 0.4), 0)
    settings = PhaseFindingSettings(mix_space="anscombe")
    _, kept, n_phases = _without_mixture_zones(raw, mask, hard, labels.reshape(-1), settings)
    assert n_phases == 2 and np.array_equal(kept, np.minimum(hard, 1))


def test_distinct_is_asked_only_of_one_partner_explanations():
    counts = np.stack([MATRIX, FIRST, FIRST * 1.01, (MATRIX + FIRST) / 2])
    noise = np.maximum(counts, 0.5) / 9
    grid = np.zeros((40, 40), dtype=int)
    grid[:, 20:] = 1
    grid[5:15, 15:25] = 3
    grid[30:35, 25:30] = 2
    asked = []

    def distinct(k: int, partner: int) -> bool:
        asked.append((k, partner))
        return True

    assert mixture_zones(counts, noise, grid, distinct=distinct) == [(3, [0, 1])]
    assert asked and all(pair in ((2, 1), (1, 2)) for pair in asked)
    assert sorted(mixture_zones(counts, noise, grid)) == [(2, [1]), (3, [0, 1])]
