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
        ("fluorapatite", "apatite Fap80"),
        ("apatite", "fluorapatite"),
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
        ("apatite", "hydroxylapatite"),
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


def test_what_espm_generated_is_its_given_fractions_read_as_atomic(bench):
    # espm_dev gives mass fractions, which espm uses as atomic ones: CaMgSi2O6's mass fractions
    # make a spectrum of Ca 18.5 at %, i.e. Ca 30.2 wt %; a case with compositions_at is read as given
    stated = {"Ca": 0.18508, "Mg": 0.11224, "Si": 0.25939, "O": 0.44329}
    generated = bench.generated_wt({"compositions_wt": {"cpx": stated}}, "cpx")
    assert generated["Ca"] == pytest.approx(30.2, abs=0.1)
    assert generated["O"] == pytest.approx(28.9, abs=0.1)
    atomic = {"Ca": 0.1, "Mg": 0.1, "Si": 0.2, "O": 0.6}  # CaMgSi2O6
    meta = {"compositions_wt": {"cpx": stated}, "compositions_at": {"cpx": atomic}}
    assert bench.generated_wt(meta, "cpx")["Ca"] == pytest.approx(18.5, abs=0.1)
