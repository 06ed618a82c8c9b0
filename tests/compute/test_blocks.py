"""Pixel blocks produced ahead in a thread (`prefetched`) and the pipeline's thread limits."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from napari_sigma.compute.blocks import prefetched
from napari_sigma.compute.chunks import block_pixels, memory_budget
from napari_sigma.compute.device import torch_threads
from sigma_testdata import lazy_cube


def test_prefetched_gives_every_item_in_order_made_in_another_thread():
    made_in = []

    def items():
        for i in range(50):
            made_in.append(threading.get_ident())
            yield i * i

    assert list(prefetched(items(), depth=2)) == [i * i for i in range(50)]
    assert set(made_in) and threading.get_ident() not in made_in


def test_prefetched_raises_the_producers_error_after_its_items():
    def items():
        yield 1
        yield 2
        raise ValueError("bad block")

    got = []
    with pytest.raises(ValueError, match="bad block"):
        for item in prefetched(items()):
            got.append(item)
    assert got == [1, 2]


def test_closing_a_prefetched_pass_stops_its_thread():
    made = []

    def items():
        for i in range(10_000):
            made.append(i)
            time.sleep(0.001)
            yield i

    stream = prefetched(items())
    assert next(stream) == 0
    stream.close()  # a cancelled computation
    stopped_at = len(made)
    time.sleep(0.05)
    assert len(made) == stopped_at < 10  # nothing more is made
    assert not any(t.name == "napari-sigma prefetch" for t in threading.enumerate())


def test_prefetched_items_see_the_callers_memory_budget():
    def items():
        yield block_pixels(65536, 1000.0)

    with memory_budget(4_000_000):
        (inside,) = list(prefetched(items()))
    assert inside == 1000  # a quarter of the budget over 1000 bytes per pixel
    assert list(prefetched(items())) == [65536]


def test_pipeline_threads_bound_torch_and_keep_blas_on_one_thread_then_are_restored():
    torch = pytest.importorskip("torch")
    from threadpoolctl import threadpool_info

    def blas_threads():
        return {info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"}

    np.ones((4, 4)) @ np.ones((4, 4))  # BLAS loaded
    before, torch_before = blas_threads(), torch.get_num_threads()
    with torch_threads("cpu", 1):
        assert blas_threads() == {1} and torch.get_num_threads() == 1
    with torch_threads("cpu", 2):  # BLAS on one thread whatever torch's (same rounding)
        assert blas_threads() == {1} and torch.get_num_threads() == 2
    assert blas_threads() == before and torch.get_num_threads() == torch_before
    with torch_threads("cpu", None):  # None: both left alone
        assert blas_threads() == before


def test_threaded_map_keeps_the_order_and_reads_items_lazily():
    from napari_sigma.compute.blocks import threaded_map

    taken = []

    def items():
        for i in range(40):
            taken.append(i)
            yield i

    results = threaded_map(lambda i: (i, threading.get_ident()), items(), workers=2)
    first = next(results)
    assert first[0] == 0 and len(taken) <= 3  # not read ahead of the workers
    rest = list(results)
    assert [i for i, _ in [first, *rest]] == list(range(40))
    assert list(threaded_map(lambda i: i + 1, range(5), workers=1)) == [1, 2, 3, 4, 5]


def test_integer_phase_sums_on_every_core_equal_the_one_by_one_sums():
    from napari_sigma.compute.progress import run_to_completion
    from napari_sigma.phases.spectra import phase_sums_steps

    rng = np.random.default_rng(0)
    counts = rng.poisson(0.3, (100, 100, 1000)).astype(np.uint16)  # 3 blocks of rows
    runs = np.repeat(rng.integers(0, 4, (100, 5)), 20, axis=1)  # summed run by run
    noisy = rng.integers(0, 4, (100, 100))  # fragmented: summed by one-hot products
    for labels in (runs, noisy):
        (got,) = run_to_completion(phase_sums_steps(counts, [labels], 3))
        expected = np.stack([counts[labels == k].sum(0, dtype=np.int64) for k in (1, 2, 3)])
        np.testing.assert_array_equal(got, expected.astype(np.float64))


def test_worker_threads_bound_the_passes_threads():
    from napari_sigma.compute.blocks import threaded_map, usable_cores, worker_threads

    cores = usable_cores()
    with worker_threads(1):
        assert usable_cores() == 1
        made_in = set(threaded_map(lambda i: threading.get_ident(), range(20)))
        assert made_in == {threading.get_ident()}  # one worker: the caller's own thread
    assert usable_cores() == cores


def test_projection_casts_into_a_reused_buffer_with_the_products_of_fresh_casts():
    from napari_sigma.compute import blocks

    rng = np.random.default_rng(3)
    weights = rng.random((300, 5)).astype(np.float32)
    step = blocks.cast_pixels(300)
    for dtype in (np.uint16, np.uint8, np.float64):
        pixels = (rng.poisson(2.0, (2 * step + 7, 300)) * 1.25).astype(dtype)

        def fresh_casts(part):  # each sub-block cast anew (BLAS may round a 3-row product
            # differently from the same rows inside a larger one, so compare like with like)
            blocks_ = [
                part[i : i + step].astype(np.float32) @ weights for i in range(0, len(part), step)
            ]
            return np.concatenate(blocks_) if blocks_ else np.empty((0, 5), np.float32)

        # a larger call first, then a smaller one, then threads of their own: same products
        for part in (pixels, pixels[: step + 3], pixels[:0]):
            assert np.array_equal(blocks.project_pixels(part, weights), fresh_casts(part))
        parts = [pixels[:step], pixels[step:]]  # the same sub-blocks, in two threads
        runs = list(blocks.threaded_map(lambda p: blocks.project_pixels(p, weights), parts, 2))
        assert np.array_equal(np.concatenate(runs), fresh_casts(pixels))
    assert blocks.cast_buffer(4, 300).shape == (4, 300)


def test_row_chunks_give_the_pixels_of_a_band_reading_each_chunk_once(joins):
    from napari_sigma.compute.blocks import RowChunks

    rng = np.random.default_rng(0)
    data = rng.poisson(3.0, (23, 6, 11)).astype(np.uint16)
    channels = rng.random(11) < 0.5
    cube, source = lazy_cube(data, 5)
    reader = RowChunks(cube, channels)
    for low, high in ((0, 7), (7, 15), (15, 23)):  # bands across chunk edges, top to bottom
        mask = rng.random((high - low, 6)) < 0.6
        assert np.array_equal(reader.pixels(low, high, mask), data[low:high, :, channels][mask])
    assert sorted(set(source.reads)) == [(0, 5), (5, 10), (10, 15), (15, 20), (20, 23)]
    assert len(source.reads) == 5  # each chunk once: the chunk a band ends in is kept
    assert max(joins, default=1) == 1  # no band assembled from several chunks
    rows = np.sort(rng.integers(0, 23, 40))
    cols = rng.integers(0, 6, 40)
    points = RowChunks(cube).points(rows, cols)
    assert np.array_equal(points, data[rows, cols])
    masks = [rng.random((9, 6)) < 0.5 for _ in range(2)]
    expected = [data[3:12][mask].sum(axis=0, dtype=np.float64) for mask in masks]
    assert np.array_equal(RowChunks(cube).sums(3, 12, masks), expected)
    numpy_reader = RowChunks(data, channels)  # numpy: sliced as it is
    mask = rng.random((4, 6)) < 0.5
    assert np.array_equal(numpy_reader.pixels(2, 6, mask), data[2:6, :, channels][mask])
    assert np.array_equal(RowChunks(data).points(rows, cols), data[rows, cols])


def test_row_chunks_read_only_the_chunks_that_hold_the_points():
    from napari_sigma.compute.blocks import RowChunks

    data = np.arange(20 * 3 * 2, dtype=np.uint16).reshape(20, 3, 2)
    cube, source = lazy_cube(data, 4)
    rows, cols = np.array([1, 2, 17]), np.array([0, 2, 1])
    assert np.array_equal(RowChunks(cube).points(rows, cols), data[rows, cols])
    assert source.reads == [(0, 4), (16, 20)]
    assert RowChunks(cube).points(np.zeros(0, int), np.zeros(0, int)).shape == (0, 2)


def test_row_chunks_of_an_event_cube_fill_the_pixels_from_its_events():
    """A JEOL cube (events) is not made dense: the same pixels, sums and points as numpy."""
    from napari_sigma.compute.blocks import RowChunks
    from napari_sigma.io.readers.events import EventCube

    rng = np.random.default_rng(2)
    data = (rng.random((21, 7, 30)) < 0.05).astype(np.uint16) * rng.integers(1, 9, (21, 7, 30))
    cube = EventCube(np.nonzero(data), data[np.nonzero(data)], shape=data.shape).to_dask()
    channels = rng.random(30) < 0.4
    reader = RowChunks(cube, channels)
    assert reader.events is not None
    mask = rng.random((8, 7)) < 0.6
    assert np.array_equal(reader.pixels(4, 12, mask), data[4:12, :, channels][mask])
    masks = [rng.random((8, 7)) < 0.5 for _ in range(2)]
    expected = [data[4:12][m][:, channels].sum(axis=0, dtype=np.float64) for m in masks]
    assert np.array_equal(reader.sums(4, 12, masks), expected)
    rows = np.sort(rng.integers(0, 21, 25))
    cols = rng.integers(0, 7, 25)
    assert np.array_equal(reader.points(rows, cols), data[rows, cols][:, channels])
    assert np.array_equal(RowChunks(cube).points(rows, cols), data[rows, cols])


def test_read_blocks_of_a_lazy_cube_compute_each_chunk_once_per_band():
    """The blocks of a batch: the pixels of ``read_block`` of each; under a memory limit a lazy
    cube's rows read as one band (each stored chunk once) where the limit allows it, else (and
    without a limit: napari) block by block."""
    from napari_sigma.compute.blocks import block_rows, read_block, read_blocks

    rng = np.random.default_rng(4)
    data = rng.poisson(3.0, (23, 6, 11)).astype(np.uint16)
    rows = [part for *_, part in block_rows(data, 12)]  # 2 rows per block, the last one short
    assert len(rows) == 12 and rows[-1] == slice(22, 24)
    for batch in (rows[:6], rows[6:], rows[3:4]):
        expected = [data[part].reshape(-1, 11) for part in batch]
        cube, source = lazy_cube(data, 5)
        with memory_budget(10**9):
            found = list(read_blocks(cube, batch))
        assert all(np.array_equal(f, e) for f, e in zip(found, expected, strict=True))
        assert len(source.reads) == len(set(source.reads))  # no chunk read twice
        assert all(
            np.array_equal(f, e) for f, e in zip(read_blocks(data, batch), expected, strict=True)
        )
    cube, source = lazy_cube(data, 5)
    with memory_budget(10**9):  # rows 0-11: chunks 0-4, 5-9 and the rows of 10-14 once each
        list(read_blocks(cube, rows[:6]))
    assert sorted(source.reads) == [(0, 5), (5, 10), (10, 12)]
    cube, source = lazy_cube(data, 5)
    found = list(read_blocks(cube, rows[:6]))  # no limit: block by block
    assert all(
        np.array_equal(f, read_block(data, part)) for f, part in zip(found, rows[:6], strict=True)
    )
    assert len(source.reads) > 3
    cube, source = lazy_cube(data, 5)
    with memory_budget(4 * 6 * 11 * 2 * 2 * 5):  # a band of 5 rows, not 12: block by block
        found = list(read_blocks(cube, rows[:6]))
    assert all(
        np.array_equal(f, read_block(data, part)) for f, part in zip(found, rows[:6], strict=True)
    )
    assert len(source.reads) > 3


def test_banded_blocks_read_each_stored_chunk_row_at_most_twice():
    """pixel_blocks' blocks and values; under a memory limit a lazy cube's blocks read a band of
    stored chunks at a time (rows of a chunk read at most twice: a block across its edge, where
    each 2-row block over 5-row chunks read alone read every chunk about 3 times); without a
    limit, and for numpy counts, block by block."""
    from napari_sigma.compute.blocks import banded_blocks, pixel_blocks

    rng = np.random.default_rng(8)
    data = rng.poisson(3.0, (23, 6, 11)).astype(np.uint16)
    expected = list(pixel_blocks(data, 12))  # 2 rows per block, the last one short
    assert len(expected) == 12

    def same(found):
        assert [start for start, _ in found] == [start for start, _ in expected]
        assert all(np.array_equal(f, e) for (_, f), (_, e) in zip(found, expected, strict=True))

    same(list(banded_blocks(data, 12)))
    cube, source = lazy_cube(data, 5)
    with memory_budget(10**9):
        same(list(banded_blocks(cube, 12)))
    read = np.zeros(23, int)
    for top, bottom in source.reads:
        read[top:bottom] += 1
    assert read.max() <= 2 and read.sum() <= 23 + 4  # 4 chunk edges: rows 4-5 ... 19-20
    cube, source = lazy_cube(data, 5)
    with memory_budget(10**9):
        for _ in pixel_blocks(cube, 12):  # block by block, as the phase sums read before
            pass
    assert len(source.reads) > 12
    cube, source = lazy_cube(data, 5)
    same(list(banded_blocks(cube, 12)))  # no limit: block by block
    assert len(source.reads) >= 12
