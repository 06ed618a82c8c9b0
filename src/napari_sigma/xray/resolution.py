"""The detector's resolution measured from a spectrum's own peaks.

A spectroscopist calibrates an EDS detector's resolution on the peaks it recorded: each
isolated, strong peak is fitted with its lines as Gaussians of a free width and position over
a straight local continuum, Poisson-weighted; each width gives the resolution at Mn Ka through
the Fano/noise model of `napari_sigma.xray.lines.detector_fwhm` (Fiori & Newbury 1978:
``FWHM(E)^2 = FWHM(Mn Ka)^2 + 2.45 eV * (E - E(Mn Ka))``), and the peaks' values are combined
by their weights (:func:`measure_resolution`). The peaks are found with a joint fit of the
spectrum's significant elements at a nominal resolution (:func:`isolated_peaks`): a peak counts
when the other lines put less than ``ISOLATION`` of its counts into its window, so that a
neighbour never widens it, and when it has ``MIN_PEAK_SIGNIFICANCE`` of counting evidence. K and
L families only (an M family's lines are grouped coarsely in the table).

:func:`calibrate` gives the element suggestion (`napari_sigma.xray.elements`) its resolution
and its energy-scale shift: the shift fitted with all the suggestion's elements at the measured
resolution. The peaks' own offsets from the table (`Resolution.shift`) are measured but not
applied: on real detectors whose scale is not linear at low energy they disagree among
themselves by more than one shift corrects (see :func:`calibrate`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from napari_sigma.compute.cancel import checkpoint
from napari_sigma.xray import lines as xray
from napari_sigma.xray.elements import (
    STROBE_CUTOFF_KEV,
    ElementPursuit,
    model_chi_square,
    pursue_elements,
)

NOMINAL_FWHM_KEV = 0.130
WINDOW_FWHM = 1.5
"""Half-width of a peak's fitting window in nominal FWHM (+-3.5 sigma of the Gaussian)."""
ISOLATION = 0.05
"""A peak is isolated when the other families' fitted counts in its window are at most this
fraction of its own."""
MIN_PEAK_SIGNIFICANCE = 30.0
"""A peak's net counts over their Poisson error (with the continuum's) for its width to count."""
FWHM_BOUNDS_KEV = (0.040, 0.400)
SHIFT_BOUND_KEV = 0.05


@dataclass(frozen=True)
class PeakWidth:
    """The width and position of one fitted peak.

    Parameters
    ----------
    line : str
        The family's principal line, e.g. ``"Fe_Ka"``.
    energy : float
        Its tabulated energy (keV).
    fwhm : float
        The fitted FWHM at that energy (keV).
    fwhm_error : float
        Its counting standard error (keV).
    shift : float
        The fitted position minus the tabulated energy (keV).
    counts : float
        Net counts of the family in the window.
    fwhm_mnka : float
        The resolution at Mn Ka that this width implies (`detector_fwhm`'s model).
    fwhm_mnka_error : float
        Its standard error.
    """

    line: str
    energy: float
    fwhm: float
    fwhm_error: float
    shift: float
    counts: float
    fwhm_mnka: float
    fwhm_mnka_error: float


def fwhm_at_mnka(fwhm_kev: float, energy_kev: float) -> float:
    """The FWHM at Mn Ka (keV) of a detector whose FWHM at ``energy_kev`` is ``fwhm_kev``
    (the inverse of `napari_sigma.xray.lines.detector_fwhm`)."""
    squared = (fwhm_kev * 1000.0) ** 2 - xray.FANO_NOISE_EV * (
        energy_kev * 1000.0 - xray.MN_KA_KEV * 1000.0
    )
    return float(np.sqrt(max(squared, (xray.MIN_FWHM_KEV * 1000.0) ** 2)) / 1000.0)


