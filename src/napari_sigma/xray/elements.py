"""Suggest the elements present in an EDS spectrum.

Method
------
1. **Range.** Channels from 0.15 keV (above the zero-energy strobe peak) up to the beam energy
   (or the end of the axis) are used; lines above the beam energy or not excited (edge above the
   beam energy) are never proposed.
2. **Background.** The bremsstrahlung is estimated with SNIP (statistics-sensitive non-linear
   iterative peak clipping, Ryan et al. 1988) on a lightly smoothed, log-log-sqrt transformed
   spectrum, with a clipping window of about two detector FWHM, and subtracted.
3. **Templates.** Every element Be..U (except noble gases and unstable elements, see
   `RARE_ELEMENTS`) gets one template per excited shell (K, L, M): its line families (weights
   from `xray`) as Gaussians of the detector FWHM (`xray.detector_fwhm`). Shell amplitudes are
   bounded relative to the shell of the element's default line
   (`napari_sigma.xray.line_families.family_design`), and
   smooth +/- B-spline columns absorb the residual bias of the SNIP background. The detector
   FWHM is first measured on the spectrum's isolated peaks (`_calibrate`,
   `napari_sigma.xray.resolution`).
4. **Greedy pursuit.** Elements are added one at a time: the element whose templates, fitted
   non-negatively to the current residual, reduce the weighted chi-square most is added and all
   chosen templates are refitted together (non-negative least squares). Fitting whole line
   patterns (not single peaks) is what resolves overlaps such as S Ka / Pb Ma / Mo La (S is a single
   narrow peak, Pb Ma has Mb and Pb La at 10.55 keV, Mo La has Lb1) and Si Ka / W Ma.
   The weights are ``1 / sqrt(counts + (f * net)^2)``: Poisson noise plus a relative model
   error ``f`` (peak shape, calibration), so that a very intense peak's imperfect fit does not
   attract spurious neighbours.
5. **Scores.** After the final joint fit, an element's *significance* is the square root of
   the chi-square increase when its templates are removed (Poisson sigma units), and its *score*
   is its fitted net counts divided by those of the strongest element (0-1]. Elements with
   significance below ``min_significance`` or score below ``min_score`` are not suggested. An
   element also needs ``min_significance`` in its main shell (that of its default line) alone.

Escape and sum (pile-up) peaks are not modelled: in very intense spectra they can produce
weak extra suggestions (well below the major elements' scores).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from napari_sigma.compute.cancel import checkpoint
from napari_sigma.spectrum_image import Spectrum
from napari_sigma.xray import lines as xray
from napari_sigma.xray.continuum import light_smoothing, snip_background
from napari_sigma.xray.fitting import (
    background_columns,
    detector_artefact_columns,
    family_design,
    fit_columns,
)
from napari_sigma.xray.line_families import (  # noqa: F401  (importable here as before)
    LOWER_RATIO_SLACK,
    MIN_EDGE_OVERVOLTAGE,
    SHELL_RATIO_SLACK,
)

STROBE_CUTOFF_KEV = 0.15
RARE_ELEMENTS = frozenset(
    ("Ne", "Ar", "Kr", "Xe", "Rn", "Tc", "Pm", "Po", "At", "Fr", "Ra", "Ac", "Pa")
)
"""Noble gases and short-lived radioactive elements: not proposed unless ``allow_rare``."""
MODEL_ERROR = 0.06
BASELINE_FINEST_KEV = 0.2
CORE_FRACTION = 0.1
REGION_FRACTION = 1e-4
"""An element's region for its local background (`_local_background`): where its lines exceed
this fraction of their maximum; for one Gaussian line +-4.3 sigma (its core, +-2.1 sigma, and
about one FWHM more on each side)."""


@dataclass(frozen=True)
class ElementSuggestion:
    """One suggested element.

    Parameters
    ----------
    element : str
        Element symbol.
    score : float
        Fitted net counts relative to the strongest suggested element, in (0, 1].
    line : str
        The element's default line for the beam energy (e.g. ``"Fe_Ka"``).
    energy : float
        Energy of that line in keV.
    significance : float
        Evidence for the element in Poisson sigma units (sqrt of the chi-square increase when
        its lines are removed from the fit).
    counts : float
        Net counts in the element's fitted lines.
    """

    element: str
    score: float
    line: str
    energy: float
    significance: float = 0.0
    counts: float = 0.0


@dataclass
class _Problem:
    """The data of one fit: background-subtracted counts, weights and element templates."""

    net: np.ndarray
    weights: np.ndarray
    templates: dict[str, np.ndarray]  # element -> (channels, shells), unit-area lines
    baseline: np.ndarray  # (channels, 2 * knots): +/- smooth corrections of the SNIP background


@dataclass(frozen=True)
class ElementPursuit:
    """The suggestion's greedy pursuit (method, 4) on one spectrum at one detector setting.

    What the suggestion and its detector calibration (`napari_sigma.xray.resolution`) share:
    made by :func:`pursue_elements`, it is the calibration's own pass and, where the suggestion
    asks for the same setting (:meth:`serves`), the suggestion's too.

    Parameters
    ----------
    fwhm_mnka_kev, shift_kev : float
        The detector resolution at Mn Ka and the shift added to the channels' energies (keV).
    limit : int
        The pursuit added at most this many elements.
    min_significance : float
        What an element had to gain (chi-square ``min_significance**2``) to be added, and to
        keep (Poisson sigma) when the insignificant ones were dropped.
    greedy : tuple of str
        The elements in the order the pursuit added them.
    kept : tuple of str
        ``greedy`` after the weakest insignificant element was dropped and the rest refitted,
        in turn, until each keeps ``min_significance``.
    significance : dict
        The kept elements' evidence (sigma) in their last joint fit (`_significances`).
    """

    fwhm_mnka_kev: float
    shift_kev: float
    limit: int
    min_significance: float
    greedy: tuple[str, ...]
    kept: tuple[str, ...]
    significance: dict[str, float]
    problem: _Problem = field(repr=False)

    @property
    def weights(self) -> np.ndarray:
        """The fit's weights per channel (method, 4)."""
        return self.problem.weights

    @property
    def continuum(self) -> np.ndarray:
        """The continuum columns fitted with the lines (the SNIP background's corrections)."""
        return self.problem.baseline

    def serves(self, fwhm_mnka_kev: float, shift_kev: float, limit: int,
               min_significance: float) -> bool:  # fmt: skip
        """Whether a pursuit at these settings (same spectrum, beam and exclusions) is this one.

        A greedy pursuit adds the same elements in the same order whatever its limit, and stops
        early when no element gains enough: one stopped before its limit is that of any larger
        limit too.
        """
        stopped_early = len(self.greedy) < self.limit
        same_limit = limit == self.limit or (stopped_early and limit >= len(self.greedy))
        return (
            fwhm_mnka_kev == self.fwhm_mnka_kev
            and shift_kev == self.shift_kev
            and min_significance == self.min_significance
            and same_limit
        )

    def counts(self) -> dict[str, float]:
        """Net counts per kept element in their joint fit."""
        if not self.kept:
            return {}
        kept = list(self.kept)
        amplitudes = _fit(self.problem, kept)[0]
        return {
            element: float(contribution.sum())
            for element, contribution in _contributions(self.problem, kept, amplitudes).items()
        }


