"""Phases without a signal of their own: a hole in a foil, vacuum beside a particle, a shadow.

A microscopist does not name a mineral for the hole in a carbon film: its pixels hold only the
X-rays that reach every pixel of the map whatever lies under the beam (stray radiation from the
grid and the holder, the column's system peaks), a few per cent of what a material gives.
Quantified, such a spectrum names the grid ("copper": JEOL ``rawdata.ASW``'s hole, 0.08 counts
per pixel, two thirds of them Cu K and L, against 0.45 for the carbon film and 1.8 for the
cubanite). Its composition is the microscope's, not the sample's.

The test (:func:`no_signal_phases`) asks of each phase's core spectrum, per pixel, against every
other phase's, with the counting noise of both (Poisson: a window's variance per pixel is its
counts over the pixels squared):

- it holds **nothing of its own**: in no line window of the analysed elements (nor in its total)
  are its counts per pixel above another phase's by ``NO_SIGNAL_SIGMAS`` standard deviations:
  whatever it holds, every other phase holds at least as much;
- it holds **less** than every other phase: its total counts per pixel lie
  ``NO_SIGNAL_SIGMAS`` standard deviations below each other phase's;
- it is **not a fainter copy** of another phase (a thinner part of the same material, a wedge of
  a foil): its windows are not, within counting noise and the relative accuracy of a
  standardless analysis, a scale ``a`` (significantly above zero) of that phase's.

A phase that passes all three holds what reaches every pixel and no material of its own; it is
named ``"no signal (0.08 counts/px)"`` and is neither quantified nor matched against the
library. Nothing here is fitted to a file: the bound is the counting statistics' (the same
three standard deviations as the analysis's other tests of "one pixel tells it from another",
:func:`napari_sigma.phases.end_members.mixture_zones`), the copy's tolerance the library
comparison's (:data:`napari_sigma.minerals.scores.RELATIVE_TOLERANCE`).

A limitation, stated: a support that lies under every other phase of a map with no hole and no
bare particle (each particle's pixels holding the support's counts and more) would pass the
first two tests and is told from the hole only by the third (it is not the particles' copy):
such a map's support would read "no signal". Maps with a hole, or particles beside the support,
are not affected.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

NO_SIGNAL_SIGMAS = 3.0
"""Standard deviations of counting noise (of a difference of two phases' counts per pixel) by
which a phase must hold more than another to hold something of its own, and less to hold less."""

NO_SIGNAL = "no signal"
"""The mineral (and library group) of a phase without a signal of its own."""


def no_signal_name(counts_per_pixel: float) -> str:
    """``"no signal (0.08 counts/px)"``."""
    return f"{NO_SIGNAL} ({counts_per_pixel:.2g} counts/px)"


def no_signal_phases(
    spectra: np.ndarray, pixels: Sequence[float], windows: Sequence[slice]
) -> dict[int, float]:
    """The phases (ids 1..K) without a signal of their own (see the module docstring), with
    their counts per pixel.

    Parameters
    ----------
    spectra : ndarray (K, E)
        Each phase's summed spectrum (its core's: the pixels counted by ``pixels``).
    pixels : sequence of K numbers
        The pixels summed in each spectrum (0: a phase without pixels, left out).
    windows : sequence of slice
        The channels of the analysed elements' principal lines.

    Returns
    -------
    dict of int to float
        Phase id -> its counts per pixel (all channels). Empty for a map of fewer than two
        phases with pixels (nothing to compare with).
    """
    spectra = np.asarray(spectra, dtype=np.float64)
    pixels = np.asarray(pixels, dtype=np.float64)
    present = [k for k in range(len(spectra)) if k < len(pixels) and pixels[k] > 0]
    if len(present) < 2:
        return {}
    # counts per window (the analysed lines' and the whole spectrum), per phase
    columns = [spectra[:, w].sum(axis=1) for w in windows if w.stop > w.start]
    counts = np.stack([*columns, spectra.sum(axis=1)], axis=1)  # (K, W + 1), total last
    found = {}
    for k in present:
        others = [j for j in present if j != k]
        if all(_holds_no_more(counts[k], pixels[k], counts[j], pixels[j]) for j in others):
            if not any(_fainter_copy(counts[k], pixels[k], counts[j], pixels[j]) for j in others):
                found[k + 1] = float(counts[k, -1] / pixels[k])
    return found


def _holds_no_more(own: np.ndarray, n: float, other: np.ndarray, m: float) -> bool:
    """No window of ``own`` (summed over ``n`` pixels) is above ``other``'s (over ``m``) per
    pixel by ``NO_SIGNAL_SIGMAS`` standard deviations, and its total (the last window) is below
    by as many."""
    rate, rate_other = own / n, other / m
    # Poisson: the variance of a sum is its counts; a window without counts is taken as one
    sigma = np.sqrt(np.maximum(own, 1.0) / n**2 + np.maximum(other, 1.0) / m**2)
    if np.any(rate - rate_other > NO_SIGNAL_SIGMAS * sigma):
        return False
    return bool(rate_other[-1] - rate[-1] > NO_SIGNAL_SIGMAS * sigma[-1])


def _fainter_copy(own: np.ndarray, n: float, other: np.ndarray, m: float) -> bool:
    """Whether ``own``'s windows per pixel are ``a`` times ``other``'s (a thinner part of the
    same material): ``a`` above zero by ``NO_SIGNAL_SIGMAS`` of its standard error and the
    misfit within a chi-square bound at the same one-sided level, each window's variance its
    counting noise plus the standardless comparison's relative tolerance of it."""
    from scipy.special import chdtri, ndtr  # chi2.isf, norm.cdf without scipy.stats (0.2 s)

    from napari_sigma.minerals.scores import RELATIVE_TOLERANCE

    y, x = own / n, other / m
    var_y, var_x = np.maximum(own, 1.0) / n**2, np.maximum(other, 1.0) / m**2
    a = 0.0
    for _ in range(3):  # the weights hold a: a few fixed-point steps
        var = var_y + a * a * var_x + (RELATIVE_TOLERANCE * np.maximum(y, a * x)) ** 2
        denominator = float(np.sum(x * x / var))
        if denominator <= 0:
            return False
        a = max(float(np.sum(x * y / var)) / denominator, 0.0)
    var = var_y + a * a * var_x + (RELATIVE_TOLERANCE * np.maximum(y, a * x)) ** 2
    se = float(np.sqrt(1.0 / np.sum(x * x / var)))
    misfit = float(np.sum((y - a * x) ** 2 / var))
    level = float(ndtr(-NO_SIGNAL_SIGMAS))  # the one-sided tail of 3 standard deviations
    return a > NO_SIGNAL_SIGMAS * se and misfit <= float(chdtri(max(len(y) - 1, 1), level))
