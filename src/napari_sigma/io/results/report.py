"""A one-page PNG report of an analysis: the phase map with a legend and the phase mean spectra.

Drawn with matplotlib's object API (``Figure`` + Agg canvas, no pyplot), so it works headless and
leaves no global state behind. The panels are placed once by arithmetic (:func:`_lay_out`) on the
widths of the few strings that vary (the legend, the modal names, the counts' tick labels), not by
matplotlib's constrained layout, which lays out every axis' tick labels twice (over half of the
drawing's CPU, on the critical path of every ``napari-sigma run``). The log axes are labelled with
plain numbers (``0.01``, ``20``), not mathtext.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from napari_sigma.phases.colors import label_rgba, phase_colors
from napari_sigma.phases.statistics import PhaseTable, phase_table


def line_energies(line_names: Sequence[str]) -> dict[str, float]:
    """Energies (keV) of the lines that :func:`napari_sigma.xray.lines.parse_line` knows; others skipped."""
    try:
        from napari_sigma.xray.lines import parse_line
    except ImportError:
        return {}
    energies = {}
    for name in line_names:
        try:
            energies[name] = float(parse_line(name).energy)
        except (ValueError, KeyError):
            continue
    return energies


def nice_scale_bar(width_um: float) -> float:
    """A round length (1, 2 or 5 x 10^n µm) close to a fifth of ``width_um``."""
    target = width_um / 5.0
    exponent = math.floor(math.log10(target))
    for step in (5.0, 2.0, 1.0):
        if step * 10**exponent <= target:
            return step * 10**exponent
    return 10**exponent


def _format_length(length_um: float) -> str:
    if length_um < 1.0:
        return f"{length_um * 1000:g} nm"
    if length_um >= 1000.0:
        return f"{length_um / 1000:g} mm"
    return f"{length_um:g} µm"


# The fixed geometry (inches) around the measured strings.
_EDGE = 0.12  # the figure's edge to anything drawn
_SUPTITLE = 0.45  # the band of the figure's title
_TITLE = 0.4  # an axes' title above it
_XAXIS = 0.65  # an axes' x tick labels and x label below it (with the edge)
_YAXIS = 0.45  # an axes' y label and its ticks beside the tick labels (with the edge)
_TICK = 0.12  # a tick and its pad beside a tick label (no y label)
_LEGEND_GAP = 0.2  # the phase map's right side to its legend
_RIGHT = 0.3  # the room for the last x tick label spilling past an axes' right side
_FOOTNOTE_OFFSET = 40  # points below the modal axes' bottom where its footnote starts


def _plain_log_axis(axis) -> None:
    """Label a log ``axis`` with plain numbers: the ticks matplotlib labels, no mathtext."""
    from matplotlib.ticker import LogFormatter

    class PlainLogFormatter(LogFormatter):
        def __call__(self, x, pos=None):
            return f"{x:g}" if super().__call__(x, pos) else ""

    axis.set_major_formatter(PlainLogFormatter())
    axis.set_minor_formatter(PlainLogFormatter(labelOnlyBase=False))


def _text_width(renderer, text: str, size) -> float:
    """Width (inches) of one line of ``text`` at font ``size``."""
    from matplotlib.font_manager import FontProperties

    width, _, _ = renderer.get_text_width_height_descent(text, FontProperties(size=size), False)
    return width / renderer.dpi


def _tick_labels_width(renderer, axis, size) -> float:
    """Width (inches) of the widest major tick label of ``axis``."""
    locs = axis.get_majorticklocs()
    labels = axis.get_major_formatter().format_ticks(locs)
    return max((_text_width(renderer, label, size) for label in labels), default=0.0)


def _rect(figure, left: float, bottom: float, right: float, top: float) -> tuple:
    """An axes rectangle (figure fractions) from its sides in inches."""
    width, height = figure.get_size_inches()
    return (left / width, bottom / height, max(right - left, 0.5) / width,
            max(top - bottom, 0.5) / height)  # fmt: skip


def _lay_out(figure, renderer, axes, legend, rows: int) -> None:
    """Place the panels: a band per row under the title, the left column (map, modal) and the
    right one (spectra, grain sizes) 1 : 1.25; margins from the measured legend, names, footnote
    and tick labels, so nothing overlaps or leaves the figure."""
    from matplotlib import rcParams

    width, height = figure.get_size_inches()
    split = width / 2.25
    band = (height - _SUPTITLE) / rows
    (map_axes, spectra_axes), *lower = axes
    right_axes = [spectra_axes] + [row[1] for row in lower]
    size = rcParams["ytick.labelsize"]
    counts_left = (
        split + _YAXIS + max(_tick_labels_width(renderer, ax.yaxis, size) for ax in right_axes)
    )
    top, bottom = height - _SUPTITLE - _TITLE, height - _SUPTITLE - band + _XAXIS
    legend_width = legend.get_window_extent(renderer).width / renderer.dpi
    map_axes.set_position(
        _rect(figure, _EDGE, bottom, split - _EDGE - _LEGEND_GAP - legend_width, top)
    )
    spectra_axes.set_position(_rect(figure, counts_left, bottom, width - _RIGHT, top))
    if not lower:
        return
    modal_axes, grain_axes = lower[0]
    footnote = 0.0
    for text in modal_axes.texts:
        footnote = max(footnote, text.get_window_extent(renderer).height / renderer.dpi)
    bottom = max(_XAXIS, _FOOTNOTE_OFFSET / 72 + footnote + _EDGE) if footnote else _XAXIS
    top = band - _TITLE
    names = _tick_labels_width(renderer, modal_axes.yaxis, 8)
    modal_axes.set_position(_rect(figure, _EDGE + names + _TICK, bottom, split - _RIGHT, top))
    grain_axes.set_position(_rect(figure, counts_left, bottom, width - _RIGHT, top))


def _draw_phase_map(ax, labels: np.ndarray, table: PhaseTable, pixel_size_um: float | None):
    from matplotlib.patches import Patch, Rectangle

    n = int(max(labels.max(initial=0), table.phase_ids.max(initial=0)))
    rgba = label_rgba(labels, n)
    rgba[..., 3] = 1.0  # unassigned shows black
    ax.imshow(rgba, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title("Phase map")
    colors = phase_colors(n)
    handles = [
        Patch(color=colors[pid - 1], label=f"{name} ({100 * frac:.1f} %)")
        for pid, name, frac in zip(table.phase_ids, table.names, table.area_fraction, strict=True)
    ]
    legend = ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    if pixel_size_um:
        height, width = labels.shape
        length = nice_scale_bar(width * pixel_size_um)
        bar = length / pixel_size_um
        x0, y0 = 0.05 * width, 0.94 * height
        ax.add_patch(Rectangle((x0, y0), bar, max(height * 0.015, 1.0), color="white"))
        ax.text(x0 + bar / 2, y0 - 0.01 * height, _format_length(length), color="white",
                ha="center", va="bottom", fontsize=9)  # fmt: skip
    return legend


def _draw_spectra(ax, energies, table: PhaseTable, line_names, log_scale: bool, max_kev: float):
    colors = phase_colors(int(table.phase_ids.max(initial=0)))
    for pid, name, spectrum in zip(table.phase_ids, table.names, table.mean_spectra, strict=True):
        ax.plot(energies, spectrum, color=colors[pid - 1], lw=0.8, label=name)
    if log_scale:
        positive = table.mean_spectra[table.mean_spectra > 0]
        ax.set_yscale("log")
        _plain_log_axis(ax.yaxis)
        if positive.size:
            ax.set_ylim(bottom=max(positive.min(), positive.max() * 1e-5))
    ax.set_xlim(0.0, max_kev)
    for name, energy in line_energies(line_names).items():
        if energy <= max_kev:
            ax.axvline(energy, color="0.5", lw=0.6, ls="--")
            ax.text(energy, 1.0, name.replace("_", " "), rotation=90, fontsize=7,
                    va="top", ha="right", transform=ax.get_xaxis_transform())  # fmt: skip
    ax.set_xlabel("Energy (keV)")
    ax.set_ylabel("Mean counts per pixel")
    ax.set_title("Phase mean spectra")


def unresolved_lines(modal: Sequence[dict], width: int = 110) -> list[str]:
    """The report's footnote: one line per marked mineral, ``"≈ hematite: not resolved from
    maghemite 0.64, magnetite 0.51"`` (wrapped at ``width`` characters)."""
    import textwrap

    from napari_sigma.minerals.phases import UNRESOLVED_MARK

    lines = []
    for row in modal:
        if row.get("not_resolved_from"):
            text = f"{UNRESOLVED_MARK} {row['mineral']}: not resolved from "
            text += row["not_resolved_from"].replace("; ", ", ")
            lines += textwrap.wrap(text, width, subsequent_indent="    ")
    return lines


