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
decoded straight into that file, :func:`~napari_sigma.io.reading.read_into`, so the counts are
never copied; row bands or tiles (rosettasciio's default chunks) of plain or byte-shuffled bytes
are decoded without HDF5 and written to it with ``pwrite``, :mod:`~napari_sigma.io._hdf5_direct`:
a 4 GiB ``.hspy`` costs the child 4 s of CPU and 0.02 M page faults instead of 11 s and 3.2 M).
It is restarted after a crash, a timeout or a cancel.

Lazy reads: a dask cube that reads the file when computed cannot leave the child, so the child
reads the file lazily and computes its sum spectrum chunk by chunk (every byte of the cube is
decoded once, in bounded memory); when that succeeds the parent reads the file lazily itself.
Event streams (JEOL ``.pts``/``.asw``) are different: the child decodes the stream once into an
:class:`~napari_sigma.io.events.EventCube` (a few MB for a 2 GiB cube) whose dask cube travels to
the parent as it is, lazy or not (an eager read densifies it in the parent): the file is decoded
once, and the parent never runs rosettasciio's numba code.

:func:`prewarm` starts the worker in the background (imports done before the first file comes).
"""

from __future__ import annotations

import atexit
import mmap
import os
import pickle
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from napari_sigma.compute.progress import Progress
from napari_sigma.errors import NotASpectrumImageError, SpectrumImageError

READ_FUNCTIONS = (
    "read_any",
    "read_spectrum_image",
    "read_spectrum",
    "probe_spectrum_image",
    "read_spectrum_image_within",
)
_POLL_S = 0.1
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


# ----------------------------------------------------------------------------- parent side


class _Worker:
    """One child process answering read requests over its stdin/stdout (length-prefixed pickles)."""

    def __init__(self, memory_bytes: int) -> None:
        env = dict(os.environ)
        package_root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
        env.setdefault("OMP_NUM_THREADS", "1")
        stderr = None if os.environ.get("NAPARI_SIGMA_READER_STDERR") else subprocess.DEVNULL
        self.memory_bytes = memory_bytes
        _remove_orphaned_shared_files()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "napari_sigma.io.isolation", str(memory_bytes)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=env,
            close_fds=True,
        )
        _widen_pipe(self.process.stdout.fileno())

    def alive(self) -> bool:
        return self.process.poll() is None

    def send(self, request: tuple[Any, ...]) -> None:
        payload = pickle.dumps(request, protocol=pickle.HIGHEST_PROTOCOL)
        stdin = self.process.stdin
        stdin.write(len(payload).to_bytes(8, "little") + payload)
        stdin.flush()

    def receive(self, deadline: float, poll_s: float = _POLL_S) -> Generator[None, None, Any]:
        """Read one answer, yielding every ``poll_s`` while waiting; EOFError when the child
        died."""
        header = yield from self._read_exactly(16, deadline, poll_s)
        n_buffers = int.from_bytes(header[8:], "little")
        sizes = yield from self._read_exactly(8 * n_buffers, deadline, poll_s)
        size = int.from_bytes(header[:8], "little")
        payload = yield from self._read_exactly(size, deadline, poll_s)
        buffers = []
        for i in range(n_buffers):
            size = int.from_bytes(sizes[8 * i : 8 * i + 8], "little")
            if size & _IN_SHARED_FILE:
                name = yield from self._read_exactly(size & ~_IN_SHARED_FILE, deadline, poll_s)
                buffers.append(_map_shared_file(Path(name.decode())))
            else:
                buffers.append((yield from self._read_exactly(size, deadline, poll_s)))
        return pickle.loads(payload, buffers=buffers)

    def _read_exactly(
        self, size: int, deadline: float, poll_s: float = _POLL_S
    ) -> Generator[None, None, bytearray]:
        fd = self.process.stdout.fileno()
        data = bytearray(size)
        view, done = memoryview(data), 0
        while done < size:
            if time.monotonic() > deadline:
                raise TimeoutError
            ready, _, _ = select.select([fd], [], [], poll_s)
            if not ready:
                yield
                continue
            count = os.readv(fd, [view[done : done + 2**24]])
            if not count:
                raise EOFError
            done += count
        return data

    def stop(self) -> int | None:
        """Kill the child and return its exit code (negative: the signal that ended it)."""
        if self.process.poll() is None:
            self.process.kill()
        try:
            code = self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:  # pragma: no cover - a kill always ends a process
            code = None
        for stream in (self.process.stdin, self.process.stdout):
            try:
                stream.close()
            except OSError:
                pass
        _remove_shared_files(self.process.pid)  # left by a child stopped mid-answer
        return code


# Arrays of at least this size travel through a file in shared memory (/dev/shm), not the pipe:
# the child writes it once, the parent maps it copy-on-write and removes its name at once.
_SHARED_FILE_MIN_BYTES = 64 * 2**20
_SHARED_DIR = Path("/dev/shm")
_IN_SHARED_FILE = 1 << 63  # flag in a buffer's size field: the bytes that follow are a file name


def _map_shared_file(path: Path) -> mmap.mmap:
    """Map an answer's array file copy-on-write (private pages) and remove its name."""
    try:
        with open(path, "rb") as file:
            return mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_COPY)
    finally:
        path.unlink(missing_ok=True)


