"""The torch neighbourhood sums of phase finding equal the scipy.ndimage filters they replaced."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import uniform_filter

from napari_sigma.phases._filters import box_sum, dilated, neighbour_counts
from napari_sigma.phases.finding import _potts_icm, local_variance
from napari_sigma.phases.splitting import _interior, _windowed_mean


@pytest.mark.parametrize("shape", [(1, 4, 2), (2, 2, 1), (7, 5, 3), (30, 41, 2)])
@pytest.mark.parametrize("radius", [1, 2, 6])
@pytest.mark.parametrize("mode", ["nearest", "constant"])
def test_box_sum_is_the_uniform_filter_times_the_window(shape, radius, mode):
    values = np.random.default_rng(1).integers(0, 5, shape).astype(np.float64)
    window = 2 * radius + 1
    expected = uniform_filter(values, (window, window, 1), mode=mode) * window**2
    got = box_sum(torch.from_numpy(values), radius, mode).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-9)


def test_local_variance_in_bands_is_the_whole_map_variance_and_leaves_the_input():
    maps = np.random.default_rng(2).random((37, 23, 4))
    before = maps.copy()
    mean = uniform_filter(maps, (3, 3, 1), mode="nearest")
    square = uniform_filter(maps * maps, (3, 3, 1), mode="nearest")
    expected = np.clip(square - mean * mean, 0.0, None).sum(axis=-1)
    for band in (1, 5, 64):
        np.testing.assert_allclose(local_variance(maps, band=band), expected, atol=1e-12)
    np.testing.assert_array_equal(maps, before)


def _icm_reference(log_likelihood, weight, iterations):
    """The former scipy implementation (full sweeps, float32 uniform filter)."""
    n_phases = log_likelihood.shape[-1]
    labels = log_likelihood.argmax(axis=-1)
    score = log_likelihood
    for _ in range(iterations if weight > 0 else 0):
        onehot = np.eye(n_phases, dtype=np.float32)[labels]
        neighbours = uniform_filter(onehot, (3, 3, 1), mode="nearest") * 9.0 - onehot
        score = log_likelihood + weight * neighbours
        new = score.argmax(axis=-1)
        if np.array_equal(new, labels):
            break
        labels = new
    score = score - score.max(axis=-1, keepdims=True)
    probabilities = np.exp(score)
    probabilities /= probabilities.sum(axis=-1, keepdims=True)
    return labels.reshape(-1), probabilities.reshape(-1, n_phases)


@pytest.mark.parametrize("iterations", [0, 1, 2, 5, 20])
def test_icm_rescoring_only_changed_neighbourhoods_gives_full_sweeps(iterations):
    rng = np.random.default_rng(3)
    truth = (np.arange(48)[:, None] // 12 + np.arange(40)[None, :] // 10) % 4
    log_likelihood = -4.0 * (np.arange(4) != truth[..., None]) + rng.normal(0, 2.5, (48, 40, 4))
    labels, probabilities = _potts_icm(log_likelihood, 1.0, iterations)
    expected_labels, expected_probabilities = _icm_reference(log_likelihood, 1.0, iterations)
    np.testing.assert_array_equal(labels, expected_labels)
    np.testing.assert_allclose(probabilities, expected_probabilities, atol=1e-12)


def test_neighbour_counts_at_pixels_are_the_whole_map_counts():
    labels = torch.as_tensor(np.random.default_rng(4).integers(0, 3, (9, 11)))
    whole = neighbour_counts(labels, 3, torch.float64)
    assert whole.sum(dim=-1).eq(8).all()
    at = torch.nonzero(dilated(labels == 2), as_tuple=True)
    np.testing.assert_array_equal(neighbour_counts(labels, 3, torch.float64, at), whole[at])


def test_interior_and_windowed_mean_match_the_scipy_filters():
    from scipy.ndimage import binary_erosion

    rng = np.random.default_rng(5)
    region = np.zeros((40, 50), dtype=bool)
    region[3:30, 5:45] = True
    region[10:14, 20:22] = False
    padded = np.pad(region, 2, mode="edge")
    expected = binary_erosion(padded, np.ones((3, 3), dtype=bool), iterations=2)[2:-2, 2:-2]
    np.testing.assert_array_equal(_interior(region, 2), expected)
    features = rng.random((40, 50, 3))
    mask = expected & (rng.random((40, 50)) < 0.5)
    size = (13, 13)
    count = uniform_filter(mask.astype(np.float64), size, mode="constant") * 169
    sums = np.stack(
        [uniform_filter(features[..., i] * mask, size, mode="constant") * 169 for i in range(3)],
        axis=-1,
    )
    means, counts = _windowed_mean(features, mask, 6, expected)
    np.testing.assert_allclose(counts, np.rint(count[expected]))
    np.testing.assert_allclose(means, (sums / np.maximum(count, 1e-9)[..., None])[expected])


@pytest.mark.parametrize("shape", [(1, 3, 2), (9, 4, 3), (40, 7, 2)])
@pytest.mark.parametrize("sigma", [0.25, 1.0, 3.0])
@pytest.mark.parametrize("band", [1, 3, 32])
def test_gaussian_blur_in_bands_is_the_scipy_gaussian_filter(shape, sigma, band):
    from scipy.ndimage import gaussian_filter

    from napari_sigma.phases._filters import gaussian_blur

    maps = np.random.default_rng(6).random(shape).astype(np.float32)
    expected = gaussian_filter(maps, (sigma, sigma, 0), mode="nearest")
    np.testing.assert_allclose(gaussian_blur(maps, sigma, band=band), expected, atol=1e-6)


@pytest.mark.parametrize("sigma", [0.5, 1.0, 2.5])
@pytest.mark.parametrize("band", [1, 5, 32])
def test_gaussian_blur_of_chosen_pixels_and_on_any_number_of_threads_has_the_same_bits(sigma, band):
    from napari_sigma.compute.blocks import worker_threads
    from napari_sigma.phases._filters import gaussian_blur

    rng = np.random.default_rng(7)
    maps = rng.random((70, 53, 3)).astype(np.float32)
    with worker_threads(1):
        whole = gaussian_blur(maps, sigma, band=band)
    with worker_threads(2):
        assert np.array_equal(gaussian_blur(maps, sigma, band=band), whole)
    # scattered pixels, a lone pixel by the edges, a block in the middle, none at all
    chosen = [rng.random((70, 53)) < 0.02, np.zeros((70, 53), bool), np.zeros((70, 53), bool)]
    chosen[1][0, 52] = chosen[1][69, 0] = True
    chosen[2][30:41, 20:25] = True
    for where in (*chosen, np.zeros((70, 53), bool)):
        for workers in (1, 2):
            with worker_threads(workers):
                part = gaussian_blur(maps, sigma, band=band, where=where)
            assert np.array_equal(part[where], whole[where])
            assert not part[~where & ~_band_columns(where, band)].any()


def _band_columns(where, band):
    """The pixels a blur ``where`` may also fill: each band's rows between its first and last
    wanted column."""
    covered = np.zeros_like(where)
    for top in range(0, where.shape[0], band):
        columns = np.flatnonzero(where[top : top + band].any(0))
        if len(columns):
            covered[top : top + band, columns[0] : columns[-1] + 1] = True
    return covered


def test_neighbour_counts_of_a_band_of_rows_are_those_rows_of_the_whole_map():
    from napari_sigma.phases._filters import padded

    labels = torch.as_tensor(np.random.default_rng(6).integers(0, 4, (13, 8)))
    whole = neighbour_counts(labels, 4, torch.float64)
    grown = padded(labels, 1, "nearest")
    for rows in (slice(0, 5), slice(5, 10), slice(10, 64), slice(0, 13)):
        band = neighbour_counts(labels, 4, torch.float64, rows=rows, grown=grown)
        assert torch.equal(band, whole[rows])
        assert torch.equal(neighbour_counts(labels, 4, torch.float64, rows=rows), whole[rows])


def _serial_icm(log_likelihood, weight, iterations):
    """The spatial prior's sweeps on one thread, whole map at once (as before the bands), in
    numpy as on the CPU."""
    n_phases = log_likelihood.shape[-1]
    likelihood = np.asarray(log_likelihood, np.float64)
    labels = likelihood.argmax(axis=-1)
    score, near = likelihood, None
    for _ in range(iterations if weight > 0 else 0):
        if near is None:
            score = neighbour_counts(labels, n_phases, np.float64) * weight + likelihood
            new = score.argmax(axis=-1)
        else:
            at = np.nonzero(near)
            local = neighbour_counts(labels, n_phases, np.float64, at) * weight
            local = local + likelihood[at]
            score[at] = local
            new = labels.copy()
            new[at] = local.argmax(axis=-1)
        changed = new != labels
        if not bool(changed.any()):
            break
        labels, near = new, dilated(changed)
    shifted = np.exp(score - score.max(axis=-1, keepdims=True))
    probabilities = shifted * (1.0 / shifted.sum(axis=-1, keepdims=True))
    return labels.reshape(-1), probabilities.reshape(-1, n_phases)


@pytest.mark.parametrize("iterations", [0, 1, 5])
def test_icm_and_local_variance_in_bands_on_threads_are_the_one_thread_numbers(
    iterations, monkeypatch
):
    """The first sweep, the probabilities and the local variance run in bands of rows on
    every core (threaded_map): the bits of the whole-map computation on one thread."""
    from napari_sigma.compute import blocks
    from napari_sigma.compute.blocks import worker_threads
    from napari_sigma.phases import homogeneity, potts

    calls = []
    original = blocks.threaded_map
    for module in (homogeneity, potts):  # local_variance's and the ICM's
        monkeypatch.setattr(
            module,
            "threaded_map",
            lambda f, items, w=None: calls.append(w) or original(f, items, w),
        )
    monkeypatch.setattr(potts, "ICM_BAND_ROWS", 7)  # several bands and a short last one
    rng = np.random.default_rng(3)
    truth = (np.arange(48)[:, None] // 12 + np.arange(40)[None, :] // 10) % 4
    log_likelihood = -4.0 * (np.arange(4) != truth[..., None]) + rng.normal(0, 2.5, (48, 40, 4))
    expected = _serial_icm(log_likelihood, 1.0, iterations)
    maps = rng.random((37, 23, 4))
    variance = local_variance(maps, band=5)  # one thread at a time below
    for threads in (1, 2):
        with worker_threads(threads):
            labels, probabilities = _potts_icm(log_likelihood, 1.0, iterations)
            assert np.array_equal(local_variance(maps, band=5), variance)
        assert np.array_equal(labels, expected[0])
        assert np.array_equal(probabilities, expected[1])
    assert calls and set(calls) == {None}


@pytest.mark.parametrize("mode", ["nearest", "constant"])
def test_numpy_and_torch_neighbourhood_sums_are_the_same_bits(mode):
    """The CPU's numpy forms (box sums, padding, neighbour counts, dilation) make the same
    additions in the same order as the torch forms kept for CUDA: the same bits."""
    from napari_sigma.phases._filters import padded

    rng = np.random.default_rng(8)
    values = rng.random((23, 17, 3)) * 100.0
    for radius in (1, 2, 5):
        expected = box_sum(torch.from_numpy(values), radius, mode).numpy()
        assert np.array_equal(box_sum(values, radius, mode), expected)
        grown = padded(torch.from_numpy(values), radius, mode).numpy()
        assert np.array_equal(padded(values, radius, mode), grown)
    labels = rng.integers(0, 5, (19, 14))
    tensor = torch.as_tensor(labels)
    assert np.array_equal(
        neighbour_counts(labels, 5, np.float64), neighbour_counts(tensor, 5, torch.float64).numpy()
    )
    at = np.nonzero(labels == 3)
    at_tensor = torch.nonzero(tensor == 3, as_tuple=True)
    assert np.array_equal(
        neighbour_counts(labels, 5, np.float64, at),
        neighbour_counts(tensor, 5, torch.float64, at_tensor).numpy(),
    )
    assert np.array_equal(dilated(labels == 1), dilated(tensor == 1).numpy())


@pytest.mark.parametrize("iterations", [1, 5, 20])
def test_the_numpy_spatial_prior_is_the_torch_one(iterations):
    """The CPU's ICM (numpy) takes the torch form's labels; its probabilities differ from
    torch's softmax by the last bits of exp and the row sums at most."""
    rng = np.random.default_rng(11)
    truth = (np.arange(48)[:, None] // 12 + np.arange(40)[None, :] // 10) % 4
    log_likelihood = -4.0 * (np.arange(4) != truth[..., None]) + rng.normal(0, 2.5, (48, 40, 4))
    labels, probabilities = _potts_icm(log_likelihood, 1.0, iterations)
    likelihood = torch.as_tensor(log_likelihood)
    score, torch_labels = likelihood, likelihood.argmax(-1)
    for _ in range(iterations):
        score = neighbour_counts(torch_labels, 4, torch.float64).mul_(1.0).add_(likelihood)
        new = score.argmax(-1)
        if torch.equal(new, torch_labels):
            break
        torch_labels = new
    assert np.array_equal(labels, torch_labels.reshape(-1).numpy())
    expected = torch.softmax(score, dim=-1).reshape(-1, 4).numpy()
    np.testing.assert_allclose(probabilities, expected, rtol=1e-14, atol=1e-300)


@pytest.mark.parametrize("iterations", [0, 1, 5, 20])
def test_the_spatial_prior_of_tensors_is_torchs_step_for_step(iterations, monkeypatch):
    """One function serves numpy and torch (compute.arrays): given a tensor (a GPU's, here a
    CPU tensor) the ICM runs in torch in one band, and its labels and probabilities are those
    of full torch sweeps and ``torch.softmax`` bit for bit; given numpy, numpy's."""
    from napari_sigma.phases import potts

    seen = []
    original = potts._row_softmax
    monkeypatch.setattr(potts, "_row_softmax", lambda part: seen.append(part) or original(part))
    monkeypatch.setattr(potts, "ICM_BAND_ROWS", 7)  # several bands on the CPU
    rng = np.random.default_rng(12)
    truth = (np.arange(45)[:, None] // 9 + np.arange(38)[None, :] // 11) % 5
    log_likelihood = -3.0 * (np.arange(5) != truth[..., None]) + rng.normal(0, 2.5, (45, 38, 5))
    likelihood = torch.as_tensor(log_likelihood)
    labels, probabilities = _potts_icm(likelihood, 0.8, iterations)
    assert isinstance(labels, np.ndarray) and isinstance(probabilities, np.ndarray)
    assert len(seen) == 1 and isinstance(seen[0], torch.Tensor)  # one band, in torch
    score, expected = likelihood, likelihood.argmax(-1)
    for _ in range(iterations):
        score = neighbour_counts(expected, 5, torch.float64).mul_(0.8).add_(likelihood)
        new = score.argmax(-1)
        if torch.equal(new, expected):
            break
        expected = new
    assert np.array_equal(labels, expected.reshape(-1).numpy())
    assert np.array_equal(probabilities, torch.softmax(score, dim=-1).reshape(-1, 5).numpy())
    seen.clear()
    numpy_labels, _ = _potts_icm(log_likelihood, 0.8, iterations)
    assert np.array_equal(numpy_labels, labels)
    assert len(seen) == 7 and all(isinstance(part, np.ndarray) for part in seen)  # 45 rows / 7


def test_windowed_means_from_bands_of_the_table_are_the_whole_tables_bits():
    """The summed-area table is made a band of rows at a time (one reused band, the running
    sums carried over): the means and counts of every band size are those of the whole table
    bit for bit (signed zeros and float32 features included), and a call's traced peak stays
    below the whole table (the fresh ~90 MB per call at 1024²)."""
    import tracemalloc

    from napari_sigma.phases.splitting import WINDOW_BAND_ROWS

    rng = np.random.default_rng(9)
    for height, width, n_features, dtype in [(1, 6, 2, np.float64), (70, 45, 3, np.float32)]:
        features = rng.normal(size=(height, width, n_features)).astype(dtype)
        features[rng.random((height, width)) < 0.1] = -0.0
        mask, at = rng.random((height, width)) < 0.7, rng.random((height, width)) < 0.5
        for radius in (0, 2, 5):
            whole = _windowed_mean(features, mask, radius, at, band_rows=height + 1)
            for band_rows in (1, 3, 16, 64):
                got = _windowed_mean(features, mask, radius, at, band_rows=band_rows)
                for a, b in zip(got, whole, strict=True):
                    assert a.dtype == b.dtype and a.tobytes() == b.tobytes()
    features = rng.normal(size=(400, 300, 10))
    mask, at = rng.random((400, 300)) < 0.7, rng.random((400, 300)) < 0.02
    table_bytes = 401 * 301 * 11 * 8
    tracemalloc.start()
    _windowed_mean(features, mask, 3, at)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert WINDOW_BAND_ROWS < 400 and peak < 0.5 * table_bytes
