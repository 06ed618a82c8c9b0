"""Import the plugin's heavy modules (matplotlib, the plotting tabs, the analysis settings; torch
later) in background threads, once per session, as soon as napari shows a spectrum image.

Docking the plugin needs the first ones; imported in napari's main thread they froze it for
1-3 s. The thread starts when the plugin first makes a spectrum image's layers (file, sample,
session: :func:`start_soon`, at the event-loop turn after the layers are added, so that it does not
compete with napari adding them), so that a user who then docks the plugin finds them imported;
the tabbed dock starts it too and builds its tabs once :func:`wait` returns. Errors are left for the
main thread's own import to raise where they belong.

torch and the analysis pipeline (:data:`COMPUTE_MODULES`) are imported by :func:`start_compute`, in a second thread that
starts once the first is done: the tabbed dock calls it when its last tab is built, a run before
starting its worker. It first starts the file-reading process (for a user who docks the plugin
before opening a file). The first run's worker imported it, and loading ``torch._C`` holds the GIL
for 250-620 ms in one C call (the dynamic loading of libtorch; measured: a 5 ms sleeping loop in
the main thread missed 246-624 ms at load 2-7), which froze napari as the analysis started.
:func:`_load_torch_libraries` loads those libraries first through the C library's ``dlopen``
(called through ctypes, which lets other threads run meanwhile; ``ctypes.CDLL`` held the GIL); the
import then finds them loaded. What is left holding the GIL is ``torch._C``'s initialisation (one
C call, 83 ms CPU) and 1.4 s of Python (switched every 5 ms). It is not started with the first
thread: imported while the user docks the plugin, it slowed the dock. The same thread then lets
dask look for dask.distributed (:func:`_warm_dask_scheduler`) and starts compiling napari's
label colouring (:func:`_warm_labels_drawing`): both were the first run's, in its first turns.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import sys
import threading
import weakref
from collections.abc import Iterator
from typing import Any

from napari_sigma._napari.import_pacing import paced_by_main_loop
from napari_sigma._napari.library_loading import extension_imports_wait
from napari_sigma.compute.background import start_thread
from napari_sigma.compute.device import load_torch_libraries as _load_torch_libraries

MODULES = (
    "matplotlib.figure",
    "matplotlib.backends.backend_qtagg",
    "napari_sigma.pipeline.settings",
    "napari_sigma._napari.plotting",
    "napari_sigma._napari.spectrum_widget",
    "napari_sigma._napari.phases_widget",
    "napari_sigma._napari.latent_widget",
    "napari_sigma._napari.analysis_widget",
    "napari_sigma._napari.main_widget",  # with the Analysis tab's: napari imports it to dock
    "napari_sigma._napari.docks",  # the separate docks' factories
)
COMPUTE_MODULES = ("torch", "napari_sigma.pipeline.analysis")
WARM_UP_THREAD = "napari-sigma-warm-up"  # results.warm_up_labels_drawing's thread
OPEN_PROGRESS = "Opening Files"  # napari's progress bar around viewer.open's reading and adding
START_AFTER_OPEN_MS = 1  # a timer, not a posted event: after the open has returned

_state: dict = {"thread": None, "compute": None}
_lock = threading.Lock()
_modules_done = threading.Event()


def start() -> threading.Thread:
    """Start importing :data:`MODULES` in a daemon thread (once); return it."""
    with _lock:
        if _state["thread"] is None:
            from napari_sigma._napari.threads import quick_gil_switch

            quick_gil_switch()  # the main thread's GIL take-backs while the imports run
            _state["thread"] = start_thread(_import_all, "napari-sigma-preload")
        return _state["thread"]


def start_soon() -> None:
    """:func:`start` at the next turn of Qt's event loop (at once when there is no Qt application).

    Called while napari opens a file, this starts the imports once napari has added the layers
    and returned from the open (:func:`_after_napari_opens_files`).
    """
    from qtpy.QtCore import QTimer
    from qtpy.QtWidgets import QApplication

    _watch_current_viewer()
    if _state["thread"] is not None:
        return
    if QApplication.instance() is None:
        start()
    elif not _after_napari_opens_files(start):
        QTimer.singleShot(0, start)


def _opening_files() -> list:
    """napari's live "Opening Files" progress bars (none outside ``viewer.open``)."""
    progress = getattr(sys.modules.get("napari.utils.progress"), "progress", None)
    instances = getattr(progress, "_all_instances", None)
    try:
        return [p for p in instances if str(getattr(p, "desc", "")).startswith(OPEN_PROGRESS)]
    except TypeError:  # another napari: no such registry
        return []


