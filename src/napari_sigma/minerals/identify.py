"""Identification of a phase: its quantified composition (and spectrum) against the library.

Every library mineral and every solid-solution series (best non-negative mixture of its end
members) is compared with the measured mass fractions on the elements that EDS sees: H, Li, Be
and B are ignored, and C, N, O are ignored when they were not measured (the library composition
is renormalised over the rest). The misfit of element ``i`` is
``z_i = (measured_i - library_i) / s_i`` with
``s_i^2 = err_i^2 + (0.08 max(measured_i, library_i))^2 + 0.7^2`` (wt %): the counting
uncertainty plus the typical accuracy of standardless analysis (8 % relative, 0.7 wt %
absolute). The score is ``exp(-sum z_i^2 / (2 n))`` (1 = perfect, n compared elements). As
measured C and O are the least reliable standardless results (carbon coatings, absorption of
soft lines), each mineral is also compared without them, at a cost of 0.85 per element left
out; its best comparison counts. A mineral without O is compared with the measured O left out
only up to the O a surface oxide film gives it in the acquisition's geometry
(:func:`film_oxygen_at`), and a mineral holding C is never compared with a measured C left out
(its C is compared within a factor, below). A comparison left with one element says nothing about
stoichiometry: it can confirm a pure element (copper under a carbon coat) but not a compound
(lime CaO matched on its Ca alone), so only single-element entries take part in it. A light
element (C, N, O) of >= 1 wt % that a mineral or a series mixture holds but that was not
measured costs 0.8 (the simpler explanation wins a tie). A mineral or series holding C is compared with a measured C
allowed a common scale factor ``f`` relative to the other elements (the measurement's C divided
by ``f``, renormalised) at the cost of ``(ln f / CARBON_SCALE_SIGMA)^2`` added to the chi2: the
C K line is known to a factor, not a percentage (see ``CARBON_SCALE_SIGMA``), and a C measured
50 % high would otherwise push every other element 5-10 % low and hide WC behind tungsten or
calcite behind lime. A phase whose best score is below ``min_score`` is "unknown"
and named by its formula.

With a spectrum, the best candidates are also simulated with the quantification's physics at
the acquisition's beam energy and detector and compared with the phase's background-subtracted
spectrum (cosine similarity of square-root spectra); the final score is
``composition score * similarity^4``. A light element that a candidate holds but that was not
analysed at all must show its line in the spectrum (:func:`unanalysed_light_chi2`).

A phase that no single entry fits within the comparison's tolerance may be named as an
intergrowth of two, ``"alkali feldspar Or54 + quartz (61:39)"``, when one pair is clearly the
best (:mod:`napari_sigma.minerals.intergrowth`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from napari_sigma.minerals.library import Mineral, MineralLibrary, Series, load_library

INVISIBLE = frozenset({"H", "He", "Li", "Be", "B"})
LIGHT = frozenset({"C", "N", "O"})
RELATIVE_TOLERANCE = 0.08
ABSOLUTE_TOLERANCE_WT = 0.7
MIN_SCORE = 0.02
PURE_MEMBER = 0.95
TRACE_MIN_WT = 0.5
SERIES_PENALTY = 0.98
"""A series has fitted fractions: a named mineral of the same composition wins a tie."""
UNMEASURED_LIGHT_PENALTY = 0.8
"""Per light element (C, N, O) of >= 1 wt % in a mineral but not measured: the simpler
explanation (e.g. copper rather than cuprite when O was not analysed) wins a tie."""
IGNORED_LIGHT_PENALTY = 0.85
"""Per measured light element (C, O) left out of a comparison: standardless C and O are the
least accurate results (coatings, soft-line absorption), so a mineral may also be matched on
the other elements, at this cost."""
COATING_MAX_WT = 50.0
"""C is left out of a comparison only when it is less than this share (wt %) of the measurement:
a coating or support contributes C to a phase, but cannot be most of it (a phase that is mostly
C is carbonaceous: "carbon", not "copper" with C ignored)."""
FILM_NM = {"bulk": 20.0, "thin": 5.0}
"""Thickness (nm) of the surface oxide film whose O a mineral without O may carry
(:func:`film_oxygen_at`): measured O is left out of the comparison with such a mineral only up to
what this film gives in the acquisition's geometry. Native oxides grown in air at room
temperature stop at a few nm (the Cabrera-Mott limiting thickness: Al 2-5 nm, Fe and Cr-rich
passive films 1-5 nm, Cu2O 1-3 nm, Ti 3-7 nm); a polished section kept in air can carry a tarnish
of tens of nm (interference colours appear from ~30-40 nm): ``"bulk"`` allows 20 nm on the one
surface the beam enters; a thin foil, examined soon after its preparation, 5 nm on each of its two
surfaces."""
FILM_OXYGEN_MOL_CM3 = 0.09
"""O atoms in a surface oxide (mol/cm^3): amorphous Al2O3 (3.0 g/cm^3) 0.088, Fe3O4 0.090,
Cr2O3 0.103, TiO2 (anatase) 0.098, SiO2 glass 0.073. A film holds 2 cations per 3 O (the
sesquioxide passive films of Al, Fe and Cr)."""
DEFAULT_FOIL_NM = 50.0
"""Foil thickness assumed for a thin foil of unknown thickness (:func:`film_oxygen_at`): the thin
end of the 50-200 nm of STEM-EDS foils, where two films weigh most."""
CONTAMINANT_MAX_AT = 2.0
"""When no mineral fits (best score below ``min_score``), measured elements that a mineral lacks,
together at most this share of the atoms (at %), may be left out of its comparison (at the cost
of ``IGNORED_LIGHT_PENALTY`` each) and listed as traces: a TEM grid (Cu), a coating (Au) or
signal from a neighbour at this level does not make a phase unknown."""
HYDROUS_MARGIN = 1.0 / IGNORED_LIGHT_PENALTY**2
"""A mineral with invisible constituents (H, Li, Be, B; e.g. opal SiO2·nH2O) whose visible
composition is indistinguishable from an anhydrous one (quartz) within the comparison's
tolerance wins only when it scores this many times higher: EDS sees the water only as excess O,
the least reliable standardless result (two O-sized misfits)."""
CARBON_SCALE_SIGMA = float(np.log(2.0))
"""1-sigma uncertainty (natural log) of the measured C relative to the heavier elements: a
factor of 2. The C K line's emission and detection are the least known of any line: published
K fluorescence yields of C are of "unknown or very large uncertainty" (Hoenicke et al., "Experimental
and theoretical approaches for determining the K-shell fluorescence yield of carbon",
arXiv:2111.11786 (2021); the semi-empirical yields of Bambynek et al. are uncertain by ~25 % for
the lightest elements alone, Table of Isotopes, 8th ed., app. F), the ionisation cross-section
of an edge at 0.28 keV is a fit's extrapolation, and the C K absorption in the sample and the
detector window is the largest correction of any line. Two independent physics chains (this
package: Casnati's cross-section with the xraydb (Hubbell et al. 1994) yield 0.0014; espm's
tables) differ by a factor 1.45 in C K production relative to Ca K at 200 kV."""
CARBON_SCALES = np.exp(CARBON_SCALE_SIGMA * np.linspace(-2.0, 2.0, 17))
"""The C scale factors tried (+-2 sigma)."""
OXYGEN_LEFT_OUT_MIN = float(np.exp(-2.0 * CARBON_SCALE_SIGMA))
"""A mineral holding O is compared with the measured O left out only when the measured O (less
what foreign elements carry: :func:`unbound_oxygen_at`) is at least this share of its own O
(at %): O is left out because standardless O is inaccurate, not because it is absent. The bound
is 2 sigma of C's factor (a quarter), the least known light line: anglesite PbSO4 (67 at % O)
is not galena PbS with 3 at % O left out."""
SPECTRUM_CANDIDATES = 8
SIMILARITY_POWER = 4.0


@dataclass(frozen=True)
class Geometry:
    """The acquisition a composition was measured in, for what a surface film can add
    (:func:`film_oxygen_at`): ``"bulk"`` (SEM, phi(rho z) at ``beam_kev`` and ``takeoff_deg``)
    or ``"thin"`` (a foil of ``foil_nm``; None: :data:`DEFAULT_FOIL_NM`)."""

    mode: str = "bulk"
    beam_kev: float = 20.0
    takeoff_deg: float = 35.0
    foil_nm: float | None = None


SEM_20KV = Geometry()
"""The geometry assumed for a composition given without one (an SEM at 20 kV, 35 degrees)."""


@dataclass
class Candidate:
    """One library match: a mineral, or a series with its end-member fractions."""

    name: str
    mineral: str
    score: float
    chi2: float
    composition: dict[str, float]
    group: str = ""
    density: float = float("nan")
    series: str | None = None
    fractions: dict[str, float] = field(default_factory=dict)
    similarity: float | None = None
    ignored: tuple[str, ...] = ()
    components: tuple[tuple[str, float], ...] = ()
    """An intergrowth's two components and their mass shares (`minerals.intergrowth`)."""
    whole: dict[str, float] | None = None
    """An intergrowth's whole composition (mass fractions, light elements included)."""


