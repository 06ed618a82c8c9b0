"""Reading a spectrum image in blocks of whole rows, so that a cube is never copied as a whole."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from napari_sigma.errors import AnalysisError


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
    pixels_per_block = max(pixels_per_block, 1)
    if counts.ndim == 2:
        for start in range(0, counts.shape[0], pixels_per_block):
            yield start, np.asarray(counts[start : start + pixels_per_block])
        return
    if counts.ndim != 3:
        raise AnalysisError(f"counts must be (N, E) or (y, x, E), not shape {counts.shape}")
    width = counts.shape[1]
    rows = max(pixels_per_block // max(width, 1), 1)
    for row in range(0, counts.shape[0], rows):
        block = np.asarray(counts[row : row + rows])
        yield row * width, block.reshape(-1, counts.shape[2])
