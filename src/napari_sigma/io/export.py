"""Writing the results: label and abundance TIFFs for ImageJ/Fiji, CSV tables, a run record.

Files in an output folder the user named are overwritten without asking (the CLI and the GUI write
a whole result set into one folder; a second run into the same folder replaces it).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from napari_sigma.compute.progress import Computation, Progress, run_to_completion
from napari_sigma.energy import EnergyAxis
from napari_sigma.io.mineralogy import MINERAL_FILES
from napari_sigma.phases.statistics import PhaseTable, phase_table, phase_table_steps

EXPORT_FILES = {
    "phases": "phases.tif",
    "abundances": "abundances.tif",
    "phase_spectra": "phase_spectra.csv",
    "unmixed_spectra": "unmixed_spectra.csv",
    "phase_stats": "phase_stats.csv",
    "report": "report.png",
    "run": "run.json",
    **MINERAL_FILES,
}
"""The files :func:`export_result` writes, by key of its returned dict (the mineralogy files,
from ``phase_quant`` on, only when phases are identified: see :mod:`napari_sigma.io.mineralogy`)."""


def _imagej_resolution(pixel_size_um: float | None) -> dict[str, Any]:
    """``imwrite`` keywords putting the pixel size (µm) where ImageJ reads it."""
    if pixel_size_um is None:
        return {"metadata": {}}
    if not (pixel_size_um > 0 and math.isfinite(pixel_size_um)):
        raise ValueError(f"pixel size must be positive, got {pixel_size_um}")
    pixels_per_um = 1.0 / float(pixel_size_um)
    return {"resolution": (pixels_per_um, pixels_per_um), "metadata": {"unit": "um"}}


def write_labels_tiff(path: str | Path, labels: np.ndarray, pixel_size_um: float | None) -> Path:
    """Write a label image as an ImageJ-compatible uint16 TIFF (Fiji shows the size in µm).

    Parameters
    ----------
    path : str or Path
        Output file (overwritten).
    labels : ndarray (y, x) int
        Labels 0..65535.
    pixel_size_um : float or None
        Pixel size in µm; None writes no calibration.

    Returns
    -------
    Path
    """
    import tifffile

    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"labels must be 2-D, got shape {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() > np.iinfo(np.uint16).max):
        raise ValueError("labels must lie in 0..65535 to be written as uint16")
    path = Path(path)
    keywords = _imagej_resolution(pixel_size_um)
    tifffile.imwrite(path, labels.astype(np.uint16), imagej=True, **keywords)
    return path


def read_labels_tiff(path: str | Path) -> tuple[np.ndarray, float | None]:
    """Read a label TIFF written by :func:`write_labels_tiff` (or by ImageJ).

    Returns
    -------
    labels : ndarray (y, x) int32
    pixel_size_um : float or None
        None when the file carries no µm calibration.
    """
    import tifffile

    with tifffile.TiffFile(Path(path)) as tif:
        labels = tif.asarray().astype(np.int32)
        unit = (tif.imagej_metadata or {}).get("unit", "")
        tag = tif.pages.first.tags.get("XResolution")
        resolution = tag.value if tag is not None else None
    if labels.ndim != 2:
        raise ValueError(f"{path} holds an image of shape {labels.shape}, not a label image")
    pixel_size = None
    if resolution and str(unit).replace("\\u00B5", "µ") in ("um", "µm", "micron") and resolution[0]:
        pixel_size = resolution[1] / resolution[0]
    return labels, pixel_size


def write_maps_tiff(
    path: str | Path, maps: np.ndarray, pixel_size_um: float | None, names: Sequence[str]
) -> Path:
    """Write maps (C, y, x) as a multi-page float32 ImageJ TIFF whose slice labels are ``names``."""
    import tifffile

    maps = np.asarray(maps, dtype=np.float32)
    if maps.ndim != 3 or maps.shape[0] != len(names):
        raise ValueError(f"maps of shape {maps.shape} for {len(names)} names")
    keywords = _imagej_resolution(pixel_size_um)
    keywords["metadata"] |= {"axes": "CYX", "Labels": [str(n) for n in names], "mode": "grayscale"}
    tifffile.imwrite(Path(path), maps, imagej=True, **keywords)
    return Path(path)


def write_spectra_csv(
    path: str | Path, energy_axis: EnergyAxis, spectra: np.ndarray, names: Sequence[str]
) -> Path:
    """Write spectra (K, E) as CSV: column ``energy_keV``, then one column per spectrum."""
    spectra = np.atleast_2d(np.asarray(spectra, dtype=np.float64))
    if spectra.shape != (len(names), energy_axis.size):
        raise ValueError(
            f"spectra of shape {spectra.shape} for {len(names)} names x {energy_axis.size} channels"
        )
    with Path(path).open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["energy_keV", *(str(n) for n in names)])
        for energy, values in zip(energy_axis.energies, spectra.T, strict=True):
            writer.writerow([f"{energy:.6f}", *(f"{v:.8g}" for v in values)])
    return Path(path)


def write_stats_csv(path: str | Path, table: PhaseTable, minerals: Sequence = ()) -> Path:
    """Write a phase table as CSV (one row per phase, columns of :meth:`PhaseTable.to_rows`).

    ``minerals`` (``PhaseMineral`` of :mod:`napari_sigma.minerals.phases`) add the columns
    ``mineral`` and ``mineral_score``.
    """
    rows = table.to_rows()
    by_id = {m.phase_id: m for m in minerals}
    for row in rows:
        found = by_id.get(int(row["phase_id"]))
        row["mineral"] = found.mineral if found else ""
        row["mineral_score"] = f"{found.score:.3f}" if found and found.identification else ""
    columns = [
        "phase_id",
        "name",
        "pixels",
        "area_fraction",
        "area_um2",
        "n_regions",
        "largest_region_px",
        "main_elements",
        "mineral",
        "mineral_score",
        *(f"mean_{line}" for line in table.line_names),
        "area_fraction_abundance",
    ]
    with Path(path).open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if row[k] is None else row[k] for k in columns})
    return Path(path)


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
    return record


def export_result(
    result: Any,
    out_dir: str | Path,
    labels: np.ndarray | None = None,
    names: Sequence[str] | None = None,
    draw_in_process: bool = False,
    sum_spectra: np.ndarray | None = None,
) -> dict[str, Path]:
    """:func:`export_steps` run to its end: write every result file of an analysis."""
    return run_to_completion(
        export_steps(result, out_dir, labels, names, draw_in_process, sum_spectra)
    )


def _waiting_for(message: str, function: Any, *args: Any, **kwargs: Any) -> Computation[Any]:
    """Run a call that does not yield (matplotlib drawing a figure, the mineral report: seconds)
    in a thread, yielding every 0.1 s while it runs, so that the export can be cancelled.

    A cancelled export stops waiting at once; the call still finishes in its thread (its file
    is written). Its exception, if any, is raised here.
    """
    import threading

    outcome: dict[str, Any] = {}

    def call() -> None:
        try:
            outcome["value"] = function(*args, **kwargs)
        except BaseException as error:
            outcome["error"] = error

    thread = threading.Thread(target=call, name=f"napari-sigma {message}", daemon=True)
    thread.start()
    while True:
        thread.join(0.1)
        if not thread.is_alive():
            break
        yield Progress("export", 0, 0, message)
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def export_steps(
    result: Any,
    out_dir: str | Path,
    labels: np.ndarray | None = None,
    names: Sequence[str] | None = None,
    draw_in_process: bool = False,
    sum_spectra: np.ndarray | None = None,
) -> Computation[dict[str, Path]]:
    """Write every result file of an analysis into ``out_dir`` (created; files overwritten).

    A generator: it yields a :class:`~napari_sigma.compute.progress.Progress` (stage
    ``"export"``) before each file, inside the phase statistics' pass over the cube and every
    0.1 s while the mineral report is made and the report drawn, so that a caller can show
    progress and cancel within a fraction of a second.

    Parameters
    ----------
    result : AnalysisResult
        The analysis (see :mod:`napari_sigma.pipeline.analysis`).
    out_dir : str or Path
        Output folder.
    labels : ndarray (y, x) int or None
        The label image to export (the GUI's edited one); default ``result.labels``. Phase
        spectra and statistics are always computed from the exported labels.
    names : sequence of str or None
        Names of phases 1..len(names) (default ``result.phase_names``); label ids beyond get
        generated names such as ``"P7 Fe-O"``.
    draw_in_process : bool
        Draw ``report.png``, and make the phase statistics (when they need a pass over the
        cube) and the mineral report when its cube is cheap to send (:func:`cube_travels`), in
        a child process (:class:`~napari_sigma.io.child.ChildProcess`;
        the same files byte for byte): their C calls then hold none of this process's GIL
        (napari's window froze ~100 ms at a time when they ran in threads). The child starts
        with the export and imports what they need meanwhile.
    sum_spectra : ndarray (K, E) float64 or None
        The exact sum spectra of phases 1..K over ``labels`` (integer counts summed in
        float64: the running sums napari's Phases tab keeps while the labels are edited).
        Given, the phase statistics read no cube (the same table as a pass over it: the
        same files); ignored unless the counts are integers and they cover every label
        (:func:`_exact_phase_sums`).

    Returns
    -------
    dict of str to Path
        The written files by key of :data:`EXPORT_FILES`.

    Notes
    -----
    ``phase_spectra.csv`` holds the **mean** spectrum of each phase in counts per pixel (sum
    spectrum divided by the phase's pixel count), one column per phase headed by its name;
    ``unmixed_spectra.csv`` holds the NMF components as the unmixing returned them.
    """
    from napari_sigma.io.child import ChildProcess

    expect = ("render_report",)
    if cube_travels(result.image.counts):
        expect = ("phase_table", "write_mineral_report", *expect)
    elif _report_reads_the_cube(result, result.labels if labels is None else labels):
        expect = ("write_mineral_report", *expect)  # on the cube's sums made here
    child = None
    if draw_in_process:
        try:
            child = ChildProcess(expect)
        except OSError:  # no Python process can be started here: the calls run in threads
            child = None
    try:
        written = yield from _export_steps(result, out_dir, labels, names, child, sum_spectra)
    finally:
        if child is not None:
            child.close()
    return written


def _export_steps(
    result, out_dir, labels, names, child, sum_spectra=None
) -> Computation[dict[str, Path]]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    own_labels = labels is None
    labels = np.asarray(result.labels if labels is None else labels)
    table, sums = yield from _phase_table_step(
        result, labels, own_labels, names, child, sum_spectra
    )
    paths = {key: out / name for key, name in EXPORT_FILES.items() if key not in MINERAL_FILES}
    yield from _write_maps_and_spectra(result, labels, table, paths)
    mineral_paths, tables, minerals, cube_sums = yield from _mineral_report_step(
        result, labels, table, out, child, sums
    )
    yield Progress("export", 6, 9, "phase_stats.csv")
    fractions = tables.label_fractions if tables is not None else None
    table.abundance_fraction = yield from _waiting_for(
        "phase_stats.csv", _phase_abundances, result, labels, table.phase_ids, fractions,
        cube_sums,
    )  # fmt: skip
    write_stats_csv(paths["phase_stats"], table, minerals)
    yield from _report_step(result, paths["report"], labels, table, tables, child)
    yield Progress("export", 8, 9, "run.json")
    write_run_json(paths["run"], run_info(result, labels))
    return {**paths, **mineral_paths}


def _phase_table_step(result, labels, own_labels, names, child, sum_spectra):
    """The live phase table of ``labels`` and the exact phase sums it was made from (None where
    a pass over the cube made it): ``(table, sums)``."""
    image = result.image
    yield Progress("export", 0, 9, "phase statistics")
    statistics = (labels, image.counts, result.intensities, result.lines, image.pixel_size_um)
    phase_names = list(result.phase_names if names is None else names)
    # the cube is not read again when the sums over these labels are known: the analysis' own
    # (its labels), or the caller's (napari's running sums of the edited labels: at 1024² x
    # 2048 a pass over 4 GiB in napari's process, the cube being too large for the child)
    known = getattr(result, "phase_spectra", None) if own_labels else sum_spectra
    sums = _exact_phase_sums(result, labels, known)
    if child is not None and sums is None and cube_travels(image.counts):
        # the pass over the cube in the child: its numpy and dask calls hold none of this
        # process's GIL (edited labels, a JEOL map: a napari freeze of 190 ms, load 15)

        def table_here() -> PhaseTable:
            return phase_table(*statistics, names=phase_names)

        table = yield from _waiting_for(
            "phase statistics", _in_child_or_here, table_here, child, "phase_table",
            *statistics, names=phase_names,
        )  # fmt: skip
    else:
        table = yield from phase_table_steps(
            *statistics, names=phase_names, stage="export", sum_spectra=sums
        )
    table = table.live()  # phases merged away or erased by edits are not exported
    return table, sums


def _write_maps_and_spectra(result, labels, table, paths) -> Computation[None]:
    """phases.tif, abundances.tif, phase_spectra.csv and unmixed_spectra.csv."""
    image = result.image
    yield Progress("export", 1, 9, "phases.tif")
    write_labels_tiff(paths["phases"], labels, image.pixel_size_um)
    yield Progress("export", 2, 9, "abundances.tif")
    abundances = np.moveaxis(np.asarray(result.abundances, dtype=np.float32), -1, 0)
    write_maps_tiff(paths["abundances"], abundances, image.pixel_size_um, result.component_names)
    yield Progress("export", 3, 9, "phase_spectra.csv")
    write_spectra_csv(paths["phase_spectra"], image.energy, table.mean_spectra, table.names)
    yield Progress("export", 4, 9, "unmixed_spectra.csv")
    write_spectra_csv(
        paths["unmixed_spectra"], image.energy, result.components, result.component_names
    )


def _mineral_report_step(result, labels, table, out, child, sums):
    """The mineral report's files (:func:`~napari_sigma.io.mineralogy.write_mineral_report`),
    in the child where the cube travels or its sums were made here: ``(paths, tables,
    minerals, cube_sums)`` (``cube_sums``: the sums made here for the child, else None)."""
    from napari_sigma.io.mineralogy import write_mineral_report

    yield Progress("export", 5, 9, "minerals")

    def minerals_here():
        return write_mineral_report(result, labels, table, out)

    cube_sums = None
    if child is not None and cube_travels(result.image.counts):
        mineral_paths, tables, minerals = yield from _waiting_for(
            "minerals", _in_child_or_here, minerals_here, child, "write_mineral_report",
            mineral_inputs(result), labels, table, out,
        )  # fmt: skip
    elif child is not None and _report_reads_the_cube(result, labels):
        # a cube too large to send (1024² x 2048: 4 GiB): its sums made here (numpy, the GIL
        # released), the identification and the tables (seconds of Python, which held
        # napari's GIL in turns) in the child, on the same numbers
        ids = [int(i) for i in table.phase_ids]
        cube_sums = yield from _waiting_for(
            "minerals", _report_sums, result, labels, ids, sums
        )  # fmt: skip

        def minerals_from_sums():
            return write_mineral_report(result, labels, table, out, sums=cube_sums)

        mineral_paths, tables, minerals = yield from _waiting_for(
            "minerals", _in_child_or_here, minerals_from_sums, child, "write_mineral_report",
            mineral_inputs(result, without_cube=True), labels, table, out, sums=cube_sums,
        )  # fmt: skip
    else:
        mineral_paths, tables, minerals = yield from _waiting_for("minerals", minerals_here)
    return mineral_paths, tables, minerals, cube_sums


def _report_step(result, path, labels, table, tables, child) -> Computation[None]:
    """report.png, drawn in the child when there is one."""
    from napari_sigma.io.report import drawn_mineralogy, drawn_of, render_report

    yield Progress("export", 7, 9, "report.png")

    def report_here():
        render_report(result, path, labels=labels, table=table, mineralogy=tables)

    if child is None:
        yield from _waiting_for("report.png", report_here)
    else:
        yield from _waiting_for(
            "report.png", _in_child_or_here, report_here, child, "render_report",
            drawn_of(result), path, labels=labels, table=table,
            mineralogy=drawn_mineralogy(tables),
        )  # fmt: skip


def _in_child_or_here(here: Any, child: Any, name: str, *args: Any, **kwargs: Any) -> Any:
    """``child.call(name, *args, **kwargs)``; ``here()`` (the same function on the same data, in
    this process) when the child process died or never ran: the export's files are written all
    the same, only its drawing holds this process's GIL."""
    from napari_sigma.io.child import ChildDied

    try:
        return child.call(name, *args, **kwargs)
    except ChildDied:
        return here()


CHILD_CUBE_BYTES = 64 * 2**20
"""An in-memory cube up to this size is sent to the export's child process for the mineral
report (larger ones: the report runs in a thread of this process)."""


def cube_travels(counts: Any) -> bool:
    """Whether the mineral report's cube is cheap to send to a child process: an in-memory
    cube up to :data:`CHILD_CUBE_BYTES`, or a lazy cube made of events (a JEOL map: its events,
    a few MB)."""
    if isinstance(counts, np.ndarray):
        return counts.nbytes <= CHILD_CUBE_BYTES
    from napari_sigma.io.events import event_cube_of

    return event_cube_of(counts) is not None


def mineral_inputs(result: Any, without_cube: bool = False) -> Any:
    """What :func:`~napari_sigma.io.mineralogy.write_mineral_report` reads of an analysis
    result (for a child process: :mod:`napari_sigma.io.child`). ``without_cube``: the image
    without its counts (a 1 x 1 x E zero array: a report given
    :func:`~napari_sigma.io.mineralogy.cube_sums` reads none) and without the analysis' own
    sums (of its labels, not the exported ones)."""
    from types import SimpleNamespace

    names = ("image", "labels", "lines", "settings", "phase_minerals", "minerals_labels", "core_labels",
             "core_spectra", "phase_spectra", "deep_spectra", "core_depth",
             "host_spectra")  # fmt: skip
    inputs = SimpleNamespace(**{name: getattr(result, name, None) for name in names})
    if without_cube:
        image = result.image
        empty = np.zeros((1, 1, image.energy.size), np.dtype(image.counts.dtype))
        inputs.image = dataclasses.replace(image, counts=empty)
        for name in names[6:]:
            setattr(inputs, name, None)
    return inputs


def _report_reads_the_cube(result: Any, labels: np.ndarray) -> bool:
    """Whether the mineral report of ``labels`` would read the cube and can be made from
    :func:`~napari_sigma.io.mineralogy.cube_sums` instead: labels other than the analysis' own
    (whose sums it kept), 2-D, with the beam energy (without it the abundances' host
    correction reads the cube whatever it is given)."""
    labels = np.asarray(labels)
    if labels.ndim != 2 or not result.image.beam_energy or not labels.any():
        return False
    return not np.array_equal(labels, result.labels)


def _report_sums(result: Any, labels: np.ndarray, ids: list[int], label_sums: Any) -> Any:
    """:func:`~napari_sigma.io.mineralogy.cube_sums` of ``labels`` for the mineral report, the
    line dispersions when the phases are identified anew (not the analysis' own minerals)."""
    from napari_sigma.io.mineralogy import cube_sums

    settings = getattr(result, "settings", None)
    identify = settings is None or getattr(settings, "identify_minerals", True)
    own = list(getattr(result, "phase_minerals", []) or [])
    described = getattr(result, "minerals_labels", None)
    if own and described is not None and np.array_equal(labels, described):
        identify = False  # a session reopened after edits: its minerals are of these labels
    n = int(max(ids, default=0))
    return cube_sums(result.image, labels, n, ids if identify else (), label_sums)


def _phase_abundances(
    result: Any, labels: np.ndarray, phase_ids, fractions=None, sums: Any = None
) -> np.ndarray:
    """Abundance area fraction of each phase of ``phase_ids``: the map's sum spectrum unmixed
    onto the phases' own spectra (:func:`~napari_sigma.io.mineralogy.abundance_fractions`, the
    numbers of the mineralogy report's ``abundance_area_percent``; ``fractions`` of labels 1..K
    when the report already solved it). Not the sum of per-pixel fractions: a non-negative
    fit of each noisy pixel puts positive shares of every phase in it, which inflates minor
    phases at low counts (1.7 % ilmenite read as 7 % at 30 counts per pixel)."""
    from napari_sigma.io.mineralogy import label_abundances

    n = int(max(phase_ids, default=0))
    if fractions is None and n:
        fractions = label_abundances(result, labels, n, sums)
    values = np.zeros(0) if fractions is None else np.asarray(fractions, np.float64).ravel()
    return np.array([values[k - 1] if 1 <= k <= values.size else 0.0 for k in phase_ids])


def _exact_phase_sums(result: Any, labels: np.ndarray, spectra: Any = None) -> np.ndarray | None:
    """``spectra`` when they can be the exact sums over ``labels`` (integer counts summed in
    float64, a row for every label, a column per channel): the result's phase sum spectra
    over its own labels, or a caller's over edited ones. The export's statistics then need no
    pass over the cube. None otherwise (the statistics sum the cube)."""
    if spectra is None or np.dtype(result.image.counts.dtype).kind not in "biu":
        return None
    spectra = np.asarray(spectra)
    if spectra.dtype != np.float64 or spectra.ndim != 2:
        return None
    channels = int(result.image.counts.shape[-1])
    covers = spectra.shape[0] >= int(labels.max(initial=0)) and spectra.shape[1] == channels
    return spectra if covers else None