def fit_peak(
    energies: np.ndarray,
    counts: np.ndarray,
    scale: float,
    lines: list[xray.XrayLine],
    principal: xray.XrayLine,
    others: np.ndarray | None = None,
    fwhm_guess: float = NOMINAL_FWHM_KEV,
) -> PeakWidth | None:
    """Fit one family's peak with a free width and position over a straight continuum.

    The window is ``WINDOW_FWHM`` nominal FWHM either side of the principal line; the family's
    lines in it are channel-integrated Gaussians with the table's relative weights, their widths
    following the Fano/noise model from the principal line's; ``others`` (the other families'
    fitted counts per channel, held fixed) is added. Poisson weights from the model (two
    passes). None when the window is too short or the fit is not bounded.
    """
    from scipy.optimize import least_squares
    from scipy.special import erf

    checkpoint()  # a caller that cancelled the suggestion (napari's exit) stops here
    half = WINDOW_FWHM * xray.detector_fwhm(principal.energy, fwhm_guess)
    inside = np.abs(energies - principal.energy) <= half
    if inside.sum() < 8:
        return None
    e, data = energies[inside], counts[inside]
    fixed = np.zeros(e.size) if others is None else others[inside]
    low, high = e - scale / 2, e + scale / 2
    centre = principal.energy

    def shape(width: float, shift: float) -> np.ndarray:
        noise2 = (width * 1000.0) ** 2 - xray.FANO_NOISE_EV * principal.energy * 1000.0
        profile = np.zeros(e.size)
        for line in lines:
            fwhm = np.sqrt(max(noise2 + xray.FANO_NOISE_EV * line.energy * 1000.0, 1.0)) / 1000.0
            s = fwhm / xray.FWHM_PER_SIGMA * np.sqrt(2.0)
            mu = line.energy + shift
            profile += line.weight * 0.5 * (erf((high - mu) / s) - erf((low - mu) / s))
        return profile / principal.weight

    def model(p: np.ndarray) -> np.ndarray:
        amplitude, width, shift, level, slope = p
        return amplitude * shape(width, shift) + level + slope * (e - centre) + fixed

    start_level = float(np.median(np.concatenate([data[:2], data[-2:]])))
    start = np.array(
        [max(float(data.sum() - start_level * e.size), 1.0), fwhm_guess, 0.0, start_level, 0.0]
    )
    lower = [0.0, FWHM_BOUNDS_KEV[0], -SHIFT_BOUND_KEV, -np.inf, -np.inf]
    upper = [np.inf, FWHM_BOUNDS_KEV[1], SHIFT_BOUND_KEV, np.inf, np.inf]
    variance = np.maximum(data, 1.0)
    result = None
    for _ in range(2):
        weights = 1.0 / np.sqrt(variance)
        result = least_squares(
            lambda p, w=weights: (model(p) - data) * w, start, bounds=(lower, upper),
            x_scale=[max(start[0], 1.0), 0.01, 0.01, max(abs(start_level), 1.0), 1.0],
        )  # fmt: skip
        start = result.x
        variance = np.maximum(model(result.x), 1.0)
    amplitude, width, shift = (float(v) for v in result.x[:3])
    if not (FWHM_BOUNDS_KEV[0] < width < FWHM_BOUNDS_KEV[1]) or abs(shift) >= SHIFT_BOUND_KEV:
        return None
    jacobian = result.jac
    try:
        covariance = np.linalg.inv(jacobian.T @ jacobian)
    except np.linalg.LinAlgError:
        return None
    errors = np.sqrt(np.clip(np.diag(covariance), 0.0, None))
    net = amplitude * float(shape(width, shift).sum())
    # d FWHM(Mn Ka) / d FWHM(E) = FWHM(E) / FWHM(Mn Ka)
    mnka = fwhm_at_mnka(width, principal.energy)
    return PeakWidth(
        principal.name, principal.energy, width, float(errors[1]), shift, net, mnka,
        float(errors[1]) * width / mnka,
    )  # fmt: skip


