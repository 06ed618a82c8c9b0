"""Reading vendor files into spectrum images, and writing results (TIFF, CSV, JSON, report)."""

from napari_sigma._lazy import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "is_supported": "reading",
        "read_spectrum_image": "reading",
        "read_spectrum": "reading",
        "read_any": "reading",
        "SUPPORTED_EXTENSIONS": "reading",
        "validate_spectrum_image": "validation",
        "check_analysable": "validation",
        "DataWarning": "validation",
        "read_isolated": "isolation",
        "read_steps": "isolation",
        "ReadLimits": "isolation",
        "prewarm": "isolation",
        "EventCube": "events",
        "event_cube_of": "events",
        "export_result": "export",
        "export_steps": "export",
        "write_labels_tiff": "result_files",
        "read_labels_tiff": "result_files",
        "write_maps_tiff": "result_files",
        "write_spectra_csv": "result_files",
        "write_stats_csv": "result_files",
        "write_run_json": "run_record",
        "EXPORT_FILES": "export",
        "render_report": "report",
        "write_hspy": "writing",
        "Archive": "archive",
        "read_archive": "archive",
        "write_archive": "archive",
    },
)