def _shared_file_prefix(pid: int) -> str:
    return f"napari-sigma-read-{pid}-"


def _remove_shared_files(pid: int) -> None:
    if _SHARED_DIR.is_dir():
        for path in _SHARED_DIR.glob(_shared_file_prefix(pid) + "*"):
            path.unlink(missing_ok=True)


def _remove_orphaned_shared_files() -> list[Path]:
    """Remove the array files of reading children that are gone (their parent was killed
    before it could remove them: a crash, ``kill -9``): /dev/shm is memory, and a lazy
    cube's files are gigabytes that would stay taken until the machine restarts.
    A file whose child is alive (another napari's) is kept. Returns what was removed."""
    removed = []
    if not _SHARED_DIR.is_dir():
        return removed
    stem = _shared_file_prefix(0)[:-2]  # "napari-sigma-read-"
    for path in _SHARED_DIR.glob(stem + "*"):
        pid = path.name[len(stem) :].split("-", 1)[0]
        if pid.isdigit() and not _process_exists(int(pid)):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _widen_pipe(fd: int) -> None:
    """Make the pipe buffer 1 MiB (Linux): the counts of a large map come through it faster."""
    try:
        import fcntl

        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), 2**20)
    except (ImportError, OSError):
        pass


_worker: _Worker | None = None
_lock = threading.Lock()
# the thread holding _lock for a read and its file: a read waits for the child in steps, and a
# caller may run other code between them (napari's reader turns Qt's event loop)
_holder: dict[str, Any] = {"thread": None, "path": None}


def _get_worker(memory_bytes: int) -> _Worker:
    global _worker
    if _worker is None or not _worker.alive() or _worker.memory_bytes != memory_bytes:
        if _worker is not None:
            _worker.stop()
        _worker = _Worker(memory_bytes)
    return _worker


def _drop_worker() -> int | None:
    global _worker
    code = _worker.stop() if _worker is not None else None
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
    from napari_sigma.io.reading import _isolating

    if not _isolating(None) or not _lock.acquire(blocking=False):
        return False
    try:
        if _worker is not None and _worker.alive():
            return False
        _get_worker(ReadLimits.default().memory_bytes)
        return True
    finally:
        _lock.release()


def shutdown() -> None:
    """Stop the worker process (it is also stopped when the caller exits)."""
    with _lock:
        _drop_worker()


atexit.register(shutdown)


