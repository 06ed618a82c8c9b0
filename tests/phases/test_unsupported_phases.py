"""Thin phases kept only where their pixels or their summed spectrum need them
(phases.finding._without_unsupported_phases)."""

from __future__ import annotations

import numpy as np

from napari_sigma.phases.finding import (
    PhaseFindingSettings,
    _placed_by_neighbours,
    _without_unsupported_phases,
)

# window counts per pixel (~150-200 counts) of the phases
A = np.array([100.0, 20.0, 5.0, 5.0])
B = np.array([10.0, 10.0, 80.0, 30.0])
C = np.array([20.0, 90.0, 10.0, 10.0])  # a rim phase of its own, far from every mix
SUBTLE = 0.5 * A + 0.5 * C + np.array([0.0, 0.0, 0.0, 7.0])  # a rim a pixel cannot tell


def _map(rng) -> tuple[np.ndarray, np.ndarray]:
    """Labels (0 A left, 1 B right, 2 a 3-px band of A:B mixed pixels where they meet, 3 a
    2-px rim of C around a grain in A, 4 a 4-px band of SUBTLE inside B) and expected counts."""
    grid = np.zeros((80, 80), dtype=int)
    grid[:, 40:] = 1
    grid[:, 39:42] = 2
    yy, xx = np.mgrid[:80, :80]
    grain = (yy - 40) ** 2 + (xx - 18) ** 2
    grid[(grain <= 100) & (grain > 64)] = 3
    grid[10:70, 60:64] = 4
    share = rng.uniform(0.3, 0.7, grid.shape)[..., None]  # A's share of a mixed pixel
    expected = np.select(
        [(grid == k)[..., None] for k in range(5)],
        [A, B, share * A + (1 - share) * B, C, SUBTLE],
    )
    return grid, expected


def _state(grid: np.ndarray) -> tuple:
    labels = grid.reshape(-1)
    probabilities = np.full((labels.size, 5), 0.02)
    probabilities[np.arange(labels.size), labels] = 0.9
    mask = np.zeros(grid.shape, dtype=bool)
    mask[::3, ::3] = True
    return mask, (labels, probabilities, labels[mask.reshape(-1)], 5)


def test_a_zone_of_mixed_pixels_goes_to_its_neighbours_and_real_thin_phases_stay():
    rng = np.random.default_rng(0)
    grid, expected = _map(rng)
    windows = rng.poisson(expected).astype(np.float32)
    counts = (windows, windows.sum(axis=-1))
    mask, state = _state(grid)
    run = _without_unsupported_phases(mask, state, counts, PhaseFindingSettings())
    try:
        while True:
            next(run)
    except StopIteration as stop:
        labels, probabilities, hard, n_phases = stop.value
    assert n_phases == 4 and probabilities.shape == (grid.size, 4)
    zone = grid.reshape(-1) == 2
    # the zone's pixels went to their majority phase, A (0) or B (1), none to a thin phase
    assert set(np.unique(labels[zone]).tolist()) == {0, 1}
    assert np.array_equal(labels[~zone], np.array([0, 1, -1, 2, 3])[grid.reshape(-1)[~zone]])
    assert np.array_equal(hard, labels[mask.reshape(-1)])
    assert np.allclose(probabilities.sum(axis=1), 1.0)


def test_the_subtle_rim_rests_on_its_summed_spectrum_alone():
    # no pixel of SUBTLE is unexplained by an A:C mix (the trace test's threshold), but its
    # summed counts are no such mix: without the summed test it would go
    from napari_sigma.phases.trace import chi_square_threshold, mixture_chi_square

    rng = np.random.default_rng(1)
    grid, expected = _map(rng)
    windows = rng.poisson(expected).astype(np.float64)
    dose = windows.sum(axis=-1)
    profiles = np.stack([A / A.sum(), B / B.sum(), C / C.sum()])
    rim = grid == 4
    chi = mixture_chi_square(windows[rim], dose[rim], profiles)
    assert (chi > chi_square_threshold(4, 1e-9)).sum() < 6
    mask, state = _state(grid)
    run = _without_unsupported_phases(mask, state, (windows, dose), PhaseFindingSettings())
    try:
        while True:
            next(run)
    except StopIteration as stop:
        labels, _, _, n_phases = stop.value
    assert n_phases == 4 and (labels[rim.reshape(-1)] == 3).all()


