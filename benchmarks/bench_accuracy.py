"""Accuracy benchmark: phase maps and spectra of every method against synthetic ground truth.

For each case of ``napari_sigma.synthetic.generator.BENCHMARK_CASES`` and each seed, the same cube is analysed
by this project (``default`` preset with an automatic number of phases and with the true number,
``sigma`` preset with the true number), by two baselines (k-means on element maps, NMF of the cube)
and by the original SIGMA (emsigma, in its own venv). Scores: adjusted Rand index, per-phase IoU
after Hungarian matching, phases found, cosine / spectral angle of phase spectra and NMF components
against the pure spectra, the smallest ("trace") phase's IoU and the F1 of the two most similar
("twin") phases.

    python benchmarks/bench_accuracy.py --out bench_out/accuracy.json
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from baselines import kmeans_element_maps, nmf_cube
from common import (
    emsigma_available,
    format_table,
    machine_info,
    run_emsigma,
    write_hspy,
    write_json,
)
from napari_sigma import metrics, synthetic

MethodOutput = tuple[np.ndarray, np.ndarray | None, np.ndarray | None, dict[str, Any]]
METHODS = ("ours_auto", "ours_trueK", "ours_sigma", "kmeans", "nmf", "emsigma")


def run_ours(sample: Any, preset: str, n_phases: int | str) -> MethodOutput:
    """This project's pipeline with a preset and a number of phases ("auto" or an int)."""
    from napari_sigma.pipeline.analysis import AnalysisSettings, run_analysis

    settings = AnalysisSettings.preset(preset, lines=tuple(sample.lines))
    settings = replace(settings, clustering=replace(settings.clustering, n_phases=n_phases))
    result = run_analysis(sample.image, settings)
    extra = {
        "timings": {k: round(v, 3) for k, v in result.timings.items()},
        "criterion": {int(k): float(v) for k, v in result.criterion.items()},
    }
    return result.labels, result.phase_spectra, result.components, extra


def run_kmeans(sample: Any, seed: int) -> MethodOutput:
    """k-means on smoothed element maps with the true number of phases."""
    result = kmeans_element_maps(sample.image, tuple(sample.lines), len(sample.phase_names), seed)
    return result.labels, result.phase_spectra, None, {}


def run_nmf(sample: Any, seed: int) -> MethodOutput:
    """NMF of the cube with the true number of components."""
    result = nmf_cube(sample.image, len(sample.phase_names), seed)
    return result.labels, result.phase_spectra, result.components, {}


def run_peer(sample: Any, work_dir: Path, epochs: int) -> MethodOutput:
    """emsigma (SIGMA's tutorial pipeline, 2x2 binning) with the true number of phases."""
    lines = tuple(sample.lines)
    cube = write_hspy(work_dir / "cube.hspy", sample.image, lines)
    run = run_emsigma(cube, lines, len(sample.phase_names), work_dir / "emsigma", epochs=epochs)
    extra = {"timings": run.timings, "peak_rss_mb": round(run.peak_rss_mb, 1)}
    return run.labels, run.phase_spectra, run.components, extra


def method_runners(
    sample: Any, seed: int, work_dir: Path, epochs: int
) -> dict[str, Callable[[], MethodOutput]]:
    """The methods to compare on one sample, by name."""
    k = len(sample.phase_names)
    return {
        "ours_auto": lambda: run_ours(sample, "default", "auto"),
        "ours_trueK": lambda: run_ours(sample, "default", k),
        "ours_sigma": lambda: run_ours(sample, "sigma", k),
        "kmeans": lambda: run_kmeans(sample, seed),
        "nmf": lambda: run_nmf(sample, seed),
        "emsigma": lambda: run_peer(sample, work_dir, epochs),
    }


def score(sample: Any, output: MethodOutput) -> dict[str, Any]:
    """The accuracy report of one method's output (see metrics.phase_accuracy_report)."""
    labels, spectra, components, extra = output
    report = metrics.phase_accuracy_report(sample, labels, spectra, components)
    report.update(extra)
    return report


def run_case(case: str, seed: int, shape: tuple[int, int], args: argparse.Namespace) -> list[dict]:
    """Every selected method on one generated sample; one result row per method."""
    start = time.perf_counter()
    sample = synthetic.benchmark_case(case, seed=seed, shape=shape)
    print(
        f"\n== {case} seed {seed} {shape}: {len(sample.phase_names)} phases "
        f"{list(sample.phase_names)}, lines {list(sample.lines)} "
        f"(generated in {time.perf_counter() - start:.1f} s)",
        flush=True,
    )
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_acc_") as tmp:
        runners = method_runners(sample, seed, Path(tmp), args.epochs)
        for name in args.methods:
            row: dict[str, Any] = {"case": case, "seed": seed, "method": name}
            start = time.perf_counter()
            try:
                row.update(score(sample, runners[name]()))
            except Exception as error:  # one failing method must not stop the benchmark
                row["error"] = f"{type(error).__name__}: {error}"
                print(f"   {name}: FAILED {row['error'][:300]}", flush=True)
            row["wall_s"] = round(time.perf_counter() - start, 2)
            rows.append(row)
            print(
                f"   {name:11s} ARI {row.get('ari', float('nan')):.3f}  "
                f"phases {row.get('n_phases_found', '-')}  {row['wall_s']:.1f} s",
                flush=True,
            )
    return rows


