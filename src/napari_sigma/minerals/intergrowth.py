"""Intergrowths: a phase that no single library entry explains, but two minerals do.

At the pixel size of an SEM map (a few µm) a fine-grained rock is often a mixture within each
pixel: a granophyre or a felsitic groundmass (quartz with alkali feldspar), a perthite with
quartz, a symplectite, sericitised feldspar. Its summed spectrum is then the mixture's, and the
nearest single mineral is wrong by the mixture's share (P45's main phase: Si/Al 5 at the atomic
level, a feldspar has 3 or less). Such a phase is named by the two minerals and their mass
shares, ``"alkali feldspar Or56 + quartz (61:39)"``, the series of a component with its
end-member fraction.

The rule (:func:`with_intergrowths`) fires only where the evidence is the cations' ratios:

- no single candidate (mineral or series) fits the measured composition within the
  comparison's tolerance (chi2 per compared element below 1, as in ``identify._equivalent``);
- the best pair is determined: it scores at least ``HYDROUS_MARGIN`` times any pair of other
  components (polymorphs, hydrous variants and a series' end members count as one component):
  when many pairs explain a composition about as well (an Al-rich biotite: biotite + pyrope,
  phlogopite + almandine, phengite + olivine...), the mixture is the composition's freedom, not
  evidence of two minerals;
- the two components are crystalline entries (not a glass, slag or polymer: those have no fixed
  composition, so a mixture with one is no evidence of two phases), each made of measured
  elements, each at least ``MIN_SHARE`` of the mass, not two end members of one series (the
  series is that mixture), and they differ in their heavier elements (those other than C, N,
  O): two oxides of one metal differ only in O, which standardless analysis does not give
  well enough to be evidence (hematite + goethite); not two of metals, alloys and metal
  carbides and nitrides (``METALLIC_GROUPS``: they dissolve each other's metals), not free
  silica with a silica-undersaturated mineral (``UNDERSATURATED``: they react), no Li, Be or B
  (``INVISIBLE_CATIONS``); every measured element beyond twice the tolerance held by one of them;
- a component without O takes part only when the measured O is what a surface film gives it
  (``identify._film_explains``): in a silicate, the low O of a standardless analysis (P45: 20 %
  low in every phase) is no evidence for a metal;
- no component holds a light element (C, N, O; >= 1 wt %) that was not analysed: its share
  would be fitted on its cations alone (cuprite next to a Cu alloy without O analysed is copper
  by another name; eskolaite + hematite "explained" espm's (Cr,Fe)23C6 analysed without O);
- it is compared as the single candidates are (the same variants leaving the measured C or O
  out, the same costs) and pays ``IGNORED_LIGHT_PENALTY`` for its extra share, as a mineral
  with some of its neighbour does (``identify.identify_with_neighbour``); the spectrum step
  then compares its simulated spectrum like any candidate's.

A rhyolitic composition within tolerance of the library's obsidian stays "obsidian": EDS cannot
tell a glass from a fine intergrowth of the same bulk composition.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from napari_sigma.minerals import identify as ident
from napari_sigma.minerals.library import MineralLibrary, load_library
from napari_sigma.minerals.series import unresolved_labels, unresolved_member_series

MIN_SHARE = 0.2
"""A component below this share of the mass is a trace or a neighbour's signal, not an
intergrowth partner: the cores of small grains and particles hold up to ~10 % of their host
(espm's MnS stringers 10 % of the ferrite around them, named by
``identify.identify_with_neighbour`` from the touching phase, which a map knows)."""
AMORPHOUS_GROUPS = frozenset({"glass", "slag", "polymer"})
"""Library groups without a fixed composition: never a component of an intergrowth."""
SILICA_GROUP = "silicate: silica"
UNDERSATURATED_GROUPS = frozenset({"silicate: feldspathoid"})
UNDERSATURATED = frozenset({
    "corundum", "periclase", "spinel", "forsterite", "monticellite", "larnite", "hatrurite",
    "melilite", "gehlenite", "akermanite",
})  # fmt: skip
"""Silica-undersaturated minerals, which react with free silica and do not coexist with it (the
silica saturation principle: S. J. Shand, *Eruptive Rocks* (1927); leucite + quartz is sanidine,
nepheline + quartz albite, forsterite + quartz enstatite, monticellite + quartz diopside,
corundum + quartz an Al2SiO5 polymorph, spinel + quartz cordierite): a pair of one of them (or
of a feldspathoid) with a silica mineral is never a component pair (leucite + opal has the
composition of orthoclase + quartz)."""
METALLIC_GROUPS = ("alloy", "native element")
INTERSTITIAL_GROUPS = ("carbide", "nitride")
"""Metals, alloys and the carbides and nitrides of metals (``METALLIC_GROUPS``, and
``INTERSTITIAL_GROUPS`` without Si, B or Al: not the covalent SiC, Si3N4, BN, AlN) dissolve each
other's metals: a composition between two of them is one phase (copper with 4 wt % Al is an
alpha aluminium bronze, not aluminium bronze + copper; espm's (Cr,Fe)23C6 is not chromium +
cohenite; an alpha + beta brass or a pearlite cannot be told from one phase by composition
either), so a pair of two of them is never an intergrowth; a metal with a sulfide or an oxide can
be."""
COVALENT = frozenset({"Si", "B", "Al"})
INVISIBLE_CATIONS = frozenset({"Li", "Be", "B"})
"""A component holding one of these is left out: a cation EDS does not see is a free parameter of
the mixture (beryl Be3Al2Si6O18 "explains" any Al-Si ratio next to another mineral); H is seen as
the O of its OH or water, so hydrous minerals take part."""


@dataclass(frozen=True)
class _Component:
    name: str
    members: tuple[str, ...]
    series: object | None = None


def _heavy(composition: Mapping[str, float]) -> frozenset[str]:
    return frozenset(ident._visible_elements(composition) - ident.LIGHT)


def _components(
    library: MineralLibrary, heavy_measured: set[str], film, ignored: tuple[str, ...]
) -> list[_Component]:
    """Library entries made of measured elements (light ones measured or left out)."""
    found = []
    for mineral in library.minerals.values():
        if mineral.group in AMORPHOUS_GROUPS or INVISIBLE_CATIONS & set(mineral.composition):
            continue
        heavy = _heavy(mineral.composition)
        if not heavy or not heavy <= heavy_measured:
            continue
        if mineral.composition.get("O", 0.0) <= 0 and not ident._film_explains(
            film, mineral.composition, mineral.density
        ):
            continue
        if "C" in ignored and mineral.composition.get("C", 0.0) >= 0.01:
            continue
        found.append(_Component(mineral.name, (mineral.name,)))
    for series in library.series:
        heavy = frozenset().union(*(_heavy(library[m].composition) for m in series.members))
        invisible = any(INVISIBLE_CATIONS & set(library[m].composition) for m in series.members)
        if heavy <= heavy_measured and not invisible:
            found.append(_Component(series.name, tuple(series.members), series))
    return found


def _fits_within_tolerance(candidate: ident.Candidate, wt: Mapping[str, float]) -> bool:
    compared = {
        el for el, v in wt.items() if el not in ident.INVISIBLE and el not in candidate.ignored
    }
    n = max(len(compared | set(candidate.composition)), 1)
    return candidate.chi2 / n < 1.0


def _pair_candidate(a, b, shares, library, measured_wt, err, measured) -> ident.Candidate:
    """An intergrowth of components ``a`` and ``b`` with the end members' mass ``shares``."""
    columns = [ident._comparable(library[m].composition, measured) for m in a.members + b.members]
    elements = sorted(set(measured_wt).union(*columns))
    mixed = {
        el: float(sum(y * col.get(el, 0.0) for y, col in zip(shares, columns, strict=True)))
        for el in elements
    }
    chi2, n = ident._chi2(measured_wt, err, mixed)
    parts = [
        _described(a, shares[: len(a.members)], library, measured),
        _described(b, shares[len(a.members) :], library, measured),
    ]
    parts.sort(key=lambda part: -part["share"])
    ratio = ":".join(str(round(100 * part["share"])) for part in parts)
    whole: dict[str, float] = {}
    for part in parts:
        for el, c in part["whole"].items():
            whole[el] = whole.get(el, 0.0) + part["share"] * c
    series_part = next((part for part in parts if part["series"] is not None), None)
    return ident.Candidate(
        name=f"{parts[0]['name']} + {parts[1]['name']} ({ratio})",
        mineral=parts[0]["mineral"],
        score=ident._score(chi2, n) * ident.IGNORED_LIGHT_PENALTY,
        chi2=chi2,
        composition=mixed,
        group="intergrowth",
        density=float(1.0 / sum(part["share"] / part["density"] for part in parts)),
        series=series_part["series"] if series_part else None,
        fractions=dict(series_part["fractions"]) if series_part else {},
        components=tuple((part["name"], float(part["share"])) for part in parts),
        whole=whole,
    )


