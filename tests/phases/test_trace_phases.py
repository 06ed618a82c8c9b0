"""Pixels that no phase nor a boundary mix of two explains."""

from __future__ import annotations

import numpy as np

from napari_sigma.phases.trace import mixture_chi_square, phase_profiles, unexplained_pixels

PROFILES = np.array([[0.30, 0.10, 0.01], [0.05, 0.40, 0.01], [0.05, 0.05, 0.01]])


def test_profiles_are_count_fractions_of_labelled_pixels():
    counts = np.array([[30.0, 10, 1], [60, 20, 2], [5, 40, 1]])
    dose = np.array([100.0, 200, 100])
    profiles = phase_profiles(counts, dose, np.array([0, 0, 1]), 2)
    np.testing.assert_allclose(profiles, PROFILES[:2])


def test_pure_and_mixed_pixels_are_explained_and_a_new_composition_is_not():
    rng = np.random.default_rng(0)
    dose = np.full(3, 2000.0)
    mix = 0.3 * PROFILES[0] + 0.7 * PROFILES[1]
    novel = np.array([0.05, 0.05, 0.40])  # the third line: no phase has it
    counts = rng.poisson(dose[:, None] * np.stack([PROFILES[0], mix, novel])).astype(float)
    chi = mixture_chi_square(counts, dose, PROFILES)
    assert chi[0] < 15 and chi[1] < 15  # about 2 degrees of freedom
    assert chi[2] > 1000


def test_only_connected_groups_of_unexplained_pixels_count():
    rng = np.random.default_rng(1)
    labels = np.zeros((30, 30), dtype=int)
    labels[:, 15:] = 1
    expected = PROFILES[labels] * 500.0
    novel = np.array([0.05, 0.05, 0.40]) * 500.0
    expected[5:9, 5:9] = novel  # a 16-pixel grain of a phase nobody knows
    expected[20, 25] = novel  # one lone odd pixel: noise, not a phase
    counts = rng.poisson(expected).astype(float)
    dose = np.full(labels.shape, 500.0)  # total counts per pixel, most outside these windows
    flagged = unexplained_pixels(counts, dose, labels, 3, min_pixels=6)
    assert flagged[5:9, 5:9].all()
    assert flagged.sum() == 16


def _three_phase_junction(dose_per_pixel: float, rng) -> tuple:
    """Three sectors meeting at the centre, boundaries blurred: junction pixels mix all three."""
    from scipy.ndimage import gaussian_filter

    rows, cols = np.indices((40, 40)) - 19.5
    sector = ((np.arctan2(rows, cols) + np.pi) / (2 * np.pi / 3)).astype(int) % 3
    shares = np.stack([gaussian_filter((sector == k).astype(float), 1.2) for k in range(3)], -1)
    shares /= shares.sum(-1, keepdims=True)
    profiles = np.array(
        [[0.30, 0.10, 0.02, 0.05], [0.05, 0.40, 0.02, 0.05], [0.05, 0.05, 0.3, 0.05]]
    )
    counts = rng.poisson(shares @ profiles * dose_per_pixel).astype(float)
    return counts, np.full((40, 40), dose_per_pixel), sector


def test_three_phase_junctions_at_high_counts_are_not_a_trace_phase():
    rng = np.random.default_rng(2)
    counts, dose, labels = _three_phase_junction(20000.0, rng)
    from napari_sigma.phases.trace import mixture_chi_square as pair_chi_square

    profiles = phase_profiles(counts.reshape(-1, 4), dose.reshape(-1), labels.reshape(-1), 3)
    chi = pair_chi_square(counts.reshape(-1, 4), dose.reshape(-1), profiles).reshape(40, 40)
    assert (chi[17:23, 17:23] > 100).any()  # no pair explains the centre ...
    assert not unexplained_pixels(counts, dose, labels, 3).any()  # ... but all three do


def test_a_trace_phase_beside_junctions_is_still_found():
    rng = np.random.default_rng(3)
    counts, dose, labels = _three_phase_junction(20000.0, rng)
    counts[3:7, 30:34] = rng.poisson(np.array([0.02, 0.02, 0.02, 0.6]) * 20000.0, (4, 4, 4))
    flagged = unexplained_pixels(counts, dose, labels, 3)
    assert flagged[3:7, 30:34].all()
    assert flagged[10:30, 10:30].sum() == 0


def test_own_phase_chi_square_on_threads_is_the_serial_loop(threaded_map_calls):
    """The blocks of ``mixture_chi_square_one`` run on every core (threaded_map), each by the
    same calls: the numbers of the one-thread loop, tail block included."""
    from napari_sigma.compute.blocks import worker_threads
    from napari_sigma.phases.trace import mixture_chi_square_one

    rng = np.random.default_rng(7)
    profiles = rng.dirichlet(np.ones(6), size=4)
    labels = rng.integers(0, 4, 10_001)
    dose = rng.poisson(80.0, 10_001).astype(np.float64)
    counts = rng.poisson(dose[:, None] * profiles[labels]).astype(np.float64)
    expected = np.empty(len(counts))
    for start in range(0, len(counts), 1000):  # the serial loop, written out
        part = slice(start, start + 1000)
        model = dose[part, None] * profiles[labels[part]]
        expected[part] = ((counts[part] - model) ** 2 / np.maximum(model, 0.5)).sum(axis=1)
    for threads in (1, 2):
        with worker_threads(threads):
            got = mixture_chi_square_one(counts, dose, profiles, labels, block=1000)
        assert np.array_equal(got, expected)
    assert threaded_map_calls == [None, None]


def test_group_sums_per_column_on_threads_are_the_bincounts(threaded_map_calls):
    """The columns' bincounts run on every core: the sums of one bincount per column."""
    from napari_sigma.compute.blocks import worker_threads
    from napari_sigma.phases.trace import _group_sums

    rng = np.random.default_rng(8)
    values = rng.random((5000, 6)) * 1e6  # float sums that depend on their order
    groups = rng.integers(0, 9, 5000)
    expected = np.stack(
        [np.bincount(groups, weights=values[:, f], minlength=11) for f in range(6)], 1
    )
    for threads in (1, 2):
        with worker_threads(threads):
            assert np.array_equal(_group_sums(values, groups, 11), expected)
    assert threaded_map_calls == [None, None]


def test_profiles_with_unused_pixels_are_those_of_the_used_pixels_alone():
    """Unused pixels (label -1) go to a group of their own that is dropped: the sums of the
    used rows alone, bit for bit (bincount adds each group's rows in row order)."""
    rng = np.random.default_rng(10)
    counts = rng.random((4000, 5)) * 1e4
    dose = rng.random(4000) * 1e5
    labels = rng.integers(-1, 3, 4000)
    used = labels >= 0
    sums = np.stack(
        [np.bincount(labels[used], weights=counts[used, f], minlength=3) for f in range(5)], 1
    )
    expected = (
        sums / np.maximum(np.bincount(labels[used], weights=dose[used], minlength=3), 1.0)[:, None]
    )
    assert np.array_equal(phase_profiles(counts, dose, labels, 3), expected)