def pursue_elements(
    spectrum: Spectrum,
    beam: float,
    exclude: set[str],
    fwhm_mnka_kev: float,
    shift_kev: float,
    limit: int,
    min_significance: float,
) -> ElementPursuit | None:
    """The suggestion's greedy pursuit of at most ``limit`` elements at one detector setting,
    the insignificant ones dropped (`ElementPursuit`); None when the spectrum has too few
    channels or counts in range."""
    problem = _build_problem(spectrum, beam, exclude, fwhm_mnka_kev, shift_kev)
    if problem is None:
        return None
    greedy = _greedy_selection(problem, limit, min_significance)
    kept, significance = _drop_insignificant(problem, greedy, greedy, min_significance)
    return ElementPursuit(
        fwhm_mnka_kev, shift_kev, limit, min_significance, tuple(greedy), tuple(kept),
        significance, problem,
    )  # fmt: skip


def model_chi_square(
    spectrum: Spectrum,
    beam: float,
    exclude: set[str],
    elements: list[str],
    fwhm_mnka_kev: float,
    shift_kev: float,
) -> float:
    """The weighted chi-square of the suggestion's model of ``spectrum`` with ``elements`` only
    (their templates and the continuum corrections, fitted non-negatively)."""
    problem = _build_problem(spectrum, beam, exclude, fwhm_mnka_kev, shift_kev, only=elements)
    return _fit(problem, elements)[1]


