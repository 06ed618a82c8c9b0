"""Reading vendor files into spectrum images, and writing results (TIFF, CSV, JSON, report).

Its parts, one package per domain:

- :mod:`~napari_sigma.io.readers`: a vendor file read into a spectrum image (rosettasciio's
  readers and this package's own), its axes, its event lists, the checks at the door;
- :mod:`~napari_sigma.io.reading_process`: a file read in a child process (the parent's side,
  the child's side, the large arrays' files in ``/dev/shm``);
- :mod:`~napari_sigma.io.results`: an analysis' result files (export, report, run record,
  ``.hspy``, ``.sigma`` archive) and the child process that draws and sums for them;
- :mod:`~napari_sigma.io.mineral_report`: the mineral report's files.

The modules' names before they moved into these packages (``napari_sigma.io.reading``, ...)
still import the same modules.
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
    **{
        name: f"{__name__}.readers.{name}"
        for name in (
            "reading",
            "signals",
            "calibration",
            "decoding",
            "events",
            "validation",
            "_memory",
            "_rsciio",
            "h5oina",
            "_hdf5_direct",
        )
    },
    **{
        name: f"{__name__}.reading_process.{name}"
        for name in ("isolation", "reader_process", "reader_child", "shared_arrays")
    },
    **{
        name: f"{__name__}.results.{name}"
        for name in (
            "export",
            "result_files",
            "run_record",
            "export_sums",
            "report",
            "writing",
            "archive",
            "child",
        )
    },
    **{
        name: f"{__name__}.mineral_report.{name}"
        for name in ("mineralogy", "report_sums", "mineral_tables")
    },
}
"""Where this package's modules moved (nineteenth session): old name -> full name now."""

moved_modules(__name__, MOVED_MODULES)