def _pair_fits(a, b, columns, y, err, in_measured):
    """``(score, shares)`` of the best mixture of two components' end members (NNLS weighted by
    the comparison's tolerances, shares summing to 1), or None when a component has no share.
    ``columns``: member -> comparable wt % over the variant's elements."""
    from scipy.optimize import nnls

    design = np.stack([columns[m] for m in a.members + b.members], axis=1)
    sigma = np.sqrt(err**2 + (ident.RELATIVE_TOLERANCE * y) ** 2 + ident.ABSOLUTE_TOLERANCE_WT**2)
    penalty = 1e3
    shares, _ = nnls(
        np.vstack([design / sigma[:, None], penalty * np.ones((1, design.shape[1]))]),
        np.concatenate([y / sigma, [penalty]]),
    )
    shares = shares / max(shares.sum(), 1e-12)
    share_a = float(shares[: len(a.members)].sum())
    if min(share_a, 1.0 - share_a) <= 0.0:
        return None
    mixed = design @ shares
    used = in_measured | (design != 0).any(axis=1)
    high = np.maximum(y, mixed)
    s = np.sqrt(err**2 + (ident.RELATIVE_TOLERANCE * high) ** 2 + ident.ABSOLUTE_TOLERANCE_WT**2)
    chi2 = float((((y - mixed) / s) ** 2)[used].sum())
    return ident._score(chi2, max(int(used.sum()), 1)) * ident.IGNORED_LIGHT_PENALTY, shares


