"""Decoding an HDF5 dataset stored as plain or byte-shuffled bytes, without HDF5's chunk buffers.

HDF5 reads a chunk larger than its chunk cache (1 MiB) into a new buffer, unshuffles it into a
second new buffer and copies that into the destination: for a 4 GiB cube in 32 MiB chunks (an
``.hspy`` written in row bands, uncompressed: rsciio always adds the shuffle filter) that is
8 GiB of fresh pages, each zeroed and faulted in, and three copies. When the layout allows it,
this module reads each chunk's bytes with ``pread`` in blocks that stay in the CPU cache,
reverses the shuffle with integer shifts, and hands each decoded block to a writer (``pwrite``
into a shared-memory file, :mod:`napari_sigma.io.reading_process.isolation`) or copies it into the destination
array: one copy, no page faults, the same bytes as HDF5's own read.

The plan is made only from HDF5's own index of the dataset (h5py), and only for the layouts whose
bytes can be placed without HDF5: contiguous storage, chunks that span every axis but the
first (row bands, e.g. ``napari-sigma convert``), or tiles of a 3-D cube that span its last axis
(rosettasciio's and HyperSpy's default for an ``.hspy``: 15 x 15 pixels x every channel), every
chunk written, no filter other than shuffle, a numeric dtype in the machine's byte order.
Anything else (compression, chunks that split the last axis, fill values, external or virtual
storage) gives no plan, and the caller reads with HDF5. A tile is decoded whole (one chunk, at
most :data:`MAX_TILE_BYTES`) and its pixel rows placed one run at a time: HDF5's own read of a
4 GiB tiled ``.hspy`` into a shared-memory file wrote it through the mapping, 1.1 M page faults
(32 s of system time at load 15 on this project's VM). Every chunk's byte range is checked
against the file's size first; a short read (a file truncated meanwhile) raises ``OSError``.
:func:`decode_arriving` writes the same bytes in another order (some rows first, each row
reported once written) for a reader that uses the rows as they come.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

_SHUFFLE = 2  # H5Z_FILTER_SHUFFLE
_BLOCK_ELEMENTS = 1 << 18  # decoded per step: 0.5-2 MiB, kept in cache
_LAYOUT_CONTIGUOUS = 1
_LAYOUT_CHUNKED = 2
#: A tile (chunk) larger than this is left to HDF5 (its decoding buffers are one chunk each).
MAX_TILE_BYTES = 64 * 2**20

Writer = Callable[[int, memoryview], None]


@dataclass(frozen=True)
class Piece:
    """One stored block: ``n_bytes`` of the destination from ``dest_offset``, stored at
    ``file_offset`` (``stored_elements`` elements, more than the valid ones at an edge chunk),
    byte-shuffled or not."""

    dest_offset: int
    n_bytes: int
    file_offset: int
    stored_elements: int
    shuffled: bool


@dataclass(frozen=True)
class Tile:
    """One stored tile of a cube (``stored_elements`` elements at ``file_offset``, byte-shuffled
    or not) and where its pixel rows go: ``runs`` of ``(destination byte offset, first element
    in the tile, elements)``, one per row of valid pixels (an edge tile holds fewer)."""

    file_offset: int
    stored_elements: int
    shuffled: bool
    runs: tuple[tuple[int, int, int], ...]


@dataclass(frozen=True)
class Plan:
    """How to decode a dataset without HDF5: its file, dtype and stored pieces (row bands or
    contiguous storage) or tiles."""

    filename: str
    shape: tuple[int, ...]
    dtype: np.dtype
    pieces: tuple[Piece, ...]
    tiles: tuple[Tile, ...] = ()


def plan(dataset) -> Plan | None:
    """A :class:`Plan` for an h5py dataset, or None when HDF5 must read it (see the module)."""
    try:
        return _plan(dataset)
    except (AttributeError, TypeError, ValueError, RuntimeError, OSError, KeyError):
        return None  # an old HDF5 without the chunk index queries, or an unexpected answer


def _plan(dataset) -> Plan | None:
    dtype = np.dtype(dataset.dtype)
    shape = tuple(int(n) for n in dataset.shape)
    storage = _decodable_storage(dataset, dtype, shape)
    if storage is None:
        return None
    dcpl, has_shuffle = storage
    filename = dataset.file.filename
    file_size = os.path.getsize(filename)
    nbytes = int(np.prod(shape)) * dtype.itemsize
    layout = dcpl.get_layout()
    if layout == _LAYOUT_CONTIGUOUS and not has_shuffle:
        offset = dataset.id.get_offset()
        if offset is None or offset + nbytes > file_size:
            return None
        pieces = (Piece(0, nbytes, int(offset), nbytes // dtype.itemsize, False),)
        return Plan(filename, shape, dtype, pieces)
    if layout != _LAYOUT_CHUNKED or dataset.chunks is None:
        return None
    chunks = tuple(int(n) for n in dataset.chunks)
    if len(shape) == 3 and chunks[2] == shape[2] and chunks[1] != shape[1]:
        return _tiled_plan(dataset, shape, dtype, chunks, has_shuffle, file_size)
    if chunks[1:] != shape[1:]:
        return None  # chunks that split a later axis: left to HDF5
    return _banded_plan(dataset, filename, shape, dtype, chunks, has_shuffle, file_size)


def _decodable_storage(dataset, dtype: np.dtype, shape: tuple[int, ...]):
    """``(creation property list, shuffled)`` of a dataset whose stored bytes this module can
    decode (native integers or floats, not empty, no external file, no filter but the byte
    shuffle of its own element size); None for any other."""
    if dtype.kind not in "uif" or not dtype.isnative or dtype.itemsize not in (1, 2, 4, 8):
        return None
    if len(shape) < 1 or 0 in shape:
        return None
    dcpl = dataset.id.get_create_plist()
    if dcpl.get_external_count() != 0:
        return None
    filters = [dcpl.get_filter(i) for i in range(dcpl.get_nfilters())]
    if any(f[0] != _SHUFFLE for f in filters) or len(filters) > 1:
        return None
    has_shuffle = bool(filters)
    if has_shuffle and tuple(filters[0][2])[:1] not in ((), (dtype.itemsize,)):
        return None
    return dcpl, has_shuffle


def _banded_plan(
    dataset, filename: str, shape, dtype, chunks, has_shuffle: bool, file_size: int
) -> Plan | None:
    """The plan of a dataset stored in row bands (chunks of whole rows): one piece per chunk,
    checked against the index (every band written once, inside the file)."""
    row_bytes = int(np.prod(shape)) * dtype.itemsize // shape[0]
    stored_elements = int(np.prod(chunks))
    n_chunks = -(-shape[0] // chunks[0])
    if dataset.id.get_num_chunks() != n_chunks:
        return None  # chunks never written read as the fill value: HDF5's business
    pieces = []
    covered = set()
    for info in _chunk_infos(dataset, n_chunks):
        start = int(info.chunk_offset[0])
        if (
            info.byte_offset is None
            or start % chunks[0]
            or start >= shape[0]
            or start in covered
            or any(int(o) for o in info.chunk_offset[1:])
            or int(info.size) != stored_elements * dtype.itemsize
            or int(info.byte_offset) + int(info.size) > file_size
        ):
            return None
        covered.add(start)
        rows = min(chunks[0], shape[0] - start)
        shuffled = has_shuffle and not (int(info.filter_mask) & 1)
        pieces.append(
            Piece(
                start * row_bytes,
                rows * row_bytes,
                int(info.byte_offset),
                stored_elements,
                shuffled,
            )
        )
    return Plan(filename, shape, dtype, tuple(sorted(pieces, key=lambda p: p.dest_offset)))


def _chunk_infos(dataset, n_chunks: int) -> list:
    """HDF5's index entries of the dataset's ``n_chunks`` chunks (one walk of the index where
    h5py has ``chunk_iter``; ``get_chunk_info(i)`` walks it again for each chunk)."""
    iterate = getattr(dataset.id, "chunk_iter", None)
    if iterate is not None:
        infos: list = []
        try:
            iterate(infos.append)
        except (RuntimeError, NotImplementedError):  # an HDF5 without H5Dchunk_iter
            infos = []
        if len(infos) == n_chunks:
            return infos
    return [dataset.id.get_chunk_info(index) for index in range(n_chunks)]


def _tiled_plan(dataset, shape, dtype, chunks, has_shuffle: bool, file_size: int) -> Plan | None:
    """The plan of a 3-D cube stored in tiles of ``chunks[0] x chunks[1]`` pixels x every
    channel: each tile's valid pixel rows as runs of the destination."""
    ny, nx, n_channels = shape
    tile_y, tile_x = chunks[0], chunks[1]
    itemsize = dtype.itemsize
    stored_elements = tile_y * tile_x * n_channels
    if stored_elements * itemsize > MAX_TILE_BYTES:
        return None
    n_chunks = -(-ny // tile_y) * -(-nx // tile_x)
    if dataset.id.get_num_chunks() != n_chunks:
        return None  # chunks never written read as the fill value: HDF5's business
    tiles = []
    covered = set()
    for info in _chunk_infos(dataset, n_chunks):
        y0, x0, e0 = (int(o) for o in info.chunk_offset)
        if (
            info.byte_offset is None
            or y0 % tile_y
            or x0 % tile_x
            or y0 >= ny
            or x0 >= nx
            or e0
            or (y0, x0) in covered
            or int(info.size) != stored_elements * itemsize
            or int(info.byte_offset) + int(info.size) > file_size
        ):
            return None
        covered.add((y0, x0))
        width = min(tile_x, nx - x0)
        runs = tuple(
            (((y0 + y) * nx + x0) * n_channels * itemsize, y * tile_x * n_channels,
             width * n_channels)
            for y in range(min(tile_y, ny - y0))
        )  # fmt: skip
        shuffled = has_shuffle and not (int(info.filter_mask) & 1)
        tiles.append(Tile(int(info.byte_offset), stored_elements, shuffled, runs))
    tiles.sort(key=lambda tile: tile.file_offset)  # the file read front to back
    return Plan(dataset.file.filename, shape, dtype, (), tuple(tiles))


def _buffers(plan: Plan, out: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The decoding's work buffers (raw bytes, decoded and widened elements: one block each)
    after checking that ``out`` is the dataset's C-contiguous destination."""
    if out.shape != plan.shape or out.dtype != plan.dtype or not out.flags.c_contiguous:
        raise ValueError("the destination does not match the dataset")
    itemsize = plan.dtype.itemsize
    unsigned = np.dtype(f"u{itemsize}")
    block = max([_BLOCK_ELEMENTS, *(tile.stored_elements for tile in plan.tiles)])
    return (
        np.empty(block * itemsize, np.uint8),
        np.empty(block, unsigned),
        np.empty(block, unsigned),
    )


def decode(plan: Plan, out: np.ndarray, write: Writer | None = None) -> None:
    """Decode the planned dataset into ``out`` (C-contiguous, the dataset's shape and dtype).

    ``write(byte_offset, data)``, when given, places each decoded block at that byte offset of
    ``out``'s memory instead of a copy (e.g. ``pwrite`` to the file that ``out`` maps).
    """
    raw, decoded, widened = _buffers(plan, out)
    flat = out.reshape(-1).view(np.uint8)
    if write is None:

        def write(offset: int, data: memoryview) -> None:
            flat[offset : offset + len(data)] = np.frombuffer(data, np.uint8)

    itemsize = plan.dtype.itemsize
    block = decoded.size
    fd = os.open(plan.filename, os.O_RDONLY)
    try:
        for tile in plan.tiles:
            _decode_tile(fd, tile, raw, decoded, widened, write)
        for piece in plan.pieces:
            n = piece.n_bytes // itemsize
            for first in range(0, n, block):
                count = min(block, n - first)
                if not piece.shuffled or itemsize == 1:
                    data = raw[: count * itemsize]
                    _pread(fd, data, piece.file_offset + first * itemsize)
                else:
                    data = decoded[:count]
                    _unshuffle(fd, piece, first, count, raw, data, widened[:count])
                write(piece.dest_offset + first * itemsize, memoryview(data).cast("B"))
    finally:
        os.close(fd)


def decode_arriving(
    plan: Plan,
    out: np.ndarray,
    write: Writer,
    report: Callable[[list[tuple[int, int]]], None],
    first_rows: range = range(0),
) -> None:
    """:func:`decode` in the order an analysis reading the cube meanwhile wants it: the rows
    ``first_rows`` first (only their bytes of each tile or band), then the rest in the file's
    order; ``report(ranges)`` after each step with the rows ``(start, stop)`` now complete.

    The same bytes are written at the same offsets as by :func:`decode` (a row already written
    is not written again), so the finished array is the same.
    """
    buffers = _buffers(plan, out)
    ny = plan.shape[0]
    row_bytes = out.nbytes // max(ny, 1)
    itemsize = plan.dtype.itemsize
    early = np.zeros(ny, bool)
    early[first_rows.start : first_rows.stop : first_rows.step] = True
    fd = os.open(plan.filename, os.O_RDONLY)
    try:
        if early.any():
            _decode_rows(fd, plan, early, row_bytes, buffers, write)
            report([(int(r), int(r) + 1) for r in np.flatnonzero(early)])
        if plan.tiles:
            _tiles_in_order(fd, plan, early, row_bytes, buffers, write, report)
        for piece in plan.pieces:
            start = piece.dest_offset // row_bytes
            rows = [r for r in range(start, start + piece.n_bytes // row_bytes) if not early[r]]
            for row in rows:
                _decode_range(fd, piece, (row - start) * (row_bytes // itemsize),
                              row_bytes // itemsize, row * row_bytes, buffers, write)  # fmt: skip
            if rows:
                report([(row, row + 1) for row in rows])
    finally:
        os.close(fd)


def _decode_rows(fd: int, plan: Plan, rows: np.ndarray, row_bytes: int, buffers, write) -> None:
    """Decode only the rows marked in ``rows`` (each tile's or band's part of them)."""
    itemsize = plan.dtype.itemsize
    for tile in plan.tiles:
        for dest_offset, first, n in tile.runs:
            if rows[dest_offset // row_bytes]:
                _decode_range(fd, tile, first, n, dest_offset, buffers, write)
    for piece in plan.pieces:
        start = piece.dest_offset // row_bytes
        for row in range(start, start + piece.n_bytes // row_bytes):
            if rows[row]:
                _decode_range(fd, piece, (row - start) * (row_bytes // itemsize),
                              row_bytes // itemsize, row * row_bytes, buffers, write)  # fmt: skip


def _tiles_in_order(fd, plan: Plan, early: np.ndarray, row_bytes: int, buffers, write, report):
    """Every tile in the file's order, its rows not in ``early`` written; a row is reported
    once every tile across it is written."""
    raw, decoded, widened = buffers
    needed = np.zeros(len(early), np.int64)
    for tile in plan.tiles:
        for dest_offset, _, _ in tile.runs:
            needed[dest_offset // row_bytes] += 1
    needed[early] = 0
    for tile in plan.tiles:
        kept = [not early[run[0] // row_bytes] for run in tile.runs]
        runs = tuple(run for run, keep in zip(tile.runs, kept, strict=True) if keep)
        if len(runs) == len(tile.runs):
            _decode_tile(fd, tile, raw, decoded, widened, write)
        else:  # each stretch of rows not yet written decoded alone: no element twice
            for stretch in _stretches(tile.runs, kept):
                _decode_stretch(fd, tile, stretch, buffers, write)
        complete = []
        for dest_offset, _, _ in runs:
            row = dest_offset // row_bytes
            needed[row] -= 1
            if needed[row] == 0:
                complete.append((row, row + 1))
        if complete:
            report(complete)


def _stretches(runs, kept: list[bool]) -> list[list]:
    """The kept runs, in stretches of consecutive rows of the tile."""
    stretches: list[list] = []
    previous = False
    for run, keep in zip(runs, kept, strict=True):
        if keep:
            if not previous:
                stretches.append([])
            stretches[-1].append(run)
        previous = keep
    return stretches


def _decode_stretch(fd: int, tile: Tile, runs: list, buffers, write) -> None:
    """Decode a tile's elements from its first run's to its last run's end, then write each
    run (the tile's rows between them are its runs too)."""
    raw, decoded, widened = buffers
    itemsize = decoded.dtype.itemsize
    first = runs[0][1]
    count = runs[-1][1] + runs[-1][2] - first
    if not tile.shuffled or itemsize == 1:
        data = raw[: count * itemsize]
        _pread(fd, data, tile.file_offset + first * itemsize)
        elements = data.view(decoded.dtype)
    else:
        elements = decoded[:count]
        piece = Piece(0, 0, tile.file_offset, tile.stored_elements, True)
        _unshuffle(fd, piece, first, count, raw, elements, widened[:count])
    for dest_offset, start, n in runs:
        write(dest_offset, memoryview(elements[start - first : start - first + n]).cast("B"))


def _decode_range(fd: int, stored, first: int, count: int, dest_offset: int, buffers, write):
    """Elements ``first:first+count`` of a stored tile or piece written at ``dest_offset``,
    in blocks of the buffers' size."""
    raw, decoded, widened = buffers
    itemsize = decoded.dtype.itemsize
    block = len(decoded)
    for done in range(0, count, block):
        n = min(block, count - done)
        if not stored.shuffled or itemsize == 1:
            data = raw[: n * itemsize]
            _pread(fd, data, stored.file_offset + (first + done) * itemsize)
        else:
            data = decoded[:n]
            piece = Piece(0, 0, stored.file_offset, stored.stored_elements, True)
            _unshuffle(fd, piece, first + done, n, raw, data, widened[:n])
        write(dest_offset + done * itemsize, memoryview(data).cast("B"))


def _decode_tile(
    fd: int,
    tile: Tile,
    raw: np.ndarray,
    decoded: np.ndarray,
    widened: np.ndarray,
    write: Writer,
) -> None:
    """Decode a tile's elements up to the end of its last run, then write each run."""
    itemsize = decoded.dtype.itemsize
    last = tile.runs[-1]
    count = last[1] + last[2]
    if not tile.shuffled or itemsize == 1:
        data = raw[: count * itemsize]
        _pread(fd, data, tile.file_offset)
        elements = data.view(decoded.dtype)
    else:
        elements = decoded[:count]
        piece = Piece(0, count * itemsize, tile.file_offset, tile.stored_elements, True)
        _unshuffle(fd, piece, 0, count, raw, elements, widened[:count])
    for dest_offset, first, n in tile.runs:
        write(dest_offset, memoryview(elements[first : first + n]).cast("B"))


def _unshuffle(
    fd: int,
    piece: Piece,
    first: int,
    count: int,
    raw: np.ndarray,
    out: np.ndarray,
    widened: np.ndarray,
) -> None:
    """Elements ``first:first+count`` of a shuffled chunk (byte ``j`` of every element is in
    plane ``j`` of ``stored_elements`` bytes) into ``out`` (unsigned, the element's size)."""
    itemsize = out.dtype.itemsize
    for j in range(itemsize):
        plane = raw[j * count : (j + 1) * count]
        _pread(fd, plane, piece.file_offset + j * piece.stored_elements + first)
    top = itemsize - 1
    np.left_shift(raw[top * count : (top + 1) * count], 8 * top, out=out, dtype=out.dtype)
    for j in range(1, top):
        np.left_shift(raw[j * count : (j + 1) * count], 8 * j, out=widened, dtype=out.dtype)
        np.bitwise_or(out, widened, out=out)
    np.bitwise_or(out, raw[:count], out=out)  # the low bytes, widened by the ufunc


def _pread(fd: int, into: np.ndarray, offset: int) -> None:
    view = memoryview(into).cast("B")
    done = 0
    while done < len(view):
        got = os.preadv(fd, [view[done:]], offset + done)
        if got <= 0:
            raise OSError(f"the file ends before byte {offset + len(view)}: it was truncated")
        done += got
