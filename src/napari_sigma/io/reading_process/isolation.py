"""Reading files in a child process, so that a crashing or hanging reader cannot kill the caller.

rosettasciio decodes vendor files partly in compiled code (Bruker's packed ``.bcf`` decoder, HDF5,
bzip2 ...). On a corrupt file that code can crash the process (a segmentation fault or bus error),
loop forever or allocate without bound. In napari that is the whole session lost, in a batch every
later file. Here the reading runs in a separate Python process (started with ``subprocess``, i.e.
spawned, never forked: a fork of a napari/Qt/torch process is not safe) under a time limit and a
memory limit; the parent gets the result, or a :class:`~napari_sigma.errors.SpectrumImageError`
naming the file and the cause ("the Bruker Esprit hypermap reader crashed on this file
(segmentation fault): it is probably corrupt").

One worker process is started on the first isolated read (about 1 s: Python, numpy and
rosettasciio imports) and kept for the next reads (a few ms each, plus the transfer of the counts:
through the pipe below 64 MiB, above it through a file in ``/dev/shm`` that the child writes once
and the parent maps copy-on-write, its name removed at once; a chunked cube, e.g. an ``.hspy``, is
decoded straight into that file, :func:`~napari_sigma.io.readers.reading.read_into`, so the counts are
never copied; row bands or tiles (rosettasciio's default chunks) of plain or byte-shuffled bytes
are decoded without HDF5 and written to it with ``pwrite``, :mod:`~napari_sigma.io.readers._hdf5_direct`:
a 4 GiB ``.hspy`` costs the child 4 s of CPU and 0.02 M page faults instead of 11 s and 3.2 M).
It is restarted after a crash, a timeout or a cancel.

Lazy reads: a dask cube that reads the file when computed cannot leave the child, so the child
reads the file lazily and computes its sum spectrum chunk by chunk (every byte of the cube is
decoded once, in bounded memory); when that succeeds the parent reads the file lazily itself.
Event streams (JEOL ``.pts``/``.asw``) are different: the child decodes the stream once into an
:class:`~napari_sigma.io.readers.events.EventCube` (a few MB for a 2 GiB cube) whose dask cube travels to
the parent as it is, lazy or not (an eager read densifies it in the parent): the file is decoded
once, and the parent never runs rosettasciio's numba code.

:func:`prewarm` starts the worker in the background (imports done before the first file comes).

Arriving reads (``read_steps(..., arriving=True)``, ``napari-sigma run`` under its default memory
limit): a cube that the child decodes without HDF5 (an ``.hspy`` of unsigned counts in tiles or
row bands, read into memory) comes back as soon as the file is opened, as ``("arriving", image,
probe)``; the child then decodes first the rows the analysis samples, then the rest in file
order, sending ``("rows", ranges, None)`` after each step and ``("done", None, None)`` or an error
at the end. A thread of the parent (:func:`_follow_arriving`) records the rows
(:mod:`napari_sigma.compute.arrival`, whose waits the analysis calls before it reads rows) and
holds the read lock until the end; an error, a crash or the time limit is raised from the
analysis' next wait, as one line naming the file.

This module holds the parent's side (:func:`read_steps`, :func:`read_isolated`,
:func:`prewarm`, the worker's lifetime); the rest lives by domain:

- :mod:`~napari_sigma.io.reading_process.reader_process`: the child process seen from the parent (``_Worker``:
  its start, the requests and answers through its pipes);
- :mod:`~napari_sigma.io.reading_process.reader_child`: the child's side (its loop, ``_serve``, and its answer to
  a request, ``_answer``); ``python -m napari_sigma.io.reading_process.isolation`` still starts it;
- :mod:`~napari_sigma.io.reading_process.shared_arrays`: the large arrays' files in ``/dev/shm`` (written by the
  child, mapped by the parent, removed when their child is gone).

Their names that tests use are importable from here as before; change them in their own
modules, patch them in the module that reads them.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
import time
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from napari_sigma.compute.progress import Progress
from napari_sigma.errors import NotASpectrumImageError, SpectrumImageError

# moved by domain (eighteenth session): importable from here as before; a patch takes effect in
# the module that reads the name
from napari_sigma.io.reading_process.reader_child import (
    _serve,  # the worker process' loop (__main__ below)
)
from napari_sigma.io.reading_process.reader_process import _POLL_S, _Worker
from napari_sigma.io.reading_process.shared_arrays import (  # noqa: F401
    _SHARED_DIR,
    _SHARED_FILE_MIN_BYTES,
    _shared_file_prefix,
)

READ_FUNCTIONS = (
    "read_any",
    "read_spectrum_image",
    "read_spectrum",
    "probe_spectrum_image",
    "read_spectrum_image_within",
)

_SIGNAL_NAMES = {
    signal.SIGSEGV: "segmentation fault",
    signal.SIGBUS: "bus error",
    signal.SIGILL: "illegal instruction",
    signal.SIGFPE: "floating-point exception",
    signal.SIGABRT: "abort",
}


@dataclass(frozen=True)
class ReadLimits:
    """Limits of an isolated read.

    Parameters
    ----------
    time_s : float
        Wall-clock seconds before the reader is stopped and the file refused. The default
        (``NAPARI_SIGMA_READ_TIMEOUT`` or 300 s) leaves room for a 2 GiB JEOL cube on a slow disk.
    memory_bytes : int
        Data memory the child may allocate (``RLIMIT_DATA``); beyond it the reader gets a
        MemoryError. Default ``NAPARI_SIGMA_READ_MEMORY`` bytes or 75 % of physical memory.
    """

    time_s: float = 300.0
    memory_bytes: int = 0

    @classmethod
    def default(cls) -> ReadLimits:
        """Limits from the environment, or 300 s and 75 % of physical memory."""
        time_s = float(os.environ.get("NAPARI_SIGMA_READ_TIMEOUT", 300.0))
        memory = int(os.environ.get("NAPARI_SIGMA_READ_MEMORY", 0)) or int(
            0.75 * _physical_memory()
        )
        return cls(time_s=time_s, memory_bytes=memory)


def _physical_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not Linux/macOS
        return 8 * 2**30


_worker: _Worker | None = None

_lock = threading.Lock()

# the thread holding _lock for a read and its file: a read waits for the child in steps, and a
# caller may run other code between them (napari's reader turns Qt's event loop)
_holder: dict[str, Any] = {"thread": None, "path": None}


def _get_worker(memory_bytes: int, warm: bool = True) -> _Worker:
    global _worker
    if _worker is None or not _worker.alive() or _worker.memory_bytes != memory_bytes:
        if _worker is not None:
            _worker.stop()
        _worker = _Worker(memory_bytes, warm)
    return _worker


def _drop_worker(wait: bool = True) -> int | None:
    global _worker
    code = _worker.stop(wait) if _worker is not None else None
    _worker = None
    return code


def prewarm() -> bool:
    """Start the worker now, in the background, so that the first read finds it ready.

    Returns at once (the child starts and imports numpy, dask and the readers on its own);
    nothing happens when isolation is off (``NAPARI_SIGMA_ISOLATE=0``), a worker is already
    running, or a read holds the worker. Safe to call repeatedly.

    Returns
    -------
    bool
        Whether a worker process was started.
    """
    from napari_sigma.io.readers.reading import _isolating

    if not _isolating(None) or not _lock.acquire(blocking=False):
        return False
    try:
        if _worker is not None and _worker.alive():
            return False
        _get_worker(ReadLimits.default().memory_bytes)
        return True
    finally:
        _lock.release()


def start_for_a_read() -> bool:
    """Start the worker now for a read that follows at once (``napari-sigma run``: before the
    caller imports numpy and its analysis); unlike :func:`prewarm`, the child imports nothing
    ahead (the request comes before it would be done), and nothing is imported here that the
    caller would not import anyway. Whether a worker process was started (not when one is
    running or a read holds the lock)."""
    if not _lock.acquire(blocking=False):
        return False
    try:
        if _worker is not None and _worker.alive():
            return False
        _get_worker(ReadLimits.default().memory_bytes, warm=False)
        return True
    finally:
        _lock.release()


def shutdown(wait: bool = True) -> None:
    """Stop the worker process (it is also stopped when the caller exits; an arriving read
    still going is stopped). ``wait=False``: the child is killed, not waited for."""
    _stop_following.set()
    with _lock:
        _stop_following.clear()
        _drop_worker(wait)


def _stop_at_exit() -> None:
    """:func:`shutdown` as the caller exits: the child is killed but its end is not waited for
    (its memory is freed by the kernel after the caller has gone: up to 0.1 s of a 256²
    ``napari-sigma run``'s wall at its end)."""
    shutdown(wait=False)


atexit.register(_stop_at_exit)


def read_steps(
    function: str,
    path: str | Path,
    lazy: bool = False,
    limits: ReadLimits | None = None,
    args: tuple = (),
    poll_s: float = _POLL_S,
    arriving: bool = False,
    map_index: int = 0,
) -> Generator[Progress, None, Any]:
    """Read a file in the worker process, yielding progress every ``poll_s`` (0.1 s) while the
    child works; closing it cancels.

    Parameters
    ----------
    function : str
        ``"read_any"``, ``"read_spectrum_image"``, ``"read_spectrum"``,
        ``"probe_spectrum_image"`` or ``"read_spectrum_image_within"`` of
        :mod:`napari_sigma.io.readers.reading`.
    path : str or Path
        The file.
    lazy : bool
        Return dask counts (the file is decoded once in the child first, see the module notes).
    limits : ReadLimits, optional
        Time and memory limits (default :meth:`ReadLimits.default`).
    args : tuple
        The function's further arguments (``read_spectrum_image_within``: its two sizes).
    poll_s : float
        How long one wait for the child lasts before a progress report is yielded (napari's
        reader waits ~10 ms, turning Qt's event loop in between).
    arriving : bool
        ``read_spectrum_image_within`` only: a cube the child decodes without HDF5 (an
        ``.hspy`` of unsigned counts in tiles or row bands, in memory) is returned as soon as
        the file is opened, its rows arriving meanwhile (:mod:`napari_sigma.compute.arrival`:
        whoever reads the counts waits for the rows it reads; a thread follows the child's
        reports and holds the read lock until the read's end). The caller must read the counts
        through those waits only. Any other file is read as without it.
    map_index : int
        Which of the file's spectrum images (0: the first; see ``read_spectrum_image``).

    Returns
    -------
    SpectrumImage or Spectrum
        What the function returns.

    Raises
    ------
    SpectrumImageError
        Whatever the reading raises, and a crash, a timeout or a memory error of the reader.
    """
    if function not in READ_FUNCTIONS:
        raise ValueError(f"unknown read function {function!r}")
    path = Path(path)
    limits = limits or ReadLimits.default()
    from napari_sigma.io.readers import reading

    reading.check_before_reading(path)  # fast refusals need no child
    if _holder["thread"] == threading.get_ident():  # waiting for the lock would never end
        raise SpectrumImageError(
            path,
            f"{_holder['path'].name} is being read; read this file once that read is done "
            "(a read started from inside another one's wait)",
        )
    start = time.monotonic()
    arriving = arriving and function == "read_spectrum_image_within"
    deadline = start + limits.time_s
    _lock.acquire()
    handed_over = False  # the lock, to the thread that follows an arriving read's rows
    try:
        _holder.update(thread=threading.get_ident(), path=path)
        worker = _get_worker(limits.memory_bytes)
        finished = False
        try:
            worker.send((function, str(path), lazy, tuple(args), arriving, map_index))
            answer = None
            receiving = worker.receive(deadline, poll_s)
            while True:
                try:
                    next(receiving)
                except StopIteration as stop:
                    answer = stop.value
                    break
                yield Progress("reading", 0, 0, f"reading {path.name}")
            finished = True
        except TimeoutError:
            _drop_worker()
            raise SpectrumImageError(path, _timeout_cause(limits)) from None
        except (EOFError, OSError):
            code = _drop_worker()
            raise SpectrumImageError(path, _death_cause(path, code)) from None
        finally:
            _holder.update(thread=None, path=None)
            if not finished and _worker is worker:
                _drop_worker()  # cancelled (generator closed) or failed: the child may be busy
        if answer[0] == "arriving":
            image, probe = answer[1], answer[2]
            _reissue_warnings(image)
            _follow_arriving(worker, path, image.counts, deadline, limits, poll_s)
            handed_over = True
            return image, probe
    finally:
        if not handed_over:
            _lock.release()
    return _unpack(path, function, lazy, answer, args, map_index)


def _timeout_cause(limits: ReadLimits) -> str:
    return (
        f"reading took longer than {limits.time_s:g} s and was stopped; the file may be "
        "corrupt (or raise NAPARI_SIGMA_READ_TIMEOUT)"
    )


# an arriving read's following thread: set to stop it (the process exits)
_stop_following = threading.Event()


def _follow_arriving(
    worker: _Worker, path: Path, counts: Any, deadline: float, limits: ReadLimits, poll_s: float
) -> threading.Thread:
    """Record ``counts`` as arriving (:mod:`napari_sigma.compute.arrival`) and start the thread
    that reads the child's messages of its rows until the read's end, holding the read lock
    (taken by the caller, released by the thread). A failure (the child's error, its death,
    the time limit) is raised by the next wait for the counts' rows."""
    from napari_sigma.compute import arrival as arrivals

    record = arrivals.register(counts, path.name)
    _holder.update(thread=None, path=path)

    def follow() -> None:
        error: SpectrumImageError | None = None
        try:
            while True:
                receiving = worker.receive(deadline, poll_s)
                while True:
                    try:
                        next(receiving)
                    except StopIteration as stop:
                        status, first, _ = stop.value
                        break
                    if _stop_following.is_set():
                        raise EOFError
                if status == "rows":
                    record.mark(first)
                elif status == "done":
                    arrivals.forget(record)  # first: a woken waiter finds the counts whole
                    record.finish()
                    return
                else:
                    error = SpectrumImageError(path, first)
                    return
        except TimeoutError:
            _drop_worker()
            error = SpectrumImageError(path, _timeout_cause(limits))
        except (EOFError, OSError):
            code = _drop_worker()
            error = SpectrumImageError(path, _death_cause(path, code))
        except BaseException as exc:  # pragma: no cover - a bug: the waits must not hang
            _drop_worker()
            error = SpectrumImageError(path, f"the read stopped ({type(exc).__name__}: {exc})")
        finally:
            if error is not None:
                record.fail(error)
            _holder.update(thread=None, path=None)
            _lock.release()

    thread = threading.Thread(target=follow, name="napari-sigma arriving read", daemon=True)
    thread.start()
    return thread


def _unpack(
    path: Path,
    function: str,
    lazy: bool,
    answer: tuple[str, Any, Any],
    args: tuple = (),
    map_index: int = 0,
) -> Any:
    status, first, probe = answer
    if status == "ok" and function == "read_spectrum_image_within":
        from napari_sigma.io.readers import reading

        if first is None:  # lazy, checked by the child: read the dask cube here
            _before_importing()
            image = reading.read_spectrum_image(path, lazy=True, isolate=False, map_index=map_index)
            return image, probe
        if not reading.reads_lazily(probe, *args):
            first = _densified(first)
        _reissue_warnings(first)
        return first, probe
    if status == "ok":
        if lazy and first is None:  # the child checked the file: read the dask cube here
            _before_importing()
            from napari_sigma.io.readers import reading

            return getattr(reading, function)(path, lazy=True, isolate=False, map_index=map_index)
        if not lazy:
            first = _densified(first)
        _reissue_warnings(first)
        return first
    error_type = NotASpectrumImageError if status == "not_image" else SpectrumImageError
    raise error_type(path, first)


def _before_importing() -> None:
    """Wait for ``napari-sigma run``'s import thread, if one runs
    (:func:`napari_sigma.pipeline.preimport.wait_for_imports`): the lazy read about to open the
    file here imports its reader, and two threads never import at once."""
    preimport = sys.modules.get("napari_sigma.pipeline.preimport")
    if preimport is not None:
        preimport.wait_for_imports()


def _densified(data: Any) -> Any:
    """An image whose counts came as events (an eager read of an event stream) made dense."""
    from dataclasses import replace

    from napari_sigma.io.readers.events import event_cube_of

    events = event_cube_of(getattr(data, "counts", None))
    if events is None:
        return data
    return replace(data, counts=events.dense(), metadata={**data.metadata, "lazy_from_file": False})


def _reissue_warnings(data: Any) -> None:
    """Issue in the caller the data warnings the child recorded (see io.validation)."""
    import warnings

    from napari_sigma.io.readers.validation import DataWarning

    for note in getattr(data, "metadata", {}).get("warnings", []):
        warnings.warn(DataWarning(f"{data.source}: {note}"), stacklevel=4)


def _death_cause(path: Path, code: int | None) -> str:
    from napari_sigma.io.readers import _rsciio as rh

    fmt = rh.FORMATS.get(path.suffix.lower())
    reader = f"the {fmt.description} reader" if fmt else "the reader"
    if code is not None and code < 0 and -code in _SIGNAL_NAMES:
        return f"{reader} crashed on this file ({_SIGNAL_NAMES[-code]}): it is probably corrupt"
    if code == -signal.SIGKILL:
        return f"{reader} was killed while reading this file (out of memory?)"
    return f"{reader} stopped unexpectedly on this file (exit code {code}): it is probably corrupt"


def read_isolated(
    function: str,
    path: str | Path,
    lazy: bool = False,
    limits: ReadLimits | None = None,
    args: tuple = (),
    arriving: bool = False,
    map_index: int = 0,
) -> Any:
    """:func:`read_steps` run to its end (see there)."""
    from napari_sigma.compute.progress import run_to_completion

    steps = read_steps(function, path, lazy, limits, args, arriving=arriving, map_index=map_index)
    return run_to_completion(steps)


if __name__ == "__main__":  # pragma: no cover - the worker process
    _serve(int(sys.argv[1]) if len(sys.argv) > 1 else 0, warm="--no-warm" not in sys.argv)
