"""The Latent space dock widget: the 2-D latent of a phases layer as a phase-coloured density.

Each pixel of the latent histogram takes the colour mix of the phases whose points fall in it,
with a log-density brightness (10^6 points draw in milliseconds). A lasso
(:class:`matplotlib.widgets.LassoSelector`) assigns the pixels of the enclosed latent points to a
chosen or a new phase in one undo step (:meth:`LatentWidget.assign_selection`, callable without a
mouse); the phase selected in the Labels layer is overlaid as a sample of its points.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QComboBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from napari_sigma._napari import editing, state
from napari_sigma._napari.phase_layer_dock import PhaseLayerDock
from napari_sigma._napari.plotting import PlotCanvas
from napari_sigma.latent.density import latent_extent, phase_density_image

MAX_HIGHLIGHT = 5000
REDRAW_DELAY_MS = 300
NEW_PHASE = -1
LAYER_EVENTS = ("paint", "set_data", "data")


class LatentWidget(PhaseLayerDock):
    """Dock widget showing the latent space of the active phases layer, with a lasso.

    Parameters
    ----------
    napari_viewer : napari.Viewer
        The viewer; the widget follows its active phases Labels layer.
    parent : QWidget, optional
        The Qt parent.
    """

    def __init__(self, napari_viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(napari_viewer, parent)
        self.canvas = PlotCanvas(self, height=3.5, margins=(64, 12, 40, 10))
        self.target = QComboBox(self)
        self.info = QLabel("", self)
        self._image_artist: Any = None
        self._highlight: Any = None
        self._redraw_timer = QTimer(self)
        self._redraw_timer.setSingleShot(True)
        self._redraw_timer.setInterval(REDRAW_DELAY_MS)
        self._redraw_timer.timeout.connect(self._redraw_if_shown)
        self._pending = False
        row = QHBoxLayout()
        row.addWidget(QLabel("lasso assigns to", self))
        row.addWidget(self.target, 1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.canvas)
        layout.addLayout(row)
        layout.addWidget(self.info)
        from matplotlib.widgets import LassoSelector

        # no blitting: the canvas renders in a background thread (its image is not the figure's
        # state at every moment); the lasso line is drawn with the figure
        self.lasso = LassoSelector(self.canvas.axes, onselect=self._on_lasso, useblit=False)
        self.follow_phases_layers()

    # -- which layer -------------------------------------------------------------------------
    def show_layer(self, layer: Any) -> None:
        """Show the latent of ``layer`` (a phases Labels layer, or None)."""
        self.refresh_targets()
        self.schedule_redraw()

    def _connect(self, layer: Any, connect: bool) -> None:
        for name in LAYER_EVENTS:
            emitter = getattr(layer.events, name)
            (emitter.connect if connect else emitter.disconnect)(self.schedule_redraw)
        emitter = layer.events.selected_label
        (emitter.connect if connect else emitter.disconnect)(self.schedule_redraw)
        model = self.model
        if model is not None:
            (model.changed.connect if connect else model.changed.disconnect)(self._on_model)

    def _on_model(self) -> None:
        self.refresh_targets()
        self.schedule_redraw()

    def refresh_targets(self) -> None:
        """Fill the lasso target list: "new phase" and the known phases."""
        current = self.target.currentData()
        self.target.blockSignals(True)
        self.target.clear()
        self.target.addItem("new phase", NEW_PHASE)
        for phase in self.model or []:
            self.target.addItem(f"{phase.id}: {phase.name}", phase.id)
        index = self.target.findData(current)
        self.target.setCurrentIndex(max(index, 0))
        self.target.blockSignals(False)

    # -- drawing -----------------------------------------------------------------------------
    def schedule_redraw(self, *_: Any) -> None:
        """Redraw once edits pause for ``REDRAW_DELAY_MS`` (a brush stroke: at its end)."""
        self._pending = True
        self._redraw_timer.start()

    def _redraw_if_shown(self) -> None:
        if self._pending and state.shown(self):
            self.redraw()

    def showEvent(self, event: Any) -> None:
        """Draw what changed while the widget was hidden (a tab in the background)."""
        super().showEvent(event)
        if self._pending:
            self._redraw_timer.start()

    def redraw(self) -> None:
        """Draw the phase-coloured latent density of the current layer (in the plot thread)."""
        self._pending = False
        result, axes = self.result, self.canvas.axes
        if result is None or len(result.latent) == 0:
            self.info.setText("no latent space (select a phases layer)")

            def build_empty() -> None:
                axes.clear()
                self._image_artist = self._highlight = None

            self.canvas.render(build_empty)
            return
        latent = np.asarray(result.latent, dtype=np.float64)
        phases = editing.latent_phase_of_rows(result, np.asarray(self.layer.data))
        colors = {pid: self.model.color(pid) for pid in np.unique(phases)}
        points = self.highlighted_points(phases)
        self.info.setText(f"{len(latent)} points; draw a lasso to assign them")

        def build() -> None:
            extent = latent_extent(latent)
            image = phase_density_image(latent, phases, colors, extent)
            axes.clear()
            artist = axes.imshow(
                image, origin="lower", extent=extent, aspect="auto", interpolation="nearest"
            )
            axes.set_xlabel("latent 1")
            axes.set_ylabel("latent 2")
            self._highlight = axes.scatter(
                points[:, 0], points[:, 1], s=2, c="white", alpha=0.6, linewidths=0
            )
            self._image_artist = artist

        self.canvas.render(build)

    def highlighted_points(self, phases: np.ndarray | None = None) -> np.ndarray:
        """Latent points (at most 5000, a seeded sample) of the layer's selected label.

        ``phases``: the current label of each latent row, if the caller has it.
        """
        if phases is None:
            phases = editing.latent_phase_of_rows(self.result, np.asarray(self.layer.data))
        rows = np.flatnonzero(phases == self.layer.selected_label)
        if rows.size > MAX_HIGHLIGHT:
            rows = np.random.default_rng(0).choice(rows, MAX_HIGHLIGHT, replace=False)
        return np.asarray(self.result.latent, dtype=np.float64)[rows, :2]

    # -- lasso -------------------------------------------------------------------------------
    def _on_lasso(self, vertices: Sequence[Sequence[float]]) -> None:
        target = self.target.currentData()
        self.assign_selection(vertices, None if target in (None, NEW_PHASE) else int(target))

    def assign_selection(
        self, vertices: Sequence[Sequence[float]], target_phase: int | None = None
    ) -> int | None:
        """Assign the pixels of the latent points inside ``vertices`` to a phase, as one undo step.

        Parameters
        ----------
        vertices : sequence of (x, y)
            The lasso polygon in latent coordinates.
        target_phase : int, optional
            The phase they join; None makes a new phase.

        Returns
        -------
        int or None
            The phase assigned, or None when the lasso enclosed no point.
        """
        if self.layer is None or self.result is None:
            return None
        labels = np.asarray(self.layer.data)
        if target_phase is None:
            target_phase = max(self.model.next_id(), int(labels.max()) + 1)
        edit = editing.assign_latent_selection(labels, self.result, vertices, target_phase)
        if edit.size == 0:
            return None
        self.model.ensure([target_phase])
        editing.apply_to_layer(self.layer, edit)
        self.layer.selected_label = target_phase
        return target_phase