def suggest_elements(
    spectrum: Spectrum,
    max_elements: int = 12,
    min_score: float = 0.05,
    exclude: Iterable[str] = (),
    min_significance: float = 8.0,
    fwhm_mnka_kev: float | None = None,
    allow_rare: bool = False,
) -> list[ElementSuggestion]:
    """Elements that explain the characteristic peaks of ``spectrum``, best first.

    Parameters
    ----------
    spectrum : Spectrum
        A calibrated spectrum (counts per channel); ``beam_energy`` None means 20 kV.
    max_elements : int
        At most this many suggestions.
    min_score : float
        Drop elements whose fitted counts are below this fraction of the strongest element's.
    exclude : iterable of str
        Elements never to suggest (e.g. the coating).
    min_significance : float
        Drop elements with less evidence than this, in Poisson sigma units.
    fwhm_mnka_kev : float or None
        Detector resolution at Mn Ka in keV; None: estimated from the spectrum together with a
        small energy-calibration shift (see `_calibrate`).
    allow_rare : bool
        Also consider `RARE_ELEMENTS` (noble gases, e.g. Ar implanted by ion milling, and
        unstable elements), which are otherwise excluded.

    Returns
    -------
    list of ElementSuggestion
        Sorted by score, descending.
    """
    beam = xray.DEFAULT_BEAM_ENERGY_KV if not spectrum.beam_energy else float(spectrum.beam_energy)
    exclude = set(exclude) if allow_rare else set(exclude) | RARE_ELEMENTS
    pursuit = _suggestion_pursuit(
        spectrum, beam, exclude, max_elements + 4, min_significance, fwhm_mnka_kev
    )
    if pursuit is None:
        return []
    return _rank(pursuit.counts(), pursuit.significance, beam, max_elements, min_score)


def _suggestion_pursuit(
    spectrum: Spectrum,
    beam: float,
    exclude: set[str],
    limit: int,
    min_significance: float,
    fwhm_mnka_kev: float | None = None,
) -> ElementPursuit | None:
    """The suggestion's pursuit: at ``fwhm_mnka_kev`` and no shift, or, when it is None, at the
    resolution and shift calibrated on the spectrum (`_calibrate`), reusing the calibration's
    own pursuit where it is the same (`ElementPursuit.serves`: the shift it chose is 0)."""
    shift, calibration_pursuit = 0.0, None
    if fwhm_mnka_kev is None:
        calibration = _calibrate(spectrum, beam, exclude, min_significance)
        fwhm_mnka_kev, shift = calibration.fwhm_mnka_kev, calibration.shift_kev
        calibration_pursuit = calibration.pursuit
    if calibration_pursuit is not None and calibration_pursuit.serves(
        fwhm_mnka_kev, shift, limit, min_significance
    ):
        return calibration_pursuit
    return pursue_elements(spectrum, beam, exclude, fwhm_mnka_kev, shift, limit, min_significance)


def _calibrate(spectrum: Spectrum, beam: float, exclude: set[str], min_significance: float):
    """Detector FWHM at Mn Ka and energy shift (keV), with the pursuit that fixed the shift: the
    resolution measured on the spectrum's isolated peaks, the shift fitted with the
    suggestion's elements (`napari_sigma.xray.resolution.calibrate_detector`)."""
    from napari_sigma.xray.resolution import calibrate_detector

    return calibrate_detector(spectrum, beam, exclude, min_significance)


