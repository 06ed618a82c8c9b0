"""The continuum's columns (:mod:`napari_sigma.xray.fitting`): non-negative cubic B-splines
(:func:`background_knots`, :func:`background_columns`), optionally times a reference shape (the
SNIP continuum of a spectrum, :func:`reference_background`), and Kramers' continuum through
absorbers (:func:`absorbed_continuum_columns`): they follow the continuum but cannot make peaks."""

from __future__ import annotations

import numpy as np

from napari_sigma.xray import lines as xray

BACKGROUND_KNOT_KEV = 1.0


def background_knots(low: float, high: float, finest_kev: float = 0.1) -> np.ndarray:
    """Knots of the continuum B-splines: ``finest_kev + 0.1 E`` keV apart (at most 1 keV).

    The continuum changes fastest at low energy (detector window and self-absorption), where
    the peaks are also narrowest (FWHM 50-80 eV): a B-spline is always several peak widths
    wide, so non-negative splines follow the continuum without making peaks.
    """
    knots = [low]
    while knots[-1] < high:
        knots.append(knots[-1] + min(BACKGROUND_KNOT_KEV, finest_kev + 0.1 * max(knots[-1], 0.0)))
    first, last = knots[1] - knots[0], knots[-1] - knots[-2]
    before = [low - first * i for i in (3, 2, 1)]
    after = [knots[-1] + last * i for i in (1, 2, 3)]
    return np.array(before + knots + after)


def background_columns(
    energies: np.ndarray,
    reference: np.ndarray | None = None,
    n_splines: int | None = None,
    finest_kev: float = 0.1,
    beam_energy: float | None = None,
) -> np.ndarray:
    """Non-negative continuum columns: cubic B-splines, optionally times a reference shape.

    Parameters
    ----------
    energies : ndarray, shape (C,)
        Channel energies in keV.
    reference : ndarray, shape (C,) or None
        A reference continuum shape (e.g. a map's mean continuum) modulated by the splines;
        None: the splines themselves (`background_knots`).
    n_splines : int or None
        Uniformly spaced B-splines across the range; None: `background_knots`.
    finest_kev : float
        Knot spacing at 0 keV for `background_knots`.
    beam_energy : float or None
        When given (and ``reference`` is None), add `absorbed_continuum_columns`.
    """
    from scipy.interpolate import BSpline

    low, high = float(energies[0]), float(energies[-1])
    if n_splines is None:
        knots = background_knots(low, high, finest_kev)
    else:
        step = max(high - low, 1e-6) / max(1, n_splines - 3)
        knots = low + step * np.arange(-3, max(1, n_splines - 3) + 4)
    basis = BSpline.design_matrix(np.clip(energies, low, high), knots, 3, extrapolate=False)
    basis = basis.toarray()
    basis = basis[:, basis.sum(axis=0) > 0]
    if reference is None:
        if beam_energy is None:
            return basis
        return np.concatenate([basis, absorbed_continuum_columns(energies, beam_energy)], axis=1)
    return np.clip(reference, 0.0, None)[:, None] * basis


ABSORPTION_EDGES_KEV = (0.2, 0.3, 0.45, 0.65, 0.9, 1.3, 1.8)


def absorbed_continuum_columns(energies: np.ndarray, beam_energy: float) -> np.ndarray:
    """Kramers continuum ``(E0 - E) / E`` seen through absorbers of several thicknesses.

    ``exp(-(E_k / E)^3)`` for ``E_k`` in ``ABSORPTION_EDGES_KEV`` (absorption ~ E^-3: the
    detector window, dead layer and the sample itself): non-negative sums of these follow the
    steep low-energy rise of a real continuum, which B-splines wide enough not to make peaks
    cannot, and none of them can make a peak. Each column is scaled to a maximum of 1.
    """
    e = np.clip(energies, 0.05, None)
    kramers = np.clip(float(beam_energy) - e, 0.0, None) / e
    columns = np.stack([kramers * np.exp(-((k / e) ** 3)) for k in ABSORPTION_EDGES_KEV], axis=1)
    peaks = columns.max(axis=0)
    return columns / np.where(peaks > 0, peaks, 1.0)


def reference_background(counts: np.ndarray, scale: float, fwhm_mnka_kev: float) -> np.ndarray:
    """SNIP continuum of a (lightly smoothed) spectrum, with a window of ~2 detector FWHM."""
    smooth = light_smoothing(np.asarray(counts, dtype=np.float64), scale, fwhm_mnka_kev)
    window = int(np.ceil(2.0 * xray.detector_fwhm(5.0, fwhm_mnka_kev) / scale))
    return np.clip(snip_background(smooth, window), 0.0, None), smooth


def light_smoothing(counts: np.ndarray, scale: float, fwhm_mnka_kev: float) -> np.ndarray:
    """Gaussian smoothing with a quarter of the low-energy detector FWHM."""
    from scipy.ndimage import gaussian_filter1d

    sigma_channels = 0.25 * xray.detector_fwhm(0.5, fwhm_mnka_kev) / xray.FWHM_PER_SIGMA / scale
    return gaussian_filter1d(counts, max(sigma_channels, 0.5), mode="nearest")


def snip_background(counts: np.ndarray, window: int) -> np.ndarray:
    """SNIP background of a spectrum (Ryan et al. 1988, with a decreasing clipping window).

    Parameters
    ----------
    counts : ndarray, shape (E,)
        Counts per channel (non-negative, ideally smoothed).
    window : int
        Largest half-width of the clipping window in channels (about two peak FWHM).

    Returns
    -------
    ndarray, shape (E,)
        The background, ``<= counts`` everywhere.
    """
    transformed = np.log(np.log(np.sqrt(np.clip(counts, 0.0, None) + 1.0) + 1.0) + 1.0)
    work = np.pad(transformed, window, mode="edge")
    n = len(transformed)
    for half in range(window, 0, -1):
        centre = work[window : window + n]
        mean = 0.5 * (
            work[window - half : window - half + n] + work[window + half : window + half + n]
        )
        work[window : window + n] = np.minimum(centre, mean)
    clipped = work[window : window + n]
    return (np.exp(np.exp(clipped) - 1.0) - 1.0) ** 2 - 1.0
