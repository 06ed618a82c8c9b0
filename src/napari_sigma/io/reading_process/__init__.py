"""A file read in a child process, so that a reader crashing, hanging or exhausting memory on a
bad file costs the child only: the parent's side (:mod:`isolation`), the child seen from the
parent (:mod:`reader_process`), the child's side (:mod:`reader_child`) and the large arrays'
files in ``/dev/shm`` (:mod:`shared_arrays`). The child runs
``python -m napari_sigma.io.reading_process.isolation``."""

from napari_sigma._lazy import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "read_isolated": "isolation",
        "read_steps": "isolation",
        "ReadLimits": "isolation",
        "prewarm": "isolation",
    },
)
