"""A stated carbon coat: the C it adds to a phase, and what that C cannot evidence.

An SEM section of an insulator is made conductive with an evaporated carbon coat (10-25 nm);
a TEM foil or a grain mount sits on a carbon support film and gathers contamination. The coat's
C K is measured with the phase's, so a few at % of C in a C-free mineral (an apatite in a
limestone) can make a minor-C mineral (carbonate-fluorapatite, 1.2 wt % C) fit better. Whether
the sample carries a coat is known to the user, not to the spectrum (a coat on tungsten carbide
gives as much C K as the carbide's own C: the C K of W leaves only the top ~16 nm at 20 kV), so
the rule applies only when the user states it (``QuantSettings.coating``, ``napari-sigma run
--coating C``): then a measured C of at most what the coat gives the phase
(:func:`film_carbon_at`) is no evidence for a C-bearing mineral, and a C-free mineral that agrees
with the best C-bearing match on every other element is named instead
(:func:`prefer_without_coating_carbon`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from napari_sigma.minerals.identify import (
    INVISIBLE,
    SEM_20KV,
    Candidate,
    Geometry,
    _comparable,
    _equivalent,
    _series_composition,
    surface_layer_at,
)
from napari_sigma.minerals.library import MineralLibrary, load_library
from napari_sigma.minerals.scores import renormalised_without

COAT_NM = {"bulk": 20.0, "thin": 5.0}
"""Thickness (nm) of the stated carbon coat: an evaporated conductive coat of an SEM section
(10-25 nm; 20 nm on the surface the beam enters); a thin foil's support film and contamination,
5 nm on each of its two surfaces."""
COAT_CARBON_MOL_CM3 = 2.0 / 12.011
"""C atoms per volume of an evaporated amorphous carbon coat (1.9-2.1 g/cm^3; 2.0 g/cm^3)."""
MIN_CARBON_WT = 0.01
"""A mineral holds C when its composition has at least this mass fraction of it."""


def film_carbon_at(
    composition: Mapping[str, float], density: float, geometry: Geometry = SEM_20KV
) -> float:
    """The C (at % of the measured atoms) that a carbon coat of :data:`COAT_NM` adds to a phase
    of ``composition`` (mass fractions; no C) and ``density`` (g/cm^3).

    The physics of :func:`~napari_sigma.minerals.identify.film_oxygen_at` for a pure C layer:
    ``"bulk"``: the coat's C K is generated at the surface, ``phi(0)`` of the XPP distribution of
    C K ionisations in the phase (Pouchou & Pichoir 1991), and leaves unabsorbed, so the
    quantification reads it as C spread over the depth distribution, whose emerging C K is
    ``F(chi)``: apparent ``c_C = m_C phi(0) / F(chi)`` (``m_C`` the coat's C per area);
    ``"thin"``: a coat on each surface of the foil, atoms counted directly, ``2 t n_C`` against
    the phase's ``(T - 2 t) n`` atoms. At 20 kV, 20 nm: CaO 5 at %, apatite 12, quartz 16,
    iron 25, copper 32, tungsten 57 (C K is absorbed most in heavy matrices).
    """
    return surface_layer_at(
        composition, density, geometry, "C", COAT_NM[geometry.mode], COAT_CARBON_MOL_CM3
    )


def _carbon_at(wt: Mapping[str, float]) -> float:
    """At % of C among the measured atoms (wt %)."""
    from napari_sigma.quant.physics import atomic_weight

    moles = {el: v / atomic_weight(el) for el, v in wt.items() if v > 0 and el not in INVISIBLE}
    total = sum(moles.values())
    return 100.0 * moles.get("C", 0.0) / total if total > 0 else 0.0


def _whole(candidate: Candidate, library: MineralLibrary) -> dict[str, float] | None:
    """A candidate's whole composition (mass fractions): its mineral's, or its series mixture's."""
    if candidate.series is not None:
        series = next((s for s in library.series if s.name == candidate.series), None)
        return _series_composition(series, library, candidate.fractions) if series else None
    mineral = library.minerals.get(candidate.mineral)
    return dict(mineral.composition) if mineral is not None else None


def prefer_without_coating_carbon(
    candidates: Sequence[Candidate],
    wt: Mapping[str, float],
    coating: Sequence[str],
    geometry: Geometry | None = None,
    library: MineralLibrary | None = None,
) -> list[Candidate]:
    """``candidates`` with a C-free mineral first when a stated carbon coat explains the
    measured C (see the module docstring).

    Applies when ``"C"`` is in ``coating``, the best candidate holds C, and a C-free candidate
    (the best scored such) agrees with it on every element but C (chi2 per element < 1, the
    comparison's tolerance) and carries, with the coat, at least the measured C
    (:func:`film_carbon_at` in ``geometry``). Otherwise ``candidates`` unchanged.
    """
    candidates = list(candidates)
    if "C" not in coating or len(candidates) < 2 or wt.get("C", 0.0) <= 0:
        return candidates
    library = library or load_library()
    best = candidates[0]
    whole = _whole(best, library)
    if whole is None or whole.get("C", 0.0) < MIN_CARBON_WT:
        return candidates
    measured_c = _carbon_at(wt)
    best_rest = renormalised_without(_comparable(whole, set(whole)), "C")
    for other in candidates[1:]:
        other_whole = _whole(other, library)
        if other_whole is None or other_whole.get("C", 0.0) > 0:
            continue
        rest = renormalised_without(_comparable(other_whole, set(other_whole)), "C")
        if not _equivalent(best_rest, rest):
            continue
        visible = {el: c for el, c in other_whole.items() if c > 0 and el not in INVISIBLE}
        if measured_c <= film_carbon_at(visible, other.density, geometry or SEM_20KV):
            return [other] + [c for c in candidates if c is not other]
        return candidates  # the best agreeing C-free mineral cannot carry that much C
    return candidates
