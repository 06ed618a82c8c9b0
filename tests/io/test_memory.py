"""Large zeroed arrays on populated anonymous memory behave as np.zeros."""

from __future__ import annotations

import numpy as np
import pytest

from napari_sigma.io.readers import _memory


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
    from napari_sigma.io.readers.events import EventCube

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


def _schedstat_s(thread_id: int) -> tuple[float, float]:
    """(CPU, run-queue wait) seconds of a thread of this process (Linux schedstat)."""
    with open(f"/proc/self/task/{thread_id}/schedstat") as stat:
        cpu, waited, _ = stat.read().split()
    return int(cpu) / 1e9, int(waited) / 1e9


def _mapping_beside_a_loop() -> dict:
    """One 256 MiB zeroed mapping in a thread while this thread runs a Python loop: the loop's
    CPU and run-queue wait and the mapping thread's CPU over the call."""
    import threading
    import time

    span, done = {}, threading.Event()
    loop = threading.get_native_id()

    def allocate() -> None:
        before, own, wall = _schedstat_s(loop), time.thread_time(), time.perf_counter()
        array = _memory.zeroed_array((256 * 2**20,), np.uint8)
        after = _schedstat_s(loop)
        span["own"], span["wall"] = time.thread_time() - own, time.perf_counter() - wall
        span["loop"], span["loop_waited"] = after[0] - before[0], after[1] - before[1]
        span["zero"] = not array[:: 2**20].any()
        done.set()

    thread = threading.Thread(target=allocate)
    thread.start()
    while not done.is_set():
        pass
    thread.join()
    return span


def test_a_large_array_is_mapped_without_holding_the_gil() -> None:
    """A Python loop in this thread keeps running while another thread maps (and the kernel
    zeroes) a large array: Python's mmap held the GIL for the whole call, which stopped napari's
    main thread while a worker densified a JEOL block. (The loop allocates nothing: a thread
    that maps memory meanwhile waits for the kernel's populate, GIL or not.)

    Measured as the time the loop's thread was runnable during the call (its CPU plus its wait
    for a core), not its ticks or its CPU: on a loaded machine, niced, the loop may get almost
    no core, but it stays runnable; a loop stopped by the GIL sleeps on it (waking every 5 ms).
    Measured: runnable 0.84-1.08 of the call quiet, 0.95-1.0 niced beside 3 busy processes at
    load 10; with Python's mmap 0.10-0.50 (quiet and loaded)."""
    span = _mapping_beside_a_loop()
    assert span["zero"]
    assert span["loop"] + span["loop_waited"] > 0.7 * span["wall"], span


_TEMPORARIES = """
import resource, sys
import numpy as np
from napari_sigma.io.readers._memory import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
def rounds(n=50):  # a pass's temporaries: a few 4 MiB arrays per block, freed after it
    for _ in range(n):
        a = np.ones((32768, 16)); b = np.sqrt(a * 2.0); c = b.astype(np.float32)
        del a, b, c
rounds(2)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
rounds()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(__import__("platform").libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_kept_freed_memory_is_reused_without_page_faults() -> None:
    """With freed memory kept (the CLI), a pass's temporary arrays reuse the heap: no new pages
    faulted in per block (glibc's default gives a freed 4 MiB block back and faults it in again
    at the next: ~1000 faults per array; the VM's slow faults made that 12-21 s of system time
    in a 1024^2 run)."""
    import subprocess
    import sys

    faults = {}
    for mode in ("default", "keep"):
        done = subprocess.run(
            [sys.executable, "-c", _TEMPORARIES, mode], capture_output=True, text=True, check=True
        )
        faults[mode] = int(done.stdout.split()[-1])
    assert faults["default"] > 50 * 1000  # the case that this guards against happens here
    assert faults["keep"] < 0.02 * faults["default"]


def test_the_command_keeps_freed_memory_in_its_own_process_only(monkeypatch) -> None:
    """``napari-sigma`` (``main()`` without arguments: a process of its own) keeps freed memory
    for reuse before any work; ``main(argv)`` called from Python (tests, scripts) leaves the
    caller's C library settings alone."""
    from napari_sigma import cli

    calls = []
    monkeypatch.setattr(_memory, "keep_freed_memory", lambda: calls.append("kept"))
    monkeypatch.setattr(cli, "_main", lambda argv: calls.append("ran") or 0)

    def ended(code):
        raise SystemExit(code)

    monkeypatch.setattr(cli, "end_process", ended)
    with pytest.raises(SystemExit):
        cli.main()
    assert calls == ["kept", "ran"]
    calls.clear()
    assert cli.main(["run", "x"]) == 0
    assert calls == ["ran"]