@dataclass
class Identification:
    """The identification of a phase.

    Parameters
    ----------
    name : str
        Display name: a mineral (``"quartz"``), a series with its end-member fraction
        (``"olivine Fo88"``), or ``"unknown (Fe1.00S1.98)"``.
    mineral : str
        The library mineral (for a series, its dominant end member); ``"unknown"`` if none fits.
    score : float
        0..1 (see the module docstring).
    alternatives : list of (str, float)
        The next two names and their scores.
    series : str or None
        The solid-solution series, if the best match is one.
    fractions : dict of str to float
        End-member mole fractions by label (``{"Fo": 0.88, "Fa": 0.12}``).
    group : str
        The library group (``"silicate: olivine"``).
    density : float
        Library density (g/cm^3), NaN for unknown phases.
    trace : list of str
        Measured elements that the mineral does not contain (``"Ti 0.8 wt%"``).
    formula : str
        The measured formula (atoms, normalised).
    unknown : bool
        No library entry fits.
    unresolved : list of (str, float)
        Candidates that the measurement does not resolve from the name: their visible
        composition is within the comparison's tolerance of the named one's
        (:func:`unresolved_candidates`; magnetite Fe3O4 and hematite Fe2O3 differ by 2.5 wt %
        O, one standard deviation of a standardless O), with their scores.
    components : tuple of (str, float)
        For an intergrowth of two minerals (:mod:`napari_sigma.minerals.intergrowth`), their
        names and mass shares; empty otherwise.
    """

    name: str
    mineral: str
    score: float
    alternatives: list[tuple[str, float]]
    series: str | None
    fractions: dict[str, float]
    group: str
    density: float
    trace: list[str]
    formula: str
    unknown: bool
    unresolved: list[tuple[str, float]] = field(default_factory=list)
    components: tuple[tuple[str, float], ...] = ()


def _comparable(composition: Mapping[str, float], measured: set[str]) -> dict[str, float]:
    """A library composition (fractions) restricted to what EDS compares, as wt % summing to 100."""
    kept = {
        el: c
        for el, c in composition.items()
        if el not in INVISIBLE and (el in measured or el not in LIGHT)
    }
    total = sum(kept.values())
    return {el: 100.0 * c / total for el, c in kept.items()} if total > 0 else {}


def _sigma(measured: float, library: float, error: float) -> float:
    high = max(measured, library)
    # math.sqrt: the same correctly rounded square root as np.sqrt, without a numpy scalar
    return math.sqrt(error**2 + (RELATIVE_TOLERANCE * high) ** 2 + ABSOLUTE_TOLERANCE_WT**2)


def _chi2(wt: Mapping[str, float], err: Mapping[str, float], library: Mapping[str, float]):
    # in a fixed order (the measured elements', then the library's): a set's order follows the
    # strings' hashes, which change from process to process (PYTHONHASHSEED), and so did the
    # sum's last bit: a candidate's score, and the order of equal ones (polymorphs)
    elements = dict.fromkeys([*wt, *library])
    chi2 = 0.0
    floor = ABSOLUTE_TOLERANCE_WT**2
    for el in elements:  # _sigma inlined (the same arithmetic): the ranking's inner loop
        m, lib = wt.get(el, 0.0), library.get(el, 0.0)
        high = lib if lib > m else m
        error = err.get(el, 0.0)
        sigma = math.sqrt(error**2 + (RELATIVE_TOLERANCE * high) ** 2 + floor)
        chi2 += ((m - lib) / sigma) ** 2
    return chi2, max(len(elements), 1)


def _score(chi2: float, n: int) -> float:
    return float(np.exp(-0.5 * chi2 / n))


