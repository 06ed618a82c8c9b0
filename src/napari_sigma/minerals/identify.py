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
and named by its formula; a best candidate whose misfit the comparison's own tolerances reject
(a chi-square test, :func:`fits_composition`) is the nearest entry, named with a "?" after it
(``"scheelite?"``), when the phase's own elements are the entry's and the misfit is a foreign
minor element; when its own elements rule the entry out (a foreign major element, its own
elements in other proportions, a light element's missing line: a ferrite with 25 wt % Cr and
4.5 Ni is not 304, a C-O deposit without N not nylon) the phase is unknown, the entry its first
alternative (:mod:`napari_sigma.minerals.own_elements`).

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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

# The comparison (scores), surface films, series, ranking and spectral evidence live in their
# own modules (sixteenth session); every name stays importable from here (noqa: F401): patch
# or change them in their own modules.
from napari_sigma.minerals.films import (  # noqa: F401
    DEFAULT_FOIL_NM,
    FILM_NM,
    FILM_OXYGEN_MOL_CM3,
    NOT_OXIDE_BOUND,
    OXYGEN_LEFT_OUT_MIN,
    SEM_20KV,
    Geometry,
    _film_explains,
    _oxygen_at,
    _oxygen_at_cached,
    _surface_layer_cached,
    _unbound_oxygen_cached,
    _unbound_oxygen_of,
    film_oxygen_at,
    surface_layer_at,
    unbound_oxygen_at,
)
from napari_sigma.minerals.library import Mineral, MineralLibrary, load_library
from napari_sigma.minerals.own_elements import analysed_shells
from napari_sigma.minerals.ranking import (  # noqa: F401
    COATING_MAX_WT,
    CONTAMINANT_MAX_AT,
    TRACE_MIN_WT,
    UNMEASURED_LIGHT_PENALTY,
    _candidates,
    _with_contaminants,
    comparison_variants,
    contaminant_sets,
    rank_candidates,
)
from napari_sigma.minerals.scores import (  # noqa: F401
    ABSOLUTE_TOLERANCE_WT,
    CARBON_SCALE_SIGMA,
    CARBON_SCALES,
    IGNORED_LIGHT_PENALTY,
    INVISIBLE,
    LIGHT,
    RELATIVE_TOLERANCE,
    Candidate,
    _carbon_scaled,
    _carbon_scales,
    _chi2,
    _comparable,
    _equivalent,
    _rescaled,
    _score,
    _single,
    _visible_elements,
    renormalised_without,
    tolerance_sigma,
)
from napari_sigma.minerals.series import (  # noqa: F401
    PURE_MEMBER,
    SERIES_PENALTY,
    SERIES_RANGES,
    _mixture,
    _prefer_series,
    _series_candidate,
    _series_composition,
    _series_with_carbon_scale,
    series_fractions,
    series_name,
)
from napari_sigma.minerals.spectral import (  # noqa: F401
    SIMILARITY_POWER,
    SPECTRUM_CANDIDATES,
    _default_detector,
    _rerank_by_spectrum,
    _unanalysed_light,
    spectrum_similarity,
    unanalysed_light_chi2,
)

MIN_SCORE = 0.02

OUTSIDE_TOLERANCE_MARK = "?"
"""Follows a name whose composition the library's comparison rejects (:func:`fits_composition`):
``"nylon?"``, the nearest entry, not an identification."""
FIT_LEVEL = 0.00135
"""The chi-square test of :func:`fits_composition` rejects a name at this level: the upper tail
of three standard deviations of a normal variable, the level of the analysis's other tests
(:data:`napari_sigma.minerals.signal.NO_SIGNAL_SIGMAS`)."""

