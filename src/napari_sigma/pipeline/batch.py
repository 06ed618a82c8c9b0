"""Many fields: one output folder each, one shared model, pooled statistics, local or on a cluster.

The per-field work is a task (:func:`analyse_field`, :func:`apply_field`) that reads the field,
analyses it (alone, or with a fitted model) and writes its results; a failing field returns its
error instead of stopping the others. Tasks run in this process or on a dask.distributed cluster
(:mod:`napari_sigma.compute.distributed`).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from napari_sigma.errors import SigmaError

POOLED_STATS = "pooled_stats.csv"
MODEL_FILE = "model.sigma"
FIELDS_FILE = "fields.csv"


@dataclass
class FieldOutcome:
    """What one field's task did.

    Attributes
    ----------
    name : str
        The field's output folder name.
    path : str
        The input file.
    error : str or None
        A one-line error (the field was skipped), or None.
    summary : str
        A one-line summary of the result.
    pixels : int
        Pixels of the field.
    rows : list of dict
        Its phase statistics (the rows of ``phase_stats.csv``).
    check : dict or None
        An applied model's check of the field (``FieldCheck.record()``; with ``"mask"``, the
        not-fitted mask written where the field warns of them), None for an analysis.
    """

    name: str
    path: str
    error: str | None = None
    summary: str = ""
    pixels: int = 0
    rows: list[dict[str, Any]] = field(default_factory=list)
    check: dict[str, Any] | None = None

    @property
    def warning(self) -> str:
        """The field's one-line warning ("" when none): an applied model may not describe it."""
        if not self.check or not self.check["warning"]:
            return ""
        mask = self.check.get("mask")
        return self.check["warning"] + (f" (mask: {mask})" if mask else "")


def output_names(paths: Sequence[str | Path]) -> list[str]:
    """Output folder names of the inputs: their stems, made unique.

    Inputs that share a stem are told apart by their parent folders (``a/map.bcf`` and
    ``b/map.bcf`` give ``a_map`` and ``b_map``), then by a counter.
    """
    paths = [Path(p) for p in paths]
    names = [p.stem for p in paths]
    for depth in range(1, 4):
        counts = {n: names.count(n) for n in names}
        if all(c == 1 for c in counts.values()):
            return names
        names = [
            "_".join([*p.resolve().parent.parts[-depth:], p.stem]) if counts[n] > 1 else n
            for p, n in zip(paths, names, strict=True)
        ]
    seen: dict[str, int] = {}
    unique = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        unique.append(name if seen[name] == 1 else f"{name}_{seen[name]}")
    return unique


@dataclass(frozen=True)
class LimitedField:
    """A field file read under a memory limit (lazily when its cube is large): a field source
    for :func:`~napari_sigma.pipeline.fitting.fit_model`."""

    path: Path
    limit: int | None = None
    map_index: int = 0  # which spectrum image of a file that holds several (``--map``)

    def __call__(self):
        from napari_sigma.compute.chunks import read_within

        return read_within(self.path, self.limit, map_index=self.map_index)

    def __str__(self) -> str:
        return str(self.path) if self.map_index == 0 else f"{self.path} (map {self.map_index + 1})"


def analyse_field(task: tuple[Path, Any, Path, str, int | None] | tuple) -> FieldOutcome:
    """Read, analyse on its own and export one field (a task: runs here or on a worker).

    ``task`` is (input file, AnalysisSettings, output folder, field name, memory limit or None[,
    map index: which spectrum image of a file that holds several, default the first]).
    """
    return _export(_analysed, *task)


def apply_field(task: tuple[Path, Any, Path, str, int | None] | tuple) -> FieldOutcome:
    """Read one field, apply a fitted model and export (a task: runs here or on a worker).

    ``task`` is (input file, FittedModel, output folder, field name, memory limit or None[,
    map index]).
    """
    return _export(_applied, *task)


def _analysed(image, settings):
    from napari_sigma.compute.progress import run_to_completion
    from napari_sigma.pipeline.analysis import analyse

    return run_to_completion(analyse(image, settings, embed=False))  # no output shows it


def _applied(image, model):
    from napari_sigma.compute.progress import run_to_completion
    from napari_sigma.pipeline.model import apply_model

    return run_to_completion(apply_model(model, image))


def _export(
    work, path: Path, job: Any, out_dir: Path, name: str, limit: int | None, map_index: int = 0
) -> FieldOutcome:
    """Read the field at ``path`` (its ``map_index``-th spectrum image), ``work(image, job)``,
    export the result to ``out_dir / name``.

    The summary's time is the field's whole wall time (read, work, export): what the user
    waited for it. The work's stages alone (``result.timings``, in run.json) were 0.0-0.1 s
    for an applied model on a small map, "in 0.0 s" after seconds of reading and writing."""
    import time

    from napari_sigma.compute.chunks import memory_budget, read_within
    from napari_sigma.io.results.export import export_result

    start = time.perf_counter()
    try:
        with memory_budget(limit):
            result = work(read_within(path, limit, map_index=map_index), job)
            written = export_result(result, out_dir / name)
    except SigmaError as error:
        return FieldOutcome(name, str(path), error=str(error))
    seconds = time.perf_counter() - start
    rows = _read_rows(written["phase_stats"])
    # the phases the field holds, as phase_stats.csv lists them: a model made from edited labels
    # lacks the ids merged away, which the result names "phase <id>" (labels 1..max id)
    names = [row["name"] for row in rows]
    phases = "phase" if len(names) == 1 else "phases"
    summary = (
        f"{len(names)} {phases} ({', '.join(names)}) in {seconds:.1f} s "
        f"on {result.device} -> {out_dir / name}"
    )
    check = _write_check(result, out_dir / name)
    pixels = int(np.prod(result.labels.shape))
    return FieldOutcome(name, str(path), None, summary, pixels, rows, check)


