"""The M lines of Zr..Sn as a tied M shell (napari_sigma.xray.lines.is_tied): in the line table,
the suggestion's and element maps' families (bounded by the L shell), and the suggestion of a
tin spectrum, whose Sn Mz (0.405 keV) was read as N Ka (0.392 keV) without them."""

from __future__ import annotations

import numpy as np
import pytest

from napari_sigma.energy import EnergyAxis
from napari_sigma.quant import physics
from napari_sigma.quant.simulate import gaussian_peaks, line_intensities, line_spectrum
from napari_sigma.spectrum_image import Spectrum
from napari_sigma.xray import lines as xray
from napari_sigma.xray.elements import suggest_elements
from napari_sigma.xray.line_families import element_families, family_design

TIED_M = ("Zr", "Nb", "Mo", "Tc", "Ru", "Rh", "Pd", "Ag", "Cd", "In", "Sn")


@pytest.mark.parametrize("element", TIED_M)
def test_the_table_holds_a_tied_m_shell_without_ma(element):
    families = {line.family for line in xray.element_lines(element, 0.0, tied=True)}
    assert "Mz" in families and "Ma" not in families
    assert xray.is_tied(element, "M") and xray.tied_to(element, "M") == "L"
    assert not xray.is_tied(element, "L")
    # never the line an element is mapped by, nor in the plain line lists
    assert xray.default_line(element, 20.0).family == "La"
    assert all(line.shell != "M" for line in xray.element_lines(element, 0.0))


def test_elements_with_ma_or_with_m_lines_below_the_detector_are_unchanged():
    assert not xray.is_tied("Sb", "M") and xray.parse_line("Sb_Ma").energy == pytest.approx(0.5282)
    assert not [line for line in xray.element_lines("Y", 0.0, tied=True) if line.shell == "M"]
    assert xray.tied_to("Ca", "L") == "K"


def test_mz_is_the_m5_n3_and_m4_n2_blend_of_xraydb_edges():
    """xraydb lists Sn Mz at E(M4) - E(N2) = 409.6 eV; M5-N3 (401.3 eV, six electrons against
    four) is the other half of the peak: 0.4046 keV, population-weighted (1.0 and 0.66)."""
    import xraydb

    edges = {k: v.energy / 1000.0 for k, v in xraydb.xray_edges("Sn").items()}
    m5_n3, m4_n2 = edges["M5"] - edges["N3"], edges["M4"] - edges["N2"]
    assert xraydb.xray_lines("Sn")["Mz"].energy / 1000.0 == pytest.approx(m4_n2, abs=1e-4)
    expected = (1.0 * m5_n3 + 0.66 * m4_n2) / 1.66
    assert xray.parse_line("Sn_Mz").energy == pytest.approx(expected, abs=1e-4)
    assert xray.parse_line("Sn_Mz").energy == pytest.approx(0.4046, abs=1e-4)
    assert xray.parse_line("Sn_Mg").weight == pytest.approx(0.1)