HYDROUS_MARGIN = 1.0 / IGNORED_LIGHT_PENALTY**2
"""A mineral with invisible constituents (H, Li, Be, B; e.g. opal SiO2·nH2O) whose visible
composition is indistinguishable from an anhydrous one (quartz) within the comparison's
tolerance wins only when it scores this many times higher: EDS sees the water only as excess O,
the least reliable standardless result (two O-sized misfits)."""


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
    ruled_out : str
        See the attribute.
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
    ruled_out: str = ""
    """For an unknown phase whose nearest entry its own elements rule out
    (:func:`napari_sigma.minerals.own_elements.ruled_out_by_own_elements`): why
    (``"its own elements are not stainless steel 304's: Cr 27.5 (17.9), ..."``); ``""``
    otherwise. A touching phase does not name it (`minerals.phases`' neighbour step)."""
    neighbour_share: float = 0.0
    """The mass share of a touching phase explained away by :func:`identify_with_neighbour`
    (0..`MAX_NEIGHBOUR_SHARE`); 0 for an identification of the phase alone."""


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


def fits_composition(candidate: Candidate, wt: Mapping[str, float]) -> bool:
    """Whether the measured composition ``wt`` is consistent with ``candidate``'s at the
        comparison's stated accuracy: a chi-square test of its misfit (``candidate.chi2``, each
        element's difference over the comparison's 1-sigma tolerance: counting, 8 % relative,
        0.7 wt %; a C scale's prior included) with as many degrees of freedom as elements compared
        (those measured and not left out, and the candidate's), at the level ``FIT_LEVEL``.

        The score (``exp(-chi2 / 2n)`` times the costs of left-out elements and the spectrum's
        similarity) ranks the library; a best score above ``MIN_SCORE`` can still be a composition
        two or three tolerances away in every element (JEOL's C-O deposit: "nylon", 0.04): the
        nearest entry, not a match. Such a name is shown with ``OUTSIDE_TOLERANCE_MARK`` after it
    (``"nylon?"``). A light element the candidate holds that was not analysed must show its
    line: the misfit of its counts against those predicted at the phase's dose
    (``candidate.absent_chi2``, :func:`napari_sigma.minerals.spectral.absent_line_chi2`) is
    added, one more degree of freedom per line tested."""
    from scipy.special import chdtrc  # chi2.sf without importing scipy.stats (0.2-0.3 s)

    compared = {el for el, v in wt.items() if el not in INVISIBLE and el not in candidate.ignored}
    n = max(len(compared | set(candidate.composition)), 1) + candidate.absent_tested
    return bool(chdtrc(n, candidate.chi2 + candidate.absent_chi2) >= FIT_LEVEL)


def plain_name(name: str) -> str:
    """A name without the mark of a rejected composition (``"nylon?"`` -> ``"nylon"``)."""
    return name.removesuffix(OUTSIDE_TOLERANCE_MARK)


def _identification(
    candidates: Sequence[Candidate], wt, err, min_score: float, own=None
) -> Identification:
    """The identification from the ranked ``candidates``: unknown below ``min_score``; the best
    named when its composition fits (:func:`fits_composition`); when it does not, unknown if
    the phase's own elements rule it out
    (:func:`~napari_sigma.minerals.own_elements.ruled_out_by_own_elements` of ``own``, the
    phase's own composition and errors and, optionally, the shells its elements were analysed
    with; by default ``(wt, err)``), else the nearest entry with
    ``OUTSIDE_TOLERANCE_MARK``. An unknown's alternatives are the two best entries."""
    from napari_sigma.minerals.own_elements import ruled_out_by_own_elements

    formula = formula_string(wt)
    if not candidates or candidates[0].score < min_score:
        best_score = candidates[0].score if candidates else 0.0
        return _unknown(candidates, formula, best_score)
    best = candidates[0]
    name = best.name
    if not fits_composition(best, wt):
        reason = ruled_out_by_own_elements(best, *(own or (wt, err)))
        if reason:
            return _unknown(candidates, formula, best.score, f"{best.name}: {reason}")
        if close_rival(candidates) is not None:
            return _unknown(candidates, formula, best.score)  # the tie: its alternatives
        name = f"{best.name}{OUTSIDE_TOLERANCE_MARK}"
    return Identification(
        name, best.mineral, best.score, [(c.name, c.score) for c in candidates[1:3]],
        best.series, best.fractions, best.group, best.density, _trace(wt, err, best), formula,
        False, unresolved_candidates(candidates, wt=wt), best.components,
    )  # fmt: skip


