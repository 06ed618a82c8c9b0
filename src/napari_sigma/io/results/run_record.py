"""The run record (``run.json``): an analysis' settings, seed, versions, device, timings and input
(:func:`run_info`), written as JSON (:func:`write_run_json`, :func:`to_jsonable`)."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import numpy as np


def to_jsonable(value: Any) -> Any:
    """``value`` with numpy types, dataclasses, paths, tuples and sets turned into JSON types."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_jsonable(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(to_jsonable(k)): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted(to_jsonable(v) for v in value)
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, np.generic):
        return to_jsonable(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def write_run_json(path: str | Path, info: dict[str, Any]) -> Path:
    """Write ``info`` as indented JSON (numpy values, dataclasses, paths converted; NaN -> null)."""
    Path(path).write_text(json.dumps(to_jsonable(info), indent=2, allow_nan=False) + "\n")
    return Path(path)


def run_info(result: Any, labels: np.ndarray) -> dict[str, Any]:
    """The run record of an analysis result: settings, seed, versions, device, timings, input."""
    image = result.image
    settings = result.settings
    return {
        "input": str(image.source) if image.source else None,
        "title": image.title,
        "shape": [*image.shape, int(image.energy.size)],
        "energy_axis": image.energy,
        "beam_energy_kV": image.beam_energy,
        "pixel_size_um": image.pixel_size_um,
        "lines": list(result.lines),
        "n_phases": int(np.count_nonzero(np.bincount(np.ravel(labels))[1:])),
        "phase_names": list(result.phase_names),
        "component_names": list(result.component_names),
        "seed": getattr(settings, "seed", None),
        "settings": settings,
        "device": result.device,
        "timings_s": dict(result.timings),
        "versions": dict(result.versions),
        **_phase_record(result),
    }


def _phase_record(result: Any) -> dict[str, Any]:
    """How the number of phases was chosen, and the unassigned pixels with their reason."""
    record: dict[str, Any] = {}
    if hasattr(result, "phase_choice"):
        record["phase_selection"] = {
            "summary": result.phase_choice(),
            "chosen": result.n_phases,
            "alternatives": list(result.alternatives),
            "rerun": [f"--phases {k}" for k in result.alternatives],
            "curve": {
                "name": "BIC of a Gaussian mixture on homogeneous pixels (lower is better)",
                "values": dict(result.criterion),
            },
        }
    unassigned = getattr(result, "unassigned", None) or {}
    record["unassigned"] = {
        reason: {"pixels": n, "fraction": n / max(int(np.prod(result.labels.shape)), 1)}
        for reason, n in unassigned.items()
    }
    check = getattr(result, "model_check", None)
    if check is not None:  # an applied model: how well it describes the field
        record["model_check"] = check.record()
    return record