def _after_napari_opens_files(callback: Any) -> bool:
    """Call ``callback`` at the event-loop turn after napari's ``viewer.open`` has added the
    layers (its "Opening Files" progress bar closed); False when no open is under way.

    A zero timer set while napari opens a file fires inside the open: napari turns the event
    loop itself (its progress bar, each Image layer's controls), so the imports started there
    held the GIL while napari added the file's layers and drew them (the preload thread had 179
    ms of CPU in a JEOL open's longest block, load 6).
    """
    from qtpy.QtCore import QTimer

    if not _opening_files():
        return False
    instances = sys.modules["napari.utils.progress"].progress._all_instances

    def on_change(*_: Any) -> None:
        if _opening_files():
            return
        instances.events.changed.disconnect(on_change)
        QTimer.singleShot(START_AFTER_OPEN_MS, callback)

    instances.events.changed.connect(on_change)
    return True


def start_compute() -> threading.Thread:
    """Start importing :data:`COMPUTE_MODULES` (torch) in a daemon thread once :data:`MODULES`
    are imported (once); return it."""
    start()
    with _lock:
        if _state["compute"] is None:
            _state["compute"] = start_thread(_import_compute, "napari-sigma-preload-compute")
        return _state["compute"]


def wait_compute() -> None:
    """Start the torch import if needed and wait for it (in a worker, before it uses torch)."""
    start_compute().join()


def started() -> bool:
    """Whether :func:`start` was called (the imports under way or done)."""
    return _state["thread"] is not None


def wait(timeout: float | None = None) -> bool:
    """Start the imports if needed and wait for :data:`MODULES`; return whether they are done."""
    start()
    return _modules_done.wait(timeout)


def _import_all() -> None:
    try:
        _start_jit_warm_up()
        with collector_paused():
            _import(MODULES)
            _warm_threadpoolctl()
            _freeze_long_lived()
    finally:  # the torch thread waits for it, and the exit for that thread
        _modules_done.set()


def _import_compute() -> None:
    _modules_done.wait()
    with collector_paused():
        _prewarm_reading()
        # the loader's lock is held throughout: other threads' extension imports wait for it
        # without the GIL, not inside their own dlopen with it (library_loading)
        with extension_imports_wait():
            _load_torch_libraries()
        # one module at a time between the main thread's event-loop turns (import_pacing)
        with paced_by_main_loop():
            _import(COMPUTE_MODULES)
            _warm_threadpoolctl()  # torch's OpenMP
            _warm_dask_scheduler()
        _freeze_long_lived()
        _warm_labels_drawing()
        # what it made frozen as it is, its garbage too: no full collection here (below)
        _freeze_long_lived()


_paused: dict[str, Any] = {"count": 0, "thresholds": None}
_paused_lock = threading.Lock()
NO_FULL_COLLECTION = 2**30  # generation 2's threshold while paused: never reached


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """No full (generation-2) garbage collection, in any thread, while the block runs (nested
    and concurrent blocks allowed: the thresholds come back when the last one ends).

    The block is a background import (matplotlib, the tabs, torch: 130-260 thousand new
    objects). The collector ran full collections in the middle of them, each traversing every
    object not frozen and holding the GIL for all of it: 35-160 ms each in the preload threads
    and the open's warm-up (3-5 per session at load 15-19, in the open and dock steps of the
    heartbeat benchmark), during which napari's main thread stood still. The young generations
    are still collected (their collections traverse only the objects made since: short), so
    the imports' garbage goes as before. The caller freezes what the block made
    (:func:`_freeze_long_lived`) before it ends: what the full collection would have traversed.

    Not :func:`gc.disable`: a module imported with the collector off may capture that state
    (dask's ``disable_gc()`` decorator of ``dask.array.slicing``, made at import, switched the
    collector off for good at the first slicing of a cube).
    """
    with _paused_lock:
        if _paused["count"] == 0:
            _paused["thresholds"] = gc.get_threshold()
            young = _paused["thresholds"][:2]
            gc.set_threshold(*young, NO_FULL_COLLECTION)
        _paused["count"] += 1
    try:
        yield
    finally:
        with _paused_lock:
            _paused["count"] -= 1
            if _paused["count"] == 0:
                gc.set_threshold(*_paused["thresholds"])


