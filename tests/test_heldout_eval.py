"""The held-out scoring (benchmarks/espm_heldout_eval.py): accepted names and the areas."""

import csv
import importlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def modules():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        yield (importlib.import_module("espm_heldout_eval"),
               importlib.import_module("espm_heldout4"),
               importlib.import_module("espm_heldout5"))  # fmt: skip
    finally:
        sys.path.remove(str(BENCHMARKS))


@pytest.mark.parametrize(
    ("truth", "found", "right"),
    [
        ({"name": "quartz"}, "quartz", True),
        ({"name": "biotite", "accept_series": "biotite"}, "biotite Phl55", True),
        ({"name": "anatase", "accept": ["rutile"]}, "rutile", True),
        ({"name": "anatase", "accept": ["rutile"]}, "ilmenite", False),
        ({"name": "sigma phase", "accept_unknown": True}, "unknown (Fe1.76Cr1.00)", True),
        ({"name": "sigma phase"}, "unknown (Fe1.76Cr1.00)", False),
        ({"name": "sigma phase", "accept_unknown": True}, "stainless steel 304", False),
        ({"name": "pyrrhotite", "accept": ["troilite"]}, "pyrite", False),
        ({"name": "quartz"}, "quartz?", True),
        ({"name": "labradorite"}, "plagioclase An55?", True),
        ({"name": "sigma phase", "accept_unknown": True}, "stainless steel 304?", False),
    ],
)
def test_a_name_is_right_by_the_truth_entry(modules, truth, found, right):
    evaluation = modules[0]
    assert evaluation.is_right(truth, found) is right


@pytest.mark.parametrize("which", [1, 2])
def test_the_fourth_and_fifth_sets_accepted_names_belong_to_their_phases(modules, which):
    held_out = modules[which]
    phases = {name for case in held_out.CASES.values() for name, _, _ in case["phases"]}
    assert set(held_out.TRUTH_NAMES) <= phases
    assert 4 <= len(held_out.CASES) <= 6
    assert all(3 <= len(case["phases"]) <= 6 for case in held_out.CASES.values())


@pytest.mark.parametrize(
    ("found", "right"),
    [("plagioclase An20", True), ("plagioclase An30?", True), ("oligoclase", True),
     ("plagioclase An35", False), ("plagioclase An3", False), ("albite", False)],
)  # fmt: skip
def test_the_fifth_sets_oligoclase_is_plagioclase_an10_to_30(modules, found, right):
    evaluation, fifth = modules[0], modules[2]
    truth = {"name": "oligoclase", **fifth.TRUTH_NAMES["oligoclase"]}
    assert evaluation.is_right(truth, found) is right


def _write_case(folder: Path) -> tuple[Path, Path]:
    """A 4x4 two-phase case and a run that labels one true-B pixel as A."""
    import tifffile

    case, out = folder / "case", folder / "run" / "cube"
    case.mkdir(parents=True)
    out.mkdir(parents=True)
    truth = np.zeros((4, 4), np.int16)
    truth[:, 2:] = 1  # A 8 px, B 8 px
    abundances = np.stack([truth == 0, truth == 1]).astype(np.float32)
    np.savez(case / "truth.npz", labels=truth, abundances=abundances)
    meta = {"phases": ["A", "B"], "compositions_wt": {"A": {"Si": 0.5, "O": 0.5},
            "B": {"Fe": 0.7, "O": 0.3}},
            "truth_names": {"A": {"name": "quartz"}, "B": {"name": "hematite"}}}  # fmt: skip
    (case / "meta.json").write_text(json.dumps(meta))
    found = truth.astype(np.uint8) + 1
    found[0, 2] = 1  # one B pixel called A
    tifffile.imwrite(out / "phases.tif", found)
    rows = [{"phase_id": 1, "mineral": "quartz", "mineral_score": 0.9, "wt_Si": 45, "wt_O": 55},
            {"phase_id": 2, "mineral": "goethite", "mineral_score": 0.7, "wt_Fe": 63, "wt_O": 36}]  # fmt: skip
    with (out / "phase_quant.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, ["phase_id", "mineral", "mineral_score", "wt_Si", "wt_Fe", "wt_O"])  # fmt: skip
        writer.writeheader()
        writer.writerows(rows)
    with (out / "modal_mineralogy.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, ["mineral", "abundance_area_percent"])
        writer.writeheader()
        writer.writerows([{"mineral": "quartz", "abundance_area_percent": 52.0},
                          {"mineral": "goethite", "abundance_area_percent": 47.0}])  # fmt: skip
    return case, folder / "run"


def test_a_case_is_scored_with_its_areas(modules, tmp_path):
    evaluation = modules[0]
    case, run = _write_case(tmp_path)
    scored = evaluation.score_case(case, run)
    a, b = scored["phases"]
    assert (a["found"], a["right"], b["found"], b["right"]) == ("quartz", True, "goethite", False)
    assert scored["right"] == scored["right_own_phase"] == 1
    assert a["own_phase"] and b["own_phase"]
    assert a["wt_errors_pct"] == {"Si": -10.0, "O": 10.0}
    assert a["label_area_pp"] == pytest.approx(100 / 16)  # 9 px found for 8
    assert b["label_area_pp"] == pytest.approx(-100 / 16)
    assert a["abundance_area_pp"] == pytest.approx(2.0)  # 52 % for a true mean of 50 %
    assert b["abundance_area_pp"] == pytest.approx(-3.0)


def test_a_miss_is_renamed_with_the_truths_oxygen_per_cation(modules):
    # magnetite read with O 20 % high (a hematite's O): with the truth's O per cation it is
    # magnetite again, the miss an O reading's; a phase without O gets no such name
    evaluation = modules[0]
    magnetite = {"Fe": 0.72359, "O": 0.27641}
    row = {"wt_Fe": "66.8", "wt_O": "33.2", "err_wt_Fe": "0.5", "err_wt_O": "0.5",
           "err_wt_mean_Fe": "0.9"}  # fmt: skip
    assert evaluation.name_with_true_oxygen(row, magnetite) == "magnetite"
    assert evaluation.name_with_true_oxygen({"wt_Cu": "100", "err_wt_Cu": "1"}, {"Cu": 1.0}) == ""
