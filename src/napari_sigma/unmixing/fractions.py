"""Phase fractions: the share of every phase in every pixel, from the non-negative least squares
of its counts on the phases' mean spectra (:func:`phase_fractions`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from napari_sigma.compute.progress import Computation
from napari_sigma.unmixing.abundances import abundance_maps


def phase_fractions(
    counts: Any,
    phase_spectra: np.ndarray,
    pixels: np.ndarray,
    device: str = "auto",
    mask_channels: np.ndarray | None = None,
) -> Computation:
    """Share of every phase in every pixel: non-negative least squares on pure-pixel spectra.

    Each phase is represented by its mean spectrum per pixel (sum spectrum / pixel count), so
    a pixel of pure phase ``k`` has coefficient 1 for ``k``, and a boundary pixel half of two
    phases 0.5 for each, whatever the two phases' count rates (unlike the NMF abundances,
    which are counts). The coefficients are divided by their sum: the fractions of a pixel
    sum to 1 (0 where no phase fits, e.g. a pixel without counts).

    Parameters
    ----------
    counts : array, shape (y, x, E)
        Counts.
    phase_spectra : ndarray, shape (K, E)
        Sum spectrum of each phase.
    pixels : ndarray, shape (K,)
        Pixels of each phase.
    device, mask_channels
        See :func:`~napari_sigma.unmixing.abundances.abundance_maps`.

    Yields
    ------
    Progress

    Returns
    -------
    ndarray, shape (y, x, K), float32
    """
    shares = yield from abundance_maps(
        counts,
        mean_phase_spectra(phase_spectra, pixels),
        device=device,
        mask_channels=mask_channels,
    )
    return fractions_of_shares(shares)


def mean_phase_spectra(phase_spectra: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """Mean spectrum per pixel of each phase (the basis of :func:`phase_fractions`)."""
    return np.asarray(phase_spectra, np.float64) / np.maximum(pixels, 1)[:, None]


def fractions_of_shares(shares: np.ndarray) -> np.ndarray:
    """Phase fractions from the non-negative shares of the mean phase spectra (sum 1, or 0)."""
    total = shares.sum(axis=-1, keepdims=True)
    return np.divide(shares, total, out=np.zeros_like(shares), where=total > 0)
