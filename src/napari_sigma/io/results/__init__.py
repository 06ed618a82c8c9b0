"""An analysis' result files: every file in turn (:mod:`export`; the TIFF and CSV writers in
:mod:`result_files`, ``run.json`` in :mod:`run_record`, the sums taken instead of the cube in
:mod:`export_sums`), the report image (:mod:`report`), ``.hspy`` (:mod:`writing`), the
``.sigma`` archive (:mod:`archive`), and the child process that draws and sums for them
(:mod:`child`; napari keeps one for its session: :mod:`export_child`)."""

from napari_sigma._lazy import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "export_result": "export",
        "export_steps": "export",
        "EXPORT_FILES": "export",
        "write_labels_tiff": "result_files",
        "read_labels_tiff": "result_files",
        "write_maps_tiff": "result_files",
        "write_spectra_csv": "result_files",
        "write_stats_csv": "result_files",
        "write_run_json": "run_record",
        "render_report": "report",
        "write_hspy": "writing",
        "Archive": "archive",
        "read_archive": "archive",
        "write_archive": "archive",
        "ChildProcess": "child",
        "KeptChild": "export_child",
    },
)
