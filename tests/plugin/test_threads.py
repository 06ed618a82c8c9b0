"""The plugin's workers compute on every core but one, so that napari's drawing keeps a core."""

from __future__ import annotations

import inspect
import os
import sys
import threading
from collections.abc import Callable

import pytest
import torch
from threadpoolctl import threadpool_info

from napari_sigma._napari import threads
from napari_sigma._napari.threads import compute_threads, leave_a_core, leaving_a_core

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice")


def _blas_threads() -> list[int]:
    return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]


def _no_other_workers() -> None:
    """Wait for workers of earlier tests: the pools' sizes are process-wide, and a worker leaving
    a limit restores what it saw."""
    import gc

    from qtpy.QtCore import QThreadPool

    assert QThreadPool.globalInstance().waitForDone(60_000)
    assert threads.worker_pool().waitForDone(60_000)
    gc.collect()  # an aborted run's generator is closed (leaving its limit) when collected
    assert threads._state["depth"] == 0, "a worker of an earlier test still holds the limit"


def _nice() -> int:
    """The calling thread's nice value (Linux: per thread)."""
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def _lowered(nice: int) -> int:
    return min(19, nice + threads.WORKER_NICE)


def _analysis_of_a_tiny_map(viewer, dock):
    """The Phase analysis dock over a 16x16 synthetic map's layers, set to run on the CPU."""
    from napari.layers import Layer

    from napari_sigma._napari.layers import spectrum_image_layers
    from napari_sigma.synthetic.generator import make_synthetic

    sample = make_synthetic(seed=0, shape=(16, 16), n_channels=256, title="tiny")
    for data, kwargs, kind in spectrum_image_layers(sample.image):
        viewer.add_layer(Layer.create(data, kwargs, kind))
    widget = dock(viewer, "Phase analysis")
    widget.form.elements.value, widget.form.device.value = "O,Si,Fe", "cpu"
    return widget


def test_workers_leave_a_core_and_give_the_pools_back():
    assert compute_threads() == max(1, len(os.sched_getaffinity(0)) - 1)
    _no_other_workers()
    torch_before, blas_before = torch.get_num_threads(), _blas_threads()
    with leave_a_core() as n:
        assert n == compute_threads()
        assert torch.get_num_threads() == n and set(_blas_threads()) <= {n}
        with leave_a_core():  # a second worker at the same time shares the limit
            assert torch.get_num_threads() == n
        assert torch.get_num_threads() == n and set(_blas_threads()) <= {n}  # still inside one
    assert torch.get_num_threads() == torch_before and _blas_threads() == blas_before


def test_limits_hold_in_every_worker_of_a_pool_that_stays_alive():
    # threadpoolctl lets one thread at a time set a pthreads OpenBLAS; napari's pool threads
    # stay alive after a task, so a second worker's limit was silently ignored
    from concurrent.futures import ThreadPoolExecutor

    _no_other_workers()
    before, n = _blas_threads(), compute_threads()

    def limited_blas() -> set[int]:
        with leave_a_core():
            return set(_blas_threads())

    with ThreadPoolExecutor(1) as first, ThreadPoolExecutor(1) as second:
        assert first.submit(limited_blas).result() <= {n}
        assert _blas_threads() == before
        assert second.submit(limited_blas).result() <= {n}  # first's thread is still alive
        assert _blas_threads() == before


def test_a_limited_generator_stays_a_generator_limited_while_it_runs():
    _no_other_workers()

    def steps():
        yield torch.get_num_threads()
        return "done"

    limited = leaving_a_core(steps)
    assert inspect.isgeneratorfunction(limited)  # napari's create_worker reports its progress
    before = torch.get_num_threads()
    run = limited()
    assert next(run) == compute_threads()
    with pytest.raises(StopIteration) as stop:
        next(run)
    assert stop.value.value == "done" and torch.get_num_threads() == before
    assert leaving_a_core(lambda x: x + 1)(1) == 2


@linux_only
@pytest.mark.gui
def test_the_analysis_runs_on_the_threads_left_to_it(plugin_viewer, dock, qtbot, monkeypatch):
    seen = {}

    def analyse(image, settings):  # what the worker hands the pipeline, then a clear stop
        seen.update(settings=settings.cpu_threads, torch=torch.get_num_threads())
        seen["nice"] = _nice()
        seen["blas"] = set(_blas_threads())
        yield from ()
        raise ValueError("stopped by the test")

    _no_other_workers()
    monkeypatch.setattr(threads, "compute_threads", lambda: 3)
    monkeypatch.setattr("napari_sigma.pipeline.analysis.analyse", analyse)
    widget = _analysis_of_a_tiny_map(plugin_viewer, dock)
    torch_before = torch.get_num_threads()
    widget.run()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=60_000)
    assert seen["settings"] == 3 and seen["torch"] == 3
    assert seen["nice"] == _lowered(_nice())  # a low-priority thread, napari's main thread not
    assert all(n <= 3 for n in seen["blas"])  # OpenBLAS never exceeds the cores it was built for
    assert "stopped by the test" in widget.progress_label.text()
    assert torch.get_num_threads() == torch_before