def close_rival(candidates: Sequence[Candidate]) -> Candidate | None:
    """The first candidate after the best (among ``SPECTRUM_CANDIDATES``) that scores within
    ``HYDROUS_MARGIN`` of it and is another entry: not one the measurement does not resolve
    from it (:func:`unresolved_candidates`: polymorphs, a few wt % of O) nor the same series;
    None when the best stands out.

    A composition that no entry fits (the comparison's test rejects the best) is named after
    its nearest entry, with ``OUTSIDE_TOLERANCE_MARK``, only when one entry is nearest: the
    same margin by which an intergrowth's pair must beat any other pair. A slag glass whose
    composition lies as near a garnet as an amphibole (0.14 against 0.13) is neither: it is
    "unknown (formula)", the two entries and their scores its alternatives. EDS measures
    composition, not structure: a glass of a mineral's composition is named after that mineral
    where it fits it (and its library glass where it fits that)."""
    if len(candidates) < 2:
        return None
    best = candidates[0]
    unresolved = {name for name, _ in unresolved_candidates(candidates)}
    for other in candidates[1:SPECTRUM_CANDIDATES]:
        if other.score * HYDROUS_MARGIN < best.score:
            return None
        if other.name in unresolved or _same_entry(best, other):
            continue
        return other
    return None


def _same_entry(best: Candidate, other: Candidate) -> bool:
    """Whether two candidates name one entry: the same name or dominant mineral (albite and
    "plagioclase An3"), or the same series at other fractions."""
    return (
        other.name == best.name
        or other.mineral == best.mineral
        or bool(best.series and other.series == best.series)
    )


def _unknown(candidates, formula: str, score: float, ruled_out: str = "") -> Identification:
    """An unknown phase; its alternatives are the two best distinct names."""
    closest: list[tuple[str, float]] = []
    for c in candidates:
        if len(closest) == 2:
            break
        if all(c.name != name for name, _ in closest):
            closest.append((c.name, c.score))
    return Identification(
        f"unknown ({formula})", "unknown", score, closest, None, {}, "", float("nan"), [],
        formula, True, ruled_out=ruled_out,
    )  # fmt: skip


