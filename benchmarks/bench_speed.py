"""Speed benchmark: per-stage wall times and peak memory of the pipeline, and the ratio to emsigma.

Every measurement runs in its own subprocess (this script with ``--worker``) so that its peak
resident memory (``os.wait4``) is its own. Cubes of ``size`` x ``size`` x 2048 channels (uint16) are
Poisson samples of a few pure phase spectra from :mod:`napari_sigma.synthetic.generator`, laid out by an
upscaled synthetic label image; the same seed gives the same cube in every process.

Part 1 (``--sizes``): the ``default`` preset end to end (automatic number of phases) on each size
and device (CPU, and CUDA when present). Part 2 (``--emsigma-sizes``): emsigma (SIGMA's tutorial:
2x2 binning, 20 epochs, true K) against this project with the same binning, epochs and K — the
``default`` preset (``ours_b2``; ``ours_b2_cli``: the same analysis as ``napari-sigma run`` makes
it, without the latent space that only napari draws for this preset: the same labels) and the
``sigma`` preset (``ours_sigma``) — on the same cube, in the same run.

Before any measurement the project's sources are compiled to bytecode, as ``pip install`` does
(:func:`precompiled_sources`; removed at the end; ``--no-precompile``: not), so that every measured
process starts as an installed package's does, emsigma's included.

Part 3 (``--e2e-sizes``): the whole ``napari-sigma run`` process on the cube written as an ``.hspy``
file (read, analysis, every output file), side by side with processes that only read that file
and make one feature pass over it (the line-window projection of the features stage): one reading
in its own process, one reading in a child process as ``napari-sigma run`` does. ``--e2e-repeats``
rounds of the three (every other round in reverse order); the ratio of each round's run to each
floor measured beside it, and the median over the rounds (target: within 3x), against either
read and against the faster of the two in each round (``cheapest``). Every process's user and
kernel CPU is kept: the read's kernel time (page allocation) is what moves from run to run.
At each process's start the row records how much of the cube's file is in the page cache
(``cube_cached_mb``; a partly evicted file is read from the disk) and the free and available
memory (``mem_free_mb``, ``mem_available_mb``: a read into new memory when little is free makes
the kernel reclaim pages first); ``--e2e-warm`` reads the file once before each process.

    python benchmarks/bench_speed.py --out bench_out/speed.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from common import (
    emsigma_available,
    format_table,
    machine_info,
    run_emsigma,
    run_measured,
    run_subprocess,
    write_hspy,
    write_json,
)
from napari_sigma.spectrum_image import SpectrumImage

N_CHANNELS = 2048
COUNTS_PER_PIXEL = 200
TARGET_BINS = 1 << 24  # histogram bins per generation block (128 MB of int64)
TABLE_BITS = 20


PHASE_SETS = {
    "six": ("quartz", "albite", "orthoclase", "diopside", "magnetite", "pyrite"),
    "eight": (
        *("quartz", "albite", "orthoclase", "diopside"),
        *("anorthite", "calcite", "magnetite", "pyrite"),
    ),
}


def _template(seed: int, phases: str = "six", dose: float = COUNTS_PER_PIXEL) -> Any:
    """A small synthetic sample whose pure spectra and layout seed the speed cubes."""
    from napari_sigma.synthetic import generator as synthetic

    return synthetic.make_synthetic(
        seed=seed,
        shape=(128, 128),
        phases=PHASE_SETS[phases],
        n_channels=N_CHANNELS,
        counts_per_pixel=dose,
    )


def _upscale(labels: np.ndarray, size: int) -> np.ndarray:
    rows = np.arange(size) * labels.shape[0] // size
    cols = np.arange(size) * labels.shape[1] // size
    return labels[np.ix_(rows, cols)]


def _inverse_cdf_tables(pure: np.ndarray) -> np.ndarray:
    """Per phase, the channel of each of ``2**TABLE_BITS`` equally spaced cumulative probabilities."""
    cdf = np.cumsum(pure / pure.sum(axis=1, keepdims=True), axis=1)
    grid = (np.arange(1 << TABLE_BITS) + 0.5) / (1 << TABLE_BITS)
    tables = [np.searchsorted(row, grid) for row in cdf]
    return np.minimum(np.stack(tables), pure.shape[1] - 1).astype(np.int32)


def speed_cube(
    size: int, seed: int = 0, phases: str = "six", dose: float = COUNTS_PER_PIXEL
) -> tuple[SpectrumImage, tuple[str, ...], int]:
    """A ``size`` x ``size`` x 2048 uint16 Poisson cube, generated block by block.

    Each pixel draws a Poisson number of events from its phase's pure spectrum; each event's
    channel comes from a 2**20-entry inverse-CDF table (probabilities resolved to 1e-6).

    Returns
    -------
    image, lines, n_phases
    """
    template = _template(seed, phases, dose)
    labels = _upscale(np.asarray(template.labels), size).astype(np.int64) - 1
    pure = np.asarray(template.pure_spectra, dtype=np.float64)
    n_phases, n_channels = pure.shape
    totals, tables = pure.sum(axis=1), _inverse_cdf_tables(pure)
    counts = np.zeros((size, size, n_channels), dtype=np.uint16)
    rng = np.random.default_rng(seed)
    rows_per_block = max(1, TARGET_BINS // (size * n_channels))
    for top in range(0, size, rows_per_block):
        block = labels[top : top + rows_per_block].ravel()
        pixel = np.repeat(np.arange(block.size), rng.poisson(totals[block]))
        channel = tables[block[pixel], rng.integers(0, 1 << TABLE_BITS, pixel.size)]
        histogram = np.bincount(pixel * n_channels + channel, minlength=block.size * n_channels)
        counts[top : top + rows_per_block] = histogram.reshape(-1, size, n_channels)
    image = replace(template.image, counts=counts, title=f"speed {size}x{size}")
    return image, tuple(template.lines), n_phases


def save_cube(
    size: int, seed: int, stem: Path, phases: str = "six", dose: float = COUNTS_PER_PIXEL
) -> None:
    """Generate a speed cube and store it as ``stem.npy`` plus its calibration in ``stem.json``."""
    image, lines, n_phases = speed_cube(size, seed, phases, dose)
    np.save(stem.with_suffix(".npy"), image.counts)
    info = {
        "offset": image.energy.offset,
        "scale": image.energy.scale,
        "lines": lines,
        "n_phases": n_phases,
        "beam_energy": image.beam_energy,
        "pixel_size": image.pixel_size,
        "pixel_unit": image.pixel_unit,
    }
    stem.with_suffix(".json").write_text(json.dumps(info))


def load_cube(stem: Path) -> tuple[SpectrumImage, tuple[str, ...], int]:
    """A cube stored by :func:`save_cube`: image, lines, number of phases."""
    from napari_sigma.energy import EnergyAxis

    info = json.loads(stem.with_suffix(".json").read_text())
    counts = np.load(stem.with_suffix(".npy"))
    image = SpectrumImage(
        counts=counts,
        energy=EnergyAxis(info["offset"], info["scale"], counts.shape[-1]),
        beam_energy=info["beam_energy"],
        pixel_size=info["pixel_size"],
        pixel_unit=info["pixel_unit"],
        title=f"speed {counts.shape[0]}x{counts.shape[1]}",
    )
    return image, tuple(info["lines"]), int(info["n_phases"])


OURS_B2 = ("ours_b2", "ours_b2_cli", "ours_sigma")
"""Part 2's configurations (see the module docstring)."""


