"""Standardless quantification of a spectrum: ZAF for bulk SEM samples, Cliff-Lorimer for thin foils.

Bulk (beam <= 30 kV, SEM): the measured counts of each element's shell are compared with the
counts predicted per unit mass fraction by :mod:`~napari_sigma.quant.physics`
(``n(U0) * sum_f p_f f(chi_f) eps(E_f) * (1 + fluorescence)``, f(chi) from the XPP phi(rho z)
of Pouchou & Pichoir (1991) by default, where ``n`` carries the
atomic-number correction: stopping power and backscatter of the current matrix); the
concentrations ``C_i = I_i / P_i(C)`` are renormalised and iterated until they change by less
than ``tolerance`` (the classical iteration of J. W. Criss and L. S. Birks, *Anal. Chem.* 40,
1080 (1968)).

Thin foil (beam >= 60 kV or an ``EDS_TEM`` signal): Cliff & Lorimer, *J. Microsc.* 103, 203
(1975): ``C_i / C_j = k_ij I_i / I_j`` with theoretical k-factors
``k_i ∝ A_i / (sigma_i(E0) omega_i p_i eps_i)`` from the same physics, optionally corrected for
absorption in a foil of known thickness and density (iterated).

Options: oxygen by stoichiometry (cation valences, overridable), fixed and excluded elements
(coatings, grids), normalisation to 100 % or not. Outputs wt %, at %, oxide wt % and a formula
per N oxygens, each with its 1-sigma counting uncertainty.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Literal

import numpy as np

from napari_sigma.quant import physics
from napari_sigma.quant.line_fit import LineFit, ShellIntensity, fit_lines

VALENCES: dict[str, float] = {
    "H": 1, "Li": 1, "Be": 2, "B": 3, "C": 4, "N": 5, "Na": 1, "Mg": 2, "Al": 3, "Si": 4, "P": 5,
    "S": 6, "K": 1, "Ca": 2, "Sc": 3, "Ti": 4, "V": 5, "Cr": 3, "Mn": 2, "Fe": 2, "Co": 2,
    "Ni": 2, "Cu": 2, "Zn": 2, "Ga": 3, "Ge": 4, "As": 5, "Se": 4, "Rb": 1, "Sr": 2, "Y": 3,
    "Zr": 4, "Nb": 5, "Mo": 6, "Ag": 1, "Cd": 2, "In": 3, "Sn": 4, "Sb": 3, "Cs": 1, "Ba": 2,
    "La": 3, "Ce": 3, "Pr": 3, "Nd": 3, "Sm": 3, "Eu": 3, "Gd": 3, "Dy": 3, "Er": 3, "Yb": 3,
    "Hf": 4, "Ta": 5, "W": 6, "Pb": 2, "Bi": 3, "Th": 4, "U": 4,
}  # fmt: skip
"""Cation valences for oxygen by stoichiometry and oxide wt % (Fe as FeO, the usual convention)."""

ANIONS = ("O", "F", "Cl", "Br", "I")
BULK_MAX_KV = 30.0
THIN_MIN_KV = 60.0

Mode = Literal["auto", "bulk", "thin"]


@dataclass(frozen=True)
class QuantSettings:
    """Options of a quantification.

    Parameters
    ----------
    mode : {"auto", "bulk", "thin"}
        ``"auto"``: thin foil (Cliff-Lorimer) at >= 60 kV or for an ``EDS_TEM`` signal, else bulk
        ZAF (a beam above 30 kV that is not a TEM is quantified as bulk, with a warning note).
    takeoff_deg : float or None
        Take-off angle; None: from the file's metadata, else 35 degrees.
    detector : Detector or None
        Window, dead layer, crystal and resolution. None: an SDD with a polymer window for
        bulk (SEM) samples, a windowless SDD (:data:`~napari_sigma.quant.physics.WINDOWLESS`)
        for thin foils (see :meth:`detector_for`).
    oxygen_by_stoichiometry : bool
        Compute O from the cations' valences instead of measuring it.
    valences : dict, optional
        Valences overriding :data:`VALENCES`.
    normalise : bool
        Scale the result to 100 wt %; otherwise the measured elements sum to ``100 - fixed`` and
        stoichiometric oxygen is added on top (the analytical total is then reported).
    fixed : dict of str to float
        Elements held at a given mass fraction (0..1), not measured.
    excluded : tuple of str
        Elements fitted (their peaks are modelled) but left out of the composition, e.g. a
        carbon or gold coating or a copper grid.
    thickness_nm, density : float
        Foil thickness and density for the thin-film absorption correction (no correction when
        the thickness is None).
    n_oxygens : float or None
        Oxygens per formula unit of the reported formula; None: no formula per oxygens.
    max_iterations, tolerance : int, float
        Iteration limit and convergence threshold on mass fractions.
    coating : tuple of str
        Elements of a coat the user states the sample carries (``("C",)``: a carbon-coated
        section, or a foil on a carbon support film). The quantification is unchanged; the
        identification does not take a measured C that the coat can give as evidence for a
        C-bearing mineral (:mod:`napari_sigma.minerals.coating`).
    host_correction : bool
        Phases quantified from a map (:func:`napari_sigma.minerals.phases.identify_phases`):
        remove from a particle's spectrum the share of the phase that surrounds it (a particle
        seen through a foil or within the interaction volume of its host), estimated from the
        particles' centres (:func:`napari_sigma.minerals.host.host_corrected_spectra`).
    absorption : {"xpp", "pdh"}
        The bulk absorption correction: the XPP phi(rho z) of Pouchou & Pichoir (1991), or
        the older Philibert-Duncumb-Heinrich f(chi) (under-corrects soft lines such as O Ka in
        silicates).
    line_fit : {"quant", "xray"}
        The line intensities: this package's fit of line groups on a physical continuum
        (:func:`~napari_sigma.quant.line_fit.fit_lines`), or the element-map fit
        (:func:`napari_sigma.xray.fitting.fit_spectrum`, principal-line counts).
    """

    mode: Mode = "auto"
    takeoff_deg: float | None = None
    detector: physics.Detector | None = None
    oxygen_by_stoichiometry: bool = False
    valences: Mapping[str, float] | None = None
    normalise: bool = True
    fixed: Mapping[str, float] = field(default_factory=dict)
    excluded: tuple[str, ...] = ()
    thickness_nm: float | None = None
    density: float = 3.0
    n_oxygens: float | None = None
    max_iterations: int = 100
    tolerance: float = 1e-5
    line_fit: Literal["quant", "xray"] = "quant"
    absorption: Literal["xpp", "pdh"] = "xpp"
    host_correction: bool = True
    coating: tuple[str, ...] = ()

    def detector_for(self, mode: str, metadata: Mapping | None = None) -> physics.Detector:
        """The detector of a ``"bulk"`` or ``"thin"`` quantification: the given one, else the
        one the file describes (`physics.detector_from_metadata`), else the default of that kind
        of instrument (polymer-window SDD on an SEM, windowless on a TEM)."""
        if self.detector is not None:
            return self.detector
        described = physics.detector_from_metadata(metadata)
        if described is not None:
            return described
        return physics.WINDOWLESS if mode == "thin" else physics.Detector()

    def valence(self, element: str) -> float:
        """The valence used for ``element`` (0 when unknown)."""
        table = {**VALENCES, **(self.valences or {})}
        return float(table.get(element, 0.0))


@dataclass
class Quantification:
    """A quantified composition; percentages are of mass (wt) or of atoms (at).

    Parameters
    ----------
    wt, at, err_wt, err_at : dict of str to float
        Mass and atomic percentages and their 1-sigma counting uncertainties.
    oxide_wt, err_oxide_wt : dict of str to float
        Oxide mass percentages (``"SiO2"``...) of cations with a valence; anions and elements
        without a valence keep their element name.
    formula : dict of str to float
        Atoms per formula unit of ``n_oxygens`` oxygens (empty when not asked or no O).
    analytical_total : float
        Sum of ``wt`` before any normalisation (100 when normalised).
    mode : str
        ``"bulk"`` or ``"thin"``.
    takeoff_deg, beam_kev : float
        The geometry used.
    iterations : int
        Iterations to convergence.
    converged : bool
        Whether the iteration met the tolerance.
    notes : list of str
        What the user should know (elements not measurable, no convergence...).
    """

    wt: dict[str, float]
    at: dict[str, float]
    err_wt: dict[str, float]
    err_at: dict[str, float]
    oxide_wt: dict[str, float]
    err_oxide_wt: dict[str, float]
    formula: dict[str, float]
    analytical_total: float
    mode: str
    takeoff_deg: float
    beam_kev: float
    iterations: int
    converged: bool
    notes: list[str] = field(default_factory=list)
    fit: LineFit | None = None

    @property
    def elements(self) -> tuple[str, ...]:
        """Elements of the composition, by decreasing mass fraction."""
        return tuple(sorted(self.wt, key=lambda el: -self.wt[el]))


def resolve_mode(settings: QuantSettings, beam_kev: float, signal_type: str = "") -> str:
    """``"bulk"`` or ``"thin"`` for these settings, beam energy and signal type."""
    if settings.mode != "auto":
        return settings.mode
    if "TEM" in signal_type.upper() or beam_kev >= THIN_MIN_KV:
        return "thin"
    return "bulk"


# ----------------------------------------------------------------------------- predictions


def _thin_prediction(
    shell_fit: ShellIntensity,
    composition: Mapping[str, float],
    beam_kev: float,
    takeoff: float,
    detector: physics.Detector,
    mass_thickness: float,
) -> float:
    """Counts of a template's lines per unit mass fraction in a thin foil (Cliff-Lorimer 1/k),
    :func:`~napari_sigma.quant.physics.detected_lines` of a foil of ``mass_thickness``."""
    return float(
        physics.detected_lines(shell_fit.lines, composition, beam_kev, takeoff, detector,
                               thin=True, mass_thickness=mass_thickness).sum()
    )  # fmt: skip


# ------------------------------------------------------------------------------ iteration


def _oxygen_for(cations: Mapping[str, float], settings: QuantSettings) -> float:
    """Mass of oxygen balancing the cations' valences (same units as ``cations``)."""
    a_o = physics.atomic_weight("O")
    return sum(
        c / physics.atomic_weight(el) * settings.valence(el) / 2.0 * a_o
        for el, c in cations.items()
        if el not in ANIONS
    )


