"""quant.atomic: edges and fluorescence yields against published values."""

from __future__ import annotations

import itertools

import pytest

from napari_sigma.quant import atomic
from napari_sigma.xray import yields


def test_edges_and_fluorescence_yields_match_published_values():
    # Bearden & Burr (1967) edges; Krause (1979) K-shell yields
    assert atomic.edge_energy("Fe", "K") == pytest.approx(7.112, abs=0.002)
    assert atomic.edge_energy("Cu", "K") == pytest.approx(8.979, abs=0.002)
    assert atomic.fluorescence_yield("Fe", "K") == pytest.approx(0.340, rel=0.05)
    assert atomic.fluorescence_yield("Cu", "K") == pytest.approx(0.440, rel=0.05)


# EADL97's M4 and M5 radiative transition probabilities (xraylib's
# data/auger_probabilities/EADL97_MShellRadiativeRates.dat), one row each: the lines, then the
# TOTAL printed beside them. The table holds the totals; the lines were typed separately.
URANIUM_M4 = (2.34521e-3, 2.08131e-4, 5.15891e-2, 5.54742e-4, 4.88721e-5, 9.35183e-4)
URANIUM_M4 += (9.48803e-5, 7.90862e-6)
EADL_ROWS = {
    ("Sn", "M5"): ((9.93907e-4, 2.05909e-5), 1.0144979e-3),  # M5N3, M5O3
    ("Sn", "M4"): ((9.37775e-4, 1.54161e-4, 2.06751e-5, 3.19592e-6), 1.1158070e-3),
    ("Ba", "M4"): ((2.41782e-3, 3.73993e-4, 3.39423e-4, 5.17224e-5), 3.1829584e-3),
    ("Ce", "M5"): ((3.22511e-3, 1.1545e-5, 2.25851e-4, 5.06172e-4), 3.9686780e-3),
    ("Au", "M5"): ((1.61229e-3, 1.35389e-3, 2.64308e-2, 4.16596e-4), 2.9813576e-2),
    ("U", "M4"): (URANIUM_M4, 5.5784027e-2),
}


@pytest.mark.parametrize("key", sorted(EADL_ROWS))
def test_eadl_m_yields_are_the_totals_of_the_published_rows(key):
    # the yield is the row's radiative total: each typed total equals the sum of its lines
    lines, total = EADL_ROWS[key]
    element, level = key
    table = yields.eadl_m_yields()
    assert table[(atomic.atomic_number(element), level)] == total
    assert sum(lines) == pytest.approx(total, rel=2e-6)
    assert atomic.fluorescence_yield(element, level) == total


def test_eadl_m_yields_rise_with_z_and_cover_zr_to_u():
    table = yields.eadl_m_yields()
    for level in ("M4", "M5"):
        values = [table[(z, level)] for z in range(40, 93)]
        assert all(b > a for a, b in itertools.pairwise(values))  # a mistyped exponent breaks it
    assert set(table) == {(z, level) for z in range(40, 93) for level in ("M4", "M5")}


def test_m5_yields_agree_with_elams_where_elam_has_them():
    # Elam, Ravel & Sieber (2002) (xraydb) tabulate M5 yields from Hf up: EADL's are within 17 % (Au +16.5 %, Pt +13 %, Pb, Bi +15 %, W -1 %, Th +1 %, U -5 %)
    import xraydb

    for element in ("W", "Pt", "Au", "Pb", "Bi", "Th", "U"):
        elam = xraydb.xray_edges(element)["M5"].fyield
        assert atomic.fluorescence_yield(element, "M") == pytest.approx(elam, rel=0.17), element


def test_m_yields_of_tin_to_neodymium_are_eadls_not_the_high_z_law():
    # the Z^4 law fitted on Hf-U gave Sn 5.0x and Ba 2.6x EADL's M5 yield
    from napari_sigma.xray.yields import approximate_fluorescence_yield

    for element, eadl in (("Sn", 1.0144979e-3), ("Ba", 2.9523490e-3), ("Nd", 5.2088420e-3)):
        assert atomic.fluorescence_yield(element, "M") == eadl
        assert approximate_fluorescence_yield(atomic.atomic_number(element), "M") > 1.9 * eadl
    # the shell's main level is M5; K and L stay Elam's
    assert atomic.fluorescence_yield("Fe", "K") == pytest.approx(0.340, rel=0.05)
