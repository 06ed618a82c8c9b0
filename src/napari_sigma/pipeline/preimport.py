"""The analysis's modules imported in a background thread while the process reads its input.

``napari-sigma run`` reads a file in a child process (:mod:`napari_sigma.io.reading_process.isolation`) and then
analyses it: the analysis imports scipy's subpackages and its own modules, the export its own
and matplotlib for report.png (0.3-1 s of CPU and ~0.35 s, in one process, one after the other,
after the read). While the
main thread waits for the reading child (or reads a cube from a file: the GIL released in the
system calls), those imports can run on another core: :func:`start_importing` starts them in a
thread (:func:`~napari_sigma.compute.background.start_thread`, joined at the interpreter's exit)
and :func:`finish_importing` waits for it before the analysis.

Two threads never import at once: the modules the read itself imports in this process
(:data:`READ_MODULES`) are imported first, in the calling thread, and the caller imports nothing
between the two calls (it reads). A read that turns out lazy (a cube larger than its share of the
memory limit: the parent then opens the file itself, importing its reader) waits for the thread
first (:func:`wait_for_imports`, called by :mod:`napari_sigma.io.reading_process.isolation`). A
module the thread could not import is left for the analysis's own import, which raises its error
where it belongs.
Nothing is started off the main thread (napari's worker: the viewer's thread may be importing
meanwhile), on one core, or when every module is imported already.

For a large file (:data:`COMPILED_CODE_FILE_BYTES`) the thread then loads numba's compiled code
of the phase sums and the abundance pass (:func:`~napari_sigma.unmixing.abundances.
load_compiled_code`, ~0.6 s of CPU once per process) if the read is still going: the unmixing's
phase sums otherwise wait for that load (0.6 s of wall in a 1024² run at load 6). Loading code
changes no number.

scipy's array-API layer (imported by every scipy subpackage the analysis uses) copies numpy's
namespace with ``from numpy import *``, which imports each lazily loaded numpy subpackage it
names, among them numpy's developer tools :data:`DEFERRED_NUMPY_MODULES` (the Fortran wrapper
generator and the test helpers: ~0.05-0.07 s of the thread's CPU, 75 modules), which no analysis
uses. :func:`start_importing` registers those as lazy modules first (:func:`defer_numpy_tools`:
``importlib.util.LazyLoader``, executed on their first attribute use), so the thread's imports
(the critical path of a small map's run: the read takes less) end earlier.

The thread's imports make ~40 000 objects (functions, classes, module namespaces, most of
which live as long as the process). Python's cyclic garbage collector, run every ~700
allocations, traversed them again and again while they were made (~90 young collections and
a full one: ~0.04 s of the thread's CPU) and in every later full collection (~0.05-0.1 s
each: one during a 256² run's analysis or export). :func:`collections_deferred` pauses the
collector during the imports and then freezes every object it tracks (``gc.freeze``, a
public call: those objects are left out of later collections); the CLI puts them back in
the collector's reach (:func:`unfreeze_collections`) once an input is done. Garbage
collection changes no number.

About half of the thread's CPU in scipy and matplotlib was their import-time docstring
rendering (scipy parsing ~400 numpydoc docstrings to append notes, matplotlib listing every
``Artist`` subclass's properties in its ``set()`` docstring): the thread imports with that
left out (:func:`~napari_sigma.pipeline.import_docs.docs_unrendered`; the libraries' own code is
put back afterwards). Docstrings change no number and no pixel.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

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
    "importlib.metadata",  # the result's package versions (numpy.testing imported it before)
)
"""What every analysis imports (``napari-sigma run``'s, the speed benchmark's CLI worker's)."""

EXPORT_MODULES = (
    "napari_sigma.io.results.export",
    "napari_sigma.io.results.child",
    "tifffile",
    "napari_sigma.io.results.report",
    "matplotlib.figure",
    "matplotlib.backends.backend_agg",
)
"""What ``napari-sigma run``'s export imports in this process: its files' writers and
report.png's drawing, which the CLI's export makes in this process (``export_result``'s
``draw_in_process`` is napari's: a child there), so matplotlib (~0.35 s of CPU, imported
last) would otherwise be imported after the analysis, on the way to the run's end."""

READ_MODULES = (
    "napari_sigma.io.readers.reading",
    "napari_sigma.io.reading_process.isolation",
    "napari_sigma.io.readers.events",
    "napari_sigma.io.readers.validation",
    "napari_sigma.io.readers._rsciio",
)
"""What reading a file imports in the reading process itself (the decoding is the child's)."""

DEFERRED_NUMPY_MODULES = ("numpy.f2py", "numpy.testing")
"""numpy's developer tools, which scipy's array-API layer imports and no analysis uses (see the
module docstring): loaded lazily in the processes :func:`start_importing` serves."""

THREAD_NAME = "napari-sigma run imports"

COMPILED_CODE_FILE_BYTES = 512 * 2**20
"""Files of at least this size get numba's compiled code loaded while they are read (the
compiled passes take cubes of 2**18 pixels or more: a 512 x 512 x 1024 uint16 cube is 512 MiB;
a smaller file whose cube still takes them loads the code as before, beside the phase sums)."""

# each running thread's "the read is done" event: set by finish_importing / wait_for_imports
_READ_DONE: dict[threading.Thread, threading.Event] = {}


def start_importing(
    modules: tuple[str, ...] = ANALYSIS_MODULES + EXPORT_MODULES, compiled_code: bool = False
) -> threading.Thread | None:
    """Import ``modules`` in a started background thread, or None where it does not pay or
    could import beside another thread (see the module docstring).

    ``compiled_code``: then load numba's compiled code in the same thread, if the read is still
    going (:func:`compiled_code_pays`).

    The caller reads meanwhile, imports nothing else, and calls :func:`finish_importing` before
    its next import.
    """
    from napari_sigma.compute.background import start_thread
    from napari_sigma.compute.blocks import usable_cores

    if threading.current_thread() is not threading.main_thread() or usable_cores() < 2:
        return None
    for name in READ_MODULES:  # the read's own imports, before the thread starts
        importlib.import_module(name)
    defer_numpy_tools()
    missing = tuple(name for name in modules if name not in sys.modules)
    if not missing:
        return None
    read_done = threading.Event()
    thread = start_thread(_import, THREAD_NAME, args=(missing, compiled_code, read_done))
    _READ_DONE[thread] = read_done
    return thread


def defer_numpy_tools(names: tuple[str, ...] = DEFERRED_NUMPY_MODULES) -> list[str]:
    """Register each of ``names`` (numpy subpackages) not imported yet as a lazy module: the
    module object is in ``sys.modules`` and on numpy, and its code runs on the first use of one
    of its attributes (``importlib.util.LazyLoader``; ``numpy.testing.assert_allclose`` then
    works as before). The names registered; none where numpy is not imported or a name cannot
    be found (left to numpy's own lazy import)."""
    import importlib.util

    numpy = sys.modules.get("numpy")
    deferred = []
    for name in names:
        parent, _, child = name.rpartition(".")
        if numpy is None or parent != "numpy" or name in sys.modules:
            continue
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            continue
        spec.loader = importlib.util.LazyLoader(spec.loader)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)  # nothing runs until an attribute is used
        setattr(numpy, child, module)  # as an import sets a submodule on its package
        deferred.append(name)
    return deferred