def _described(component: _Component, shares: np.ndarray, library, analysed=()) -> dict:
    """Name, share, dominant mineral, density and whole composition of one component (a
    series' end members that the ``analysed`` elements do not tell apart are not named)."""
    share = float(shares.sum())
    if component.series is None:
        mineral = library[component.name]
        shown = unresolved_member_series(library, mineral.name, analysed) or mineral.name
        return {"name": shown, "share": share, "mineral": mineral.name,
                "density": mineral.density, "whole": dict(mineral.composition),
                "series": None, "fractions": {}}  # fmt: skip
    series = component.series
    fractions = ident.series_fractions(series, library, shares / max(share, 1e-12))
    unresolved = unresolved_labels(series, library, analysed)
    name, member = ident.series_name(series, library, fractions, unresolved)
    whole = ident._series_composition(series, library, fractions)
    density = sum(fractions[label] * library[m].density
                  for m, label in zip(series.members, series.labels, strict=True))  # fmt: skip
    return {"name": name, "share": share, "mineral": member.name, "density": float(density),
            "whole": whole, "series": series.name, "fractions": fractions}  # fmt: skip


BUILT = 60
"""Pairs (the best scored) made into full candidates (names, compositions) per composition."""


def intergrowth_candidates(
    wt: Mapping[str, float],
    err_wt: Mapping[str, float] | None = None,
    library: MineralLibrary | None = None,
    geometry: ident.Geometry | None = None,
) -> list[ident.Candidate]:
    """The admissible pairs of library entries (see the module docstring) that explain every
    measured element beyond twice the comparison's tolerance (an element of the measurement
    that neither component holds counts ``measured / s`` sigma), best first (each pair in its
    best variant, polymorphs once). Pairs with a component below ``MIN_SHARE`` are included
    (a mineral with some of another is a rival explanation); only the others are named."""
    library = library or load_library()
    err_wt = dict(err_wt or {})
    total = sum(v for v in wt.values() if v > 0)
    if total <= 0:
        return []
    film = (wt, geometry or ident.SEM_20KV)
    heavy_measured = {
        el for el, v in wt.items()
        if 100.0 * v / total >= ident.TRACE_MIN_WT and el not in ident.INVISIBLE | ident.LIGHT
    }  # fmt: skip
    fits = []
    for ignored in ident.comparison_variants(wt):
        fits += _variant_fits(wt, err_wt, ignored, library, heavy_measured, film)
    fits.sort(key=lambda item: -item[0])
    return _distinct(_best_candidates(fits[:BUILT], library, film))