def _draw_modal(ax, mineralogy) -> None:
    from napari_sigma.minerals.phases import UNRESOLVED_MARK

    rows = [r for r in mineralogy.modal if r["mineral"] != "unassigned"]
    rows.sort(key=lambda r: r["area_percent"])
    names = [
        f"{r['mineral']} {UNRESOLVED_MARK}" if r.get("not_resolved_from") else r["mineral"]
        for r in rows
    ]
    y = np.arange(len(rows))
    ax.barh(y - 0.2, [r["area_percent"] for r in rows], 0.4, label="area %")
    ax.barh(y + 0.2, [r["wt_percent"] for r in rows], 0.4, label="wt % (densities)")
    ax.set_yticks(y, names, fontsize=8)
    ax.set_xlabel("%")
    ax.set_title("Modal mineralogy")
    ax.legend(fontsize=8, loc="lower right")
    footnote = unresolved_lines(rows, 70)
    if footnote:  # what each marked name is not told apart from (composition, not structure)
        footnote.append("(compositions within the accuracy of a standardless analysis;")
        footnote.append(" EDS measures composition, not structure)")
        ax.annotate("\n".join(footnote), xy=(0.0, 0.0), xycoords="axes fraction",
                    xytext=(0, -40), textcoords="offset points", va="top", fontsize=7,
                    annotation_clip=False)  # fmt: skip


