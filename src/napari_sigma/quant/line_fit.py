"""Characteristic line intensities of one spectrum: a weighted non-negative least-squares fit.

The model of a spectrum is a sum of Gaussian line families (one template per element and shell,
its families weighted by their relative intensities and the detector efficiency) on a
continuum: Kramers' law ``(E0 - E) / E`` absorbed in the sample (f(chi) of the given or a
first-guess composition) and seen through the detector efficiency, times a smooth non-negative
correction (linear B-splines, "hat" functions, 0.5 keV apart below 3 keV and 1.5 keV above). The
fit is solved with non-negative least squares weighted by the Poisson variance, first of the
data (``1 / max(counts, 1)``), over a small grid of peak-width corrections (``a (E / E_MnKa)^b``
times the Fano resolution) so that a detector whose resolution does not follow the Fano law is
still fitted; the best chi-square wins. The chosen fit is then re-weighted by the variance of
its own model until it no longer moves (iteratively re-weighted least squares, whose fixed
point is the Poisson maximum-likelihood fit: the score equations of the Poisson likelihood with
a linear model are ``sum_c (n_c - m_c) A_cj / m_c = 0``). Weights from the data bias a fit at
low counts (Neyman's chi-square: channels that happen to hold fewer counts weigh more, so
peaks come out low, by roughly a count per channel); the model's variance does not. It matters
for small phases (a few hundred counts per element: Fe of 1100 counts of a Cr-spinel came out
25 % low with data weights, on average over Poisson draws, and unbiased with model weights), and
barely for well-counted spectra. Each template's area (counts) comes with the 1-sigma counting
uncertainty of the weighted least-squares covariance (at the fixed point, the inverse Fisher
information of the Poisson likelihood).

This is the quantification's own model of a phase's summed spectrum (one spectrum at a time, not
meant for whole maps); the weighted non-negative solve and its covariance are those of every
spectrum fit, :func:`napari_sigma.xray.fitting.fit_columns`.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import product

import numpy as np

from napari_sigma.energy import EnergyAxis
from napari_sigma.quant.cache_keys import from_typed_items, typed_items
from napari_sigma.quant.physics import (
    Detector,
    absorption_factor,
    detected_lines,
    line_cross_section,
    shell_lines,
)
from napari_sigma.xray.fitting import ElementShell, fit_columns, on_axis
from napari_sigma.xray.lines import (
    FWHM_PER_SIGMA,
    MN_KA_KEV,
    XrayLine,
    detector_fwhm,
    element_lines,
    is_tied,
    tied_to,
)

MIN_FIT_ENERGY_KEV = 0.15
MIN_QUANT_OVERVOLTAGE = 1.25
WIDTH_SCALES = (0.85, 0.93, 1.0, 1.08, 1.17, 1.27)
WIDTH_EXPONENTS = (-0.1, 0.0, 0.1, 0.2)


@dataclass(frozen=True)
class ShellIntensity(ElementShell):
    """The fitted counts of one line group (see `family_group`) of one element and shell.

    ``element`` and ``shell`` are those of `~napari_sigma.xray.fitting.ElementShell`.

    Parameters
    ----------
    counts : float
        Fitted counts of the group's lines (area of the template).
    sigma : float
        1-sigma counting uncertainty of ``counts``.
    lines : tuple of XrayLine
        The families of the template within the fitted range.
    """

    counts: float
    sigma: float
    lines: tuple[XrayLine, ...] = ()

    @property
    def principal(self) -> XrayLine:
        """The strongest family of the template's own shell (a K template's tied L lines,
        see `fit_lines`, are never its principal)."""
        own = [line for line in self.lines if line.shell == self.shell] or list(self.lines)
        return max(own, key=lambda line: line.weight)

    @property
    def folded(self) -> bool:
        """Whether the template holds the lines of a tied shell (see `fit_lines`)."""
        return any(line.shell != self.shell for line in self.lines)


@dataclass
class LineFit:
    """The result of :func:`fit_lines`.

    Parameters
    ----------
    analysed : dict of str to ShellIntensity
        Per element, the shell used for quantification.
    others : list of ShellIntensity
        Other shells of the same elements, fitted as nuisance templates.
    model : ndarray (E,)
        The fitted spectrum; ``background`` is its continuum part.
    reduced_chi2 : float
        Chi-square per channel of the fitted range.
    width : (float, float) or None
        The peak-width correction used.
    """

    analysed: dict[str, ShellIntensity]
    others: list[ShellIntensity] = field(default_factory=list)
    model: np.ndarray | None = None
    background: np.ndarray | None = None
    reduced_chi2: float = float("nan")
    width: tuple[float, float] | None = None

    @property
    def folded(self) -> bool:
        """Whether an analysed template holds a tied shell's lines, whose ratio to the K lines
        depends on the composition (refit with the quantified composition until it settles)."""
        return any(s.folded for s in self.analysed.values())


def analysis_shell(element: str, beam_kev: float, max_kev: float) -> str | None:
    """The shell used to quantify ``element``: K, else L, else M, whose main line is in range.

    A shell qualifies when its strongest family lies between 0.15 keV and ``max_kev`` and its
    edge is excited with an overvoltage of at least 1.25. A tied shell
    (:func:`napari_sigma.xray.lines.is_tied`) never does.
    """
    for shell in ("K", "L", "M"):
        lines = [line for line in shell_lines(element, shell)]
        if not lines or is_tied(element, shell):
            continue
        main = max(lines, key=lambda line: line.weight)
        if (
            MIN_FIT_ENERGY_KEV <= main.energy <= max_kev
            and beam_kev >= MIN_QUANT_OVERVOLTAGE * main.edge
        ):
            return shell
    return None


def family_group(line: XrayLine) -> str:
    """The template a line belongs to: K lines together; L split into alpha (La, Ll), beta (Lb, Ln)
    and gamma (Lg) groups, whose ratios vary between tables and detectors; M split into
    Ma+Mb, Mz and Mg (Mz of the lanthanides is much stronger than tabulated)."""
    if line.shell == "L":
        return {"a": "La", "l": "La", "b": "Lb", "n": "Lb"}.get(line.family[1], "Lg")
    if line.shell == "M":
        return {"z": "Mz", "g": "Mg"}.get(line.family[1], "M")
    return line.shell


BLENDED_SHELL_KEV = 0.2
"""A shell whose lines span less than this is one template (light elements' L lines)."""
FOLDED_INTO = {"K": "K", "L": "La"}
"""The template a tied shell's lines join, by the shell they are tied to
(:func:`napari_sigma.xray.lines.tied_to`): the K lines, or the L alpha group (La, Ll)."""


def _group(line: XrayLine, lines: Sequence[XrayLine]) -> str:
    if line.tied:  # folded into the K (a tied L line) or La (a tied M line) template: fit_lines
        return FOLDED_INTO[tied_to(line.element, line.shell)]
    same_shell = [other.energy for other in lines if other.shell == line.shell]
    if max(same_shell) - min(same_shell) < BLENDED_SHELL_KEV:
        return "K" if line.shell == "K" else ("La" if line.shell == "L" else "M")
    return family_group(line)


def _templates(
    elements: Sequence[str],
    axis: EnergyAxis,
    beam_kev: float,
    detector: Detector,
    folding: Mapping | None = None,
) -> list[tuple[str, str, tuple[XrayLine, ...], np.ndarray, np.ndarray]]:
    """`_templates_of`, kept per arguments (read-only arrays, a new list each call): the first
    fit of every phase of a map is made with the same equal fractions of the same elements
    (`fit_lines`), and so is a requantification's; the same numbers as computed anew."""
    try:
        key = (tuple(elements), axis, beam_kev, detector, _folding_key(folding or {}))
        return list(_templates_cached(*key))
    except TypeError:  # an argument that cannot be a key: not kept
        return _templates_of(elements, axis, beam_kev, detector, folding)


def _folding_key(folding: Mapping) -> tuple:
    """`fit_lines`' folding arguments as a key: a mapping's typed items, a value with its type."""
    return tuple(
        (k, ("map", typed_items(v)) if isinstance(v, Mapping) else ("value", type(v), v))
        for k, v in folding.items()
    )


def _unkeyed(key: tuple) -> dict:
    """The folding arguments of a `_folding_key` again (the same values, in order)."""
    return {
        k: from_typed_items(tagged[1]) if tagged[0] == "map" else tagged[2] for k, tagged in key
    }


@lru_cache(maxsize=64, typed=True)
def _templates_cached(elements, axis, beam_kev, detector, folding):
    found = _templates_of(elements, axis, beam_kev, detector, _unkeyed(folding))
    for _, _, _, energies, weights in found:
        energies.setflags(write=False)
        weights.setflags(write=False)
    return tuple(found)


def _templates_of(
    elements: Sequence[str],
    axis: EnergyAxis,
    beam_kev: float,
    detector: Detector,
    folding: Mapping | None = None,
) -> list[tuple[str, str, tuple[XrayLine, ...], np.ndarray, np.ndarray]]:
    """(element, group, lines, line energies, weights) of every line group in range.

    A tied shell's lines (:func:`napari_sigma.xray.lines.is_tied`: Ca Ll, Ln, Lb3, Lb4; Sn Mz,
    Mg) join the template of the shell they are tied to (`FOLDED_INTO`: Ca's K template, Sn's
    La template), weighted with its lines by `_folded_weights` (``folding``: the keyword
    arguments of :func:`napari_sigma.quant.physics.detected_lines` but the lines); they are
    left out when that shell has no line fitted (never a free template: Ca Ll is 25 eV from
    C Ka, Sn Mz 12 eV from N Ka).
    """
    high = min(axis.max_energy, beam_kev)
    found = []
    for element in elements:
        in_range = [
            line
            for line in element_lines(element, MIN_FIT_ENERGY_KEV, high, tied=True)
            if line.edge < beam_kev
        ]
        shells = {line.shell for line in in_range if not line.tied}
        in_range = [
            line for line in in_range if not line.tied or tied_to(element, line.shell) in shells
        ]
        groups = [_group(line, in_range) for line in in_range]  # once per line, not per group
        for group in ("K", "La", "Lb", "Lg", "M", "Mz", "Mg"):
            lines = tuple(line for line, of in zip(in_range, groups, strict=True) if of == group)
            if not lines:
                continue
            energies = np.array([line.energy for line in lines])
            if any(line.tied for line in lines):
                weights = _folded_weights(lines, beam_kev, detector, folding or {})
                weights = weights / weights.sum()
            else:
                weights = _line_weights(lines, beam_kev, detector)
            found.append((element, group, lines, energies, weights))
    return found


def _line_weights(lines: tuple[XrayLine, ...], beam_kev: float, detector: Detector) -> np.ndarray:
    """A template's relative line weights (`_relative_intensity` times the detector efficiency,
    to unit sum) when it holds no tied line: they do not depend on the composition, so they are
    kept per lines, beam and detector (read-only; the same numbers as computed anew)."""
    try:
        return _line_weights_cached(lines, beam_kev, detector)
    except TypeError:  # an argument that cannot be a key: not cached
        return _line_weights_of(lines, beam_kev, detector)


@lru_cache(maxsize=2048, typed=True)
def _line_weights_cached(lines, beam_kev, detector) -> np.ndarray:
    weights = _line_weights_of(lines, beam_kev, detector)
    weights.setflags(write=False)
    return weights


def _line_weights_of(lines, beam_kev, detector) -> np.ndarray:
    energies = np.array([line.energy for line in lines])
    weights = np.array([_relative_intensity(line, beam_kev) for line in lines])
    weights = weights * detector.efficiency(energies)
    return weights / weights.sum()


def _folded_weights(
    lines: tuple[XrayLine, ...], beam_kev: float, detector: Detector, folding: Mapping
) -> np.ndarray:
    """Relative detected intensities of a template's lines with a tied shell's (K with Ca L,
    La with Sn M): production
    (Casnati's cross-section; L levels with Krause's Coster-Kronig transfers and xraydb's
    yields and branching, `physics.line_cross_section`), absorption (thin foil: Horita's escape
    at the foil's mass thickness; bulk: the XPP or PDH escape of each line's own shell) and
    detector efficiency, :func:`napari_sigma.quant.physics.detected_lines` - the very terms
    the quantification predicts the template's counts with, so that the fold is consistent.

    The absorption depends on the composition: `fit_lines` takes it (a first guess of equal
    mass fractions), and the quantification refits with its result until it settles.
    """
    return detected_lines(lines, detector=detector, beam_kev=beam_kev, **folding)


def _relative_intensity(line: XrayLine, beam_kev: float) -> float:
    """A family's generated intensity relative to the others of its template: the line table's
    weight, except for L families, whose ratios follow the quantification's physics (subshell
    ionisation and Coster-Kronig transfers, `physics.line_cross_section` at the beam energy)."""
    if line.shell == "L":
        return float(line_cross_section(line, beam_kev))
    return line.weight


class _PeakColumns:
    """The peak columns of one window's templates on ``energies`` for any peak-width
    correction ``(a, b)``: each line a Gaussian of area ``scale`` (counts per channel of a
    unit-area line) and FWHM ``detector_fwhm * a * (E / E_MnKa)^b``, summed over the template's
    lines with its weights.

    The width search fits the same templates on the same channels with 24 widths. What does
    not depend on the width (the lines' Fano FWHM, their energy relative to Mn Ka, the
    channels' distances to every line) is computed once, and each width's Gaussians of all
    templates' lines in one array operation instead of one per template. Every element is the
    same expression on the same operands as in the per-template form it replaced
    (element-wise operations: the same double whatever the array's size), and each template's
    column is the same matrix-vector product (a C-contiguous ``(C, L)`` copy of its lines'
    Gaussians times its weights): the same columns bit for bit (tests/quant/
    test_line_fit_speed.py compares them with that form on random inputs).
    """

    def __init__(self, templates, energies: np.ndarray, scale: float, detector: Detector):
        self.size = energies.size
        self.scale = scale
        self.weights = [weights for _, _, _, _, weights in templates]
        bounds = np.cumsum([0] + [len(line_energies) for _, _, _, line_energies, _ in templates])
        self.spans = list(zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True))
        if templates:
            line_energies = np.concatenate([t[3] for t in templates])
        else:
            line_energies = np.zeros(0)
        self.fwhm = detector_fwhm(line_energies, detector.fwhm_mnka_kev)
        self.relative = line_energies / MN_KA_KEV
        self.distances = energies[:, None] - line_energies[None, :]
        self.buffer = np.empty_like(self.distances)

    def columns(self, a: float, b: float) -> np.ndarray:
        if not self.weights:
            return np.zeros((self.size, 0))
        fwhm = self.fwhm * a
        fwhm = fwhm * self.relative**b
        sigma = np.atleast_1d(fwhm) / FWHM_PER_SIGMA
        # np.exp(-0.5 * x**2) * scale / (sigma * sqrt(2 pi)) with x = distances / sigma, each
        # step in place in one buffer (the same operations in the same order)
        gauss = self.buffer
        np.divide(self.distances, sigma[None, :], out=gauss)
        np.square(gauss, out=gauss)
        np.multiply(-0.5, gauss, out=gauss)
        np.exp(gauss, out=gauss)
        np.multiply(gauss, self.scale, out=gauss)
        np.divide(gauss, sigma[None, :] * np.sqrt(2 * np.pi), out=gauss)
        columns = [
            np.ascontiguousarray(gauss[:, start:stop]) @ weights
            for (start, stop), weights in zip(self.spans, self.weights, strict=True)
        ]
        return np.stack(columns, axis=1)