def _mixture(
    series: Series,
    library: MineralLibrary,
    wt: Mapping[str, float],
    err: Mapping[str, float],
    measured: set[str],
) -> tuple[np.ndarray, dict[str, float]]:
    """Mass shares of the end members best fitting ``wt`` (non-negative, summing to 1)."""
    from scipy.optimize import nnls

    members = [_comparable(library[m].composition, measured) for m in series.members]
    elements = sorted(set(wt).union(*members))
    a = np.array([[member.get(el, 0.0) for member in members] for el in elements])
    b = np.array([wt.get(el, 0.0) for el in elements])
    s = np.array([_sigma(wt.get(el, 0.0), wt.get(el, 0.0), err.get(el, 0.0)) for el in elements])
    penalty = 1e3
    design = np.vstack([a / s[:, None], penalty * np.ones((1, len(members)))])
    target = np.concatenate([b / s, [penalty]])
    shares, _ = nnls(design, target)
    shares = shares / max(shares.sum(), 1e-12)
    mixed = {el: float(v) for el, v in zip(elements, a @ shares, strict=True)}
    return shares, mixed


def series_fractions(series: Series, library: MineralLibrary, shares) -> dict[str, float]:
    """End-member mole fractions by label from the members' mass shares."""
    moles = np.array(
        [y / library[m].formula_mass for y, m in zip(shares, series.members, strict=True)]
    )
    fractions = moles / max(moles.sum(), 1e-30)
    return {label: float(f) for label, f in zip(series.labels, fractions, strict=True)}


def series_name(
    series: Series, library: MineralLibrary, by_label: Mapping[str, float]
) -> tuple[str, Mineral]:
    """``"olivine Fo88"`` (or the end member's name when it is >= ``PURE_MEMBER``) and the
    dominant end member, for end-member mole fractions by label."""
    fractions = [by_label.get(label, 0.0) for label in series.labels]
    dominant = int(np.argmax(fractions))
    member = library[series.members[dominant]]
    if fractions[dominant] >= PURE_MEMBER:
        return member.name, member
    named = [
        (label, f)
        for label, f, is_named in zip(series.labels, fractions, series.named, strict=True)
        if is_named and f >= 0.05
    ]
    named.sort(key=lambda item: -item[1])
    return f"{series.name} " + "".join(f"{label}{round(100 * f)}" for label, f in named), member


def _series_candidate(series, library, wt, err, measured) -> Candidate:
    shares, mixed = _mixture(series, library, wt, err, measured)
    by_label = series_fractions(series, library, shares)
    fractions = np.array([by_label[label] for label in series.labels])
    chi2, n = _chi2(wt, err, mixed)
    name, member = series_name(series, library, by_label)
    density = float(
        sum(f * library[m].density for f, m in zip(fractions, series.members, strict=True))
    )
    return Candidate(
        name,
        member.name,
        _score(chi2, n) * SERIES_PENALTY,
        chi2,
        mixed,
        member.group,
        density,
        series.name,
        by_label,
    )


def rank_candidates(
    wt: Mapping[str, float],
    err_wt: Mapping[str, float] | None = None,
    library: MineralLibrary | None = None,
    geometry: Geometry | None = None,
) -> list[Candidate]:
    """Every library mineral and series, best first (distinct names only).

    Parameters
    ----------
    wt : dict of str to float
        Measured composition in wt % (normalised to 100 or not).
    err_wt : dict, optional
        1-sigma uncertainties (wt %).
    library : MineralLibrary, optional
        Default: the packaged library.
    geometry : Geometry, optional
        The acquisition (what an oxide film can add to the measured O: :func:`film_oxygen_at`);
        default :data:`SEM_20KV`.
    """
    library = library or load_library()
    if sum(v for v in wt.values() if v > 0) <= 0:
        return []
    film = (wt, geometry or SEM_20KV)
    best: dict[str, Candidate] = {}
    for ignored in comparison_variants(wt):
        for candidate in _candidates(wt, err_wt or {}, library, ignored, film):
            kept = best.get(candidate.name)
            if kept is None or candidate.score > kept.score:
                best[candidate.name] = candidate
    ranked = sorted(best.values(), key=lambda c: -c.score)
    seen, distinct = set(), []
    for candidate in ranked:  # one entry per series (its best fractions) and per mineral
        key = candidate.series or candidate.name
        if key not in seen:
            seen.add(key)
            distinct.append(candidate)
    return _prefer_series(distinct)


def comparison_variants(wt: Mapping[str, float]) -> list[tuple[str, ...]]:
    """The light elements left out of a comparison, one tuple per variant: none, the measured O,
    the measured C (when below ``COATING_MAX_WT`` of the measurement), both."""
    total = sum(v for v in wt.values() if v > 0)
    measured_light = [
        el
        for el in ("C", "O")
        if wt.get(el, 0.0) > 0 and (el != "C" or 100.0 * wt[el] / total < COATING_MAX_WT)
    ]
    variants: list[tuple[str, ...]] = [()] + [(el,) for el in measured_light]
    if len(measured_light) == 2:
        variants.append(tuple(measured_light))
    return variants


SERIES_RANGES = {
    "oligoclase": "plagioclase", "andesine": "plagioclase", "labradorite": "plagioclase",
    "bytownite": "plagioclase", "sanidine": "alkali feldspar", "anorthoclase": "alkali feldspar",
}  # fmt: skip
"""Library rows that name a composition range of a series: the series with its end-member
fraction is the fuller name (``"plagioclase An25 (oligoclase)"``)."""


def _prefer_series(candidates: list[Candidate]) -> list[Candidate]:
    if not candidates or candidates[0].name not in SERIES_RANGES:
        return candidates
    best, series = candidates[0], SERIES_RANGES[candidates[0].name]
    match = next((c for c in candidates if c.series == series), None)
    if match is None or match.score < 0.7 * best.score:
        return candidates
    match.name = f"{match.name} ({best.name})"
    match.score = max(match.score, best.score)
    return [match] + [c for c in candidates if c is not match and c is not best] + [best]


