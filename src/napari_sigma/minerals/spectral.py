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
    lines of their unanalysed light elements (:func:`unanalysed_light_chi2`)."""
    from napari_sigma.quant.simulate import line_spectrum

    library = library or load_library()
    lines_only = np.clip(
        np.asarray(spectrum, dtype=np.float64) - quantification.fit.background, 0, None
    )
    window = axis.channel_range(0.15, min(axis.max_energy, quantification.beam_kev))
    top = candidates[:SPECTRUM_CANDIDATES]
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
    top.sort(key=lambda c: -c.score)
    return top + list(candidates[SPECTRUM_CANDIDATES:])