@dataclass(frozen=True)
class Resolution:
    """The detector's resolution and energy-scale shift measured on a spectrum's peaks.

    Parameters
    ----------
    fwhm_mnka : float
        FWHM at Mn Ka (keV): the Poisson-weighted mean over the peaks of the value each one's
        width implies (`PeakWidth.fwhm_mnka`), combined in the model's own variable
        ``FWHM(Mn Ka)^2``.
    error : float
        Its standard error (keV): the counting error scaled by the peaks' scatter (the Birge
        ratio) when they scatter more than their counting errors allow.
    shift : float
        The median of the peaks' position offsets from the table (keV, observed minus
        tabulated): one vote per peak. Reported, not applied (:func:`calibrate`).
    peaks : tuple of PeakWidth
        The peaks it was measured on.
    """

    fwhm_mnka: float
    error: float
    shift: float
    peaks: tuple[PeakWidth, ...]


def isolated_peaks(
    energies: np.ndarray,
    counts: np.ndarray,
    scale: float,
    families: list,
    fitted: np.ndarray,
    fwhm_guess: float = NOMINAL_FWHM_KEV,
) -> list[PeakWidth]:
    """The widths of the isolated, strong K and L peaks of a spectrum.

    ``families`` are `napari_sigma.xray.line_families.LineFamily` objects and ``fitted``
    their fitted counts per channel, shape ``(channels, families)`` (a joint fit at the
    nominal resolution). A family's principal line is fitted (:func:`fit_peak`, the others'
    counts held) when the others put at most ``ISOLATION`` of its counts into its window and
    its net counts reach ``MIN_PEAK_SIGNIFICANCE`` Poisson errors of the window's counts. The
    windows are ``WINDOW_FWHM`` FWHM of a ``fwhm_guess`` detector wide.
    """
    total = fitted.sum(axis=1)
    peaks = []
    for j, family in enumerate(families):
        if family.shell == "M":
            continue
        half = WINDOW_FWHM * xray.detector_fwhm(family.principal.energy, fwhm_guess)
        window = np.abs(energies - family.principal.energy) <= half
        own = float(fitted[window, j].sum())
        if own <= 0 or float(total[window].sum()) - own > ISOLATION * own:
            continue
        if own < MIN_PEAK_SIGNIFICANCE * np.sqrt(max(float(counts[window].sum()), 1.0)):
            continue
        peak = fit_peak(
            energies, counts, scale, list(family.lines), family.principal,
            total - fitted[:, j], fwhm_guess,
        )  # fmt: skip
        if peak is not None:
            peaks.append(peak)
    return peaks


def combine_peaks(peaks: list[PeakWidth]) -> Resolution | None:
    """The resolution at Mn Ka and the shift that the peaks' widths and positions give
    (`Resolution`); None without a peak."""
    if not peaks:
        return None
    squared = np.array([p.fwhm_mnka**2 for p in peaks])
    variance = np.array([(2.0 * p.fwhm_mnka * p.fwhm_mnka_error) ** 2 for p in peaks])
    weights = 1.0 / np.maximum(variance, 1e-30)
    mean = float(np.sum(weights * squared) / np.sum(weights))
    error2 = 1.0 / float(np.sum(weights))
    if len(peaks) > 1:
        birge2 = float(np.sum(weights * (squared - mean) ** 2)) / (len(peaks) - 1)
        error2 *= max(birge2, 1.0)
    fwhm = float(np.sqrt(mean))
    shift = float(np.median([p.shift for p in peaks]))
    return Resolution(fwhm, float(np.sqrt(error2)) / (2.0 * fwhm), shift, tuple(peaks))


CALIBRATION_SEARCH = 12
"""At most this many elements (the greedy order at the nominal resolution) make the joint fit
that finds the isolated peaks."""
SHIFT_SEARCH = 16
"""At most this many elements (the suggestion's greedy pursuit at the measured resolution) fix
the shift (:func:`calibrate`), as in the listed-elements check."""
CALIBRATION_ELEMENTS = 4
FWHM_GRID = np.arange(0.110, 0.1801, 0.01)
SHIFT_GRID = np.arange(-0.02, 0.02001, 0.004)