def _candidates(
    wt: Mapping[str, float],
    err_wt: Mapping[str, float],
    library: MineralLibrary,
    ignored: tuple[str, ...],
    film: tuple[Mapping[str, float], Geometry] | None = None,
) -> list[Candidate]:
    """Every mineral and series compared without the ``ignored`` light elements. ``film``: the
    measured composition (wt %) and the geometry; an ignored O is left out of the comparison
    with a mineral without O only up to what a surface oxide film gives it
    (:func:`film_oxygen_at`), with one holding O only when enough of its O was measured
    (``OXYGEN_LEFT_OUT_MIN``); the O share is taken among the atoms compared."""
    kept = {el: max(v, 0.0) for el, v in wt.items() if el not in INVISIBLE and el not in ignored}
    total = sum(kept.values())
    if total <= 0:
        return []
    measured_wt = {el: 100.0 * v / total for el, v in kept.items()}
    err = {el: e * 100.0 / total for el, e in err_wt.items() if el in kept}
    measured = set(measured_wt)
    if film is not None:  # the O share among the atoms compared (a C left out is a coat's)
        film = ({el: v for el, v in film[0].items() if el == "O" or el not in ignored}, film[1])
    penalty = IGNORED_LIGHT_PENALTY ** len(ignored)
    unmeasured_light = LIGHT - measured - set(ignored)
    single_element = bool(ignored) and sum(v >= TRACE_MIN_WT for v in measured_wt.values()) == 1
    candidates = []
    for mineral in library.minerals.values():
        comparable = _comparable(mineral.composition, measured)
        if not comparable:
            continue
        if single_element and len(_visible_elements(mineral.composition)) > 1:
            continue  # one element left: it can confirm a pure element only (see above)
        if "O" in ignored and not _film_explains(film, mineral.composition, mineral.density):
            continue
        if "C" in ignored and mineral.composition.get("C", 0.0) >= 0.01:
            continue  # its C is compared within a factor (CARBON_SCALE_SIGMA), not left out
        chi2, n = _carbon_scaled(measured_wt, err, comparable)
        candidate = _single(mineral, chi2, n, comparable)
        unmeasured = [el for el in unmeasured_light if mineral.composition.get(el, 0.0) >= 0.01]
        candidate.score *= UNMEASURED_LIGHT_PENALTY ** len(unmeasured) * penalty
        candidate.ignored = ignored
        candidates.append(candidate)
    if single_element:
        return candidates
    for series in library.series:
        candidate = _series_with_carbon_scale(series, library, measured_wt, err, measured)
        whole = _series_composition(series, library, candidate.fractions)
        if "O" in ignored and not _film_explains(film, whole, candidate.density):
            continue
        if "C" in ignored and whole.get("C", 0.0) >= 0.01:
            continue
        unmeasured = [el for el in unmeasured_light if whole.get(el, 0.0) >= 0.01]
        candidate.score *= UNMEASURED_LIGHT_PENALTY ** len(unmeasured) * penalty
        candidate.ignored = ignored
        candidates.append(candidate)
    return candidates


def _carbon_scales(wt: Mapping[str, float], holds_carbon: bool):
    """``(f, wt / f on C renormalised, prior chi2)`` for each C scale tried (only f = 1 when
    C was not measured or the candidate holds none)."""
    if not holds_carbon or wt.get("C", 0.0) <= 0:
        yield 1.0, None, 0.0
        return
    for f in CARBON_SCALES:
        scaled = dict(wt)
        scaled["C"] = wt["C"] / f
        total = sum(scaled.values())
        yield float(f), (scaled, 100.0 / total), float((np.log(f) / CARBON_SCALE_SIGMA) ** 2)


def _rescaled(wt, err, scaled):
    values, factor = scaled
    f = wt["C"] / values["C"]
    errors = {el: e * factor / (f if el == "C" else 1.0) for el, e in err.items()}
    return {el: v * factor for el, v in values.items()}, errors


def _carbon_scaled(wt, err, library: Mapping[str, float]):
    """The best ``_chi2`` against ``library`` plus the scale's prior over the C scales (see
    ``CARBON_SCALE_SIGMA``), for a composition that holds C (C alone is not scaled)."""
    best = None
    for _f, scaled, prior in _carbon_scales(wt, library.get("C", 0.0) > 0 and len(wt) > 1):
        w, e = (wt, err) if scaled is None else _rescaled(wt, err, scaled)
        chi2, n = _chi2(w, e, library)
        if best is None or chi2 + prior < best[0]:
            best = (chi2 + prior, n)
    return best


def _series_with_carbon_scale(series, library, wt, err, measured) -> Candidate:
    """`_series_candidate` at the C scale that fits best (see ``CARBON_SCALE_SIGMA``)."""
    holds_carbon = any(library[m].composition.get("C", 0.0) > 0 for m in series.members)
    best = None
    for _f, scaled, prior in _carbon_scales(wt, holds_carbon and len(wt) > 1):
        w, e = (wt, err) if scaled is None else _rescaled(wt, err, scaled)
        candidate = _series_candidate(series, library, w, e, measured)
        if prior:
            candidate.chi2 += prior
            n = max(len(set(w) | set(candidate.composition)), 1)
            candidate.score = _score(candidate.chi2, n) * SERIES_PENALTY
        if best is None or candidate.score > best.score:
            best = candidate
    return best


def _film_explains(film, composition: Mapping[str, float], density: float) -> bool:
    """Whether the measured O may be left out of the comparison with ``composition``: for a
    mineral without O, when it is at most what an oxide film gives it; for one holding O, when
    it is at least ``OXYGEN_LEFT_OUT_MIN`` of its own O (at %)."""
    if film is None:
        return True
    wt, geometry = film
    visible = {el: c for el, c in composition.items() if c > 0 and el not in INVISIBLE}
    measured = _unbound_oxygen_of(wt, visible)
    if composition.get("O", 0.0) > 0:
        return measured >= OXYGEN_LEFT_OUT_MIN * _oxygen_at_cached(tuple(visible.items()))
    return measured <= film_oxygen_at(visible, density, geometry)


def _unbound_oxygen_of(wt: Mapping[str, float], composition: Mapping[str, float]) -> float:
    """:func:`unbound_oxygen_at`, computed once per measured composition and set of measured
    elements the mineral lacks (all it depends on; the library's minerals share a few sets)."""
    lacking = frozenset(el for el in wt if composition.get(el, 0.0) <= 0)
    try:
        return _unbound_oxygen_cached(tuple(wt.items()), lacking)
    except TypeError:  # a value that cannot be a key: not cached
        return unbound_oxygen_at(wt, composition)


@lru_cache(maxsize=4096)
def _unbound_oxygen_cached(wt_items: tuple, lacking: frozenset) -> float:
    wt = dict(wt_items)
    return unbound_oxygen_at(wt, {el: 1.0 for el in wt if el not in lacking})


@lru_cache(maxsize=4096)
def _oxygen_at_cached(items: tuple) -> float:
    return _oxygen_at(dict(items))


