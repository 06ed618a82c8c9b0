"""Clustering features: raw line windows (the default) against fitted line-family intensities.

Runs the ``default`` preset with an automatic number of phases twice per case, once with
``features.background="none"`` (raw windows) and once with ``"fit"`` (the per-pixel fit of
:mod:`napari_sigma.xray.image_fit`), on the synthetic benchmark cases (``--seeds``) and on the
espm development cases in ``../shared/data/espm_dev`` (scored with its own ``baselines.score``).
The latent is PCA in both arms (the default ``"spatial"`` clustering does not use it).

    python benchmarks/bench_features.py --seeds 0,1,2,3
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from napari_sigma import metrics, synthetic
from napari_sigma.pipeline.analysis import AnalysisSettings, run_analysis

ESPM = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "espm_dev"
ARMS = ("none", "fit")


def _settings(background: str, **overrides) -> AnalysisSettings:
    settings = AnalysisSettings.preset("default", **overrides)
    return replace(
        settings,
        features=replace(settings.features, background=background),
        latent=replace(settings.latent, method="pca"),
    )


def synthetic_rows(cases: list[str], seeds: list[int]) -> list[dict]:
    rows = []
    for case in cases:
        for seed in seeds:
            sample = synthetic.benchmark_case(case, seed=seed)
            for arm in ARMS:
                start = time.perf_counter()
                result = run_analysis(sample.image, _settings(arm, lines=tuple(sample.lines)))
                ari = metrics.adjusted_rand_index(sample.labels, result.labels)
                rows.append(
                    dict(case=case, seed=seed, features=arm, ari=round(float(ari), 4),
                         phases=result.n_phases, truth=len(sample.phase_names),
                         seconds=round(time.perf_counter() - start, 1))
                )  # fmt: skip
                print(json.dumps(rows[-1]), flush=True)
    return rows


def espm_rows(espm: Path) -> list[dict]:
    from napari_sigma.io.readers.reading import read_spectrum_image

    spec = importlib.util.spec_from_file_location("espm_baselines", espm / "baselines.py")
    baselines = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(baselines)
    rows = []
    for case in sorted(p.name for p in espm.iterdir() if (p / "cube.hspy").exists()):
        image = read_spectrum_image(espm / case / "cube.hspy")
        for arm in ARMS:
            result = run_analysis(image, _settings(arm))
            with tempfile.TemporaryDirectory() as tmp:
                pred = Path(tmp) / arm
                pred.mkdir()
                np.save(pred / "labels.npy", result.labels)
                score = baselines.score(espm / case, pred)
            rows.append(
                dict(case=case, features=arm, ari=score["ari"], phases=result.n_phases,
                     truth=score["n_phases"], trace_iou=score.get("trace_iou"),
                     minor_pair_f1=score.get("minor_pair_f1"))
            )  # fmt: skip
            print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(synthetic.BENCHMARK_CASES))
    parser.add_argument("--seeds", default="0,1,2,3")
    parser.add_argument("--espm", default=str(ESPM), help="espm_dev folder ('' to skip)")
    parser.add_argument("--out", default="bench_out/features.json")
    args = parser.parse_args()
    rows = synthetic_rows(args.cases.split(","), [int(s) for s in args.seeds.split(",")])
    if args.espm and Path(args.espm).is_dir():
        rows += espm_rows(Path(args.espm))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
