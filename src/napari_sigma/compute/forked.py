"""A map over a few long, independent items shared with a forked child process (Linux).

CPython runs one thread of Python at a time, so work that is mostly Python (the naming of a
map's phases: line fits, the matrix correction, the library's ranking) does not get faster with
threads. :func:`forked_map` forks the process once: the parent takes the items from the front,
the child from the back, each item exactly once (a claim under a lock in shared memory), and the
child sends its results back pickled. The results come out in the items' order; each is what the
same function made of the same item in a copy of the same process, so they are those of the
serial map.

The parent never depends on the child: an item the child does not deliver (it failed on it, it
died, it is slower than :data:`CHILD_PATIENCE` allows) is computed by the parent, so an exception
is raised where the serial map raises it. The child is killed and reaped when the map ends or is
closed.

The fork is used only where it is safe and pays: the process allowed it
(:func:`allow_forked_maps`: the command line and its benchmark, not napari or the API), Linux,
two or more CPUs for the process, no more tasks runnable on the machine than those CPUs (a
core idle for the child: on a loaded machine it would only share this process's CPU time),
two or more items, the caller the process's only thread (a lock held by another thread at the
fork would stay held in the child), and ``NAPARI_SIGMA_FORKED_PHASES`` not ``0``. Otherwise the
map is serial. A SQLite connection does not cross the fork: xraydb's opens a new one in the child
(:mod:`napari_sigma.xray.xraydb_direct`). napari's process does not allow forked maps: in a
pytest process with napari and Qt imported, children were seen to stop inside SQLite (the
parent then waited out `CHILD_PATIENCE` and named those phases itself).
"""

from __future__ import annotations

import mmap
import os
import pickle
import select
import signal
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from napari_sigma.env_flags import env_flag

_ALLOWED = False


CHILD_PATIENCE = 3.0
"""After its own items, the parent waits for the child's at most this many times as long as its
own took (and at least `MIN_WAIT_S`), then computes what is missing itself."""
MIN_WAIT_S = 5.0

_HEADER = struct.Struct("qq")  # item index, payload length (-1: the child failed on the item)
_PIPE_BYTES = 1 << 20


def allow_forked_maps(allowed: bool = True) -> None:
    """Let :func:`forked_map` fork in this process (a process whose caller knows that no other
    library state forbids it: the command line, its benchmark)."""
    global _ALLOWED
    _ALLOWED = bool(allowed)


def forked_map(function: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Any]:
    """``function(item)`` for every item, in order, items shared with a forked child where
    allowed (see the module docstring); results and exceptions those of the serial map."""
    items = list(items)
    shared = _Shared.start(function, items) if _forkable(len(items)) else None
    if shared is None:
        for item in items:
            yield function(item)
        return
    try:
        yield from shared.results()
    finally:
        shared.stop()


def _forkable(n_items: int) -> bool:
    if not _ALLOWED or n_items < 2 or not sys.platform.startswith("linux"):
        return False
    if not hasattr(os, "fork") or threading.active_count() != 1:
        return False
    if not env_flag("NAPARI_SIGMA_FORKED_PHASES"):
        return False
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return False
    return cpus >= 2 and not _busy(cpus)


def _busy(cpus: int) -> bool:
    """Whether the machine has no core idle for a child: more tasks runnable now than the
    process's CPUs (``/proc/loadavg``'s fourth field, this one included), or a one-minute load
    average of CPUs + 1 or more. On a loaded machine a child only shares this process's CPU
    time, and the tables it builds again cost more than it saves."""
    try:
        with open("/proc/loadavg") as loadavg:
            fields = loadavg.read().split()
        return int(fields[3].split("/")[0]) > cpus or float(fields[0]) >= cpus + 1
    except (OSError, IndexError, ValueError):
        return True


class _Claims:
    """Which items are taken: the next from the front (the parent's) and from the back (the
    child's), in anonymous shared memory, changed under a lock (a pipe holding one token)."""

    def __init__(self, n_items: int) -> None:
        self.memory = mmap.mmap(-1, _HEADER.size)  # MAP_SHARED: the child sees the same bytes
        _HEADER.pack_into(self.memory, 0, 0, n_items - 1)
        self.lock_read, self.lock_write = os.pipe()
        os.write(self.lock_write, b"x")

    def take(self, front: bool) -> int | None:
        """The next item from the front or the back, or None when every item is taken."""
        os.read(self.lock_read, 1)
        try:
            return self._take_unlocked(front)
        finally:
            os.write(self.lock_write, b"x")

    def _take_unlocked(self, front: bool) -> int | None:
        first, last = _HEADER.unpack_from(self.memory, 0)
        if first > last:
            return None
        if front:
            _HEADER.pack_into(self.memory, 0, first + 1, last)
            return first
        _HEADER.pack_into(self.memory, 0, first, last - 1)
        return last

    def take_front(self, child_alive: Callable[[], bool]) -> int | None:
        """The parent's take: as `take`, but a child that died holding the token does not
        block it (the items are then read without the lock: no one else takes them)."""
        while True:
            ready, _, _ = select.select([self.lock_read], [], [], 0.5)
            if ready:
                return self.take(front=True)
            if not child_alive():
                return self._take_unlocked(front=True)

    def close(self) -> None:
        for fd in (self.lock_read, self.lock_write):
            _close(fd)
        self.memory.close()