def _close(raw: Mapping[str, float], settings: QuantSettings) -> tuple[dict[str, float], float]:
    """Mass fractions from unnormalised ones: fixed elements, stoichiometric O, normalisation.

    Returns the composition used for the next iteration (always summing to 1) and the
    analytical total (sum of the reported fractions).
    """
    fixed = {el: float(c) for el, c in settings.fixed.items()}
    free = max(1.0 - sum(fixed.values()), 0.0)
    measured_sum = sum(raw.values())
    scaled = {el: c / measured_sum * free for el, c in raw.items()} if measured_sum > 0 else {}
    composition = {**scaled, **fixed}
    if settings.oxygen_by_stoichiometry:
        oxygen = _oxygen_for(scaled, settings)
        composition["O"] = composition.get("O", 0.0) + oxygen
    total = sum(composition.values())
    physical = {el: c / total for el, c in composition.items() if c > 0}
    return physical, total


def quantify_intensities(
    intensities: Mapping[str, ShellIntensity],
    beam_kev: float,
    settings: QuantSettings | None = None,
    mode: str = "bulk",
    takeoff_deg: float = 35.0,
) -> Quantification:
    """Mass fractions from fitted shell intensities (see the module docstring).

    Parameters
    ----------
    intensities : dict of str to ShellIntensity
        Per element, the fitted counts of its analysed shell.
    beam_kev : float
        Beam energy.
    settings : QuantSettings
        Options.
    mode : {"bulk", "thin"}
        The correction (see :func:`resolve_mode`).
    takeoff_deg : float
        Take-off angle.
    """
    settings = settings or QuantSettings()
    settings = replace(settings, detector=settings.detector_for(mode))
    measured, skip, notes = _measured_shells(intensities, settings)
    mass_thickness = _mass_thickness(settings)
    raw = {el: s.counts for el, s in measured.items()}
    composition, total = _close(raw, settings)
    converged, iterations = False, 0
    fluorescence_at, fluorescence = None, None
    lines = tuple(line for s in measured.values() for line in s.lines)
    while iterations < settings.max_iterations:
        iterations += 1
        if mode == "thin":
            predicted = {
                el: _thin_prediction(
                    s, composition, beam_kev, takeoff_deg, settings.detector, mass_thickness
                )
                for el, s in measured.items()
            }
        else:
            if fluorescence_at is None or _distance(composition, fluorescence_at) > REFRESH:
                fluorescence_at = dict(composition)  # fluorescence changes slowly: refresh rarely
                fluorescence = physics.fluorescence_ratios(composition, lines, beam_kev,
                                                           takeoff_deg)  # fmt: skip
            predicted = _bulk_predictions(
                measured, lines, composition, beam_kev, takeoff_deg, settings, fluorescence
            )
        raw = {el: s.counts / predicted[el] for el, s in measured.items() if predicted[el] > 0}
        updated, total = _close(raw, settings)
        change = max(abs(updated.get(el, 0) - composition.get(el, 0)) for el in updated)
        composition = updated
        if change < settings.tolerance or (mode == "thin" and mass_thickness == 0):
            converged = True
            break
    if not converged:
        notes.append(f"not converged after {iterations} iterations")
    scale = 1.0 if settings.normalise else total
    wt, err_wt = _mass_percents(composition, scale, measured, intensities, skip, settings)
    return _report(wt, err_wt, scale * 100.0, mode, takeoff_deg, beam_kev, iterations,
                   converged, notes, settings)  # fmt: skip