def _oxygen_at(composition: Mapping[str, float]) -> float:
    """At % of O among a composition's (mass fractions) atoms."""
    from napari_sigma.quant.physics import atomic_weight

    moles = {el: c / atomic_weight(el) for el, c in composition.items() if c > 0}
    total = sum(moles.values())
    return 100.0 * moles.get("O", 0.0) / total if total > 0 else 0.0


NOT_OXIDE_BOUND = frozenset({"S", "Se", "Te"})
"""Measured elements whose O share :func:`unbound_oxygen_at` does not count (a sulfide's S, not
a sulfate's)."""


def unbound_oxygen_at(wt: Mapping[str, float], composition: Mapping[str, float]) -> float:
    """The measured O (at % of the measured atoms) less the O carried, as their oxides
    (``quant.quantify.VALENCES``), by the measured elements that ``composition`` lacks.

    A phase's O can come with a neighbour's other elements (a galena grain in a silicate foil:
    O 15 at % with Si 4.7, Ca 1.7, Fe 0.8 at %, which carry 12 at % of O as oxides): that O is
    the neighbour's, not a film on the phase, and is not weighed against
    :func:`film_oxygen_at`; the foreign elements are listed as traces."""
    from napari_sigma.quant.physics import atomic_weight
    from napari_sigma.quant.quantify import ANIONS, VALENCES

    moles = {el: v / atomic_weight(el) for el, v in wt.items() if v > 0 and el not in INVISIBLE}
    total = sum(moles.values())
    if total <= 0:
        return 0.0
    bound = sum(
        n * VALENCES.get(el, 0.0) / 2.0
        for el, n in moles.items()
        if composition.get(el, 0.0) <= 0
        and el not in LIGHT
        and el not in ANIONS
        and el not in NOT_OXIDE_BOUND
    )
    return 100.0 * max(moles.get("O", 0.0) - bound, 0.0) / total


def film_oxygen_at(
    composition: Mapping[str, float], density: float, geometry: Geometry = SEM_20KV
) -> float:
    """The O (at % of the measured atoms) that a surface oxide film of :data:`FILM_NM` adds to
    a phase of ``composition`` (mass fractions; no O) and ``density`` (g/cm^3).

    - ``"bulk"``: the film's O K is generated at the surface, ``phi(0)`` of the XPP depth
      distribution of O K ionisations in the phase (Pouchou & Pichoir 1991), and leaves it
      unabsorbed; the quantification reads it as O spread over the whole depth distribution,
      whose emerging O K is ``F(chi) = integral phi(rho z) exp(-chi rho z) d rho z``. To first
      order the apparent O mass fraction is ``m_O phi(0) / F(chi)`` with ``m_O`` the film's O per
      area (:data:`FILM_OXYGEN_MOL_CM3`). At 10-30 kV, 20 nm: Al, Cu, Fe, Ni, Si 3-8 at %, PbS
      11-12 at %, Ti 20-24 at % (O K, just above the Ti L edges, is absorbed most in Ti);
      a native film of 3 nm: 0.4-2 at %, Ti 4 at %.
    - ``"thin"``: the foil of ``foil_nm`` carries a film on each surface; its atoms are counted
      directly (no depth distribution): ``2 t n_O`` against the film's cations and the phase's
      ``(T - 2 t) n`` atoms per volume. Two 5 nm films on 50 nm of Fe: 12 at %, of Al 16 at %;
      on 100 nm: 6-8 at %.
    """
    return surface_layer_at(
        composition, density, geometry, "O", FILM_NM[geometry.mode], FILM_OXYGEN_MOL_CM3, (5.0, 3.0)
    )


def surface_layer_at(
    composition: Mapping[str, float],
    density: float,
    geometry: Geometry,
    element: str,
    layer_nm: float,
    mol_cm3: float,
    atoms_per_element: tuple[float, float] = (1.0, 1.0),
) -> float:
    """Apparent at % of ``element`` that a surface layer (``layer_nm`` thick, ``mol_cm3`` of
    ``element`` atoms, ``atoms_per_element`` = (a, b): a / b atoms in all per such atom) adds to
    the analysis of a phase of ``composition`` (mass fractions) and ``density`` in ``geometry``:
    an oxide film's
    O (:func:`film_oxygen_at`, (5, 3): 5/3 atoms per O with its cations), a carbon coat's C
    (:func:`~napari_sigma.minerals.coating.film_carbon_at`). Bulk: the layer's K line is
    generated at phi(0) of the XPP distribution and leaves unabsorbed, while the quantification
    reads it as spread over the whole distribution, whose emerging intensity is F(chi):
    ``c = m phi(0) / F(chi)`` (Pouchou & Pichoir 1991). Thin foil: a layer on each surface, its
    atoms counted directly against the phase's ``(T - 2 t) n``."""
    key = (tuple(sorted((el, round(float(c), 6)) for el, c in composition.items() if c > 0)),
           round(float(density), 4), geometry)  # fmt: skip
    return _surface_layer_cached(*key, element, layer_nm, mol_cm3, atoms_per_element)


@lru_cache(maxsize=8192)
def _surface_layer_cached(
    items: tuple,
    density: float,
    geometry: Geometry,
    element: str,
    layer_nm: float,
    mol_cm3: float,
    atoms_per_element: tuple[float, float],
) -> float:
    from napari_sigma.quant import physics

    composition = dict(items)
    total = sum(composition.values())
    if total <= 0:
        return 0.0
    composition = {el: c / total for el, c in composition.items()}
    layer_cm = layer_nm * 1e-7
    if geometry.mode == "thin":
        foil_cm = (geometry.foil_nm or DEFAULT_FOIL_NM) * 1e-7
        atoms = density * sum(c / physics.atomic_weight(el) for el, c in composition.items())
        layer = 2 * layer_cm * mol_cm3
        phase = max(foil_cm - 2 * layer_cm, 0.0) * atoms
        atoms, per = atoms_per_element
        return float(100.0 * layer / (layer * atoms / per + phase))
    try:
        dist = physics.xpp_distribution(composition, element, "K", geometry.beam_kev)
    except ValueError:
        return 0.0
    weight = physics.atomic_weight(element)
    line = physics.shell_lines(element, "K")[0].energy
    chi = float(physics.mass_attenuation(composition, line)) / np.sin(
        np.radians(geometry.takeoff_deg)
    )
    mass = mol_cm3 * weight * layer_cm
    share = min(mass * dist.phi0 / float(dist.emitted(chi)), 1.0)
    moles = {el: (1.0 - share) * c / physics.atomic_weight(el) for el, c in composition.items()}
    layer_moles = share / weight
    return float(100.0 * layer_moles / (layer_moles + sum(moles.values())))