def measure_resolution(
    spectrum, beam: float, exclude: set[str], min_significance: float
) -> Resolution | None:
    """The detector's resolution and shift measured on ``spectrum``'s isolated peaks.

    The elements of the suggestion's pursuit at the nominal 130 eV (`napari_sigma.xray.elements
    .pursue_elements`, at most ``CALIBRATION_SEARCH``) are fitted jointly with every shell free,
    over the suggestion's continuum; their K and L families' fitted counts say which peaks are
    isolated (:func:`isolated_peaks`), and those are fitted one by one (:func:`fit_peak`) and
    combined (:func:`combine_peaks`), then once more in windows as wide as the measured
    resolution's. None when no peak qualifies.
    """
    nominal = _nominal_pursuit(spectrum, beam, exclude, min_significance)
    return None if nominal is None else _measured_on(spectrum, beam, nominal)


def _nominal_pursuit(spectrum, beam, exclude, min_significance) -> ElementPursuit | None:
    return pursue_elements(
        spectrum, beam, exclude, NOMINAL_FWHM_KEV, 0.0, CALIBRATION_SEARCH, min_significance
    )


def _measured_on(spectrum, beam: float, nominal: ElementPursuit) -> Resolution | None:
    """:func:`measure_resolution` with the pursuit at the nominal resolution made."""
    from napari_sigma.xray.fitting import fit_columns
    from napari_sigma.xray.line_families import element_families, family_profile

    energies = spectrum.energy.energies
    valid = (energies >= STROBE_CUTOFF_KEV) & (energies <= min(beam, energies[-1]))
    energies, counts = energies[valid], np.asarray(spectrum.counts, np.float64).ravel()[valid]
    energy_range = (float(energies[0]), float(energies[-1]))
    families = [
        family
        for element in nominal.kept
        for family in element_families(element, beam, energy_range, NOMINAL_FWHM_KEV)
    ]
    if not families:
        return None
    scale = spectrum.energy.scale
    found = None
    for _ in range(2):
        # twice: the second time the joint fit and the windows at the first measurement (a
        # 160 eV detector's neighbours overflow 130 eV templates and windows)
        fwhm = NOMINAL_FWHM_KEV if found is None else found.fwhm_mnka
        columns = np.stack(
            [family_profile(energies, scale, family, fwhm) for family in families], axis=1
        )
        fit = fit_columns(columns, nominal.continuum, counts, nominal.weights)
        fitted = columns * fit.lines[None, :]
        again = combine_peaks(isolated_peaks(energies, counts, scale, families, fitted, fwhm))
        if again is None:
            return found
        found = again
    return found


@dataclass(frozen=True)
class Calibration:
    """The element suggestion's detector setting (:func:`calibrate_detector`).

    Parameters
    ----------
    fwhm_mnka_kev : float
        The resolution at Mn Ka (keV).
    shift_kev : float
        The shift added to the channels' energies (keV).
    pursuit : ElementPursuit or None
        The suggestion's pursuit at that resolution and no shift, whose elements fixed the
        shift: the suggestion's own where the shift is 0 (`ElementPursuit.serves`). None where
        no peak could be measured (:func:`calibrate_on_majors`).
    """

    fwhm_mnka_kev: float
    shift_kev: float
    pursuit: ElementPursuit | None = field(default=None, repr=False)


def calibrate(
    spectrum, beam: float, exclude: set[str], min_significance: float
) -> tuple[float, float]:
    """Detector FWHM at Mn Ka and energy shift (keV) for the element suggestion
    (:func:`calibrate_detector`)."""
    calibration = calibrate_detector(spectrum, beam, exclude, min_significance)
    return calibration.fwhm_mnka_kev, calibration.shift_kev


