"""Writing the results: label and abundance TIFFs for ImageJ/Fiji, CSV tables, a run record.

Files in an output folder the user named are overwritten without asking (the CLI and the GUI write
a whole result set into one folder; a second run into the same folder replaces it).

This module holds the export itself (:func:`export_steps`: every file in turn, the slow calls
waited on or run in a child process); the rest lives by domain:

- :mod:`~napari_sigma.io.results.result_files`: the TIFF and CSV writers (``write_labels_tiff``,
  ``read_labels_tiff``, ``write_maps_tiff``, ``write_spectra_csv``, ``write_stats_csv``);
- :mod:`~napari_sigma.io.results.run_record`: ``run.json`` (``run_info``, ``write_run_json``,
  ``to_jsonable``);
- :mod:`~napari_sigma.io.results.export_sums`: the sums the export takes instead of reading the cube.

Their names are importable from here as before; change them in their own modules, patch them
in the module that reads them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from napari_sigma.compute.progress import Computation, Progress, run_to_completion
from napari_sigma.io.mineral_report.mineralogy import MINERAL_FILES

# moved by domain (eighteenth session): importable from here as before; a patch takes effect in
# the module that reads the name
from napari_sigma.io.results.export_sums import (
    _exact_phase_sums,
    _phase_abundances,
    _report_reads_the_cube,
    _report_sums,
)
from napari_sigma.io.results.result_files import (  # noqa: F401
    read_labels_tiff,
    write_labels_tiff,
    write_maps_tiff,
    write_spectra_csv,
    write_stats_csv,
)
from napari_sigma.io.results.run_record import run_info, to_jsonable, write_run_json  # noqa: F401
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
from ``phase_quant`` on, only when phases are identified: see :mod:`napari_sigma.io.mineral_report.mineralogy`)."""


def export_result(
    result: Any,
    out_dir: str | Path,
    labels: np.ndarray | None = None,
    names: Sequence[str] | None = None,
    draw_in_process: bool = False,
    sum_spectra: np.ndarray | None = None,
    kept: Any = None,
) -> dict[str, Path]:
    """:func:`export_steps` run to its end: write every result file of an analysis."""
    return run_to_completion(
        export_steps(result, out_dir, labels, names, draw_in_process, sum_spectra, kept)
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
    kept: Any = None,
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
        a child process (:class:`~napari_sigma.io.results.child.ChildProcess`;
        the same files byte for byte): their C calls then hold none of this process's GIL
        (napari's window froze ~100 ms at a time when they ran in threads). The child starts
        with the export and imports what they need meanwhile.
    sum_spectra : ndarray (K, E) float64 or None
        The exact sum spectra of phases 1..K over ``labels`` (integer counts summed in
        float64: the running sums napari's Phases tab keeps while the labels are edited).
        Given, the phase statistics read no cube (the same table as a pass over it: the
        same files); ignored unless the counts are integers and they cover every label
        (:func:`_exact_phase_sums`).
    kept : KeptChild or None
        A child process kept by the caller for many exports (napari's:
        :func:`~napari_sigma.io.results.export_child.session_child`): the calls
        ``draw_in_process`` makes in a child are sent there (whatever ``draw_in_process``), warm
        from an earlier export, instead of a child started for this export; it is not closed.

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
    from napari_sigma.io.results.child import ChildProcess

    expect = ("render_report",)
    if cube_travels(result.image.counts):
        expect = ("phase_table", "write_mineral_report", *expect)
    elif _report_reads_the_cube(result, result.labels if labels is None else labels):
        expect = ("write_mineral_report", *expect)  # on the cube's sums made here
    own = None
    if kept is not None:
        try:
            kept.expect(expect)  # started now unless it runs (warm from an earlier export)
        except OSError:  # none can be started: each call is made here (ChildDied)
            pass
    elif draw_in_process:
        try:
            own = ChildProcess(expect)
        except OSError:  # no Python process can be started here: the calls run in threads
            own = None
    try:
        written = yield from _export_steps(
            result, out_dir, labels, names, own if kept is None else kept, sum_spectra
        )
    finally:
        if own is not None:
            own.close()
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
    """The mineral report's files (:func:`~napari_sigma.io.mineral_report.mineralogy.write_mineral_report`),
    in the child where the cube travels or its sums were made here: ``(paths, tables,
    minerals, cube_sums)`` (``cube_sums``: the sums made here for the child, else None)."""
    from napari_sigma.io.mineral_report.mineralogy import write_mineral_report

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
    from napari_sigma.io.results.report import drawn_mineralogy, drawn_of, render_report

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
    from napari_sigma.io.results.child import ChildDied

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
    from napari_sigma.io.readers.events import event_cube_of

    return event_cube_of(counts) is not None


def mineral_inputs(result: Any, without_cube: bool = False) -> Any:
    """What :func:`~napari_sigma.io.mineral_report.mineralogy.write_mineral_report` reads of an analysis
    result (for a child process: :mod:`napari_sigma.io.results.child`). ``without_cube``: the image
    without its counts (a 1 x 1 x E zero array: a report given
    :func:`~napari_sigma.io.mineral_report.mineralogy.cube_sums` reads none) and without the analysis' own
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
