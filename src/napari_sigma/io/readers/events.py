"""Spectrum images kept as X-ray events: the counts of JEOL event streams, stored sparse.

A JEOL ``.pts`` map is a stream of single X-ray events; its cube is huge and nearly empty (a
512 x 512 x 4096 map of 2 GiB as uint16 holds about 300 000 counts). rosettasciio decodes the
stream (in numba) into event coordinates and, for ``lazy=True``, wraps them in a ``sparse.COO``
subclass whose first indexing, done by ``dask.array.from_array``, compiles ``sparse``'s numba
code: about 10 s of a 13 s first read.

:class:`EventCube` holds the same events as sorted ``(flat index, count)`` numpy arrays (a few MB)
and gives dense numpy blocks on slicing, with numpy only. :func:`collecting_events` makes
rosettasciio build an ``EventCube`` instead of its sparse array while a JEOL file is read (the
decoding stays rosettasciio's); :meth:`EventCube.to_dask` is the lazy cube the package works on,
small enough to travel from the reading child process (:mod:`napari_sigma.io.reading_process.isolation`) to the
caller, so that a file is decoded once. :func:`event_cube_of` finds the events behind such a
dask cube, so that sums over the whole cube (total counts, sum spectrum) take milliseconds
instead of densifying every chunk.
"""

from __future__ import annotations

import operator
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import import_module
from typing import Any

import numpy as np

CHUNK_BYTES = 64 * 2**20  # dense bytes per chunk of the dask cube: whole spectra, rows in blocks


