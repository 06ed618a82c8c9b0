"""Minor twins and their models (:mod:`napari_sigma.phases.twins`, steps 1 and 2): which phases
are twins (:func:`pixel_separation`, :func:`twin_pairs`, :data:`TWIN_SEPARATION`,
:data:`TWIN_CONTRAST`), the settings of their assignment (:class:`TwinSettings`) and the
noise-free spectra of a pair (:func:`twin_model`, :class:`TwinModel`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from napari_sigma.energy import EnergyAxis

TWIN_SEPARATION = 1.0
"""Phases whose one-pixel separation (:func:`pixel_separation`) is below this, and whose
spectra differ little (:data:`TWIN_CONTRAST`), are minor twins."""

TWIN_CONTRAST = 0.01
"""Largest squared one-pixel separation per count of a pixel (``separation^2 / counts``: the
spectra's mean squared relative difference, independent of the dose) of minor twins. Olivines
1 wt % Fe apart: 0.0005-0.0012; garnets Prp60/Prp54 (espm): 0.006; different minerals 0.1-1 (at
6 counts per pixel, rutile and a Ti-O-Cu phase of test_TEM.bcf are less than one standard
deviation apart per pixel, but 0.16: not twins)."""


@dataclass(frozen=True)
class TwinSettings:
    """Parameters of the assignment between minor twins.

    Parameters
    ----------
    max_separation : float
        Phases whose one-pixel separation (:func:`pixel_separation`, standard deviations of
        counting noise) is below this are twins...
    max_contrast : float
        ... when their spectra differ by less than this (:data:`TWIN_CONTRAST`).
    boundary_cost : float
        Potts cost of a unit length of boundary between the twins (log-likelihood units; the
        split of :mod:`~napari_sigma.phases.splitting` uses the same).
    boundary_margin : int
        Pixels this close to a third phase (or an unassigned pixel) carry no evidence of the
        twins' own scores...
    mixed_margin : bool
        ... except, when True, through a model of their mixture with the third phase
        (:func:`margin_log_ratios`); pixels next to unassigned pixels only carry none.
    iterations : int
        Rounds of model fit and assignment.
    continuum_splines : int
        B-splines of the smooth change of the continuum between the twins.
    min_pixels : int
        Fewest pixels of each twin (away from third phases) to model it.
    window : int
        Half-width of the windows whose mean log-likelihood ratios place the twins' midpoint
        (:func:`measured_midpoint`).
    significance : float
        With a value > 0, a group of pixels changes twin only when it is large enough for its
        counts to tell the twins apart by this many standard deviations and its evidence is
        this many standard deviations beyond what it would show if it did not
        (:func:`significant_changes`: right labels stay, and so do wrong ones); 0 (the
        default, step 4 of the module) takes the cut's labels as they are.
    """

    max_separation: float = TWIN_SEPARATION
    max_contrast: float = TWIN_CONTRAST
    boundary_cost: float = 0.2
    boundary_margin: int = 1
    mixed_margin: bool = True
    iterations: int = 2
    continuum_splines: int = 6
    min_pixels: int = 50
    window: int = 6
    significance: float = 0.0


@dataclass(frozen=True)
class TwinModel:
    """Expected counts of one pixel of each twin, on the fitted channels.

    Attributes
    ----------
    phases : (int, int)
        The labels (a, b).
    channels : slice
        The fitted channels.
    spectra : ndarray, shape (2, C)
        Expected counts per pixel of a and b on ``channels``.
    separation : float
        ``sqrt(sum (mu_a - mu_b)^2 / mu)``: the one-pixel separation in standard deviations.
    midpoint : float
        ``w`` (:meth:`log_ratio_weights`) times the mean of the two phases' measured mean
        spectra: the log-likelihood ratio's zero halfway between the twins as their labels
        say (the assignment starts from it and measures it on the map,
        :func:`measured_midpoint`).
    """

    phases: tuple[int, int]
    channels: slice
    spectra: np.ndarray
    separation: float
    midpoint: float

    def log_ratio_weights(self) -> tuple[np.ndarray, float]:
        """``w`` and ``c`` with the pixel's log-likelihood ratio of a over b = ``counts @ w - c``.

        ``w = log(mu_a / mu_b)``; ``c`` is :attr:`midpoint`, not ``sum(mu_a - mu_b)``: a
        model that misses the height of a line by a few per cent in both twins moves that sum
        by as much as the twins' whole difference (a bias of every pixel towards one twin),
        while ``w`` itself only loses a little power.
        """
        a, b = self.spectra
        return np.log(a / b), self.midpoint


def twin_model(
    sum_a: np.ndarray,
    sum_b: np.ndarray,
    pixels: tuple[int, int],
    phases: tuple[int, int],
    energy: EnergyAxis,
    elements: Sequence[str],
    beam_energy: float | None,
    settings: TwinSettings = TwinSettings(),
) -> TwinModel | None:
    """The noise-free spectra of two phases from their sum spectra over ``pixels`` pixels each
    (step 2 of the module; the assignment sums every pixel of each twin away from third
    phases).

    None when a phase has fewer than ``settings.min_pixels`` pixels, no element is given or
    the pooled fit is not finite; expected counts are kept above a small floor.
    """
    from napari_sigma.xray.fitting import (
        background_columns,
        family_design,
        fit_range,
        fit_spectrum,
    )

    n_a, n_b = pixels
    if min(n_a, n_b) < settings.min_pixels or not elements:
        return None
    sum_a, sum_b = np.asarray(sum_a, np.float64), np.asarray(sum_b, np.float64)
    pooled = fit_spectrum(sum_a + sum_b, energy, list(elements), beam_energy)
    energy_range, channels = fit_range(energy, beam_energy)
    mean = pooled.model[channels] / (n_a + n_b)
    if not np.all(np.isfinite(mean)) or mean.size == 0:
        return None
    floor = 1e-3 * max(float(mean.mean()), 1e-12)
    mean = np.maximum(mean, floor)
    energies = energy.energies[channels]
    design = family_design(
        energies, energy.scale, list(elements), beam_energy, energy_range, couple_shells=False
    )
    continuum = background_columns(
        energies,
        reference=pooled.background[channels],
        n_splines=settings.continuum_splines,
    )
    basis = np.concatenate([design.columns, continuum], axis=1)
    difference = sum_a[channels] / n_a - sum_b[channels] / n_b
    weight = 1.0 / np.sqrt(mean * (1.0 / n_a + 1.0 / n_b))
    used = np.linalg.norm(basis, axis=0) > 0
    coefficients = np.linalg.lstsq(
        basis[:, used] * weight[:, None], difference * weight, rcond=None
    )[0]
    delta = basis[:, used] @ coefficients
    spectrum_a = mean + n_b / (n_a + n_b) * delta
    spectrum_b = mean - n_a / (n_a + n_b) * delta
    if np.any(spectrum_a <= 0) or np.any(spectrum_b <= 0):
        spectrum_a, spectrum_b = np.maximum(spectrum_a, floor), np.maximum(spectrum_b, floor)
    separation = float(np.sqrt(np.sum((spectrum_a - spectrum_b) ** 2 / mean)))
    measured = (sum_a[channels] / n_a + sum_b[channels] / n_b) / 2.0
    midpoint = float(measured @ np.log(spectrum_a / spectrum_b))
    return TwinModel(phases, channels, np.stack([spectrum_a, spectrum_b]), separation, midpoint)


def pixel_separation(
    sum_a: np.ndarray, pixels_a: int, sum_b: np.ndarray, pixels_b: int, min_counts: float = 10.0
) -> float:
    """How many standard deviations of counting noise one pixel's counts tell two phases apart.

    ``sqrt(sum_c (mu_a - mu_b)^2 / mu_c)`` (the Fisher distance of one pixel between two
    Poisson spectra), estimated from the two phases' sum spectra over ``pixels_a`` and
    ``pixels_b`` pixels without the bias of their own noise: each channel's squared difference
    of means less its expected counting variance ``mean_a / n_a + mean_b / n_b``. Channels with
    fewer than ``min_counts`` counts in both sums together are left out. 0 when the estimate is
    not positive (indistinguishable); NaN when a phase has no pixels.
    """
    if min(pixels_a, pixels_b) <= 0:
        return float("nan")
    sum_a, sum_b = np.asarray(sum_a, np.float64), np.asarray(sum_b, np.float64)
    used = (sum_a + sum_b) >= min_counts
    mean_a, mean_b = sum_a[used] / pixels_a, sum_b[used] / pixels_b
    pooled = (sum_a[used] + sum_b[used]) / (pixels_a + pixels_b)
    excess = (mean_a - mean_b) ** 2 - mean_a / pixels_a - mean_b / pixels_b
    return float(np.sqrt(max(float(np.sum(excess / pooled)), 0.0)))


def twin_pairs(
    core_sums: np.ndarray,
    core_pixels: np.ndarray,
    max_separation: float = TWIN_SEPARATION,
    max_contrast: float = TWIN_CONTRAST,
    disjoint: bool = True,
) -> list[tuple[int, int, float]]:
    """Pairs ``(a, b, separation)`` of labels 1..K closer than ``max_separation`` whose spectra
    differ by less than ``max_contrast`` (:data:`TWIN_CONTRAST`), closest first.

    With ``disjoint``, each phase is in one pair at most (the closest it belongs to; three
    olivines give one pair, the assignment works on two phases); otherwise every such pair.
    """
    present = [int(k) for k in np.flatnonzero(np.asarray(core_pixels) > 0)]
    found = []
    for i, a in enumerate(present):
        for b in present[i + 1 :]:
            separation = pixel_separation(
                core_sums[a], int(core_pixels[a]), core_sums[b], int(core_pixels[b])
            )
            counts = (core_sums[a].sum() + core_sums[b].sum()) / (core_pixels[a] + core_pixels[b])
            contrast = separation**2 / max(float(counts), 1e-12)
            if separation < max_separation and contrast < max_contrast:
                found.append((a + 1, b + 1, separation))
    found.sort(key=lambda pair: pair[2])
    if not disjoint:
        return found
    taken: set[int] = set()
    pairs = []
    for a, b, separation in found:
        if a not in taken and b not in taken:
            pairs.append((a, b, separation))
            taken |= {a, b}
    return pairs
