"""Edits of a phase label image: merge, assign (lasso), split, mark unassigned.

Each edit is computed by a pure function as an :class:`Edit` (which flat pixels get which label)
and written into a napari Labels layer by :func:`apply_to_layer` as ONE undo step (inside
``layer.block_history()``, so the layer emits one ``paint`` event after the write).
The mapping between latent rows and label-image pixels (binned analyses: one latent row per
``b x b`` block, the cropped edge belonging to the last block) is here too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Edit:
    """New label values for some pixels of a ``(y, x)`` label image.

    Parameters
    ----------
    indices : ndarray of int64, shape (M,)
        Flat (C order) pixel indices.
    values : ndarray of int32, shape (M,)
        The label each of them gets.
    """

    indices: np.ndarray
    values: np.ndarray

    @property
    def size(self) -> int:
        """Number of pixels the edit writes."""
        return int(self.indices.size)


def _edit(indices: np.ndarray, values: np.ndarray | int) -> Edit:
    indices = np.asarray(indices, dtype=np.int64).reshape(-1)
    values = np.broadcast_to(np.asarray(values, dtype=np.int32), indices.shape).copy()
    return Edit(indices, values)


def merge_phases(labels: np.ndarray, phase_ids: Sequence[int], target: int) -> Edit:
    """Relabel every pixel of ``phase_ids`` as ``target``.

    Parameters
    ----------
    labels : ndarray, shape (y, x)
        The label image (not modified).
    phase_ids : sequence of int
        Phases to merge (``target`` may be among them).
    target : int
        The label they all get.
    """
    sources = [int(p) for p in phase_ids if int(p) != int(target)]
    indices = np.flatnonzero(np.isin(labels.reshape(-1), sources))
    return _edit(indices, int(target))


def mark_unassigned(labels: np.ndarray, phase_ids: Sequence[int]) -> Edit:
    """Set every pixel of ``phase_ids`` to 0 (unassigned)."""
    return merge_phases(labels, phase_ids, 0)


def assign_pixels(labels: np.ndarray, pixels: np.ndarray, target: int) -> Edit:
    """Give the flat pixels ``pixels`` the label ``target`` (only those that differ)."""
    pixels = np.unique(np.asarray(pixels, dtype=np.int64).reshape(-1))
    pixels = pixels[labels.reshape(-1)[pixels] != target]
    return _edit(pixels, int(target))


def apply_edit(labels: np.ndarray, edit: Edit) -> np.ndarray:
    """Return a copy of ``labels`` with ``edit`` written into it."""
    out = np.array(labels, copy=True)
    out.reshape(-1)[edit.indices] = edit.values
    return out


def apply_to_layer(layer: Any, edit: Edit) -> None:
    """Write ``edit`` into a napari Labels layer as one undo step (one ``paint`` event)."""
    if edit.size == 0:
        return
    from napari_sigma._napari.results import ensure_label_capacity

    ensure_label_capacity(layer, int(edit.values.max()))  # a uint8 layer widens, never wraps
    coords = np.unravel_index(edit.indices, layer.data.shape)
    with layer.block_history():
        layer.data_setitem(coords, edit.values.astype(layer.data.dtype, copy=False))


# -- latent rows <-> label-image pixels ------------------------------------------------------
def pixel_latent_rows(result: Any, shape: tuple[int, int]) -> np.ndarray:
    """The latent row of every full-resolution pixel, ``(y, x)`` int64 (-1 where there is none).

    A latent row stands for the ``bin_factor x bin_factor`` block whose representative pixel is
    ``result.latent_pixels[row]``; pixels of the cropped edge belong to the last block, as the
    analysis labels them.
    """
    factor = max(int(getattr(result, "bin_factor", 1)), 1)
    grid_y, grid_x = (int(n) for n in result.latent_shape)
    rep = np.asarray(result.latent_pixels, dtype=np.int64)
    block_y = np.minimum(rep // shape[1] // factor, grid_y - 1)
    block_x = np.minimum(rep % shape[1] // factor, grid_x - 1)
    blocks = np.full((grid_y, grid_x), -1, dtype=np.int64)
    blocks[block_y, block_x] = np.arange(rep.size)
    rows_of_y = np.minimum(np.arange(shape[0]) // factor, grid_y - 1)
    rows_of_x = np.minimum(np.arange(shape[1]) // factor, grid_x - 1)
    return blocks[rows_of_y[:, None], rows_of_x[None, :]]


def latent_rows_to_pixels(result: Any, rows: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Flat indices (sorted) of every full-resolution pixel that latent rows ``rows`` stand for.

    The same pixels as looking each pixel's row up in :func:`pixel_latent_rows`, but built from
    the selected rows' blocks: the work follows the selection, not the map (a lasso at 1024²
    binned by 4 looked up 1M pixels: ~55 ms in napari's main thread at load 5).
    """
    factor = max(int(getattr(result, "bin_factor", 1)), 1)
    grid_y, grid_x = (int(n) for n in result.latent_shape)
    rep = np.asarray(result.latent_pixels, dtype=np.int64)
    block_y = np.minimum(rep // shape[1] // factor, grid_y - 1)
    block_x = np.minimum(rep % shape[1] // factor, grid_x - 1)
    owner = np.full((grid_y, grid_x), -1, dtype=np.int64)  # as pixel_latent_rows: the last wins
    owner[block_y, block_x] = np.arange(rep.size)
    rows = np.unique(np.asarray(rows, dtype=np.int64).reshape(-1))
    rows = rows[(rows >= 0) & (rows < rep.size)]
    rows = rows[owner[block_y[rows], block_x[rows]] == rows]
    by, bx = block_y[rows], block_x[rows]
    # a block's pixels; the last block of a row or column also takes the cropped edge
    y0, x0 = by * factor, bx * factor
    y1 = np.where(by == grid_y - 1, shape[0], np.minimum(y0 + factor, shape[0]))
    x1 = np.where(bx == grid_x - 1, shape[1], np.minimum(x0 + factor, shape[1]))
    height, width = np.maximum(y1 - y0, 0), np.maximum(x1 - x0, 0)
    sizes = height * width
    block = np.repeat(np.arange(rows.size), sizes)
    local = np.arange(int(sizes.sum()), dtype=np.int64) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    wide = np.maximum(width[block], 1)
    pixels = (y0[block] + local // wide) * shape[1] + x0[block] + local % wide
    return np.sort(pixels)


def latent_phase_of_rows(result: Any, labels: np.ndarray) -> np.ndarray:
    """The current label of each latent row (the label of its representative pixel)."""
    return labels.reshape(-1)[np.asarray(result.latent_pixels, dtype=np.int64)]


def rows_in_polygon(latent: np.ndarray, vertices: Sequence[Sequence[float]]) -> np.ndarray:
    """Latent rows whose 2-D point lies inside the polygon ``vertices`` (a lasso)."""
    from matplotlib.path import Path

    vertices = np.asarray(vertices, dtype=np.float64)
    if vertices.ndim != 2 or vertices.shape[0] < 3:
        return np.zeros(0, dtype=np.int64)
    inside = Path(vertices).contains_points(np.asarray(latent, dtype=np.float64)[:, :2])
    return np.flatnonzero(inside)


def assign_latent_selection(
    labels: np.ndarray, result: Any, vertices: Sequence[Sequence[float]], target: int
) -> Edit:
    """Assign to ``target`` every pixel whose latent point lies inside the lasso ``vertices``."""
    rows = rows_in_polygon(result.latent, vertices)
    return assign_pixels(labels, latent_rows_to_pixels(result, rows, labels.shape), target)


def split_phase_edit(
    labels: np.ndarray,
    result: Any,
    phase_id: int,
    n: int,
    new_ids: Sequence[int],
    seed: int = 0,
) -> Edit:
    """Re-cluster phase ``phase_id`` into ``n`` parts on its pixels' latent coordinates.

    Part 0 keeps ``phase_id``; part ``i`` (1..n-1) becomes ``new_ids[i - 1]``. Pixels sharing a
    latent row (one binned block) stay together; pixels without a latent row keep their label.

    Parameters
    ----------
    labels : ndarray, shape (y, x)
        The current label image.
    result : AnalysisResult
        Gives ``latent``, ``latent_pixels``, ``latent_shape``, ``bin_factor``.
    phase_id : int
        The phase to split.
    n : int
        Number of parts (>= 2).
    new_ids : sequence of int
        ``n - 1`` unused label values for the new parts.
    seed : int
        Seed of the clustering.
    """
    from napari_sigma.phases.mixture import split_phase

    if n < 2 or len(new_ids) < n - 1:
        raise ValueError(f"a split needs n >= 2 and n - 1 new ids, got n={n}, ids={new_ids}")
    rows = pixel_latent_rows(result, labels.shape).reshape(-1)
    pixels = np.flatnonzero((labels.reshape(-1) == phase_id) & (rows >= 0))
    unique_rows, inverse = np.unique(rows[pixels], return_inverse=True)
    if unique_rows.size < n:
        raise ValueError(
            f"phase {phase_id} has {unique_rows.size} latent points, cannot split in {n}"
        )
    parts = np.asarray(split_phase(np.asarray(result.latent)[unique_rows], n, seed))
    targets = np.array([phase_id, *list(new_ids)[: n - 1]], dtype=np.int32)
    values = targets[parts[inverse]]
    moved = values != phase_id
    return _edit(pixels[moved], values[moved])