def _continuum_shape(
    energies: np.ndarray,
    composition: Mapping[str, float],
    beam_kev: float,
    detector: Detector,
    takeoff_deg: float,
    thin: bool = False,
) -> np.ndarray:
    """`_continuum_shape_of`, kept per channels, composition and acquisition (read-only: every
    phase's first fit has the same equal fractions; the same numbers as computed anew)."""
    if energies.dtype == np.float64:
        try:
            return _continuum_shape_cached(
                energies.tobytes(), typed_items(composition), beam_kev, detector, takeoff_deg,
                thin,
            )  # fmt: skip
        except TypeError:  # an argument that cannot be a key: not kept
            pass
    return _continuum_shape_of(energies, composition, beam_kev, detector, takeoff_deg, thin)


@lru_cache(maxsize=64, typed=True)
def _continuum_shape_cached(energies, composition, beam_kev, detector, takeoff_deg, thin):
    found = _continuum_shape_of(
        np.frombuffer(energies, dtype=np.float64), from_typed_items(composition),
        beam_kev, detector, takeoff_deg, thin,
    )  # fmt: skip
    found.setflags(write=False)
    return found


def _continuum_shape_of(
    energies: np.ndarray,
    composition: Mapping[str, float],
    beam_kev: float,
    detector: Detector,
    takeoff_deg: float,
    thin: bool = False,
) -> np.ndarray:
    """Kramers' continuum ``(E0 - E) / E``, absorbed in the sample, detected and blurred by the
    detector resolution (at 1 keV), in arbitrary units."""
    from scipy.ndimage import gaussian_filter1d

    step = float(energies[1] - energies[0]) if energies.size > 1 else 0.01
    pad = int(np.ceil(0.3 / step))
    e = np.concatenate([energies[0] - step * np.arange(pad, 0, -1), energies])
    e = np.maximum(e, 0.02)
    kramers = np.clip(beam_kev - e, 0, None) / e
    if thin:  # a thin foil: the continuum is barely absorbed
        absorbed = 1.0
    else:
        absorbed = absorption_factor(composition, e, e, beam_kev, takeoff_deg)
    shape = kramers * absorbed * _efficiency_on(detector, e)
    sigma_channels = detector_fwhm(1.0, detector.fwhm_mnka_kev) / FWHM_PER_SIGMA / step
    shape = gaussian_filter1d(shape, sigma_channels, mode="nearest")[pad:]
    return shape / max(float(shape.max()), 1e-30)


