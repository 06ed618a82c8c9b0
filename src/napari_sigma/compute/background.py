"""Short background threads (imports, compilations) that the interpreter's exit waits for.

The plugin imports torch, compiles numba kernels and warms napari's label colouring in daemon
threads. A daemon thread still running when Python exits is torn down by the interpreter's
finalisation: the thread is unwound with ``pthread_exit`` where it next takes the GIL, and when
its stack holds a C++ frame that catches everything (LLVM's compilation calling back into Python,
torch's initialisation), the C library aborts the whole process ("FATAL: exception not rethrown",
exit status 134 after the program's own work was done: 1 in 4 runs of a script that docked the
plugin and ended within seconds, and a CI run).

:func:`start_thread` starts such a thread and registers it to be joined at exit (``atexit``, which
runs before the finalisation and while daemon threads still run), for at most :data:`EXIT_WAIT_S`.
Long computations (an analysis, a file read) are not for this: they have their own cancellation.
"""

from __future__ import annotations

import atexit
import threading
import time
from collections.abc import Callable
from typing import Any

EXIT_WAIT_S = 30.0  # the longest exit wait for unfinished warm-ups (a cold torch import: ~10 s)

_pending: set[threading.Thread] = set()
_lock = threading.Lock()
_registered = {"atexit": False}


def start_thread(target: Callable[..., Any], name: str, args: tuple = ()) -> threading.Thread:
    """Start ``target(*args)`` in a daemon thread named ``name`` that the exit waits for; return it.

    The thread does not keep a finished program alive by itself beyond its own end (it is
    joined, not waited for forever: :data:`EXIT_WAIT_S` at most).
    """
    thread = threading.Thread(target=_run, args=(target, args), name=name, daemon=True)
    with _lock:
        if not _registered["atexit"]:
            atexit.register(join_pending)
            _registered["atexit"] = True
        _pending.add(thread)
    thread.start()
    return thread


def _run(target: Callable[..., Any], args: tuple) -> None:
    try:
        target(*args)
    finally:
        with _lock:
            _pending.discard(threading.current_thread())


def pending() -> list[threading.Thread]:
    """The threads of :func:`start_thread` not finished yet."""
    with _lock:
        return [thread for thread in _pending if thread.is_alive()]


def join_pending(timeout: float = EXIT_WAIT_S) -> bool:
    """Wait for the threads of :func:`start_thread` (those they start too), ``timeout`` seconds
    at most in all; return whether none is left. Called at the interpreter's exit."""
    deadline = time.monotonic() + timeout
    while True:
        threads = [thread for thread in pending() if thread is not threading.current_thread()]
        if not threads:
            return True
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        if time.monotonic() >= deadline:
            return not pending()
