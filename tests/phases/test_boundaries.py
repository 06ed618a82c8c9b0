"""Boundary pixels to their majority phase from the phase fractions (phases.boundaries)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_sigma.compute.progress import run_to_completion
from napari_sigma.phases.boundaries import (
    distinct_groups,
    majority_labels,
    moved_spectra,
    pair_separation,
)
from napari_sigma.phases.spectra import phase_sum_spectra
from napari_sigma.unmixing.fractions import phase_fractions

SUPPORT = np.array([12.5, 1.5, 0.5, 0.25, 0.25])  # 15 counts per pure pixel
PARTICLE = np.array([1.0, 0.75, 15.0, 22.5, 10.0])  # 49 counts: 3.3x brighter


def _particles(size: int = 48) -> np.ndarray:
    """Share ``(y, x)`` of the particles: projected spheres of radius 3-6 (1 at the centre)."""
    yy, xx = np.mgrid[:size, :size]
    share = np.zeros((size, size))
    for cy, cx, r in [(10, 10, 4.0), (12, 34, 6.0), (34, 12, 3.0), (33, 33, 5.0)]:
        d2 = (yy - cy) ** 2 + (xx - cx) ** 2
        share = np.maximum(share, np.sqrt(np.clip(1.0 - d2 / r**2, 0.0, None)))
    return share


def test_pair_separation_is_the_fraction_noise_of_one_pixel():
    spectra = np.array([[100.0, 0.0], [0.0, 100.0]])
    separation = pair_separation(spectra)
    # a = 1/2: mu = (50, 50); information = 100^2/50 * 2 = 400 -> 20 sd between pure pixels
    assert np.isclose(separation[0, 1], 20.0) and np.isinf(separation[0, 0])
    assert np.allclose(separation, separation.T)


def test_twins_form_one_group_and_distinct_phases_their_own():
    twin = SUPPORT * np.array([1.0, 1.02, 1.0, 1.0, 1.0])
    groups = distinct_groups(pair_separation(np.stack([SUPPORT, twin, PARTICLE])))
    assert groups[0] == groups[1] != groups[2]


def test_the_rim_of_bright_particles_goes_to_the_support_that_has_the_larger_share():
    rng = np.random.default_rng(1)
    share = _particles()
    expected = share[..., None] * PARTICLE + (1.0 - share[..., None]) * SUPPORT
    cube = rng.poisson(expected).astype(np.uint16)
    truth = np.where(share > 0.5, 2, 1)
    # labels by the share of *counts*, as normalised features see a pixel: particles grow
    counts_share = share * PARTICLE.sum() / (expected.sum(axis=-1))
    biased = np.where(counts_share > 0.5, 2, 1).astype(np.int32)
    assert (biased != truth).sum() > 30
    spectra = phase_sum_spectra(cube, biased, 2)
    pixels = np.bincount(biased.reshape(-1), minlength=3)[1:]
    fractions = run_to_completion(phase_fractions(cube, spectra, pixels, device="cpu"))
    fixed = majority_labels(biased, fractions, spectra / pixels[:, None])
    assert (fixed != truth).sum() < 0.4 * (biased != truth).sum()
    assert fixed.dtype == np.int32 and set(np.unique(fixed)) == {1, 2}


def test_phases_one_pixel_cannot_tell_apart_keep_their_labels():
    rng = np.random.default_rng(2)
    twin = SUPPORT * np.array([1.0, 1.05, 1.0, 1.0, 1.0])
    labels = np.ones((32, 32), dtype=np.int32)
    labels[:, 16:] = 2  # grain-wise decision: left one twin, right the other
    labels[0, 0] = 0  # unassigned stays unassigned
    expected = np.where((labels == 2)[..., None], twin, SUPPORT)
    cube = rng.poisson(expected)
    spectra = phase_sum_spectra(cube, labels, 2)
    pixels = np.bincount(labels.reshape(-1), minlength=3)[1:]
    fractions = run_to_completion(phase_fractions(cube, spectra, pixels, device="cpu"))
    assert (fractions.argmax(-1) + 1 != labels)[labels > 0].mean() > 0.1  # noisy per pixel
    assert np.array_equal(majority_labels(labels, fractions, spectra / pixels[:, None]), labels)


def test_moved_spectra_update_the_sums_by_the_moved_pixels_only():
    rng = np.random.default_rng(3)
    cube = rng.poisson(5.0, (12, 10, 7)).astype(np.uint16)
    before = rng.integers(0, 4, (12, 10))
    after = before.copy()
    after[3:6, 2:8] = rng.integers(0, 4, (3, 6))
    change = moved_spectra(cube, before, after, 3, chunk_pixels=5)
    expected = phase_sum_spectra(cube, after, 3) - phase_sum_spectra(cube, before, 3)
    assert np.allclose(change, expected)
    flat = cube.reshape(-1, 7).astype(np.float32)  # (N, E) counts, as resident on a device
    assert np.allclose(moved_spectra(flat, before, after, 3), expected)


def test_moved_spectra_on_threads_add_in_the_order_of_one_thread(threaded_map_calls):
    """The chunks are read and summed on every core (threaded_map) and their sums added in
    the one-thread loop's order: the same bits, even for counts whose float sums depend on
    the order (non-integer float32 counts)."""
    from napari_sigma.compute.blocks import worker_threads

    rng = np.random.default_rng(5)
    cube = (rng.random((30, 20, 9)) * 1e3).astype(np.float32)  # sums depend on their order
    before = rng.integers(0, 5, (30, 20))
    after = np.where(rng.random((30, 20)) < 0.6, rng.integers(0, 5, (30, 20)), before)
    moved = np.flatnonzero(before.reshape(-1) != after.reshape(-1))
    expected = np.zeros((4, 9))  # the one-thread loop, written out
    for start in range(0, len(moved), 7):
        index = moved[start : start + 7]
        spectra = cube.reshape(-1, 9)[index].astype(np.float64)
        for labels, sign in ((before.reshape(-1)[index], -1.0), (after.reshape(-1)[index], 1.0)):
            for label in np.unique(labels[(labels >= 1) & (labels <= 4)]).tolist():
                expected[label - 1] += sign * spectra[labels == label].sum(axis=0)
    for threads in (1, 2):
        with worker_threads(threads):
            assert np.array_equal(moved_spectra(cube, before, after, 4, chunk_pixels=7), expected)
    assert threaded_map_calls == [None, None]


def _majority_whole_map(labels, fractions, mean_spectra, sigma):
    """majority_labels' per-pixel steps over the whole map at once (before the bands)."""
    from napari_sigma.phases import boundaries as b
    from napari_sigma.phases._filters import gaussian_blur

    n_phases = fractions.shape[-1]
    separation = b.pair_separation(mean_spectra, None)
    groups = b.distinct_groups(separation, b.MIN_SEPARATION)
    widest = gaussian_blur(fractions, sigma)
    own = np.clip(labels - 1, 0, n_phases - 1)
    outside = groups[None, None, :] != groups[own][..., None]
    rival = np.where(outside, widest, -1.0).argmax(axis=-1)
    wanted = np.minimum(b.BLUR_SEPARATION / np.maximum(separation[own, rival], 1e-12), sigma)
    steps = np.round(wanted / b._SIGMA_STEPS).astype(int)
    shares = np.where((steps == 0)[..., None], fractions, widest)
    for step in np.unique(steps):
        width = step * b._SIGMA_STEPS
        if 0 < step and width < sigma:
            chosen = steps == step
            shares[chosen] = gaussian_blur(fractions, width, where=chosen)[chosen]
    member = np.eye(int(groups.max()) + 1, dtype=np.float32)[groups]
    best = (shares @ member).argmax(axis=-1)
    within = np.where(groups[None, None, :] == best[..., None], shares, -1.0).argmax(axis=-1)
    assigned = (labels >= 1) & (labels <= n_phases)
    keep = groups[np.clip(labels - 1, 0, n_phases - 1)] == best
    return np.where(assigned & ~keep, within + 1, labels).astype(np.int32)


