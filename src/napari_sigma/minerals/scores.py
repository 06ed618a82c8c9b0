"""The comparison of a measured composition with a library one: what EDS compares, the
tolerances, the misfit (chi2) and score, the C scale (:data:`CARBON_SCALE_SIGMA`), and the
library match (:class:`Candidate`). The rules are described in
:mod:`napari_sigma.minerals.identify`."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from napari_sigma.minerals.library import Mineral

INVISIBLE = frozenset({"H", "He", "Li", "Be", "B"})

LIGHT = frozenset({"C", "N", "O"})

RELATIVE_TOLERANCE = 0.08

ABSOLUTE_TOLERANCE_WT = 0.7

IGNORED_LIGHT_PENALTY = 0.85
"""Per measured light element (C, O) left out of a comparison: standardless C and O are the
least accurate results (coatings, soft-line absorption), so a mineral may also be matched on
the other elements, at this cost."""

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
    absent_chi2: float = 0.0
    """The misfit of the lines its unanalysed light elements must show and the phase's spectrum
    does not (`minerals.spectral.absent_line_chi2`), for the test of `identify.fits_composition`."""
    absent_tested: int = 0
    """How many such lines were tested (each one more degree of freedom of that test)."""


def _comparable(composition: Mapping[str, float], measured: set[str]) -> dict[str, float]:
    """A library composition (fractions) restricted to what EDS compares, as wt % summing to 100."""
    kept = {
        el: c
        for el, c in composition.items()
        if el not in INVISIBLE and (el in measured or el not in LIGHT)
    }
    total = sum(kept.values())
    return {el: 100.0 * c / total for el, c in kept.items()} if total > 0 else {}


def _library_comparable(composition: Mapping[str, float], measured: set[str]) -> dict[str, float]:
    """`_comparable` of a library mineral's composition (Python floats), made once per
    composition and set of measured light elements (all it depends on: the ranking compares
    every library entry again for every phase and variant); a new dict each call."""
    key = (tuple(composition.items()), tuple(el in measured for el in _LIGHT_ORDER))
    found = _COMPARABLE.get(key)
    if found is None:
        if len(_COMPARABLE) >= _COMPARABLE_MAX:
            _COMPARABLE.clear()
        found = _COMPARABLE[key] = _comparable(composition, measured)
    return dict(found)


_LIGHT_ORDER = tuple(sorted(LIGHT))
_COMPARABLE: dict[tuple, dict[str, float]] = {}
_COMPARABLE_MAX = 65536


def tolerance_sigma(measured: float, library: float, error: float) -> float:
    """The comparison's 1-sigma tolerance (wt %) of one element measured at ``measured`` with
    the counting error ``error`` against a library share ``library``: the counting error, 8 %
    relative (``RELATIVE_TOLERANCE``) of the larger of the two and 0.7 wt %
    (``ABSOLUTE_TOLERANCE_WT``) in quadrature."""
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
    for el in elements:  # tolerance_sigma inlined (the same arithmetic): the ranking's inner loop
        m, lib = wt.get(el, 0.0), library.get(el, 0.0)
        high = lib if lib > m else m
        error = err.get(el, 0.0)
        sigma = math.sqrt(error**2 + (RELATIVE_TOLERANCE * high) ** 2 + floor)
        chi2 += ((m - lib) / sigma) ** 2
    return chi2, max(len(elements), 1)


def _score(chi2: float, n: int) -> float:
    return float(np.exp(-0.5 * chi2 / n))


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
    return MeasuredScales(wt, err).best_chi2(library)


class _Measured:
    """A measured composition (wt %) and its errors, prepared for `_chi2` against many library
    compositions: each measured element in order with its value, its squared error and its
    term when the library composition lacks it."""

    __slots__ = ("err", "terms", "wt")

    def __init__(self, wt: Mapping[str, float], err: Mapping[str, float]) -> None:
        self.wt, self.err = wt, err
        floor = ABSOLUTE_TOLERANCE_WT**2
        terms = []
        for el, m in wt.items():
            e2 = err.get(el, 0.0) ** 2
            lib = 0.0  # the term of an element the library composition lacks, as chi2 makes it
            high = lib if lib > m else m
            sigma = math.sqrt(e2 + (RELATIVE_TOLERANCE * high) ** 2 + floor)
            terms.append((el, m, e2, ((m - lib) / sigma) ** 2))
        self.terms = tuple(terms)

    def chi2(self, library: Mapping[str, float]) -> tuple[float, int]:
        """``_chi2(wt, err, library)``, bit for bit: the same elements in the same order (the
        measured ones, then the library's others) and the same arithmetic, with the measured
        side's lookups, squared errors and the terms of the elements ``library`` lacks made
        once."""
        chi2 = 0.0
        floor = ABSOLUTE_TOLERANCE_WT**2
        get = library.get
        for el, m, e2, lacking in self.terms:
            lib = get(el)
            if lib is None:
                chi2 += lacking
                continue
            high = lib if lib > m else m
            sigma = math.sqrt(e2 + (RELATIVE_TOLERANCE * high) ** 2 + floor)
            chi2 += ((m - lib) / sigma) ** 2
        n = len(self.terms)
        wt, err = self.wt, self.err
        for el, lib in library.items():
            if el in wt:
                continue
            n += 1
            m = 0.0
            high = lib if lib > m else m
            error = err.get(el, 0.0)
            sigma = math.sqrt(error**2 + (RELATIVE_TOLERANCE * high) ** 2 + floor)
            chi2 += ((m - lib) / sigma) ** 2
        return chi2, max(n, 1)


class MeasuredScales:
    """A measured composition prepared for `_carbon_scaled` against many library compositions:
    the composition as measured and, made once when first needed, at each C scale of
    `_carbon_scales` (its `_rescaled` values and errors, and the scale's prior)."""

    __slots__ = ("_scaled", "err", "plain", "wt")

    def __init__(self, wt: Mapping[str, float], err: Mapping[str, float]) -> None:
        self.wt, self.err = wt, err
        self.plain = _Measured(wt, err)
        self._scaled: list[tuple[float, _Measured]] | None = None

    def scales(self, holds_carbon: bool) -> list[tuple[float, _Measured]]:
        """``(prior, measured)`` per C scale, in `_carbon_scales`' order."""
        if not holds_carbon:
            return [(0.0, self.plain)]
        if self._scaled is None:
            wt, err = self.wt, self.err
            self._scaled = [
                (prior, self.plain if scaled is None else _Measured(*_rescaled(wt, err, scaled)))
                for _f, scaled, prior in _carbon_scales(wt, True)
            ]
        return self._scaled

    def best_chi2(self, library: Mapping[str, float]) -> tuple[float, int]:
        """`_carbon_scaled` of this composition against ``library`` (the same values)."""
        best = None
        for prior, measured in self.scales(library.get("C", 0.0) > 0 and len(self.wt) > 1):
            chi2, n = measured.chi2(library)
            if best is None or chi2 + prior < best[0]:
                best = (chi2 + prior, n)
        return best


def _visible_elements(composition: Mapping[str, float]) -> set[str]:
    return {el for el, c in composition.items() if c > 0 and el not in INVISIBLE}


def _single(mineral: Mineral, chi2: float, n: int, comparable: dict[str, float]) -> Candidate:
    return Candidate(
        mineral.name, mineral.name, _score(chi2, n), chi2, comparable, mineral.group,
        mineral.density,
    )  # fmt: skip


def renormalised_without(composition: Mapping[str, float], element: str) -> dict[str, float]:
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
