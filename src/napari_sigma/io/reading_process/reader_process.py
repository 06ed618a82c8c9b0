"""The reading child process seen from its parent (:mod:`napari_sigma.io.reading_process.isolation`):
:class:`_Worker` starts it (``python -m napari_sigma.io.reading_process.isolation``), sends it requests and reads
its answers (length-prefixed pickles; large arrays through :mod:`~napari_sigma.io.reading_process.shared_arrays`)
through its pipes, and stops it."""

from __future__ import annotations

import os
import pickle
import select
import subprocess
import sys
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

from napari_sigma.io.reading_process.shared_arrays import (
    _IN_SHARED_FILE,
    _map_shared_file,
    _remove_orphaned_shared_files,
    _remove_shared_files,
)

_POLL_S = 0.1


class _Worker:
    """One child process answering read requests over its stdin/stdout (length-prefixed pickles)."""

    def __init__(self, memory_bytes: int, warm: bool = True) -> None:
        """Start the child; ``warm``: it imports what lazy and JEOL reads need while no
        request waits (:func:`~napari_sigma.io.reading_process.reader_child._warm_imports`)."""
        env = dict(os.environ)
        package_root = str(Path(__file__).resolve().parents[3])
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
        env.setdefault("OMP_NUM_THREADS", "1")
        stderr = None if os.environ.get("NAPARI_SIGMA_READER_STDERR") else subprocess.DEVNULL
        self.memory_bytes = memory_bytes
        _remove_orphaned_shared_files()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "napari_sigma.io.reading_process.isolation",
                str(memory_bytes),
                *(() if warm else ("--no-warm",)),
            ],
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

    def stop(self, wait: bool = True) -> int | None:
        """Kill the child and return its exit code (negative: the signal that ended it).

        ``wait=False`` (the caller is exiting): the child is killed but not waited for (None):
        the kernel frees its memory (0.02-0.1 s for a child that read a 256² cube, more for a
        larger one) after the caller has gone, and init reaps it.
        """
        if self.process.poll() is None:
            self.process.kill()
        code = None
        if wait:
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


def _widen_pipe(fd: int) -> None:
    """Make the pipe buffer 1 MiB (Linux): the counts of a large map come through it faster."""
    try:
        import fcntl

        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), 2**20)
    except (ImportError, OSError):
        pass