def _efficiency_on(detector: Detector, energies: np.ndarray) -> np.ndarray:
    """``detector.efficiency(energies)``, kept per detector and energies (every fit of a
    window asks for its channels'; read-only, the same numbers)."""
    try:
        return _efficiency_cached(detector, energies.tobytes())
    except TypeError:  # a detector that cannot be a key: not cached
        return detector.efficiency(energies)


@lru_cache(maxsize=32)
def _efficiency_cached(detector: Detector, energies: bytes) -> np.ndarray:
    found = np.asarray(detector.efficiency(np.frombuffer(energies, dtype=np.float64)))
    found.setflags(write=False)
    return found


def _window_hats(energies: np.ndarray, low: float, high: float) -> np.ndarray:
    """`_hat_matrix`, kept per channels and range (read-only, the same numbers)."""
    return _window_hats_cached(energies.tobytes(), float(low), float(high))


@lru_cache(maxsize=16)  # a window's hats: ~0.2 MB at 2048 channels
def _window_hats_cached(energies: bytes, low: float, high: float) -> np.ndarray:
    found = _hat_matrix(np.frombuffer(energies, dtype=np.float64), low, high)
    found.setflags(write=False)
    return found


def _hat_matrix(energies: np.ndarray, low: float, high: float) -> np.ndarray:
    knots = np.concatenate([np.arange(low, min(high, 3.0), 0.5), np.arange(3.0, high, 1.5)])
    knots = np.unique(np.concatenate([knots, [high]]))
    hats = []
    for i, knot in enumerate(knots):
        left = knots[i - 1] if i > 0 else knot - 1e-9
        right = knots[i + 1] if i + 1 < knots.size else knot + 1e-9
        up = np.clip((energies - left) / max(knot - left, 1e-9), 0, 1)
        down = np.clip((right - energies) / max(right - knot, 1e-9), 0, 1)
        hats.append(np.where(energies <= knot, up, down))
    return np.stack(hats, axis=1)


