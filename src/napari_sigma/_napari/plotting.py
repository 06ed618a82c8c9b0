"""Small matplotlib-in-Qt helpers shared by the plugin's widgets.

:class:`PlotCanvas` is a matplotlib figure inside a Qt widget, coloured to sit in napari's dark
theme; :class:`SpectrumPlot` draws named spectra against energy with X-ray line markers and a
log/linear switch. Nothing here knows about napari layers or EDS science.

The parts live by what they do: :mod:`~napari_sigma._napari.axes_drawing` (what is drawn on an
axes, no Qt), :mod:`~napari_sigma._napari.plot_canvas` (the figure as a Qt widget, rendered off
the main thread), :mod:`~napari_sigma._napari.spectrum_plot` (the spectrum plot widget); every
name is importable from here as before.
"""

from __future__ import annotations

from napari_sigma._napari.axes_drawing import (
    BACKGROUND,
    DEFAULT_COLORS,
    FOREGROUND,
    KNOWN_COUNTS,
    KNOWN_SIGMAS,
    LABEL_GAP_PX,
    LABEL_LEVELS,
    LEGEND_FONT,
    LEGEND_GAP_EM,
    LEGEND_HANDLE_EM,
    LEGEND_MAX_HEIGHT,
    LEGEND_PAD_EM,
    LEGEND_ROW_EM,
    LEGEND_SPACING_EM,
    LEGEND_TEXTPAD_EM,
    MARKER_COLOR,
    _color_map,
    _cut_legend_labels,
    _fit_intensities_to_signal,
    _legend_columns,
    _legend_labels,
    _same_content,
    draw_line_markers,
    place_line_labels,
    signal_top,
    style_axes,
)
from napari_sigma._napari.plot_canvas import (
    _RENDERER,
    CHILD_DEATHS,
    CHILD_NICE,
    PlotCanvas,
    _child,
    _close_drawing_child,
    _draw_in_child,
    _drawing_child,
)
from napari_sigma._napari.spectrum_plot import (
    REDRAW_DELAY_MS,
    WARM_UP_DELAY_MS,
    SpectrumPlot,
    _Toolbar,
)

__all__ = [
    "BACKGROUND",
    "CHILD_DEATHS",
    "CHILD_NICE",
    "DEFAULT_COLORS",
    "FOREGROUND",
    "KNOWN_COUNTS",
    "KNOWN_SIGMAS",
    "LABEL_GAP_PX",
    "LABEL_LEVELS",
    "LEGEND_FONT",
    "LEGEND_GAP_EM",
    "LEGEND_HANDLE_EM",
    "LEGEND_MAX_HEIGHT",
    "LEGEND_PAD_EM",
    "LEGEND_ROW_EM",
    "LEGEND_SPACING_EM",
    "LEGEND_TEXTPAD_EM",
    "MARKER_COLOR",
    "REDRAW_DELAY_MS",
    "WARM_UP_DELAY_MS",
    "_RENDERER",
    "PlotCanvas",
    "SpectrumPlot",
    "_Toolbar",
    "_child",
    "_close_drawing_child",
    "_color_map",
    "_cut_legend_labels",
    "_draw_in_child",
    "_drawing_child",
    "_fit_intensities_to_signal",
    "_legend_columns",
    "_legend_labels",
    "_same_content",
    "draw_line_markers",
    "place_line_labels",
    "signal_top",
    "style_axes",
]  # fmt: skip
