"""The base of the dock widgets that follow the active phases Labels layer (Phases, Latent space)."""

from __future__ import annotations

from typing import Any

from qtpy.QtWidgets import QWidget

from napari_sigma._napari import state
from napari_sigma._napari.viewer_widget import ViewerWidget


def phases_layers(viewer: Any) -> list[Any]:
    """The viewer's Labels layers made by the analysis (role ``"phases"``)."""
    return [layer for layer in viewer.layers if state.role_of(layer) == "phases"]


class PhaseLayerDock(ViewerWidget):
    """A dock widget that follows the viewer's active phases layer (else its last one).

    Subclasses build their UI, then call :meth:`follow_phases_layers`, and implement
    :meth:`_connect` (their layer and model events) and :meth:`show_layer`.

    Parameters: those of `ViewerWidget`.
    """

    def __init__(self, napari_viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(napari_viewer, parent)
        self.layer: Any = None

    def follow_phases_layers(self) -> None:
        """Follow layer selection, insertion and removal from now on, starting with the current."""
        self.viewer.layers.selection.events.active.connect(self._on_active_layer)
        self.viewer.layers.events.inserted.connect(self._on_active_layer)
        self.viewer.layers.events.removed.connect(self._on_layer_removed)
        self._on_active_layer()

    @property
    def model(self) -> Any:
        """The PhaseModel of the current layer."""
        return state.plugin_data(self.layer).get("phases") if self.layer is not None else None

    @property
    def result(self) -> Any:
        """The AnalysisResult of the current layer."""
        return state.result_of(self.layer) if self.layer is not None else None

    def set_layer(self, layer: Any) -> None:
        """Follow and show ``layer`` (a phases Labels layer, or None) instead of the current one."""
        if layer is self.layer:
            return
        if self.layer is not None:
            self._connect(self.layer, connect=False)
        self.layer = layer
        if layer is not None:
            self._connect(layer, connect=True)
        self.show_layer(layer)

    def show_layer(self, layer: Any) -> None:
        """Show the new current ``layer`` (None: no phases layer)."""
        raise NotImplementedError

    def _connect(self, layer: Any, connect: bool) -> None:
        """Connect (or disconnect) the events of ``layer`` and its PhaseModel this widget follows."""
        raise NotImplementedError

    def forget_layer(self, layer: Any) -> None:
        """Drop what is cached for ``layer``, which left the viewer (nothing by default)."""

    def _on_active_layer(self, *_: Any) -> None:
        active = self.viewer.layers.selection.active
        if state.role_of(active) == "phases":
            self.set_layer(active)
        elif self.layer is None or self.layer not in self.viewer.layers:
            layers = phases_layers(self.viewer)
            self.set_layer(layers[-1] if layers else None)

    def _on_layer_removed(self, event: Any) -> None:
        self.forget_layer(event.value)
        if event.value is self.layer:
            self.set_layer(None)
            self._on_active_layer()