def _build_problem(
    spectrum: Spectrum,
    beam: float,
    exclude: set[str],
    fwhm_mnka_kev: float,
    shift: float,
    only: list[str] | None = None,
    free: Iterable[str] = (),
) -> _Problem | None:
    """Fit data for the spectrum; ``shift`` (keV) is added to the nominal channel energies.

    The shells of the elements in ``free`` are fitted with free amplitudes (not bounded relative
    to the main shell, `napari_sigma.xray.line_families.family_design`)."""
    checkpoint()  # a caller that cancelled the suggestion (napari's exit) stops here
    energies = spectrum.energy.energies + shift
    counts = np.asarray(spectrum.counts, dtype=np.float64).ravel()
    top = min(beam, float(energies[-1]))
    valid = (energies >= STROBE_CUTOFF_KEV) & (energies <= top)
    if valid.sum() < 8 or counts[valid].sum() <= 0:
        return None
    smooth = light_smoothing(counts, spectrum.energy.scale, fwhm_mnka_kev)
    window = int(np.ceil(2.0 * xray.detector_fwhm(5.0, fwhm_mnka_kev) / spectrum.energy.scale))
    net_full = np.where(valid, np.clip(smooth - snip_background(smooth, window), 0.0, None), 0.0)
    artefacts = detector_artefact_columns(spectrum.energy, net_full)[valid]
    energies, counts, smooth = energies[valid], counts[valid], smooth[valid]
    net_smooth = net_full[valid]
    variance = np.maximum(smooth, 1.0) + (MODEL_ERROR * net_smooth) ** 2
    candidates = xray.ELEMENTS if only is None else only
    templates = _element_templates(
        energies, spectrum.energy.scale, beam, candidates, exclude, fwhm_mnka_kev, set(free)
    )
    baseline = np.concatenate(
        [background_columns(energies, finest_kev=BASELINE_FINEST_KEV, beam_energy=beam), artefacts],
        axis=1,
    )
    return _Problem(counts, 1.0 / np.sqrt(variance), templates, baseline)


def _element_templates(
    energies: np.ndarray,
    scale: float,
    beam: float,
    candidates: Iterable[str],
    exclude: set[str],
    fwhm_mnka_kev: float,
    free: set[str] = frozenset(),
) -> dict[str, np.ndarray]:
    """Per element, the template columns of the fit (`napari_sigma.xray.fitting.family_design`;
    the shells of the elements in ``free`` uncoupled)."""
    energy_range = (float(energies[0]), float(energies[-1]))
    templates = {}
    for element in candidates:
        if element in exclude:
            continue
        design = family_design(
            energies, scale, [element], beam, energy_range, fwhm_mnka_kev,
            couple_shells=element not in free,
        )  # fmt: skip
        if design.columns.shape[1]:
            templates[element] = design.columns
    return templates


def _fit(
    problem: _Problem, elements: list[str], local: np.ndarray | None = None
) -> tuple[np.ndarray, float, np.ndarray]:
    """Non-negative weighted fit of the elements' templates plus the baseline correction.

    ``local``: more continuum columns (`_local_background`), fitted with the baseline.

    Returns
    -------
    amplitudes : ndarray
        Amplitudes of the elements' columns, in order.
    chi2 : float
        Weighted chi-square of the fit.
    model : ndarray
        The fitted model (elements and baseline correction).
    """
    checkpoint()
    element_columns = [problem.templates[e] for e in elements]
    lines = np.concatenate([np.zeros((problem.net.size, 0)), *element_columns], axis=1)
    continuum = problem.baseline if local is None else np.hstack([problem.baseline, local])
    fit = fit_columns(lines, continuum, problem.net, problem.weights)
    return fit.lines, fit.chi2, fit.model


def _greedy_selection(problem: _Problem, limit: int, min_significance: float) -> list[str]:
    """Add elements by decreasing chi-square gain until none gains ``min_significance^2``."""
    chosen: list[str] = []
    residual = problem.net - _fit(problem, chosen)[2]
    while len(chosen) < limit:
        gains = {
            element: _gain(problem, residual, element, min_significance)
            for element in problem.templates
            if element not in chosen
        }
        best = max(gains, key=gains.get, default=None)
        if best is None or gains[best] < min_significance**2:
            break
        chosen.append(best)
        residual = problem.net - _fit(problem, chosen)[2]
    return chosen


