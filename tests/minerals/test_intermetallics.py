"""The library's intermetallic compounds (group "alloy: intermetallic"): the phases of solder
joints, wire bonds and light, nickel and titanium alloys, their compositions from the formulas,
the cited densities, and each named from its own composition and from a simulated spectrum."""

import pytest

from napari_sigma.energy import EnergyAxis
from napari_sigma.minerals.identify import identify_composition, identify_quantified
from napari_sigma.minerals.library import composition_of, load_library
from sigma_testdata import measured_spectrum

GROUP = "alloy: intermetallic"
COMPOUNDS = ("Cu6Sn5", "Cu3Sn", "Ag3Sn", "Ni3Sn4", "AuSn4", "AuSn", "Cu5Zn8", "Al2Cu",
             "Mg2Si", "Mg17Al12", "MgZn2", "Al3Ni", "FeAl", "Fe3Al", "NiAl", "Ni3Al", "TiAl",
             "Ti3Al", "NiTi")  # fmt: skip
AXIS = EnergyAxis(-0.1, 0.01, 2048)


def test_the_group_holds_the_common_intermetallics_with_their_formulas():
    library = load_library()
    members = {m.name for m in library.minerals.values() if m.group == GROUP}
    assert set(COMPOUNDS) <= members
    for name in COMPOUNDS:
        mineral = library[name]
        assert mineral.composition == pytest.approx(composition_of(name)), name
        assert 1.5 < mineral.density < 12.0, name
    # Cu6Sn5: 6 x 63.546 / (6 x 63.546 + 5 x 118.71) = 39.1 wt % Cu; Ag3Sn 73.2 wt % Ag
    assert library["Cu6Sn5"].composition["Cu"] == pytest.approx(0.3911, abs=2e-4)
    assert library["Ag3Sn"].composition["Ag"] == pytest.approx(0.7316, abs=2e-4)
    # the measured densities of the NIST study cited in the table's header
    assert [library[n].density for n in ("Cu6Sn5", "Cu3Sn", "Ni3Sn4")] == [8.28, 8.90, 8.65]


@pytest.mark.parametrize("name", COMPOUNDS)
def test_each_is_named_from_its_composition(name):
    wt = {el: 100.0 * c for el, c in composition_of(name).items()}
    found = identify_composition(wt, {el: 0.3 for el in wt})
    assert found.name == name, (found.name, found.alternatives)


@pytest.mark.parametrize("name", ["Cu6Sn5", "Cu3Sn", "Ag3Sn", "Ni3Sn4", "Al2Cu", "Ni3Al"])
def test_a_simulated_spectrum_of_each_solder_and_alloy_phase_is_named(name):
    """A 20 kV bulk spectrum (1e6 counts) quantified and identified as the pipeline does."""
    spectrum, quantification = measured_spectrum(composition_of(name), AXIS, 20.0, 1e6, 0, 6)
    found = identify_quantified(quantification, spectrum, AXIS)
    assert found.name == name, (found.name, found.alternatives)
    assert load_library()[found.mineral].group == GROUP


def test_a_tin_copper_compound_is_not_an_oxide_or_bronze():
    """The fifth held-out set's Cu6Sn5 and Cu3Sn compositions (no O) are named as such, never
    cassiterite (names21c's "cassiterite" 0.84) or bronze."""
    for name, wt in (("Cu6Sn5", {"Sn": 60.0, "Cu": 40.0}), ("Cu3Sn", {"Sn": 38.0, "Cu": 62.0})):
        assert identify_composition(wt, {"Sn": 0.5, "Cu": 0.5}).name == name


def test_the_solder_cores_name_their_intermetallics_or_list_them_first():
    """The fifth held-out set's cores (`napari-sigma run` on main a0c985d): its seed + 1 Ag3Sn
    plates (host-corrected) are Ag3Sn; its seed-0 plates, 15 % of their tin matrix in the core
    and so beyond the comparison's tolerance, and its Cu6Sn5 (Cu 28 wt %, 39 in the compound)
    stay unknown with the compound as the first alternative. After this group joined the
    library the solder case no longer measures how the product names what it does not hold."""
    plates = identify_composition({"Sn": 33.96, "Cu": 0.05, "Ag": 65.99},
                                  {"Sn": 0.92, "Cu": 0.09, "Ag": 1.16})  # fmt: skip
    assert plates.name == "Ag3Sn"
    for wt, err, first in (
        ({"Ag": 62.45, "Sn": 37.55}, {"Ag": 1.52, "Sn": 1.29}, "Ag3Sn"),
        ({"Sn": 71.94, "Cu": 27.68, "Ag": 0.38}, {"Sn": 1.24, "Cu": 0.59, "Ag": 0.36}, "Cu6Sn5"),
    ):
        found = identify_composition(wt, err)
        assert found.unknown and found.alternatives[0][0] == first, (found.name, found.alternatives)
