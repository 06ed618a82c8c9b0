"""The analysis's modules imported in a background thread while the process reads its input.

``napari-sigma run`` reads a file in a child process (:mod:`napari_sigma.io.reading_process.isolation`) and then
analyses it: the analysis imports scipy's subpackages and its own modules, the export its own
(0.3-1 s of CPU in one process, one after the other, after the read). While the
main thread waits for the reading child (or reads a cube from a file: the GIL released in the
system calls), those imports can run on another core: :func:`start_importing` starts them in a
thread (:func:`~napari_sigma.compute.background.start_thread`, joined at the interpreter's exit)
and :func:`finish_importing` waits for it before the analysis.

Two threads never import at once: the modules the read itself imports in this process
(:data:`READ_MODULES`) are imported first, in the calling thread, and the caller imports nothing
between the two calls (it reads). A module the thread could not import is left for the analysis's
own import, which raises its error where it belongs. Nothing is started off the main thread
(napari's worker: the viewer's thread may be importing meanwhile), on one core, or when every
module is imported already.
"""

from __future__ import annotations

import importlib
import sys
import threading

ANALYSIS_MODULES = (
    "scipy.ndimage",
    "scipy.special",
    "scipy.interpolate",
    "scipy.optimize",
    "scipy.sparse.csgraph",
    "napari_sigma.pipeline.analysis",
    "napari_sigma.xray.lines",
    "napari_sigma.xray.image_fit",
    "napari_sigma.xray.elements",
    "napari_sigma.phases.finding",
    "napari_sigma.phases.statistics",
    "napari_sigma.unmixing.nmf",
    "napari_sigma.minerals.phases",
    "napari_sigma.minerals.host",
    "napari_sigma.minerals.intergrowth",
    "napari_sigma.io.mineral_report.mineralogy",
)
"""What every analysis imports (``napari-sigma run``'s, the speed benchmark's CLI worker's)."""

EXPORT_MODULES = ("napari_sigma.io.results.export", "napari_sigma.io.results.child", "tifffile")
"""What ``napari-sigma run``'s export imports in this process (its drawing is a child's)."""

READ_MODULES = (
    "napari_sigma.io.readers.reading",
    "napari_sigma.io.reading_process.isolation",
    "napari_sigma.io.readers.events",
    "napari_sigma.io.readers.validation",
    "napari_sigma.io.readers._rsciio",
)
"""What reading a file imports in the reading process itself (the decoding is the child's)."""

THREAD_NAME = "napari-sigma run imports"


def start_importing(
    modules: tuple[str, ...] = ANALYSIS_MODULES + EXPORT_MODULES,
) -> threading.Thread | None:
    """Import ``modules`` in a started background thread, or None where it does not pay or
    could import beside another thread (see the module docstring).

    The caller reads meanwhile, imports nothing else, and calls :func:`finish_importing` before
    its next import.
    """
    from napari_sigma.compute.background import start_thread
    from napari_sigma.compute.blocks import usable_cores

    if threading.current_thread() is not threading.main_thread() or usable_cores() < 2:
        return None
    for name in READ_MODULES:  # the read's own imports, before the thread starts
        importlib.import_module(name)
    missing = tuple(name for name in modules if name not in sys.modules)
    if not missing:
        return None
    return start_thread(_import, THREAD_NAME, args=(missing,))


def finish_importing(thread: threading.Thread | None) -> None:
    """Wait for :func:`start_importing`'s thread (None: nothing to wait for)."""
    if thread is not None:
        thread.join()


def _import(modules: tuple[str, ...]) -> None:
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception:  # the analysis's own import raises it where it belongs
            continue
