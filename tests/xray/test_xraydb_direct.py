"""xraydb's tables read with sqlite3 (napari_sigma.xray.xraydb_direct) give xraydb's values."""

import subprocess
import sys

import pytest

from napari_sigma.xray import xraydb_direct as direct

xraydb = pytest.importorskip("xraydb")

SYMBOLS = [xraydb.atomic_symbol(z) for z in range(1, 99)]


def _items(mapping):
    return [(key, tuple(value)) for key, value in mapping.items()]  # the order counts too


@pytest.mark.parametrize("chunk", range(0, 98, 14))
def test_every_element_has_xraydbs_values(chunk):
    for z, symbol in enumerate(SYMBOLS[chunk : chunk + 14], start=chunk + 1):
        assert direct.atomic_number(symbol) == xraydb.atomic_number(symbol)
        assert direct.atomic_symbol(z) == xraydb.atomic_symbol(z)
        assert direct.atomic_mass(symbol) == xraydb.atomic_mass(symbol)
        assert direct.atomic_mass(z) == xraydb.atomic_mass(z)
        assert direct.atomic_density(symbol) == xraydb.atomic_density(symbol)
        assert _items(direct.xray_edges(symbol)) == _items(xraydb.xray_edges(symbol))
        assert _items(direct.xray_lines(symbol)) == _items(xraydb.xray_lines(symbol))
        for level in ("K", "L3", ["L1", "L2"], []):
            ours = direct.xray_lines(symbol, initial_level=level)
            assert _items(ours) == _items(xraydb.xray_lines(symbol, initial_level=level))
        for energy in (1000.0, 15000.0):
            ours = direct.xray_lines(symbol, excitation_energy=energy)
            assert _items(ours) == _items(xraydb.xray_lines(symbol, excitation_energy=energy))
        for initial, final in (("L1", "L2"), ("L1", "L3"), ("L2", "L3"), ("M1", "M5")):
            for total in (True, False):
                assert direct.ck_probability(symbol, initial, final, total) == (
                    xraydb.ck_probability(symbol, initial, final, total=total)
                )
        for table in ("photoabsorption", "scattering"):
            (ours,) = direct.get_xraydb().get_cache(table, column="element", value=symbol)
            (theirs,) = xraydb.get_xraydb().get_cache(table, column="element", value=symbol)
            assert vars(ours) == dict(theirs._mapping)


def test_names_symbols_and_errors_as_xraydb():
    db, theirs = direct.get_xraydb(), xraydb.get_xraydb()
    for name in ("fe", "Fe", "FE", "iron", 26):
        assert db._elem_data(name) == tuple(theirs._elem_data(name))
    with pytest.raises(ValueError):
        direct.atomic_number("Xx")
    with pytest.raises(ValueError):
        xraydb.atomic_number("Xx")


def test_formulas_as_xraydb():
    for formula in ("H2O", "Mn(SO4)2(H2O)7", "Zn1.e-5Fe3O4", "Ca5(PO4)3F", "KAlSi3O8", "CaCO3"):
        assert direct.chemparse(formula) == xraydb.chemparse(formula)


def test_no_sqlalchemy_in_a_fresh_interpreter():
    code = (
        "import sys; from napari_sigma.xray import xraydb_direct as d; "
        "d.atomic_mass('Si'); d.xray_edges('Fe'); d.xray_lines('Cu'); d.chemparse('SiO2'); "
        "d.ck_probability('Ba', 'L1', 'L3'); d.get_xraydb().get_cache('scattering', 'element', 'O'); "
        "bad = [m for m in ('xraydb', 'sqlalchemy') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
