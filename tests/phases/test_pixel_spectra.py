"""Sum and mean spectra of pixel sets (phases, masks, neighbourhoods) against naive loops."""

from __future__ import annotations

import numpy as np

from napari_sigma.compute.progress import run_to_completion
from napari_sigma.phases import spectra
from napari_sigma.phases.spectra import phase_mean_spectra, phase_sum_spectra


def test_phase_sum_spectra_equals_a_naive_loop(monkeypatch):
    rng = np.random.default_rng(0)
    counts = rng.integers(0, 60000, size=(13, 7, 20), dtype=np.uint16)
    labels = rng.integers(0, 4, size=(13, 7))
    expected = np.zeros((3, 20))
    for (row, col), label in np.ndenumerate(labels):
        if label:
            expected[label - 1] += counts[row, col]
    monkeypatch.setattr(spectra, "SUM_CHUNK_VALUES", 50)
    np.testing.assert_array_equal(phase_sum_spectra(counts, labels, 3), expected)
    flat = phase_sum_spectra(counts.reshape(-1, 20), labels.reshape(-1), 3)
    np.testing.assert_array_equal(flat, expected)


def test_phase_sums_of_full_range_uint16_counts_are_exact(monkeypatch):
    """float32 sub-block sums: 256 pixels of 65535 counts stay below 2**24."""
    rng = np.random.default_rng(7)
    counts = rng.integers(65000, 65536, size=(40, 30, 6), dtype=np.uint16)
    labels = np.where(rng.uniform(size=(40, 30)) < 0.8, 1, 2)
    expected = np.stack([counts[labels == k].astype(np.int64).sum(0) for k in (1, 2)]).astype(
        np.float64
    )
    assert expected.max() > 2**24  # the totals themselves are not float32-exact
    np.testing.assert_array_equal(phase_sum_spectra(counts, labels, 2), expected)
    monkeypatch.setattr(spectra, "CAST_PIXELS", 7)
    np.testing.assert_array_equal(phase_sum_spectra(counts, labels, 2), expected)


def test_phase_sums_of_float_counts_keep_float64_precision():
    rng = np.random.default_rng(8)
    counts = rng.uniform(0, 1, size=(9, 11, 5)) + 1e6
    labels = rng.integers(1, 3, size=(9, 11))
    expected = np.stack([counts[labels == k].sum(0) for k in (1, 2)])
    np.testing.assert_allclose(phase_sum_spectra(counts, labels, 2), expected, rtol=1e-13)


def test_neighbourhood_mean_is_the_clipped_3x3_mean():
    counts = np.random.default_rng(0).poisson(3.0, size=(5, 6, 8))
    np.testing.assert_allclose(
        spectra.neighbourhood_mean(counts, 2, 3), counts[1:4, 2:5].mean((0, 1))
    )
    np.testing.assert_allclose(
        spectra.neighbourhood_mean(counts, 0, 0), counts[:2, :2].mean((0, 1))
    )


def test_masked_mean_matches_for_numpy_and_dask():
    import dask.array as da

    counts = np.random.default_rng(1).poisson(3.0, size=(6, 7, 5))
    mask = np.zeros((6, 7), bool)
    mask[2:4, 1:6] = True
    expected = counts[mask].mean(axis=0)
    np.testing.assert_allclose(spectra.masked_mean(counts, mask), expected)
    np.testing.assert_allclose(spectra.masked_mean(da.from_array(counts, chunks=3), mask), expected)


def test_phase_mean_spectra_are_the_naive_means_and_zero_for_an_empty_phase():
    rng = np.random.default_rng(3)
    values = rng.normal(size=(8, 9, 4)).astype(np.float32)
    labels = rng.integers(0, 3, size=(8, 9))  # phase 3 has no pixel
    means = phase_mean_spectra(values, labels, 3)
    for k in (1, 2):
        np.testing.assert_allclose(means[k - 1], values[labels == k].mean(axis=0), rtol=1e-6)
    np.testing.assert_array_equal(means[2], 0.0)


def test_phase_sums_of_several_label_images_in_one_pass_equal_separate_sums(monkeypatch):
    monkeypatch.setattr(spectra, "SUM_CHUNK_VALUES", 7 * 20)  # several blocks and sub-blocks
    monkeypatch.setattr(spectra, "CAST_PIXELS", 4)
    rng = np.random.default_rng(3)
    counts = rng.integers(0, 65536, size=(9, 7, 20), dtype=np.uint16)
    labels = rng.integers(0, 4, size=(9, 7))
    cores = np.where(rng.random((9, 7)) < 0.5, labels, 0)
    cores[:4] = 0  # a whole block without a labelled pixel in one of the images
    sums = run_to_completion(spectra.phase_sums_steps(counts, [labels, cores], 3))
    assert len(sums) == 2
    for summed, image in zip(sums, (labels, cores), strict=True):
        np.testing.assert_array_equal(summed, phase_sum_spectra(counts, image, 3))


