"""Spatially aware phase finding: homogeneous pixels, merging, Potts prior."""

from __future__ import annotations

import numpy as np

from napari_sigma.compute.progress import run_to_completion
from napari_sigma.metrics import adjusted_rand_index
from napari_sigma.phases.finding import (
    PhaseFindingSettings,
    find_phases,
    homogeneous_pixels,
    merge_close_phases,
)
from napari_sigma.phases.mixture import ClusteringSettings


def _two_by_two_map(rng, noise=0.5):
    """Four square phases with distinct 3-feature means and Gaussian noise."""
    truth = np.zeros((60, 60), dtype=np.int32)
    truth[:30, 30:], truth[30:, :30], truth[30:, 30:] = 1, 2, 3
    means = np.array([[0, 0, 0], [4, 0, 0], [0, 4, 0], [0, 0, 4]], dtype=float)
    raw = means[truth] + rng.normal(0, noise, (60, 60, 3))
    return truth, raw


def _smooth(raw):
    from scipy.ndimage import uniform_filter

    return uniform_filter(raw, (3, 3, 1), mode="nearest")


def test_boundaries_are_not_homogeneous():
    rng = np.random.default_rng(0)
    _, raw = _two_by_two_map(rng)
    mask = homogeneous_pixels(_smooth(raw))
    boundary = np.zeros_like(mask)
    boundary[28:32, :] = boundary[:, 28:32] = True
    assert mask[~boundary].mean() > 0.9
    assert mask[29:31, 5:25].mean() < 0.1  # right on the boundary between two phases


def test_find_phases_recovers_the_map_and_its_number_of_phases():
    rng = np.random.default_rng(1)
    truth, raw = _two_by_two_map(rng, noise=1.2)  # pixel by pixel the phases overlap
    settings = ClusteringSettings(n_phases="auto", max_phases=8, device="cpu")
    result = run_to_completion(find_phases(raw, _smooth(raw), settings))
    assert result.n_phases == 4
    labels = result.labels.reshape(truth.shape)
    assert adjusted_rand_index(truth, labels) > 0.95
    counts = np.bincount(result.labels)[1:]
    assert np.all(np.diff(counts) <= 0)  # numbered by decreasing size
    no_prior = PhaseFindingSettings(spatial_weight=0.0)
    plain = run_to_completion(find_phases(raw, _smooth(raw), settings, no_prior))
    # the neighbourhood prior is what cleans up the noisy pixels
    assert adjusted_rand_index(truth, labels) > adjusted_rand_index(
        truth, plain.labels.reshape(truth.shape)
    )


def test_close_groups_merge_and_distinct_ones_stay():
    rng = np.random.default_rng(2)
    a = rng.normal([0, 0], 1.0, (500, 2))
    b = rng.normal([1.5, 0], 1.0, (500, 2))  # 1.5 sd from a: one phase split in two
    c = rng.normal([12, 0], 1.0, (500, 2))  # 12 sd away: a phase of its own
    points = np.concatenate([a, b, c])
    labels = np.repeat([0, 1, 2], 500)
    merged, n = merge_close_phases(points, labels, distance=4.0)
    assert n == 2
    assert len(set(merged[:1000])) == 1 and set(merged[1000:]).isdisjoint(merged[:1000])


def test_uncertain_pixels_can_be_left_unassigned():
    rng = np.random.default_rng(3)
    _, raw = _two_by_two_map(rng, noise=1.2)
    settings = ClusteringSettings(n_phases=4, min_probability=0.9, device="cpu")
    # pure phases only: at this noise a 50/50 mixture template is as close as the other phase
    no_prior = PhaseFindingSettings(spatial_weight=0.0, mix_fractions=())
    result = run_to_completion(find_phases(raw, _smooth(raw), settings, no_prior))
    unassigned = result.labels == 0
    assert 0.01 < unassigned.mean() < 0.5  # noisy pixels between phases
    assert np.all(result.probabilities[unassigned].max(axis=1) < 0.9)
    assert np.all(result.probabilities[~unassigned].max(axis=1) >= 0.9)
