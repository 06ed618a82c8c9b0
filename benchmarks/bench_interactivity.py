"""How fast the phase table follows an edit of the label image (PhaseStatistics.update).

Builds a seeded Poisson spectrum image (2048 channels, uint16) and a Voronoi-grain label image, then
times the update after a brush stroke (disk of radius 10), a bucket fill of one grain (~5 % of the
pixels) and an erase (disk of radius 10 set to 0), with and without region statistics. Each edit is
timed ``--repeats`` times (the label image is reverted, untimed, in between); the median is reported.

Run: ``python benchmarks/bench_interactivity.py [--sizes 512 1024] [--out bench_out/interactivity.json]``

The cube is a seeded Poisson band of 32 rows repeated down the image with a shift along x (drawing
2**31 Poisson numbers would take minutes); the timings do not depend on the values.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from napari_sigma.phases.statistics import PhaseStatistics

N_CHANNELS = 2048
N_LINES = 12
N_GRAINS = 20
N_PHASES = 6
BRUSH_RADIUS = 10


def make_cube(size: int, seed: int) -> np.ndarray:
    """A (size, size, 2048) uint16 cube of Poisson counts (~200 counts per pixel)."""
    rng = np.random.default_rng(seed)
    band_rows = min(32, size)
    band = rng.poisson(0.1, size=(band_rows, size, N_CHANNELS)).astype(np.uint16)
    cube = np.empty((size, size, N_CHANNELS), dtype=np.uint16)
    for start in range(0, size, band_rows):
        rows = min(band_rows, size - start)
        shift = (start * 37) % size
        cube[start : start + rows, shift:] = band[:rows, : size - shift]
        cube[start : start + rows, :shift] = band[:rows, size - shift :]
    return cube


def make_labels(size: int, seed: int) -> np.ndarray:
    """Voronoi grains (N_GRAINS cells) labelled with N_PHASES phases, int32 (size, size)."""
    from scipy.spatial import cKDTree

    rng = np.random.default_rng(seed)
    seeds = rng.uniform(0, size, size=(N_GRAINS, 2))
    yy, xx = np.mgrid[:size, :size]
    _, cell = cKDTree(seeds).query(np.column_stack([yy.ravel(), xx.ravel()]))
    phase_of_cell = np.arange(N_GRAINS) % N_PHASES + 1
    return phase_of_cell[cell].reshape(size, size).astype(np.int32), cell.reshape(size, size)


def disk(shape: tuple[int, int], centre: tuple[int, int], radius: int) -> np.ndarray:
    """Boolean mask of a disk."""
    yy, xx = np.ogrid[: shape[0], : shape[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2


def edits(labels: np.ndarray, cells: np.ndarray) -> dict[str, np.ndarray]:
    """The edited label images: brush stroke, bucket fill of a ~5 % grain, erase."""
    size = labels.shape[0]
    centre = (size // 2, size // 3)
    brush = labels.copy()
    brush[disk(labels.shape, centre, BRUSH_RADIUS)] = N_PHASES + 1  # a new label, as a user would
    cell_sizes = np.bincount(cells.ravel())
    grain = int(np.argmin(np.abs(cell_sizes / cells.size - 0.05)))
    fill = labels.copy()
    region = cells == grain
    fill[region] = labels[region][0] % N_PHASES + 1
    erase = labels.copy()
    erase[disk(labels.shape, (size // 3, size // 2), BRUSH_RADIUS)] = 0
    return {"brush": brush, "fill": fill, "erase": erase}


def time_updates(stats: PhaseStatistics, base: np.ndarray, edited: np.ndarray, repeats: int):
    """Median and min (ms) of ``stats.update(edited)`` starting from ``base`` each time."""
    times = []
    for _ in range(repeats):
        stats.update(base)
        start = time.perf_counter()
        stats.update(edited)
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times)), 1e3 * float(np.min(times))


def bench_size(size: int, repeats: int, seed: int) -> list[dict]:
    """All measurements at one image size."""
    start = time.perf_counter()
    cube = make_cube(size, seed)
    labels, cells = make_labels(size, seed)
    intensities = np.random.default_rng(seed).random((size, size, N_LINES), dtype=np.float32)
    lines = [f"L{i}_Ka" for i in range(N_LINES)]
    print(f"{size}x{size}x{N_CHANNELS}: data built in {time.perf_counter() - start:.1f} s")
    rows = []
    for regions in (True, False):
        stats = PhaseStatistics(cube, intensities, lines, pixel_size_um=0.1, regions=regions)
        start = time.perf_counter()
        stats.update(labels)
        first_ms = 1e3 * (time.perf_counter() - start)
        rows.append(_row(size, "first (full)", regions, labels.size, first_ms, first_ms))
        for name, edited in edits(labels, cells).items():
            changed = int(np.count_nonzero(edited != labels))
            median, best = time_updates(stats, labels, edited, repeats)
            rows.append(_row(size, name, regions, changed, median, best))
    del cube
    return rows


def _row(size, edit, regions, changed, median, best) -> dict:
    row = {"size": size, "edit": edit, "regions": regions, "changed_px": changed}
    row |= {"changed_pct": round(100 * changed / size**2, 2)}
    row |= {"median_ms": round(median, 2), "min_ms": round(best, 2)}
    print(
        f"{size:5d}  {edit:13s} regions={regions!s:5s} {changed:8d} px "
        f"({row['changed_pct']:5.2f} %)  median {median:8.2f} ms  min {best:8.2f} ms"
    )
    return row


def main() -> None:
    """Run the benchmark and write the JSON report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("bench_out/interactivity.json"))
    args = parser.parse_args()
    rows = []
    for size in args.sizes:
        rows += bench_size(size, args.repeats, args.seed)
    report = {
        "benchmark": "interactivity",
        "channels": N_CHANNELS,
        "dtype": "uint16",
        "repeats": args.repeats,
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "numpy": np.__version__,
        "results": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
