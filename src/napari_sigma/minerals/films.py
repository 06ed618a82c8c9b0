"""What a surface layer adds to an analysis: the acquisition's :class:`Geometry`, the O of an
oxide film (:func:`film_oxygen_at`, :func:`surface_layer_at`), the measured O not bound to
foreign elements (:func:`unbound_oxygen_at`), and whether a measured O may be left out of a
comparison (``_film_explains``). See :mod:`napari_sigma.minerals.identify`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from napari_sigma.minerals.scores import CARBON_SCALE_SIGMA, INVISIBLE, LIGHT

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

OXYGEN_LEFT_OUT_MIN = float(np.exp(-2.0 * CARBON_SCALE_SIGMA))
"""A mineral holding O is compared with the measured O left out only when the measured O (less
what foreign elements carry: :func:`unbound_oxygen_at`) is at least this share of its own O
(at %): O is left out because standardless O is inaccurate, not because it is absent. The bound
is 2 sigma of C's factor (a quarter), the least known light line: anglesite PbSO4 (67 at % O)
is not galena PbS with 3 at % O left out."""


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
