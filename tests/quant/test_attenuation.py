"""quant.attenuation: mass attenuation against published tables, and xraydb's mu_elam bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
import xraydb

from napari_sigma.quant import attenuation

# light to heavy, K/L/M lines in the EDS range; Cm has no usable Elam table (xraydb answers)
ELEMENTS = (
    "H Li Be B C N O F Na Mg Al Si P S Cl Ar K Ca Ti V Cr Mn Fe Co Ni Cu Zn Ga As Zr Nb Mo Ag "
    "Sn Sb Ba La Ce Nd Gd Ta W Pt Au Hg Pb Bi Th U Cm"
).split()


def _energies_kev(element: str) -> np.ndarray:
    """A channel axis, the table's own nodes, its edges and just beside them (keV)."""
    axis = np.arange(256) * 0.08 - 0.2  # below 0.1 keV: clipped to 100 eV as before
    tables = attenuation._elam_tables(element)  # None: no Elam table, xraydb answers (Cm, Bk, Cf)
    nodes = np.exp(tables[0][0]) / 1000.0 if tables else np.array([])
    nodes = nodes[(nodes >= 0.1) & (nodes <= 800.0)]
    edges = np.array([e.energy for e in xraydb.xray_edges(element).values()]) / 1000.0
    edges = edges[edges >= 0.1]
    near = np.concatenate([edges * (1 - 1e-9), edges, edges * (1 + 1e-9)])
    rng = np.random.default_rng(len(element) + ord(element[0]))
    return np.round(np.concatenate([axis, nodes, near, rng.uniform(0.1, 40.0, 50)]), 6)


@pytest.mark.parametrize("element", ELEMENTS)
def test_element_mu_equals_xraydb_bit_for_bit(element) -> None:
    energies = tuple(_energies_kev(element).tolist())
    attenuation._element_mu.cache_clear()
    ours = attenuation._element_mu(element, energies)
    energies_ev = np.clip(np.asarray(energies, dtype=np.float64), 0.1, None) * 1000.0
    reference = np.asarray(xraydb.mu_elam(element, energies_ev), dtype=np.float64)
    np.testing.assert_array_equal(ours, reference)
    for energy in energies[::97]:  # the scalar path of the ZAF iteration
        attenuation._element_mu.cache_clear()
        single = attenuation._element_mu(element, (energy,))
        one = np.asarray(xraydb.mu_elam(element, np.array([max(energy, 0.1) * 1000.0])))
        np.testing.assert_array_equal(single, one)


def test_mass_attenuation_of_a_composition_is_unchanged() -> None:
    energies = np.linspace(0.2, 15.0, 2048)
    composition = {"Si": 0.467, "O": 0.533}
    expected = sum(
        c * np.asarray(xraydb.mu_elam(el, np.round(energies, 6) * 1000.0))
        for el, c in composition.items()
    )
    np.testing.assert_array_equal(attenuation.mass_attenuation(composition, energies), expected)


@pytest.mark.parametrize(
    ("absorber", "mu"),
    # mu/rho (cm^2/g) at Cu Ka, 8.048 keV: NIST XCOM / Heinrich (1986) tables
    [("Cu", 52.9), ("Fe", 302.0), ("Ni", 49.3)],
)
def test_mass_attenuation_at_cu_ka_matches_published_tables(absorber, mu):
    assert attenuation.mass_attenuation(absorber, 8.048) == pytest.approx(mu, rel=0.05)


def test_mass_attenuation_of_a_compound_is_the_mixture_rule():
    quartz = {"Si": 0.4674, "O": 0.5326}
    expected = 0.4674 * attenuation.mass_attenuation(
        "Si", 1.0
    ) + 0.5326 * attenuation.mass_attenuation("O", 1.0)
    assert attenuation.mass_attenuation(quartz, 1.0) == pytest.approx(expected)
