"""Phases that are zones of mixed pixels between others, found on the labelled phases
(phases.end_members.boundary_zones, phases.finding._without_boundary_zones)."""

from __future__ import annotations

import numpy as np

from napari_sigma.features.intensities import anscombe
from napari_sigma.phases.end_members import (
    boundary_zones,
    contact_lengths,
    lies_between,
    mixture_zones,
)
from napari_sigma.phases.finding import PhaseFindingSettings, _without_boundary_zones

MATRIX = np.array([1.0, 0.4, 34.0, 0.3])  # cobalt-like counts per pixel (C, Ti, Co, W)
CORE = np.array([4.2, 0.6, 1.8, 10.4])  # carbide-like
OTHER = np.array([11.0, 43.0, 4.5, 0.2])  # a third phase


def _rimmed_particles() -> tuple[np.ndarray, np.ndarray]:
    """Grid 0 matrix, 1 the rims (3 px) of particles whose cores are 2, a grain of 3; and each
    pixel's share of the matrix (rims: 0.5 at the outside down to 0.1 inside)."""
    from scipy.ndimage import distance_transform_edt

    yy, xx = np.mgrid[:96, :96]
    particle = np.zeros((96, 96), dtype=bool)
    for cy, cx in ((20, 20), (20, 70), (70, 25), (65, 70)):
        particle |= (yy - cy) ** 2 + (xx - cx) ** 2 <= 12**2
    depth = distance_transform_edt(particle)
    grid = np.where(particle, np.where(depth <= 3, 1, 2), 0)
    grid[40:52, 40:52] = 3
    share = np.where(grid == 0, 1.0, 0.0)
    share = np.where(grid == 1, 0.6 - 0.15 * np.clip(depth, 1, 3), share)
    return grid, share


def _counts_map(grid: np.ndarray, share: np.ndarray) -> np.ndarray:
    counts = share[..., None] * MATRIX + (1 - share[..., None]) * CORE
    return np.where((grid == 3)[..., None], OTHER, counts)


def test_a_rim_that_mixes_a_core_with_its_matrix_is_a_zone():
    grid, share = _rimmed_particles()
    rim = _counts_map(grid, share)[grid == 1].mean(axis=0)
    counts = np.stack([MATRIX, rim, CORE, OTHER])
    sizes = np.bincount(grid.ravel())[:, None]
    noise = np.maximum(counts, 0.5) / sizes  # the standard error of each phase's mean
    assert boundary_zones(counts, noise, grid) == [(1, [0, 2])]


def test_an_intermediate_phase_that_borders_both_partners_where_they_also_meet_stays():
    # phase 1 is exactly a 50:50 mix of 0 and 2, touches both, but 0 and 2 meet along the whole
    # map: a mineral of intermediate composition, not a zone of mixed pixels
    grid = np.zeros((60, 60), dtype=int)
    grid[:, 30:] = 2
    grid[10:20, 25:35] = 1
    counts = np.stack([MATRIX, (MATRIX + CORE) / 2, CORE])
    noise = np.maximum(counts, 0.5) / 9
    contacts = contact_lengths(grid, 3)
    assert not lies_between(contacts, 1, [0, 2])
    assert boundary_zones(counts, noise, grid) == []
    assert mixture_zones(counts, noise, grid) == [(1, [0, 2])]  # the candidates' test drops it


def test_a_phase_one_other_explains_is_left_to_the_split_test():
    grid, _ = _rimmed_particles()
    counts = np.stack([MATRIX, CORE * 1.01, CORE, OTHER])  # a twin of the core
    noise = np.maximum(counts, 0.5) / 9
    assert boundary_zones(counts, noise, grid) == []


def test_contacts_count_pixel_edges_between_groups():
    grid = np.array([[0, 0, 1], [0, 2, 1], [-1, 2, 2]])
    contacts = contact_lengths(grid, 3)
    assert contacts.tolist() == [[0, 1, 2], [1, 0, 2], [2, 2, 0]]


def _state(grid: np.ndarray, counts: np.ndarray, rng) -> tuple:
    """Anscombe features of Poisson counts, the labels as given, probabilities favouring each
    pixel's own label and, among the others, the core over the matrix in the rims."""
    raw = anscombe(rng.poisson(counts)).astype(np.float32)
    labels = grid.reshape(-1)
    probabilities = np.full((labels.size, 4), 0.01)
    probabilities[np.arange(labels.size), labels] = 0.9
    probabilities[labels == 1, 2] = 0.08
    mask = np.zeros(grid.shape, dtype=bool)
    mask[::3, ::3] = True
    return raw, mask, (labels, probabilities, labels[mask.reshape(-1)], 4)


def test_the_rim_phase_is_dropped_and_its_pixels_join_the_core():
    rng = np.random.default_rng(3)
    grid, share = _rimmed_particles()
    raw, mask, state = _state(grid, _counts_map(grid, share), rng)
    settings = PhaseFindingSettings(mix_space="anscombe")
    labels, probabilities, hard, n_phases = _without_boundary_zones(raw, mask, state, settings)
    assert n_phases == 3 and probabilities.shape == (grid.size, 3)
    expected = np.array([0, 1, 1, 2])[grid.reshape(-1)]  # rim -> core; phases renumbered
    assert np.array_equal(labels, expected)
    assert np.array_equal(hard, expected[mask.reshape(-1)])
    assert np.allclose(probabilities.sum(axis=1), 1.0)


def test_phases_of_distinct_compositions_are_kept_as_they_are():
    rng = np.random.default_rng(4)
    grid, share = _rimmed_particles()
    counts = _counts_map(grid, share)
    counts[grid == 1] = np.array([2.0, 20.0, 2.0, 20.0])  # a real phase around each core
    raw, mask, state = _state(grid, counts, rng)
    settings = PhaseFindingSettings(mix_space="anscombe")
    assert _without_boundary_zones(raw, mask, state, settings) is state


def test_a_phase_of_specks_does_not_stop_the_test():
    # the third phase is single pixels: no pixel of it lies away from others, so it is not
    # measured, and the rim is still a zone of the others
    rng = np.random.default_rng(5)
    grid, share = _rimmed_particles()
    grid = np.where(grid == 3, 0, grid)
    grid[44:52:4, 40:88:4] = 3
    share = np.where(grid == 0, 1.0, share)
    raw, mask, state = _state(grid, _counts_map(grid, share), rng)
    settings = PhaseFindingSettings(mix_space="anscombe")
    labels, _, _, n_phases = _without_boundary_zones(raw, mask, state, settings)
    assert n_phases == 3
    assert np.array_equal(labels, np.array([0, 1, 1, 2])[grid.reshape(-1)])