def test_phase_sums_of_labels_in_runs_are_summed_run_by_run_and_exact(monkeypatch):
    """Grains give runs of equal labels along the rows: summed run by run (exact integers),
    a fragmented block by the one-hot product; both give the naive sums."""
    rng = np.random.default_rng(11)
    labels = np.repeat(np.repeat(rng.integers(0, 4, size=(6, 3)), 4, axis=0), 10, axis=1)
    labels[:4] = rng.integers(0, 4, size=(4, 30))  # a fragmented first block
    runs = []
    monkeypatch.setattr(spectra, "SUM_CHUNK_VALUES", 4 * 30 * 5)  # blocks of four rows
    real = spectra._add_label_runs
    monkeypatch.setattr(spectra, "_add_label_runs", lambda *a: runs.append(real(*a)) or runs[-1])
    for dtype, high in ((np.uint16, 65536), (np.uint32, 2**31), (np.int16, 30000)):
        counts = rng.integers(high - 2000, high, size=(24, 30, 5)).astype(dtype)
        expected = np.stack(
            [counts[labels == k].astype(np.int64).sum(0) for k in (1, 2, 3)]
        ).astype(np.float64)
        cores = np.where(labels == 2, 2, 0)
        sums = run_to_completion(spectra.phase_sums_steps(counts, [labels, cores], 3))
        np.testing.assert_array_equal(sums[0], expected)
        np.testing.assert_array_equal(sums[1][1], expected[1])
        assert not sums[1][[0, 2]].any()
    assert runs.count(False) == 3 and runs.count(True) == 15  # first block of each dtype


def test_phase_sums_of_a_lazy_cube_under_a_limit_are_those_in_memory(monkeypatch):
    """A lazy cube under a memory limit is read a band of stored chunks at a time (fewer chunk
    reads than block by block); its sums are those of the numpy cube bit for bit, for integer
    counts (exact, on every core) and for float counts (added block after block: the same
    blocks in the same order)."""
    from napari_sigma.compute.chunks import memory_budget
    from sigma_testdata import lazy_cube

    rng = np.random.default_rng(12)
    monkeypatch.setattr(spectra, "SUM_CHUNK_VALUES", 2 * 9 * 30)  # blocks of 2 rows
    labels = rng.integers(0, 4, size=(31, 9))
    for data in (
        rng.poisson(3.0, (31, 9, 30)).astype(np.uint16),
        (rng.random((31, 9, 30)) * 7).astype(np.float32),
    ):
        expected = run_to_completion(spectra.phase_sums_steps(data, [labels, labels > 1], 3))
        cube, source = lazy_cube(data, 5)
        with memory_budget(10**9):
            found = run_to_completion(spectra.phase_sums_steps(cube, [labels, labels > 1], 3))
        for f, e in zip(found, expected, strict=True):
            assert f.tobytes() == e.tobytes()
        assert len(source.reads) <= 2 * 7  # 7 stored chunks (block by block: 19 reads)


def _naive_sums(counts, labels, n_phases):
    flat, values = labels.reshape(-1).astype(np.int64), counts.reshape(len(labels.reshape(-1)), -1)
    return np.stack(
        [values[flat == k].astype(np.int64).sum(0) for k in range(1, n_phases + 1)]
    ).astype(np.float64)