POISSON_ITERATIONS = 30
"""At most this many re-weightings by the model's variance (see the module docstring)."""
POISSON_TOLERANCE = 1e-6
"""They stop when no coefficient moves by more than this share of the largest."""
MIN_MODEL_COUNTS = 1e-2
"""A channel's model variance is at least this (counts): a channel the model leaves empty."""


def _poisson_refit(fit, data: np.ndarray):
    """Re-weight ``fit`` (a :class:`~napari_sigma.xray.fitting.ColumnFit` of ``data``) by the
    Poisson variance of its own model until it is the Poisson maximum-likelihood fit."""
    lines, continuum = fit.matrix[:, : fit.n_lines], fit.matrix[:, fit.n_lines :]
    # every refit's matrix holds the same columns: their largest values once
    largest = np.abs(fit.matrix).max(0)
    for _ in range(POISSON_ITERATIONS):
        weight = 1.0 / np.sqrt(np.maximum(fit.model, MIN_MODEL_COUNTS))
        refit = fit_columns(lines, continuum, data, weight)
        step = np.max(np.abs(refit.coefficients - fit.coefficients) * largest)
        scale = max(float(np.max(np.abs(refit.coefficients) * largest)), 1e-30)
        fit = refit
        if step <= POISSON_TOLERANCE * scale:
            break
    return fit


