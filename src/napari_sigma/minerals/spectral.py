"""The spectrum's evidence for the best candidates: their simulated spectra compared with the
phase's (:func:`spectrum_similarity`) and the lines of their unanalysed light elements
(:func:`unanalysed_light_chi2`). See :mod:`napari_sigma.minerals.identify`."""

from __future__ import annotations

import numpy as np

from napari_sigma.minerals.library import MineralLibrary, load_library
from napari_sigma.minerals.scores import CARBON_SCALE_SIGMA, INVISIBLE, LIGHT, Candidate
from napari_sigma.minerals.series import _series_composition

SPECTRUM_CANDIDATES = 8

SIMILARITY_POWER = 4.0


def spectrum_similarity(
    spectrum: np.ndarray, simulated: np.ndarray, window: slice | None = None
) -> float:
    """Cosine similarity of the square roots of two non-negative spectra (0..1)."""
    a = np.sqrt(np.clip(np.asarray(spectrum, dtype=np.float64), 0, None))
    b = np.sqrt(np.clip(np.asarray(simulated, dtype=np.float64), 0, None))
    if window is not None:
        a, b = a[window], b[window]
    norm = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(a @ b / norm) if norm > 0 else 0.0


def _unanalysed_light(
    candidate: Candidate, library: MineralLibrary, analysed: set[str]
) -> dict[str, float] | None:
    """The candidate's whole composition (mass fractions of its visible elements) when it holds
    a light element (C, N, O; >= 1 wt %) that was not analysed at all (not among the quantified
    elements), else None."""
    unanalysed = LIGHT - analysed
    if candidate.whole is not None:  # an intergrowth
        whole = dict(candidate.whole)
    elif candidate.series is not None:
        series = next((s for s in library.series if s.name == candidate.series), None)
        whole = _series_composition(series, library, candidate.fractions) if series else {}
    else:
        mineral = library.minerals.get(candidate.mineral)
        whole = dict(mineral.composition) if mineral is not None else {}
    if not any(whole.get(el, 0.0) >= 0.01 for el in unanalysed):
        return None
    return {el: c for el, c in whole.items() if c > 0 and el not in INVISIBLE}


def unanalysed_light_chi2(
    candidate: Candidate,
    library: MineralLibrary,
    lines_only: np.ndarray,
    spectrum: np.ndarray,
    axis,
    quantification,
    detector,
) -> float:
    """The misfit (chi2 term) of the light elements a candidate holds but that were not analysed,
    from the spectrum's own evidence for them.

    A light element left out of the analysis still emits its line: a silicone (32 wt % C)
    compared on its Si and O alone shows a C K peak that quartz does not. The candidate's lines
    are simulated (its whole composition); the simulation is scaled to the measured line
    spectrum (background subtracted) on its other lines, and the spectrum's counts in each
    unanalysed element's peak (channels above half its height, the other lines' share
    removed) are divided by the predicted peak. The continuum under the peak is not removed:
    the fitted continuum, fitted without that element, takes up part of its peak (calcite's
    C K at 15 kV: 60 %), so the ratio is an upper bound and only a spectrum holding fewer counts
    than the predicted peak alone argues against the candidate. A ratio ``r < 1`` costs
    ``(ln r / CARBON_SCALE_SIGMA)^2``, as a measured C does (the light elements' lines are known
    to a factor); the counts are at least twice their Poisson error, so that a peak lost in the
    noise is not read as zero. More than predicted costs nothing (a coating).
    """
    from napari_sigma.quant.simulate import gaussian_peaks, line_intensities

    whole = _unanalysed_light(candidate, library, set(quantification.wt))
    if whole is None:
        return 0.0
    found = line_intensities(
        whole, quantification.beam_kev, detector, quantification.takeoff_deg,
        quantification.mode == "thin", 0.0, axis.max_energy,
    )  # fmt: skip
    extra_elements = LIGHT - set(quantification.wt)
    fwhm = (detector or _default_detector(quantification.mode)).fwhm_mnka_kev
    rest = [(line, a) for line, a in found if line.element not in extra_elements]
    if not rest:
        return 0.0
    rest_spectrum = gaussian_peaks(
        axis, np.array([line.energy for line, _ in rest]), np.array([a for _, a in rest]), fwhm
    )
    scale = float(lines_only @ rest_spectrum) / max(float(rest_spectrum @ rest_spectrum), 1e-300)
    if scale <= 0:
        return 0.0
    chi2 = 0.0
    for element in sorted(extra_elements):
        mine = [(line, a) for line, a in found if line.element == element]
        if not mine or whole.get(element, 0.0) < 0.01:
            continue
        peak = gaussian_peaks(
            axis, np.array([line.energy for line, _ in mine]), np.array([a for _, a in mine]), fwhm
        )
        inside = peak > 0.5 * peak.max() if peak.max() > 0 else None
        if inside is None or not inside.any():
            continue
        predicted = scale * float(peak[inside].sum())
        raw = float(np.asarray(spectrum, dtype=np.float64)[inside].sum())
        measured = raw - scale * float(rest_spectrum[inside].sum())
        ratio = max(measured, 2.0 * np.sqrt(max(raw, 1.0))) / max(predicted, 1e-300)
        if ratio < 1.0:
            chi2 += (np.log(ratio) / CARBON_SCALE_SIGMA) ** 2
    return float(chi2)


