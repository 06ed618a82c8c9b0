"""Small matplotlib-in-Qt helpers shared by the plugin's widgets.

:class:`PlotCanvas` is a matplotlib figure inside a Qt widget, coloured to sit in napari's dark
theme; :class:`SpectrumPlot` draws named spectra against energy with X-ray line markers and a
log/linear switch. Nothing here knows about napari layers or EDS science.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from qtpy.QtWidgets import QCheckBox, QHBoxLayout, QSizePolicy, QVBoxLayout, QWidget

BACKGROUND = "#262930"  # napari's dark theme background
FOREGROUND = "#d1d2d4"
MARKER_COLOR = "#9aa0a6"
DEFAULT_COLORS = ("#f0f0f0", "#ffb000", "#00c0ff", "#ff5aa0", "#7fe07f", "#c08cff")


def style_axes(axes: Any) -> None:
    """Colour a matplotlib axes for napari's dark theme."""
    axes.set_facecolor(BACKGROUND)
    for spine in axes.spines.values():
        spine.set_color(FOREGROUND)
    axes.tick_params(colors=FOREGROUND, labelsize=8)
    axes.xaxis.label.set_color(FOREGROUND)
    axes.yaxis.label.set_color(FOREGROUND)
    axes.title.set_color(FOREGROUND)


class PlotCanvas(FigureCanvasQTAgg):
    """A matplotlib figure as a Qt widget, with one dark-themed axes (``self.axes``).

    Parameters
    ----------
    parent : QWidget, optional
        The Qt parent.
    height : float
        Figure height in inches (the width follows the dock).
    """

    def __init__(self, parent: QWidget | None = None, height: float = 2.6) -> None:
        figure = Figure(figsize=(4.0, height), facecolor=BACKGROUND, layout="constrained")
        super().__init__(figure)
        self.setParent(parent)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumHeight(int(height * 60))
        self.axes = figure.add_subplot(111)
        style_axes(self.axes)

    def redraw(self) -> None:
        """Schedule a repaint of the figure."""
        self.draw_idle()

    def draw(self) -> None:
        """Render the figure, unless Qt deleted the widget (before or during the draw).

        matplotlib's idle draw prints an exception and swallows it; here it goes to
        ``sys.excepthook`` instead (a napari notification, a failure under pytest-qt). A layout that
        cannot fit a collapsed dock is skipped silently rather than warned about.
        """
        from matplotlib.backends.qt_compat import _isdeleted

        if _isdeleted(self):
            return
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="constrained_layout not applied")
                super().draw()
        except RuntimeError:
            if not _isdeleted(self):  # the widget was deleted during the draw: nothing to show
                sys.excepthook(*sys.exc_info())
        except Exception:
            sys.excepthook(*sys.exc_info())


def draw_line_markers(axes: Any, lines: Mapping[str, float], color: str = MARKER_COLOR) -> list:
    """Draw a labelled vertical marker per X-ray line.

    Parameters
    ----------
    axes : matplotlib Axes
        Where to draw.
    lines : mapping of str to float
        Line label (e.g. ``"Fe_Ka"``) to energy in keV.
    color : str
        Marker colour.

    Returns
    -------
    list of matplotlib artists
        The markers and their labels (to remove them later).
    """
    artists = []
    transform = axes.get_xaxis_transform()
    for label, energy in lines.items():
        artists.append(axes.axvline(energy, color=color, lw=0.8, ls="--", alpha=0.8))
        text = axes.text(
            energy, 0.98, label, transform=transform, rotation=90, va="top", ha="right",
            fontsize=7, color=color,
        )  # fmt: skip
        artists.append(text)
    return artists


class SpectrumPlot(QWidget):
    """Named spectra against energy, with X-ray line markers and a log/linear switch.

    Parameters
    ----------
    parent : QWidget, optional
        The Qt parent.
    ylabel : str
        Label of the intensity axis.
    """

    def __init__(self, parent: QWidget | None = None, ylabel: str = "counts") -> None:
        super().__init__(parent)
        self.canvas = PlotCanvas(self)
        self.log_scale = QCheckBox("log scale", self)
        self.log_scale.toggled.connect(self._redraw)
        self._ylabel = ylabel
        self._energy = np.zeros(0)
        self._spectra: dict[str, np.ndarray] = {}
        self._colors: dict[str, str] = {}
        self._markers: dict[str, float] = {}
        self._range: tuple[float, float] | None = None
        options = QHBoxLayout()
        options.addWidget(self.log_scale)
        options.addStretch()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.canvas)
        layout.addLayout(options)

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
        """
        self._energy = np.asarray(energy, dtype=np.float64)
        self._spectra = {
            name: np.asarray(values, dtype=np.float64) for name, values in spectra.items()
        }
        self._colors = _color_map(list(self._spectra), colors)
        self._redraw()

    def set_markers(self, lines: Mapping[str, float]) -> None:
        """Show vertical markers at X-ray line energies (label to keV)."""
        self._markers = dict(lines)
        self._redraw()

    def set_energy_range(self, low: float | None, high: float | None) -> None:
        """Show energies in ``[low, high]`` keV (None for both: from 0 to the last channel)."""
        self._range = None if low is None or high is None else (float(low), float(high))
        self._redraw()

    def set_log_scale(self, log: bool) -> None:
        """Switch the intensity axis between logarithmic and linear."""
        self.log_scale.setChecked(log)

    def _redraw(self, *_: Any) -> None:
        axes = self.canvas.axes
        axes.clear()
        style_axes(axes)
        for name, values in self._spectra.items():
            axes.plot(self._energy, values, color=self._colors[name], lw=0.9, label=name)
        if self.log_scale.isChecked():
            axes.set_yscale("symlog", linthresh=1.0)
        if self._range is not None:
            axes.set_xlim(*self._range)
        elif self._energy.size:
            axes.set_xlim(max(self._energy[0], 0.0), self._energy[-1])
        draw_line_markers(axes, self._markers)
        axes.set_xlabel("energy (keV)")
        axes.set_ylabel(self._ylabel)
        if self._spectra:
            legend = axes.legend(fontsize=7, facecolor=BACKGROUND, edgecolor=FOREGROUND)
            for text in legend.get_texts():
                text.set_color(FOREGROUND)
        self.canvas.redraw()


def _color_map(
    names: list[str], colors: Mapping[str, str] | Sequence[str] | None
) -> dict[str, str]:
    if isinstance(colors, Mapping):
        return {
            name: colors.get(name, DEFAULT_COLORS[i % len(DEFAULT_COLORS)])
            for i, name in enumerate(names)
        }
    palette = list(colors) if colors else list(DEFAULT_COLORS)
    return {name: palette[i % len(palette)] for i, name in enumerate(names)}