def _variant_fits(wt, err_wt, ignored, library, heavy_measured, film) -> list[tuple]:
    """The fitted pairs of one comparison variant (``ignored``: the elements it leaves out),
    ``(score, cost, ignored, a, b, shares, measured_wt, err)`` each, in pair order."""
    kept = {el: max(v, 0.0) for el, v in wt.items()
            if el not in ident.INVISIBLE and el not in ignored}  # fmt: skip
    kept_total = sum(kept.values())
    if kept_total <= 0:
        return []
    measured_wt = {el: 100.0 * v / kept_total for el, v in kept.items()}
    err = {el: e * 100.0 / kept_total for el, e in err_wt.items() if el in kept}
    measured = set(measured_wt)
    components = _components(library, heavy_measured, film, ignored)
    comparable = {
        m: ident._comparable(library[m].composition, measured)
        for c in components
        for m in c.members
    }
    elements = sorted(measured.union(*comparable.values()))
    columns = {m: np.array([col.get(el, 0.0) for el in elements]) for m, col in comparable.items()}
    y = np.array([measured_wt.get(el, 0.0) for el in elements])
    e = np.array([err.get(el, 0.0) for el in elements])
    in_measured = np.array([el in measured for el in elements])
    sigma = np.sqrt(e**2 + (ident.RELATIVE_TOLERANCE * y) ** 2 + ident.ABSOLUTE_TOLERANCE_WT**2)
    required = {el for el, v, s in zip(elements, y, sigma, strict=True)
                if el not in ident.LIGHT and v / s >= 2.0}  # fmt: skip
    heavy = {c.name: _heavy_of(c, library) for c in components}
    unmeasured = {c.name: _light_of(c, library) - measured - set(ignored) for c in components}
    penalty = ident.IGNORED_LIGHT_PENALTY ** len(ignored)
    fits = []
    for a, b in itertools.combinations(components, 2):
        if not _admissible_pair(a, b, heavy, required, unmeasured, library):
            continue
        fit = _pair_fits(a, b, columns, y, e, in_measured)
        if fit is not None:
            cost = penalty
            fits.append((fit[0] * cost, cost, ignored, a, b, fit[1], measured_wt, err))
    return fits


def _admissible_pair(a, b, heavy, required, unmeasured, library) -> bool:
    """Whether a pair of components is fitted at all (see the module docstring)."""
    if heavy[a.name] == heavy[b.name] or not required <= heavy[a.name] | heavy[b.name]:
        return False  # O (or C) alone tells them apart, or a major element unexplained
    if _same_series(a, b, library) or _incompatible(a, b, library):
        return False
    if _metallic(a, library) and _metallic(b, library):
        return False
    if unmeasured[a.name] or unmeasured[b.name]:
        return False  # a light element not analysed: the share is fitted without its anion
    return True


def _best_candidates(fits, library, film) -> list[ident.Candidate]:
    """The candidates of the best ``fits`` (names, compositions), each name once in its best
    variant, best first; a variant without O only where a surface film explains the O."""
    best: dict[str, ident.Candidate] = {}
    for _fit_score, cost, ignored, a, b, shares, measured_wt, err in fits:
        candidate = _pair_candidate(a, b, shares, library, measured_wt, err, set(measured_wt))
        candidate.score *= cost
        candidate.ignored = ignored
        if "O" in ignored and not ident._film_explains(film, candidate.whole, candidate.density):
            continue
        kept_candidate = best.get(candidate.name)
        if kept_candidate is None or candidate.score > kept_candidate.score:
            best[candidate.name] = candidate
    return sorted(best.values(), key=lambda c: -c.score)


def _distinct(ranked: list[ident.Candidate]) -> list[ident.Candidate]:
    """``ranked`` with polymorphs (quartz, cristobalite) once: the first in table order."""
    seen, distinct = set(), []
    for candidate in ranked:
        key = (
            candidate.ignored,
            tuple(sorted((el, round(v, 2)) for el, v in candidate.composition.items())),
        )
        if key not in seen:
            seen.add(key)
            distinct.append(candidate)
    return distinct


def _metallic(component: _Component, library) -> bool:
    if component.series is not None:
        return False
    mineral = library[component.name]
    if mineral.group.startswith(METALLIC_GROUPS):
        return True
    return mineral.group.startswith(INTERSTITIAL_GROUPS) and not (
        COVALENT & _heavy(mineral.composition)
    )


def _incompatible(a: _Component, b: _Component, library) -> bool:
    """A silica mineral with a silica-undersaturated one (``UNDERSATURATED``)."""

    def silica(c):
        return c.series is None and library[c.name].group == SILICA_GROUP

    def undersaturated(c):
        return c.series is None and (
            c.name in UNDERSATURATED or library[c.name].group in UNDERSATURATED_GROUPS
        )

    return (silica(a) and undersaturated(b)) or (silica(b) and undersaturated(a))