NOT_FITTED_FILE = "not_fitted.tif"


def _write_check(result: Any, folder: Path) -> dict[str, Any] | None:
    """An applied model's check of the field (None for an analysis); where it warns of pixels
    that fit no phase, their mask (1) is written beside ``phases.tif`` (a stale one removed)."""
    check = getattr(result, "model_check", None)
    if check is None:
        return None
    record = check.record()
    mask_path = Path(folder) / NOT_FITTED_FILE
    if check.mask is not None and check.too_many_not_fitted:
        from napari_sigma.io.results.result_files import write_labels_tiff

        write_labels_tiff(mask_path, check.mask.astype(np.uint8), result.image.pixel_size_um)
        record["mask"] = str(mask_path)
    else:
        mask_path.unlink(missing_ok=True)
    return record


def _read_rows(path: Path) -> list[dict[str, Any]]:
    with Path(path).open(newline="") as handle:
        return list(csv.DictReader(handle))


def pooled_statistics(outcomes: Sequence[FieldOutcome]) -> list[dict[str, Any]]:
    """One row per phase id over all fields: pixels, area, regions, pixel-weighted mean intensities.

    Columns ``phase_id, name, fields, pixels, area_fraction`` (of all pixels of all fields),
    ``area_um2`` (empty when a field is uncalibrated), ``n_regions`` and ``mean_<line>``.
    """
    done = [o for o in outcomes if o.error is None]
    total = sum(o.pixels for o in done)
    by_id: dict[int, dict[str, Any]] = {}
    for outcome in done:
        for row in outcome.rows:
            phase_id, pixels = int(row["phase_id"]), int(row["pixels"])
            pooled = by_id.setdefault(
                phase_id,
                {"phase_id": phase_id, "name": row["name"], "fields": 0, "pixels": 0,
                 "area_um2": 0.0, "n_regions": 0, "_sums": {}},
            )  # fmt: skip
            pooled["fields"] += pixels > 0
            pooled["pixels"] += pixels
            area = row.get("area_um2", "")
            pooled["area_um2"] = None if area in ("", None) or pooled["area_um2"] is None else (
                pooled["area_um2"] + float(area))  # fmt: skip
            pooled["n_regions"] += max(int(row.get("n_regions", 0) or 0), 0)
            for key, value in row.items():
                if key.startswith("mean_") and value not in ("", None):
                    pooled["_sums"][key] = pooled["_sums"].get(key, 0.0) + float(value) * pixels
    rows = []
    for phase_id in sorted(by_id):
        pooled = by_id[phase_id]
        sums = pooled.pop("_sums")
        pooled["area_fraction"] = pooled["pixels"] / total if total else 0.0
        for key, value in sums.items():
            pooled[key] = value / pooled["pixels"] if pooled["pixels"] else 0.0
        rows.append(pooled)
    return rows


def write_pooled_statistics(path: Path, outcomes: Sequence[FieldOutcome]) -> Path:
    """Write :func:`pooled_statistics` as CSV."""
    rows = pooled_statistics(outcomes)
    columns = ["phase_id", "name", "fields", "pixels", "area_fraction", "area_um2", "n_regions"]
    columns += sorted({k for row in rows for k in row if k.startswith("mean_")})
    with Path(path).open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if row.get(k) is None else row.get(k) for k in columns})
    return Path(path)


def write_fields_table(path: Path, outcomes: Sequence[FieldOutcome]) -> Path:
    """Write which input went to which output folder, and its error if it failed; for an
    applied model, its check of each field: the share of pixels that fit no phase, the elements
    it does not analyse, the field's and the model's beam energies, the warning."""
    checked = any(o.check is not None for o in outcomes)
    with Path(path).open("w", newline="") as handle:
        writer = csv.writer(handle)
        head = ["folder", "input", "pixels", "error"]
        writer.writerow(head + (list(_CHECK_COLUMNS) if checked else []))
        for o in outcomes:
            row = [o.name, o.path, o.pixels, o.error or ""]
            writer.writerow(row + (_check_cells(o) if checked else []))
    return Path(path)


_CHECK_COLUMNS = (
    "not_fitted_fraction",
    "foreign_elements",
    "beam_energy_kV",
    "model_beam_energy_kV",
    "warning",
)


def _check_cells(outcome: FieldOutcome) -> list[Any]:
    check = outcome.check
    if check is None:
        return [""] * len(_CHECK_COLUMNS)
    beams = [check["beam_energy_kV"], check["model_beam_energy_kV"]]
    return [
        f"{check['not_fitted']['fraction']:.4f}",
        " ".join(check["foreign_elements"]),
        *("" if b is None else f"{b:g}" for b in beams),
        outcome.warning,
    ]


def readable_fields(paths: Sequence[Path], map_index: int = 0) -> tuple[list[Path], list[str]]:
    """The inputs that open as spectrum images (lazily, cheap; their ``map_index``-th), and one
    error line per other."""
    from napari_sigma.io.readers.reading import read_spectrum_image

    good, errors = [], []
    for path in paths:
        try:
            read_spectrum_image(path, lazy=True, map_index=map_index)
        except SigmaError as error:
            errors.append(str(error))
            continue
        good.append(path)
    return good, errors
