"""The base of the plugin's dock widgets: a Qt widget of one napari viewer."""

from __future__ import annotations

import atexit
from typing import Any

from qtpy.QtWidgets import QWidget

from napari_sigma._napari import state

EXIT_WAIT_MS = 10_000
_exit_wait = {"registered": False}


def _wait_for_workers_at_exit() -> None:
    """Let running worker threads finish (at most :data:`EXIT_WAIT_MS`) before Python exits.

    A worker still computing (the Spectrum widget's sum and element suggestion of a large file)
    when a script closed its viewer and exited emitted its ``finished`` signal on a Qt object
    PyQt had already deleted at shutdown: the exception in a Qt thread aborted the process
    (``user_path.py`` printed ok, then exited 134). Registered after PyQt's own exit handler, so
    it runs before it.
    """
    from qtpy.QtCore import QThreadPool

    from napari_sigma.compute.cancel import cancel_all

    cancel_all()  # computations that can stop (the element suggestion) are not waited for
    QThreadPool.globalInstance().waitForDone(EXIT_WAIT_MS)


class ViewerWidget(QWidget):
    """A dock widget of one napari viewer (Analysis, Spectrum, Phases, Latent space, the tabs).

    Subclasses keep the ``napari_viewer`` parameter: napari injects the viewer by that name.

    Parameters
    ----------
    napari_viewer : napari.viewer.Viewer
        The viewer whose layers the widget reads and adds to (``self.viewer``).
    parent : QWidget, optional
        The Qt parent.
    """

    def __init__(self, napari_viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        if not _exit_wait["registered"]:
            _exit_wait["registered"] = True
            atexit.register(_wait_for_workers_at_exit)
        self.viewer = state.unwrap(napari_viewer)
        from napari_sigma._napari import preload

        preload.thaw_when_removed(self.viewer)  # a frozen layer's memory comes back
