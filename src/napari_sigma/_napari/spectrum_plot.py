"""The spectrum plot of the Spectrum and Phases tabs: named spectra against energy, X-ray line
markers, zoom/pan/reset, a log/linear switch and a legend above the axes, redrawn when changes
pause and only while shown.

Moved verbatim from :mod:`napari_sigma._napari.plotting` (which still exports every name).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.backends.backend_qtagg import NavigationToolbar2QT
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QCheckBox, QHBoxLayout, QVBoxLayout, QWidget

from napari_sigma._napari.axes_drawing import (
    FOREGROUND,
    LEGEND_FONT,
    LEGEND_GAP_EM,
    LEGEND_HANDLE_EM,
    LEGEND_MAX_HEIGHT,
    LEGEND_PAD_EM,
    LEGEND_ROW_EM,
    LEGEND_SPACING_EM,
    LEGEND_TEXTPAD_EM,
    _color_map,
    _fit_intensities_to_signal,
    _legend_columns,
    _legend_labels,
    _same_content,
    draw_line_markers,
    place_line_labels,
    style_axes,
)
from napari_sigma._napari.plot_canvas import PlotCanvas

REDRAW_DELAY_MS = 250  # a redraw waits for 250 ms without changes (the end of a brush stroke)
# a new plot draws itself once this long after it was made, shown or not (PlotCanvas.warm_up)
WARM_UP_DELAY_MS = 1500


class _Toolbar(NavigationToolbar2QT):
    """matplotlib's toolbar whose Home button resets the view through :class:`SpectrumPlot`."""

    reset: Any = None

    def home(self, *args: Any) -> None:
        """Back to the full energy range (the plot redraws, so the history is not used)."""
        if self.reset is not None:
            self.reset()