def test_phases_with_interiors_are_not_asked():
    rng = np.random.default_rng(2)
    grid = np.zeros((60, 60), dtype=int)
    grid[:, 20:] = 1
    grid[:, 40:] = 2
    expected = np.select([(grid == k)[..., None] for k in range(3)], [A, B, C])
    windows = rng.poisson(expected).astype(np.float32)
    labels = grid.reshape(-1)
    state = (labels, np.eye(3)[labels], labels[::7], 3)
    mask = np.zeros(grid.shape, dtype=bool)
    mask.reshape(-1)[::7] = True
    run = _without_unsupported_phases(
        mask, state, (windows, windows.sum(-1)), PhaseFindingSettings()
    )
    try:
        next(run)
        raise AssertionError("no phase is thin: nothing to compute")
    except StopIteration as stop:
        assert stop.value is state


def test_pixels_placed_by_neighbours_do_not_depend_on_their_own_label():
    grid = np.zeros((6, 6), dtype=int)
    grid[1:5, 1:5] = 1
    grid[2, 3] = 0  # an odd pixel labelled otherwise: still placed by its four neighbours
    placed = _placed_by_neighbours(grid, 1)
    assert placed[2, 3] and placed[3, 2]
    assert not placed[2, 2] and not placed[3, 3]  # even pixels never
    assert not placed[1, 2]  # a neighbour outside


def _finished(run):
    try:
        while True:
            next(run)
    except StopIteration as stop:
        return stop.value


def test_specks_of_noise_on_a_one_phase_map_leave_one_phase():
    # a map of A alone where a classification put a few noisy pixels in a second phase (the
    # velox map's 2-15 pixels, different on every seed): nothing needs the second phase
    rng = np.random.default_rng(3)
    grid = np.zeros((48, 48), dtype=int)
    windows = rng.poisson(np.broadcast_to(A, (48, 48, 4))).astype(np.float64)
    dose = windows.sum(axis=-1)
    rate = windows[..., 2] / dose  # the pixels richest in the third window, by chance
    grid[rate >= np.sort(rate.reshape(-1))[-12]] = 1
    labels = grid.reshape(-1)
    mask = np.zeros(grid.shape, dtype=bool)
    mask[::3, ::3] = True
    state = (labels, np.eye(2)[labels], labels[mask.reshape(-1)], 2)
    labels, probabilities, hard, n_phases = _finished(
        _without_unsupported_phases(mask, state, (windows, dose), PhaseFindingSettings())
    )
    assert n_phases == 1 and probabilities.shape == (grid.size, 1)
    assert (labels == 0).all() and (hard == 0).all()


def test_a_thin_phase_its_pixels_need_stays_beside_a_single_phase():
    rng = np.random.default_rng(4)
    grid = np.zeros((48, 48), dtype=int)
    yy, xx = np.mgrid[:48, :48]
    grain = (yy - 24) ** 2 + (xx - 24) ** 2
    grid[(grain <= 100) & (grain > 64)] = 1  # a 2-px rim of C in A
    expected = np.select([(grid == k)[..., None] for k in range(2)], [A, C])
    windows = rng.poisson(expected).astype(np.float64)
    labels = grid.reshape(-1)
    mask = np.zeros(grid.shape, dtype=bool)
    mask[::3, ::3] = True
    state = (labels, np.eye(2)[labels], labels[mask.reshape(-1)], 2)
    result = _finished(
        _without_unsupported_phases(mask, state, (windows, windows.sum(-1)), PhaseFindingSettings())
    )
    assert result[3] == 2 and np.array_equal(result[0], labels)
