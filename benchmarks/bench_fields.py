"""Many fields: a shared model fitted once, applied to every field, locally and on dask workers.

Prints the fit time, then fields per second of ``apply`` for the local executor and for a
``LocalCluster`` of 1, 2, ... worker processes (one thread each) on this machine, and checks that
every cluster run gives the local labels. On a machine with few cores the workers share them: the
throughput shows the overhead of the cluster as much as its gain.

    python benchmarks/bench_fields.py --fields 8 --size 96 --workers 1 2
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

MINERALS = ("quartz", "albite", "orthoclase", "diopside", "magnetite", "pyrite")


def write_fields(folder: Path, n_fields: int, size: int) -> list[Path]:
    from napari_sigma.io.results.writing import write_hspy
    from napari_sigma.synthetic.generator import make_synthetic

    paths = []
    for seed in range(n_fields):
        sample = make_synthetic(seed=100 + seed, shape=(size, size), phases=MINERALS)
        paths.append(write_hspy(folder / f"f{seed}.hspy", sample.image, compression=None))
    return paths


def apply_all(model, paths, out: Path, runner) -> tuple[float, list[np.ndarray]]:
    from napari_sigma.io.results.export import read_labels_tiff
    from napari_sigma.pipeline.batch import apply_field

    start = time.perf_counter()
    outcomes = list(runner.map(apply_field, [(p, model, out, p.stem, None) for p in paths]))
    seconds = time.perf_counter() - start
    assert not any(o.error for o in outcomes), [o.error for o in outcomes]
    return seconds, [read_labels_tiff(out / p.stem / "phases.tif")[0] for p in paths]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fields", type=int, default=8)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()

    from distributed import LocalCluster

    from napari_sigma.compute.distributed import DaskExecutor, LocalExecutor
    from napari_sigma.compute.progress import run_to_completion
    from napari_sigma.pipeline.analysis import AnalysisSettings
    from napari_sigma.pipeline.batch import LimitedField
    from napari_sigma.pipeline.fitting import fit_model

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        paths = write_fields(folder, args.fields, args.size)
        start = time.perf_counter()
        settings = AnalysisSettings(device="cpu")
        model = run_to_completion(fit_model([LimitedField(p) for p in paths], settings))
        print(f"fit on {model.info['sampled_pixels']} pixels of {args.fields} fields "
              f"({args.size}x{args.size}): {time.perf_counter() - start:.1f} s")  # fmt: skip
        seconds, reference = apply_all(model, paths, folder / "local", LocalExecutor())
        print(f"local:     {args.fields / seconds:6.2f} fields/s ({seconds:.1f} s)")
        for n in args.workers:
            cluster = LocalCluster(
                n_workers=n, threads_per_worker=1, dashboard_address=None,
                worker_dashboard_address=None,
            )  # fmt: skip
            with cluster as c:
                with DaskExecutor(c.scheduler_address) as runner:
                    list(runner.map(abs, range(n)))  # workers started
                    seconds, labels = apply_all(model, paths, folder / f"w{n}", runner)
            same = all(np.array_equal(a, b) for a, b in zip(reference, labels, strict=True))
            print(f"{n} worker{'s' if n > 1 else ' '}: {args.fields / seconds:6.2f} fields/s "
                  f"({seconds:.1f} s), labels equal to local: {same}")  # fmt: skip


if __name__ == "__main__":
    main()