def worker_settings(config: str, lines: tuple[str, ...], n_phases: int, device: str) -> Any:
    """Pipeline settings of a named configuration (see the module docstring)."""
    from napari_sigma.pipeline.analysis import AnalysisSettings

    if config == "ours_default":
        return AnalysisSettings.preset("default", lines=lines, device=device)
    preset = "sigma" if config == "ours_sigma" else "default"
    settings = AnalysisSettings.preset(preset, lines=lines, device=device, bin_factor=2)
    return replace(
        settings,
        latent=replace(settings.latent, epochs=20),
        clustering=replace(settings.clustering, n_phases=n_phases),
    )


# Libraries a run imports lazily. The worker imports them before the pipeline clock starts, as
# emsigma's harness imports numpy, torch, hyperspy, sklearn and sigma before its own
# ("pipeline_excl_import_io"); their import time is reported apart as ``import_s``.
RUN_IMPORTS = (
    "torch",
    "scipy.ndimage",
    "scipy.special",
    "napari_sigma.pipeline.analysis",
    "napari_sigma.xray.lines",
    "napari_sigma.unmixing.nmf",
    "napari_sigma.phases.statistics",
)
PIPELINE_CLOCK = (
    "pipeline_s: run_analysis only (all four stages, phase names, versions). Excluded, as "
    "emsigma's pipeline_excl_import_io excludes its imports and input preparation: the cube "
    "load (load_s) and the imports of the libraries in 'imports' (import_s). process_s: the "
    "whole worker process, imports and load included (compare with emsigma's process_s). "
    "ours_b2_cli makes its process as napari-sigma run does: torch is not imported before the "
    "pipeline (the analysis imports it beside its data check, so the part of that import "
    "not hidden there is in its pipeline_s), and the process ends as the CLI's does "
    "(napari_sigma.cli.end_process: no interpreter teardown); as the CLI imports the "
    "analysis's modules in a thread while it reads the file, ours_b2_cli imports them "
    "(napari_sigma.pipeline.preimport.ANALYSIS_MODULES, listed in 'preimported') while it "
    "loads the cube: load_s includes the wait for them."
)