def read_steps(
    function: str,
    path: str | Path,
    lazy: bool = False,
    limits: ReadLimits | None = None,
    args: tuple = (),
    poll_s: float = _POLL_S,
) -> Generator[Progress, None, Any]:
    """Read a file in the worker process, yielding progress every ``poll_s`` (0.1 s) while the
    child works; closing it cancels.

    Parameters
    ----------
    function : str
        ``"read_any"``, ``"read_spectrum_image"``, ``"read_spectrum"``,
        ``"probe_spectrum_image"`` or ``"read_spectrum_image_within"`` of
        :mod:`napari_sigma.io.reading`.
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
    from napari_sigma.io import reading

    reading.check_before_reading(path)  # fast refusals need no child
    if _holder["thread"] == threading.get_ident():  # waiting for the lock would never end
        raise SpectrumImageError(
            path,
            f"{_holder['path'].name} is being read; read this file once that read is done "
            "(a read started from inside another one's wait)",
        )
    start = time.monotonic()
    with _lock:
        _holder.update(thread=threading.get_ident(), path=path)
        worker = _get_worker(limits.memory_bytes)
        finished = False
        try:
            worker.send((function, str(path), lazy, tuple(args)))
            answer = None
            receiving = worker.receive(start + limits.time_s, poll_s)
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
            raise SpectrumImageError(
                path,
                f"reading took longer than {limits.time_s:g} s and was stopped; the file may be "
                "corrupt (or raise NAPARI_SIGMA_READ_TIMEOUT)",
            ) from None
        except (EOFError, OSError):
            code = _drop_worker()
            raise SpectrumImageError(path, _death_cause(path, code)) from None
        finally:
            _holder.update(thread=None, path=None)
            if not finished and _worker is worker:
                _drop_worker()  # cancelled (generator closed) or failed: the child may be busy
    return _unpack(path, function, lazy, answer, args)


def _unpack(
    path: Path, function: str, lazy: bool, answer: tuple[str, Any, Any], args: tuple = ()
) -> Any:
    status, first, probe = answer
    if status == "ok" and function == "read_spectrum_image_within":
        from napari_sigma.io import reading

        if first is None:  # lazy, checked by the child: read the dask cube here
            return reading.read_spectrum_image(path, lazy=True, isolate=False), probe
        if not reading.reads_lazily(probe, *args):
            first = _densified(first)
        _reissue_warnings(first)
        return first, probe
    if status == "ok":
        if lazy and first is None:  # the child checked the file: read the dask cube here
            from napari_sigma.io import reading

            return getattr(reading, function)(path, lazy=True, isolate=False)
        if not lazy:
            first = _densified(first)
        _reissue_warnings(first)
        return first
    error_type = NotASpectrumImageError if status == "not_image" else SpectrumImageError
    raise error_type(path, first)


def _densified(data: Any) -> Any:
    """An image whose counts came as events (an eager read of an event stream) made dense."""
    from dataclasses import replace

    from napari_sigma.io.events import event_cube_of

    events = event_cube_of(getattr(data, "counts", None))
    if events is None:
        return data
    return replace(data, counts=events.dense(), metadata={**data.metadata, "lazy_from_file": False})


def _reissue_warnings(data: Any) -> None:
    """Issue in the caller the data warnings the child recorded (see io.validation)."""
    import warnings

    from napari_sigma.io.validation import DataWarning

    for note in getattr(data, "metadata", {}).get("warnings", []):
        warnings.warn(DataWarning(f"{data.source}: {note}"), stacklevel=4)


def _death_cause(path: Path, code: int | None) -> str:
    from napari_sigma.io import _rsciio as rh

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
) -> Any:
    """:func:`read_steps` run to its end (see there)."""
    from napari_sigma.compute.progress import run_to_completion

    return run_to_completion(read_steps(function, path, lazy, limits, args))


# ----------------------------------------------------------------------------- child side

_NO_MEMORY = (
    "not enough memory to load this file (or its header is corrupt); open it lazily, or raise "
    "NAPARI_SIGMA_READ_MEMORY"
)


def _serve(memory_bytes: int) -> None:  # pragma: no cover - runs in the child process
    """Answer read requests from stdin until it closes."""
    protocol_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # readers that print must not corrupt the answers
    if memory_bytes > 0:
        import resource

        resource.setrlimit(resource.RLIMIT_DATA, (memory_bytes, memory_bytes))
    protocol_in = sys.stdin.buffer
    import warnings

    warnings.simplefilter("ignore")  # recorded in the metadata and issued by the parent
    from napari_sigma.io import reading  # noqa: F401 - import once, before the first request

    _warm_imports(protocol_in)  # started ahead (prewarm); stops when a request waits

    while True:
        header = protocol_in.read(8)
        if len(header) < 8:
            return
        request = pickle.loads(protocol_in.read(int.from_bytes(header, "little")))
        function, path, lazy, args = request
        try:
            answer = _answer(function, Path(path), lazy, args)
            _close_placed_files()
            _send_answer(protocol_out, answer)
        finally:  # files placed for an answer that failed (sent ones are the parent's now)
            _close_placed_files()
            for placed in _PLACED.values():
                placed.unlink(missing_ok=True)
            _PLACED.clear()


_WARM_MODULES = ("dask.array", "numba", "rsciio.jeol", "rsciio.utils._fei_stream_readers")


def _warm_imports(requests) -> None:  # pragma: no cover - runs in the child process
    """Import what lazy and JEOL reads need before the first request comes (~1 s), then set up
    numba's CPU target (its registries: ~0.8-1.2 s that the first JEOL decode would pay); each
    step only while no request waits on ``requests``."""
    from importlib import import_module

    for name in _WARM_MODULES:
        if select.select([requests], [], [], 0)[0]:
            return
        try:
            import_module(name)
        except Exception:
            pass
    if select.select([requests], [], [], 0)[0]:
        return
    try:
        from numba.core.registry import cpu_target

        cpu_target.target_context.refresh()
    except Exception:
        pass


def _send_answer(stream, answer: tuple[str, Any, Any]) -> None:  # pragma: no cover - child
    """Write an answer: sizes, the pickle, then the large arrays' bytes (pickle protocol 5)."""
    buffers: list[pickle.PickleBuffer] = []
    try:
        payload = pickle.dumps(answer, protocol=5, buffer_callback=buffers.append)
    except MemoryError:
        buffers, payload = [], pickle.dumps(("error", _NO_MEMORY, None))
    except Exception as exc:  # an unpicklable metadata value
        buffers, payload = [], pickle.dumps(("error", f"could not be transferred ({exc})", None))
    views = [_shared_file_of(buffer.raw(), i) for i, buffer in enumerate(buffers)]
    sizes = [len(v) | _IN_SHARED_FILE if isinstance(v, bytes) else v.nbytes for v in views]
    header = len(payload).to_bytes(8, "little") + len(views).to_bytes(8, "little")
    stream.write(header + b"".join(size.to_bytes(8, "little") for size in sizes) + payload)
    for view in views:
        stream.write(view)
    stream.flush()