def unresolved_candidates(
    candidates: Sequence[Candidate],
    library: MineralLibrary | None = None,
    wt: Mapping[str, float] | None = None,
) -> list[tuple[str, float]]:
    """The candidates after the best (among the first ``SPECTRUM_CANDIDATES``) whose visible
    composition, over the elements the best was compared on, is within the comparison's
    tolerance of the best's (chi2 per element < 1, as ``HYDROUS_MARGIN``'s test): the
    measurement does not tell them apart at the stated accuracy (8 % relative, 0.7 wt %), e.g.
    magnetite (O 27.6 wt %) and hematite (30.1). Polymorphs are among them. With the measured
    composition ``wt``, also those that fit it (:func:`fits_composition`) when the best does and
    that score within ``HYDROUS_MARGIN`` of it: a close tie of two entries the comparison
    accepts (an amphibole and a garnet of a slag's composition) is not a resolution of one.
    ``(name, score)``."""
    if len(candidates) < 2:
        return []
    library = library or load_library()
    best = candidates[0]
    reference = _resolution_composition(best, library, best.ignored)
    tied = wt is not None and fits_composition(best, wt)
    found = []
    for other in candidates[1:SPECTRUM_CANDIDATES]:
        composition = _resolution_composition(other, library, best.ignored)
        if reference and composition and _equivalent(reference, composition):
            found.append((other.name, other.score))
        elif tied and other.score * HYDROUS_MARGIN >= best.score and fits_composition(other, wt):
            if not _same_entry(best, other):
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
            renormalised_without(best_visible, "O"), renormalised_without(visible, "O")
        ):
            return [other] + [c for c in candidates if c is not other]
    return candidates


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
    intergrowths: bool = True,
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

    ``intergrowths``: whether two minerals may name the phase (:func:`_with_intergrowths`);
    False where the map contradicts the pairing the sum gives (:mod:`minerals.association`).
    """
    wt, err = quantification.wt, quantification.err_wt
    geometry = Geometry(quantification.mode, float(quantification.beam_kev),
                        float(quantification.takeoff_deg), foil_nm)  # fmt: skip
    candidates = rank_candidates(wt, err, library, geometry)
    if requantify is not None:
        candidates = with_unmeasured_carbon(
            candidates, quantification, library, requantify, geometry
        )
    if intergrowths:
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
    own = (wt, err, analysed_shells(quantification))
    return _identification(_prefer_anhydrous(candidates, library), wt, dict(err), min_score, own)


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
        # only what can pass the test below: C and every measured element among its own
        ranked = rank_candidates(fixed.wt, fixed.err_wt, library, geometry,
                                 within=lambda elements: "C" in elements and measured <= elements)  # fmt: skip
        for candidate in ranked:
            held = {el for el, v in candidate.composition.items() if v > 0} - {"C"}
            if candidate.composition.get("C", 0.0) < 1.0 or held != measured:
                continue  # the hypotheses: C-bearing phases of the measured elements only
            kept = best.get(candidate.name)
            if kept is None or candidate.score > kept.score:
                best[candidate.name] = candidate
    return sorted(best.values(), key=lambda c: -c.score)


def _with_neighbour_fit(mineral: Mineral, measured, err, host) -> tuple[float, float, float] | None:
    """``(score, share of the neighbour, chi2)`` of ``measured`` as ``a mineral + b host`` (see
    :func:`identify_with_neighbour`), None where the mineral is not comparable or the fitted
    share is not admissible."""
    from scipy.optimize import nnls

    comparable = _comparable(mineral.composition, set(measured))
    if not comparable:
        return None
    elements = sorted(set(measured) | set(comparable) | set(host))
    s = np.array([tolerance_sigma(measured.get(el, 0.0), measured.get(el, 0.0), err.get(el, 0.0))
                  for el in elements])  # fmt: skip
    design = (
        np.array([[comparable.get(el, 0.0), host.get(el, 0.0)] for el in elements]) / s[:, None]
    )
    target = np.array([measured.get(el, 0.0) for el in elements]) / s
    (a, b), _ = nnls(design, target)
    if a <= 0 or b <= 0 or b > MAX_NEIGHBOUR_SHARE * (a + b):
        return None
    mixed = {el: (a * comparable.get(el, 0.0) + b * host.get(el, 0.0)) / (a + b) for el in elements}
    chi2, n = _chi2(measured, err, mixed)
    return _score(chi2, n) * IGNORED_LIGHT_PENALTY, b / (a + b), chi2


def _brings_a_major(majors, measured, host, share: float) -> bool:
    """Whether ``share`` of the neighbour ``host`` brings one of the phase's ``majors`` (the
    phase less that share, renormalised, no longer holds it as a major element:
    ``own_elements.MAJOR_WT``) and leaves a single major element, which no proportion tests: any
    phase of two major elements is one of them plus a neighbour holding the other, at some
    share."""
    from napari_sigma.minerals.own_elements import MAJOR_WT

    left = {el: (v - share * host.get(el, 0.0)) / (1.0 - share) for el, v in measured.items()}
    if all(left[el] >= MAJOR_WT for el in majors):
        return False
    return sum(v >= MAJOR_WT for v in left.values()) < 2


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
    shells: Mapping[str, str] | None = None,
    majors_from_neighbour: bool = False,
) -> Identification | None:
    """Name a phase that fits nothing as a library mineral plus some of a touching phase.

    Small particles and thin grains are measured with their neighbour (mixed boundary pixels,
    particles embedded in a foil): every single mineral ``m`` is compared with the measurement
    as ``a m + b neighbour`` (non-negative, ``b <= MAX_NEIGHBOUR_SHARE (a + b)``, weighted by
    the comparison's tolerances), at the cost of ``IGNORED_LIGHT_PENALTY`` for the extra share.
    Returns the best such identification (its traces say how much of ``neighbour`` it holds),
    or None when none reaches ``min_score``; when the best mixture does not fit and the phase's
    composition less the neighbour's share rules its mineral out (`_identification`; ``shells``:
    those its elements were analysed with), an unknown. Its alternatives and the minerals it is not
    resolved from (`unresolved_candidates`) are the runners-up of the same comparison, each with
    its own share of ``neighbour``: a grain of magnetite or hematite measured with some of its
    neighbour is either plus that neighbour, and the two scores say how far the measurement
    tells them apart.

    A mixture is evidence only where the mineral's proportions are tested. One whose
    neighbour brings a major element of the phase
    (:func:`~napari_sigma.minerals.own_elements.detected_majors`: >= 10 wt %, detected; the
    phase less the neighbour's share no longer holds it as one) and leaves a single major
    element is fitted exactly whatever the phase: any phase of two major elements is one of
    them plus a neighbour holding the other. Such a mixture takes part only with
    ``majors_from_neighbour`` (a touching phase without a signal, whose stray X-rays reach every
    pixel, or a phase whose core lies on its boundary: `minerals.phases`' neighbour step);
    otherwise the phase stays unknown by its own elements: an Ag-Sn phase with 38 wt % Sn is not
    named silver with 38 % of the tin around it (the fifth set's solder: its Ag3Sn plates), nor
    a Sn-Cu phase tin or cassiterite with 32 % of its copper pad (its Cu6Sn5). A stannite core
    holding 31 % of its quartz matrix (Si and O major elements) is still stannite plus it: what
    is left, Cu, Fe, Sn and S, is tested by stannite's proportions. As in the ranking, a light
    element (C, N, O) of >= 1 wt % that the mineral holds and that was not measured costs
    ``UNMEASURED_LIGHT_PENALTY`` (tin, not cassiterite, for a phase without an O line).
    """
    from napari_sigma.minerals.own_elements import detected_majors

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
    majors = () if majors_from_neighbour else tuple(detected_majors(measured, err))
    unmeasured_light = LIGHT - seen
    scored: list[tuple[float, int, Mineral, float, float]] = []
    for index, mineral in enumerate(library.minerals.values()):
        fit = _with_neighbour_fit(mineral, measured, err, host)
        if fit is None or _brings_a_major(majors, measured, host, fit[1]):
            continue
        unmeasured = [el for el in unmeasured_light if mineral.composition.get(el, 0.0) >= 0.01]
        score = fit[0] * UNMEASURED_LIGHT_PENALTY ** len(unmeasured)
        scored.append((score, index, mineral, fit[1], fit[2]))
    # the best first; equal scores in the library's order (the first of them is the best)
    scored.sort(key=lambda item: (-item[0], item[1]))
    if not scored or scored[0][0] < min_score:
        return None
    candidates = []
    for score, _, mineral, _, chi2 in scored[:SPECTRUM_CANDIDATES]:
        comparable = _comparable(mineral.composition, seen)
        candidates.append(Candidate(mineral.name, mineral.name, score, chi2, comparable,
                                    mineral.group, mineral.density))  # fmt: skip
    # a mixture that does not fit is judged by the phase's own elements: its measurement
    # less the neighbour's fitted share
    share = scored[0][3]
    own = ({el: max(v - share * host.get(el, 0.0), 0.0) / (1.0 - share)
            for el, v in measured.items()}, {el: e / (1.0 - share) for el, e in err.items()},
           shells)  # fmt: skip
    found = _identification(candidates, wt, err, min_score, own)
    if not found.unknown:
        found.trace = [f"{round(100 * share)} % of {neighbour}", *found.trace]
        found.neighbour_share = float(share)
    return found
