"""Compute threads of the plugin's workers: every core but one, so that napari keeps one.

On a machine without a GPU, Qt composes napari's window with Mesa's llvmpipe, whose rasterizer
threads wait for a core like any other thread: while an analysis ran torch and OpenBLAS on every
core, napari's main thread waited up to 0.2-1.8 s per repaint (its own CPU in those gaps was
1-60 ms; py-spy showed it in ``QRhi::endFrame`` waiting for llvmpipe). The plugin's workers
(analysis, phase statistics, split, export, element maps, the Spectrum tab's sums) therefore
compute inside :func:`leave_a_core`: BLAS/OpenMP pools (threadpoolctl), torch's intra-op pool and
dask's local scheduler limited to :func:`compute_threads` (cores - 1, at least 1). The limit is
process-wide (those pools are), set when the first worker enters and restored when the last one
leaves. The CLI and the Python API do not use it: they keep every core.

They also run in the plugin's own thread pool (:func:`start`, :func:`worker_pool`), whose threads
run at a lower scheduling priority (the process's nice + :data:`WORKER_NICE`, Linux): when the
main thread or llvmpipe's rasterizer threads need a core, they get it before the computation. The
threads a worker starts (dask, the pipeline's block threads, OpenMP) inherit the lower priority.
napari's global pool is left alone: an unprivileged thread cannot raise its priority back, and
napari runs its own work there.

A worker holding the GIL while it waits for a core holds napari's main thread with it: the lower
its priority, the longer it waits under load. +5, not +10: a napari viewer repainting every
200 ms beside a Python-bound worker, with two busy loops of another program running, missed its
10 ms ticks by over 100 ms 45 and 57 times in 12 s with the worker at +10, 14 and 14 at +5, 33
and 18 at +0; without those loops 1 and 0, 1 and 3, 3 and 1 times (the 1 ms switch interval;
fourteenth session's note, gui14a).

While the plugin is in use the process's GIL switch interval is 1 ms (:func:`quick_gil_switch`).
``NAPARI_SIGMA_WORKER_NICE`` and ``NAPARI_SIGMA_GIL_SWITCH_MS`` override both (to compare).
"""

from __future__ import annotations

import inspect
import os
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Any

_lock = threading.Lock()
_state: dict[str, Any] = {"depth": 0, "limiter": None, "torch": None, "dask": None}

WORKER_NICE = 5  # added to the process's nice in the plugin's worker threads (0..19 on Linux)
if os.environ.get("NAPARI_SIGMA_WORKER_NICE", "").strip().isdigit():  # to compare
    WORKER_NICE = min(19, int(os.environ["NAPARI_SIGMA_WORKER_NICE"]))
POOL_EXIT_WAIT_MS = 10_000
# Python's GIL switch interval in napari's process once the plugin is in use (Python's: 5 ms)
GIL_SWITCH_S = 0.001
try:  # to compare; 0: Python's
    GIL_SWITCH_S = float(os.environ.get("NAPARI_SIGMA_GIL_SWITCH_MS", "1")) / 1e3
except ValueError:
    pass
_pool: dict[str, Any] = {"pool": None}
_running: set[Any] = set()  # started workers, referenced until they finish


def quick_gil_switch() -> bool:
    """Shorten Python's GIL switch interval to :data:`GIL_SWITCH_S` (never lengthen it); return
    whether it is that short.

    napari's main thread gives the GIL up at each call into Qt (PyQt releases it) and takes it
    back after: many times per event and repaint. While one of the plugin's background threads
    runs Python (an import, a worker's loops), each take-back waits until that thread is asked
    to let go, which it is only after the switch interval: up to 5 ms per take-back with
    Python's default, so a repaint of a few ms of CPU took tens of ms.
    """
    if GIL_SWITCH_S <= 0:
        return False
    if sys.getswitchinterval() > GIL_SWITCH_S:
        sys.setswitchinterval(GIL_SWITCH_S)
    return sys.getswitchinterval() <= GIL_SWITCH_S