THRESHOLD_SIGMAS = 5.0
"""Leading channels whose counts are this many standard deviations below the fitted model are
below the detector's low-energy threshold (see `_below_threshold`)."""
THRESHOLD_MAX_KEV = 0.5
"""A detector's low-energy threshold is looked for below this energy."""


def _below_threshold(data: np.ndarray, model: np.ndarray, energies: np.ndarray) -> int:
    """How many of the first channels of a fit lie below the detector's low-energy threshold.

    A detector's pulse processor records nothing below a threshold energy (a Bruker SDD: counts
    fall from ~20000 to < 100 per channel below 0.21 keV, above the zero peak's tail), which the
    model (a continuum through the detector's efficiency) does not know. Such channels, if left
    in the fit, either pull the continuum under C Ka to zero (weights from the data: C takes
    the whole low-energy continuum) or sit far above the data. They are the leading run of
    channels below ``THRESHOLD_MAX_KEV`` whose counts are ``THRESHOLD_SIGMAS`` Poisson standard
    deviations below the model; 0 when the first channel agrees with the model.
    """
    deficit = data < model - THRESHOLD_SIGMAS * np.sqrt(np.maximum(model, 1.0))
    deficit &= energies < THRESHOLD_MAX_KEV
    run = int(np.argmin(deficit)) if not deficit.all() else deficit.size
    return run if run < data.size else 0


