"""Sums of pixel spectra, exact for integer counts (:mod:`napari_sigma.phases.statistics`' running
sums): of chosen pixels (:func:`sum_pixels`, :func:`add_pixels`: cache-sized chunks, integer
partial sums), of ``size x size`` blocks (:func:`block_sums`); and a phase's 8-connected regions
(:func:`region_sizes`)."""

from __future__ import annotations

from typing import Any

import numpy as np

_CHUNK_ROWS = 256  # pixel spectra summed per step: cache-sized and exact in uint32 for uint16 data


def _is_lazy(counts: Any) -> bool:
    """Whether ``counts`` is a lazy array (dask) rather than one in memory."""
    return hasattr(counts, "dask")


def _accumulator(dtype: np.dtype) -> np.dtype:
    """A dtype in which sums of ``_CHUNK_ROWS`` values of ``dtype`` are exact and cheap."""
    if dtype.kind in "bu" and dtype.itemsize <= 2:
        return np.dtype(np.uint32)
    if dtype.kind in "iu":
        return np.dtype(np.int64)
    return np.dtype(np.float64)


def sum_pixels(counts: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Sum spectrum (E,) float64 of the pixels ``(ys, xs)`` of ``counts`` (y, x, E).

    Gathers cache-sized chunks of pixel spectra, so memory stays small for any number of pixels.
    """
    total = np.zeros(counts.shape[2], dtype=np.float64)
    add_pixels(total, counts, ys, xs)
    return total


def add_pixels(total: np.ndarray, counts: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> None:
    """Add the spectra of the pixels ``(ys, xs)`` to ``total`` (E,) float64, in place."""
    accumulator = _accumulator(counts.dtype)
    for start in range(0, ys.size, _CHUNK_ROWS):
        stop = start + _CHUNK_ROWS
        total += np.add.reduce(counts[ys[start:stop], xs[start:stop]], axis=0, dtype=accumulator)


def block_sums(counts: np.ndarray, size: int) -> np.ndarray:
    """Sum spectra of the ``size x size`` blocks of ``counts`` (y, x, E) -> (y // size, x // size, E).

    Pixels beyond the last whole block are left out. float32 for integer counts of at most 16 bits
    and ``size <= 16`` (exact: sums stay below 2**24), float64 otherwise.
    """
    n_by, n_bx = counts.shape[0] // size, counts.shape[1] // size
    exact32 = counts.dtype.kind in "bu" and counts.dtype.itemsize <= 2 and size <= 16
    dtype = np.float32 if exact32 else np.float64
    out = np.empty((n_by, n_bx, counts.shape[2]), dtype=dtype)
    for by in range(n_by):
        band = counts[by * size : (by + 1) * size, : n_bx * size]
        band = band.reshape(size, n_bx, size, counts.shape[2])
        out[by] = np.add.reduce(band, axis=(0, 2), dtype=_accumulator(counts.dtype))
    return out


def region_sizes(labels: np.ndarray, phase_id: int) -> np.ndarray:
    """Sizes (pixels, largest first, int64) of the 8-connected regions of ``phase_id``."""
    from scipy import ndimage

    regions, n = ndimage.label(labels == phase_id, structure=np.ones((3, 3), dtype=bool))
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    sizes = np.bincount(regions.ravel(), minlength=n + 1)[1:].astype(np.int64)
    return np.sort(sizes)[::-1]


def _groups(codes: np.ndarray):
    """Distinct codes, each code's group index, the stable order by group and group bounds."""
    if codes.size and codes.min() == codes.max():  # one kind of change: a fill or a stroke
        distinct, group = codes[:1], np.zeros(codes.size, dtype=np.intp)
    else:
        distinct, group = np.unique(codes, return_inverse=True)
    order = np.argsort(group, kind="stable") if distinct.size > 1 else np.arange(group.size)
    bounds = np.searchsorted(group[order], np.arange(distinct.size + 1))
    return distinct, group, order, bounds