def compiled_code_pays(path: str | Path) -> bool:
    """Whether ``napari-sigma run`` loads numba's compiled code while it reads ``path``: a file
    of at least :data:`COMPILED_CODE_FILE_BYTES`."""
    try:
        return Path(path).stat().st_size >= COMPILED_CODE_FILE_BYTES
    except OSError:  # the read reports the file's problem
        return False


def finish_importing(thread: threading.Thread | None) -> None:
    """Wait for :func:`start_importing`'s thread (None: nothing to wait for); the read is done,
    so the thread starts no load of compiled code from now on."""
    if thread is not None:
        read_done = _READ_DONE.pop(thread, None)
        if read_done is not None:
            read_done.set()
        thread.join()


def wait_for_imports() -> None:
    """Wait for every running thread of :func:`start_importing` (at once when none runs):
    called by a read that is about to import in the reading thread (a lazy read's reader)."""
    for thread in list(_READ_DONE):
        if thread is not threading.current_thread():
            finish_importing(thread)


def _import(
    modules: tuple[str, ...], compiled_code: bool = False, read_done: threading.Event | None = None
) -> None:
    from napari_sigma.pipeline.import_docs import docs_unrendered

    with collections_deferred(), docs_unrendered(modules):
        for name in modules:
            try:
                importlib.import_module(name)
            except Exception:  # the analysis's own import raises it where it belongs
                continue
        if compiled_code and not (read_done is not None and read_done.is_set()):
            try:
                from napari_sigma.unmixing.abundances import load_compiled_code

                load_compiled_code()
            except Exception:  # the unmixing's own load raises or falls back where it belongs
                pass


@contextlib.contextmanager
def collections_deferred() -> Iterator[None]:
    """No cyclic garbage collection while the block runs; then every object the collector
    tracks is frozen (``gc.freeze()``: left out of later collections until
    :func:`unfreeze_collections`). A collector disabled before the block stays disabled."""
    import gc

    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


def unfreeze_collections() -> None:
    """Put the objects :func:`collections_deferred` froze back in the collector's reach (its
    oldest generation: ``gc.unfreeze()``), where a later full collection frees any garbage
    among them; ``napari-sigma run`` calls it once an input is analysed and exported."""
    import gc

    gc.unfreeze()
