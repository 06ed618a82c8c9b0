"""The export's child process kept for a napari session (:class:`KeptChild`).

napari's export runs the phase statistics, the mineral report and ``report.png`` in a child
process (:mod:`napari_sigma.io.results.child`: their C calls hold none of napari's GIL). Started
for each export, that child cost ~1 s of CPU before its first answer (an interpreter, numpy,
scipy, matplotlib, the mineral library's parse) and was ended after it: a user exporting small
maps paid it every time. The Phases tab keeps one instead (:func:`session_child`): started by
the first export, in its worker thread (at the worker's priority, as before), reused warm by the
later ones, ended at exit.

- Two exports at once take turns call by call (a lock): a child answers one call at a time, and
  each call is whole (its arguments in, its files written, its answer out).
- A child that died (killed, out of memory) is replaced: found dead before a call, a new one
  makes it; dying during a call, that call is made in this process (the export's files are
  written all the same: ``ChildDied``, as for a child started per export) and a new one starts
  at once for the next. Either way :attr:`KeptChild.notice` gets one line saying so.
- At exit an idle child is killed, not waited for (it holds nothing to save); one answering a
  call is left to finish it (its file written whole) and ends when its pipes close with this
  process.
"""

from __future__ import annotations

import atexit
import threading
from typing import Any

from napari_sigma.io.results.child import ChildDied, ChildProcess


class KeptChild:
    """One export child process for many exports (see the module notes).

    Parameters
    ----------
    nice : int
        Added to the scheduling priority the child inherits from the thread that starts it.
    """

    def __init__(self, nice: int = 0) -> None:
        self._nice = nice
        self._calls = threading.Lock()  # one call at a time, whichever export sends it
        self._state = threading.Lock()  # the process replaced, started or stopped
        self._process: ChildProcess | None = None
        self._exit_registered = False
        self._closed = False
        self.started = 0
        """How many child processes were started (1 for a session whose child never died)."""
        self.notice = ""
        """One line on the last child that died ('' when none did; :meth:`take_notice`)."""

    def expect(self, calls: tuple[str, ...]) -> None:
        """Start the child now unless one runs: it imports what ``calls`` need (and parses the
        mineral library for the mineral report) while the caller works on. A running child
        keeps what earlier exports imported; a call it has not imported for imports when it
        comes (warming every call's modules cost an export that draws report.png only ~0.4 s
        of CPU: the mineral library's parse). Raises ``OSError`` when no process can be
        started."""
        with self._state:
            self._running(calls)

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """:meth:`ChildProcess.call <napari_sigma.io.results.child.ChildProcess.call>` in the
        kept child, after any call another export sent (a new child when it died meanwhile).

        Raises
        ------
        ChildDied
            The child died answering (the call was not made; a successor is starting), or no
            child could be started.
        ChildError
            The call raised in the child.
        """
        with self._calls:
            with self._state:
                try:
                    process = self._running((name,))
                except OSError as error:
                    raise ChildDied(f"{name}: no child process could be started: {error}") from None
            try:
                return process.call(name, *args, **kwargs)
            except ChildDied:
                with self._state:
                    if self._process is process:
                        self._process = None
                        self.notice = f"{_died_line(process)} answering {name} (made here)"
                        process.close()
                        self._start_quietly((name,))  # the next call's, warming from now
                raise

    def take_notice(self) -> str:
        """:attr:`notice`, cleared (shown once)."""
        with self._state:
            notice, self.notice = self.notice, ""
        return notice

    def close(self) -> None:
        """End the child: killed at once when no call runs (no wait: napari's exit is not
        delayed), else left to finish its call (it ends when this process's pipes close)."""
        with self._state:
            self._closed = True
            process, self._process = self._process, None
        if process is None:
            return
        if self._calls.acquire(blocking=False):
            try:
                process.stop()
            finally:
                self._calls.release()

    @property
    def pid(self) -> int | None:
        """The running child's process id (None when none runs)."""
        process = self._process
        return None if process is None else process.pid

    def _running(self, calls: tuple[str, ...]) -> ChildProcess:
        """The live child (under ``_state``): started when none runs, replaced when it died
        since its last call (one line in :attr:`notice`)."""
        process = self._process
        if process is not None and process.exit_code() is not None:
            self.notice = f"{_died_line(process)} between exports (a new one started)"
            process.close()
            process = self._process = None
        if process is None:
            process = self._start(calls)
        return process

    def _start(self, calls: tuple[str, ...]) -> ChildProcess:
        if self._closed:
            raise OSError("the export's child process was closed (napari is exiting)")
        self._process = ChildProcess(calls, nice=self._nice)
        self.started += 1
        if not self._exit_registered:
            atexit.register(self.close)
            self._exit_registered = True
        return self._process

    def _start_quietly(self, calls: tuple[str, ...]) -> None:
        try:
            self._start(calls)
        except OSError:  # the next call tries again (and makes its call here if it cannot)
            self._process = None


def _died_line(process: ChildProcess) -> str:
    return f"the export's child process ended (exit code {process.exit_code(wait=1.0)})"


_SESSION = KeptChild()


def session_child() -> KeptChild:
    """The export child of this process's napari session (one per process; started by the first
    export that uses it)."""
    return _SESSION