def _visible_elements(composition: Mapping[str, float]) -> set[str]:
    return {el for el, c in composition.items() if c > 0 and el not in INVISIBLE}


def _series_composition(
    series: Series, library: MineralLibrary, fractions: Mapping[str, float]
) -> dict[str, float]:
    """The whole composition (mass fractions, all elements) of a series member mixture given
    its end-member mole fractions by label."""
    masses = {
        m: fractions.get(label, 0.0) * library[m].formula_mass
        for m, label in zip(series.members, series.labels, strict=True)
    }
    total = sum(masses.values()) or 1.0
    whole: dict[str, float] = {}
    for m, mass in masses.items():
        for el, c in library[m].composition.items():
            whole[el] = whole.get(el, 0.0) + mass / total * c
    return whole


def _single(mineral: Mineral, chi2: float, n: int, comparable: dict[str, float]) -> Candidate:
    return Candidate(
        mineral.name, mineral.name, _score(chi2, n), chi2, comparable, mineral.group,
        mineral.density,
    )  # fmt: skip


def formula_string(wt: Mapping[str, float]) -> str:
    """A formula from wt %: atoms normalised so the least abundant major element is 1."""
    from napari_sigma.quant.physics import atomic_weight

    moles = {el: v / atomic_weight(el) for el, v in wt.items() if v > 0}
    if not moles:
        return ""
    largest = max(moles.values())
    majors = [m for m in moles.values() if m >= 0.1 * largest]
    unit = min(majors)
    ordered = sorted(moles, key=lambda el: -moles[el] if el != "O" else 0.0)
    return "".join(f"{el}{moles[el] / unit:.2f}" for el in ordered if moles[el] / unit >= 0.01)


def _trace(wt, err, candidate: Candidate) -> list[str]:
    total = sum(v for v in wt.values() if v > 0) or 1.0
    found = []
    for el, v in sorted(wt.items(), key=lambda item: -item[1]):
        share = 100.0 * v / total
        if share < TRACE_MIN_WT or candidate.composition.get(el, 0.0) >= 0.1:
            continue
        if el in candidate.ignored and el in LIGHT and el != "C":  # O left out: no trace
            continue
        if el in candidate.composition or share > 3 * err.get(el, 0.0):
            found.append(f"{el} {share:.1f} wt%")
    return found


def _identification(candidates: Sequence[Candidate], wt, err, min_score: float) -> Identification:
    formula = formula_string(wt)
    if not candidates or candidates[0].score < min_score:
        best_score = candidates[0].score if candidates else 0.0
        alternatives = [(c.name, c.score) for c in candidates[:2]]
        return Identification(
            f"unknown ({formula})", "unknown", best_score, alternatives, None, {}, "",
            float("nan"), [], formula, True,
        )  # fmt: skip
    best = candidates[0]
    return Identification(
        best.name, best.mineral, best.score, [(c.name, c.score) for c in candidates[1:3]],
        best.series, best.fractions, best.group, best.density, _trace(wt, err, best), formula,
        False, unresolved_candidates(candidates), best.components,
    )  # fmt: skip


def unresolved_candidates(
    candidates: Sequence[Candidate], library: MineralLibrary | None = None
) -> list[tuple[str, float]]:
    """The candidates after the best (among the first ``SPECTRUM_CANDIDATES``) whose visible
    composition, over the elements the best was compared on, is within the comparison's
    tolerance of the best's (chi2 per element < 1, as ``HYDROUS_MARGIN``'s test): the
    measurement does not tell them apart at the stated accuracy (8 % relative, 0.7 wt %), e.g.
    magnetite (O 27.6 wt %) and hematite (30.1). Polymorphs are among them. ``(name, score)``."""
    if len(candidates) < 2:
        return []
    library = library or load_library()
    best = candidates[0]
    reference = _resolution_composition(best, library, best.ignored)
    found = []
    for other in candidates[1:SPECTRUM_CANDIDATES]:
        composition = _resolution_composition(other, library, best.ignored)
        if reference and composition and _equivalent(reference, composition):
            found.append((other.name, other.score))
    return found


def _resolution_composition(candidate: Candidate, library, left_out) -> dict[str, float] | None:
    """A candidate's visible composition (wt %) without the light elements ``left_out``: a
    mineral's own, a series' fitted mixture."""
    visible = _visible(candidate, library, left_out)
    if visible is not None:
        return visible
    return {el: v for el, v in candidate.composition.items() if el not in left_out} or None


def identify_composition(
    wt: Mapping[str, float],
    err_wt: Mapping[str, float] | None = None,
    library: MineralLibrary | None = None,
    min_score: float = MIN_SCORE,
    geometry: Geometry | None = None,
    coating: Sequence[str] = (),
) -> Identification:
    """Name a phase from its quantified composition (see the module docstring); ``geometry``:
    the acquisition (default :data:`SEM_20KV`); ``coating``: a coat the user states
    (:mod:`napari_sigma.minerals.coating`)."""
    candidates = rank_candidates(wt, err_wt, library, geometry)
    candidates = _with_intergrowths(candidates, wt, err_wt, library, geometry)
    if not candidates or candidates[0].score < min_score:
        candidates = _with_contaminants(candidates, wt, err_wt or {}, library)
    candidates = _with_coating(candidates, wt, coating, geometry, library)
    return _identification(_prefer_anhydrous(candidates), wt, dict(err_wt or {}), min_score)


def contaminant_sets(wt: Mapping[str, float]) -> list[tuple[str, ...]]:
    """Measured elements (not H-B, not C, N, O) that could be contaminants: each alone and all
    together, when they are at most ``CONTAMINANT_MAX_AT`` at % of the measured atoms."""
    from napari_sigma.quant.physics import atomic_weight

    moles = {el: v / atomic_weight(el) for el, v in wt.items() if v > 0 and el not in INVISIBLE}
    total = sum(moles.values())
    if total <= 0:
        return []
    small = [
        el
        for el, n in sorted(moles.items(), key=lambda item: item[1])
        if el not in LIGHT and 100.0 * n / total <= CONTAMINANT_MAX_AT
    ]
    sets: list[tuple[str, ...]] = []
    for el in small:
        sets.append((el,))
    together = tuple(small)
    if (
        len(together) > 1
        and 100.0 * sum(moles[el] for el in together) / total <= CONTAMINANT_MAX_AT
    ):
        sets.append(together)
    return sets


