"""Wall time of opening EDS files in napari through the plugin's reader, in a fresh process.

Each file is opened with ``viewer.open(path, plugin="napari-sigma-eds")`` in a new viewer (not
shown), as a user drops a file: the first open of the process includes starting the reading
worker (:mod:`napari_sigma.io.reading_process.isolation`), later ones reuse it. ``--prewarm S`` starts the worker
S seconds before the first open (:func:`napari_sigma.io.reading_process.isolation.prewarm`), as the plugin's dock
does when it is created.

    xvfb-run -a python benchmarks/bench_open.py ../shared/data/eds/jeol/rawdata.ASW --repeat 2
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

PLUGIN = "napari-sigma-eds"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--repeat", type=int, default=2, help="opens of each file")
    parser.add_argument("--prewarm", type=float, default=None, help="seconds of prewarm")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    import napari

    from napari_sigma.io.reading_process import isolation

    viewer = napari.Viewer(show=False)
    print(f"napari viewer ready in {time.perf_counter() - started:.1f} s", flush=True)
    if args.prewarm is not None:
        isolation.prewarm()
        time.sleep(args.prewarm)
    results = []
    for path in args.files:
        for attempt in range(args.repeat):
            viewer.layers.clear()
            start = time.perf_counter()
            viewer.open(str(path), plugin=PLUGIN)
            seconds = time.perf_counter() - start
            results.append({"file": path.name, "open": attempt + 1, "seconds": round(seconds, 2)})
            print(f"{path.name} open {attempt + 1}: {seconds:.2f} s", flush=True)
    load = os.getloadavg()[0]
    print(json.dumps({"load_1min": round(load, 2), "results": results}))
    viewer.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