def _measured_shells(intensities: Mapping[str, ShellIntensity], settings: QuantSettings):
    """``(measured, skip, notes)``: the shells quantified (counts above zero, not excluded,
    fixed or computed by stoichiometry), the elements left out, a note per shell without
    counts. Raises ValueError when none is left."""
    skip = set(settings.excluded) | set(settings.fixed)
    if settings.oxygen_by_stoichiometry:
        skip.add("O")
    measured = {el: s for el, s in intensities.items() if el not in skip and s.counts > 0}
    notes = [
        f"{el}: no counts" for el, s in intensities.items() if el not in skip and s.counts <= 0
    ]
    if not measured:
        raise ValueError("no element with counts to quantify")
    return measured, skip, notes


def _bulk_predictions(measured, lines, composition, beam_kev, takeoff_deg, settings, fluorescence):
    """Counts of every measured shell's lines per unit mass fraction at ``composition`` (up to
    a constant common to all lines): the sum over its lines of
    :func:`~napari_sigma.quant.physics.bulk_detected_lines`, computed for all the measured
    shells' ``lines`` (their concatenation, in order) at once; ``fluorescence``: each line's
    fluorescence ratio."""
    detected = physics.bulk_detected_lines(lines, composition, beam_kev, takeoff_deg,
                                           settings.detector, settings.absorption, fluorescence)  # fmt: skip
    predicted, start = {}, 0
    for el, s in measured.items():
        predicted[el] = float(detected[start : start + len(s.lines)].sum())
        start += len(s.lines)
    return predicted