def _with_contaminants(candidates, wt, err_wt, library) -> list[Candidate]:
    """``candidates`` plus every mineral compared without each possible contaminant set."""
    library = library or load_library()
    best = {c.name: c for c in candidates}
    for contaminants in contaminant_sets(wt):
        for candidate in _candidates(wt, err_wt, library, contaminants):
            if any(candidate.composition.get(el, 0.0) > 0 for el in contaminants):
                continue  # a mineral holding the element does not need it left out
            kept = best.get(candidate.name)
            if kept is None or candidate.score > kept.score:
                best[candidate.name] = candidate
    ranked = sorted(best.values(), key=lambda c: -c.score)
    seen, distinct = set(), []
    for candidate in ranked:
        key = candidate.series or candidate.name
        if key not in seen:
            seen.add(key)
            distinct.append(candidate)
    return distinct


def _with_intergrowths(candidates, wt, err_wt, library, geometry) -> list[Candidate]:
    """`napari_sigma.minerals.intergrowth.with_intergrowths` (two minerals explaining a phase
    that no single one fits)."""
    from napari_sigma.minerals.intergrowth import with_intergrowths

    return with_intergrowths(candidates, wt, err_wt, library or load_library(), geometry)


def _visible(
    candidate: Candidate, library: MineralLibrary, left_out: tuple[str, ...] = ()
) -> dict[str, float] | None:
    """A single mineral's composition over the elements EDS sees (wt %), without the light
    elements ``left_out`` of the comparison; None for a series or an intergrowth."""
    mineral = library.minerals.get(candidate.mineral)
    if candidate.series is not None or candidate.components or mineral is None:
        return None
    return _comparable(mineral.composition, set(mineral.composition) - set(left_out))


def _prefer_anhydrous(candidates: list[Candidate], library=None) -> list[Candidate]:
    """Apply ``HYDROUS_MARGIN``: an anhydrous mineral whose visible composition is the hydrous
    best match's within the comparison's tolerance (chi2 per element < 1) takes its place. The
    compositions are compared over the elements the best match was compared on: when its
    comparison left O (or C) out, a mineral with invisible constituents that agrees on the rest
    (datolite CaBSiO4(OH) and wollastonite CaSiO3 over Ca and Si) is no better evidenced. So is
    one whose other elements agree and that differs in O alone (goethite FeO(OH) and hematite
    Fe2O3, gibbsite and corundum): its water is seen only as excess O, the least reliable
    standardless result (hematite of a foil whose O K absorption is underestimated reads
    O 33.6 wt % instead of 30.1, goethite's visible part is 36.4)."""
    if len(candidates) < 2:
        return candidates
    library = library or load_library()
    best = candidates[0]
    mineral = library.minerals.get(best.mineral)
    best_visible = _visible(best, library, best.ignored)
    if best_visible is None or not any(el in INVISIBLE for el in mineral.composition):
        return candidates
    for other in candidates[1:]:
        if other.score * HYDROUS_MARGIN < best.score:
            break
        visible = _visible(other, library, best.ignored)
        if visible is None or any(el in INVISIBLE for el in library[other.mineral].composition):
            continue
        if _equivalent(best_visible, visible) or _equivalent(
            _without(best_visible, "O"), _without(visible, "O")
        ):
            return [other] + [c for c in candidates if c is not other]
    return candidates


def _without(composition: Mapping[str, float], element: str) -> dict[str, float]:
    """``composition`` (wt %) without ``element``, renormalised to 100."""
    kept = {el: v for el, v in composition.items() if el != element}
    total = sum(kept.values())
    return {el: 100.0 * v / total for el, v in kept.items()} if total > 0 else {}


def _equivalent(a: Mapping[str, float], b: Mapping[str, float]) -> bool:
    """Two compositions (wt %) within the comparison's tolerance of each other (chi2 per
    element < 1)."""
    if not a or not b:
        return False
    chi2, n = _chi2(a, {}, b)
    return chi2 / n < 1.0


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


def identify_quantified(
    quantification,
    spectrum: np.ndarray | None = None,
    axis=None,
    library: MineralLibrary | None = None,
    detector=None,
    min_score: float = MIN_SCORE,
    requantify=None,
    foil_nm: float | None = None,
    coating: Sequence[str] = (),
) -> Identification:
    """Name a phase from a :class:`~napari_sigma.quant.quantify.Quantification` and its spectrum.

    The composition ranks the library; the best ``SPECTRUM_CANDIDATES`` are then simulated
    (lines only, the quantification's mode, take-off and beam energy) and compared with the
    phase's spectrum minus its fitted continuum.

    ``requantify``: ``fixed -> Quantification``, the same spectrum quantified again with some
    elements held at given mass fractions (``QuantSettings.fixed``); with it, a bulk analysis
    without C also tests the carbonates and other C-bearing minerals of its elements with
    their own C in the matrix (:func:`with_unmeasured_carbon`).

    ``foil_nm``: a thin foil's thickness (what its surface films add: :func:`film_oxygen_at`).

    ``coating``: the elements of a coat the user states (``("C",)``;
    :func:`napari_sigma.minerals.coating.prefer_without_coating_carbon`).
    """
    wt, err = quantification.wt, quantification.err_wt
    geometry = Geometry(quantification.mode, float(quantification.beam_kev),
                        float(quantification.takeoff_deg), foil_nm)  # fmt: skip
    candidates = rank_candidates(wt, err, library, geometry)
    if requantify is not None:
        candidates = with_unmeasured_carbon(
            candidates, quantification, library, requantify, geometry
        )
    candidates = _with_intergrowths(candidates, wt, err, library, geometry)
    fit = quantification.fit
    if spectrum is not None and axis is not None and fit is not None and candidates:
        candidates = _rerank_by_spectrum(
            candidates, spectrum, axis, quantification, detector, library
        )
    if not candidates or candidates[0].score < min_score:
        candidates = _with_contaminants(candidates, wt, err, library)
        if spectrum is not None and axis is not None and fit is not None and candidates:
            fresh = [c for c in candidates if c.similarity is None]
            fresh = _rerank_by_spectrum(fresh, spectrum, axis, quantification, detector, library)
            compared = [c for c in candidates if c.similarity is not None]
            compared += [c for c in fresh if c.similarity is not None]
            rest = [c for c in fresh if c.similarity is None]
            candidates = sorted(compared, key=lambda c: -c.score) + rest
    candidates = _with_coating(candidates, wt, coating, geometry, library)
    return _identification(_prefer_anhydrous(candidates, library), wt, dict(err), min_score)