def import_run_libraries(config: str = "") -> list[str]:
    """Import :data:`RUN_IMPORTS` (those installed); the module names imported.

    ``ours_b2_cli`` (the analysis ``napari-sigma run`` makes): all but torch, which the CLI
    does not import before the analysis.
    """
    import importlib

    imported = []
    for name in RUN_IMPORTS:
        if config == "ours_b2_cli" and name == "torch":
            continue
        try:
            importlib.import_module(name)
        except ImportError:
            continue
        imported.append(name)
    return imported


def worker(stem: Path, config: str, device: str, out: Path) -> None:
    """Load the cube, run one configuration of the pipeline, write timings as JSON.

    The pipeline clock covers :func:`~napari_sigma.pipeline.analysis.run_analysis` only; see
    :data:`PIPELINE_CLOCK`.
    """
    start = time.perf_counter()
    importing, preimported = None, ()
    if config == "ours_b2_cli":  # as napari-sigma run: the analysis's imports during the read
        from napari_sigma.pipeline.preimport import ANALYSIS_MODULES, start_importing

        importing = start_importing(ANALYSIS_MODULES)
        preimported = ANALYSIS_MODULES if importing is not None else ()
    try:
        image, lines, n_phases = load_cube(stem)
    finally:
        if importing is not None:
            importing.join()
    loaded = time.perf_counter()
    rss_cube = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    imports = import_run_libraries(config)
    from napari_sigma.compute.progress import run_to_completion
    from napari_sigma.pipeline.analysis import analyse

    imported = time.perf_counter()
    settings = worker_settings(config, lines, n_phases, device)
    # ours_b2_cli: the analysis `napari-sigma run` makes (no latent space: with the default
    # preset it is only drawn by napari; the labels are the same)
    result = run_to_completion(analyse(image, settings, embed=config != "ours_b2_cli"))
    done = time.perf_counter()
    info = {
        "load_s": round(loaded - start, 2),
        "import_s": round(imported - loaded, 2),
        "imports": imports,
        "preimported": list(preimported),
        "pipeline_s": round(done - imported, 3),
        "pipeline_incl_import_s": round(done - loaded, 3),
        "timings": {k: round(v, 3) for k, v in result.timings.items()},
        "device": result.device,
        "n_phases": result.n_phases,
        "cube_mb": round(image.counts.nbytes / 2**20, 1),
        "rss_after_cube_mb": round(rss_cube, 1),
        # torch as the run left it: not imported here to report it (a CPU run may not need it)
        "torch_imported": "torch" in sys.modules,
        "torch_threads": sys.modules["torch"].get_num_threads() if "torch" in sys.modules else None,
        "labels_sha1": __import__("hashlib").sha1(np.ascontiguousarray(result.labels)).hexdigest(),
    }
    out.write_text(json.dumps(info))


def read_pass_worker(path: Path, lines: tuple[str, ...], out: Path, isolate: bool) -> None:
    """One read of an ``.hspy`` cube and one feature pass over it; timings as JSON.

    ``isolate``: read in a child process as ``napari-sigma run`` does (the counts come back
    in a shared mapping), or in this process. ``read_user_s`` / ``read_sys_s``: this process's
    CPU during the read (an isolated read's child is not counted there; the process row's
    ``user_s`` / ``sys_s`` count it).
    """
    start = time.perf_counter()
    from napari_sigma.compute.progress import run_to_completion
    from napari_sigma.features.intensities import line_weights, project_spectra
    from napari_sigma.io.readers.reading import read_spectrum_image
    from napari_sigma.pipeline.analysis import AnalysisSettings

    imported = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_SELF)
    image = read_spectrum_image(path, isolate=isolate)
    read = time.perf_counter()
    after = resource.getrusage(resource.RUSAGE_SELF)
    weights = line_weights(image.energy, lines, AnalysisSettings.preset("default").features)
    maps = run_to_completion(project_spectra(image.counts, weights, "cpu"))
    done = time.perf_counter()
    info = {
        "import_s": round(imported - start, 3),
        "read_s": round(read - imported, 3),
        "pass_s": round(done - read, 3),
        "read_user_s": round(after.ru_utime - before.ru_utime, 3),
        "read_sys_s": round(after.ru_stime - before.ru_stime, 3),
        "checksum": float(maps.sum(dtype=np.float64)),
    }
    out.write_text(json.dumps(info))


def measure_end_to_end(stem: Path, size: int, args: argparse.Namespace) -> list[dict]:
    """``napari-sigma run`` on an ``.hspy`` copy of the cube beside read + pass processes.

    ``args.e2e_repeats`` rounds of three processes (read + pass in the measuring process,
    ``napari-sigma run``, read + pass through a child process); every other round runs them in
    the reverse order, so that neither kind of read always follows the run (its exit frees the
    4 GiB of a 1024² cube while the next process starts). Each row holds the process's wall
    time, its user and kernel CPU (``os.wait4``, children included) and the load at its start.
    """
    tmp = stem.parent
    image, lines, _ = load_cube(stem)
    cube = write_hspy(tmp / f"e2e_{size}.hspy", image, lines)
    del image
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    rows = []
    labels = ("read_pass", "end_to_end", "read_pass_isolated")
    for round_ in range(max(args.e2e_repeats, 1)):
        for label in labels if round_ % 2 == 0 else labels[::-1]:
            rows.append(_measure_e2e_process(cube, size, label, round_, lines, args, env))
    cube.unlink()
    return rows