@pytest.mark.gui
def test_an_aborted_run_gives_its_threads_and_data_back(plugin_viewer, dock, qtbot, monkeypatch):
    from napari_sigma.compute.progress import Progress

    _no_other_workers()
    closed = []

    def analyse(image, settings):  # a long run that reports progress until it is aborted
        try:
            for step in range(10_000):
                yield Progress("latent", step, 10_000, "epoch")
        finally:
            closed.append(torch.get_num_threads())

    monkeypatch.setattr("napari_sigma.pipeline.analysis.analyse", analyse)
    widget = _analysis_of_a_tiny_map(plugin_viewer, dock)
    widget.run()
    qtbot.waitUntil(lambda: threads._state["depth"] == 1, timeout=60_000)
    widget.abort()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=60_000)
    qtbot.waitUntil(lambda: threads._state["depth"] == 0, timeout=10_000)  # without gc
    assert closed == [compute_threads()]  # closed inside the limit, which then ended


@linux_only
def test_a_torch_still_being_imported_is_left_alone(monkeypatch):
    """The preload thread imports torch while the Spectrum tab's worker starts: torch is in
    sys.modules from the import's start, without its functions yet (the tab said "could not
    read the spectra: partially initialized module 'torch' has no attribute
    'get_num_threads'"). A finished torch gets its thread count set and given back."""
    import importlib.machinery
    import types

    _no_other_workers()
    half = types.ModuleType("torch")
    half.__spec__ = importlib.machinery.ModuleSpec("torch", None)
    half.__spec__._initializing = True
    monkeypatch.setitem(sys.modules, "torch", half)
    with leave_a_core() as n:
        assert n == compute_threads()
    calls = []
    done = types.ModuleType("torch")
    done.__spec__ = importlib.machinery.ModuleSpec("torch", None)
    done.get_num_threads = lambda: 7
    done.set_num_threads = calls.append
    monkeypatch.setitem(sys.modules, "torch", done)
    with leave_a_core():
        assert calls == [compute_threads()]
    assert calls == [compute_threads(), 7]


def test_workers_compute_in_low_priority_threads_and_napari_pool_is_untouched(qtbot):
    from napari.qt.threading import create_worker
    from qtpy.QtCore import QThreadPool

    _no_other_workers()
    main = _nice()

    def where() -> tuple[int, int]:
        return threading.get_native_id(), _nice()

    ours = [create_worker(where, _start_thread=False) for _ in range(6)]
    napari_own = create_worker(where, _start_thread=False)
    seen = {}
    for worker in ours:
        worker.returned.connect(lambda found, w=worker: seen.__setitem__(id(w), found))
        threads.start(worker)
    napari_own.returned.connect(lambda found: seen.__setitem__("napari", found))
    qtbot.waitUntil(lambda: len(seen) == len(ours), timeout=30_000)
    napari_own.start()  # after ours: napari's pool threads never ran one of them
    qtbot.waitUntil(lambda: "napari" in seen, timeout=30_000)
    assert threads.worker_pool().waitForDone(30_000)
    assert QThreadPool.globalInstance().waitForDone(30_000)
    assert {nice for _, nice in (seen[id(w)] for w in ours)} == {_lowered(main)}
    assert seen["napari"][1] == main and _nice() == main  # napari's pool and main thread: as is
    assert seen["napari"][0] not in {tid for tid, _ in (seen[id(w)] for w in ours)}
    qtbot.waitUntil(lambda: not threads._running, timeout=10_000)  # released once delivered


@linux_only
def test_a_thread_is_lowered_once_and_its_children_inherit_it():
    from concurrent.futures import ThreadPoolExecutor

    seen = {}

    def worker_thread() -> None:
        before = _nice()
        assert threads.lower_this_thread() and threads.lower_this_thread()  # twice: once
        seen["own"] = (before, _nice())
        with ThreadPoolExecutor(1) as pool:  # e.g. the pipeline's block threads, dask's
            seen["child"] = pool.submit(_nice).result()

    thread = threading.Thread(target=worker_thread)
    thread.start()
    thread.join()
    before, after = seen["own"]
    assert after == _lowered(before) and seen["child"] == after


