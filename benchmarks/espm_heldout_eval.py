"""Score the user's path on the held-out espm maps of :mod:`espm_heldout` (names and numbers).

For each case folder (``cube.hspy``, ``truth.npz``, ``meta.json``) ``--run`` runs what a user
runs, ``napari-sigma run cube.hspy --out DIR`` (automatic elements and phases), then every TRUE
phase is scored: the found phase holding most of its pixels (``phases.tif`` against
``truth.npz``'s labels) is its phase, and its name (``phase_quant.csv``'s ``mineral``) is right
when ``bench_quant.name_is_right`` accepts it for the true name of ``meta.json``'s
``truth_names`` (library names, synonyms, series ranges), or, for a phase scored as a whole
series (``accept_series``), when it is that series with any end-member fraction; ``accept``
lists other accepted names and ``accept_unknown`` accepts "unknown (formula)" for a phase the
library does not hold. A name with a "?" (a doubtful match) is scored without it and reported
as doubtful apart; a name right on a found phase that also holds another true phase (two
merged, both "unknown") is counted apart as not on a phase of its own. Reported per true phase: the found phase, its name, score and alternatives, and the relative error (%) of
each element of >= 5 wt % (``compositions_wt``); per case the found phases that are no true
phase's (split phases), and the total.

    python benchmarks/espm_heldout_eval.py --run --out /tmp/heldout_runs [--cases ...]
    python benchmarks/espm_heldout_eval.py --out /tmp/heldout_runs      # score existing runs
"""

from __future__ import annotations

import argparse
import csv
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_quant import name_is_right

HELDOUT = Path.home() / ".cache" / "napari-sigma" / "heldout"


def read_tif(path: Path) -> np.ndarray:
    import tifffile

    return np.asarray(tifffile.imread(path))


def run_case(case_dir: Path, out: Path, command: list[str], options: list[str] = ()) -> dict:
    """``napari-sigma run cube.hspy --out out [options]`` (fresh folder); wall time and exit
    status."""
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    done = subprocess.run(
        [*command, "run", str(case_dir / "cube.hspy"), "--out", str(out), *options],
        capture_output=True, text=True,
    )  # fmt: skip
    (out / "cli.log").write_text(done.stdout + done.stderr)
    return {"rc": done.returncode, "wall_s": round(time.perf_counter() - start, 1)}


def _found_folder(out: Path) -> Path:
    found = sorted(out.rglob("phase_quant.csv"))
    if not found:
        raise FileNotFoundError(f"{out}: no phase_quant.csv (see cli.log)")
    return found[0].parent


def is_right(truth: dict, found: str) -> bool:
    """``bench_quant.name_is_right`` for ``truth`` (meta.json's truth_names entry); beside it
    the entry's ``accept`` (other names of the same phase: a name, or a series name with any
    fraction), ``accept_series`` (a whole series) and ``accept_unknown`` (a phase the library
    does not hold: "unknown (formula)" is its right answer). A doubtful name ("plagioclase
    An37?") is scored as its name without the "?"."""
    found = found.replace("?", "")
    if name_is_right(truth["name"], found):
        return True
    accepted = [*truth.get("accept", ()), *[truth[k] for k in ("accept_series",) if k in truth]]
    if any(found == a or found.startswith(f"{a} ") for a in accepted):
        return True
    return bool(truth.get("accept_unknown")) and found.startswith("unknown")