def _gain(problem: _Problem, residual: np.ndarray, element: str, min_significance: float) -> float:
    """Chi-square reduction when the element alone is fitted to the residual.

    Zero when the element's main shell (that of its default line) alone does not reduce the
    chi-square by ``min_significance^2``: an element is only credible through its main line.
    """
    if _main_shell_gain(problem, residual, element) < min_significance**2:
        return 0.0
    return _nnls_gain(problem.templates[element], problem.weights, residual)


def _main_shell_gain(problem: _Problem, residual: np.ndarray, element: str) -> float:
    return _nnls_gain(problem.templates[element][:, :1], problem.weights, residual)


def _nnls_gain(columns: np.ndarray, weights: np.ndarray, residual: np.ndarray) -> float:
    from scipy.optimize import nnls

    target = residual * weights
    _, norm = nnls(columns * weights[:, None], target)
    return float(target @ target - norm**2)


def _drop_insignificant(
    problem: _Problem, chosen: Iterable[str], removable: Iterable[str], min_significance: float
) -> tuple[list[str], dict[str, float]]:
    """Drop the least significant of ``removable`` (some of ``chosen``) and refit, until each
    remaining one reaches ``min_significance``; the elements kept and their last significances."""
    chosen, removable = list(chosen), list(removable)
    significance: dict[str, float] = {}
    while removable:
        significance = _significances(problem, chosen)
        weakest = min(removable, key=significance.get)
        if significance[weakest] >= min_significance:
            break
        removable.remove(weakest)
        chosen.remove(weakest)
    return chosen, significance


def _significances(problem: _Problem, chosen: list[str]) -> dict[str, float]:
    """Evidence per element in sigma units, discounted by the local misfit of the model.

    The chi-square increase when the element is removed, both fits with a local background
    of their own over the element's region (`_local_background`), or, if smaller, the gain of
    its main shell alone against the other elements' residual, is divided by the misfit of
    the joint fit over the element's peak cores (channels where its contribution exceeds
    ``CORE_FRACTION`` of its maximum) in proportion to the other elements' share there
    (`_misfit`): where the line shapes of a major element are imperfect, a small neighbour must
    explain much more than counting noise to be credited (a trace of Pt M under Zr L, of Ni L
    beside Cu L, is the misfit of the major).

    The local background is a level of either sign over each stretch of the element's
    region: what a neighbouring strong line's unmodelled shape puts beside it (a real
    detector's low-energy tail and shelf, its low-energy threshold, an energy scale that is
    not linear there, a resolution a little off) raises or lowers the whole stretch, and the
    element is not credited with that, only with a peak standing out of it. The 30x30 Bruker
    map's N K (8.6 sigma between C K and O K without it, 0 with it) was such a residual. A
    level (not a slope too) keeps N K beside Ti Ll apart: a slope across Ti L's La and Ll
    lines would let Ti L take any N K peak.
    """
    amplitudes, _, model = _fit(problem, chosen)
    contributions = _contributions(problem, chosen, amplitudes)
    residual = (problem.net - model) * problem.weights
    lines = sum(contributions.values(), np.zeros_like(model))
    significance = {}
    for element in chosen:
        own = contributions[element]
        peak = max(float(own.max()), 1e-12)
        local = _local_background(own > REGION_FRACTION * peak)
        without = _fit(problem, _without(chosen, element), local)[1]
        joint = without - _fit(problem, chosen, local)[1]
        others = problem.net - (model - contributions[element])
        main = _main_shell_gain(problem, others, element)
        core = own > CORE_FRACTION * peak
        evidence = max(min(joint, main), 0.0) / _misfit(residual, own, lines - own, core)
        significance[element] = float(np.sqrt(evidence))
    return significance


def _local_background(region: np.ndarray) -> np.ndarray:
    """Columns of a level of either sign over each stretch of ``region`` (zero outside it).

    Stretches shorter than three channels get none. Shape ``(channels, 2 * stretches)``.
    """
    channels = np.flatnonzero(region)
    stretches = np.split(channels, np.flatnonzero(np.diff(channels) > 1) + 1)
    columns = []
    for stretch in stretches:
        if stretch.size < 3:
            continue
        column = np.zeros(region.size)
        column[stretch] = 1.0
        columns += [column, -column]
    return np.stack(columns, axis=1) if columns else np.zeros((region.size, 0))