def _mass_percents(composition, scale, measured, intensities, skip, settings):
    """``(wt, err_wt)``: mass per cent of every element (``scale``: 1, or the analytical total
    when not normalised) and its error from the counts' (0 for an element looked for without
    counts; oxygen by stoichiometry from its cations')."""
    wt = {el: 100.0 * c * scale for el, c in composition.items()}
    relative = {el: s.sigma / s.counts for el, s in measured.items()}
    err_wt = {el: wt[el] * relative.get(el, 0.0) for el in wt}
    for el in intensities:  # measured, but no counts: 0 wt % (it was looked for)
        if el not in wt and el not in skip:
            wt[el], err_wt[el] = 0.0, 0.0
    if settings.oxygen_by_stoichiometry and "O" in wt:
        err_wt["O"] = _oxygen_error(wt, err_wt, settings)
    return wt, err_wt


REFRESH = 1e-3
"""Change of any mass fraction after which the fluorescence ratios are recomputed."""

FOLD_REFITS = 5
"""At most this many refits of a spectrum whose templates hold a tied shell (Ca L, Sn M): the
folded lines' absorption depends on the composition (see `_quantify_spectrum`)."""
FOLD_TOLERANCE_WT = 0.05
"""The refits stop when no element moves by more than this (wt %)."""


def _mass_thickness(settings: QuantSettings) -> float:
    """rho t (g/cm^2) of the foil for the thin-film absorption (0: no correction)."""
    if not settings.thickness_nm:
        return 0.0
    return settings.density * settings.thickness_nm * 1e-7


def _distance(a: Mapping[str, float], b: Mapping[str, float]) -> float:
    return max(abs(a.get(el, 0.0) - b.get(el, 0.0)) for el in set(a) | set(b))


