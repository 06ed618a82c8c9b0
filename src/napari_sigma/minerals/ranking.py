"""The ranking of the library against a measured composition: every mineral and series
compared with and without the light elements and possible contaminants
(:func:`rank_candidates`, :func:`comparison_variants`, :func:`contaminant_sets`). See
:mod:`napari_sigma.minerals.identify`."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from napari_sigma.minerals.films import SEM_20KV, Geometry, _film_explains
from napari_sigma.minerals.library import MineralLibrary, load_library
from napari_sigma.minerals.scores import (
    IGNORED_LIGHT_PENALTY,
    INVISIBLE,
    LIGHT,
    Candidate,
    MeasuredScales,
    _library_comparable,
    _single,
    _visible_elements,
)
from napari_sigma.minerals.series import (
    _prefer_series,
    _series_composition,
    _series_with_carbon_scale,
    unresolved_member_series,
)

TRACE_MIN_WT = 0.5

UNMEASURED_LIGHT_PENALTY = 0.8
"""Per light element (C, N, O) of >= 1 wt % in a mineral but not measured: the simpler
explanation (e.g. copper rather than cuprite when O was not analysed) wins a tie."""

COATING_MAX_WT = 50.0
"""C is left out of a comparison only when it is less than this share (wt %) of the measurement:
a coating or support contributes C to a phase, but cannot be most of it (a phase that is mostly
C is carbonaceous: "carbon", not "copper" with C ignored)."""

CONTAMINANT_MAX_AT = 2.0
"""When no mineral fits (best score below ``min_score``), measured elements that a mineral lacks,
together at most this share of the atoms (at %), may be left out of its comparison (at the cost
of ``IGNORED_LIGHT_PENALTY`` each) and listed as traces: a TEM grid (Cu), a coating (Au) or
signal from a neighbour at this level does not make a phase unknown."""


def rank_candidates(
    wt: Mapping[str, float],
    err_wt: Mapping[str, float] | None = None,
    library: MineralLibrary | None = None,
    geometry: Geometry | None = None,
    within: Callable[[set[str]], bool] | None = None,
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
    within : callable, optional
        Only the minerals whose elements (those with mass) it accepts, and the series of
        whose members' elements together it accepts, are ranked (the others are not
        compared: a caller that keeps only candidates of some elements asks for those). Each
        ranked one gets the candidate it gets in the whole ranking.
    """
    library = library or load_library()
    if sum(v for v in wt.values() if v > 0) <= 0:
        return []
    film = (wt, geometry or SEM_20KV)
    best: dict[str, Candidate] = {}
    for ignored in comparison_variants(wt):
        for candidate in _candidates(wt, err_wt or {}, library, ignored, film, within):
            kept = best.get(candidate.name)
            if kept is None or candidate.score > kept.score:
                best[candidate.name] = candidate
    ranked = _named_by_series(sorted(best.values(), key=lambda c: -c.score), library, wt)
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


def _candidates(
    wt: Mapping[str, float],
    err_wt: Mapping[str, float],
    library: MineralLibrary,
    ignored: tuple[str, ...],
    film: tuple[Mapping[str, float], Geometry] | None = None,
    within: Callable[[set[str]], bool] | None = None,
) -> list[Candidate]:
    """Every mineral and series compared without the ``ignored`` light elements (``within``:
    those of `rank_candidates`'s, when given). ``film``: the
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
    prepared = MeasuredScales(measured_wt, err)  # the measured side of every comparison, once
    for mineral in library.minerals.values():
        if within is not None and not within(_elements_of(mineral.composition)):
            continue
        comparable = _library_comparable(mineral.composition, measured)
        if not comparable:
            continue
        if single_element and len(_visible_elements(mineral.composition)) > 1:
            continue  # one element left: it can confirm a pure element only (see above)
        if "O" in ignored and not _film_explains(film, mineral.composition, mineral.density):
            continue
        if "C" in ignored and mineral.composition.get("C", 0.0) >= 0.01:
            continue  # its C is compared within a factor (CARBON_SCALE_SIGMA), not left out
        chi2, n = prepared.best_chi2(comparable)  # _carbon_scaled(measured_wt, err, comparable)
        candidate = _single(mineral, chi2, n, comparable)
        unmeasured = [el for el in unmeasured_light if mineral.composition.get(el, 0.0) >= 0.01]
        candidate.score *= UNMEASURED_LIGHT_PENALTY ** len(unmeasured) * penalty
        candidate.ignored = ignored
        candidates.append(candidate)
    if single_element:
        return candidates
    for series in library.series:
        if within is not None and not within(
            set().union(*(_elements_of(library[m].composition) for m in series.members))
        ):
            continue
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


def _named_by_series(
    candidates: list[Candidate], library: MineralLibrary, analysed
) -> list[Candidate]:
    """``candidates`` with each library row that is an end member of a series which the analysed
    elements do not tell from another of its end members named by the series
    (:func:`~napari_sigma.minerals.series.unresolved_member_series`): hydroxylapatite
    Ca5(PO4)3(OH) of an analysis without F and Cl is "apatite" (EDS does not see its OH; it is
    "hydroxylapatite" only in that F and Cl were not looked for). The candidate keeps its
    mineral, score and composition."""
    for candidate in candidates:
        if candidate.series is None and not candidate.components:
            series = unresolved_member_series(library, candidate.mineral, analysed)
            if series is not None:
                candidate.name = series
    return candidates


def _elements_of(composition: Mapping[str, float]) -> set[str]:
    """The elements of a library composition that have mass."""
    return {el for el, c in composition.items() if c > 0}


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
    ranked = _named_by_series(sorted(best.values(), key=lambda c: -c.score), library, wt)
    seen, distinct = set(), []
    for candidate in ranked:
        key = candidate.series or candidate.name
        if key not in seen:
            seen.add(key)
            distinct.append(candidate)
    return distinct