def _with_coating(candidates, wt, coating, geometry, library) -> list[Candidate]:
    """:func:`napari_sigma.minerals.coating.prefer_without_coating_carbon` when a coat is stated."""
    if not coating:
        return candidates
    from napari_sigma.minerals.coating import prefer_without_coating_carbon

    return prefer_without_coating_carbon(candidates, wt, coating, geometry, library)


CARBON_HYPOTHESES = 4
"""C-bearing minerals (the best scored first) whose C a bulk analysis without C tries in its
matrix (:func:`with_unmeasured_carbon`)."""


def with_unmeasured_carbon(
    candidates, quantification, library, requantify, geometry: Geometry | None = None
) -> list[Candidate]:
    """``candidates`` with the C-bearing minerals of the measured elements compared again,
    each with its own C in the matrix correction.

    A bulk (ZAF) analysis of a carbonate without C (left out by the user, e.g. under a carbon
    coat) corrects the O of a matrix that lacks its C: at 20 kV magnesite comes out with
    O/Mg 2.11 (brucite's is 2) instead of 3, siderite 2.28, rhodochrosite 2.18 (with its C
    held at the true fraction: 2.89-2.93). So each C-bearing mineral whose other visible
    elements are exactly the measured ones (those of at least ``TRACE_MIN_WT``) (at most :data:`CARBON_HYPOTHESES`, the best scored
    first) is tried as a hypothesis: the spectrum is quantified again with that mineral's C
    held fixed, and the library is ranked on that composition; its candidates that hold C and
    otherwise exactly the measured elements join the list, as measured with C (their fit in their own matrix is the evidence; a hydroxide
    tried as a carbonate does not fit it: brucite tried as magnesite gives O/Mg ~2.8).
    Thin foils (no matrix correction) and analyses with C are left as they are.
    """
    library = library or load_library()
    wt = quantification.wt
    measured = {el for el, v in wt.items() if v >= TRACE_MIN_WT} - INVISIBLE  # not traces
    if quantification.mode != "bulk" or "C" in wt or not measured:
        return candidates
    eligible = [
        m for m in library.minerals.values()
        if m.composition.get("C", 0.0) >= 0.01
        and _visible_elements(m.composition) - {"C"} == measured
    ]  # fmt: skip
    if not eligible:
        return candidates
    scores = {c.name: c.score for c in candidates}
    eligible.sort(key=lambda m: -scores.get(m.name, 0.0))
    best = {c.name: c for c in candidates}
    for carbon in dict.fromkeys(m.composition["C"] for m in eligible[:CARBON_HYPOTHESES]):
        try:
            fixed = requantify({"C": float(carbon)})
        except (ValueError, np.linalg.LinAlgError):
            continue
        for candidate in rank_candidates(fixed.wt, fixed.err_wt, library, geometry):
            held = {el for el, v in candidate.composition.items() if v > 0} - {"C"}
            if candidate.composition.get("C", 0.0) < 1.0 or held != measured:
                continue  # the hypotheses: C-bearing phases of the measured elements only
            kept = best.get(candidate.name)
            if kept is None or candidate.score > kept.score:
                best[candidate.name] = candidate
    return sorted(best.values(), key=lambda c: -c.score)


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


MAX_NEIGHBOUR_SHARE = 0.5
"""Largest share (of the mass) of a neighbouring phase in a phase's measured composition that
`identify_with_neighbour` explains away: the phase must still be mostly itself."""


def identify_with_neighbour(
    wt: Mapping[str, float],
    err_wt: Mapping[str, float] | None,
    neighbour_wt: Mapping[str, float],
    neighbour: str,
    library: MineralLibrary | None = None,
    min_score: float = MIN_SCORE,
) -> Identification | None:
    """Name a phase that fits nothing as a library mineral plus some of a touching phase.

    Small particles and thin grains are measured with their neighbour (mixed boundary pixels,
    particles embedded in a foil): every single mineral ``m`` is compared with the measurement
    as ``a m + b neighbour`` (non-negative, ``b <= MAX_NEIGHBOUR_SHARE (a + b)``, weighted by
    the comparison's tolerances), at the cost of ``IGNORED_LIGHT_PENALTY`` for the extra share.
    Returns the best such identification (its traces say how much of ``neighbour`` it holds),
    or None when none reaches ``min_score``.
    """
    from scipy.optimize import nnls

    library = library or load_library()
    err = dict(err_wt or {})
    kept = {el: max(v, 0.0) for el, v in wt.items() if el not in INVISIBLE}
    total = sum(kept.values())
    host = {el: max(v, 0.0) for el, v in neighbour_wt.items() if el not in INVISIBLE}
    host_total = sum(host.values())
    if total <= 0 or host_total <= 0:
        return None
    measured = {el: 100.0 * v / total for el, v in kept.items()}
    host = {el: 100.0 * v / host_total for el, v in host.items()}
    err = {el: e * 100.0 / total for el, e in err.items() if el in measured}
    seen = set(measured)
    best: tuple[float, Mineral, float, dict[str, float]] | None = None
    for mineral in library.minerals.values():
        comparable = _comparable(mineral.composition, seen)
        if not comparable:
            continue
        elements = sorted(set(measured) | set(comparable) | set(host))
        s = np.array([_sigma(measured.get(el, 0.0), measured.get(el, 0.0), err.get(el, 0.0))
                      for el in elements])  # fmt: skip
        design = (
            np.array([[comparable.get(el, 0.0), host.get(el, 0.0)] for el in elements]) / s[:, None]
        )
        target = np.array([measured.get(el, 0.0) for el in elements]) / s
        (a, b), _ = nnls(design, target)
        if a <= 0 or b <= 0 or b > MAX_NEIGHBOUR_SHARE * (a + b):
            continue
        mixed = {
            el: (a * comparable.get(el, 0.0) + b * host.get(el, 0.0)) / (a + b) for el in elements
        }
        chi2, n = _chi2(measured, err, mixed)
        score = _score(chi2, n) * IGNORED_LIGHT_PENALTY
        if best is None or score > best[0]:
            best = (score, mineral, b / (a + b), mixed)
    if best is None or best[0] < min_score:
        return None
    score, mineral, share, mixed = best
    candidate = Candidate(
        mineral.name, mineral.name, score, 0.0, _comparable(mineral.composition, seen),
        mineral.group, mineral.density,
    )  # fmt: skip
    found = _identification([candidate], wt, err, min_score)
    found.trace = [f"{round(100 * share)} % of {neighbour}", *found.trace]
    return found