def _misfit(residual, own, others, core) -> float:
    """The discount of an element's chi-square evidence: 1 + (reduced chi-square - 1) * overlap.

    The reduced chi-square is that of the joint fit over the element's peak cores; ``overlap``
    is the share of the other elements' lines in the counts there (0 for a peak alone, ~1 for a
    small peak under a large one). A major element is not discounted for the imperfect shape
    of its own peaks; a minor one under a major must explain more than the major's misfit.
    """
    if not core.any():
        return 1.0
    reduced = float(np.mean(residual[core] ** 2))
    others_counts = float(np.clip(others[core], 0.0, None).sum())
    overlap = others_counts / max(others_counts + float(own[core].sum()), 1e-12)
    return 1.0 + max(reduced - 1.0, 0.0) * overlap


def _contributions(
    problem: _Problem, elements: list[str], amplitudes: np.ndarray
) -> dict[str, np.ndarray]:
    contributions, start = {}, 0
    for element in elements:
        columns = problem.templates[element]
        width = columns.shape[1]
        contributions[element] = columns @ amplitudes[start : start + width]
        start += width
    return contributions


def _without(elements: list[str], element: str) -> list[str]:
    return [other for other in elements if other != element]


def _rank(
    counts: dict[str, float],
    significance: dict[str, float],
    beam: float,
    max_elements: int,
    min_score: float,
) -> list[ElementSuggestion]:
    if not counts:
        return []
    strongest = max(counts.values())
    suggestions = []
    for element, net in counts.items():
        score = net / strongest if strongest > 0 else 0.0
        if score < min_score:
            continue
        line = xray.default_line(element, beam)
        suggestions.append(
            ElementSuggestion(element, score, line.name, line.energy, significance[element], net)
        )
    suggestions.sort(key=lambda s: s.score, reverse=True)
    return suggestions[:max_elements]


SUGGESTION_SIGNIFICANCE = 8.0
LISTED_MIN_SIGNIFICANCE = 5.0
"""Evidence (sigma) an element listed in a file needs to be confirmed by its spectrum."""


class ElementsNotDetectedWarning(UserWarning):
    """Elements listed in a file (its metadata) that its spectrum does not show."""


