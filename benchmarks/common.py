"""Shared helpers of the benchmarks: .hspy export, running the emsigma peer, tables and JSON.

The peer `emsigma` (the original SIGMA) lives in its own virtual environment (HyperSpy 1.7,
numpy 1.24), made by ``../shared/peers/emsigma/setup.sh .emsigma-venv``; it is driven as a
subprocess through ``run_emsigma.py`` on a ``.hspy`` copy of the benchmark cube.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from napari_sigma.spectrum_image import SpectrumImage

REPO_ROOT = Path(__file__).resolve().parents[1]
EMSIGMA_VENV = Path(os.environ.get("EMSIGMA_VENV", REPO_ROOT / ".emsigma-venv"))
PEER_DIR = REPO_ROOT.parent / "shared" / "peers" / "emsigma"
"""The peer beside the repository (``../shared/peers/emsigma``)."""
EMSIGMA_RUNNER = Path(os.environ.get("EMSIGMA_RUNNER", PEER_DIR / "run_emsigma.py"))


def signal_dict(image: SpectrumImage, lines: tuple[str, ...] = ()) -> dict[str, Any]:
    """A HyperSpy signal dictionary (``EDS_SEM``) of a spectrum image, for rosettasciio writers.

    Parameters
    ----------
    image : SpectrumImage
        Counts ``(y, x, E)`` with a calibrated energy axis.
    lines : tuple of str
        X-ray lines stored as ``Sample.xray_lines`` (e.g. ``("Fe_Ka",)``).
    """
    pixel = image.pixel_size_um or 1.0
    unit = "µm" if image.pixel_size_um is not None else "px"
    axes = [
        {"name": "y", "size": image.shape[0], "offset": 0.0, "scale": pixel, "units": unit},
        {"name": "x", "size": image.shape[1], "offset": 0.0, "scale": pixel, "units": unit},
        {
            "name": "Energy",
            "size": image.energy.size,
            "offset": float(image.energy.offset),
            "scale": float(image.energy.scale),
            "units": "keV",
            "navigate": False,
        },
    ]
    for axis in axes[:2]:
        axis["navigate"] = True
    elements = sorted({line.split("_")[0] for line in lines} | set(image.elements))
    sample: dict[str, Any] = {"elements": elements}
    if lines:
        sample["xray_lines"] = list(lines)
    metadata = {
        "General": {"title": image.title or "synthetic", "original_filename": ""},
        "Signal": {"signal_type": "EDS_SEM", "quantity": "X-rays (Counts)"},
        "Acquisition_instrument": {
            "SEM": {
                "beam_energy": float(image.beam_energy or 15.0),
                "Detector": {"EDS": {"energy_resolution_MnKa": 130.0}},
            }
        },
        "Sample": sample,
    }
    return {
        "data": np.asarray(image.counts),
        "axes": axes,
        "metadata": metadata,
        "original_metadata": {},
        "learning_results": {},
        "attributes": {"_lazy": False},
        "models": {},
        "tmp_parameters": {},
        "package_info": {"name": "napari-sigma-benchmarks", "version": "0"},
    }


def write_hspy(path: str | Path, image: SpectrumImage, lines: tuple[str, ...] = ()) -> Path:
    """Write a spectrum image as a HyperSpy ``.hspy`` file (EDS_SEM) with rosettasciio.

    Parameters
    ----------
    path : str or Path
        Output file (``.hspy``).
    image : SpectrumImage
        The spectrum image.
    lines : tuple of str
        X-ray lines to store in the metadata.

    Returns
    -------
    Path
        The written file.
    """
    from rsciio.hspy import file_writer

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    file_writer(str(path), signal_dict(image, lines), compression=None, show_progressbar=False)
    return path


def emsigma_available() -> bool:
    """Whether the emsigma peer venv and its runner script are present."""
    return (EMSIGMA_VENV / "bin" / "python").exists() and EMSIGMA_RUNNER.exists()


@dataclass
class EmsigmaRun:
    """The outputs of one emsigma run (labels 1..K at full resolution, 0 = none)."""

    labels: np.ndarray
    report: dict[str, Any]
    timings: dict[str, float]
    wall_s: float
    peak_rss_mb: float
    phase_spectra: np.ndarray | None = None
    components: np.ndarray | None = None
    log: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    cpu_s: float | None = None  # user + kernel CPU of the process and the children it waited for


def run_subprocess(
    command: list[str], log_path: Path, timeout_s: float, env: dict[str, str] | None = None
) -> tuple[int, float, float]:
    """Run a command with its output in ``log_path``; return (exit code, wall s, peak RSS MB).

    The peak RSS is the child's own (``os.wait4``), not the maximum over all children so far.
    """
    run = run_measured(command, log_path, timeout_s, env)
    return run["code"], run["wall_s"], run["peak_rss_mb"]


def run_measured(
    command: list[str], log_path: Path, timeout_s: float, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """:func:`run_subprocess` with the process's CPU time: ``code``, ``wall_s``, ``user_s``,
    ``sys_s`` (user and kernel CPU of the process and the children it waited for, from
    ``os.wait4``), ``peak_rss_mb`` and ``load`` (the 1-minute load average at the start)."""
    load = os.getloadavg()[0]
    start = time.perf_counter()
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        timer = threading.Timer(timeout_s, process.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)
        finally:
            timer.cancel()
    process.returncode = os.waitstatus_to_exitcode(status)
    return {
        "code": process.returncode,
        "wall_s": time.perf_counter() - start,
        "user_s": usage.ru_utime,
        "sys_s": usage.ru_stime,
        "peak_rss_mb": usage.ru_maxrss / 1024.0,
        "load": load,
    }


def run_emsigma(
    hspy_path: Path,
    lines: tuple[str, ...],
    n_components: int | str,
    out_dir: Path,
    epochs: int = 20,
    threads: int = 1,
    rebin: int = 2,
    timeout_s: float = 900.0,
) -> EmsigmaRun:
    """Run emsigma's tutorial pipeline on a ``.hspy`` cube in its venv.

    Parameters
    ----------
    hspy_path : Path
        The cube (see :func:`write_hspy`).
    lines : tuple of str
        Feature lines, e.g. ``("O_Ka", "Si_Ka")``.
    n_components : int or "auto"
        Gaussian mixture components (``"auto"`` = argmin of BIC over 1..14).
    out_dir : Path
        Folder of emsigma's outputs.
    epochs, threads, rebin : int
        Autoencoder epochs, torch threads, spatial binning (SIGMA's tutorial: 20, -, 2).
    timeout_s : float
        Kill the run after this many seconds.

    Raises
    ------
    RuntimeError
        If the run fails (the message ends with the log's tail).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    command = [
        str(EMSIGMA_VENV / "bin" / "python"),
        str(EMSIGMA_RUNNER),
        "--input",
        str(hspy_path),
        "--elements",
        ",".join(lines),
        "--n-components",
        str(n_components),
        "--epochs",
        str(epochs),
        "--threads",
        str(threads),
        "--rebin",
        str(rebin),
        "--out",
        str(out_dir),
    ]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    log_path = out_dir / "emsigma.log"
    run = run_measured(command, log_path, timeout_s, env)
    log = log_path.read_text(errors="replace")
    if run["code"] != 0:
        raise RuntimeError(f"emsigma exited with {run['code']}:\n{log[-2000:]}")
    result = _read_emsigma_outputs(out_dir, rebin, run["wall_s"], run["peak_rss_mb"], log)
    result.cpu_s = run["user_s"] + run["sys_s"]
    return result


def _read_emsigma_outputs(
    out_dir: Path, rebin: int, wall: float, rss: float, log: str
) -> EmsigmaRun:
    name = "phase_map_fullres.npy" if rebin > 1 else "phase_map.npy"
    labels = np.load(out_dir / name).astype(np.int32) + 1  # SIGMA's clusters are 0-based
    report = json.loads((out_dir / "run.json").read_text())
    components_path = out_dir / "nmf_components.npy"
    return EmsigmaRun(
        labels=labels,
        report=report,
        timings=report["timings_s"],
        wall_s=wall,
        peak_rss_mb=rss,
        phase_spectra=np.load(out_dir / "cluster_mean_spectra.npy"),
        components=np.load(components_path) if components_path.exists() else None,
        log=log,
    )


def format_table(rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> str:
    """A plain-text table of ``rows`` with ``columns`` = [(key, header)] (floats to 3 digits)."""

    def cell(value: Any) -> str:
        if value is None:
            return "-"
        if isinstance(value, float):
            return f"{value:.3f}" if abs(value) < 1000 else f"{value:.0f}"
        return str(value)

    body = [[cell(row.get(key)) for key, _ in columns] for row in rows]
    headers = [header for _, header in columns]
    widths = [max(len(h), *(len(r[i]) for r in body)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in body]
    return "\n".join(lines)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def write_json(path: str | Path, data: Any) -> Path:
    """Write ``data`` as indented JSON (numpy scalars and arrays converted), making folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, default=_json_default))
    return path


def machine_info() -> dict[str, Any]:
    """CPU count, load average and package versions, for the JSON reports."""
    import platform

    import torch

    return {
        "cpu_count": os.cpu_count(),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