def _measure_e2e_process(
    cube: Path,
    size: int,
    label: str,
    round_: int,
    lines: tuple[str, ...],
    args: argparse.Namespace,
    env: dict[str, str],
) -> dict:
    tmp = cube.parent
    out = tmp / f"{label}_{size}_{round_}.json"
    state = {"cube_cached_mb_before": page_cache_mb(cube)}
    if getattr(args, "e2e_warm", False):
        state["warm_s"] = round(read_through(cube), 2)
    state.update(cube_cached_mb=page_cache_mb(cube), **memory_state())
    if label.startswith("read_pass"):
        command = [sys.executable, __file__, "--read-pass", "--hspy", str(cube)]
        command += ["--lines", ",".join(lines), "--worker-out", str(out)]
        command += ["--isolate"] if label.endswith("isolated") else []
    else:
        command = [sys.executable, "-m", "napari_sigma.cli", "run", str(cube)]
        command += ["--out", str(tmp / f"e2e_{size}"), "--elements", ",".join(lines)]
    log = tmp / f"{out.stem}.log"
    run = run_measured(command, log, args.timeout, env)
    row: dict[str, Any] = {"size": size, "config": label, "device": "cpu", "round": round_}
    row.update(
        process_s=round(run["wall_s"], 2),
        user_s=round(run["user_s"], 2),
        sys_s=round(run["sys_s"], 2),
        peak_rss_mb=round(run["peak_rss_mb"], 1),
        load=round(run["load"], 2),
        **state,
    )
    if run["code"] != 0:
        row["error"] = f"exit {run['code']}: {log.read_text(errors='replace')[-1500:]}"
    elif out.exists():
        row.update(json.loads(out.read_text()))
    else:  # the run's own per-stage times
        run_json = tmp / f"e2e_{size}" / cube.stem / "run.json"
        if run_json.exists():
            row["timings"] = json.loads(run_json.read_text()).get("timings_s", {})
    print(
        f"   {label:18s} cpu {size:5d} round {round_}: process {run['wall_s']:.1f} s "
        f"(user {run['user_s']:.1f} s, sys {run['sys_s']:.1f} s, load {run['load']:.1f}), "
        f"peak RSS {run['peak_rss_mb']:.0f} MB; at its start: cube {state['cube_cached_mb']} "
        f"MB in the page cache, {state['mem_free_mb']} MB free, "
        f"{state['mem_available_mb']} MB available",
        flush=True,
    )
    return row