def test_majority_in_bands_on_threads_is_the_whole_map_decision(monkeypatch):
    """The per-pixel steps of the majority decision run in bands of rows on every core: the
    labels of the whole-map computation, several bands and a short last one."""
    from napari_sigma.compute.blocks import worker_threads
    from napari_sigma.phases import boundaries

    monkeypatch.setattr(boundaries, "BAND_ROWS", 6)
    rng = np.random.default_rng(11)
    labels = np.repeat(np.repeat(rng.integers(0, 5, (8, 6)), 5, 0), 6, 1)[:37]  # grains
    fractions = rng.dirichlet(np.full(4, 0.3), size=labels.shape).astype(np.float32)
    spectra = rng.random((4, 30)) * 20.0
    spectra[3] = spectra[2] * 1.02  # two phases one pixel cannot tell apart: a group
    for sigma in (0.6, 2.0):
        expected = _majority_whole_map(labels, fractions, spectra, sigma)
        assert (expected != labels).any()  # the decision moves pixels here
        for threads in (1, 2):
            with worker_threads(threads):
                got = majority_labels(labels, fractions, spectra, sigma=sigma)
            assert np.array_equal(got, expected)


def _moved_spectra_in_float64(cube, before, after, n_phases, chunk):
    """moved_spectra's one-thread loop as it was: each chunk's pixels as float64, summed per
    phase in float64."""
    n_channels = cube.shape[-1]
    before, after = before.reshape(-1), after.reshape(-1)
    moved = np.flatnonzero(before != after)
    expected = np.zeros((n_phases, n_channels))
    for start in range(0, len(moved), chunk):
        index = moved[start : start + chunk]
        spectra = cube.reshape(-1, n_channels)[index].astype(np.float64)
        for labels, sign in ((before[index], -1.0), (after[index], 1.0)):
            for label in np.unique(labels[(labels >= 1) & (labels <= n_phases)]).tolist():
                expected[label - 1] += sign * spectra[labels == label].sum(axis=0)
    return expected


