"""Large arrays between the reading child and its parent through files in ``/dev/shm``
(:mod:`napari_sigma.io.reading_process.isolation`): the child writes an array's bytes to a file once
(:func:`_shared_file_of`) or decodes a cube straight into one (:func:`_shared_array`,
:func:`_write_shared`), and sends its name; the parent maps it copy-on-write and removes the name
at once (:func:`_map_shared_file`). The files of children that are gone are removed
(:func:`_remove_orphaned_shared_files`)."""

from __future__ import annotations

import mmap
import os
import time
from pathlib import Path
from typing import Any

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
