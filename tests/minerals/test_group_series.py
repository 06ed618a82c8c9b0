"""Group names that are solid-solution series (minerals/data/series.csv): tourmaline, apatite and
wolframite, named with their end members and fractions as melilite and the garnets are; an
apatite whose F and Cl were not analysed is "apatite" (EDS does not see its OH)."""

import pytest

from napari_sigma.minerals.identify import identify_composition
from napari_sigma.minerals.library import composition_of, load_library
from napari_sigma.minerals.series import unresolved_labels


def _wt(formula, analysed_absent=()):
    """Visible wt % of a formula (H, Li, B left out) and the analysed elements it lacks at 0."""
    wt = {el: 100 * c for el, c in composition_of(formula).items() if el not in ("H", "Li", "B")}
    return {**wt, **{el: 0.0 for el in analysed_absent if el not in wt}}


def _series(name):
    return next(s for s in load_library().series if s.name == name)


@pytest.mark.parametrize("group", ["tourmaline", "apatite", "wolframite"])
def test_a_group_name_is_a_series_not_a_row_with_one_end_member_s_formula(group):
    library = load_library()
    assert group not in library  # the row carried schorl's, fluorapatite's, ferberite's formula
    assert all(member in library for member in _series(group).members)


@pytest.mark.parametrize(
    ("formula", "name"),
    [
        ("FeWO4", "ferberite"),
        ("Fe0.6Mn0.4WO4", "wolframite Fbr60Hbn40"),
        ("Fe0.3Mn0.7WO4", "wolframite Hbn70Fbr30"),
        ("MnWO4", "huebnerite"),
    ],
)
def test_wolframite_is_the_ferberite_huebnerite_series(formula, name):
    found = identify_composition(_wt(formula))
    assert found.name == name, found.alternatives
    assert found.series == "wolframite" or found.name in ("ferberite", "huebnerite")


@pytest.mark.parametrize(
    ("formula", "name"),
    [
        ("NaFe3Al6Si6O18B3O9(OH)4", "schorl"),
        ("NaFe1.5Mg1.5Al6Si6O18B3O9(OH)4", "tourmaline Srl50Drv50"),
        ("NaMg3Al6Si6O18B3O9(OH)4", "dravite"),
        ("NaLi1.5Al7.5Si6O18B3O9(OH)4", "elbaite"),  # Li and B unseen: its Al and no Fe, Mg
    ],
)
def test_tourmaline_is_the_schorl_dravite_elbaite_series(formula, name):
    found = identify_composition(_wt(formula))
    assert found.name == name, found.alternatives


@pytest.mark.parametrize(
    ("formula", "analysed_absent", "name"),
    [
        ("Ca5(PO4)3F", (), "fluorapatite"),
        ("Ca5(PO4)3F0.5(OH)0.5", (), "apatite Fap50"),  # Cl not analysed: Hap or Clap
        ("Ca5(PO4)3F0.5Cl0.5", (), "apatite Clap50Fap50"),
        ("Ca5(PO4)3Cl", (), "chlorapatite"),
        ("Ca5(PO4)3(OH)", ("F", "Cl"), "hydroxylapatite"),  # F and Cl looked for, not found
        ("Ca5(PO4)3(OH)", ("F",), "apatite"),  # could be chlorapatite: Cl not analysed
        ("Ca5(PO4)3(OH)", (), "apatite"),  # neither F nor Cl analysed
    ],
)
def test_apatite_is_named_by_the_x_site_anions_that_were_analysed(formula, analysed_absent, name):
    found = identify_composition(_wt(formula, analysed_absent))
    assert found.name == name, found.alternatives


def test_an_apatite_analysed_without_f_is_apatite_whatever_its_f():
    wt = {el: v for el, v in _wt("Ca5(PO4)3F").items() if el != "F"}
    assert identify_composition(wt).name == "apatite"


def test_end_members_are_unresolved_only_without_the_elements_that_tell_them_apart():
    library = load_library()
    apatite = _series("apatite")
    assert unresolved_labels(apatite, library, {"Ca", "P", "O"}) == {"Fap", "Hap", "Clap"}
    assert unresolved_labels(apatite, library, {"Ca", "P", "O", "F"}) == {"Hap", "Clap"}
    assert unresolved_labels(apatite, library, {"Ca", "P", "O", "F", "Cl"}) == set()
    for series in library.series:  # every other series is resolved by its members' cations
        analysed = set().union(*(library[m].composition for m in series.members))
        assert not unresolved_labels(series, library, analysed), series.name