def calibrate_detector(
    spectrum, beam: float, exclude: set[str], min_significance: float
) -> Calibration:
    """Detector FWHM at Mn Ka and energy shift (keV) for the element suggestion.

    The resolution is measured on the spectrum's isolated peaks (:func:`measure_resolution`);
    the shift is then that of ``SHIFT_GRID`` which fits best the spectrum with every element
    the suggestion finds significant at that resolution (its pursuit, the insignificant
    ones dropped, the suggestion's weights): one more parameter of the suggestion's own model,
    fitted with all its elements (four majors alone, fitted with the width, took 150 eV on the
    30x30 Bruker map, their L lines widened over the unmodelled O K, against its peaks' 131 eV).
    The peaks' own offsets (`Resolution.shift`) are not applied: on that map O K sits 2 eV above
    the table, Mg Ka 6, K Ka 13, and their median (-9 eV as a shift) lets Tb M take Mg Ka's
    misplaced peak; on BAM's TM002 Mn Ka and Al Ka sit within 2 eV of the table, yet Zr L's line
    model needs a +8 eV shift, or Pt M takes its residual (certified: no Pt). Where no
    peak can be measured, :func:`calibrate_on_majors`.
    """
    nominal = _nominal_pursuit(spectrum, beam, exclude, min_significance)
    measured = None if nominal is None else _measured_on(spectrum, beam, nominal)
    if measured is None:
        majors = [] if nominal is None else list(nominal.greedy[:CALIBRATION_ELEMENTS])
        return Calibration(*_fit_on_majors(spectrum, beam, exclude, majors))
    fwhm = measured.fwhm_mnka
    pursuit = pursue_elements(spectrum, beam, exclude, fwhm, 0.0, SHIFT_SEARCH, min_significance)
    if pursuit is None or not pursuit.kept:
        return Calibration(fwhm, 0.0, pursuit)
    shift = _best_on_grid(
        spectrum, beam, exclude, list(pursuit.kept), SHIFT_GRID, lambda v: (fwhm, v)
    )
    return Calibration(fwhm, shift, pursuit)


def calibrate_on_majors(
    spectrum, beam: float, exclude: set[str], min_significance: float
) -> tuple[float, float]:
    """Detector FWHM at Mn Ka and energy shift (keV) that best fit the major elements: the
    suggestion's calibration where no isolated peak can be measured.

    The ``CALIBRATION_ELEMENTS`` strongest elements found with a 130 eV detector (the first of
    its pursuit) are refitted on a grid of resolutions (``FWHM_GRID``, at zero shift), then of
    calibration shifts (``SHIFT_GRID``, at the best resolution); the values with the lowest
    chi-square are returned. Without a clear major element, (0.130, 0.0).
    """
    nominal = pursue_elements(
        spectrum, beam, exclude, NOMINAL_FWHM_KEV, 0.0, CALIBRATION_ELEMENTS, min_significance
    )
    majors = [] if nominal is None else list(nominal.greedy)
    return _fit_on_majors(spectrum, beam, exclude, majors)


def _fit_on_majors(spectrum, beam, exclude, majors: list[str]) -> tuple[float, float]:
    if not majors:
        return NOMINAL_FWHM_KEV, 0.0
    fwhm = _best_on_grid(spectrum, beam, exclude, majors, FWHM_GRID, lambda v: (v, 0.0))
    shift = _best_on_grid(spectrum, beam, exclude, majors, SHIFT_GRID, lambda v: (fwhm, v))
    return fwhm, shift


def _best_on_grid(spectrum, beam, exclude, majors, grid, settings) -> float:
    """The grid value whose ``settings(value) -> (fwhm, shift)`` fits ``majors`` best."""
    chi2 = [model_chi_square(spectrum, beam, exclude, majors, *settings(v)) for v in grid]
    return float(grid[int(np.argmin(chi2))])
