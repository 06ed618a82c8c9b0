"""The 2-D latent space as an image: each bin takes the colour mix of the phases of its points.

Drawn by the Latent space widget (10^6 points draw in milliseconds): the colour of a bin is the
mean of its points' phase colours, its opacity grows with the log of its point count.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

DENSITY_BINS = 200
"""Histogram bins per axis of :func:`phase_density_image`."""


def latent_extent(latent: np.ndarray, margin: float = 0.02) -> tuple[float, float, float, float]:
    """``(xmin, xmax, ymin, ymax)`` of the latent points, padded by ``margin`` of the range."""
    low, high = latent[:, :2].min(axis=0), latent[:, :2].max(axis=0)
    pad = np.maximum(high - low, 1e-9) * margin
    low, high = low - pad, high + pad
    return float(low[0]), float(high[0]), float(low[1]), float(high[1])


def phase_density_image(
    latent: np.ndarray,
    phases: np.ndarray,
    colors: dict[int, Sequence[float]],
    extent: tuple[float, float, float, float],
    bins: int = DENSITY_BINS,
) -> np.ndarray:
    """An RGBA image ``(bins, bins, 4)`` of the latent: phase-mixed colour, log-density alpha.

    Parameters
    ----------
    latent : ndarray, shape (n, 2)
        Latent points.
    phases : ndarray of int, shape (n,)
        Phase of each point (0 = unassigned, drawn grey).
    colors : dict of int to RGBA
        Colour of each phase.
    extent : tuple
        ``(xmin, xmax, ymin, ymax)`` covered by the image (row 0 = ymin, for ``origin="lower"``).
    bins : int
        Histogram bins per axis.
    """
    xmin, xmax, ymin, ymax = extent
    ix = np.clip(((latent[:, 0] - xmin) / (xmax - xmin) * bins).astype(np.int64), 0, bins - 1)
    iy = np.clip(((latent[:, 1] - ymin) / (ymax - ymin) * bins).astype(np.int64), 0, bins - 1)
    present = np.bincount(np.asarray(phases, dtype=np.int64).reshape(-1))
    ids = np.flatnonzero(present)
    lookup = np.zeros(present.size, dtype=np.int64)
    lookup[ids] = np.arange(ids.size)
    phase_index = lookup[phases]
    counts = np.bincount(
        (iy * bins + ix) * ids.size + phase_index.reshape(-1), minlength=bins * bins * ids.size
    ).reshape(bins * bins, ids.size)
    palette = np.array([colors.get(int(i), (0.6, 0.6, 0.6, 1.0))[:3] for i in ids])
    total = counts.sum(axis=1)
    rgb = counts @ palette / np.maximum(total, 1)[:, None]
    density = np.log1p(total)
    alpha = density / density.max() if density.max() > 0 else density
    image = np.concatenate([rgb, (0.25 + 0.75 * alpha)[:, None] * (total > 0)[:, None]], axis=1)
    return image.reshape(bins, bins, 4)
