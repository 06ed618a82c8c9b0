"""Large zeroed arrays on populated anonymous memory behave as np.zeros."""

from __future__ import annotations

import numpy as np
import pytest

from napari_sigma.io import _memory


@pytest.mark.parametrize("min_bytes", [0, 2**40])
def test_zeroed_array_is_a_writable_zero_array(monkeypatch, min_bytes) -> None:
    monkeypatch.setattr(_memory, "MIN_BYTES", min_bytes)  # 0: the mapped path for any size
    array = _memory.zeroed_array((3, 5, 7), np.uint16)
    assert array.shape == (3, 5, 7) and array.dtype == np.uint16
    assert array.flags.c_contiguous and array.flags.writeable and not array.any()
    array[1, 2, 3] = 9
    assert array.sum() == 9
    assert _memory.zeroed_array((0, 4), np.float32).shape == (0, 4)


def test_a_dense_event_cube_is_the_same_on_mapped_memory(monkeypatch) -> None:
    from napari_sigma.io.events import EventCube

    rng = np.random.default_rng(0)
    shape = (6, 5, 40)
    coords = np.stack([rng.integers(0, n, 300) for n in shape])  # repeated events add up
    cube = EventCube(coords, shape=shape, dtype=np.uint16)
    expected = np.zeros(shape, np.uint16)
    np.add.at(expected, tuple(coords), 1)
    monkeypatch.setattr(_memory, "MIN_BYTES", 0)
    dense = cube.dense()
    np.testing.assert_array_equal(dense, expected)
    assert dense.flags.writeable


def test_a_large_array_is_mapped_without_holding_the_gil() -> None:
    """A Python loop in this thread keeps running while another thread maps (and the kernel
    zeroes) a large array: Python's mmap held the GIL for the whole call, which stopped napari's
    main thread while a worker densified a JEOL block. (The loop allocates nothing: a thread
    that maps memory meanwhile waits for the kernel's populate, GIL or not.)"""
    import threading
    import time

    span, done = {}, threading.Event()

    def allocate() -> None:
        span["start"] = time.perf_counter()
        array = _memory.zeroed_array((256 * 2**20,), np.uint8)
        span["end"] = time.perf_counter()
        span["zero"] = not array[:: 2**20].any()
        done.set()

    thread = threading.Thread(target=allocate)
    last, longest = time.perf_counter(), 0.0
    thread.start()
    while not done.is_set():
        now = time.perf_counter()
        longest, last = max(longest, now - last), now
    thread.join()
    assert span["zero"]
    # measured 0.06-0.22 of the call (load 2-3); Python's mmap.mmap: 0.90-0.94 (stopped throughout)
    assert longest / (span["end"] - span["start"]) < 0.6