def _default_detector(mode: str):
    from napari_sigma.quant import physics

    return physics.WINDOWLESS if mode == "thin" else physics.Detector()


def _rerank_by_spectrum(candidates, spectrum, axis, quantification, detector, library=None):
    """Score the best candidates by their simulated spectra (the module docstring) and by the
    lines of their unanalysed light elements (:func:`unanalysed_light_chi2`); store the counting
    test of those lines (:func:`absent_line_chi2`) on each for the name's test."""
    from napari_sigma.quant.simulate import line_spectrum

    library = library or load_library()
    lines_only = np.clip(
        np.asarray(spectrum, dtype=np.float64) - quantification.fit.background, 0, None
    )
    window = axis.channel_range(0.15, min(axis.max_energy, quantification.beam_kev))
    top = candidates[:SPECTRUM_CANDIDATES]
    measured = _MeasuredLines(spectrum, axis, quantification, detector)
    for candidate in top:
        composition = {el: v / 100.0 for el, v in candidate.composition.items()}
        simulated = line_spectrum(
            composition,
            axis,
            quantification.beam_kev,
            detector,
            quantification.takeoff_deg,
            thin=quantification.mode == "thin",
        )
        candidate.similarity = spectrum_similarity(lines_only, simulated, window)
        candidate.score = candidate.score * candidate.similarity**SIMILARITY_POWER
        extra = unanalysed_light_chi2(
            candidate, library, lines_only, spectrum, axis, quantification, detector
        )
        if extra > 0:
            n = len(set(quantification.wt) | set(candidate.composition)) + 1
            candidate.score *= float(np.exp(-0.5 * extra / n))
        candidate.absent_chi2, candidate.absent_tested = absent_line_chi2(
            candidate, library, lines_only, axis, quantification, detector, measured
        )
    top.sort(key=lambda c: -c.score)
    return top + list(candidates[SPECTRUM_CANDIDATES:])


ABSENT_LINE_MIN_WT = 0.01
"""A light element a candidate holds at this mass fraction or more, not analysed, must show its
line (:func:`absent_line_chi2`); the same bound as the score's (:func:`_unanalysed_light`)."""


def measured_line(spectrum: np.ndarray, axis, quantification, element: str, detector):
    """The counts (and their Poisson standard deviation) of ``element``'s principal line in a
    phase's summed spectrum: a fit of the analysed elements and ``element``
    (`napari_sigma.xray.fitting.fit_spectrum`); None when it has no line in the range."""
    from napari_sigma.xray.fitting import fit_spectrum

    fwhm = (detector or _default_detector(quantification.mode)).fwhm_mnka_kev
    elements = [*quantification.wt, element]
    try:
        fit = fit_spectrum(spectrum, axis, elements, quantification.beam_kev, fwhm)
    except ValueError:
        return None
    if element not in fit.elements:
        return None
    index = fit.elements.index(element)
    return float(fit.intensities[index]), float(fit.sigma[index])