def table_rows(rows: list[dict]) -> list[dict]:
    """Flatten result rows for the printed table."""
    flat = []
    for row in rows:
        spectra = row.get("phase_spectra_cosine_summary") or {}
        components = row.get("components_cosine_summary") or {}
        twins = row.get("most_similar_pair_f1")
        flat.append(
            {
                "case": row["case"],
                "seed": row["seed"],
                "method": row["method"],
                "ari": row.get("ari"),
                "mean_iou": row.get("mean_iou"),
                "min_iou": row.get("min_iou"),
                "found": (
                    f"{row['n_phases_found']}/{row['n_phases_truth']}"
                    if "n_phases_found" in row
                    else "error"
                ),
                "trace_iou": row.get("smallest_phase_iou"),
                "twin_f1": min(twins) if twins else None,
                "spec_cos": spectra.get("min"),
                "nmf_cos": components.get("min"),
                "wall_s": row.get("wall_s"),
            }
        )
    return flat


COLUMNS = [
    ("case", "case"),
    ("seed", "seed"),
    ("method", "method"),
    ("ari", "ARI"),
    ("mean_iou", "mIoU"),
    ("min_iou", "minIoU"),
    ("found", "K found"),
    ("trace_iou", "trace IoU"),
    ("twin_f1", "twin F1 (min)"),
    ("spec_cos", "spec cos (min)"),
    ("nmf_cos", "NMF cos (min)"),
    ("wall_s", "wall s"),
]


def summary(rows: list[dict]) -> list[dict]:
    """Mean ARI and mean IoU of every method over all cases and seeds."""
    result = []
    for method in dict.fromkeys(row["method"] for row in rows):
        ok = [r for r in rows if r["method"] == method and "ari" in r]
        result.append(
            {
                "method": method,
                "runs": f"{len(ok)}/{sum(r['method'] == method for r in rows)}",
                "ari": float(np.mean([r["ari"] for r in ok])) if ok else None,
                "mean_iou": float(np.mean([r["mean_iou"] for r in ok])) if ok else None,
                "min_iou": float(np.min([r["min_iou"] for r in ok])) if ok else None,
                "wall_s": float(np.mean([r["wall_s"] for r in ok])) if ok else None,
            }
        )
    return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--cases",
        default=",".join(synthetic.BENCHMARK_CASES),
        help="comma-separated case names (default: all)",
    )
    parser.add_argument("--seeds", default="0", help="comma-separated seeds (default 0)")
    parser.add_argument("--shape", default="128,128", help="image shape y,x (default 128,128)")
    parser.add_argument(
        "--methods",
        default=",".join(METHODS),
        help=f"comma-separated subset of {','.join(METHODS)}",
    )
    parser.add_argument("--epochs", type=int, default=20, help="emsigma autoencoder epochs")
    parser.add_argument("--skip-emsigma", action="store_true", help="leave the peer out")
    parser.add_argument("--out", default="bench_out/accuracy.json", help="JSON output")
    args = parser.parse_args(argv)
    args.cases = [c for c in args.cases.split(",") if c]
    args.seeds = [int(s) for s in args.seeds.split(",") if s]
    args.shape = tuple(int(s) for s in args.shape.split(","))
    args.methods = [m for m in args.methods.split(",") if m]
    unknown = set(args.methods) - set(METHODS)
    if unknown:
        parser.error(f"unknown methods {sorted(unknown)}")
    if "emsigma" in args.methods and (args.skip_emsigma or not emsigma_available()):
        if not args.skip_emsigma:
            print(
                "emsigma venv not found (run ../shared/peers/emsigma/setup.sh "
                ".emsigma-venv): skipping the peer"
            )
        args.methods.remove("emsigma")
    return args


def main(argv: list[str] | None = None) -> None:
    """Run the accuracy benchmark, print the tables and write the JSON."""
    args = parse_args(argv)
    start = time.perf_counter()
    rows = [
        row
        for case in args.cases
        for seed in args.seeds
        for row in run_case(case, seed, args.shape, args)
    ]
    print("\nAccuracy per case (IoU after Hungarian matching; cos = cosine vs pure spectra)")
    print(format_table(table_rows(rows), COLUMNS))
    overview = summary(rows)
    print("\nMean over cases and seeds")
    print(
        format_table(
            overview,
            [
                ("method", "method"),
                ("runs", "runs ok"),
                ("ari", "mean ARI"),
                ("mean_iou", "mean IoU"),
                ("min_iou", "worst IoU"),
                ("wall_s", "mean wall s"),
            ],
        )
    )
    out = write_json(
        args.out,
        {
            "shape": args.shape,
            "seeds": args.seeds,
            "cases": args.cases,
            "methods": args.methods,
            "emsigma_epochs": args.epochs,
            "machine": machine_info(),
            "results": rows,
            "summary": overview,
            "total_s": round(time.perf_counter() - start, 1),
        },
    )
    print(f"\nwrote {out} ({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
