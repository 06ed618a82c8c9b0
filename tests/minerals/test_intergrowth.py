"""Intergrowths: two minerals within a phase are named as such, a pure mineral never is."""

import numpy as np
import pytest

from napari_sigma.energy import EnergyAxis
from napari_sigma.minerals.identify import identify_composition, identify_quantified
from napari_sigma.minerals.intergrowth import intergrowth_candidates
from napari_sigma.minerals.library import composition_of, load_library
from sigma_testdata import measured_spectrum

AXIS = EnergyAxis(-0.1, 0.01, 2048)


def _mixture(a, b, share_a):
    """Mass fractions of ``share_a`` of mineral ``a`` with ``1 - share_a`` of ``b``."""
    library = load_library()
    ca, cb = library[a].composition, library[b].composition
    return {el: share_a * ca.get(el, 0.0) + (1 - share_a) * cb.get(el, 0.0) for el in {*ca, *cb}}


def _wt(composition, oxygen_scale=1.0):
    """Visible wt % (H and B left out), O scaled as a standardless analysis may give it."""
    wt = {el: 100 * c for el, c in composition.items() if el not in ("H", "B", "Li", "Be")}
    wt["O"] = wt.get("O", 0.0) * oxygen_scale
    total = sum(wt.values())
    wt = {el: 100 * v / total for el, v in wt.items()}
    return wt, {el: 0.01 * v + 0.05 for el, v in wt.items()}


def _measured(composition, beam=20.0, counts=1e6, seed=0):
    return measured_spectrum(composition, AXIS, beam, counts, seed)


def _share(identification, name):
    return next(s for n, s in identification.components if n.startswith(name))


@pytest.mark.parametrize(
    ("a", "b", "share_a", "oxygen_scale"),
    [
        ("orthoclase", "quartz", 0.6, 1.0),
        ("orthoclase", "quartz", 0.3, 0.8),
        ("albite", "quartz", 0.3, 0.8),
        ("oligoclase", "quartz", 0.5, 0.8),
        ("anorthite", "quartz", 0.4, 0.8),
        ("almandine", "quartz", 0.5, 1.0),
        ("diopside", "quartz", 0.5, 1.0),
        ("muscovite", "quartz", 0.5, 0.8),
        ("fluorapatite", "quartz", 0.5, 1.0),
        ("dolomite", "quartz", 0.5, 1.0),
        ("galena", "sphalerite", 0.5, 1.0),
    ],
)
def test_two_minerals_that_no_single_one_explains_are_named_with_their_shares(
    a, b, share_a, oxygen_scale
):
    wt, err = _wt(_mixture(a, b, share_a), oxygen_scale)
    found = identify_composition(wt, err)
    assert " + " in found.name and found.group == "intergrowth", (found.name, found.alternatives)
    assert {n.split()[0] for n, _ in found.components} == {a, b}
    assert _share(found, a) == pytest.approx(share_a, abs=0.08)
    assert sum(s for _, s in found.components) == pytest.approx(1.0)


def test_a_feldspar_with_quartz_gets_its_end_member_fraction_from_the_spectrum():
    """The user path on a simulated spectrum: quantified, then identified with the spectrum.
    Or70Ab30 alkali feldspar with quartz, 70:30 by mass (P45's main phase is of this kind).
    A rhyolitic composition within tolerance of the library's obsidian stays obsidian: EDS cannot
    tell a glass from a fine intergrowth of the same composition."""
    mixed: dict[str, float] = {}
    for formula, share in (("KAlSi3O8", 0.7 * 0.7), ("NaAlSi3O8", 0.3 * 0.7), ("SiO2", 0.3)):
        for el, c in composition_of(formula).items():
            mixed[el] = mixed.get(el, 0.0) + share * c
    spectrum, quantification = _measured(mixed)
    found = identify_quantified(quantification, spectrum, AXIS)
    assert found.name.startswith("alkali feldspar Or"), (found.name, found.alternatives)
    assert "quartz" in found.name and found.series == "alkali feldspar"
    assert found.fractions["Or"] == pytest.approx(0.7, abs=0.05)
    assert _share(found, "quartz") == pytest.approx(0.3, abs=0.05)


