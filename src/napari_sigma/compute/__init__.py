"""Where and how computations run: the torch device, progress and cancellation."""

from napari_sigma._lazy import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "resolve_device": "device",
        "configure_fast_math": "device",
        "torch_threads": "device",
        "Progress": "progress",
        "run_to_completion": "progress",
        "LocalExecutor": "distributed",
        "DaskExecutor": "distributed",
        "executor": "distributed",
    },
)
