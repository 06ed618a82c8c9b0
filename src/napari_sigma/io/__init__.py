"""Reading vendor files into spectrum images, and writing results (TIFF, CSV, JSON, report).

Its parts, one package per domain:

- :mod:`~napari_sigma.io.readers`: a vendor file read into a spectrum image (rosettasciio's
  readers and this package's own), its axes, its event lists, the checks at the door;
- :mod:`~napari_sigma.io.reading_process`: a file read in a child process (the parent's side,
  the child's side, the large arrays' files in ``/dev/shm``);
- :mod:`~napari_sigma.io.results`: an analysis' result files (export, report, run record,
  ``.hspy``, ``.sigma`` archive) and the child process that draws and sums for them;
- :mod:`~napari_sigma.io.mineral_report`: the mineral report's files (the abundance solve they
  report: :mod:`napari_sigma.minerals.map_abundances`).

The modules' names before they moved into these packages (``napari_sigma.io.reading``, ...)
still import the same modules: :data:`MOVED_MODULES` lists every old name and its module now,
and :func:`~napari_sigma._lazy.moved_modules` puts a finder on ``sys.meta_path`` that answers an
old name with the moved module itself (not a copy: a name patched through either path is patched
for both; ``python -m`` of an old name runs the moved module). Nothing of this package's own
code uses the old names; objects pickled (the reading child's answers, the drawing child's
calls) name the modules where they are now, and the children are started by their new names. The
old names are for code written against them (scripts, notebooks, branches of this project); they
can go once nothing in tests/ and _napari/ imports them and one release has said so.
"""

from napari_sigma._lazy import lazy_exports, moved_modules

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "is_supported": "readers.reading",
        "read_spectrum_image": "readers.reading",
        "read_spectrum": "readers.reading",
        "read_any": "readers.reading",
        "SUPPORTED_EXTENSIONS": "readers.reading",
        "validate_spectrum_image": "readers.validation",
        "check_analysable": "readers.validation",
        "DataWarning": "readers.validation",
        "read_isolated": "reading_process.isolation",
        "read_steps": "reading_process.isolation",
        "ReadLimits": "reading_process.isolation",
        "prewarm": "reading_process.isolation",
        "EventCube": "readers.events",
        "event_cube_of": "readers.events",
        "export_result": "results.export",
        "export_steps": "results.export",
        "write_labels_tiff": "results.result_files",
        "read_labels_tiff": "results.result_files",
        "write_maps_tiff": "results.result_files",
        "write_spectra_csv": "results.result_files",
        "write_stats_csv": "results.result_files",
        "write_run_json": "results.run_record",
        "EXPORT_FILES": "results.export",
        "render_report": "results.report",
        "write_hspy": "results.writing",
        "Archive": "results.archive",
        "read_archive": "results.archive",
        "write_archive": "results.archive",
    },
)

MOVED_MODULES = {
    "reading": "napari_sigma.io.readers.reading",
    "signals": "napari_sigma.io.readers.signals",
    "calibration": "napari_sigma.io.readers.calibration",
    "decoding": "napari_sigma.io.readers.decoding",
    "events": "napari_sigma.io.readers.events",
    "validation": "napari_sigma.io.readers.validation",
    "_memory": "napari_sigma.io.readers._memory",
    "_rsciio": "napari_sigma.io.readers._rsciio",
    "h5oina": "napari_sigma.io.readers.h5oina",
    "_hdf5_direct": "napari_sigma.io.readers._hdf5_direct",
    "isolation": "napari_sigma.io.reading_process.isolation",
    "reader_process": "napari_sigma.io.reading_process.reader_process",
    "reader_child": "napari_sigma.io.reading_process.reader_child",
    "shared_arrays": "napari_sigma.io.reading_process.shared_arrays",
    "export": "napari_sigma.io.results.export",
    "result_files": "napari_sigma.io.results.result_files",
    "run_record": "napari_sigma.io.results.run_record",
    "export_sums": "napari_sigma.io.results.export_sums",
    "report": "napari_sigma.io.results.report",
    "writing": "napari_sigma.io.results.writing",
    "archive": "napari_sigma.io.results.archive",
    "child": "napari_sigma.io.results.child",
    "mineralogy": "napari_sigma.io.mineral_report.mineralogy",
    "report_sums": "napari_sigma.io.mineral_report.report_sums",
    "mineral_tables": "napari_sigma.io.mineral_report.mineral_tables",
    "map_abundances": "napari_sigma.minerals.map_abundances",
}
"""Where this package's modules moved (nineteenth session): old name -> full name now. Only
these names are aliased; an old name imports the module of its full name (the same object)."""

moved_modules(__name__, MOVED_MODULES)