def _oxygen_error(wt, err_wt, settings: QuantSettings) -> float:
    a_o = physics.atomic_weight("O")
    terms = [
        (err_wt[el] / physics.atomic_weight(el) * settings.valence(el) / 2.0 * a_o) ** 2
        for el in wt
        if el not in ANIONS
    ]
    return float(np.sqrt(sum(terms)))


def _report(wt, err_wt, total, mode, takeoff, beam, iterations, converged, notes, settings):
    moles = {el: c / physics.atomic_weight(el) for el, c in wt.items()}
    mole_sum = sum(moles.values())
    at = {el: 100.0 * m / mole_sum for el, m in moles.items()}
    err_at = {el: at[el] * (err_wt[el] / wt[el] if wt[el] > 0 else 0.0) for el in at}
    oxide_wt, err_oxide = oxides(wt, err_wt, settings)
    formula = {}
    if settings.n_oxygens and moles.get("O", 0) > 0:
        factor = settings.n_oxygens / moles["O"]
        formula = {el: m * factor for el, m in moles.items()}
    return Quantification(
        wt=wt, at=at, err_wt=err_wt, err_at=err_at, oxide_wt=oxide_wt, err_oxide_wt=err_oxide,
        formula=formula, analytical_total=float(total), mode=mode, takeoff_deg=float(takeoff),
        beam_kev=float(beam), iterations=iterations, converged=converged, notes=notes,
    )  # fmt: skip


def oxide_name(element: str, valence: float) -> str:
    """``"SiO2"``, ``"Al2O3"``, ``"Na2O"``, ``"FeO"`` for a cation and its valence."""
    v = round(valence)
    if v % 2 == 0:
        n = v // 2
        return f"{element}O{n if n > 1 else ''}"
    return f"{element}2O{v if v > 1 else ''}"


def oxides(
    wt: Mapping[str, float], err_wt: Mapping[str, float], settings: QuantSettings
) -> tuple[dict[str, float], dict[str, float]]:
    """Oxide wt % of the cations (O taken by valence); anions and others keep their name.

    Only meaningful for oxygen-bearing phases: returns empty dicts when there is no O.
    """
    if wt.get("O", 0.0) <= 0:
        return {}, {}
    a_o = physics.atomic_weight("O")
    result, errors = {}, {}
    for el, c in wt.items():
        if el == "O":
            continue
        valence = settings.valence(el) if el not in ANIONS else 0.0
        if valence <= 0:
            result[el], errors[el] = c, err_wt.get(el, 0.0)
            continue
        factor = (physics.atomic_weight(el) + valence / 2.0 * a_o) / physics.atomic_weight(el)
        name = oxide_name(el, valence)
        result[name], errors[name] = c * factor, err_wt.get(el, 0.0) * factor
    return result, errors


def _xray_fit(counts, axis, elements, beam_kev, detector) -> LineFit:
    """The shared element-map fit, as principal-line intensities of the main shells."""
    from napari_sigma.xray.fitting import fit_spectrum
    from napari_sigma.xray.lines import parse_line

    fit = fit_spectrum(counts, axis, elements, beam_kev, detector.fwhm_mnka_kev)
    analysed, others = {}, []
    for family, element, value, sigma in zip(
        fit.families, fit.elements, fit.intensities, fit.sigma, strict=True
    ):
        line = parse_line(family)
        shell_fit = ShellIntensity(element, line.shell, float(value), float(sigma), (line,))
        if element in analysed:
            others.append(shell_fit)
        else:
            analysed[element] = shell_fit
    return LineFit(analysed, others, fit.model, fit.background, fit.chi2 / max(fit.dof, 1))


def foil_thickness_nm(metadata: Mapping | None) -> float | None:
    """``Sample.thickness`` (nm) of HyperSpy-style metadata, or None."""
    from napari_sigma.io.readers._rsciio import get_item

    try:
        value = float(get_item(metadata or {}, "Sample.thickness", None))
    except (TypeError, ValueError):
        return None
    return value if value > 0 else None