def _warm_threadpoolctl() -> None:
    """Import threadpoolctl and let it find the process's BLAS/OpenMP libraries once, here.

    The first worker of a session (the Spectrum tab's element suggestion, as the plugin docks)
    limits those pools (:func:`~napari_sigma._napari.threads.leave_a_core`): threadpoolctl's
    import and its scan of every loaded library (a path resolved per library: napari's process
    loads hundreds) ran there, Python holding the GIL in the dock's turns (py-spy: 84-127 ms
    gaps of the dock step with that worker in ``threads._limit_pools``, JEOL, load 7-10).
    threadpoolctl keeps what it found per library path; later scans only look at new ones.
    """
    try:
        from threadpoolctl import threadpool_info

        threadpool_info()
    except Exception:  # the first worker's limit finds them, as before
        pass


def _warm_dask_scheduler() -> None:
    """Let dask look for dask.distributed now, as its first ``compute`` of the session does.

    With distributed installed, dask's first compute (with no scheduler named) imports
    ``distributed`` (its scheduler, deploy and comm modules: 0.2-0.4 s of CPU) to look for a
    client: the first run's worker did it at the analysis' first sum over a lazy cube, holding
    the GIL in the middle of napari's first turns of the run (py-spy, JEOL, load 20). dask's own
    check, so that whatever it imports is imported here; nothing when dask changes it.
    """
    try:
        from dask.base import _distributed_available

        _distributed_available()
    except Exception:  # another dask: its first compute does what it does
        pass


def _warm_labels_drawing() -> None:
    """Compile napari's label colouring (:func:`~napari_sigma._napari.results.warm_up_labels_drawing`)
    once torch is imported, and wait for it: the objects it makes are frozen with torch's.

    Started by Run, its compilation (2.4 s, 0.9 s of CPU) held the GIL in the run's first turns
    (80 ms of CPU in a 112 ms gap, load 20), at the same time as torch's import when Run came
    within seconds of the dock (two threads taking the GIL from napari's: 166-190 ms gaps at
    1024², load 20). Run starts this thread when it was not started (:func:`start_compute`), so
    the compilation always follows torch's import.

    It made numba's typing and target contexts and imported pandas (napari's Labels layer):
    ~100 thousand long-lived objects made after Run's freeze, which the full collection as the
    result arrives (:func:`~napari_sigma._napari.results._result_layers_in_pieces`) traversed with
    the run's own (27-41 ms of CPU in napari's main thread, JEOL, load 7-16), and two full
    collections in the warm-up thread itself (30-43 ms holding the GIL in the run's first
    seconds). Now this thread waits for the compilation with full collections paused, collects
    its garbage (one full collection over what the compilation made: the rest is frozen before
    it) and freezes the rest; the analysis worker waits for this thread (:func:`wait_compute`) as it did
    for torch, so the compilation no longer runs beside the analysis' first stage.

    That one full collection was itself the longest hold of the GIL left at a run's start: it
    traversed every object the compilation left (221 thousand tracked) for 13.5 thousand
    unreachable ones (numba's compiler: lists, tuples, sets, frames; 1.7 MB), 77-104 ms of CPU
    in one C call (napari's main thread stopped: a 125 ms gap with 102 ms of the preload
    thread's CPU, load 16; the 1024² heartbeat's run step 184 ms with 150 ms of another
    thread's CPU, seventeenth session). None is made now: what the compilation leaves, its
    garbage included, is frozen as it is (1.7 MB kept for the session, once).
    """
    try:
        from napari_sigma._napari.results import warm_up_labels_drawing

        warm_up_labels_drawing()
    except Exception:  # the first phases layer compiles it instead
        return
    from napari_sigma.compute.background import pending

    for thread in pending():
        if thread.name == WARM_UP_THREAD:
            thread.join()


def freeze_result() -> None:
    """A result's layers are all in: freeze what is alive (the result, its layers, their
    controls and visuals), after a collection of the young generations (the adding's and the
    worker's last garbage, not frozen with it; a few ms).

    Run froze what was alive before it, not what the result adds: every later full collection
    in napari's process traversed the result's objects, 37-53 ms holding the GIL in napari's
    main thread at each export and run (JEOL, fourteenth and fifteenth sessions). The result's
    layers are remembered: removing one gives the frozen objects back to the collector
    (:func:`thaw_when_removed`), so a deleted result's memory comes back as before.
    """
    gc.collect(1)
    _freeze_long_lived()


