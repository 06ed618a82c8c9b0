"""Import the plugin's heavy modules (matplotlib, the plotting tabs, the analysis settings) in a
background thread, once per session, as soon as napari shows a spectrum image.

Docking the plugin needs them; imported in napari's main thread they froze it for 1-3 s. The
thread starts when the plugin first makes a spectrum image's layers (file, sample, session), so
that a user who then docks the plugin finds them imported; the tabbed dock starts it too and
builds its tabs once :func:`wait` returns. Errors are left for the main thread's own import to
raise where they belong.
"""

from __future__ import annotations

import importlib
import threading

MODULES = (
    "matplotlib.figure",
    "matplotlib.backends.backend_qtagg",
    "napari_sigma.pipeline.settings",
    "napari_sigma._napari.plotting",
    "napari_sigma._napari.spectrum_widget",
    "napari_sigma._napari.phases_widget",
    "napari_sigma._napari.latent_widget",
)

_state = {"thread": None}
_lock = threading.Lock()


def start() -> threading.Thread:
    """Start importing :data:`MODULES` in a daemon thread (once); return the thread."""
    with _lock:
        if _state["thread"] is None:
            thread = threading.Thread(target=_import_all, name="napari-sigma-preload", daemon=True)
            _state["thread"] = thread
            thread.start()
        return _state["thread"]


def wait(timeout: float | None = None) -> bool:
    """Start the imports if needed and wait for them; return whether they are done."""
    thread = start()
    thread.join(timeout)
    return not thread.is_alive()


def _import_all() -> None:
    for name in MODULES:
        try:
            importlib.import_module(name)
        except Exception:  # the main thread's import of it raises it where it is needed
            continue