# Arrays the child decoded straight into a /dev/shm file: their address and size -> the file.
_PLACED: dict[tuple[int, int], Path] = {}
# ... and the open descriptor of that file, for writes without page faults (_write_shared)
_PLACED_FDS: dict[tuple[int, int], int] = {}


def _shared_array(shape: tuple[int, ...], dtype: Any) -> Any:  # pragma: no cover - child
    """A zero array on a new file in /dev/shm (its pages allocated at once), or None: no room.

    The array's bytes travel to the parent as the file's name (:func:`_shared_file_of`).
    """
    import numpy as np

    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    if nbytes == 0 or not _SHARED_DIR.is_dir():
        return None
    path = _SHARED_DIR / f"{_shared_file_prefix(os.getpid())}{time.monotonic_ns()}-placed"
    try:
        room = os.statvfs(_SHARED_DIR)
        if room.f_bavail * room.f_frsize < 2 * nbytes:
            return None
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.posix_fallocate(fd, 0, nbytes)  # room taken now: a full /dev/shm is no SIGBUS
            mapping = mmap.mmap(fd, nbytes, mmap.MAP_SHARED)
        except OSError:
            os.close(fd)
            raise
    except OSError:
        path.unlink(missing_ok=True)
        return None
    array = np.ndarray(shape, dtype, buffer=mapping)
    _PLACED[(array.ctypes.data, nbytes)] = path
    _PLACED_FDS[(array.ctypes.data, nbytes)] = fd
    return array


