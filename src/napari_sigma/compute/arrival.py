"""Counts that arrive row by row: a cube handed to the analysis while its file is still read.

``napari-sigma run`` reads a large ``.hspy`` in the reading child
(:mod:`napari_sigma.io.reading_process`), which decodes the cube straight into a shared-memory
file. With an *arriving* read the parent gets the image (the file mapped) as soon as the file is
opened, and the child reports on its pipe the rows it has written: first the rows that the data
check and the fit design sample (every n-th row, :data:`SAMPLED_PIXELS`), then the rest in the
file's order. An :class:`Arrival` records those rows; the code that reads the cube waits for the
rows it reads (:func:`wait_for_rows`, :func:`wait_for_all`), so every number is made from the
same bytes as after a whole read, and the feature pass runs while the file is still read.

Counts that are not arriving (every array but the one such read registered, dask cubes) pass at
once: the waits cost a dictionary look-up. A read that fails midway (a truncated file, a reader
crash) raises its :class:`~napari_sigma.errors.SpectrumImageError` from the next wait.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

SAMPLED_PIXELS = 65536
"""Pixels (every n-th row) the data check (``io.readers.validation.SAMPLE_PIXELS``) and the fit
design's sum spectrum (``xray.image_fit.SUM_PIXELS``) read: the rows an arriving read decodes
first (:func:`sampled_rows`). Only the order of the decoding depends on it, never a number."""


def row_step(ny: int, nx: int, pixels: int) -> int:
    """The step n of the rows (every n-th) that a sample of about ``pixels`` pixels of a
    ``ny x nx`` map reads: the data check's, the sum spectrum's and :func:`sampled_rows`'."""
    return max(1, ny // max(1, pixels // max(nx, 1)))


def sampled_rows(ny: int, nx: int, pixels: int = SAMPLED_PIXELS) -> range:
    """The rows ``0, step, 2 step ...`` that a sample of about ``pixels`` pixels of a ``ny x nx``
    map reads (the step of ``check_at_the_door`` and ``sum_spectrum``: :func:`row_step`)."""
    return range(0, ny, row_step(ny, nx, pixels))


class Arrival:
    """The rows of one cube written so far, and how its read ended."""

    def __init__(self, counts: np.ndarray, name: str = "") -> None:
        self.key = _key(counts)
        self.name = name
        self._done = np.zeros(int(counts.shape[0]), bool)
        self._condition = threading.Condition()
        self._error: BaseException | None = None
        self._finished = False

    def mark(self, ranges: list[tuple[int, int]]) -> None:
        """Rows ``start:stop`` of each range are written."""
        with self._condition:
            for start, stop in ranges:
                self._done[start:stop] = True
            self._condition.notify_all()

    def finish(self) -> None:
        """Every row is written."""
        with self._condition:
            self._done[:] = True
            self._finished = True
            self._condition.notify_all()

    def fail(self, error: BaseException) -> None:
        """The read stopped: every wait raises ``error`` from now on."""
        with self._condition:
            self._error = error
            self._condition.notify_all()

    @property
    def finished(self) -> bool:
        return self._finished

    def wait(self, rows: Any = None) -> None:
        """Return once ``rows`` (an index of rows; None: every row) are written."""
        with self._condition:
            while True:
                if self._error is not None:
                    raise self._error
                if self._finished or bool(np.all(self._done if rows is None else self._done[rows])):
                    return
                self._condition.wait(0.5)


_ARRIVING: dict[tuple, Arrival] = {}
_registry_lock = threading.Lock()


def _key(counts: Any) -> tuple:
    interface = getattr(counts, "__array_interface__", None)
    if interface is None:
        return ()
    return (interface["data"][0], tuple(interface["shape"]), interface["typestr"])


def register(counts: np.ndarray, name: str = "") -> Arrival:
    """Record ``counts`` as arriving (an earlier record of the same memory is replaced)."""
    arrival = Arrival(counts, name)
    with _registry_lock:
        _ARRIVING[arrival.key] = arrival
    return arrival


def forget(arrival: Arrival) -> None:
    """Drop the record of a read that ended (its counts are whole: waits pass at once)."""
    with _registry_lock:
        if _ARRIVING.get(arrival.key) is arrival:
            del _ARRIVING[arrival.key]


def arrival_of(counts: Any) -> Arrival | None:
    """The :class:`Arrival` of ``counts`` (the whole registered array), or None."""
    if not _ARRIVING or not isinstance(counts, np.ndarray):
        return None
    with _registry_lock:
        return _ARRIVING.get(_key(counts))


def wait_for_rows(counts: Any, rows: Any) -> None:
    """Wait until ``rows`` (a slice, range or index array) of ``counts`` are written; at once
    for counts that are not arriving."""
    arrival = arrival_of(counts)
    if arrival is not None:
        arrival.wait(
            rows if not isinstance(rows, range) else slice(rows.start, rows.stop, rows.step)
        )


def wait_for_all(counts: Any) -> None:
    """Wait until every row of ``counts`` is written (at once for counts that are not
    arriving); raises the read's error if it failed."""
    arrival = arrival_of(counts)
    if arrival is not None:
        arrival.wait()
