"""A background import that lets napari's main thread go first: before each new module, the
importing thread waits (without the GIL) for the main thread's event loop to turn.

torch's import in the compute preload (:mod:`~napari_sigma._napari.preload`) is ~1.3 s of Python
holding the GIL in 1 ms slices. When the user acts meanwhile (Run a few seconds after the dock),
each of the main thread's take-backs of the GIL (at every call into Qt: hundreds per repaint)
waited for the importing thread's slice to end, and under load for that thread to get a core
back: a handler of 28-53 ms of work took 95-179 ms (median, load 7-12, a probe without napari's
window); napari's heartbeat saw the run step at 120-165 ms, the preload thread's CPU filling
the gap (twentieth session). Paced, the importing thread runs one module (at most
:data:`SLICE_S` of work between two asks) and then waits until the main thread has handled
the events queued before its ask (a queued signal: answered at the loop's next turn), so that
whatever the main thread was doing (a click's handler, a repaint) ends without it.

A main thread that does not answer within :data:`LONGEST_WAIT_S` is busy for long or blocked (a
script's ``join``, the exit, no event loop turning): the import then goes on unpaced until the
answer comes, so that nothing can wait on itself for longer than that once.

The wait happens inside the import system (a meta-path finder's ``find_spec``), where CPython
3.11 holds its global import lock: the finder lets it go for the wait (and takes it back), or
the main thread's own import of any new module (napari imports lazily) would wait for the
importing thread's wait, which waits for the main thread's turn: a 100 ms stall (the
twenty-first session's JEOL heartbeat, its run step at 118.7 ms without any thread's CPU). A
main thread that waits for a module this thread is importing (its module lock) ends the wait
at once (:func:`_main_waits_for_an_import`).
"""

from __future__ import annotations

import _imp
import contextlib
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

SLICE_S = 0.002  # import work (wall) between two asks of the main thread
LONGEST_WAIT_S = 0.1  # then the main thread is busy or blocked: the import goes on
STEP_S = 0.005  # how often a wait looks whether the main thread waits for an import


class _Pacer:
    """A meta-path finder that finds nothing: in its thread, it waits for the main thread's turn
    (:meth:`pace`) before the import system looks for a module not imported yet."""

    def __init__(self, owner: int, ask: Any, answered: threading.Event) -> None:
        self.owner, self.ask, self.answered = owner, ask, answered
        self.asked = False  # an ask not answered yet
        self.last = time.perf_counter()  # when the last wait ended
        self.turns = 0  # answered asks
        self.unanswered = 0  # waits that ended at LONGEST_WAIT_S
        self.yielded = 0  # waits ended because the main thread waited for an import
        self.main = threading.main_thread().ident

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if threading.get_ident() == self.owner:
            self.pace()
        return None

    def pace(self) -> None:
        if self.asked and not self.answered.is_set():  # still busy: not asked twice
            return
        if time.perf_counter() - self.last < SLICE_S:
            return
        self.answered.clear()
        self.asked = True
        self.ask()
        with _import_lock_let_go() as free:
            outcome = self._wait() if free else "yielded"
        if outcome == "answered":
            self.asked = False
            self.turns += 1
        elif outcome == "yielded":
            self.yielded += 1
        else:
            self.unanswered += 1
        self.last = time.perf_counter()

    def _wait(self) -> str:
        """Wait (without the GIL) for the answer: ``"answered"``, ``"yielded"`` (the main thread
        waits for a module lock) or ``"unanswered"`` (:data:`LONGEST_WAIT_S` passed)."""
        deadline = time.perf_counter() + LONGEST_WAIT_S
        while not self.answered.wait(STEP_S):
            if _main_waits_for_an_import(self.main):
                return "yielded"
            if time.perf_counter() >= deadline:
                return "unanswered"
        return "answered"


@contextlib.contextmanager
def _import_lock_let_go() -> Iterator[bool]:
    """Let the global import lock go for the block when this thread holds it once (as
    ``_find_spec`` does around each finder); yields whether the block may wait: False when the
    lock is still held after letting go (held twice by this thread, or just taken by another
    thread that imports: the main thread's import must not wait for this one's wait)."""
    try:
        _imp.release_lock()
    except RuntimeError:  # not held by this thread (a finder called outside the import system)
        yield True
        return
    try:
        yield not _imp.lock_held()
    finally:
        _imp.acquire_lock()


def _main_waits_for_an_import(main: int | None) -> bool:
    """Whether the main thread waits for a module lock (a module another thread imports):
    CPython's ``importlib._bootstrap._blocking_on`` (thread id -> the lock, or locks, it waits
    for); False where it is not there."""
    from importlib import _bootstrap

    blocking = getattr(_bootstrap, "_blocking_on", None)
    try:
        return main is not None and blocking is not None and bool(blocking.get(main))
    except Exception:  # another Python's layout
        return False


def _main_loop_turn() -> tuple[Any, threading.Event] | None:
    """An ``ask`` callable (any thread) whose answer sets the event at the main thread's next
    event-loop turn; None without a Qt application."""
    try:
        from qtpy.QtCore import QCoreApplication, QObject, Signal, Slot
    except Exception:  # no Qt binding: nothing to pace against
        return None
    app = QCoreApplication.instance()
    if app is None:
        return None

    class Turn(QObject):
        asked = Signal()

        def __init__(self) -> None:
            super().__init__()
            self.answered = threading.Event()
            self.asked.connect(self.answer)  # queued once the object lives in the main thread

        @Slot()
        def answer(self) -> None:
            self.answered.set()

    turn = Turn()
    turn.moveToThread(app.thread())  # its slot runs in the main thread's loop
    _keep.append(turn)  # kept for the session (once per preload): a queued signal is never lost
    return turn.asked.emit, turn.answered


_keep: list[Any] = []


@contextlib.contextmanager
def paced_by_main_loop() -> Iterator[_Pacer | None]:
    """Imports of the calling thread (not the main thread) wait for the main thread's event-loop
    turn before each new module while the block runs; yields the pacer (None: not paced)."""
    if threading.current_thread() is threading.main_thread():
        yield None
        return
    made = _main_loop_turn()
    if made is None:
        yield None
        return
    pacer = _Pacer(threading.get_ident(), *made)
    sys.meta_path.insert(0, pacer)
    try:
        yield pacer
    finally:
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(pacer)
