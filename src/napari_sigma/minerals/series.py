"""Solid-solution series: the best non-negative mixture of a series' end members, its
fractions, its name (``"olivine Fo88"``) and its candidate (with the C scale), and a series
preferred to a library row naming a range of it (:data:`SERIES_RANGES`). See
:mod:`napari_sigma.minerals.identify`."""

from __future__ import annotations

import itertools
from collections.abc import Mapping

import numpy as np

from napari_sigma.minerals.library import Mineral, MineralLibrary, Series
from napari_sigma.minerals.scores import (
    INVISIBLE,
    LIGHT,
    Candidate,
    _carbon_scales,
    _chi2,
    _comparable,
    _equivalent,
    _rescaled,
    _score,
    tolerance_sigma,
)

PURE_MEMBER = 0.95

SERIES_PENALTY = 0.98
"""A series has fitted fractions: a named mineral of the same composition wins a tie."""


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
    s = np.array(
        [tolerance_sigma(wt.get(el, 0.0), wt.get(el, 0.0), err.get(el, 0.0)) for el in elements]
    )
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
    series: Series,
    library: MineralLibrary,
    by_label: Mapping[str, float],
    unresolved: frozenset[str] = frozenset(),
) -> tuple[str, Mineral]:
    """``"olivine Fo88"`` (or the end member's name when it is >= ``PURE_MEMBER``) and the
    dominant end member, for end-member mole fractions by label. ``unresolved``: the labels of
    end members the analysis does not tell apart (:func:`unresolved_labels`): their fractions
    are not named, nor is a dominant one of them (an apatite whose F was not analysed is
    "apatite", not "fluorapatite" nor "apatite Fap60Hap40")."""
    fractions = [by_label.get(label, 0.0) for label in series.labels]
    dominant = int(np.argmax(fractions))
    member = library[series.members[dominant]]
    if fractions[dominant] >= PURE_MEMBER and series.labels[dominant] not in unresolved:
        return member.name, member
    named = [
        (label, f)
        for label, f, is_named in zip(series.labels, fractions, series.named, strict=True)
        if is_named and f >= 0.05 and label not in unresolved
    ]
    named.sort(key=lambda item: -item[1])
    fractions_named = "".join(f"{label}{round(100 * f)}" for label, f in named)
    return f"{series.name} {fractions_named}".rstrip(), member


def unresolved_labels(series: Series, library: MineralLibrary, analysed) -> frozenset[str]:
    """The labels of ``series``' end members that an analysis of the elements ``analysed`` does
    not tell from another end member: their compositions over the analysed elements other than
    C, N and O (the least reliable standardless results; EDS does not see H, Li, Be, B),
    renormalised, agree within the comparison's tolerance. Fluorapatite Ca5(PO4)3F,
    hydroxylapatite Ca5(PO4)3(OH) and chlorapatite Ca5(PO4)3Cl differ in F and Cl only: without
    F and Cl analysed, all three are one composition (Ca/P); with F analysed, fluorapatite is
    resolved and the other two are not."""
    return _unresolved_labels(series, library, frozenset(analysed) - LIGHT - INVISIBLE)


def _unresolved_labels(series, library, heavy: frozenset[str]) -> frozenset[str]:
    key = (series.name, tuple(tuple(library[m].composition.items()) for m in series.members), heavy)
    found = _UNRESOLVED.get(key)
    if found is None:
        found = _UNRESOLVED[key] = _unresolved_of(series, library, heavy)
    return found


def _unresolved_of(series, library, heavy) -> frozenset[str]:
    restricted = []
    for member in series.members:
        kept = {el: c for el, c in library[member].composition.items() if el in heavy and c > 0}
        total = sum(kept.values())
        restricted.append({el: 100.0 * c / total for el, c in kept.items()} if total else {})
    found = set()
    for i, j in itertools.combinations(range(len(series.members)), 2):
        if _equivalent(restricted[i], restricted[j]):
            found.update((series.labels[i], series.labels[j]))
    return frozenset(found)


_UNRESOLVED: dict[tuple, frozenset[str]] = {}


def unresolved_member_series(library: MineralLibrary, mineral: str, analysed) -> str | None:
    """The name of the series of which ``mineral`` is an end member that the ``analysed``
    elements do not tell from another of its end members (:func:`unresolved_labels`), else
    None: the name such a library row is shown under ("apatite" for hydroxylapatite analysed
    without F and Cl)."""
    for series in library.series:
        if mineral in series.members:
            label = series.labels[series.members.index(mineral)]
            if label in unresolved_labels(series, library, analysed):
                return series.name
    return None


def _series_candidate(series, library, wt, err, measured) -> Candidate:
    shares, mixed = _mixture(series, library, wt, err, measured)
    by_label = series_fractions(series, library, shares)
    fractions = np.array([by_label[label] for label in series.labels])
    chi2, n = _chi2(wt, err, mixed)
    name, member = series_name(series, library, by_label, unresolved_labels(series, library, wt))
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