def test_compiled_phase_sums_equal_the_numpy_sums_bit_for_bit(monkeypatch):
    """From ``COMPILED_SUM_PIXELS`` pixels, integer counts of the kernel's types are summed by
    the compiled kernel, each pixel read once for both label images: the sums of the run sums
    and of the one-hot products (exact integers), for labels in runs, fragmented labels, labels
    out of 1..K and a mask; a 16-bit block larger than ``UINT32_PIXELS`` and other count types
    go to numpy."""
    from napari_sigma.phases import _label_sums

    calls = []
    real = _label_sums.add_label_sums

    def counted(block, *rest):
        calls.append(block.dtype)
        return real(block, *rest)

    monkeypatch.setattr(_label_sums, "add_label_sums", counted)
    monkeypatch.setattr(spectra, "SUM_CHUNK_VALUES", 4 * 30 * 6)  # blocks of four rows
    rng = np.random.default_rng(21)
    runs = np.repeat(np.repeat(rng.integers(0, 5, size=(6, 3)), 4, axis=0), 10, axis=1)
    fragmented = rng.integers(-1, 6, size=(24, 30))  # 0, -1 and 5 are out of 1..4
    for labels in (runs, fragmented):
        images = [labels, np.where(rng.random((24, 30)) < 0.6, labels, 0), labels > 2]
        for dtype, high in ((np.uint8, 256), (np.uint16, 65536), (np.uint32, 2**32)):
            counts = rng.integers(0, high, size=(24, 30, 6), dtype=np.uint64).astype(dtype)
            monkeypatch.setattr(spectra, "COMPILED_SUM_PIXELS", 1 << 40)
            numpy_sums = run_to_completion(spectra.phase_sums_steps(counts, images, 4))
            monkeypatch.setattr(spectra, "COMPILED_SUM_PIXELS", 24 * 30)
            del calls[:]
            compiled = run_to_completion(spectra.phase_sums_steps(counts, images, 4))
            assert calls == [np.dtype(dtype)] * 6  # every block by the kernel
            for image, found, expected in zip(images, compiled, numpy_sums, strict=True):
                assert found.tobytes() == expected.tobytes()
                np.testing.assert_array_equal(found, _naive_sums(counts, image, 4))
    del calls[:]
    monkeypatch.setattr(spectra, "UINT32_PIXELS", 119)  # blocks of 120 pixels: numpy's
    counts = rng.integers(65000, 65536, size=(24, 30, 6)).astype(np.uint16)
    wide = run_to_completion(spectra.phase_sums_steps(counts, [fragmented], 4))[0]
    np.testing.assert_array_equal(wide, _naive_sums(counts, fragmented, 4))
    signed = run_to_completion(spectra.phase_sums_steps(counts.astype(np.int16) // 4, [runs], 4))
    np.testing.assert_array_equal(signed[0], _naive_sums(counts.astype(np.int16) // 4, runs, 4))
    assert calls == []
    # a lazy cube under a memory limit (the CLI's --memory-limit): its bands' blocks too
    from napari_sigma.compute.chunks import memory_budget
    from sigma_testdata import lazy_cube

    monkeypatch.setattr(spectra, "UINT32_PIXELS", 1 << 16)
    cube, _ = lazy_cube(counts, 5)
    with memory_budget(10**9):
        lazy = run_to_completion(spectra.phase_sums_steps(cube, [fragmented, runs], 4))
    assert calls == [np.dtype(np.uint16)] * 6
    for found, image in zip(lazy, (fragmented, runs), strict=True):
        np.testing.assert_array_equal(found, _naive_sums(counts, image, 4))


def test_phase_sums_wait_for_the_kernel_s_load_or_sum_with_numpy_meanwhile(monkeypatch):
    """While the CLI's thread loads numba (``start_compiled_warm_up``) the pass waits until it
    has loaded the kernel, then sums every block with it; while napari's warm-up child
    compiles, blocks are summed by numpy and the kernel is taken once the child is done. The
    sums are the same whichever path summed which block."""
    import threading
    import time

    from napari_sigma.compute import _jit
    from napari_sigma.phases import _label_sums
    from napari_sigma.unmixing import abundances

    calls = []
    real = _label_sums.add_label_sums
    monkeypatch.setattr(_label_sums, "add_label_sums", lambda *a: calls.append(1) or real(*a))
    monkeypatch.setattr(spectra, "SUM_CHUNK_VALUES", 2 * 30 * 6)  # 12 blocks of two rows
    monkeypatch.setattr(spectra, "COMPILED_SUM_PIXELS", 1)
    rng = np.random.default_rng(22)
    counts = rng.integers(0, 65536, size=(24, 30, 6)).astype(np.uint16)
    labels = rng.integers(0, 4, size=(24, 30))
    cores = np.where(rng.random((24, 30)) < 0.5, labels, 0)
    expected = [_naive_sums(counts, labels, 3), _naive_sums(counts, cores, 3)]
    # the CLI's thread: still loading for 0.3 s
    loaded = threading.Event()
    loader = threading.Thread(target=lambda: time.sleep(0.3) or loaded.set())
    monkeypatch.setattr(abundances, "_SUMS_KERNEL_LOADED", loaded)
    monkeypatch.setattr(abundances, "_WARM_UPS", [loader])
    loader.start()
    start = time.perf_counter()
    sums = run_to_completion(spectra.phase_sums_steps(counts, [labels, cores], 3))
    assert time.perf_counter() - start >= 0.25 and loaded.is_set()
    assert len(calls) == 12  # every block by the kernel
    for found, wanted in zip(sums, expected, strict=True):
        np.testing.assert_array_equal(found, wanted)
    loader.join()
    # napari's child: compiling during the first look and the first 6 blocks
    answers = iter([True] * 7)
    monkeypatch.setattr(_jit, "warm_up_running", lambda: next(answers, False))
    del calls[:]
    sums = run_to_completion(spectra.phase_sums_steps(counts, [labels, cores], 3))
    assert len(calls) == 6  # the last 6 blocks
    for found, wanted in zip(sums, expected, strict=True):
        np.testing.assert_array_equal(found, wanted)
