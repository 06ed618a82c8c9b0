"""The mineral report's files: the phases named and quantified, their modal mineralogy
(:mod:`mineralogy`), what the report reads of the cube (:mod:`report_sums`), its CSV rows and
HTML page (:mod:`mineral_tables`)."""

from napari_sigma._lazy import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "write_mineral_report": "mineralogy",
        "compute_mineralogy": "mineralogy",
        "MINERAL_FILES": "mineralogy",
    },
)
