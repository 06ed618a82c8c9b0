"""Compute threads of the plugin's workers: every core but one, so that napari keeps one.

On a machine without a GPU, Qt composes napari's window with Mesa's llvmpipe, whose rasterizer
threads wait for a core like any other thread: while an analysis ran torch and OpenBLAS on every
core, napari's main thread waited up to 0.2-1.8 s per repaint (its own CPU in those gaps was
1-60 ms; py-spy showed it in ``QRhi::endFrame`` waiting for llvmpipe). The plugin's workers
(analysis, phase statistics, split, export, element maps) therefore compute inside
:func:`leave_a_core`: BLAS/OpenMP pools (threadpoolctl) and torch's intra-op pool limited to
:func:`compute_threads` (cores - 1, at least 1). The limit is process-wide (those pools are), set
when the first worker enters and restored when the last one leaves. The CLI and the Python API
do not use it: they keep every core.
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
_state: dict[str, Any] = {"depth": 0, "limiter": None, "torch": None}


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
            torch = sys.modules.get("torch")  # imported by the preload; never imported here
            if torch is not None:  # read first: limiting OpenMP also changes torch's count
                _state["torch"] = torch.get_num_threads()
            _state["limiter"] = _limit_pools(threads)
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
                if limiter is not None:
                    _release_openblas()
                    limiter.restore_original_limits()
                    _release_openblas()
                torch = sys.modules.get("torch")
                if torch is not None and previous is not None:
                    torch.set_num_threads(previous)


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
    try:
        from threadpoolctl import threadpool_limits

        _release_openblas()
        limiter = threadpool_limits(limits=threads)
        _release_openblas()
        return limiter
    except Exception:  # no threadpoolctl or an unknown library: the pools keep their sizes
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