def _draw_grain_sizes(ax, mineralogy, pixel_size_um) -> None:
    by_mineral: dict[str, list[float]] = {}
    for grain in mineralogy.grains:
        by_mineral.setdefault(grain["mineral"], []).append(grain["ecd_um"])
    for name, sizes in sorted(by_mineral.items(), key=lambda item: -len(item[1]))[:10]:
        sizes = np.sort(sizes)
        ax.step(sizes, np.arange(1, sizes.size + 1) / sizes.size, where="post", label=name)
    ax.set_xscale("log")
    _plain_log_axis(ax.xaxis)
    unit = "µm" if pixel_size_um else "px"
    ax.set_xlabel(f"Equivalent circle diameter ({unit})")
    ax.set_ylabel("Cumulative fraction of grains")
    ax.set_title("Grain sizes")
    ax.legend(fontsize=7)


def render_report(
    result: Any,
    path: str | Path,
    labels: np.ndarray | None = None,
    table: PhaseTable | None = None,
    log_scale: bool = True,
    dpi: int = 120,
    mineralogy: Any = None,
) -> Path:
    """Render the report PNG of an analysis.

    Parameters
    ----------
    result : AnalysisResult
        Needs ``image``, ``labels``, ``intensities``, ``lines`` and ``phase_names``.
    path : str or Path
        Output PNG (overwritten).
    labels : ndarray (y, x) int or None
        The label image to show (default ``result.labels``).
    table : PhaseTable or None
        Statistics of ``labels`` when already computed (saves a pass over the cube).
    log_scale : bool
        Logarithmic counts axis for the spectra.
    dpi : int
        Resolution of the PNG.
    mineralogy : Mineralogy, optional
        The automated-mineralogy tables (:mod:`napari_sigma.minerals.mineralogy`): adds a
        modal bar chart and a grain-size plot below.

    Returns
    -------
    Path
    """
    figure = report_figure(result, labels, table, log_scale, dpi, mineralogy)
    figure.savefig(Path(path), dpi=dpi)
    return Path(path)


def report_figure(
    result: Any,
    labels: np.ndarray | None = None,
    table: PhaseTable | None = None,
    log_scale: bool = True,
    dpi: int = 120,
    mineralogy: Any = None,
) -> Any:
    """The report's :class:`matplotlib.figure.Figure` (on an Agg canvas), panels drawn and placed;
    the arguments are :func:`render_report`'s."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    image = result.image
    labels = np.asarray(result.labels if labels is None else labels)
    if table is None:
        table = phase_table(labels, image.counts, result.intensities, result.lines,
                            image.pixel_size_um, names=list(result.phase_names))  # fmt: skip
    rows = 2 if mineralogy is not None and mineralogy.modal else 1
    figure = Figure(figsize=(14, 5.5 * rows), dpi=dpi)
    renderer = FigureCanvasAgg(figure).get_renderer()
    axes = [[figure.add_axes((0.5 * col, 0.5 * row, 0.4, 0.4)) for col in (0, 1)]
            for row in range(rows)]  # fmt: skip
    map_axes, spectra_axes = axes[0]
    if rows == 2:
        _draw_modal(axes[1][0], mineralogy)
        _draw_grain_sizes(axes[1][1], mineralogy, image.pixel_size_um)
    legend = _draw_phase_map(map_axes, labels, table, image.pixel_size_um)
    max_kev = image.energy.max_energy
    if image.beam_energy:
        max_kev = min(max_kev, float(image.beam_energy))
    _draw_spectra(spectra_axes, image.energy.energies, table, result.lines, log_scale, max_kev)
    title = image.title or (Path(image.source).name if image.source else "")
    height = figure.get_size_inches()[1]
    figure.suptitle(f"napari-sigma: {title}" if title else "napari-sigma", y=1 - _EDGE / height)
    _lay_out(figure, renderer, axes, legend, rows)
    return figure


def drawn_of(result: Any) -> Any:
    """What :func:`render_report` reads of a result when given the labels and the table (for a
    child process: :mod:`napari_sigma.io.results.child`)."""
    from types import SimpleNamespace

    image = result.image
    return SimpleNamespace(
        image=SimpleNamespace(
            title=image.title, source=image.source, pixel_size_um=image.pixel_size_um,
            energy=image.energy, beam_energy=image.beam_energy,
        ),
        lines=list(result.lines),
    )  # fmt: skip


def drawn_mineralogy(mineralogy: Any) -> Any:
    """What the report draws of the mineralogy tables: the modal rows and the grain sizes."""
    from types import SimpleNamespace

    if mineralogy is None:
        return None
    grains = [{"mineral": g["mineral"], "ecd_um": g["ecd_um"]} for g in mineralogy.grains]
    return SimpleNamespace(modal=list(mineralogy.modal), grains=grains)