def freeze_long_lived() -> None:
    """:func:`_freeze_long_lived`, for the plugin's other background imports (the reader's
    warm-up), called where no object of a file being opened can be half made."""
    _freeze_long_lived()


def _freeze_long_lived() -> None:
    """Move every object alive now (napari, Qt, matplotlib, torch: modules, classes, the viewer)
    out of the garbage collector's reach (:func:`gc.freeze`).

    A full collection traverses every tracked object and holds the GIL meanwhile, whichever thread
    runs it: in the 1024² heartbeat benchmark 10 full collections took 33-347 ms each (4 in the
    main thread, 6 in workers, the main thread blocked either way). These objects live for the
    session; later collections only traverse what came after.

    Not the layers alive now (the file the user opened first): frozen, their reference cycles
    would never be collected, and a cube's memory would stay taken after the user deleted its
    layers. They are remembered (weakly); removing one thaws the collector's reach once
    (:func:`thaw_when_removed`).
    """
    with _lock:
        _freeze_locked()


def _freeze_locked() -> None:
    """:func:`gc.freeze`, the layers alive remembered (under :data:`_lock`)."""
    _frozen_layers.update(_layers_alive())
    gc.freeze()


_frozen_layers: weakref.WeakSet = weakref.WeakSet()
_thaw: dict = {"watched": weakref.WeakSet(), "pending": False}


def _layers_alive() -> list:
    """Every layer of every napari viewer of the session (none before napari made a viewer)."""
    viewer_class = getattr(sys.modules.get("napari.viewer"), "Viewer", None)
    viewers = list(getattr(viewer_class, "_instances", ()))
    return [layer for viewer in viewers for layer in list(viewer.layers)]


def _watch_current_viewer() -> None:
    """:func:`thaw_when_removed` of the viewer napari adds a plugin file's layers to: a user who
    opens a file and deletes its layers without docking a plugin widget gets its memory back."""
    if "napari" not in sys.modules:  # the API without napari: no viewer
        return
    try:
        from napari import current_viewer

        viewer = current_viewer()
    except Exception:  # no viewer to watch
        return
    if viewer is not None and hasattr(viewer, "layers"):
        thaw_when_removed(viewer)


def thaw_when_removed(viewer: Any) -> None:
    """Watch ``viewer`` (once): when a layer that was alive at a freeze is removed, give the
    frozen objects back to the collector, collect, and freeze what is still alive again, at the
    next turn of the event loop (napari has dropped the layer by then). One full collection
    (0.1-0.3 s holding the GIL) per such removal; layers added later (results) do not cost it."""
    if viewer in _thaw["watched"]:
        return
    _thaw["watched"].add(viewer)
    viewer.layers.events.removed.connect(_on_layer_removed)


def _on_layer_removed(event: Any) -> None:
    from qtpy.QtCore import QTimer

    if event.value not in _frozen_layers or _thaw["pending"]:
        return
    _thaw["pending"] = True
    QTimer.singleShot(0, _collect_thawed)


def _collect_thawed() -> None:
    _thaw["pending"] = False
    with _lock:  # a preload freeze in between would freeze the removed layer again
        gc.unfreeze()
        gc.collect()
        _freeze_locked()


def _start_jit_warm_up() -> None:
    """Start the child process that compiles the analysis' numba kernels into numba's cache
    (:func:`napari_sigma.compute._jit.start_warm_up`), before the user can press Run: the first
    run after an install compiled them in the analysis worker (5.6 s of CPU holding the GIL in
    bursts of 111 ms to 1 s, napari's main thread stopped meanwhile); it now loads them."""
    try:
        from napari_sigma.compute._jit import start_warm_up

        start_warm_up()
    except Exception:  # the first call compiles them, as before
        pass


def _prewarm_reading() -> None:
    """Start the file-reading process (:func:`napari_sigma.io.reading_process.isolation.prewarm`): a user who
    docked the plugin before opening a file then finds it started (~1-2 s of imports in the
    child); a no-op once a file was read."""
    try:
        from napari_sigma.io.reading_process.isolation import prewarm

        prewarm()
    except Exception:  # the read starts it again and reports what is wrong
        pass


def _import(names: tuple[str, ...]) -> None:
    for name in names:
        try:
            importlib.import_module(name)
        except Exception:  # the main thread's import of it raises it where it is needed
            continue
