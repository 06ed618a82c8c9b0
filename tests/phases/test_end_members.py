"""Noise splits and mixture zones are not phases (phases.end_members)."""

from __future__ import annotations

import numpy as np

from napari_sigma.phases.end_members import merge_noise_splits, mixture_zones, noise_distances


def test_a_phase_cut_in_two_by_noise_is_merged_and_distinct_phases_are_not():
    rng = np.random.default_rng(0)
    noise = np.full(3, 0.04)
    one = rng.normal(1.0, 0.2, (2000, 3))
    other = rng.normal(1.0, 0.2, (500, 3)) + np.array([1.2, 0.0, 0.0])  # 6 noise sd away
    points = np.concatenate([one, other])
    cut = np.where(one[:, 0] > 1.0, 1, 0)  # the mixture's cut of one phase at its median
    labels = np.concatenate([cut, np.full(500, 2)])
    assert (
        noise_distances(np.array([one[cut == 0].mean(0), one[cut == 1].mean(0)]), noise)[0, 1] < 3
    )
    merged = merge_noise_splits(points, labels, noise)
    assert merged.max() == 1
    assert (merged[:2000] == merged[0]).all() and (merged[2000:] != merged[0]).all()


def _grid_with_zone() -> np.ndarray:
    grid = np.zeros((40, 40), dtype=int)  # phase 0 left, 1 right, zone 3 between, 2 a grain
    grid[:, 20:] = 1
    grid[:, 18:22] = 3
    grid[5:12, 5:12] = 2
    return grid


def test_a_mix_of_two_phases_that_sits_between_them_is_a_mixture_zone():
    counts = np.array([[30.0, 5.0, 1.0], [4.0, 40.0, 1.0], [2.0, 2.0, 50.0], [17.0, 22.5, 1.0]])
    noise = np.maximum(counts, 0.5) / 9
    explained = mixture_zones(counts, noise, _grid_with_zone())
    assert explained == [(3, [0, 1])]


def test_a_phase_that_no_mix_explains_stays():
    counts = np.array([[30.0, 5.0, 1.0], [4.0, 40.0, 1.0], [2.0, 2.0, 50.0], [17.0, 22.5, 12.0]])
    noise = np.maximum(counts, 0.5) / 9
    assert mixture_zones(counts, noise, _grid_with_zone()) == []


def test_a_mix_that_does_not_touch_its_partners_is_not_a_zone():
    counts = np.array([[30.0, 5.0, 1.0], [4.0, 40.0, 1.0], [2.0, 2.0, 50.0], [17.0, 22.5, 1.0]])
    noise = np.maximum(counts, 0.5) / 9
    grid = np.zeros((40, 40), dtype=int)
    grid[:, 20:] = 1
    grid[5:12, 5:12] = 2
    grid[30:35, 2:6] = 3  # inside phase 0 only
    assert mixture_zones(counts, noise, grid) == []