@pytest.mark.parametrize(
    ("formula", "name"),
    [
        ("KAlSi3O8", "orthoclase"),
        ("NaAlSi3O8", "albite"),
        ("Na0.6Ca0.4Al1.4Si2.6O8", "plagioclase An40 (andesine)"),
        ("SiO2", "quartz"),
        ("Fe3Al2Si3O12", "almandine"),
        ("KAl3Si3O10(OH)2", "muscovite"),
        ("Mg2SiO4", "forsterite"),
        ("CaMgSi2O6", "diopside"),
        ("CaCO3", "calcite"),
        ("FeS2", "pyrite"),
    ],
)
def test_a_pure_mineral_with_a_standardless_error_is_never_an_intergrowth(formula, name):
    """O 20 % low and cations 8 % apart (the comparison's relative tolerance): one mineral."""
    composition = composition_of(formula)
    for oxygen_scale in (1.0, 0.8):
        wt, err = _wt(composition, oxygen_scale)
        cations = sorted(el for el in wt if el != "O")
        for i, el in enumerate(cations):
            wt[el] *= 1.08 if i % 2 == 0 else 0.92
        found = identify_composition(wt, err)
        assert not found.components and " + " not in found.name, (formula, found.name)


def test_degenerate_mixtures_are_not_named_as_pairs():
    """Forsterite + enstatite is serpentine's Mg:Si and albite + quartz 1:1 clinoptilolite's
    cations (a single mineral fits), magnetite + ilmenite is any Fe-Ti oxide pair (many pairs fit
    alike): no intergrowth name."""
    for a, b in (("forsterite", "enstatite"), ("magnetite", "ilmenite"), ("albite", "quartz")):
        found = identify_composition(*_wt(_mixture(a, b, 0.5)))
        assert not found.components, found.name


def test_silica_never_pairs_with_a_silica_undersaturated_mineral():
    """Leucite + opal and kalsilite + quartz have orthoclase + quartz's composition but do not
    coexist (they react to sanidine)."""
    wt, err = _wt(_mixture("orthoclase", "quartz", 0.6))
    pairs = [{n.split()[0] for n, _ in c.components} for c in intergrowth_candidates(wt, err)]
    assert {"orthoclase", "quartz"} in pairs
    for silica in ("quartz", "opal", "cristobalite"):
        for undersaturated in ("leucite", "kalsilite", "nepheline", "corundum"):
            assert {silica, undersaturated} not in pairs


def test_two_metals_are_one_alloy_not_an_intergrowth():
    """Copper with 4.4 wt % Al (the Hitachi file's map) is one alpha aluminium bronze: neither
    aluminium bronze + copper nor, with O not analysed, aluminium bronze + cuprite."""
    found = identify_composition({"Cu": 95.6, "Al": 4.4})
    assert not found.components, found.name


def test_a_compound_with_some_of_its_host_is_not_its_oxides():
    """Zircon ZrSiO4 is ZrO2 + SiO2: a small zircon grain measured with a sixth of its quartz
    host (and O high, as espm's foils give it) fits baddeleyite + quartz best, but zircon with
    some quartz explains it as well: no intergrowth, zircon."""
    wt, err = _wt(_mixture("zircon", "quartz", 0.85), oxygen_scale=1.2)
    found = identify_composition(wt, err)
    assert found.name == "zircon", (found.name, found.alternatives)


def test_an_intergrowth_with_a_touching_phase_is_that_phase_s_signal():
    """An apatite grain whose core holds a quarter of the quartz around it (a touching phase of
    the map) is apatite with some of P1 quartz, not an intergrowth of the two."""
    from types import SimpleNamespace

    from napari_sigma.minerals.phases import PhaseMineral, _explain_by_neighbours

    grain, err = _wt(_mixture("fluorapatite", "quartz", 0.75))
    alone = identify_composition(grain, err)
    assert alone.components and "quartz" in alone.name  # without the map: an intergrowth
    host = {"Si": 46.7, "O": 53.3}
    labels = np.ones((6, 6), dtype=int)
    labels[2:4, 2:4] = 2
    found = [
        PhaseMineral(1, SimpleNamespace(wt=host, err_wt={}), identify_composition(host)),
        PhaseMineral(2, SimpleNamespace(wt=grain, err_wt=err), alone),
    ]
    _explain_by_neighbours(found, labels, load_library())
    named = found[1].identification
    assert named.name in ("apatite", "fluorapatite") and not named.components, named.name
    assert named.trace[0].endswith("of P1 quartz")
    assert named.alternatives[0][0] == alone.name


def test_metals_and_metal_carbides_are_one_phase_not_an_intergrowth():
    """espm's (Cr,Fe)23C6 with its C measured 60 % low fits chromium + cohenite; a metal carbide
    dissolves other metals, so it stays the carbide (or unknown), never a pair of the two."""
    found = identify_composition({"C": 2.21, "Cr": 75.24, "Mn": 0.03, "Fe": 22.39, "Nb": 0.13})
    assert not found.components, found.name
    assert found.name == "chromium carbide M23C6"