def _fit_window(energies, data, templates, scale, detector, composition, beam_kev, takeoff_deg,
                thin, width, high):  # fmt: skip
    """The Poisson maximum-likelihood fit of one fitting window (the width searched when
    ``width`` is None) and the width used."""
    hats = _window_hats(energies, energies[0] if energies.size else 0.0, high)
    hats = (
        hats
        * _continuum_shape(energies, composition, beam_kev, detector, takeoff_deg, thin)[:, None]
    )
    weight = 1.0 / np.sqrt(np.maximum(data, 1.0))
    best = None
    grid = [width] if width is not None else product(WIDTH_SCALES, WIDTH_EXPONENTS)
    peak_columns = _PeakColumns(templates, energies, scale, detector)
    for a, b in grid:
        peaks = peak_columns.columns(a, b)
        fit = fit_columns(peaks, hats, data, weight)
        if best is None or fit.chi2 < best[0].chi2:
            best = (fit, (a, b))
    fit, chosen = best
    return _poisson_refit(fit, data), chosen


def fit_lines(
    counts: np.ndarray,
    axis: EnergyAxis,
    elements: Sequence[str],
    beam_kev: float,
    detector: Detector | None = None,
    composition: Mapping[str, float] | None = None,
    takeoff_deg: float = 35.0,
    thin: bool = False,
    width: tuple[float, float] | None = None,
    mass_thickness: float = 0.0,
    absorption: str = "xpp",
) -> LineFit:
    """Fit the line families of ``elements`` and a continuum to one spectrum.

    Each element's K lines are one template; the lines of a tied L shell (Cl..Sc, no La:
    :func:`napari_sigma.xray.lines.is_tied`) are folded into it with their physical intensity
    ratio to the K lines (`_folded_weights`), so that the Ca L peak (Ca Ll 0.302 keV) is not
    read as C Ka (0.277 keV) and costs no free parameter; likewise the lines of a tied M shell
    (Zr..Sn, no Ma: Sn Mz 0.405 keV beside N Ka 0.392 keV) join the L alpha template. Other shells of an element are
    separate templates; the one used for quantification is `analysis_shell`'s.

    Parameters
    ----------
    counts : ndarray (E,)
        Counts per channel (a phase's summed spectrum).
    axis : EnergyAxis
        Its calibration.
    elements : sequence of str
        Elements to fit.
    beam_kev : float
        Beam energy (keV): lines whose edge is above it are not fitted.
    detector : Detector, optional
        Efficiency and resolution (default SDD).
    composition : dict, optional
        Mass fractions for the continuum's absorption (default: equal fractions of
        ``elements``).
    takeoff_deg : float
        Take-off angle for the continuum's absorption.
    thin : bool
        A thin foil: the continuum is not absorbed.
    width : (float, float), optional
        The peak-width correction ``(a, b)``; None: the best of a small grid (see the module
        docstring). The chosen one is returned in ``LineFit.width``.
    mass_thickness : float
        rho t (g/cm^2) of a thin foil, for the absorption of a folded tied shell (0: none).
    absorption : {"xpp", "pdh"}
        Bulk absorption model of a folded tied shell
        (:func:`napari_sigma.quant.physics.bulk_absorption`).

    Returns
    -------
    LineFit
    """
    detector = detector or Detector()
    counts = np.asarray(counts, dtype=np.float64)
    args = (axis, elements, beam_kev, detector, composition, takeoff_deg, thin, width,
            mass_thickness, absorption)  # fmt: skip
    try:
        key = (
            counts.tobytes(), counts.shape, axis, tuple(elements), beam_kev, detector,
            typed_items(composition) if composition else None, takeoff_deg, thin,
            None if width is None else tuple((type(x), x) for x in width), mass_thickness,
            absorption,
        )  # fmt: skip
        hash(key)
    except TypeError:  # an argument that cannot be a key: not kept
        return _fit_lines_of(counts, *args)
    return _fresh(_fit_lines_cached(key, *args))


