"""Tests of the X-ray line table and helpers (napari_sigma.xray.lines)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from napari_sigma.xray import lines as xray
from napari_sigma.xray._table import LINES, XRAYDB_VERSION

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "generate_xray_table.py"

# Reference energies (keV) from standard tables (Bearden / HyperSpy), +-0.01 keV.
REFERENCE_ENERGIES = {
    "O_Ka": 0.525,
    "C_Ka": 0.277,
    "N_Ka": 0.392,
    "Na_Ka": 1.041,
    "Si_Ka": 1.740,
    "Fe_Ka": 6.40,
    "Fe_La": 0.705,
    "Pb_Ma": 2.345,
    "Mo_La": 2.293,
    "S_Ka": 2.307,
    "W_Ma": 1.775,
    "Au_Ma": 2.123,
    "Cu_Ka": 8.040,
    "Pb_La": 10.55,
    "W_La": 8.40,
    "Mo_Ka": 17.45,
}


def _load_generator():
    spec = importlib.util.spec_from_file_location("generate_xray_table", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(("name", "energy"), sorted(REFERENCE_ENERGIES.items()))
def test_line_energies_match_reference_tables(name, energy):
    assert xray.parse_line(name).energy == pytest.approx(energy, abs=0.01)


def test_table_matches_xraydb_for_a_sample_of_elements():
    import xraydb

    generator = _load_generator()
    assert xraydb.__version__ == XRAYDB_VERSION
    for element in ("Be", "C", "O", "Na", "Si", "S", "K", "Fe", "Cu", "Zr", "Mo", "Ba", "W", "Pb"):
        assert generator.element_families(element) == LINES[element], element


def test_elements_cover_be_to_u_in_order():
    assert xray.ELEMENTS[0] == "Be"
    assert xray.ELEMENTS[-1] == "U"
    assert len(xray.ELEMENTS) == 89
    assert xray.ELEMENTS.index("Fe") == 26 - 4


def test_weights_are_normalised_per_shell():
    for element in xray.ELEMENTS:
        lines = xray.element_lines(element, min_energy=0.0)
        for shell in {line.shell for line in lines}:
            weights = [line.weight for line in lines if line.shell == shell]
            assert max(weights) == pytest.approx(1.0), (element, shell)
            assert min(weights) > 0


def test_families_and_relative_weights_are_physical():
    fe = {line.family: line for line in xray.element_lines("Fe")}
    assert fe["Ka"].weight == 1.0
    assert 0.1 < fe["Kb"].weight < 0.2  # Kb/Ka ~ 0.13-0.15 for 3d metals
    pb = {line.family: line for line in xray.element_lines("Pb")}
    assert pb["Ma"].weight == 1.0 and pb["La"].weight == 1.0
    assert 0.3 < pb["Mb"].weight < 0.9
    assert 0.3 < pb["Lb1"].weight < 0.8
    # Light elements have only K lines (xraydb's odd L emission bands are dropped).
    assert {line.family for line in xray.element_lines("Si", min_energy=0.0)} == {"Ka", "Kb"}


def test_element_lines_respects_energy_range():
    lines = xray.element_lines("Pb", min_energy=1.0, max_energy=12.0)
    assert lines == sorted(lines, key=lambda line: line.energy)
    assert {line.family for line in lines} >= {"Ma", "Mb", "La"}
    assert all(1.0 <= line.energy <= 12.0 for line in lines)
    assert "Ka" not in {line.family for line in lines}


def test_xray_line_is_frozen_and_named():
    line = xray.parse_line("Fe_Ka")
    assert line.name == "Fe_Ka"
    assert line.element == "Fe" and line.family == "Ka"
    assert line.edge == pytest.approx(7.112, abs=0.01)
    with pytest.raises(AttributeError):
        line.energy = 1.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("Xx_Ka", "unknown element"),
        ("Fe_Zz", "no line"),
        ("FeKa", "cannot parse"),
        ("C_La", "no line"),
    ],
)
def test_parse_line_rejects_unknown_names(name, message):
    with pytest.raises(ValueError, match=message):
        xray.parse_line(name)


@pytest.mark.parametrize(
    ("element", "beam", "expected"),
    [
        ("Fe", 20.0, "Fe_Ka"),
        ("Fe", 15.0, "Fe_Ka"),
        ("Fe", None, "Fe_Ka"),
        ("Pb", 15.0, "Pb_Ma"),
        ("Pb", 20.0, "Pb_Ma"),
        ("Pb", 30.0, "Pb_La"),
        ("Mo", 15.0, "Mo_La"),
        ("Mo", 20.0, "Mo_La"),
        ("Mo", 40.0, "Mo_Ka"),
        ("Ba", 20.0, "Ba_La"),
        ("O", 20.0, "O_Ka"),
        ("C", 5.0, "C_Ka"),
        ("W", 15.0, "W_Ma"),
        ("W", 20.0, "W_La"),
        ("Cu", 10.0, "Cu_La"),
        ("Cu", 20.0, "Cu_Ka"),
        ("Zr", 10.0, "Zr_La"),
        ("U", 20.0, "U_Ma"),
    ],
)
def test_default_line_like_hyperspy(element, beam, expected):
    assert xray.default_line(element, beam).name == expected


def test_default_line_at_very_low_beam_energy_still_returns_a_line():
    # Fe L3 edge 0.707 keV: at 1 kV no shell has overvoltage 1.5, the best excited line is used.
    assert xray.default_line("Fe", 1.0).name == "Fe_La"


def test_lines_for_elements_keeps_order():
    assert xray.lines_for_elements(["O", "Fe", "Pb"], beam_energy=20) == ("O_Ka", "Fe_Ka", "Pb_Ma")
    with pytest.raises(ValueError, match="unknown element"):
        xray.lines_for_elements(["Fe", "Qq"])


def test_lines_in_range_finds_known_overlaps():
    names = {line.name for line in xray.lines_in_range(2.25, 2.36)}
    assert {"S_Ka", "Pb_Ma", "Mo_La"} <= names
    names = {line.name for line in xray.lines_in_range(1.72, 1.80)}
    assert {"Si_Ka", "W_Ma"} <= names
    assert all(2.25 <= line.energy <= 2.36 for line in xray.lines_in_range(2.25, 2.36))


def test_all_lines_filters_weight_and_energy():
    lines = xray.all_lines(min_weight=0.5, max_energy=10.0)
    assert lines and all(line.weight >= 0.5 and 0.1 <= line.energy <= 10.0 for line in lines)
    assert "Fe_Ka" in {line.name for line in lines}
    assert "Fe_Kb" not in {line.name for line in lines}


def test_detector_fwhm_fiori_formula():
    assert xray.detector_fwhm(xray.MN_KA_KEV) == pytest.approx(0.130)
    assert xray.detector_fwhm(5.8987, fwhm_mnka_kev=0.125) == pytest.approx(0.125)
    # C Ka with a 130 eV detector: sqrt(130^2 - 2.45 * (5898.7 - 277)) = 55.9 eV
    assert xray.detector_fwhm(0.277) == pytest.approx(0.0559, abs=5e-4)
    # Cu Ka: sqrt(130^2 + 2.45 * (8040 - 5898.7)) = 148.9 eV
    assert xray.detector_fwhm(8.040) == pytest.approx(0.1489, abs=5e-4)
    energies = np.array([0.0, 3.0, 10.0])
    fwhm = xray.detector_fwhm(energies, fwhm_mnka_kev=0.11)
    assert fwhm.shape == (3,) and np.all(np.diff(fwhm) > 0)
    assert fwhm[0] == pytest.approx(xray.MIN_FWHM_KEV)  # floored where the formula goes negative


def test_usable_line_stays_inside_the_recorded_spectrum():
    # test_TEM.bcf: 200 kV on a 0-20 keV axis: Pd Ka (21.2 keV) is outside, Pd La is used
    assert xray.usable_line("Pd", 200.0, (0.1, 20.0)).name == "Pd_La"
    assert xray.usable_line("Pt", 200.0, (0.1, 20.0)).name == "Pt_La"
    assert xray.usable_line("Hf", 200.0, (0.1, 20.0)).name == "Hf_La"
    # an axis that starts at 0.8 keV has no O Ka; Fe then only has its K lines
    assert xray.usable_line("O", 200.0, (0.8, 20.0)) is None
    assert xray.usable_line("Fe", 200.0, (0.8, 20.0)).name == "Fe_Ka"
    # a 0-10 keV axis at 30 kV: Pb La (10.55) is off the axis, Pb Ma is used
    assert xray.usable_line("Pb", 30.0, (0.1, 10.0)).name == "Pb_Ma"
    # a line at the very end of the axis is not usable (its peak is cut)
    assert xray.usable_line("Cu", 20.0, (0.1, 8.05)).name == "Cu_La"


def test_lines_for_elements_drops_elements_without_a_usable_line_with_a_warning():
    with pytest.warns(xray.LineRangeWarning, match="O has no X-ray line inside"):
        names = xray.lines_for_elements(["O", "Fe", "Pd"], 200.0, (0.8, 20.0))
    assert names == ("Fe_Ka", "Pd_La")
    with pytest.raises(ValueError, match="has no X-ray line inside"):
        xray.default_line("O", 200.0, (0.8, 20.0))


def test_checked_lines_drops_given_lines_outside_the_spectrum():
    with pytest.warns(xray.LineRangeWarning, match="Pd_Ka at 21.1"):
        assert xray.checked_lines(["Pd_Ka", "Cu_Ka"], 200.0, (0.1, 20.0)) == ("Cu_Ka",)


def test_marker_lines_are_inside_the_spectrum_and_excited():
    names = {line.name for line in xray.marker_lines(["Pt", "Fe"], 200.0, (0.1, 20.0))}
    assert {"Pt_La", "Pt_Ma", "Fe_Ka", "Fe_La"} <= names
    assert "Pt_Ka" not in names
    names = {line.name for line in xray.marker_lines(["Cu"], 8.0, (0.1, 10.0))}
    assert "Cu_Ka" not in names and "Cu_La" in names  # Cu K edge 8.98 keV is not excited


def test_l_lines_of_elements_without_3d_electrons_are_in_the_table_and_tied():
    # xraydb 4.5.8: Ca Ll 0.3019, Ln 0.3054, Lb3 0.4130 keV; K Ll 0.2598; Sc Ll 0.3476
    from napari_sigma.xray.fitting import element_families
    from napari_sigma.xray.lines import LINES, element_lines, is_tied, usable_line

    assert LINES["Ca"]["Ll"][0] == pytest.approx(0.302, abs=0.001)
    assert LINES["Ca"]["Ln"][0] == pytest.approx(0.305, abs=0.001)
    assert LINES["Ca"]["Lb3"][0] == pytest.approx(0.413, abs=0.001)
    assert LINES["K"]["Ll"][0] == pytest.approx(0.260, abs=0.001)
    assert LINES["Sc"]["Ll"][0] == pytest.approx(0.348, abs=0.001)
    assert is_tied("Ca", "L") and is_tied("K", "L") and is_tied("Sc", "L")
    assert not is_tied("Ca", "K") and not is_tied("Ti", "L") and not is_tied("Fe", "L")
    assert "Si" in LINES and not any(family.startswith("L") for family in LINES["Si"])
    # never a line to map, identify or quantify an element by: left out of the line lists and
    # of the map fits (whose templates carry no absorption or detector efficiency to tie it)
    assert [line.name for line in element_lines("Ca")] == ["Ca_Ka", "Ca_Kb"]
    assert "Ca_Ll" in [line.name for line in element_lines("Ca", tied=True)]
    assert usable_line("Ca", 20.0, (0.1, 3.5)) is None  # Ca Ka outside: no Ca L instead
    assert [f.shell for f in element_families("Ca", 200.0, (0.1, 20.0))] == ["K"]