@pytest.mark.parametrize("dtype", [np.uint16, np.uint32, np.int32, np.uint8])
def test_moved_spectra_of_integer_counts_are_the_float64_sums_bit_for_bit(dtype):
    """Integer counts are summed as integers in a reused buffer: the same numbers, bit for bit
    (signed zeros included), as their float64 copies summed, on one thread or several, for a
    C-ordered cube and for a view that is not (read the float64 way)."""
    from napari_sigma.compute.blocks import worker_threads

    rng = np.random.default_rng(11)
    cube = rng.poisson(4.0, (23, 17, 13)).astype(dtype)
    cube[:, :, 5] = 0  # a channel without counts: its sums are signed zeros
    before = rng.integers(0, 5, (23, 17))
    after = np.where(rng.random((23, 17)) < 0.5, rng.integers(0, 5, (23, 17)), before)
    for counts in (cube, cube[:, :, ::-1]):
        expected = _moved_spectra_in_float64(counts, before, after, 4, 7)
        for threads in (1, 2):
            with worker_threads(threads):
                change = moved_spectra(counts, before, after, 4, chunk_pixels=7)
            assert change.dtype == np.float64
            assert change.tobytes() == expected.tobytes()


def test_moved_spectra_of_integer_counts_make_no_float64_copy():
    """The moved pixels of integer counts are not copied to float64 (a fresh copy per chunk was
    most of the time of the 1024^2 run's boundary updates: new memory faulted in each time)."""
    import tracemalloc

    from napari_sigma.compute.blocks import worker_threads

    rng = np.random.default_rng(0)
    cube = rng.poisson(3.0, (64, 64, 512)).astype(np.uint16)
    before = rng.integers(1, 4, (64, 64))
    after = before.copy()
    after[:, ::2] = before[:, ::2] % 3 + 1
    n_moved = int((before != after).sum())
    with worker_threads(1):
        moved_spectra(cube, before, after, 3)  # imports and first calls outside the trace
        tracemalloc.start()
        try:
            change = moved_spectra(cube, before, after, 3)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert np.array_equal(change, _moved_spectra_in_float64(cube, before, after, 3, 4096))
    assert peak < n_moved * 512 * 8  # the float64 copy of the moved pixels (old: 1.35 of it)
