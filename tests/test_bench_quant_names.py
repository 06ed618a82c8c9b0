"""The quantification benchmark's name check: synonyms and named ranges of a series."""

import importlib
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        yield importlib.import_module("bench_quant")
    finally:
        sys.path.remove(str(BENCHMARKS))


@pytest.mark.parametrize(
    ("truth", "found"),
    [
        ("labradorite", "P2 plagioclase An59 (labradorite)"),
        ("orthoclase", "alkali feldspar Or93"),
        ("orthoclase", "microcline"),
        ("fluorapatite", "apatite"),
        ("cementite", "cohenite"),
        ("ankerite", "dolomite-ankerite Ank60Dol40"),
        ("grossular", "garnet Grs80Alm20"),
        ("almandine", "garnet Alm93"),
        ("chromite", "spinel MChr30Chr60Spl10"),
        ("sphalerite", "sphalerite Fe10"),
        ("hedenbergite", "clinopyroxene Di7"),
        ("serpentine", "lizardite"),
        ("quartz", "quartz"),
        ("olivine_fo80", "olivine Fo84"),
    ],
)
def test_names_a_mineralogist_accepts_are_right(bench, truth, found):
    assert bench.name_is_right(truth, found)


@pytest.mark.parametrize(
    ("truth", "found"),
    [
        ("labradorite", "plagioclase An35 (andesine)"),
        ("orthoclase", "alkali feldspar Or60Ab40"),
        ("ankerite", "dolomite-ankerite Dol51Ank49"),
        ("almandine", "garnet Prp52Alm46"),
        ("chromite", "spinel MChr60Chr40"),
        ("sphalerite", "sphalerite Fe60"),
        ("hedenbergite", "clinopyroxene Di60"),
        ("fluorapatite", "hydroxylapatite"),
        ("cementite", "iron"),
        ("quartz", "silicone"),
    ],
)
def test_other_names_stay_wrong(bench, truth, found):
    assert not bench.name_is_right(truth, found)


@pytest.mark.parametrize(
    ("truth", "found", "right"),
    [
        ("labradorite", "plagioclase An59?", True),
        ("quartz", "quartz?", True),
        ("quartz", "silicone?", False),
    ],
)
def test_a_doubtful_name_is_scored_as_its_name_and_counted_apart(bench, truth, found, right):
    assert bench.name_is_right(truth, found) is right
    assert bench.is_doubtful(found)
    rows = [{"right": right, "doubtful": True}, {"right": True, "doubtful": False}]
    assert (
        bench.doubtful_counts(rows)
        == f"marked doubtful ('?'): {int(right)} right, {int(not right)} wrong"
    )


def test_a_name_with_an_alternative_in_brackets_is_not_doubtful(bench):
    assert not bench.is_doubtful("plagioclase An59 (labradorite)")