def test_dask_computes_on_the_threads_left_to_it_without_looking_for_a_cluster():
    # from a worker thread, dask's scheduler started min(32, cpu_count + 4) threads (6 on 2
    # cores) and its first compute imported `distributed` to look for a cluster
    import dask
    import dask.array as da
    from dask.base import get_scheduler
    from dask.threaded import get as threaded_get

    _no_other_workers()
    before = (dask.config.get("scheduler", None), dask.config.get("num_workers", None))
    seen = {}

    def compute() -> None:
        names = set()

        def note(block):
            names.add(threading.current_thread().name)
            return block

        cube = da.ones((8, 8, 4), chunks=(1, 8, 4)).map_blocks(note)
        with leave_a_core() as n:
            seen["scheduler"] = get_scheduler() is threaded_get
            seen["sum"] = float(cube.sum().compute())
            seen.update(n=n, threads=len(names - {threading.current_thread().name}))

    thread = threading.Thread(target=compute)  # as a worker: not the main thread
    thread.start()
    thread.join()
    assert seen["scheduler"] and seen["sum"] == 256.0
    assert seen["threads"] <= seen["n"] == compute_threads()
    assert (dask.config.get("scheduler", None), dask.config.get("num_workers", None)) == before


def _contended_take_backs_ms(
    interval: float, enough: Callable[[list[float]], bool], budget_s: float = 20.0
) -> list[float]:
    """Wall ms of this thread's GIL take-backs (a release and take-back, as its calls into Qt
    and OpenGL make) that found another thread running Python, with Python's switch interval
    ``interval``, until ``enough(waits)`` or ``budget_s``; sorted.

    Only contended take-backs count: the other thread counts its loops while it holds the GIL,
    and a take-back during which the count did not move found the GIL free (on a loaded machine
    the other thread is often off the cores when the GIL is given up, and a trial of such
    take-backs measured nothing). A contended take-back waits at least ``interval`` (CPython
    asks the holder to let go only after a full interval without a switch), plus however long
    the two threads wait for a core on a loaded machine."""
    import time

    stop = threading.Event()
    loops = [0]

    def python_bound() -> None:
        while not stop.is_set():
            sum(range(200))
            loops[0] += 1

    previous = sys.getswitchinterval()
    sys.setswitchinterval(interval)
    thread = threading.Thread(target=python_bound, name="test python-bound")
    thread.start()
    waits: list[float] = []
    try:
        time.sleep(0.02)  # the other thread runs
        end = time.monotonic() + budget_s
        while not enough(waits) and time.monotonic() < end:
            before = loops[0]
            start = time.perf_counter()
            time.sleep(0)  # gives the GIL up and takes it back
            took = time.perf_counter() - start
            if loops[0] != before:
                waits.append(1e3 * took)
    finally:
        stop.set()
        thread.join()
        sys.setswitchinterval(previous)
    return sorted(waits)


def test_the_plugin_shortens_the_main_thread_s_wait_for_the_gil(monkeypatch):
    """napari's main thread gives the GIL up at each call into Qt and OpenGL and takes it back
    after; beside a background thread running Python each take-back waited for Python's switch
    interval (5 ms). The preload (started when napari shows a spectrum image) shortens it to
    threads.GIL_SWITCH_S, never lengthens a shorter one."""
    from napari_sigma._napari import preload

    previous = sys.getswitchinterval()
    monkeypatch.setattr(preload, "_state", {"thread": None, "compute": None})
    monkeypatch.setattr(preload, "_import_all", lambda: None)
    try:
        sys.setswitchinterval(0.005)  # Python's default
        preload.start().join()
        shortened = sys.getswitchinterval()
        assert shortened == pytest.approx(threads.GIL_SWITCH_S)
        assert threads.GIL_SWITCH_S <= 0.001
        sys.setswitchinterval(threads.GIL_SWITCH_S / 2)
        assert threads.quick_gil_switch()
        assert sys.getswitchinterval() == pytest.approx(threads.GIL_SWITCH_S / 2)
    finally:
        sys.setswitchinterval(previous)
    # The wait itself, beside a thread running Python: its floor is the switch interval, the
    # fastest contended take-back (the others add the scheduler's delays on a loaded machine).
    # With Python's 5 ms none is faster than 5 ms; with the preload's interval take-backs are
    # sampled until one shows the shorter floor (at once on a quiet machine; 20 s at most).
    slow = _contended_take_backs_ms(0.005, lambda waits: len(waits) >= 20)
    assert len(slow) >= 5, ("the other thread hardly ran", slow)
    assert slow[0] >= 0.9 * 5, slow  # Python's default: every contended take-back waits 5 ms
    quick = _contended_take_backs_ms(
        shortened, lambda waits: len(waits) >= 20 and min(waits) < slow[0] / 2
    )
    assert quick and quick[0] < slow[0] / 2, (quick[:20], len(quick), slow)