def _light_of(component: _Component, library) -> set[str]:
    """The light elements (C, N, O) that a component's end members hold at >= 1 wt %."""
    return {
        el for m in component.members for el, c in library[m].composition.items()
        if el in ident.LIGHT and c >= 0.01
    }  # fmt: skip


def _heavy_of(component: _Component, library) -> frozenset[str]:
    return frozenset().union(*(_heavy(library[m].composition) for m in component.members))


def _same_series(a: _Component, b: _Component, library) -> bool:
    """Both are end members of one series, or one is a series and the other its end member."""
    names = {a.name, b.name}
    for series in library.series:
        pool = set(series.members) | {series.name}
        if names <= pool:
            return True
    return False


def _kinds(name: str, library) -> frozenset[str]:
    """What a component is, for telling pairs apart: its name, the series it is an end member
    of and the series whose range it names (andesine: plagioclase)."""
    kinds = {name, ident.SERIES_RANGES.get(name, name)}
    kinds.update(series.name for series in library.series if name in series.members)
    return frozenset(kinds)


def _same_pair(a: ident.Candidate, b: ident.Candidate, library) -> bool:
    """Whether two intergrowths have the same two components (up to a series' fractions,
    polymorphs and invisible constituents: quartz and opal, orthoclase and microcline)."""
    ka = [_base_name(name) for name, _ in a.components]
    kb = [_base_name(name) for name, _ in b.components]

    def alike(x, y):
        return bool(_kinds(x, library) & _kinds(y, library)) or _same_heavy(x, y, library)

    return (alike(ka[0], kb[0]) and alike(ka[1], kb[1])) or (
        alike(ka[0], kb[1]) and alike(ka[1], kb[0])
    )


def _same_heavy(x: str, y: str, library) -> bool:
    """Two library minerals whose compositions without light and invisible elements agree within
    the comparison's tolerance (polymorphs, hydrous variants)."""
    if x not in library or y not in library:
        return False
    a = ident._comparable(library[x].composition, set())
    b = ident._comparable(library[y].composition, set())
    return ident._equivalent(a, b)


def is_component(name: str, component: str, library: MineralLibrary | None = None) -> bool:
    """Whether a phase named ``name`` (``"P1 quartz"``'s ``"quartz"``, ``"alkali feldspar Or94"``)
    is the intergrowth component ``component`` (up to polymorphs, hydrous variants and a
    series' fractions)."""
    library = library or load_library()
    x, y = _base_name(name), _base_name(component)
    return bool(_kinds(x, library) & _kinds(y, library)) or _same_heavy(x, y, library)


def _base_name(name: str) -> str:
    """A component's library name: ``"alkali feldspar Or54"`` -> ``"alkali feldspar"``."""
    head, _, tail = name.rpartition(" ")
    return head if head and any(ch.isdigit() for ch in tail) else name


def with_intergrowths(
    candidates: Sequence[ident.Candidate],
    wt: Mapping[str, float],
    err_wt: Mapping[str, float] | None = None,
    library: MineralLibrary | None = None,
    geometry: ident.Geometry | None = None,
) -> list[ident.Candidate]:
    """``candidates`` with the best intergrowth (:func:`intergrowth_candidates`) added, best
    first, when no single candidate fits ``wt`` within the comparison's tolerance and the pair
    is determined: it scores at least ``HYDROUS_MARGIN`` times any pair of other components
    (when many pairs explain a composition about as well, the mixture is the composition's
    freedom, not evidence of those two minerals); else ``candidates`` unchanged."""
    library = library or load_library()
    candidates = list(candidates)
    if not candidates or any(_fits_within_tolerance(c, wt) for c in candidates):
        return candidates
    mixtures = intergrowth_candidates(wt, err_wt, library, geometry)
    if not mixtures:
        return candidates
    best = next((m for m in mixtures if min(s for _, s in m.components) >= MIN_SHARE), None)
    if best is None:
        return candidates
    # rivals of any share: zircon with a tenth of its quartz host is a rival of baddeleyite +
    # quartz (ZrSiO4 is ZrO2 + SiO2), which would otherwise fit zircon's Zr/Si error best
    rival = next((m for m in mixtures if m is not best and not _same_pair(best, m, library)), None)
    if rival is not None and best.score < ident.HYDROUS_MARGIN * rival.score:
        return candidates
    return sorted([*candidates, best], key=lambda c: -c.score)
