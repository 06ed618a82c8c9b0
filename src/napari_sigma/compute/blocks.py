"""Reading a spectrum image in blocks of whole rows, and projecting pixel blocks on the CPU or GPU.

A cube is never copied or converted to float as a whole: :func:`pixel_blocks` reads whole rows at
a time and :func:`block_projector` multiplies each block by a weight matrix (line windows,
component spectra), casting integer counts in cache-sized sub-blocks on the CPU.
"""

from __future__ import annotations

import contextvars
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import numpy as np

from napari_sigma.compute.chunks import block_pixels, current_budget
from napari_sigma.errors import AnalysisError

T = TypeVar("T")


def pixel_blocks(counts: Any, pixels_per_block: int) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(first flat pixel, block (n, E))`` over whole rows of a 2-D or 3-D array.

    Parameters
    ----------
    counts : array, shape (N, E) or (y, x, E)
        numpy, dask or memory-mapped; each block is read with ``np.asarray``.
    pixels_per_block : int
        About this many pixels per block (at least one row of a 3-D array).

    Raises
    ------
    AnalysisError
        If ``counts`` is neither 2-D nor 3-D.
    """
    for start, _, rows in block_rows(counts, pixels_per_block):
        yield start, read_block(counts, rows)


def banded_blocks(counts: Any, pixels_per_block: int) -> Iterator[tuple[int, np.ndarray]]:
    """:func:`pixel_blocks` (the same blocks, the same values), a lazy cube's read a band of
    its stored row chunks at a time under a memory limit (:func:`read_blocks`).

    Each block of a lazy cube read alone computes every stored chunk it meets: blocks of 2
    rows over chunks of 15 rows (rosettasciio's ``.hspy``) read each chunk about 8 times. Here
    the blocks from one stored chunk row's top to the first block that reaches its bottom are
    read as one band (within the limit; else block by block): each chunk's rows read at most
    twice (a block across a chunk edge). Numpy counts, and without a limit (napari), block by
    block as :func:`pixel_blocks`.
    """
    parts = block_rows(counts, pixels_per_block)
    chunks = getattr(counts, "chunks", None)
    if not (hasattr(counts, "dask") and counts.ndim == 3 and current_budget() is not None):
        for start, _, rows in parts:
            yield start, read_block(counts, rows)
        return
    edges = np.cumsum((0, *chunks[0]))
    group: list[tuple[int, slice]] = []

    def band() -> Iterator[tuple[int, np.ndarray]]:
        starts = [start for start, _ in group]
        yield from zip(starts, read_blocks(counts, [rows for _, rows in group]), strict=True)

    for start, _, rows in parts:
        if not group:  # the band ends at the first block reaching this chunk row's bottom
            bottom = int(edges[np.searchsorted(edges, rows.start, side="right")])
        group.append((start, rows))
        if rows.stop >= bottom:
            yield from band()
            group = []
    if group:
        yield from band()


def block_rows(counts: Any, pixels_per_block: int) -> Iterator[tuple[int, int, slice]]:
    """The blocks of :func:`pixel_blocks` unread: ``(first flat pixel, end, rows of counts)``,
    for a worker thread to read (:func:`read_block`)."""
    bytes_per_pixel = counts.shape[-1] * (np.dtype(counts.dtype).itemsize + 8)
    pixels_per_block = block_pixels(max(pixels_per_block, 1), bytes_per_pixel)
    if counts.ndim == 2:
        n = counts.shape[0]
        for start in range(0, n, pixels_per_block):
            yield start, min(start + pixels_per_block, n), slice(start, start + pixels_per_block)
        return
    if counts.ndim != 3:
        raise AnalysisError(f"counts must be (N, E) or (y, x, E), not shape {counts.shape}")
    width = counts.shape[1]
    rows = max(pixels_per_block // max(width, 1), 1)
    ny = counts.shape[0]
    for row in range(0, ny, rows):
        yield row * width, min(row + rows, ny) * width, slice(row, row + rows)


def read_block(counts: Any, rows: slice) -> np.ndarray:
    """The pixels ``(n, E)`` of some rows of a 2-D or 3-D array (see :func:`block_rows`)."""
    block = np.asarray(counts[rows])
    return block.reshape(-1, counts.shape[-1])


def read_blocks(counts: Any, rows: list[slice]) -> Iterator[np.ndarray]:
    """:func:`read_block` of several consecutive blocks (increasing, adjacent rows of
    :func:`block_rows`), each ``(n, E)``, one after the other: the same pixels, the same values.

    Numpy counts are sliced as they are. Under a memory limit (:func:`~napari_sigma.compute.
    chunks.memory_budget`: the CLI, batch runs) a lazy cube's rows are computed once, as one
    band, when the limit allows a block that large (:func:`~napari_sigma.compute.chunks.
    block_pixels`; the band and the stored chunks it is assembled from, no float copy: the
    blocks are cast a sub-block at a time): each block read alone computed every stored chunk
    it meets, so blocks of 2 rows over chunks of 15 rows read each chunk about 8 times. Without
    a limit (napari) block by block as before: dask assembles a band in one copy that holds the
    GIL (s11: 321 ms gaps of napari's main thread for 64-row bands).
    """
    band, top = counts, 0  # numpy counts, or a band too large: block by block, each read alone
    if len(rows) > 1 and hasattr(counts, "dask") and current_budget() is not None:
        top, bottom = rows[0].start, min(rows[-1].stop, int(counts.shape[0]))
        per_row = int(np.prod(counts.shape[1:-1], dtype=np.int64))  # pixels per row (2-D: 1)
        n_pixels = max(bottom - top, 0) * per_row
        bytes_per_pixel = counts.shape[-1] * np.dtype(counts.dtype).itemsize * 2
        if block_pixels(n_pixels, bytes_per_pixel) >= n_pixels:
            band = np.asarray(counts[top:bottom])
        else:
            top = 0
    for part in rows:
        yield read_block(band, slice(part.start - top, part.stop - top))


class RowChunks:
    """Pixels of some rows of a ``(y, x, E)`` cube, read top to bottom, each stored chunk once.

    For the passes that read a few bands of a lazy cube (the twins' sums and scores, the moved
    pixels' spectra). A dask band over several of the cube's row chunks was computed by dask as
    one new array, the chunks copied into it (``concatenate3``: 256 MiB per 64-row band of the
    JEOL map, 10 GiB per run), and a band within a chunk read the whole chunk again for every
    band. Here each row chunk (its columns and channels as stored) is computed on its own and
    kept until a read below it, and only the pixels asked for are copied out of it: at most one
    chunk is held, and no chunk is read twice in a pass that goes down the cube. A cube of
    X-ray events (:class:`~napari_sigma.io.readers.events.EventCube`, JEOL maps) is not made dense at
    all: the pixels asked for are filled from the events of their rows. Numpy counts (in memory
    or memory-mapped) are sliced as they are.

    The pixels come in the order of ``counts[low:high][mask]`` (row-major), with the same values:
    what is computed from them does not change.

    Parameters
    ----------
    counts : array, shape (y, x, E)
        numpy, memory-mapped or dask.
    channels : index of the last axis, optional
        The channels to read (a boolean mask, indices or a slice); default all.
    """

    def __init__(self, counts: Any, channels: Any = None) -> None:
        from napari_sigma.io.readers.events import event_cube_of

        self.counts = counts
        self.channels = slice(None) if channels is None else channels
        chunks = getattr(counts, "chunks", None)
        self.lazy = chunks is not None and hasattr(counts, "dask")
        self.edges = np.cumsum((0, *chunks[0])) if self.lazy else None
        self._held: tuple[int, int, np.ndarray] | None = None
        n_channels = int(counts.shape[-1])
        chosen = np.arange(n_channels)[self.channels]
        self.n_channels = int(chosen.size)
        self.events = event_cube_of(counts) if self.lazy else None
        if self.events is not None and np.unique(chosen).size == chosen.size:
            self._column = np.full(n_channels, -1, np.intp)  # channel -> column of the output
            self._column[chosen] = np.arange(chosen.size)
        else:
            self.events = None  # repeated channels: the dense path

    def pixels(self, low: int, high: int, mask: np.ndarray | None = None) -> np.ndarray:
        """Spectra ``(n, C)`` of the ``mask`` pixels (shape ``(high - low, x)``; default all) of
        rows ``low:high``, row by row."""
        if mask is None:
            mask = np.ones((high - low, int(self.counts.shape[1])), bool)
        if not self.lazy:
            return np.asarray(self.counts[low:high, :, self.channels])[mask]
        if self.events is not None:
            return self._event_pixels(low, high, mask)
        pieces = []
        for top, bottom, rows in self._chunks(low, high):
            part = rows[max(low, top) - top : min(high, bottom) - top]
            pieces.append(part[mask[max(low, top) - low : min(high, bottom) - low]])
        return pieces[0] if len(pieces) == 1 else np.concatenate(pieces)

    def sums(self, low: int, high: int, masks: list[np.ndarray]) -> np.ndarray:
        """Sum spectra ``(len(masks), C)`` float64 of the pixels of each mask (shape
        ``(high - low, x)``) of rows ``low:high``. Integer counts are summed piece by piece
        (exact in float64 in any order), other counts as ``pixels(...).sum(axis=0)``."""
        out = np.zeros((len(masks), self.n_channels), np.float64)
        if np.dtype(self.counts.dtype).kind not in "biu":
            either = np.logical_or.reduce(masks)
            pixels = self.pixels(low, high, either)
            for index, mask in enumerate(masks):
                if mask.any():
                    out[index] = pixels[mask[either]].sum(axis=0, dtype=np.float64)
            return out
        if self.events is not None:
            pixel, column, values = self._events(low, high)
            for index, mask in enumerate(masks):
                inside = mask.reshape(-1)[pixel]
                out[index] = np.bincount(
                    column[inside], weights=values[inside], minlength=self.n_channels
                )
            return out
        if self.lazy:
            pieces = [
                (max(low, top), rows[max(low, top) - top : min(high, bottom) - top])
                for top, bottom, rows in self._chunks(low, high)
            ]
        else:
            pieces = [(low, np.asarray(self.counts[low:high, :, self.channels]))]
        for first, block in pieces:
            part = slice(first - low, first - low + len(block))
            for index, mask in enumerate(masks):
                if mask[part].any():
                    out[index] += block[mask[part]].sum(axis=0, dtype=np.float64)
        return out

    def points(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Spectra ``(n, C)`` of the pixels ``(rows[i], cols[i])``, in that order; ``rows`` must
        not decrease (a lazy cube is read top to bottom)."""
        rows, cols = np.asarray(rows, np.intp), np.asarray(cols, np.intp)
        if not self.lazy:
            return np.asarray(self.counts[rows, cols][..., self.channels])
        if self.events is not None:
            return self._event_points(rows * int(self.counts.shape[1]) + cols)
        out = []
        chunk_of = np.searchsorted(self.edges, rows, side="right") - 1
        for index in np.unique(chunk_of).tolist():  # only the chunks that hold the pixels
            top, bottom = int(self.edges[index]), int(self.edges[index + 1])
            first, last = np.searchsorted(rows, [top, bottom])
            out.append(self._chunk(top, bottom)[rows[first:last] - top, cols[first:last]])
        if not out:
            return np.zeros((0, self.n_channels), self.counts.dtype)
        return out[0] if len(out) == 1 else np.concatenate(out)

    def _events(self, low: int, high: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The events of rows ``low:high`` among the chosen channels: their pixel (flat, from
        ``low``'s first), output column and count."""
        events, per_row = self.events, int(self.counts.shape[1]) * int(self.counts.shape[2])
        first, last = np.searchsorted(events.index, [low * per_row, high * per_row])
        pixel, channel = np.divmod(events.index[first:last] - low * per_row, self.counts.shape[2])
        column = self._column[channel]
        kept = column >= 0
        return pixel[kept], column[kept], events.counts[first:last][kept]

    def _event_pixels(self, low: int, high: int, mask: np.ndarray) -> np.ndarray:
        flat = mask.reshape(-1)
        out = np.zeros((int(flat.sum()), self.n_channels), self.counts.dtype)
        pixel, column, values = self._events(low, high)
        inside = flat[pixel]
        position = np.cumsum(flat) - 1  # the row of each chosen pixel in the output
        out[position[pixel[inside]], column[inside]] = values[inside]
        return out

    def _event_points(self, flat: np.ndarray) -> np.ndarray:
        events, n_channels = self.events, int(self.counts.shape[2])
        out = np.zeros((len(flat), self.n_channels), self.counts.dtype)
        starts = np.searchsorted(events.index, flat * n_channels)
        lengths = np.searchsorted(events.index, (flat + 1) * n_channels) - starts
        owner = np.repeat(np.arange(len(flat)), lengths)  # the output row of every event
        offsets = np.cumsum(lengths) - lengths
        at = np.arange(int(lengths.sum())) - np.repeat(offsets - starts, lengths)
        column = self._column[events.index[at] % n_channels]
        kept = column >= 0
        out[owner[kept], column[kept]] = events.counts[at][kept]
        return out

    def _chunks(self, low: int, high: int) -> Iterator[tuple[int, int, np.ndarray]]:
        """``(top, bottom, rows)`` of every stored row chunk that meets rows ``low:high``."""
        if high <= low:
            return
        first = int(np.searchsorted(self.edges, low, side="right")) - 1
        for index in range(first, len(self.edges) - 1):
            top, bottom = int(self.edges[index]), int(self.edges[index + 1])
            if top >= high:
                return
            yield top, bottom, self._chunk(top, bottom)

    def _chunk(self, top: int, bottom: int) -> np.ndarray:
        held = self._held
        if held is None or held[0] != top:
            self._held = None  # the chunk above is let go before the next one is read
            block = self.counts[top:bottom, :, self.channels]
            held = (top, bottom, np.asarray(block.compute()))
            self._held = held
        return held[2]


CAST_VALUES = 1 << 22
"""Values per cast sub-block (16 MiB of float32). Integer counts are cast to float32 a sub-block
at a time rather than a whole block at once. Measured on 256 x 256 x 2048 uint16 (2 shared cores,
heavily loaded, best of 2): line windows (1450 channels) 0.64-0.86 s with 2**22 values, 2.0 s with
2**20, 3.7-5.2 s with 2**18, 1.2 s with 2**24; abundances (2048 channels, 6 components) 3.1-4.6 s,
5.9-6.7, 8.5-12.8 and 5.6 s."""


def cast_pixels(n_channels: int) -> int:
    """Pixels of ``n_channels`` values in one cast sub-block (:data:`CAST_VALUES`)."""
    return max(1, CAST_VALUES // max(int(n_channels), 1))


_CAST_BUFFERS = threading.local()


def cast_buffer(n_pixels: int, n_channels: int) -> np.ndarray:
    """A float32 ``(n_pixels, n_channels)`` scratch array of this thread, reused from call to call.

    A fresh array per sub-block (``astype``) cost more than the matrix product it fed: 16 MiB
    are allocated, faulted in page by page (or as huge pages, zeroed) and given back to the
    kernel every time. The cast into memory already mapped: 256 x 2048 uint16 values 0.08 ms
    per 1000 pixels against 5 ms (65 536 pixels of the 1024² cube, process CPU).
    """
    buffer = getattr(_CAST_BUFFERS, "array", None)
    if buffer is None or buffer.shape[1] != n_channels or len(buffer) < n_pixels:
        buffer = np.empty((n_pixels, n_channels), np.float32)
        _CAST_BUFFERS.array = buffer
    return buffer[:n_pixels]


def project_pixels(pixels: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``pixels (n, E) @ weights (E, M)`` in float32 on the CPU, cast in cache-sized sub-blocks
    (into this thread's :func:`cast_buffer`; the same products as casting each sub-block anew)."""
    out = np.empty((len(pixels), weights.shape[1]), np.float32)
    step = cast_pixels(pixels.shape[1])
    if len(pixels) == 0:
        return out
    buffer = cast_buffer(min(step, len(pixels)), pixels.shape[1])
    for first in range(0, len(pixels), step):
        part = pixels[first : first + step]
        cast = buffer[: len(part)]
        np.copyto(cast, part, casting="unsafe")
        np.matmul(cast, weights, out=out[first : first + len(part)])
    return out


def block_projector(weights: np.ndarray, device: str) -> Callable[[Any], Any]:
    """A function: pixel block ``(n, E)`` -> ``block @ weights`` ``(n, M)`` in float32.

    A numpy block on the CPU gives a numpy array (:func:`project_pixels`; torch's uint16 ->
    float32 cast of a whole block measured 3x slower). On another torch device, or for a block
    that is already a torch tensor (counts resident on the GPU), it gives a tensor on ``device``
    (numpy counts are sent in their own integer type and cast there).

    Parameters
    ----------
    weights : ndarray, shape (E, M)
        The projection.
    device : str
        ``"cpu"`` or a torch device such as ``"cuda"`` (resolved, not ``"auto"``).
    """
    weights = np.ascontiguousarray(weights, dtype=np.float32)
    on_device: list[Any] = []  # the weights as a tensor, made on first use

    def project(pixels: Any) -> Any:
        if device == "cpu" and isinstance(pixels, np.ndarray):
            return project_pixels(pixels, weights)
        import torch

        if not on_device:
            on_device.append(torch.as_tensor(weights, device=device))
        return _to_torch(pixels).to(device).to(torch.float32) @ on_device[0]

    return project


def _to_torch(pixels: Any) -> Any:
    """A tensor of ``pixels`` (shared with numpy where it can); unsigned integers torch cannot
    hold become int32/int64."""
    import torch

    if isinstance(pixels, torch.Tensor):
        return pixels
    pixels = np.ascontiguousarray(pixels)
    try:
        return torch.from_numpy(pixels)
    except TypeError:  # uint16/uint32 before torch 2.3
        return torch.from_numpy(pixels.astype(np.int32 if pixels.itemsize <= 2 else np.int64))


def prefetched(items: Iterable[T], depth: int = 1) -> Iterator[T]:
    """The items of ``items``, produced ``depth`` ahead in a background thread, in order.

    A pass over a cube alternates work that releases the GIL (reading a block, numpy's cast and
    matrix product) with work on what it produced (torch solves): with the producing side in a
    thread of its own, both run at once on two cores, each on one thread (no OpenMP team
    spinning against other processes). The results are those of the plain loop: each item is
    made by the same calls in the same order.

    The thread runs in a copy of the caller's context (a :func:`~napari_sigma.compute.chunks.
    memory_budget` applies there too). An exception in ``items`` is raised here; closing the
    generator (a cancelled computation) stops the thread after the item it is making.
    """
    channel: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()
    context = contextvars.copy_context()

    def put(entry: tuple[str, Any]) -> bool:
        while not stop.is_set():
            try:
                channel.put(entry, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(("item", item)):
                    return
        except BaseException as error:  # handed to the consumer
            put(("error", error))
            return
        put(("end", None))

    thread = threading.Thread(
        target=context.run, args=(produce,), name="napari-sigma prefetch", daemon=True
    )
    thread.start()
    try:
        while True:
            kind, value = channel.get()
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()
        while thread.is_alive():
            try:
                channel.get(timeout=0.05)
            except queue.Empty:
                pass
        thread.join()


_WORKERS: contextvars.ContextVar[int | None] = contextvars.ContextVar("workers", default=None)


@contextmanager
def worker_threads(n: int | None) -> Iterator[None]:
    """Within this context, the passes' own threads (:func:`threaded_map`, the BIC scan) are at
    most ``n`` (None: one per usable core). The napari widgets leave a core to the viewer's
    drawing; the CLI uses them all."""
    token = _WORKERS.set(None if n is None else max(1, int(n)))
    try:
        yield
    finally:
        _WORKERS.reset(token)


def usable_cores() -> int:
    """Threads a pass may run on: the CPU cores this process may use, at most the current
    :func:`worker_threads` bound."""
    import os

    try:
        cores = max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        cores = max(1, os.cpu_count() or 1)
    bound = _WORKERS.get()
    return cores if bound is None else min(cores, bound)


class Ahead:
    """``function(*args)`` computed ahead: in a thread of its own while the caller goes on
    (where a second core is usable), else by the first :meth:`result`. The same call either
    way, so the same value; its exception is raised by :meth:`result`.

    The thread runs in a copy of the caller's context (a memory budget applies there too).
    ``stop``: an event handed to ``function`` as its keyword ``stop`` (where given), which
    :meth:`cancel` sets, for work made of steps that it may end early once its value is no
    longer wanted.
    """

    def __init__(self, function: Callable[..., Any], *args: Any, stoppable: bool = False) -> None:
        self._call = (function, args, {"stop": threading.Event()} if stoppable else {})
        self._outcome: dict[str, Any] = {}
        self._thread: threading.Thread | None = None
        if usable_cores() > 1:
            context = contextvars.copy_context()
            self._thread = threading.Thread(
                target=context.run, args=(self._run,), name="napari-sigma ahead", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        function, args, keywords = self._call
        try:
            self._outcome["value"] = function(*args, **keywords)
        except BaseException as error:  # handed to the caller by result()
            self._outcome["error"] = error

    def result(self) -> Any:
        """The value of the call (made now where no thread made it)."""
        if self._thread is None and not self._outcome:
            self._run()
        elif self._thread is not None:
            self._thread.join()
        if "error" in self._outcome:
            raise self._outcome["error"]
        return self._outcome["value"]

    def cancel(self) -> None:
        """Tell a stoppable call that its value is not wanted, and wait for its thread."""
        stop = self._call[2].get("stop")
        if stop is not None:
            stop.set()
        if self._thread is not None:
            self._thread.join()


def threaded_map(
    function: Callable[[Any], T], items: Iterable[Any], workers: int | None = None
) -> Iterator[T]:
    """``function(item)`` of every item, in order, computed by ``workers`` threads (default:
    the usable cores) with at most ``workers`` items in flight (blocks sized for a memory
    budget stay within it).

    For passes whose blocks are independent and whose work releases the GIL (numpy sums of
    integer counts): the results are those of the plain loop, and the caller combines them in
    order. ``items`` is consumed lazily (a lazy cube is not read ahead of the workers); the
    threads run in a copy of the caller's context (its memory budget applies).
    """
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    workers = usable_cores() if workers is None else max(1, int(workers))
    if workers == 1:
        yield from map(function, items)
        return
    context = contextvars.copy_context()
    pending: deque = deque()
    with ThreadPoolExecutor(workers, thread_name_prefix="napari-sigma pass") as pool:
        try:
            for item in items:
                pending.append(pool.submit(context.copy().run, function, item))
                if len(pending) >= workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()