def _write_shared(array: Any, offset: int, data: memoryview) -> None:  # pragma: no cover - child
    """Write bytes at ``offset`` of a :func:`_shared_array`'s memory through its file
    (``pwrite``: the kernel copies into the file's pages, no page fault per page)."""
    fd = _PLACED_FDS[(array.ctypes.data, array.nbytes)]
    done = 0
    while done < len(data):
        done += os.pwrite(fd, data[done:], offset + done)


def _close_placed_files() -> None:  # pragma: no cover - child
    for fd in _PLACED_FDS.values():
        os.close(fd)
    _PLACED_FDS.clear()


def _shared_file_of(view: memoryview, index: int) -> memoryview | bytes:  # pragma: no cover - child
    """Write a large array's bytes to a file in /dev/shm and return its name (bytes).

    An array already on such a file (:func:`_shared_array`) gives that file's name. Small
    arrays, a missing /dev/shm, too little room in it or a failed write: the view itself,
    which then goes through the pipe.
    """
    if view.nbytes < _SHARED_FILE_MIN_BYTES or not _SHARED_DIR.is_dir():
        return view
    import numpy as np

    placed = _PLACED.pop((np.frombuffer(view, np.uint8).ctypes.data, view.nbytes), None)
    if placed is not None:
        return str(placed).encode()
    path = _SHARED_DIR / f"{_shared_file_prefix(os.getpid())}{time.monotonic_ns()}-{index}"
    try:
        room = os.statvfs(_SHARED_DIR)
        if room.f_bavail * room.f_frsize < 2 * view.nbytes:
            return view
        with open(path, "wb") as file:
            file.write(view)
    except OSError:
        path.unlink(missing_ok=True)
        return view
    return str(path).encode()


def _answer(function: str, path: Path, lazy: bool, args: tuple = ()) -> tuple[str, Any, Any]:
    from napari_sigma.io import _rsciio as rh
    from napari_sigma.io import reading
    from napari_sigma.io.events import event_cube_of

    fmt = rh.FORMATS.get(path.suffix.lower())
    if fmt is not None and fmt.events:
        lazy = True  # the events travel; the parent densifies them for an eager read
    try:
        if function == "read_spectrum_image_within":  # one lazy opening decides and reads
            image, probe = reading.read_within_steps(
                path, *args, _shared_array, _write_shared, _SHARED_FILE_MIN_BYTES
            )
            if hasattr(image.counts, "dask") and event_cube_of(image.counts) is None:
                reading.decode_all(image)  # lazy: checked here, read again by the parent
                return ("ok", None, probe)
            return ("ok", image, probe)
        result = None
        if not lazy and function in ("read_spectrum_image", "read_any"):
            # a chunked cube is decoded straight into /dev/shm: no copy on the way to the parent
            result = reading.read_into(
                function, path, _shared_array, _SHARED_FILE_MIN_BYTES, _write_shared
            )
        if result is None:
            result = getattr(reading, function)(path, lazy=lazy, isolate=False)
        if hasattr(getattr(result, "counts", None), "dask"):
            if event_cube_of(result.counts) is not None:
                return ("ok", result, None)  # decoded once, here; a few MB
            reading.decode_all(result)
            return ("ok", None, None)
        return ("ok", result, None)
    except NotASpectrumImageError as error:
        return ("not_image", error.cause, None)
    except SpectrumImageError as error:
        return ("error", error.cause, None)
    except MemoryError:
        return ("error", _NO_MEMORY, None)
    except Exception as exc:
        text = f"{type(exc).__name__}: {exc}"[:300]
        return ("error", f"could not be read; it may be truncated or corrupt ({text})", None)


if __name__ == "__main__":  # pragma: no cover - the worker process
    _serve(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
