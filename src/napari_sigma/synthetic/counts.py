"""The counts of a synthetic sample (:mod:`napari_sigma.synthetic.generator`): sampled event
by event (a Poisson total per pixel, then each count's phase and channel from alias tables of the
pure spectra), row chunk by row chunk (:func:`sample_counts`): exact Poisson statistics."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

CHUNK_PIXELS = 1024
"""Pixels per sampling chunk (whole rows): keeps the histogram of a chunk in the CPU cache."""


def alias_tables(probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Walker/Vose alias tables of a discrete distribution (for O(1) sampling).

    Returns
    -------
    threshold : ndarray (E,) float64
        Keep bin ``i`` when the uniform fraction is below ``threshold[i]``...
    alias : ndarray (E,) int64
        ...else take ``alias[i]``.
    """
    size = probabilities.size
    scaled = probabilities / probabilities.sum() * size
    threshold = np.ones(size)
    alias = np.arange(size)
    small = [i for i in range(size) if scaled[i] < 1.0]
    large = [i for i in range(size) if scaled[i] >= 1.0]
    while small and large:
        low, high = small.pop(), large.pop()
        threshold[low], alias[low] = scaled[low], high
        scaled[high] -= 1.0 - scaled[low]
        (small if scaled[high] < 1.0 else large).append(high)
    return threshold, alias


def _event_phases(
    fractions: np.ndarray, weights: np.ndarray, pixel: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Phase of every count: the pixel's phase, or a draw by weight in mixed pixels."""
    phase = np.argmax(fractions, axis=1)[pixel]
    mixed = (fractions.max(axis=1) < 1.0)[pixel]
    if mixed.any():
        cumulative = np.cumsum(weights, axis=1)
        cumulative = cumulative[:, :-1] / cumulative[:, -1:]
        u = rng.random(int(mixed.sum()))
        phase[mixed] = (u[:, None] > cumulative[pixel[mixed]]).sum(axis=1)
    return phase


def _sample_chunk(
    fractions: np.ndarray,
    totals: np.ndarray,
    tables: tuple[np.ndarray, np.ndarray],
    rng: np.random.Generator,
) -> tuple[np.ndarray, int]:
    """Counts (P, E) int64 of P pixels and their largest total.

    A Poisson total per pixel, then each count's phase and channel.
    """
    n_pixels = fractions.shape[0]
    threshold, alias = tables
    n_channels = threshold.shape[1]
    weights = fractions * totals
    totals_drawn = rng.poisson(weights.sum(axis=1))
    pixel = np.repeat(np.arange(n_pixels), totals_drawn)
    phase = _event_phases(fractions, weights, pixel, rng)
    position = rng.random(pixel.size) * n_channels
    channel = position.astype(np.int64)
    keep = (position - channel) < threshold[phase, channel]
    channel = np.where(keep, channel, alias[phase, channel])
    flat = pixel * n_channels + channel
    histogram = np.bincount(flat, minlength=n_pixels * n_channels).reshape(n_pixels, n_channels)
    return histogram, int(totals_drawn.max(initial=0))


def sample_counts(
    fractions: np.ndarray,
    pure_spectra: np.ndarray,
    rng: np.random.Generator,
    dtype: npt.DTypeLike = np.uint16,
) -> np.ndarray:
    """Poisson counts (y, x, E) with expectation ``fractions @ pure_spectra``.

    Counts are drawn event by event in chunks of rows small enough for the cache: a Poisson total
    per pixel, the phase of each count (by ``fraction * total`` of the phases) and its channel
    (alias method on the phase's spectrum). Counts above the range of an integer ``dtype`` are
    clipped.
    """
    height, width, n_phases = fractions.shape
    totals = pure_spectra.sum(axis=1)
    per_phase = [alias_tables(spectrum) for spectrum in pure_spectra]
    tables = (np.array([t for t, _ in per_phase]), np.array([a for _, a in per_phase]))
    rows_per_chunk = max(1, CHUNK_PIXELS // width)
    counts = np.empty((height, width, pure_spectra.shape[1]), dtype=dtype)
    limit = np.iinfo(dtype).max if np.issubdtype(dtype, np.integer) else None
    for start in range(0, height, rows_per_chunk):
        block = fractions[start : start + rows_per_chunk].reshape(-1, n_phases)
        chunk, largest_total = _sample_chunk(block.astype(np.float64), totals, tables, rng)
        if limit is not None and largest_total > limit:
            np.minimum(chunk, limit, out=chunk)
        counts[start : start + rows_per_chunk] = chunk.reshape(-1, width, chunk.shape[1])
    return counts