def _fit_lines_cached(key: tuple, *args) -> LineFit:
    """`_fit_lines_of` kept per spectrum and arguments (``key``; ``args``: the arguments, the
    same for a same ``key``), the last `KEPT_FITS`: a requantification with a fraction held
    fixed starts from the same first fit of the same spectrum
    (:func:`napari_sigma.minerals.identify.with_unmeasured_carbon`). Read-only arrays."""
    with _KEPT_LOCK:
        found = _KEPT.get(key)
        if found is not None:
            _KEPT.move_to_end(key)
            return found
    found = _fit_lines_of(np.frombuffer(key[0], dtype=np.float64).reshape(key[1]), *args)
    for array in (found.model, found.background):
        if array is not None:
            array.setflags(write=False)
    with _KEPT_LOCK:
        _KEPT[key] = found
        while len(_KEPT) > KEPT_FITS:
            _KEPT.popitem(last=False)
    return found


KEPT_FITS = 16
"""`fit_lines` keeps its last this many fits (a spectrum of 4096 channels: ~100 kB each)."""
_KEPT: OrderedDict[tuple, LineFit] = OrderedDict()
_KEPT_LOCK = threading.Lock()


def _fresh(fit: LineFit) -> LineFit:
    """A kept fit as a new LineFit (its own dict, list and arrays; the same values)."""
    return LineFit(
        dict(fit.analysed), list(fit.others),
        None if fit.model is None else fit.model.copy(),
        None if fit.background is None else fit.background.copy(), fit.reduced_chi2, fit.width,
    )  # fmt: skip


def _fit_lines_of(counts, axis, elements, beam_kev, detector, composition, takeoff_deg, thin,
                  width, mass_thickness, absorption) -> LineFit:  # fmt: skip
    high = min(axis.max_energy, beam_kev * 0.99)
    composition = composition or {el: 1.0 / len(elements) for el in elements}
    folding = {"composition": composition, "takeoff_deg": takeoff_deg, "thin": thin,
               "mass_thickness": mass_thickness, "absorption": absorption}  # fmt: skip
    templates = _templates(elements, axis, beam_kev, detector, folding)
    start = max(MIN_FIT_ENERGY_KEV, axis.offset)
    for _ in range(3):
        window = axis.channel_range(start, high)
        energies, data = axis.energies[window], counts[window]
        fit, chosen = _fit_window(energies, data, templates, axis.scale, detector, composition,
                                  beam_kev, takeoff_deg, thin, width, high)  # fmt: skip
        below = _below_threshold(data, fit.model, energies)
        if not below:
            break
        start, width = float(energies[below]) - axis.scale / 2, chosen
    sigmas = np.sqrt(np.clip(np.diag(fit.line_covariance()), 0, None))
    fitted = [
        ShellIntensity(el, group[0], float(fit.lines[i]), float(sigmas[i]), lines)
        for i, (el, group, lines, _, _) in enumerate(templates)
    ]
    max_kev = min(axis.max_energy, beam_kev)
    analysed, others = {}, []
    for shell_fit in fitted:
        shell = analysis_shell(shell_fit.element, beam_kev, max_kev)
        main = max(shell_lines(shell_fit.element, shell), key=lambda x: x.weight) if shell else None
        if main is not None and main in shell_fit.lines:
            analysed[shell_fit.element] = shell_fit
        else:
            others.append(shell_fit)
    model, background = (
        on_axis(fit.model, window, counts.size),
        on_axis(fit.background, window, counts.size),
    )
    return LineFit(analysed, others, model, background, fit.chi2 / max(data.size, 1), chosen)