class SpectrumPlot(QWidget):
    """Named spectra against energy: line markers, zoom/pan/reset, log/linear, legend outside.

    Redraws wait for the changes to pause for ``REDRAW_DELAY_MS`` (a brush stroke draws once, at
    its end) and are skipped while the plot is hidden (a tab in the background); :meth:`flush`
    draws a pending change now. The figure is built and rendered in the plot thread
    (:class:`PlotCanvas`); ``canvas.wait_rendered()`` waits for it.

    Parameters
    ----------
    parent : QWidget, optional
        The Qt parent.
    ylabel : str
        Label of the intensity axis.
    """

    def __init__(self, parent: QWidget | None = None, ylabel: str = "counts") -> None:
        super().__init__(parent)
        self.canvas = PlotCanvas(self, height=3.4, margins=(58, 12, 40, 10), in_child=True)
        self._top_margin = self.canvas.margins[3]
        self._legend_layout: tuple[float, int, bool] | None = None  # entry px, columns, cut
        self.canvas.mpl_connect("resize_event", self._on_resize)
        self.toolbar = _Toolbar(self.canvas, self, coordinates=False)
        self.toolbar.reset = self.reset_view
        for action in self.toolbar.actions():  # keep pan, zoom and home; drop the rest
            if action.text() in ("Subplots", "Customize", "Save", "Back", "Forward"):
                self.toolbar.removeAction(action)
        self.log_scale = QCheckBox("log scale", self)
        self.log_scale.toggled.connect(self._schedule)
        self._ylabel = ylabel
        self._energy = np.zeros(0)
        self._spectra: dict[str, np.ndarray] = {}
        self._colors: dict[str, str] = {}
        self._counts: dict[str, float] = {}
        self._markers: dict[str, float] = {}
        self._range: tuple[float, float] | None = None
        self._labels: list = []
        self._pending = False
        self._drawn: Any = None  # what the last build drew (_content), None: nothing yet
        self.draw_count = 0
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(REDRAW_DELAY_MS)
        self._timer.timeout.connect(self.flush)
        options = QHBoxLayout()
        options.addWidget(self.toolbar)
        options.addStretch()
        options.addWidget(self.log_scale)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.canvas, 1)
        layout.addLayout(options)
        QTimer.singleShot(WARM_UP_DELAY_MS, self._warm_up)

    def _warm_up(self) -> None:
        """Draw the plot once (in the plot thread), shown or not, unless it was drawn already.

        The first rendering of a figure in the process loads fonts and lays out its ticks and
        labels (~70 ms of Python holding the GIL, in the plot thread): done a while after the
        plot is made (the dock is built), not when it is first shown (a run's result appearing,
        where it convoyed napari's insertion turns). A hidden plot is drawn at its size then; it
        draws again if shown at another size (what is drawn is kept: :meth:`_content`)."""
        from matplotlib.backends.qt_compat import _isdeleted

        if not _isdeleted(self) and self._drawn is None:
            self._draw()

    @property
    def spectra(self) -> dict[str, np.ndarray]:
        """The spectra shown, by name."""
        return dict(self._spectra)

    @property
    def markers(self) -> dict[str, float]:
        """The line markers shown (label to energy in keV)."""
        return dict(self._markers)

    def set_spectra(
        self,
        energy: np.ndarray,
        spectra: Mapping[str, np.ndarray],
        colors: Mapping[str, str] | Sequence[str] | None = None,
        counts: Mapping[str, float] | None = None,
    ) -> None:
        """Show ``spectra`` (name to counts per channel) against ``energy`` (keV).

        Parameters
        ----------
        energy : ndarray, shape (E,)
            Channel energies in keV.
        spectra : mapping of str to ndarray, shape (E,)
            The curves, drawn in this order.
        colors : mapping or sequence of str, optional
            Colours by name, or in the order of ``spectra``; default: a fixed palette.
        counts : mapping of str to float, optional
            By name, the counts behind one unit of a curve (a mean spectrum per pixel: its
            pixels, times the channels summed in one of its channels). A curve given here sets
            the intensity range only as far as its counts know its values (`signal_top`): a
            few-pixel phase's noise no longer squeezes a well-counted phase's peaks.
        """
        self._energy = np.asarray(energy, dtype=np.float64)
        self._spectra = {
            name: np.asarray(values, dtype=np.float64) for name, values in spectra.items()
        }
        self._colors = _color_map(list(self._spectra), colors)
        self._counts = {
            name: float(counts[name]) for name in self._spectra if counts and name in counts
        }
        self._schedule()

    def set_markers(self, lines: Mapping[str, float]) -> None:
        """Show vertical markers at X-ray line energies (label to keV)."""
        self._markers = dict(lines)
        self._schedule()

    def set_energy_range(self, low: float | None, high: float | None) -> None:
        """Show energies in ``[low, high]`` keV (None for both: the data's energy axis)."""
        self._range = None if low is None or high is None else (float(low), float(high))
        self._schedule()

    def set_ylabel(self, label: str) -> None:
        """Label the intensity axis (drawn at the next redraw)."""
        if label != self._ylabel:
            self._ylabel = label
            self._drawn = None  # not in what a redraw compares: draw again
            self._schedule()

    def set_log_scale(self, log: bool) -> None:
        """Switch the intensity axis between logarithmic and linear."""
        self.log_scale.setChecked(log)

    def reset_view(self) -> None:
        """Back to the full energy range and autoscaled intensities (the toolbar's home)."""
        self.toolbar.update()  # forget the zoom/pan history
        if self.toolbar.mode:  # leave pan or zoom mode
            (self.toolbar.pan if self.toolbar.mode == "pan/zoom" else self.toolbar.zoom)()
        self._draw()

    def _schedule(self, *_: Any) -> None:
        self._pending = True
        self._timer.start()  # restarts: a burst of changes (a brush stroke) draws once at its end

    def flush(self) -> None:
        """Draw a pending change now (when visible; otherwise when shown). Nothing is drawn when
        the plot would not change (the same spectra, markers, range and scale as drawn last)."""
        from napari_sigma._napari.state import shown

        if self._pending and shown(self):
            if self._drawn is not None and _same_content(self._drawn, self._content()):
                self._pending = False
                return
            self._draw()

    def _content(self) -> tuple[Any, ...]:
        """What a build draws (:meth:`_draw`), to compare with what was drawn; with spectra,
        also the figure's width (their legend's columns follow it: :meth:`_on_resize`)."""
        width = round(self.canvas.figure.bbox.width) if self._spectra else None
        return (self._energy, dict(self._spectra), dict(self._colors), dict(self._markers),
                self._default_xlim(), self.log_scale.isChecked(), self._user_view(),
                width, dict(self._counts))  # fmt: skip

    def showEvent(self, event: Any) -> None:
        """Draw what changed while hidden."""
        super().showEvent(event)
        if self._pending:
            self._timer.start()

    def _user_view(self) -> tuple[Any, Any] | None:
        """The limits a user zoomed or panned to (None when the view is the default one)."""
        if self.toolbar.mode or len(getattr(self.toolbar, "_nav_stack", [])) > 1:
            axes = self.canvas.axes
            return axes.get_xlim(), axes.get_ylim()
        return None

    def _default_xlim(self) -> tuple[float, float] | None:
        if self._range is not None:
            return self._range
        if self._energy.size:
            return max(float(self._energy[0]), 0.0), float(self._energy[-1])
        return None

    def _draw(self) -> None:
        """Rebuild the plot from the current spectra; built and rendered in the plot thread."""
        self._pending = False
        self.draw_count += 1
        self._drawn = content = self._content()
        energy, spectra, colors, markers, xlim, log, view, _, counts = content

        def build() -> None:
            axes = self.canvas.axes
            axes.clear()
            style_axes(axes)
            for name, values in spectra.items():
                axes.plot(energy, values, color=colors[name], lw=0.9, label=name)
            if log:
                axes.set_yscale("symlog", linthresh=1.0)
            else:  # no "1e6" over the legend: the ticks say it (2.5M)
                from napari_sigma._napari.ticks import CompactTicks

                axes.yaxis.set_major_formatter(CompactTicks())
            if xlim is not None:
                axes.set_xlim(*xlim)
            if not log and view is None:
                _fit_intensities_to_signal(axes, energy, spectra, counts, xlim)
            if view is not None:
                axes.set_xlim(*view[0])
                axes.set_ylim(*view[1])
            axes.set_xlabel("energy (keV)")
            axes.set_ylabel(self._ylabel)
            self._legend_above(axes, list(spectra))
            self._labels = draw_line_markers(axes, markers)
            axes.callbacks.connect("xlim_changed", self._on_zoom)

        self.canvas.render(build)

    def _on_zoom(self, axes: Any) -> None:
        place_line_labels(axes, self._labels)

    def _legend_above(self, axes: Any, names: list[str]) -> None:
        """The legend above the axes, in as many columns as the axes' width holds (the plot
        keeps the whole width of the dock); the top margin grows by its rows. Names wider than
        the axes are cut with an ellipsis in the legend (the lines keep their names).
        Runs in the plot thread (inside a build)."""
        left, right, bottom, _ = self.canvas.margins
        if not names:
            self._legend_layout = None
            self.canvas.set_margins((left, right, bottom, self._top_margin))
            return
        figure = self.canvas.figure
        available = max(figure.bbox.width - left - right, 40.0)
        font_px = LEGEND_FONT * figure.dpi / 72.0
        labels, column, cut = _legend_labels(names, available, figure.dpi)
        columns = _legend_columns(column, available, len(labels), figure.dpi)
        most = LEGEND_MAX_HEIGHT * figure.bbox.height - LEGEND_PAD_EM * font_px
        most_rows = max(1, int(most // (font_px * LEGEND_ROW_EM)))
        if -(-len(labels) // columns) > most_rows:  # more columns, the names cut to fit them
            columns = min(len(labels), -(-len(labels) // most_rows))
            spacing = LEGEND_SPACING_EM * font_px
            labels, column, cut = _legend_labels(
                names, (available + spacing) / columns - spacing, figure.dpi
            )
        self._legend_layout = (column, columns, cut)
        rows = -(-len(labels) // columns)
        height = rows * font_px * LEGEND_ROW_EM + LEGEND_PAD_EM * font_px
        self.canvas.set_margins((left, right, bottom, self._top_margin + int(np.ceil(height))))
        legend = axes.legend(
            axes.get_lines()[: len(labels)], labels, loc="lower left", bbox_to_anchor=(0.0, 1.0),
            ncols=columns, fontsize=LEGEND_FONT, frameon=False, borderaxespad=LEGEND_GAP_EM,
            borderpad=0.0, handlelength=LEGEND_HANDLE_EM, handletextpad=LEGEND_TEXTPAD_EM,
            columnspacing=LEGEND_SPACING_EM, labelspacing=LEGEND_ROW_EM - 1.0,
        )  # fmt: skip
        for text in legend.get_texts():
            text.set_color(FOREGROUND)

    def _on_resize(self, *_: Any) -> None:
        """A width that holds another number of legend columns (or no longer cuts a name)
        redraws the plot."""
        if self._legend_layout is None or not self._spectra:
            return
        column, columns, cut = self._legend_layout
        left, right = self.canvas.margins[:2]
        available = max(self.canvas.figure.bbox.width - left - right, 40.0)
        dpi = self.canvas.figure.dpi
        if cut or _legend_columns(column, available, len(self._spectra), dpi) != columns:
            self._schedule()