class _Shared:
    """A forked child taking items from the back and the parent's side of it."""

    def __init__(self, function, items, claims: _Claims, pid: int, pipe: int) -> None:
        self.function, self.items, self.claims = function, items, claims
        self.pid, self.pipe = pid, pipe
        self.buffer = bytearray()
        self.delivered: dict[int, bytes | None] = {}
        self.exited = False
        self.eof = False

    @classmethod
    def start(cls, function, items) -> _Shared | None:
        claims = _Claims(len(items))
        read, write = os.pipe()
        try:
            import fcntl

            fcntl.fcntl(write, fcntl.F_SETPIPE_SZ, _PIPE_BYTES)  # results do not wait on reads
        except (ImportError, AttributeError, OSError):
            pass
        try:
            pid = os.fork()
        except OSError:
            for fd in (read, write):
                _close(fd)
            claims.close()
            return None
        if pid == 0:  # the child: never returns into the caller's code
            code = 1
            try:
                os.close(read)
                _child(function, items, claims, write)
                code = 0
            except BaseException:  # anything: the parent computes what the child did not send
                pass
            finally:
                os._exit(code)
        os.close(write)
        return cls(function, items, claims, pid, read)

    def results(self) -> Iterator[Any]:
        n = len(self.items)
        index, started = 0, time.perf_counter()
        while True:  # the parent's items, from the front
            taken = self.claims.take_front(self.alive)
            if taken is None:
                break
            self._drain(0.0)
            yield self.function(self.items[taken])
            index = taken + 1
        own = time.perf_counter() - started
        deadline = time.perf_counter() + max(MIN_WAIT_S, CHILD_PATIENCE * own)
        for i in range(index, n):  # the child's, from where the parent stopped
            while i not in self.delivered and not self.eof:
                left = deadline - time.perf_counter()
                if left <= 0:
                    break
                self._drain(min(left, 0.5))
            payload = self.delivered.pop(i, None)
            yield self.function(self.items[i]) if payload is None else pickle.loads(payload)

    def _drain(self, timeout: float) -> None:
        """Read what the child has sent (waiting up to ``timeout`` s for something)."""
        if self.eof:
            return
        ready, _, _ = select.select([self.pipe], [], [], timeout)
        while ready:
            chunk = os.read(self.pipe, 1 << 16)
            if not chunk:
                self.eof = True
                break
            self.buffer += chunk
            ready, _, _ = select.select([self.pipe], [], [], 0.0)
        while len(self.buffer) >= _HEADER.size:
            index, length = _HEADER.unpack_from(self.buffer, 0)
            end = _HEADER.size + max(length, 0)
            if len(self.buffer) < end:
                break
            self.delivered[index] = bytes(self.buffer[_HEADER.size : end]) if length >= 0 else None
            del self.buffer[:end]

    def alive(self) -> bool:
        if not self.exited:
            try:
                self.exited = os.waitpid(self.pid, os.WNOHANG)[0] != 0
            except ChildProcessError:
                self.exited = True
        return not self.exited

    def stop(self) -> None:
        """Kill the child (if still there), reap it, close the pipes."""
        if not self.exited:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                os.waitpid(self.pid, 0)
            except ChildProcessError:
                pass
            self.exited = True
        _close(self.pipe)
        self.claims.close()


def _child(function, items, claims: _Claims, pipe: int) -> None:
    """The child's loop: items from the back until the parent's and its own meet; each result
    pickled to ``pipe`` (a failed item as length -1: the parent computes it)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    while True:
        taken = claims.take(front=False)
        if taken is None:
            return
        try:
            payload = pickle.dumps(function(items[taken]), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:  # the parent computes it (and raises it, if it raises)
            payload = None
        message = _HEADER.pack(taken, -1 if payload is None else len(payload)) + (payload or b"")
        view = memoryview(message)
        while view:
            view = view[os.write(pipe, view) :]


def _close(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass
