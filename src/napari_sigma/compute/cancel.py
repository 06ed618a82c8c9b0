"""Cancelling a computation that is a plain function (not a generator) from another thread.

A long computation of the core is a generator its caller cancels by not asking for the next step
(:mod:`~napari_sigma.compute.progress`). A few are plain functions that run for seconds in a
worker (the element suggestion: 0.7 s of CPU, 10 s under load): their loops call
:func:`checkpoint`, which raises :class:`Cancelled` once the event of the enclosing
:func:`cancelled_by` block is set. Outside such a block a checkpoint does nothing (the CLI, the
Python API, the tests: no behaviour changes).

The event is per thread of execution (a context variable, set by the worker around the call), so
two workers never cancel each other. :func:`cancel_all` sets every event of a block under way
(napari's exit: the plugin's workers are cancelled, then waited for).
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Iterator

_event: contextvars.ContextVar[threading.Event | None] = contextvars.ContextVar(
    "napari_sigma_cancel", default=None
)
_under_way: set[threading.Event] = set()
_lock = threading.Lock()


class Cancelled(Exception):
    """Raised at a :func:`checkpoint` of a computation whose caller cancelled it."""


@contextlib.contextmanager
def cancelled_by(event: threading.Event) -> Iterator[threading.Event]:
    """The checkpoints the block reaches raise :class:`Cancelled` once ``event`` is set."""
    token = _event.set(event)
    with _lock:
        _under_way.add(event)
    try:
        yield event
    finally:
        _event.reset(token)
        with _lock:
            _under_way.discard(event)


def checkpoint() -> None:
    """Raise :class:`Cancelled` when the enclosing :func:`cancelled_by` event is set."""
    event = _event.get()
    if event is not None and event.is_set():
        raise Cancelled("cancelled")


def current() -> threading.Event | None:
    """The event of the enclosing :func:`cancelled_by` block (None outside one)."""
    return _event.get()


def cancel_all() -> int:
    """Set the event of every :func:`cancelled_by` block under way; return how many."""
    with _lock:
        events = list(_under_way)
    for event in events:
        event.set()
    return len(events)
