"""What the plugin's plots draw on a matplotlib axes, without Qt: napari's dark theme, X-ray
line markers and their staggered labels, the legend's columns and cut names above the axes, the
intensity range the curves' counts show, and what a spectrum plot compares to skip a redraw.

Moved verbatim from :mod:`napari_sigma._napari.plotting` (which still exports every name); the
Qt widgets that use it are :mod:`~napari_sigma._napari.plot_canvas` and
:mod:`~napari_sigma._napari.spectrum_plot`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

import numpy as np

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


LABEL_LEVELS = (0.98, 0.80, 0.62)  # heights (axes fraction) of staggered line labels
LABEL_GAP_PX = 11.0  # a rotated 7-pt label is about 10 px wide


def draw_line_markers(axes: Any, lines: Mapping[str, float], color: str = MARKER_COLOR) -> list:
    """Draw a dashed vertical marker per X-ray line and its (staggered) label.

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
    list of matplotlib Text
        The labels; :func:`place_line_labels` staggers them and hides those that would overlap.
    """
    transform = axes.get_xaxis_transform()
    labels = []
    for label, energy in sorted(lines.items(), key=lambda item: item[1]):
        axes.axvline(energy, color=color, lw=0.8, ls="--", alpha=0.6)
        text = axes.text(
            energy, LABEL_LEVELS[0], label, transform=transform, rotation=90, va="top",
            ha="right", fontsize=7, color=color, clip_on=True,
        )  # fmt: skip
        labels.append(text)
    place_line_labels(axes, labels)
    return labels


def place_line_labels(axes: Any, labels: list) -> int:
    """Stagger line labels over a few heights; hide those that would still overlap.

    Labels are taken by energy; each goes to the first height whose last label lies at least
    ``LABEL_GAP_PX`` to its left on screen, or is hidden. Zooming in spreads the lines apart, so
    more labels show. Returns the number of labels shown.
    """
    last_x = [-np.inf] * len(LABEL_LEVELS)
    low, high = sorted(axes.get_xlim())
    shown = 0
    for text in labels:
        energy = text.get_position()[0]
        x = axes.transData.transform((energy, 0.0))[0]
        level = next((i for i, last in enumerate(last_x) if x - last >= LABEL_GAP_PX), None)
        visible = level is not None and low <= energy <= high
        text.set_visible(visible)
        if visible:
            last_x[level] = x
            text.set_y(LABEL_LEVELS[level])
            shown += 1
    return shown


LEGEND_FONT = 7  # points
LEGEND_HANDLE_EM = 1.2  # the line sample, in font sizes
LEGEND_TEXTPAD_EM = 0.4
LEGEND_SPACING_EM = 1.0  # between columns
LEGEND_ROW_EM = 1.45  # a row: the text's height and the space below it
LEGEND_GAP_EM = 0.3  # between the legend and the axes
LEGEND_PAD_EM = 0.6  # what the rows' sum leaves out: the gap and the last row's descent
LEGEND_MAX_HEIGHT = 0.3  # of the figure: more rows than that take more columns (names cut)


def _legend_labels(names: list[str], available: float, dpi: float) -> tuple[list[str], float, bool]:
    """The legend's labels (names cut with an ellipsis to fit ``available`` px), the width in px
    of one entry (the widest label with its line sample) and whether a name was cut. Kept for
    the same names and width (every rendering of an edit asked again: cutting 12 names one
    character at a time was ~70 ms of the plot thread's GIL)."""
    labels, widest, cut = _cut_legend_labels(tuple(names), float(available), float(dpi))
    return list(labels), widest, cut


@lru_cache(maxsize=64)
def _cut_legend_labels(
    names: tuple[str, ...], available: float, dpi: float
) -> tuple[tuple[str, ...], float, bool]:
    from matplotlib.backends.backend_agg import RendererAgg
    from matplotlib.font_manager import FontProperties

    renderer = RendererAgg(1, 1, dpi)
    font = FontProperties(size=LEGEND_FONT)
    sample = (LEGEND_HANDLE_EM + LEGEND_TEXTPAD_EM) * LEGEND_FONT * dpi / 72.0

    def width(text: str) -> float:
        return renderer.get_text_width_height_descent(text, font, ismath=False)[0]

    def fits(label: str) -> bool:
        return sample + width(label) <= available

    labels, widest, cut = [], 0.0, False
    for name in names:
        label = name
        if len(name) > 1 and not fits(name):  # the longest cut that fits (by halving)
            low, high = 0, len(name) - 1  # name[:keep] + "…" with keep in [low, high]
            while low < high:
                keep = (low + high + 1) // 2
                low, high = (keep, high) if fits(name[:keep] + "…") else (low, keep - 1)
            label, cut = name[:low] + "…", True
        labels.append(label)
        widest = max(widest, width(label))
    return tuple(labels), sample + widest, cut


def _legend_columns(entry: float, available: float, n: int, dpi: float) -> int:
    """How many legend columns of ``entry`` px, ``LEGEND_SPACING_EM`` apart, fit ``available``
    px: at least one, at most ``n``."""
    spacing = LEGEND_SPACING_EM * LEGEND_FONT * dpi / 72.0
    return max(1, min(n, int((available + spacing) // (entry + spacing))))


# a curve's point sets the intensity range when the counts behind it know its height to within
# +-50 % (2 Poisson sigma: 16 counts); a point of fewer counts only as far as it is known (its
# lower 2-sigma bound). A mean spectrum over 4 pixels of a sparse map (a stroke on the
# 16x16_12bit_packed_8bit.bcf) is spikes of 1-6 counts; they set the range over the map's
# 252-pixel phase's peaks.
KNOWN_COUNTS = 16.0
KNOWN_SIGMAS = 2.0
# the zero-energy peak (the detector's noise peak; Velox's strobe) and its tail never set the
# range: Test_SI_16x16_215_kx.emd's strobe (9473 counts at 0.01 keV, its tail 22 at 0.19 keV)
# set its plots' top at 37 counts per pixel over X-ray peaks of 0.08 (C Ka): a flat line at
# the bottom. 0.2 keV lies below C Ka (0.277), the lowest line mapped as a rule; B Ka (0.183)
# and Be Ka (0.108) are still drawn, they only do not set the range.
ZERO_PEAK_END_KEV = 0.2


def signal_top(
    energy: np.ndarray,
    spectra: Mapping[str, np.ndarray],
    counts: Mapping[str, float],
    xlim: tuple[float, float] | None = None,
) -> float | None:
    """The highest intensity that the curves' counts show, within ``xlim`` (keV).

    A curve with counts (``counts[name]``: the counts behind one unit of it) counts with its
    points of at least :data:`KNOWN_COUNTS` counts at their values and its other points at
    their lower :data:`KNOWN_SIGMAS`-sigma bound (Poisson, ``C - 2 sqrt(C)``); a curve without
    counts with all its points. Points below :data:`ZERO_PEAK_END_KEV` (the zero-energy peak)
    never count. None when no curve is given counts or nothing is shown."""
    if not counts:
        return None
    energy = np.asarray(energy, dtype=np.float64)
    shown = _within(energy, xlim) & (energy >= ZERO_PEAK_END_KEV)
    tops = []
    for name, values in spectra.items():
        values = np.asarray(values, dtype=np.float64)[shown]
        values = values[np.isfinite(values)]
        if values.size == 0:
            continue
        per_unit = counts.get(name)
        if per_unit is None or per_unit <= 0:
            tops.append(float(values.max()))
            continue
        behind = np.maximum(values, 0.0) * per_unit
        known = np.where(
            behind >= KNOWN_COUNTS,
            behind,
            np.maximum(behind - KNOWN_SIGMAS * np.sqrt(behind), 0.0),
        )
        tops.append(float(known.max()) / per_unit)
    return max(tops) if tops else None


def _fit_intensities_to_signal(
    axes: Any,
    energy: np.ndarray,
    spectra: Mapping[str, np.ndarray],
    counts: Mapping[str, float],
    xlim: tuple[float, float] | None,
) -> None:
    """Lower the autoscaled intensity range's top to what the curves' counts show
    (`signal_top`, with matplotlib's margin); a curve's noisier points run off the top.

    The bottom's margin follows the new range (the autoscaled one was a margin of the whole
    range: the Velox strobe's 37 counts per pixel left 1.85 below zero under peaks of 0.08)."""
    top = signal_top(energy, spectra, counts, xlim)
    if top is None or top <= 0:  # no point known above zero (a nearly empty map: 72 counts
        return  # in 320 pixels): autoscaled; lowered to 0 every count ran off the top
    low, high = axes.get_ylim()  # autoscaled to every point
    margin = axes.margins()[1]
    bottom = _lowest_shown(energy, spectra, xlim)
    if bottom is not None and low <= bottom < top:
        span = top - bottom
        if top + margin * span < high:
            axes.set_ylim(bottom - margin * span, top + margin * span)
    elif low < top and top + margin * (top - low) < high:
        axes.set_ylim(low, top + margin * (top - low))


def _lowest_shown(
    energy: np.ndarray, spectra: Mapping[str, np.ndarray], xlim: tuple[float, float] | None
) -> float | None:
    """The lowest point of the curves within ``xlim`` (keV), None when none is shown."""
    shown = _within(np.asarray(energy, dtype=np.float64), xlim)
    lows = []
    for values in spectra.values():
        values = np.asarray(values, dtype=np.float64)[shown]
        values = values[np.isfinite(values)]
        if values.size:
            lows.append(float(values.min()))
    return min(lows) if lows else None


def _within(energy: np.ndarray, xlim: tuple[float, float] | None) -> np.ndarray:
    """Which points of ``energy`` (keV) lie within ``xlim`` (all of them for None)."""
    if xlim is None:
        return np.ones(energy.shape, bool)
    return (energy >= min(xlim)) & (energy <= max(xlim))


def _same_content(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    """Whether two :meth:`SpectrumPlot._content` draw the same plot (arrays by value)."""
    (energy_a, spectra_a, *rest_a), (energy_b, spectra_b, *rest_b) = a, b
    return (
        rest_a == rest_b
        and np.array_equal(energy_a, energy_b)
        and spectra_a.keys() == spectra_b.keys()
        and all(np.array_equal(spectra_a[k], spectra_b[k]) for k in spectra_a)
    )


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