def name_with_true_oxygen(row: dict, truth_wt: dict[str, float]) -> str:
    """The name ``minerals.identify_composition`` gives a found phase's quantified composition
    (``phase_quant.csv``'s row: wt % and counting errors) with its O set to the truth's O per
    cation mass, the cations as measured; ``""`` where O is not in both. A miss named right
    this way is an O reading's (the light-element physics), not the ranking's or the cations'.
    Without the spectrum's re-ranking of the user's path: a diagnostic."""
    from napari_sigma.minerals.identify import identify_composition

    wt = {k[3:]: float(v) for k, v in row.items() if k.startswith("wt_") and v not in ("", None)}
    err = {k[7:]: float(v) for k, v in row.items()
           if k.startswith("err_wt_") and not k.startswith("err_wt_mean_") and v not in ("", None)}  # fmt: skip
    cations = sum(v for el, v in wt.items() if el != "O")
    true_cations = sum(c for el, c in truth_wt.items() if el != "O")
    if "O" not in wt or "O" not in truth_wt or cations <= 0 or true_cations <= 0:
        return ""
    wt["O"] = 100.0 * truth_wt["O"] * cations / (100.0 * true_cations)
    return identify_composition(wt, err).name


def score_case(case_dir: Path, out: Path) -> dict:
    """Every true phase of a case against the user's path's output in ``out``."""
    meta = json.loads((case_dir / "meta.json").read_text())
    truth_labels = np.load(case_dir / "truth.npz")["labels"]
    folder = _found_folder(out)
    labels = read_tif(folder / "phases.tif").astype(np.int64)
    with (folder / "phase_quant.csv").open() as handle:
        rows = {int(r["phase_id"]): r for r in csv.DictReader(handle)}
    phases = meta["phases"]
    n_found = int(labels.max()) + 1
    overlap = np.zeros((len(phases), n_found), np.int64)
    np.add.at(overlap, (truth_labels.ravel(), labels.ravel()), 1)
    true_abundance = np.load(case_dir / "truth.npz")["abundances"].reshape(len(phases), -1)
    modal = _modal_rows(folder)
    matched = [int(np.argmax(np.r_[0, overlap[t, 1:]])) for t in range(len(phases))]
    scored, used = [], set()
    for t, phase in enumerate(phases):
        counts = overlap[t].copy()
        counts[0] = 0  # unassigned pixels are no phase
        pid = int(np.argmax(counts))
        row = rows.get(pid, {})
        found = row.get("mineral", "") if pid else ""
        truth = meta.get("truth_names", {}).get(phase, {"name": phase})
        errors = {}
        for el, c in meta["compositions_wt"][phase].items():
            if c >= 0.05 and row.get(f"wt_{el}") not in (None, ""):
                errors[el] = round(100 * (float(row[f"wt_{el}"]) / 100 / c - 1), 1)
        used.add(pid)
        right = bool(pid) and is_right(truth, found)
        true_oxygen = (
            name_with_true_oxygen(row, meta["compositions_wt"][phase]) if row and not right else ""
        )
        scored.append({
            "truth": phase, "phase": pid, "found": found, "right": right,
            "score": row.get("mineral_score", ""), "alternatives": row.get("alternatives", ""),
            "doubtful": "?" in found.split(" (")[0],
            "own_phase": bool(pid) and matched.count(pid) == 1,
            "pixels_of_truth": round(float(counts[pid] / max(overlap[t].sum(), 1)), 3),
            "wt_errors_pct": errors,
            "label_area_pp": round(100 * float((labels == pid).mean() - (truth_labels == t).mean()), 2),
            "abundance_area_pp": _abundance_error(
                modal, found, pid, matched, rows, 100 * float(true_abundance[t].mean())),
            "name_with_true_oxygen": true_oxygen,
            "right_with_true_oxygen": bool(true_oxygen) and is_right(truth, true_oxygen),
        })  # fmt: skip
    extra = [{"phase": pid, "found": r.get("mineral", ""),
              "truth_of_most_pixels": phases[int(np.argmax(overlap[:, pid]))]}
             for pid, r in rows.items() if pid not in used]  # fmt: skip
    return {"case": case_dir.name, "phases": scored, "extra_phases": extra,
            "n_found": len(rows), "right": sum(p["right"] for p in scored),
            "right_own_phase": sum(p["right"] and p["own_phase"] for p in scored)}  # fmt: skip