def page_cache_mb(path: Path) -> float | None:
    """MB of ``path`` in the page cache (``mincore`` of a read-only mapping; None where the C
    library's calls are not available). A read of a cube partly evicted by other processes goes
    to the disk: part of what moves a read from round to round."""
    import ctypes
    import mmap

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.mmap.restype = ctypes.c_void_p
        libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                              ctypes.c_int, ctypes.c_long]  # fmt: skip
        libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
    except (OSError, AttributeError):
        return None
    size = path.stat().st_size
    if size == 0:
        return 0.0
    page = mmap.PAGESIZE
    with open(path, "rb") as file:
        address = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, file.fileno(), 0)
    if address is None or address == ctypes.c_void_p(-1).value:
        return None
    try:
        vector = (ctypes.c_ubyte * (-(-size // page)))()
        if libc.mincore(address, size, vector) != 0:
            return None
        resident = np.frombuffer(vector, np.uint8) & 1
    finally:
        libc.munmap(address, size)
    return round(float(resident.sum()) * page / 2**20, 1)


def memory_state() -> dict[str, int]:
    """``MemFree`` and ``MemAvailable`` of ``/proc/meminfo`` in MB (empty elsewhere). A read
    into new memory when little is free makes the kernel reclaim pages first (system time)."""
    try:
        lines = Path("/proc/meminfo").read_text().splitlines()
    except OSError:
        return {}
    fields = {line.split(":")[0]: line.split()[1] for line in lines if ":" in line}
    return {
        "mem_free_mb": int(fields.get("MemFree", 0)) // 1024,
        "mem_available_mb": int(fields.get("MemAvailable", 0)) // 1024,
    }


def read_through(path: Path, block: int = 2**24) -> float:
    """Read a file once, to /dev/null (its pages into the page cache); seconds taken."""
    start = time.perf_counter()
    buffer = bytearray(block)
    with open(path, "rb", buffering=0) as file:
        while file.readinto(buffer):
            pass
    return time.perf_counter() - start


def _cheapest_floors(rows: list[dict]) -> list[dict]:
    """Per size and round, the faster of the two read + pass processes (kind ``cheapest``)."""
    cheapest = []
    for size, round_ in sorted({(r["size"], r.get("round", 0)) for r in rows}):
        floors = [
            r
            for r in rows
            if r["size"] == size
            and r.get("round", 0) == round_
            and r["config"].startswith("read_pass")
            and "error" not in r
        ]
        if len(floors) == 2:
            cheapest.append(dict(min(floors, key=lambda r: r["process_s"]), config="cheapest"))
    return cheapest


def end_to_end_ratios(rows: list[dict]) -> list[dict]:
    """Per size and kind of read: whole ``napari-sigma run`` process / read + pass process
    (target <= 3). ``read_pass``: the cube read in the measuring process; ``read_pass_isolated``:
    read in a child process, as ``napari-sigma run`` reads it; ``cheapest``: the faster of the
    two in each round. ``ratio`` is the median over the rounds of the run against the floor
    measured beside it (``ratio_min`` / ``ratio_max``: their range); ``cpu_ratio`` the same for
    user + kernel CPU; times are medians over the rounds."""
    result = []
    rows = rows + _cheapest_floors(rows)
    floor_kinds = ("read_pass", "read_pass_isolated", "cheapest")
    for size, floor_kind in sorted(
        {(r["size"], r["config"]) for r in rows if r["config"] in floor_kinds}
    ):
        ends = {
            r.get("round", 0): r for r in rows if r["size"] == size and r["config"] == "end_to_end"
        }
        floors = {
            r.get("round", 0): r for r in rows if r["size"] == size and r["config"] == floor_kind
        }
        pairs = [(ends[k], floors[k]) for k in sorted(ends) if k in floors]
        if not pairs or any("error" in r for pair in pairs for r in pair):
            continue
        ratios = [e["process_s"] / f["process_s"] for e, f in pairs]
        cpu = [_cpu(e) / max(_cpu(f), 1e-9) for e, f in pairs]
        floors_ = [f for _, f in pairs]
        end_s = float(np.median([e["process_s"] for e, _ in pairs]))
        inside = float(np.median([f["read_s"] + f["pass_s"] for f in floors_]))
        result.append(
            {
                "size": size,
                "floor": floor_kind,
                "rounds": len(pairs),
                "end_to_end_s": round(end_s, 2),
                "read_pass_process_s": round(
                    float(np.median([f["process_s"] for f in floors_])), 2
                ),
                "read_s": round(float(np.median([f["read_s"] for f in floors_])), 2),
                "floor_sys_s": round(
                    float(np.median([f.get("sys_s", np.nan) for f in floors_])), 2
                ),
                "pass_s": round(float(np.median([f["pass_s"] for f in floors_])), 2),
                "ratio": round(float(np.median(ratios)), 2),
                "ratio_min": round(min(ratios), 2),
                "ratio_max": round(max(ratios), 2),
                "cpu_ratio": round(float(np.median(cpu)), 2),
                "ratio_to_read_pass_only": round(end_s / inside, 2),
                "end_to_end_peak_rss_mb": max(e["peak_rss_mb"] for e, _ in pairs),
            }
        )
    return result


def _cpu(row: dict) -> float:
    return float(row.get("user_s", np.nan) + row.get("sys_s", np.nan))


def generate(size: int, args: argparse.Namespace, tmp: Path) -> Path:
    """Generate the cube of one size in a subprocess (the parent stays small); its stem."""
    stem = tmp / f"cube_{size}"
    command = [
        sys.executable,
        __file__,
        "--generate",
        "--size",
        str(size),
        "--seed",
        str(args.seed),
        "--phases",
        args.phases,
        "--dose",
        str(args.dose),
        "--cube",
        str(stem),
    ]
    code, wall, _ = run_subprocess(command, tmp / f"generate_{size}.log", args.timeout)
    if code != 0:
        raise RuntimeError((tmp / f"generate_{size}.log").read_text(errors="replace")[-1500:])
    print(f"   generated {size}x{size}x{N_CHANNELS} cube in {wall:.1f} s", flush=True)
    return stem


def measure(stem: Path, size: int, config: str, device: str, args: argparse.Namespace) -> dict:
    """Run one worker subprocess on a stored cube; its JSON plus wall time and peak RSS."""
    tmp = stem.parent
    out = tmp / f"{config}_{device}_{size}.json"
    command = [sys.executable, __file__, "--worker", "--cube", str(stem), "--config", config]
    command += ["--device", device, "--worker-out", str(out)]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    run = run_measured(command, tmp / f"{out.stem}.log", args.timeout, env)
    code, rss = run["code"], run["peak_rss_mb"]
    row: dict[str, Any] = {
        "size": size,
        "config": config,
        "device": device,
        "process_s": round(run["wall_s"], 2),
        "process_cpu_s": round(run["user_s"] + run["sys_s"], 2),
        "user_s": round(run["user_s"], 2),
        "sys_s": round(run["sys_s"], 2),
        "load": round(run["load"], 2),
        "peak_rss_mb": round(rss, 1),
    }
    if code != 0 or not out.exists():
        log = (tmp / f"{out.stem}.log").read_text(errors="replace")
        row["error"] = f"exit {code}: {log[-1500:]}"
        print(f"   {config} {device} {size}: FAILED\n{log[-1500:]}", flush=True)
        return row
    row.update(json.loads(out.read_text()))
    row["rss_over_cube_mb"] = round(rss - row["cube_mb"], 1)
    print(
        f"   {config:12s} {device} {size:5d}: pipeline {row['pipeline_s']:.1f} s, "
        f"peak RSS {rss:.0f} MB (cube {row['cube_mb']:.0f} MB)",
        flush=True,
    )
    return row


def measure_emsigma(stem: Path, size: int, args: argparse.Namespace) -> dict:
    """emsigma on the same cube: 2x2 binning, ``--epochs``, true K."""
    tmp = stem.parent
    image, lines, n_phases = load_cube(stem)
    cube = write_hspy(tmp / f"cube_{size}.hspy", image, lines)
    del image
    run = run_emsigma(
        cube,
        lines,
        n_phases,
        tmp / f"emsigma_{size}",
        epochs=args.epochs,
        threads=args.threads,
        timeout_s=args.timeout,
    )
    cube.unlink()
    timings = run.timings
    row = {
        "size": size,
        "config": "emsigma",
        "device": "cpu",
        "process_s": round(run.wall_s, 2),
        "process_cpu_s": None if run.cpu_s is None else round(run.cpu_s, 2),
        "peak_rss_mb": round(run.peak_rss_mb, 1),
        "pipeline_s": timings["pipeline_excl_import_io"],
        "timings": timings,
        "n_phases": n_phases,
        "threads": args.threads,
    }
    print(
        f"   emsigma      cpu {size:5d}: pipeline {row['pipeline_s']:.1f} s, "
        f"process {run.wall_s:.1f} s, peak RSS {run.peak_rss_mb:.0f} MB",
        flush=True,
    )
    return row


STAGE_COLUMNS = [
    ("features", "features s"),
    ("latent", "latent s"),
    ("clustering", "clustering s"),
    ("unmixing", "unmixing s"),
]


def speed_table(rows: list[dict]) -> str:
    """Per-stage times, pipeline time, memory."""
    flat = []
    for row in rows:
        entry = {
            k: row.get(k)
            for k in (
                "size",
                "config",
                "device",
                "pipeline_s",
                "process_s",
                "process_cpu_s",
                "peak_rss_mb",
                "cube_mb",
                "rss_over_cube_mb",
                "n_phases",
            )
        }
        entry.update({k: row.get("timings", {}).get(k) for k, _ in STAGE_COLUMNS})
        entry["status"] = "error" if "error" in row else "ok"
        flat.append(entry)
    columns = [
        ("size", "size"),
        ("config", "config"),
        ("device", "dev"),
        *STAGE_COLUMNS,
        ("pipeline_s", "pipeline s"),
        ("process_s", "process s"),
        ("process_cpu_s", "process CPU s"),
        ("n_phases", "K"),
        ("cube_mb", "cube MB"),
        ("peak_rss_mb", "peak RSS MB"),
        ("rss_over_cube_mb", "RSS-cube MB"),
        ("status", "status"),
    ]
    return format_table(flat, columns)


def same_labels(rows: list[dict]) -> list[str]:
    """Per size and device: whether ``ours_b2_cli`` found the labels of ``ours_b2``."""
    lines = []
    for cli in (r for r in rows if r["config"] == "ours_b2_cli" and "labels_sha1" in r):
        for b2 in rows:
            if (b2["config"], b2["size"], b2["device"]) == ("ours_b2", cli["size"], cli["device"]):
                same = b2.get("labels_sha1") == cli["labels_sha1"]
                lines.append(
                    f"{cli['size']} {cli['device']}: ours_b2_cli labels = ours_b2's: {same}"
                )
    return lines


def ratio_rows(rows: list[dict]) -> list[dict]:
    """emsigma time / this project's time for each size and configuration (same run)."""
    result = []
    for peer in (r for r in rows if r["config"] == "emsigma"):
        for ours in rows:
            if ours["config"] in OURS_B2 and ours["size"] == peer["size"] and "pipeline_s" in ours:
                result.append(
                    {
                        "size": peer["size"],
                        "config": ours["config"],
                        "device": ours["device"],
                        "emsigma_pipeline_s": peer["pipeline_s"],
                        "ours_pipeline_s": ours["pipeline_s"],
                        "pipeline_ratio": peer["pipeline_s"] / ours["pipeline_s"],
                        "process_ratio": peer["process_s"] / ours["process_s"],
                        "process_cpu_ratio": _cpu_ratio(peer, ours),
                    }
                )
    return result


def _cpu_ratio(peer: dict, ours: dict) -> float | None:
    """emsigma's process CPU (user + kernel) / ours: what compares when the machine is shared
    (walls then measure the load)."""
    if not peer.get("process_cpu_s") or not ours.get("process_cpu_s"):
        return None
    return peer["process_cpu_s"] / ours["process_cpu_s"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="128,256,512,1024", help="cube sizes (part 1)")
    parser.add_argument("--emsigma-sizes", default="128,256", help="sizes compared with emsigma")
    parser.add_argument(
        "--e2e-sizes", default="256", help="sizes of the end-to-end run against read + pass"
    )
    parser.add_argument(
        "--e2e-repeats",
        type=int,
        default=3,
        help="rounds of part 3 (run and both reads; alternate rounds reversed; medians reported)",
    )
    parser.add_argument(
        "--e2e-warm",
        action="store_true",
        help="read the cube's file once before each process of part 3 (its pages in the page "
        "cache for every process alike; the time is not counted)",
    )
    parser.add_argument("--devices", default="auto", help="'auto' (cpu, + cuda if present) or list")
    parser.add_argument("--epochs", type=int, default=20, help="autoencoder epochs in part 2")
    parser.add_argument(
        "--threads",
        type=int,
        default=os.cpu_count() or 1,
        help="torch/OpenMP threads of every measured process, ours and emsigma (default: cores)",
    )
    parser.add_argument("--skip-emsigma", action="store_true")
    parser.add_argument(
        "--no-precompile",
        action="store_true",
        help="do not compile the project's sources to bytecode first (each measured process "
        "then compiles what it imports when PYTHONDONTWRITEBYTECODE is set)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--phases", choices=sorted(PHASE_SETS), default="six", help="minerals of the cubes"
    )
    parser.add_argument(
        "--dose", type=float, default=COUNTS_PER_PIXEL, help="mean counts per pixel"
    )
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per measurement")
    parser.add_argument("--out", default="bench_out/speed.json")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--generate", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--read-pass", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--isolate", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--hspy", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--lines", default="", help=argparse.SUPPRESS)
    parser.add_argument("--cube", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--config", default="ours_default", help=argparse.SUPPRESS)
    parser.add_argument("--device", default="cpu", help=argparse.SUPPRESS)
    parser.add_argument("--worker-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.sizes = [int(s) for s in args.sizes.split(",") if s]
    args.emsigma_sizes = [int(s) for s in args.emsigma_sizes.split(",") if s]
    args.e2e_sizes = [int(s) for s in args.e2e_sizes.split(",") if s]
    return args


def devices(spec: str) -> list[str]:
    """The devices to measure: ``auto`` = CPU plus CUDA when torch finds it."""
    if spec != "auto":
        return [d for d in spec.split(",") if d]
    import torch

    return ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]


def _cleanup(stem: Path) -> None:
    for suffix in (".npy", ".json"):
        stem.with_suffix(suffix).unlink(missing_ok=True)


@contextmanager
def precompiled_sources(enabled: bool = True) -> Iterator[dict[str, Any]]:
    """Compile the project's Python sources to bytecode (``__pycache__``) for the measured
    processes, as ``pip install`` does for an installed package; what was compiled, as JSON.

    An installed napari-sigma (and emsigma, numpy, scipy, torch: installed packages) starts from
    bytecode. An editable install run with ``PYTHONDONTWRITEBYTECODE=1`` (as on the
    development VM) compiles every imported module of ``src/`` from its source in every process
    instead (about 90 modules, ~0.1 s of CPU at 256²): a cost of that setup, not of the
    program. ``enabled=False`` (``--no-precompile``) measures as before. The bytecode files
    made here are removed at the end (a source tree is left as it was: later measurements of
    other kinds, the GUI's, see the same files as before); a folder that cannot be written is
    left as it is (reported).
    """
    import compileall

    import napari_sigma

    if not enabled:
        yield {"precompiled": None}
        return
    folders = [Path(napari_sigma.__file__).resolve().parent, Path(__file__).resolve().parent]
    before = {f for folder in folders for f in folder.rglob("__pycache__/*.pyc")}
    done: dict[str, Any] = {}
    try:
        for folder in folders:
            try:
                done[str(folder)] = bool(compileall.compile_dir(folder, quiet=1))
            except OSError as error:
                done[str(folder)] = f"not compiled: {error}"
        yield {"precompiled": done}
    finally:
        for folder in folders:
            for made in set(folder.rglob("__pycache__/*.pyc")) - before:
                made.unlink(missing_ok=True)
            for cache in folder.rglob("__pycache__"):
                if not any(cache.iterdir()):
                    cache.rmdir()


def run_benchmark(args: argparse.Namespace) -> dict:
    """Part 1 and part 2; the rows and ratios."""
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="bench_speed_") as name:
        tmp = Path(name)
        print("Part 1: default preset end to end", flush=True)
        for size in args.sizes:
            stem = generate(size, args, tmp)
            rows += [measure(stem, size, "ours_default", d, args) for d in devices(args.devices)]
            _cleanup(stem)
        print("Part 2: same binning (2x2), epochs and K as emsigma", flush=True)
        for size in args.emsigma_sizes:
            stem = generate(size, args, tmp)
            for config in OURS_B2:
                rows += [measure(stem, size, config, d, args) for d in devices(args.devices)]
            if args.skip_emsigma or not emsigma_available():
                print("   emsigma skipped (no venv or --skip-emsigma)", flush=True)
            else:
                try:
                    rows.append(measure_emsigma(stem, size, args))
                except RuntimeError as error:
                    rows.append(
                        {"size": size, "config": "emsigma", "device": "cpu", "error": str(error)}
                    )
            _cleanup(stem)
        print("Part 3: napari-sigma run on an .hspy file against one read + one pass", flush=True)
        for size in args.e2e_sizes:
            stem = generate(size, args, tmp)
            rows += measure_end_to_end(stem, size, args)
            _cleanup(stem)
    return {"rows": rows, "ratios": ratio_rows(rows), "end_to_end": end_to_end_ratios(rows)}


def main(argv: list[str] | None = None) -> None:
    """Run the speed benchmark (or one worker), print the tables, write the JSON."""
    args = parse_args(argv)
    if args.generate:
        save_cube(args.size, args.seed, args.cube, args.phases, args.dose)
        return
    if args.worker:
        if args.config == "ours_b2_cli":  # as napari-sigma run's own process (cli.main)
            from napari_sigma.compute.forked import allow_forked_maps
            from napari_sigma.io.readers._memory import keep_freed_memory

            keep_freed_memory()
            allow_forked_maps()
        worker(args.cube, args.config, args.device, args.worker_out)
        if args.config == "ours_b2_cli":
            from napari_sigma.cli import end_process

            end_process(0)  # as napari-sigma run ends (no interpreter teardown)
        return
    if args.read_pass:
        read_pass_worker(args.hspy, tuple(args.lines.split(",")), args.worker_out, args.isolate)
        return
    start = time.perf_counter()
    with precompiled_sources(not args.no_precompile) as bytecode:
        print(f"bytecode: {bytecode['precompiled'] or 'not precompiled (--no-precompile)'}")
        results = run_benchmark(args)
    print("\nWall times (s) per stage, peak resident memory (MB)")
    print(speed_table(results["rows"]))
    for line in same_labels(results["rows"]):
        print(line)
    if results["ratios"]:
        print(
            "\nemsigma / this project (same cube, 2x2 binning, epochs, K; >1 = we are faster; "
            "target: process ratio >= 30 at 256)"
        )
        print(
            format_table(
                results["ratios"],
                [
                    ("size", "size"),
                    ("config", "ours"),
                    ("device", "dev"),
                    ("emsigma_pipeline_s", "emsigma s"),
                    ("ours_pipeline_s", "ours s"),
                    ("pipeline_ratio", "pipeline ratio"),
                    ("process_ratio", "process ratio"),
                    ("process_cpu_ratio", "process CPU ratio"),
                ],
            )
        )
    if results["end_to_end"]:
        print("\nnapari-sigma run (whole process, from .hspy) / one read + one feature pass")
        print(
            format_table(
                results["end_to_end"],
                [
                    ("size", "size"),
                    ("floor", "read"),
                    ("rounds", "rounds"),
                    ("end_to_end_s", "run s"),
                    ("read_pass_process_s", "read+pass process s"),
                    ("read_s", "read s"),
                    ("floor_sys_s", "read+pass sys s"),
                    ("pass_s", "pass s"),
                    ("ratio", "ratio (target <= 3)"),
                    ("ratio_min", "min"),
                    ("ratio_max", "max"),
                    ("cpu_ratio", "CPU ratio"),
                    ("ratio_to_read_pass_only", "ratio to read+pass alone"),
                    ("end_to_end_peak_rss_mb", "run peak RSS MB"),
                ],
            )
        )
    out = write_json(
        args.out,
        {
            "n_channels": N_CHANNELS,
            "counts_per_pixel": args.dose,
            "phases": list(PHASE_SETS[args.phases]),
            "seed": args.seed,
            "epochs": args.epochs,
            "threads": args.threads,
            "pipeline_clock": PIPELINE_CLOCK,
            "machine": machine_info(),
            "bytecode": bytecode,
            **results,
            "total_s": round(time.perf_counter() - start, 1),
        },
    )
    print(f"\nwrote {out} ({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