def quantify_spectrum(
    counts: np.ndarray,
    axis,
    elements: Sequence[str],
    beam_kev: float,
    settings: QuantSettings | None = None,
    signal_type: str = "",
    metadata: Mapping | None = None,
    width: tuple[float, float] | None = None,
) -> Quantification:
    """Fit and quantify one spectrum (e.g. a phase's summed spectrum).

    Parameters
    ----------
    counts : ndarray (E,)
        Counts per channel.
    axis : EnergyAxis
        Calibration.
    elements : sequence of str
        Elements present (lines of other elements are not modelled).
    beam_kev : float
        Beam energy in kV.
    settings : QuantSettings
        Options.
    signal_type : str
        The file's signal type (``"EDS_TEM"`` selects the thin-foil correction).
    metadata : mapping, optional
        HyperSpy-style metadata for the take-off angle and the foil thickness.
    width : (float, float), optional
        Peak-width correction of the detector (see :func:`~napari_sigma.quant.line_fit.fit_lines`);
        None: searched.
    """
    # small matrices: one BLAS thread (many threads spin on a loaded machine, 100x slower)
    with blas_controller().limit(limits=1, user_api="blas"):
        return _quantify_spectrum(counts, axis, elements, beam_kev, settings, signal_type,
                                  metadata, width)  # fmt: skip


@lru_cache(maxsize=1)
def blas_controller():
    """threadpoolctl's controller of the BLAS libraries loaded (numpy's, and scipy's: imported
    first), made once per process: ``threadpool_limits`` makes a new one each time (~2 ms of
    CPU: every loaded shared library looked up), once per phase and per requantification.
    The same limit on the same libraries as ``threadpool_limits(limits=1, user_api="blas")``
    (a library loaded later, torch's, is not the quantification's)."""
    import scipy.optimize  # noqa: F401  (the fits' nnls and its BLAS: loaded before the lookup)
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def _quantify_spectrum(counts, axis, elements, beam_kev, settings, signal_type, metadata, width):
    settings = settings or QuantSettings()
    if not beam_kev or beam_kev <= 0:
        raise ValueError("the beam energy is unknown: quantification needs it")
    takeoff = settings.takeoff_deg or physics.takeoff_angle(metadata)
    mode = resolve_mode(settings, beam_kev, signal_type)
    settings = replace(settings, detector=settings.detector_for(mode, metadata))
    if mode == "thin" and settings.thickness_nm is None:
        settings = replace(settings, thickness_nm=foil_thickness_nm(metadata))
    from napari_sigma.xray.lines import ELEMENTS

    elements = [el for el in elements if el in ELEMENTS]  # H, He, Li have no lines
    thin = mode == "thin"
    if settings.line_fit == "xray":
        fit = _xray_fit(counts, axis, elements, beam_kev, settings.detector)
        result = quantify_intensities(fit.analysed, beam_kev, settings, mode, takeoff)
    else:
        physical = {"mass_thickness": _mass_thickness(settings), "absorption": settings.absorption}
        fit = fit_lines(counts, axis, elements, beam_kev, settings.detector, None, takeoff, thin,
                        width, **physical)  # fmt: skip
        result = quantify_intensities(fit.analysed, beam_kev, settings, mode, takeoff)
        # refit with the quantified composition: a bulk continuum's absorption (once), and the
        # absorption of folded tied lines (Ca L with Ca K) until the composition settles (a
        # foil of unknown thickness absorbs nothing: the fold does not depend on it)
        absorbs = mode == "bulk" or physical["mass_thickness"] > 0
        refits = 0
        while (mode == "bulk" and refits == 0) or (fit.folded and absorbs and refits < FOLD_REFITS):
            composition = {el: c / 100.0 for el, c in result.wt.items() if c > 0}
            fit = fit_lines(counts, axis, elements, beam_kev, settings.detector, composition,
                            takeoff, thin, width or fit.width, **physical)  # fmt: skip
            previous, result = result, quantify_intensities(fit.analysed, beam_kev, settings,
                                                            mode, takeoff)  # fmt: skip
            refits += 1
            if _distance(previous.wt, result.wt) < FOLD_TOLERANCE_WT:
                break
    missing = [el for el in elements if el not in fit.analysed]
    result.fit = fit
    result.notes.extend(f"{el}: no line in the fitted range" for el in missing)
    if mode == "bulk" and beam_kev > BULK_MAX_KV:
        result.notes.append(f"bulk correction at {beam_kev:g} kV (above {BULK_MAX_KV:g} kV)")
    return result
