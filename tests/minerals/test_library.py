"""The mineral library: size, groups, compositions, series and user tables."""

import pytest

from napari_sigma.minerals.library import LibraryError, composition_of, load_library


def test_library_has_the_required_size_and_groups():
    library = load_library()
    assert len(library) >= 300
    groups = " ".join(library.groups())
    for needed in (
        "feldspar", "pyroxene", "amphibole", "mica", "garnet", "olivine", "clay", "oxide",
        "hydroxide", "sulfide", "carbonate", "sulfate", "phosphate", "halide", "native element",
        "carbon", "steel", "alloy", "slag", "glass", "polymer",
    ):  # fmt: skip
        assert needed in groups, needed


def test_compositions_come_from_the_formulas():
    library = load_library()
    albite = library["albite"].composition
    # NaAlSi3O8: Na 8.77, Al 10.29, Si 32.13, O 48.81 wt% (webmineral)
    assert albite["Na"] == pytest.approx(0.0877, abs=5e-4)
    assert albite["Si"] == pytest.approx(0.3213, abs=5e-4)
    assert sum(library["pentlandite"].composition.values()) == pytest.approx(1.0)
    assert composition_of("CaMg(CO3)2")["C"] == pytest.approx(0.1303, abs=5e-4)
    assert all(m.density > 0 for m in library.minerals.values())


def test_series_have_their_end_members():
    series = {s.name: s for s in load_library().series}
    for name in ("olivine", "plagioclase", "alkali feldspar", "garnet", "orthopyroxene",
                 "clinopyroxene", "carbonate", "sphalerite"):  # fmt: skip
        assert name in series, name
    assert series["olivine"].labels == ("Fo", "Fa")
    assert series["garnet"].members == ("pyrope", "almandine", "grossular", "spessartine")


def test_user_table_extends_or_replaces(tmp_path):
    table = tmp_path / "mine.csv"
    table.write_text("# my phases\nname,formula,group,density\nmy slag,Ca2SiO4,slag,3.3\n")
    extended = load_library(table)
    assert "my slag" in extended and "quartz" in extended
    replaced = load_library(table, replace=True)
    assert list(replaced.minerals) == ["my slag"]


def test_bad_user_tables_give_clear_errors(tmp_path):
    missing = tmp_path / "missing.csv"
    with pytest.raises(LibraryError, match=r"missing\.csv"):
        load_library(missing)
    bad = tmp_path / "bad.csv"
    bad.write_text("name,formula\nx,SiO2\n")
    with pytest.raises(LibraryError, match="missing column"):
        load_library(bad)
    worse = tmp_path / "worse.csv"
    worse.write_text("name,formula,group,density\nx,Si(O2,oxide,2\n")
    with pytest.raises(LibraryError, match="row 1"):
        load_library(worse)
