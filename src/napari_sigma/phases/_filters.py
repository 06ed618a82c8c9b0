"""Neighbourhood sums for phase finding: numpy arrays on the CPU, torch tensors on CUDA (both
release the GIL; the same element-wise operations in the same order, so the same bits).

The maps are ``(y, x, ...)`` arrays; sums run over a ``(2r+1) x (2r+1)`` window of the first
two axes. ``"nearest"`` repeats the edge pixels beyond the map (scipy.ndimage's ``"nearest"``),
``"constant"`` adds zeros.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:
    import torch

Edge = Literal["nearest", "constant"]


def padded(maps: torch.Tensor, radius: int, mode: Edge = "nearest") -> torch.Tensor:
    """``maps`` grown by ``radius`` pixels on each side of its first two axes."""
    if radius <= 0:
        return maps
    if isinstance(maps, np.ndarray):
        widths = [(radius, radius)] * 2 + [(0, 0)] * (maps.ndim - 2)
        return np.pad(maps, widths, mode="edge" if mode == "nearest" else "constant")
    import torch

    for dim in (0, 1):
        size = maps.shape[dim]
        if mode == "nearest":
            before = maps.narrow(dim, 0, 1).expand(*_grown(maps.shape, dim, radius))
            after = maps.narrow(dim, size - 1, 1).expand(*_grown(maps.shape, dim, radius))
        else:
            shape = _grown(maps.shape, dim, radius)
            before = after = torch.zeros(shape, dtype=maps.dtype, device=maps.device)
        maps = torch.cat([before, maps, after], dim=dim)
    return maps


def _grown(shape: torch.Size, dim: int, size: int) -> tuple[int, ...]:
    out = list(shape)
    out[dim] = size
    return tuple(out)


def box_sum(maps: torch.Tensor, radius: int, mode: Edge = "nearest") -> torch.Tensor:
    """Sum over the ``(2r+1)^2`` window of every pixel (separable: rows, then columns).

    Shifted slices are added in place (no padded copy); integer-valued maps give exact sums
    (float32 holds integers up to 2**24 exactly).
    """
    if radius <= 0:
        return maps
    return _line_sum(_line_sum(maps, radius, 0, mode), radius, 1, mode)


def _line_sum(maps: torch.Tensor, radius: int, dim: int, mode: Edge) -> torch.Tensor:
    """Sum over ``2r+1`` neighbours along one axis."""
    if isinstance(maps, np.ndarray):
        return _line_sum_numpy(maps, radius, dim, mode)
    size = maps.shape[dim]
    out = maps.clone()
    for shift in range(1, radius + 1):
        if shift < size:
            out.narrow(dim, shift, size - shift).add_(maps.narrow(dim, 0, size - shift))
            out.narrow(dim, 0, size - shift).add_(maps.narrow(dim, shift, size - shift))
        if mode == "nearest":  # the neighbours beyond the edge are the edge pixel
            reach = min(shift, size)
            out.narrow(dim, 0, reach).add_(maps.narrow(dim, 0, 1))
            out.narrow(dim, size - reach, reach).add_(maps.narrow(dim, size - 1, 1))
    return out


def _line_sum_numpy(maps: np.ndarray, radius: int, dim: int, mode: Edge) -> np.ndarray:
    """:func:`_line_sum` of a numpy array: the same additions in the same order."""
    size = maps.shape[dim]
    out = maps.copy()

    def part(array, start, length):
        index = [slice(None)] * array.ndim
        index[dim] = slice(start, start + length)
        return array[tuple(index)]

    for shift in range(1, radius + 1):
        if shift < size:
            part(out, shift, size - shift)[...] += part(maps, 0, size - shift)
            part(out, 0, size - shift)[...] += part(maps, shift, size - shift)
        if mode == "nearest":  # the neighbours beyond the edge are the edge pixel
            reach = min(shift, size)
            part(out, 0, reach)[...] += part(maps, 0, 1)
            part(out, size - reach, reach)[...] += part(maps, size - 1, 1)
    return out


def neighbour_counts(
    labels: torch.Tensor,
    n_labels: int,
    dtype: torch.dtype,
    at: tuple[torch.Tensor, torch.Tensor] | None = None,
    rows: slice | None = None,
    grown: torch.Tensor | None = None,
) -> torch.Tensor:
    """How many of each pixel's 8 neighbours carry each label, shape ``(y, x, n_labels)``.

    Beyond the map the edge pixels repeat (a pixel on the edge counts its own label for the
    neighbours it lacks), as the uniform filter with ``mode="nearest"`` did. Exact integers.
    With ``at`` (rows, columns), only those pixels: shape ``(len(rows), n_labels)``. With
    ``rows`` (a slice of rows, step 1), only those rows: ``(rows, x, n_labels)``, the same
    counts as those rows of the whole map. ``grown``: ``padded(labels, 1, "nearest")`` if
    the caller has it already. ``dtype``: numpy's or torch's, as ``labels`` is.
    """
    height, width = labels.shape
    grown = padded(labels, 1, "nearest") if grown is None else grown
    first, last = (0, height) if rows is None else rows.indices(height)[:2]
    shape = (last - first, width, n_labels) if at is None else (len(at[0]), n_labels)
    if isinstance(labels, np.ndarray):
        cells = int(np.prod(shape[:-1]))
        offsets = np.arange(cells, dtype=np.int64).reshape(shape[:-1]) * n_labels
        found = []
        for dy in range(3):
            for dx in range(3):
                if dy == 1 and dx == 1:
                    continue
                if at is None:
                    index = grown[first + dy : last + dy, dx : dx + width]
                else:
                    index = grown[at[0] + dy, at[1] + dx]
                found.append((offsets + index).reshape(-1))
        counts = np.bincount(np.concatenate(found), minlength=cells * n_labels)  # exact integers
        return counts.astype(dtype).reshape(shape)
    import torch

    counts = torch.zeros(shape, dtype=dtype, device=labels.device)
    ones = torch.ones((*shape[:-1], 1), dtype=dtype, device=labels.device)
    for dy in range(3):
        for dx in range(3):
            if dy == 1 and dx == 1:
                continue
            if at is None:
                index = grown[first + dy : last + dy, dx : dx + width, None]
            else:
                index = grown[at[0] + dy, at[1] + dx][:, None]
            counts.scatter_add_(-1, index, ones)
    return counts


def dilated(mask: torch.Tensor) -> torch.Tensor:
    """``mask`` grown by its 8 neighbours (boolean ``(y, x)``)."""
    if isinstance(mask, np.ndarray):
        return box_sum(mask.astype(np.float32), 1, "constant") > 0
    import torch

    return box_sum(mask.to(torch.float32), 1, "constant") > 0


def gaussian_blur(maps, sigma: float, truncate: float = 4.0, band: int = 32, where=None):
    """``maps`` ``(y, x, C)`` (numpy) smoothed by a Gaussian of ``sigma`` pixels over y and x.

    scipy.ndimage.gaussian_filter's kernel (radius ``int(truncate * sigma + 0.5)``, normalised)
    and edges (``"nearest"``), summed in float64 with numpy ufuncs (they release the GIL;
    scipy.ndimage holds it) in bands of ``band`` rows (temporaries in cache), the bands on
    every core (:func:`~napari_sigma.compute.blocks.threaded_map`); returns float32.
    Host arrays on purpose: the fractions it smooths are host arrays on every device.

    ``where``: boolean ``(y, x)``; only those pixels are computed (0 elsewhere): each band
    is summed over the columns of its wanted pixels and ``radius`` more on each side. Every
    computed pixel has the same bits as in the whole blur (its terms are added in the same
    order).
    """
    import numpy as np

    from napari_sigma.compute.blocks import threaded_map

    radius = int(truncate * float(sigma) + 0.5)
    offsets = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 / float(sigma) ** 2 * offsets**2)
    kernel /= kernel.sum()
    source = np.asarray(maps)
    height, width = source.shape[:2]
    wanted = None if where is None else np.asarray(where, bool)
    out = (np.empty if wanted is None else np.zeros)(source.shape, dtype=np.float32)

    def blur_band(top: int) -> None:
        rows = min(band, height - top)
        first, stop = 0, width
        if wanted is not None:
            columns = np.flatnonzero(wanted[top : top + rows].any(0))
            if not len(columns):
                return
            first, stop = int(columns[0]), int(columns[-1]) + 1
        # the columns summed: the wanted ones and their neighbours within the kernel
        left, right = max(first - radius, 0), min(stop + radius, width)
        low, high = max(top - radius, 0), min(top + band + radius, height)
        values = source[low:high, left:right].astype(np.float64)
        values = _weighted_line_sum(values, kernel[radius:], 1, left == 0, right == width)
        values = _weighted_line_sum(values, kernel[radius:], 0, low == 0, high == height)
        out[top : top + rows, first:stop] = values[
            top - low : top - low + rows, first - left : stop - left
        ]

    for _ in threaded_map(blur_band, range(0, height, band)):
        pass
    return out


def _weighted_line_sum(maps, weights, axis: int, first_edge: bool = True, last_edge: bool = True):
    """``sum_s weights[|s|] * maps[i + s]`` along ``axis`` (numpy); beyond the first (last)
    pixel the edge pixel repeats when ``first_edge`` (``last_edge``), else nothing is added (a
    band of a larger map, whose rows there are discarded)."""
    import numpy as np

    size = maps.shape[axis]
    out = maps * weights[0]

    def part(array, start, stop):
        index = [slice(None)] * array.ndim
        index[axis] = slice(start, stop)
        return array[tuple(index)]

    for shift in range(1, len(weights)):
        weight = weights[shift]
        if shift < size:
            part(out, shift, size)[...] += weight * part(maps, 0, size - shift)
            part(out, 0, size - shift)[...] += weight * part(maps, shift, size)
        reach = min(shift, size)
        if first_edge:
            part(out, 0, reach)[...] += weight * part(maps, 0, 1)
        if last_edge:
            part(out, size - reach, size)[...] += weight * part(maps, size - 1, size)
    return np.asarray(out)