def _modal_rows(folder: Path) -> dict[str, dict]:
    """``modal_mineralogy.csv``'s rows by mineral (empty when the run wrote none)."""
    path = folder / "modal_mineralogy.csv"
    if not path.exists():
        return {}
    with path.open() as handle:
        return {r["mineral"]: r for r in csv.DictReader(handle)}


def _abundance_error(modal, found, pid, matched, rows, true_percent) -> float | None:
    """The report's ``abundance_area_percent`` of a true phase's found phase minus the true mean
    abundance (percentage points), where the comparison is one to one: the found phase is the
    match of this true phase only and no other found phase has its mineral; else None."""
    same_name = [p for p, r in rows.items() if r.get("mineral", "") == found]
    row = modal.get(found)
    if not pid or matched.count(pid) != 1 or len(same_name) != 1 or not row:
        return None
    value = row.get("abundance_area_percent", "")
    return None if value == "" else round(float(value) - true_percent, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heldout", type=Path, default=HELDOUT)
    parser.add_argument("--out", type=Path, required=True, help="folder of the runs")
    parser.add_argument("--cases", nargs="*", default=None)
    parser.add_argument("--run", action="store_true", help="run napari-sigma first")
    parser.add_argument(
        "--command", nargs="+", default=[str(Path(sys.executable).parent / "napari-sigma")]
    )
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--options", default="",
                        help="more options of napari-sigma run, one string: --options='--coating C'")  # fmt: skip
    args = parser.parse_args()
    heldout = args.heldout.expanduser()
    cases = args.cases or sorted(p.parent.name for p in heldout.glob("*/meta.json"))
    results, right, total, flagged, own = [], 0, 0, [0, 0], 0
    for case in cases:
        runs = {}
        if args.run:
            runs = run_case(
                heldout / case, args.out / case, args.command, shlex.split(args.options)
            )
        row = {**score_case(heldout / case, args.out / case), **runs}
        results.append(row)
        right += row["right"]
        own += row["right_own_phase"]
        total += len(row["phases"])
        for p in row["phases"]:
            verdict = ("right" if p["right"] else "WRONG") + (
                " (doubtful)" if p["doubtful"] else ""
            )
            verdict += "" if p["own_phase"] else " (a phase shared with another true phase)"
            if p["name_with_true_oxygen"]:
                verdict += f" (with the truth's O per cation: {p['name_with_true_oxygen']})"
            print(f"{case}: {p['truth']} -> P{p['phase']} {p['found']} ({p['score']}) "
                  f"{verdict}; alternatives {p['alternatives']}; "
                  f"wt errors % {p['wt_errors_pct']}; area pp: labels {p['label_area_pp']}, "
                  f"abundance {p['abundance_area_pp']}", flush=True)  # fmt: skip
        for e in row["extra_phases"]:
            print(f"{case}: extra P{e['phase']} {e['found']} (mostly {e['truth_of_most_pixels']})")
        status = f", rc {runs['rc']}, {runs['wall_s']} s" if runs else ""
        print(f"{case}: {row['right']}/{len(row['phases'])} names right, {row['n_found']} phases "
              f"found for {len(row['phases'])}{status}", flush=True)  # fmt: skip
        doubtful = [p["right"] for p in row["phases"] if p["doubtful"]]
        flagged[0] += sum(doubtful)
        flagged[1] += len(doubtful) - sum(doubtful)
    print(f"\nHELD-OUT names right: {right}/{total}")
    print(f"right on a phase of its own (not shared with another true phase): {own}/{total}")
    print(f"names marked doubtful ('?'): {flagged[0]} right, {flagged[1]} wrong")
    misses = [(r["case"], p) for r in results for p in r["phases"] if not p["right"]]
    by_oxygen = [f"{c}/{p['truth']}" for c, p in misses if p["right_with_true_oxygen"]]
    print(f"misses named right with the truth's O per cation (the O reading's): "
          f"{len(by_oxygen)}/{len(misses)}{': ' + ', '.join(by_oxygen) if by_oxygen else ''}")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