class EventCube:
    """Counts of an N-d cube stored as events; slicing returns dense numpy arrays.

    Takes the arguments of rosettasciio's ``DenseSliceCOO(coords, data, shape=...)`` so that
    :func:`collecting_events` can substitute it.

    Parameters
    ----------
    coords : array of int, shape (ndim, n)
        The coordinates of each event (repeated coordinates are summed).
    data : array, shape (n,), optional
        The count of each event (default 1); its dtype is the cube's.
    shape : tuple of int
        The cube's shape.
    dtype : dtype, optional
        The dense dtype (default ``data``'s). Summed counts beyond its range are clipped to its
        maximum, as rosettasciio's dense JEOL reader does.

    Raises
    ------
    ValueError
        Coordinates outside the shape, or sizes that do not match.
    """

    def __init__(
        self, coords: Any, data: Any = None, shape: Any = None, dtype: Any = None, **_: Any
    ) -> None:
        coords = np.asarray(coords)
        if shape is None or coords.ndim != 2 or coords.shape[0] != len(tuple(shape)):
            raise ValueError(f"event coordinates of shape {coords.shape} for a cube of {shape}")
        self.shape = tuple(int(n) for n in shape)
        n_events = coords.shape[1]
        values = np.ones(n_events, np.uint8) if data is None else np.asarray(data)
        if values.shape != (n_events,):
            values = np.broadcast_to(values, (n_events,))
        self.dtype = np.dtype(dtype if dtype is not None else values.dtype)
        flat = (
            np.ravel_multi_index(tuple(coords.astype(np.intp)), self.shape)
            if n_events
            else np.zeros(0, np.intp)
        )
        if n_events and np.all(flat[1:] > flat[:-1]):
            index, summed = flat.astype(np.int64), values
        else:
            index, inverse = np.unique(flat, return_inverse=True)
            summed = np.bincount(inverse.ravel(), weights=values, minlength=len(index))
            index = index.astype(np.int64)
        if self.dtype.kind in "iu":
            summed = np.clip(summed, 0, np.iinfo(self.dtype).max)
        self.index = index
        self.counts = np.asarray(summed).astype(self.dtype, copy=False)
        self._token = uuid.uuid4().hex

    # ------------------------------------------------------------------ array protocol (dask)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        """Bytes of the dense cube (what a full read would allocate)."""
        return self.size * self.dtype.itemsize

    def __len__(self) -> int:
        return self.shape[0]

    def __dask_tokenize__(self) -> str:
        return self._token

    def __repr__(self) -> str:
        return f"EventCube(shape={self.shape}, dtype={self.dtype}, events={len(self.index)})"

    def __getitem__(self, key: Any) -> np.ndarray:
        selections = _selections(key, self.shape)
        block = self._dense_block([_bounds(sel) for sel in selections])
        for axis in reversed(range(self.ndim)):
            sel = selections[axis]
            lo = _bounds(sel)[0]
            if isinstance(sel, slice):
                continue  # the block is exactly this range
            block = np.take(block, sel - lo, axis=axis)
        return block

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        dense = self.dense()
        return dense if dtype is None else dense.astype(dtype, copy=False)

    def dense(self) -> np.ndarray:
        """The whole cube as a dense numpy array."""
        return self._dense_block([(0, n) for n in self.shape])

    def _dense_block(self, bounds: list[tuple[int, int]]) -> np.ndarray:
        from napari_sigma.io.readers._memory import zeroed_array

        block_shape = tuple(hi - lo for lo, hi in bounds)
        block = zeroed_array(block_shape, self.dtype)  # a 2 GiB cube: 4.1-5.0 -> 0.8 s of sys
        if block.size == 0 or len(self.index) == 0:
            return block
        stride = int(np.prod(self.shape[1:], dtype=np.int64))
        first, stop = np.searchsorted(self.index, [bounds[0][0] * stride, bounds[0][1] * stride])
        index, counts = self.index[first:stop], self.counts[first:stop]
        coords = np.unravel_index(index, self.shape)
        keep = np.ones(len(index), bool)
        for axis in range(1, self.ndim):
            lo, hi = bounds[axis]
            if (lo, hi) != (0, self.shape[axis]):
                keep &= (coords[axis] >= lo) & (coords[axis] < hi)
        local = tuple(c[keep] - lo for c, (lo, _) in zip(coords, bounds, strict=True))
        block[local] = counts[keep]
        return block

    # ------------------------------------------------------------------ fast sums

    def sum_last(self) -> np.ndarray:
        """Counts summed over the last axis (the energy), float64 of shape ``shape[:-1]``."""
        nav = self.shape[:-1]
        totals = np.bincount(
            self.index // self.shape[-1],
            weights=self.counts,
            minlength=int(np.prod(nav, dtype=np.int64)),
        )
        return totals.reshape(nav)

    def sum_leading(self) -> np.ndarray:
        """Counts summed over all axes but the last (the sum spectrum), float64."""
        return np.bincount(
            self.index % self.shape[-1], weights=self.counts, minlength=self.shape[-1]
        ).astype(np.float64)

    # ------------------------------------------------------------------ dask

    def to_dask(self, chunk_bytes: int = CHUNK_BYTES) -> Any:
        """The cube as a dask array of whole spectra in row blocks (``event_cube_of`` finds it)."""
        import dask.array as da

        row_bytes = max(self.nbytes // max(self.shape[0], 1), 1)
        rows = int(min(max(chunk_bytes // row_bytes, 1), max(self.shape[0], 1)))
        chunks = (rows, *self.shape[1:])
        return da.from_array(
            self,
            chunks=chunks,
            name=f"events-{self._token}",
            asarray=False,
            meta=np.empty((0,) * self.ndim, self.dtype),
        )


def _selections(key: Any, shape: tuple[int, ...]) -> list[Any]:
    """Per axis an int, a ``slice(start, stop, 1)`` or a 1-d array of positions."""
    if not isinstance(key, tuple):
        key = (key,)
    if any(k is None for k in key):
        raise IndexError("an EventCube cannot add axes (None in the index)")
    if any(k is Ellipsis for k in key):
        at = next(i for i, k in enumerate(key) if k is Ellipsis)
        fill = (slice(None),) * (len(shape) - len(key) + 1)
        key = key[:at] + fill + key[at + 1 :]
    if len(key) > len(shape):
        raise IndexError(f"too many indices ({len(key)}) for a cube of {len(shape)} axes")
    key = key + (slice(None),) * (len(shape) - len(key))
    selections: list[Any] = []
    for k, n in zip(key, shape, strict=True):
        if isinstance(k, slice):
            start, stop, step = k.indices(n)
            plain = step == 1
            selections.append(slice(start, max(stop, start), 1) if plain else np.arange(n)[k])
        elif isinstance(k, int | np.integer):
            i = operator.index(k)
            i = i + n if i < 0 else i
            if not 0 <= i < n:
                raise IndexError(f"index {k} is out of bounds for an axis of size {n}")
            selections.append(i)
        else:
            positions = np.arange(n)[np.asarray(k)]
            if positions.ndim != 1:
                raise IndexError("an EventCube takes ints, slices and 1-d index arrays")
            selections.append(positions)
    return selections


def _bounds(selection: Any) -> tuple[int, int]:
    """The smallest ``[lo, hi)`` range holding a selection (``(0, 0)`` when it is empty)."""
    if isinstance(selection, int):
        return selection, selection + 1
    if isinstance(selection, slice):
        return selection.start, selection.stop
    if selection.size == 0:
        return 0, 0
    return int(selection.min()), int(selection.max()) + 1


def event_cube_of(array: Any) -> EventCube | None:
    """The EventCube that a dask array was made from (its ``from_array``), or None.

    Only the array made directly from the events qualifies (not a slice or a transpose of it):
    ``dask.array.from_array`` stores the source under the key ``"original-" + name``.
    """
    name = getattr(array, "name", None)
    graph_of = getattr(array, "__dask_graph__", None)
    if not isinstance(name, str) or graph_of is None:
        return None
    graph = graph_of()
    layers = getattr(graph, "layers", None)
    key = "original-" + name
    try:
        if layers is not None:
            layer = layers.get(key) or layers.get(name)
            if layer is None or key not in layer:
                return None
            value = layer[key]
        else:
            value = graph.get(key)
    except Exception:
        return None
    value = getattr(value, "value", value)  # a dask DataNode wraps it
    return value if isinstance(value, EventCube) else None


_PATCH_LOCK = threading.RLock()


@contextmanager
def collecting_events() -> Iterator[None]:
    """While active, rosettasciio builds event cubes as :class:`EventCube` (not ``sparse.COO``).

    rosettasciio's JEOL reader looks up ``rsciio.utils._fei_stream_readers.DenseSliceCOO`` when it
    wraps the decoded events; the name is replaced for the duration of the block (under a lock,
    so concurrent reads in threads wait). Without that module or name (another rosettasciio) the
    reader is left alone and its sparse array is converted afterwards (:func:`as_event_cube`).
    """
    try:
        module = import_module("rsciio.utils._fei_stream_readers")
    except ImportError:  # pragma: no cover - rosettasciio without its stream readers
        yield
        return
    with _PATCH_LOCK:
        original = getattr(module, "DenseSliceCOO", None)
        if original is None:  # pragma: no cover - another rosettasciio
            yield
            return
        module.DenseSliceCOO = EventCube
        try:
            yield
        finally:
            module.DenseSliceCOO = original


def as_event_cube(array: Any) -> EventCube | None:
    """The events behind a reader's lazy array: an EventCube, or a ``sparse.COO`` converted.

    Returns None for any other array (dense chunks: the generic dask path applies).
    """
    found = event_cube_of(array)
    if found is not None:
        return found
    name = getattr(array, "name", None)
    layers = getattr(getattr(array, "__dask_graph__", lambda: None)(), "layers", None)
    if not isinstance(name, str) or layers is None:
        return None
    layer = layers.get("original-" + name) or layers.get(name)
    key = "original-" + name
    if layer is None or key not in layer:
        return None
    value = getattr(layer[key], "value", layer[key])
    coords, data = getattr(value, "coords", None), getattr(value, "data", None)
    if type(value).__module__.split(".")[0] not in {"sparse", "rsciio"} or coords is None:
        return None
    if tuple(value.shape) != tuple(array.shape):
        return None
    return EventCube(np.asarray(coords), np.asarray(data), shape=value.shape, dtype=value.dtype)