def check_listed_elements(
    spectrum: Spectrum,
    listed: Iterable[str],
    min_significance: float = LISTED_MIN_SIGNIFICANCE,
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Split the elements listed in a file into those its spectrum shows and those it does not.

    The listed elements are fitted together with the suggested ones (as `suggest_elements`
    with its defaults, same model and significance, see the module docstring); a listed element is confirmed when it
    is suggested or when its evidence in that joint fit reaches ``min_significance`` (lower
    than a suggestion's: the file's list is prior knowledge). The weakest unconfirmed element
    is dropped and the fit repeated until every remaining one is confirmed.

    Returns
    -------
    detected, absent : tuple of str
        In the order of ``listed``.
    """
    listed = tuple(dict.fromkeys(e for e in listed if e in xray.ELEMENTS))
    if not listed:
        return (), ()
    checked = _check_listed(spectrum, listed, min_significance)
    return checked.detected, checked.absent


@dataclass(frozen=True)
class DefaultElements:
    """The elements an analysis uses when none are given (`default_elements`).

    Parameters
    ----------
    elements : tuple of str
        What is analysed: the file's list, then ``added``.
    listed : tuple of str
        The elements the file lists (its metadata), in its order.
    absent : tuple of str
        Listed elements the spectrum does not show (still analysed).
    added : tuple of str
        Suggested elements beyond the list, each standing out with every listed element fitted.
    """

    elements: tuple[str, ...]
    listed: tuple[str, ...] = ()
    absent: tuple[str, ...] = ()
    added: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Checked:
    problem: _Problem | None
    settings: tuple[float, set[str], float, float]  # beam, exclude, fwhm, shift
    suggested: tuple[str, ...]
    detected: tuple[str, ...]
    absent: tuple[str, ...]


def _check_listed(spectrum: Spectrum, listed: tuple[str, ...], min_significance: float) -> _Checked:
    """`check_listed_elements`, keeping its fit data and the suggestion made on the way."""
    beam = xray.DEFAULT_BEAM_ENERGY_KV if not spectrum.beam_energy else float(spectrum.beam_energy)
    exclude = set(RARE_ELEMENTS) - set(listed)
    pursuit = _suggestion_pursuit(spectrum, beam, exclude, 16, SUGGESTION_SIGNIFICANCE)
    if pursuit is None:
        return _Checked(None, (beam, exclude, 0.0, 0.0), (), (), listed)
    problem = pursuit.problem
    fwhm, shift = pursuit.fwhm_mnka_kev, pursuit.shift_kev
    ranked = _rank(pursuit.counts(), pursuit.significance, beam, 12, 0.05)
    suggested = tuple(s.element for s in ranked)
    candidates = [e for e in listed if e in problem.templates and e not in suggested]
    chosen = [e for e in suggested if e in problem.templates] + candidates
    chosen, _ = _drop_insignificant(problem, chosen, candidates, min_significance)
    detected = set(suggested) | set(chosen)
    return _Checked(
        problem,
        (beam, exclude, fwhm, shift),
        suggested,
        tuple(e for e in listed if e in detected),
        tuple(e for e in listed if e not in detected),
    )


def default_elements(spectrum: Spectrum) -> DefaultElements:
    """The elements an analysis uses when none are given: one rule for every entry point.

    - The file lists no elements: the suggestion (`suggest_elements`).
    - It lists some (the operator's choice at the microscope): every listed element, then each
      suggested element that still stands out when every listed element is fitted with it: its
      evidence in that joint fit must reach the suggestion's ``SUGGESTION_SIGNIFICANCE`` (the
      weakest is dropped and the fit repeated). In that fit the listed elements' shells are
      free (each shell its own amplitude, not bounded by the rough L/K or M/L ratio of
      `napari_sigma.xray.fitting._shell_yield`, which ignores absorption and a thin foil's
      cross-sections): an element is not added for a peak a listed element's lines can
      explain (F K beside Fe L, N K beside Ti Ll), and is for one they cannot (test_TEM.bcf
      lists Cu, O, Pd, Ti; its strongest peak is Si K).

    Listed elements the spectrum does not show are analysed too (``absent``, see
    `elements_to_analyse`).
    """
    listed = tuple(dict.fromkeys(e for e in spectrum.elements if e in xray.ELEMENTS))
    if not listed:
        suggested = tuple(s.element for s in suggest_elements(spectrum))
        return DefaultElements(suggested, added=suggested)
    checked = _check_listed(spectrum, listed, LISTED_MIN_SIGNIFICANCE)
    extras = [e for e in checked.suggested if e not in listed]
    if checked.problem is None or not extras:
        return DefaultElements(listed, listed, checked.absent)
    beam, exclude, fwhm, shift = checked.settings
    problem = _build_problem(
        spectrum, beam, exclude, fwhm, shift, only=[*listed, *extras], free=listed
    )
    fitted = [e for e in listed if e in problem.templates] + extras
    fitted, _ = _drop_insignificant(problem, fitted, extras, SUGGESTION_SIGNIFICANCE)
    added = tuple(e for e in extras if e in fitted)
    return DefaultElements(listed + added, listed, checked.absent, added)


def elements_to_analyse(spectrum: Spectrum, title: str = "") -> tuple[str, ...]:
    """The elements an analysis uses when none are given (`default_elements`): the file's list
    and the suggested elements it does not explain, else the suggestion.

    Listed elements the spectrum does not show are reported with an `ElementsNotDetectedWarning`
    ("listed in the file but not detected: Hf, Lu") but still analysed: the sum spectrum can miss
    a minor phase's element (espm steel: C of 3 % carbides and Mn under Cr Kb), and an absent
    element's fitted intensity is ~0, so it does not name phases.
    """
    import warnings

    chosen = default_elements(spectrum)
    if chosen.absent:
        where = f"{title}: " if title else ""
        warnings.warn(
            f"{where}listed in the file but not detected: {', '.join(chosen.absent)}",
            ElementsNotDetectedWarning,
            stacklevel=2,
        )
    return chosen.elements
