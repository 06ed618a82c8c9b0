"""numba compilation applied on first use, for the package's few compiled kernels, and numba's
on-disk cache filled by a child process before napari's first run needs it.

:func:`lazy_njit` wraps a module-level function: numba is imported, and the function compiled
(``nogil=True``: other threads, napari's main thread among them, run meanwhile; ``cache=True``:
numba's on-disk cache, in ``__pycache__`` beside the source when it is writable, else
``NUMBA_CACHE_DIR`` or the user's cache folder), on its first call only. A path that never
calls it pays neither numba's import nor a compile.

Compiling holds the GIL (numba's typing and LLVM's lowering run in Python): the first run after
an install compiled compute/flow.py and unmixing/_active_set.py in napari's analysis worker,
5.6 s of CPU with GIL bursts of 111 ms (quiet) up to 1 s (load 36) that stopped napari's main
thread. :func:`start_warm_up` (called by the plugin's preload when napari shows a spectrum
image, before the user can press Run) compiles them in a child process at a lower priority,
into the same cache: the worker then only loads them. The kernels and the argument types the
analysis passes are :data:`WARM_UPS`'s; a kernel called with other types compiles as before.
Two processes warming at once take turns (a lock file): the second loads what the first wrote.
Where no cache folder is writable the child compiles for nothing and exits; napari is unchanged.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

_LOCK = threading.Lock()

#: ``(module, function)`` of each warm-up: calls its module's kernels on tiny arrays of the
#: types the analysis passes (:func:`_warm_up_kernels`, in the child process).
WARM_UPS = (
    ("napari_sigma.compute.flow", "warm_up"),  # the twins' and the split test's minimum cut
    ("napari_sigma.unmixing._active_set", "warm_up"),  # NNLS abundances from 2**18 pixels
    ("napari_sigma.phases._label_sums", "warm_up"),  # integer phase sums from 2**18 pixels
    ("napari_sigma.minerals._gather", "warm_up"),  # the host correction's gather, 2**18 pixels
)
WARM_UP_NICE = 10  # added to the parent's nice in the child (it holds none of napari's GIL)
WARM_UP_WAIT_S = 60.0  # the longest a first call waits for the child before compiling itself
ENV_SWITCH = "NAPARI_SIGMA_WARM_JIT"  # "0": no child (the first call compiles, as before)
_child: dict[str, Any] = {"process": None, "done": threading.Event()}
_child_lock = threading.Lock()


class lazy_njit:
    """``numba.njit(cache=True, nogil=True, **options)(function)``, made on the first call.

    The first call waits for a warm-up child still compiling (:func:`wait_for_warm_up`), so
    that it loads the child's code instead of compiling the same at the same time."""

    def __init__(self, function: Callable[..., Any] | None = None, **options: Any) -> None:
        self.options = {"cache": True, "nogil": True, **options}
        self.function = function
        self.compiled: Callable[..., Any] | None = None
        if function is not None:
            self.__doc__ = function.__doc__
            self.__name__ = function.__name__

    def __call__(self, *args: Any) -> Any:
        if self.function is None:  # @lazy_njit(option=...): the function comes now
            return type(self)(args[0], **self.options)
        compiled = self.compiled
        if compiled is None:
            wait_for_warm_up()
            with _LOCK:
                if self.compiled is None:
                    from numba import njit

                    self.compiled = njit(**self.options)(self.function)
                compiled = self.compiled
        return compiled(*args)


def start_warm_up() -> bool:
    """Start the child process that fills numba's cache with :data:`WARM_UPS`' kernels (once
    per process); return whether it was started now. Returns at once.

    Not started when ``NAPARI_SIGMA_WARM_JIT=0`` or in a frozen application (no interpreter to
    start). The child runs at the parent's nice + :data:`WARM_UP_NICE`, one thread.
    """
    if os.environ.get(ENV_SWITCH, "1") == "0" or getattr(sys, "frozen", False):
        return False
    with _child_lock:
        if _child["process"] is not None:
            return False
        env = dict(os.environ)
        package_root = str(Path(__file__).resolve().parents[2])  # this very package in the child
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
        env.setdefault("OMP_NUM_THREADS", "1")
        env.setdefault("NUMBA_NUM_THREADS", "1")
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "napari_sigma.compute._jit", str(WARM_UP_NICE)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=env,
                close_fds=True,
            )
        except (OSError, ValueError):  # no interpreter to start: the first call compiles
            _child["process"] = False
            _child["done"].set()
            return False
        _child["process"] = process
    threading.Thread(
        target=_reap, args=(process,), name="napari-sigma-jit-warm-up", daemon=True
    ).start()
    return True


def _reap(process: subprocess.Popen) -> None:
    try:
        process.wait()
    finally:
        _child["done"].set()


def warm_up_running() -> bool:
    """Whether a warm-up child of this process is still compiling."""
    return bool(_child["process"]) and not _child["done"].is_set()


def wait_for_warm_up(timeout: float = WARM_UP_WAIT_S) -> bool:
    """Wait (without the GIL) for this process's warm-up child, if one is running; return
    whether none is running any more. At once when none was started (the CLI, the API)."""
    if not _child["process"]:
        return True
    return _child["done"].wait(timeout)


def _warm_up_kernels(nice: int) -> int:  # pragma: no cover - runs in the child process
    """The child: lower its priority, then run every warm-up (each one's failure ignored)
    under the lock file; return the number that ran."""
    from importlib import import_module

    try:
        os.nice(nice)
    except (AttributeError, OSError):
        pass
    done = 0
    with _cache_lock():
        for module, name in WARM_UPS:
            try:
                getattr(import_module(module), name)()
                done += 1
            except Exception:  # numba missing or no cache: the parent compiles
                continue
    return done


class _cache_lock:
    """An exclusive lock file for the user (``flock``), so that two napari processes starting
    together do not compile the same kernels at once; nothing where it cannot be had."""

    def __enter__(self) -> _cache_lock:
        self.handle = None
        try:
            import fcntl
            import tempfile

            path = Path(tempfile.gettempdir()) / f"napari-sigma-jit-{os.getuid()}.lock"
            self.handle = open(path, "a")  # held until __exit__
            fcntl.flock(self.handle, fcntl.LOCK_EX)
        except (ImportError, OSError, AttributeError):
            if self.handle is not None:
                self.handle.close()
            self.handle = None
        return self

    def __exit__(self, *_: Any) -> None:
        if self.handle is not None:
            self.handle.close()  # closing releases the lock


if __name__ == "__main__":  # pragma: no cover - the warm-up child
    _warm_up_kernels(int(sys.argv[1]) if len(sys.argv) > 1 else WARM_UP_NICE)
