"""Accuracy on the espm development cases: this project against the two k-means baselines.

The five STEM-EDS cases of ``shared/data/espm_dev`` were simulated by espm, an independent
simulator (see its README). Each case is read from its ``cube.hspy`` like any user file, analysed
with the ``default`` preset and ``--phases auto`` (or a given number), and scored with the
folder's own ``baselines.py`` (``score``: ARI, ARI on unmixed pixels, mean IoU, trace IoU,
minor-pair F1). The baselines' scores are read from ``baseline_preds/<case>/<method>/scores.json``.

    python benchmarks/bench_espm.py [--cases a,b] [--data DIR] [--out bench_out/espm.json]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "espm_dev"
CASES = (
    "oxide_ceramic_n120",
    "steel_carbides_n40",
    "peridotite_n15",
    "twin_garnets_n300",
    "catalyst_n60",
)
BASELINES = ("kmeans", "kmeans_smooth")
#: The acceptance margin over the better baseline's ARI.
ARI_MARGIN = 0.01


def data_folder(path: str | Path | None = None) -> Path:
    """The espm_dev folder: ``path``, else ``$ESPM_DEV``, else ``/work/shared/data/espm_dev``."""
    import os

    for candidate in (path, os.environ.get("ESPM_DEV"), "/work/shared/data/espm_dev", DEFAULT_DATA):
        if candidate and (Path(candidate) / "baselines.py").exists():
            return Path(candidate).resolve()
    raise FileNotFoundError("espm_dev data not found: give --data or set ESPM_DEV")


def scorer(data: Path) -> Any:
    """The case folder's own ``baselines.py`` module (its ``score`` function)."""
    spec = importlib.util.spec_from_file_location("espm_baselines", data / "baselines.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def analyse_case(case_dir: Path, n_phases: int | str = "auto", **overrides: Any) -> Any:
    """``run_analysis`` with the default preset on a case's ``cube.hspy``."""
    from napari_sigma.io.readers.reading import read_spectrum_image
    from napari_sigma.pipeline.analysis import AnalysisSettings, run_analysis

    image = read_spectrum_image(case_dir / "cube.hspy")
    settings = AnalysisSettings.preset("default", **overrides)
    settings = replace(settings, clustering=replace(settings.clustering, n_phases=n_phases))
    return run_analysis(image, settings)


def score_result(result: Any, case_dir: Path, module: Any) -> dict[str, Any]:
    """The espm scorer's figures for an analysis result (labels 0 = unassigned)."""
    with tempfile.TemporaryDirectory() as tmp:
        pred = Path(tmp) / "ours"
        pred.mkdir()
        np.save(pred / "labels.npy", result.labels.astype(np.int64) - 1)
        np.save(pred / "spectra.npy", result.phase_spectra.astype(np.float32))
        return module.score(case_dir, pred)


def baseline_scores(case_dir: Path) -> dict[str, dict[str, Any]]:
    """The README's baseline scores of a case, by method."""
    out = {}
    for method in BASELINES:
        path = case_dir.parent / "baseline_preds" / case_dir.name / method / "scores.json"
        out[method] = json.loads(path.read_text())
    return out


def acceptance(ours: dict[str, Any], baselines: dict[str, dict[str, Any]]) -> dict[str, bool]:
    """The issue's acceptance checks of one case: K, ARI margin, trace IoU, minor-pair F1."""
    best = max(b["ari"] for b in baselines.values())
    checks = {
        "true_k": ours["n_pred_clusters"] == ours["n_phases"],
        "ari": ours["ari"] >= best + ARI_MARGIN,
    }
    if "trace_iou" in ours:
        checks["trace_iou"] = ours["trace_iou"] >= 0.7
    if "minor_pair_f1" in ours:
        checks["minor_pair_f1"] = ours["minor_pair_f1"] >= 0.9
    return checks


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--data", default=None, help="the espm_dev folder")
    parser.add_argument("--phases", default="auto", help="'auto' or a number")
    parser.add_argument("--out", type=Path, default=None, help="JSON with every figure")
    args = parser.parse_args(argv)
    data = data_folder(args.data)
    module = scorer(data)
    n_phases = args.phases if args.phases == "auto" else int(args.phases)
    rows, failed = [], 0
    header = "| case | method | K (true) | ARI | ARI core | mean IoU | trace IoU | minor F1 | wall s | checks |"
    lines = [header, "|" + "---|" * 10]
    for case in args.cases.split(","):
        case_dir = data / case
        start = time.perf_counter()
        result = analyse_case(case_dir, n_phases)
        wall = time.perf_counter() - start
        ours = score_result(result, case_dir, module)
        ours["wall_s"] = round(wall, 1)
        ours["criterion"] = {int(k): float(v) for k, v in result.criterion.items()}
        base = baseline_scores(case_dir)
        checks = acceptance(ours, base)
        failed += not all(checks.values())
        rows.append({"case": case, "ours": ours, "baselines": base, "checks": checks})
        verdict = ", ".join(f"{k} {'ok' if v else 'FAIL'}" for k, v in checks.items())
        for name, s in [("ours", ours), *base.items()]:
            lines.append(
                f"| {case} | {name} | {s['n_pred_clusters']} ({s['n_phases']}) | {_fmt(s['ari'])} | "
                f"{_fmt(s['ari_core'])} | {_fmt(s['mean_iou'])} | {_fmt(s.get('trace_iou'))} | "
                f"{_fmt(s.get('minor_pair_f1'))} | {_fmt(s.get('wall_s'))} | "
                f"{verdict if name == 'ours' else ''} |"
            )
        print(lines[-3], flush=True)
    print("\n".join(lines))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(rows, indent=1, default=float))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