def compute_threads() -> int:
    """Threads for the plugin's computations: the cores this process may use, minus one (>= 1)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, cores - 1)


@contextmanager
def leave_a_core() -> Iterator[int]:
    """Run the enclosed work with BLAS, OpenMP and torch on :func:`compute_threads` threads.

    Yields the number of threads. Nested and concurrent uses share one limit; the pools get
    their previous sizes back when the last use ends.
    """
    threads = compute_threads()
    with _lock:
        if _state["depth"] == 0:
            torch = _imported_torch()  # imported by the preload; never imported here
            if torch is not None:  # read first: limiting OpenMP also changes torch's count
                _state["torch"] = torch.get_num_threads()
            _state["limiter"] = _limit_pools(threads)
            _state["dask"] = _limit_dask(threads)
            if torch is not None:
                torch.set_num_threads(threads)
        _state["depth"] += 1
    try:
        yield threads
    finally:
        with _lock:
            _state["depth"] -= 1
            if _state["depth"] == 0:
                limiter, previous = _state["limiter"], _state["torch"]
                _state["limiter"] = _state["torch"] = None
                if _state["dask"] is not None:
                    _state["dask"].__exit__(None, None, None)  # dask's previous settings
                    _state["dask"] = None
                if limiter is not None:
                    _release_openblas()
                    limiter.restore_original_limits()
                    _release_openblas()
                torch = _imported_torch()
                if torch is not None and previous is not None:
                    torch.set_num_threads(previous)


def _imported_torch() -> Any:
    """torch when its import has finished, else None. A module is in ``sys.modules`` from the
    start of its import: while the preload thread is still importing torch, its functions
    (``get_num_threads``) do not exist yet."""
    torch = sys.modules.get("torch")
    if torch is None or getattr(getattr(torch, "__spec__", None), "_initializing", False):
        return None
    return torch if hasattr(torch, "set_num_threads") else None


def leaving_a_core(function: Callable[..., Any]) -> Callable[..., Any]:
    """``function`` run inside :func:`leave_a_core`; a generator function stays one (napari's
    ``create_worker`` makes a worker reporting progress of it), limited while it runs."""
    if inspect.isgeneratorfunction(function):

        @wraps(function)
        def limited_steps(*args: Any, **kwargs: Any) -> Any:
            with leave_a_core():
                return (yield from function(*args, **kwargs))

        return limited_steps

    @wraps(function)
    def limited(*args: Any, **kwargs: Any) -> Any:
        with leave_a_core():
            return function(*args, **kwargs)

    return limited


def close_in_background(generator: Any) -> threading.Thread:
    """Close a suspended generator in a daemon thread (its ``finally`` blocks and ``with`` exits
    run there, not in napari's main thread); return the thread."""

    def close() -> None:
        try:
            generator.close()
        except ValueError:  # still executing: it ends by itself
            pass

    thread = threading.Thread(target=close, name="napari-sigma-close-run", daemon=True)
    thread.start()
    return thread


def _limit_pools(threads: int) -> Any:
    from napari_sigma._napari.library_loading import wait_for_library_loads

    # threadpoolctl opens each pool's library (ctypes.CDLL: dlopen with the GIL held): not
    # while torch's libraries load, where it would wait for the loader's lock holding the GIL
    wait_for_library_loads()
    try:
        from threadpoolctl import threadpool_limits

        _release_openblas()
        limiter = threadpool_limits(limits=threads)
        _release_openblas()
        return limiter
    except Exception:  # no threadpoolctl or an unknown library: the pools keep their sizes
        return None


def _limit_dask(threads: int) -> Any:
    """dask's local scheduler on ``threads`` threads; return the setting (its ``__exit__`` gives
    dask's previous settings back), None when dask is not imported (a lazy cube imported it).

    From a thread other than the main one, dask's threaded scheduler started a pool of
    ``min(32, cpu_count + 4)`` threads (6 on 2 cores: reading the JEOL cube's blocks, they took
    the cores from napari's drawing), and the first computation imported ``distributed`` to look
    for a cluster (~0.2-0.5 s of Python holding the GIL in turns with napari's main thread).
    Naming the scheduler skips that look-up; a cluster the user connected is not used by the
    plugin's workers meanwhile.
    """
    dask = sys.modules.get("dask")
    if dask is None:
        return None
    try:
        import dask.config

        return dask.config.set(scheduler="threads", num_workers=threads)
    except Exception:  # another dask: its own defaults
        return None


def _release_openblas() -> None:
    """Let this thread set OpenBLAS's pool size, and leave it free for the next thread.

    threadpoolctl lets only one thread set a pthreads OpenBLAS's (process-wide) size: the first
    that did, until it clears; a worker of napari's thread pool stays alive, so without this
    every later limit, or its restoring from another worker, was silently ignored (seen in the
    tests). The limits here are set and restored under :data:`_lock`.
    """
    try:
        from threadpoolctl import OpenBLASController

        OpenBLASController.clear_controlling_thread(force=True)
    except Exception:  # another threadpoolctl: nothing to release
        pass


def worker_pool() -> Any:
    """The plugin's own ``QThreadPool`` (created once), whose threads compute at a lower
    priority (:func:`lower_this_thread`); waited for (<= 10 s) when Python exits."""
    if _pool["pool"] is None:
        import atexit

        from qtpy.QtCore import QThread, QThreadPool

        pool = QThreadPool()
        # an analysis, the phase statistics, an export and the Spectrum tab's work at once
        pool.setMaxThreadCount(max(4, QThread.idealThreadCount()))
        _pool["pool"] = pool
        atexit.register(_wait_for_pool_at_exit)  # registered after PyQt's handler: runs first
    return _pool["pool"]


def start(worker: Any) -> Any:
    """Start a napari/superqt worker (``create_worker(..., _start_thread=False)``) in
    :func:`worker_pool` instead of napari's global pool; return it.

    Connect its signals first, as for ``worker.start()``.
    """
    from qtpy.QtCore import QRunnable, QThread, QTimer

    class LowPriorityRun(QRunnable):
        def run(self) -> None:
            lower_this_thread()
            worker.run()

    _running.add(worker)  # until its signals, queued to the main thread, are delivered there
    worker.finished.connect(lambda: _running.discard(worker))
    run = LowPriorityRun()
    if QThread.currentThread().loopLevel():  # as superqt: signals connected just after count
        QTimer.singleShot(1, lambda: worker_pool().start(run))
    else:
        worker_pool().start(run)
    return worker


def lower_this_thread() -> bool:
    """Lower the calling thread's nice value to the process's (its main thread's) plus
    :data:`WORKER_NICE` (Linux, where a thread has its own); return whether it is that low.
    Idempotent, without per-thread Python state: Qt's pool threads can lose their Python thread
    state between runs, and a thread-local flag then lowered a reused thread twice (10 -> 19).
    Only for the plugin's own threads: an unprivileged thread cannot raise it back."""
    if not sys.platform.startswith("linux"):  # elsewhere the id would name a process
        return False
    try:
        tid = threading.get_native_id()
        target = min(19, os.getpriority(os.PRIO_PROCESS, os.getpid()) + WORKER_NICE)
        if os.getpriority(os.PRIO_PROCESS, tid) < target:
            os.setpriority(os.PRIO_PROCESS, tid, target)
    except (AttributeError, OSError):  # a sandbox refusing it: the work runs as it is
        return False
    return True


def _wait_for_pool_at_exit() -> None:
    """Let the plugin's workers finish before Python exits (see ``viewer_widget``): one still
    running emitted its signals on Qt objects PyQt had deleted, which aborted the process."""
    from napari_sigma.compute.cancel import cancel_all

    cancel_all()  # the element suggestion stops at its next fit instead of being waited for
    pool = _pool["pool"]
    if pool is not None:
        pool.waitForDone(POOL_EXIT_WAIT_MS)
