"""Minor-element twins over many draws: how often the phase finding keeps them apart.

The accuracy benchmark's ``minor_twin`` case (two olivines 1 wt % Fe apart, Fo90 / Fo89, with
diopside, magnetite and albite; 128 x 128, ~200 counts per pixel) is one draw per seed: a twin F1
of one seed says little about how robust the separation is. This script runs the ``default``
preset with an automatic number of phases on draws ``--start`` .. ``--start + --draws - 1`` and
prints, per draw, the phases found, whether each twin's pixels have a phase of their own, the
twins' F1 and ARI (:func:`napari_sigma.metrics.phase_accuracy_report`) and, for the phase that held
both twins when the split search tested it, that test's statistics against its thresholds
(:class:`~napari_sigma.phases.splitting.SplitSettings`: ``p_value``, ``min_share``,
``min_relative_difference``): which criterion kept a merged pair together and by how much. Last
line: the separation rate (draws with the twins in two phases) and the rate of twin F1 >= 0.9.

    PYTHONPATH=src python benchmarks/bench_twin_rate.py --draws 40 [--json out.json]

The split test's statistics are read by wrapping the name the split search calls
(``napari_sigma.phases.searches.composition_test``): a diagnostic, the results are unchanged.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from common import write_json


def _twin_phase_tests(truth_labels: np.ndarray) -> tuple[list[dict[str, Any]], Any]:
    """A list the wrapped split test appends to (the tests of phases holding >= 100 pixels of
    each twin), and a function that removes the wrapper."""
    import napari_sigma.phases.searches as searches

    seen: list[dict[str, Any]] = []
    original = searches.composition_test

    def recorded(raw, grid, phase, settings, space="linear"):
        test = original(raw, grid, phase, settings, space)
        region = grid == phase
        both = min(int((region & (truth_labels == twin)).sum()) for twin in (1, 2))
        if test is not None and both >= 100:
            seen.append(
                {
                    "p_value": test.p_value,
                    "share": round(test.share, 4),
                    "relative_difference": round(test.relative_difference, 4),
                    "split": bool(test.is_split(settings)),
                    "thresholds": [
                        settings.p_value,
                        settings.min_share,
                        settings.min_relative_difference,
                    ],
                }
            )
        return test

    searches.composition_test = recorded

    def restore() -> None:
        searches.composition_test = original

    return seen, restore


def run_draw(draw: int) -> dict[str, Any]:
    """One ``minor_twin`` draw through the default pipeline (automatic K): its row."""
    from napari_sigma import metrics, synthetic
    from napari_sigma.pipeline import AnalysisSettings, run_analysis

    sample = synthetic.benchmark_case("minor_twin", seed=draw)
    tests, restore = _twin_phase_tests(sample.labels)
    settings = AnalysisSettings.preset("default", lines=tuple(sample.lines))
    start, cpu = time.perf_counter(), time.process_time()
    try:
        result = run_analysis(sample.image, settings)
    finally:
        restore()
    labels = np.asarray(result.labels)
    report = metrics.phase_accuracy_report(sample, labels)
    twins = [int(np.bincount(labels[sample.labels == twin]).argmax()) for twin in (1, 2)]
    return {
        "draw": draw,
        "n_phases": int(result.n_phases),
        "separated": twins[0] != twins[1],
        "twin_f1": round(min(report["most_similar_pair_f1"]), 4),
        "ari": round(report["ari"], 4),
        "split_tests": tests,
        "wall_s": round(time.perf_counter() - start, 2),
        "cpu_s": round(time.process_time() - cpu, 2),
    }


def _why(row: dict[str, Any]) -> str:
    """The split test of the twins' phase, against its thresholds."""
    parts = []
    for test in row["split_tests"]:
        p_max, share_min, relative_min = test["thresholds"]
        parts.append(
            f"p {test['p_value']:.1e} (< {p_max:g}), share {test['share']:.3f} (>= {share_min:g}), "
            f"rel {test['relative_difference']:.4f} (>= {relative_min:g}): "
            f"{'split' if test['split'] else 'kept'}"
        )
    return "; ".join(parts) or "not tested"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=40, help="number of draws (seeds)")
    parser.add_argument("--start", type=int, default=0, help="first draw")
    parser.add_argument("--json", default=None, help="write the rows and the rates here")
    args = parser.parse_args(argv)
    rows = []
    for draw in range(args.start, args.start + args.draws):
        row = run_draw(draw)
        rows.append(row)
        print(
            f"draw {draw:3d}: {row['n_phases']} phases, twins "
            f"{'separated' if row['separated'] else 'MERGED   '} F1 {row['twin_f1']:.3f} "
            f"ARI {row['ari']:.3f} ({row['wall_s']:.1f} s, cpu {row['cpu_s']:.1f} s) | {_why(row)}",
            flush=True,
        )
    separated = sum(row["separated"] for row in rows)
    good = sum(row["twin_f1"] >= 0.9 for row in rows)
    merged = [row["draw"] for row in rows if not row["separated"]]
    summary = {
        "draws": len(rows),
        "separated": separated,
        "twin_f1_at_least_0.9": good,
        "merged_draws": merged,
        "mean_twin_f1": round(float(np.mean([row["twin_f1"] for row in rows])), 4),
    }
    print(
        f"twins separated on {separated}/{len(rows)} draws, twin F1 >= 0.9 on {good}/{len(rows)}, "
        f"mean twin F1 {summary['mean_twin_f1']:.3f}; merged: {merged}"
    )
    if args.json:
        write_json(args.json, {"summary": summary, "rows": rows})
    return summary


if __name__ == "__main__":
    main()
