"""The whole plugin in one dock: Analysis, Spectrum, Phases and Latent space as tabs.

Fits a 1920x1080 screen beside the image; the Phases tab keeps the phase table and the phase
spectra together while a user paints. Each tab is the same widget the plugin also contributes as
a dock of its own (Plugins menu), so either way of working sees the same layers.
"""

from __future__ import annotations

from typing import Any

from qtpy.QtWidgets import QTabWidget, QVBoxLayout, QWidget

from napari_sigma._napari.analysis_widget import AnalysisWidget
from napari_sigma._napari.latent_widget import LatentWidget
from napari_sigma._napari.phases_widget import PhasesWidget
from napari_sigma._napari.spectrum_widget import SpectrumWidget
from napari_sigma._napari.viewer_widget import ViewerWidget

MINIMUM_WIDTH = 460


class SigmaWidget(ViewerWidget):
    """One dock with the four plugin widgets as tabs (parameters of `ViewerWidget`)."""

    def __init__(self, napari_viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(napari_viewer, parent)
        viewer = self.viewer
        self.tabs = QTabWidget(self)
        self.analysis = AnalysisWidget(viewer)
        self.spectrum = SpectrumWidget(viewer)
        self.phases = PhasesWidget(viewer)
        self.latent = LatentWidget(viewer)
        for widget, title in (
            (self.analysis, "Analysis"),
            (self.spectrum, "Spectrum"),
            (self.phases, "Phases"),
            (self.latent, "Latent space"),
        ):
            self.tabs.addTab(widget, title)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.tabs)
        self.setMinimumWidth(MINIMUM_WIDTH)
        self.analysis.last_result_callback = self._show_phases

    @property
    def selected_elements(self) -> tuple[str, ...]:
        """The elements checked in the Spectrum tab (the Analysis tab starts from them)."""
        return self.spectrum.selected_elements

    def _show_phases(self) -> None:
        """After a run, bring the Phases tab forward."""
        self.tabs.setCurrentWidget(self.phases)