def profile_chi2(measured: float, sigma: float, predicted: float, log_sigma: float) -> float:
    """The misfit of a line measured at ``measured +- sigma`` counts (Poisson) that the physics
    predicts at ``predicted`` counts, known to a factor (``log_sigma``, natural log): the
    smallest ``(ln(lam / predicted) / log_sigma)^2 + ((measured - lam) / sigma)^2`` over the
    line's true expectation ``0 < lam <= predicted`` (a profile chi-square of the physics' prior
    and the counting likelihood). Zero when the line holds at least the predicted counts (a
    coat or a contamination adds, never removes); small when the counting cannot tell (few
    counts expected); ``(ln(measured / predicted) / log_sigma)^2`` when the counts are many."""
    from scipy.optimize import minimize_scalar

    if predicted <= 0 or measured >= predicted:
        return 0.0
    sigma = max(sigma, 1.0)

    def chi2(log_ratio: float) -> float:
        lam = predicted * np.exp(log_ratio)
        return (log_ratio / log_sigma) ** 2 + ((measured - lam) / sigma) ** 2

    low = np.log(max(min(sigma, predicted), 1e-3) / predicted) - 4.0 * log_sigma
    found = minimize_scalar(chi2, bounds=(min(low, -1e-9), 0.0), method="bounded")
    return float(min(found.fun, chi2(0.0)))


def absent_line_chi2(
    candidate: Candidate,
    library: MineralLibrary,
    lines_only: np.ndarray,
    axis,
    quantification,
    detector,
    measured: dict,
) -> tuple[float, int]:
    """The misfit of the lines a candidate's unanalysed light elements must show, from counting
    statistics: ``(chi2, elements tested)``.

    For each light element (C, N, O) the candidate holds at ``ABSENT_LINE_MIN_WT`` or more
    that was not analysed, the counts its line must have at the phase's dose are predicted
    from the candidate's whole composition (the quantification's physics and geometry; the
    simulation scaled to the phase's measured line spectrum on its other lines), and compared
    with the counts measured in the phase's summed spectrum with the element fitted
    (``measured[element]``: counts and Poisson sigma, :func:`measured_line`), the physics
    known to a factor (``CARBON_SCALE_SIGMA``): :func:`profile_chi2`. JEOL's C-O deposit named
    nylon (C6H11NO, N 12.4 wt %) shows no N K line where nylon's N would give it.
    """
    from napari_sigma.quant.simulate import gaussian_peaks, line_intensities

    whole = _unanalysed_light(candidate, library, set(quantification.wt))
    if whole is None:
        return 0.0, 0
    found = line_intensities(
        whole, quantification.beam_kev, detector, quantification.takeoff_deg,
        quantification.mode == "thin", 0.0, axis.max_energy,
    )  # fmt: skip
    missing = sorted(
        el for el in LIGHT - set(quantification.wt) if whole.get(el, 0.0) >= ABSENT_LINE_MIN_WT
    )
    fwhm = (detector or _default_detector(quantification.mode)).fwhm_mnka_kev
    rest = [(line, a) for line, a in found if line.element not in LIGHT - set(quantification.wt)]
    if not rest:
        return 0.0, 0
    rest_spectrum = gaussian_peaks(
        axis, np.array([line.energy for line, _ in rest]), np.array([a for _, a in rest]), fwhm
    )
    scale = float(lines_only @ rest_spectrum) / max(float(rest_spectrum @ rest_spectrum), 1e-300)
    if scale <= 0:
        return 0.0, 0
    chi2, tested = 0.0, 0
    for element in missing:
        own = [(line, a) for line, a in found if line.element == element]
        if not own or measured.get(element) is None:
            continue
        principal = max(own, key=lambda item: item[0].weight)
        counts, sigma = measured[element]
        chi2 += profile_chi2(counts, sigma, scale * principal[1], CARBON_SCALE_SIGMA)
        tested += 1
    return chi2, tested


class _MeasuredLines(dict):
    """``element -> (counts, sigma) or None`` of a phase's spectrum, each fitted once, when
    first asked for (:func:`measured_line`)."""

    def __init__(self, spectrum, axis, quantification, detector):
        super().__init__()
        self._args = (spectrum, axis, quantification, detector)

    def get(self, element, default=None):
        if element not in self:
            spectrum, axis, quantification, detector = self._args
            self[element] = measured_line(spectrum, axis, quantification, element, detector)
        return self[element]
