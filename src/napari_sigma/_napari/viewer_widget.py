"""The base of the plugin's dock widgets: a Qt widget of one napari viewer."""

from __future__ import annotations

from typing import Any

from qtpy.QtWidgets import QWidget

from napari_sigma._napari import state


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
        self.viewer = state.unwrap(napari_viewer)
