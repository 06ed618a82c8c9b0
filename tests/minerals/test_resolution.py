"""Candidates the measurement does not resolve from the name (Identification.unresolved)."""

from napari_sigma.minerals.identify import Geometry, identify_composition


def test_an_iron_oxide_lists_the_oxides_its_o_does_not_resolve():
    # the held-out granite's magnetite as the user's path quantifies it (espm's O K too strong):
    # hematite by a small margin; magnetite's 27.6 wt % O is one standard deviation away
    found = identify_composition({"O": 32.3, "Si": 0.89, "Fe": 66.7}, geometry=Geometry("thin"))
    assert found.name == "hematite"
    unresolved = [name for name, _ in found.unresolved]
    assert "magnetite" in unresolved and "maghemite" in unresolved  # a polymorph too
    assert "goethite" not in unresolved  # its visible O is 6 wt % higher: resolved
    # an ideal magnetite is not resolved from hematite either (2.5 wt % O at 8 % + 0.7 wt %)
    ideal = identify_composition({"Fe": 72.4, "O": 27.6})
    assert ideal.name == "magnetite" and "hematite" in [n for n, _ in ideal.unresolved]


def test_resolved_compositions_are_not_listed():
    olivine = identify_composition({"Mg": 34.5, "Si": 20.0, "O": 45.5})
    assert olivine.name == "forsterite"
    assert "enstatite" not in [n for n, _ in olivine.unresolved]
    pyrite = identify_composition({"Fe": 46.5, "S": 53.5})
    assert [n for n, _ in pyrite.unresolved] == ["marcasite"]  # its polymorph only


def test_the_phase_table_says_what_is_not_resolved():
    from napari_sigma.io.mineralogy import phase_quant_rows
    from napari_sigma.minerals.phases import PhaseMineral

    found = identify_composition({"O": 32.3, "Si": 0.89, "Fe": 66.7}, geometry=Geometry("thin"))
    rows, columns = phase_quant_rows([1], ["P1"], [PhaseMineral(1, None, found)])
    assert "not_resolved_from" in columns
    assert "magnetite" in rows[0]["not_resolved_from"]