def test_the_generator_writes_the_committed_m_lines():
    import importlib.util
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "scripts" / "generate_xray_table.py"
    spec = importlib.util.spec_from_file_location("generate_xray_table", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for element in ("Zr", "Ag", "Sn", "Sb"):
        assert module.element_families(element) == xray.LINES[element]


def test_a_tied_m_shell_is_a_family_per_line_only_with_its_l_shell():
    names = [f.name for f in element_families("Sn", 200.0, (0.2, 20.0))]
    assert names == ["Sn_La", "Sn_Mz", "Sn_Mg"]
    # Mz below the recorded range (its peak +- one FWHM): left out, Mg kept
    assert [f.name for f in element_families("Sn", 200.0, (0.45, 20.0))] == ["Sn_La", "Sn_Mg"]
    # no L shell excited: no M family alone either
    assert element_families("Sn", 3.5, (0.1, 20.0)) == []
    # Mo Mz (0.193 keV) is below a spectrum starting at 0.2 keV: the heavy-element rule
    assert [f.name for f in element_families("Mo", 200.0, (0.2, 20.0))] == ["Mo_Ka", "Mo_La"]
    # Ca's tied L lines stay out of the families (only the quantification folds them)
    assert [f.name for f in element_families("Ca", 20.0, (0.1, 20.0))] == ["Ca_Ka"]


def test_the_m_lines_are_bounded_by_the_l_shell_never_free():
    axis = EnergyAxis(0.2, 0.01, 1980)
    design = family_design(axis.energies, axis.scale, ["Sn"], 200.0, (0.2, 20.0), 0.13)
    # one amplitude of La alone puts nothing in the M lines (their lower bound is 0) ...
    assert design.to_families[0].tolist() == [1.0, 0.0, 0.0]
    # ... and each M column carries La's lines with it: an M line never stands alone
    la = design.families[0].principal.energy
    channel = round((la - axis.offset) / axis.scale)
    assert np.all(design.columns[channel] > 0)
    assert design.to_families[1, 1] > design.to_families[2, 2] > 0  # Mz's bound above Mg's


AXIS = EnergyAxis(0.2, 0.01, 1980)


def foil_spectrum(composition: dict[str, float], seed: int = 0, total: float = 2e6) -> Spectrum:
    """Poisson counts of a 200 kV thin foil (the quantification's physics, windowless SDD) on a
    smooth continuum."""
    lines = line_spectrum(composition, AXIS, 200.0, physics.WINDOWLESS, thin=True)
    lines *= total / lines.sum()
    e = AXIS.energies
    continuum = 0.1 * total / AXIS.size * np.clip(20.0 - e, 0, None) / 10.0
    drawn = np.random.default_rng(seed).poisson(lines + continuum).astype(np.float64)
    return Spectrum(drawn, AXIS, beam_energy=200.0)


def tin_foil(seed: int, total: float = 2e6) -> Spectrum:
    """A 200 kV tin foil drawn without the line table's M lines: Sn's L lines (the
    quantification's physics) and its M peak as xraydb's edges place its two transitions
    (M5-N3 401.3 eV, M4-N2 409.6 eV; 6 and 4 electrons), half of La's area in all (the physics
    gives 0.49-0.57 for 0-80 nm of tin, windowless: `physics.detected_lines`)."""
    import xraydb

    found = line_intensities({"Sn": 1.0}, 200.0, physics.WINDOWLESS, thin=True, max_kev=20.0)
    l_lines = [(line, area) for line, area in found if line.shell == "L"]
    la = next(area for line, area in l_lines if line.family == "La")
    edges = {k: v.energy / 1000.0 for k, v in xraydb.xray_edges("Sn").items()}
    energies = [line.energy for line, _ in l_lines] + [
        edges["M5"] - edges["N3"],
        edges["M4"] - edges["N2"],
    ]
    areas = np.array([area for _, area in l_lines] + [0.3 * la, 0.2 * la])
    peaks = gaussian_peaks(AXIS, np.array(energies), areas * total / areas.sum(), 0.13)
    continuum = 0.1 * total / AXIS.size * np.clip(20.0 - AXIS.energies, 0, None) / 10.0
    drawn = np.random.default_rng(seed).poisson(peaks + continuum).astype(np.float64)
    return Spectrum(drawn, AXIS, beam_energy=200.0)


@pytest.mark.parametrize("seed", [0, 1])
def test_a_tin_foil_suggests_tin_and_no_nitrogen(seed):
    """Without the Sn M lines the suggestion read Sn's M peak (0.405 keV) as N Ka (0.392 keV;
    the fifth held-out set's solder: "unknown (N1.24Sn1.00)" for beta-tin)."""
    found = [s.element for s in suggest_elements(tin_foil(seed))]
    assert found == ["Sn"]


def test_nitrogen_beside_tin_is_still_found():
    found = [s.element for s in suggest_elements(foil_spectrum({"Sn": 0.8, "N": 0.2}))]
    assert set(found) == {"Sn", "N"}


def test_silver_m_lines_do_not_hide_carbon():
    found = [s.element for s in suggest_elements(foil_spectrum({"Ag": 0.85, "C": 0.15}))]
    assert set(found) == {"Ag", "C"}
