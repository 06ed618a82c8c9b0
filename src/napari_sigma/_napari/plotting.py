"""Small matplotlib-in-Qt helpers shared by the plugin's widgets.

:class:`PlotCanvas` is a matplotlib figure inside a Qt widget, coloured to sit in napari's dark
theme; :class:`SpectrumPlot` draws named spectra against energy with X-ray line markers and a
log/linear switch. Nothing here knows about napari layers or EDS science.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import Any

import numpy as np
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg, NavigationToolbar2QT
from matplotlib.figure import Figure
from qtpy.QtCore import QTimer, Signal
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


_RENDERER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="napari-sigma-plot")
"""One thread renders every plot of the plugin, one figure at a time (matplotlib is not re-entrant)."""

# the drawing child's priority below napari's (Linux nice): 0, as the plot thread's; at 10 it
# was starved at load 20 (a first drawing took > 10 s), the GIL is what it takes off napari
CHILD_NICE = 0
CHILD_DEATHS = 2  # after this many deaths of the drawing child, plots are drawn in the thread
_child: dict[str, Any] = {"process": None, "deaths": 0, "error": None}


def _drawing_child() -> Any:
    """The child process that draws the plots drawn in a child (plot thread only): started at
    the first call, again after it died (up to :data:`CHILD_DEATHS` times); None when none runs."""
    if _child["process"] is None and _child["deaths"] < CHILD_DEATHS:
        from napari_sigma.io.child import ChildProcess

        try:
            _child["process"] = ChildProcess(("render_figure",), nice=CHILD_NICE)
        except OSError:  # no Python process can be started here: drawn in the thread
            _child["deaths"] = CHILD_DEATHS
        else:
            import atexit

            atexit.register(_close_drawing_child)
    return _child["process"]


def _close_drawing_child() -> None:
    """End the drawing child (at exit: its pipes closed, it reaped)."""
    child, _child["process"] = _child["process"], None
    if child is not None:
        child.close()


def _draw_in_child(figure: Any, renderer: Any) -> bool:
    """Draw ``figure`` into ``renderer`` (an empty RendererAgg) in the drawing child process:
    its pixels copied in (an image draw, ~1 ms). False when it could not be drawn there (the
    caller draws it); a child that died is replaced at the next drawing."""
    from napari_sigma.io.child import ChildDied

    child = _drawing_child()
    if child is None:
        return False
    width, height = int(renderer.width), int(renderer.height)
    try:
        pixels = child.call("render_figure", figure, width, height, float(figure.dpi))
    except ChildDied as error:
        _child.update(process=None, deaths=_child["deaths"] + 1, error=str(error))
        _drawing_child()  # its successor starts (imports) now, while this one is drawn here
        return False
    except Exception as error:  # did not pickle or draw there: drawn in this process
        _child["error"] = f"{type(error).__name__}: {error}"  # the last one, for a look
        return False
    image = np.frombuffer(pixels, np.uint8).reshape(height, width, 4)
    gc = renderer.new_gc()
    try:
        renderer.draw_image(gc, 0, 0, np.ascontiguousarray(image[::-1]))
    finally:
        gc.restore()
    return True


class PlotCanvas(FigureCanvasQTAgg):
    """A matplotlib figure as a Qt widget, with one dark-themed axes (``self.axes``).

    The figure is rendered in a background thread (:meth:`render`): matplotlib's Agg rendering of
    a spectrum plot with its ticks, labels and legend takes 50-300 ms, which napari's main thread
    must not spend. The widget shows the last finished rendering; a change made while a rendering
    runs is rendered after it (renderings coalesce, they never run concurrently).

    Parameters
    ----------
    parent : QWidget, optional
        The Qt parent.
    height : float
        Figure height in inches (the width follows the dock).
    margins : tuple of int
        Space around the axes in pixels ``(left, right, bottom, top)``, kept when the dock is
        resized (a fixed layout: matplotlib's constrained layout took half of every redraw).
    in_child : bool
        Draw the figure in a child process (:func:`~napari_sigma.io.child.render_figure`, at a
        lower priority): the plot thread then holds napari's GIL only for the builds and the
        figure's pickling (~30 ms instead of the 100-160 ms of a spectrum plot's Agg drawing,
        which froze napari's main thread at load). The figure here stays what the toolbar,
        the zoom and the tests read; the shown pixels are the same.
    """

    _rendered = Signal(object)

    def __init__(
        self,
        parent: QWidget | None = None,
        height: float = 2.6,
        margins: tuple[int, int, int, int] = (58, 12, 40, 10),
        in_child: bool = False,
    ) -> None:
        figure = Figure(figsize=(4.0, height), facecolor=BACKGROUND)
        super().__init__(figure)
        self.setParent(parent)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumHeight(int(height * 60))
        self.margins = margins
        self.axes = figure.add_subplot(111)
        style_axes(self.axes)
        self._fit_margins()
        self._builds: list[Callable[[], Any]] = []
        self._queued = False  # a rendering waits for the running one
        self._running = False
        self.render_count = 0  # finished renderings (tests wait on it)
        self._hidden_draw = False  # a draw was asked while hidden (done when shown)
        self._rendered.connect(self._on_rendered)
        self.in_child = in_child
        if in_child:  # the child starts (and imports matplotlib) now, in the plot thread
            _RENDERER.submit(_drawing_child)

    def resizeEvent(self, event: Any) -> None:
        """Keep the margins in pixels."""
        super().resizeEvent(event)
        self._fit_margins()

    def set_margins(self, margins: tuple[int, int, int, int]) -> None:
        """Change the space around the axes (pixels ``(left, right, bottom, top)``)."""
        self.margins = tuple(int(m) for m in margins)
        self._fit_margins()

    def _fit_margins(self) -> None:
        width, height = max(self.width(), 1), max(self.height(), 1)
        left, right, bottom, top = self.margins
        if width > left + right + 20 and height > bottom + top + 20:
            self.figure.subplots_adjust(
                left=left / width,
                right=1 - right / width,
                bottom=bottom / height,
                top=1 - top / height,
            )

    @property
    def busy(self) -> bool:
        """Whether a rendering runs or waits (the shown image is not the figure's state yet)."""
        return self._running or self._queued or bool(self._builds)

    def redraw(self) -> None:
        """Schedule a repaint of the figure."""
        self.draw_idle()

    def draw(self) -> None:
        """matplotlib's draw (idle draws, toolbar pan/zoom): render in the background thread;
        while the canvas is hidden (a tab in the background), when it is shown."""
        from napari_sigma._napari.state import shown

        if not shown(self):  # Qt resizes hidden tabs' widgets (a layer added to the viewer
            self._hidden_draw = True  # rendered 2-3 hidden plots in its turn)
            return
        self.render()

    def showEvent(self, event: Any) -> None:
        """Render what was asked while hidden."""
        super().showEvent(event)
        if self._hidden_draw:
            self._hidden_draw = False
            self.draw_idle()

    def render(self, build: Callable[[], Any] | None = None) -> None:
        """Render the figure in the background thread, after ``build()`` (run there) changed it.

        ``build`` makes the figure's artists (axes cleared, lines, legend ...) in the rendering
        thread, so that the figure is never changed while it is being rendered. Each build makes
        the whole figure: one queued while a rendering runs replaces those still waiting (an undo
        queued three spectrum builds, ~25 ms of GIL each, for one rendering).
        """
        from matplotlib.backends.qt_compat import _isdeleted

        if _isdeleted(self):
            return
        if build is not None:
            self._builds = [build]
        if self._running:
            self._queued = True
            return
        self._start()

    def _start(self) -> None:
        builds, self._builds = self._builds, []
        self._queued, self._running = False, True
        # the renderer's key as FigureCanvasAgg.get_renderer makes it (else paintEvent replaces
        # the finished rendering by a blank one of "another" size)
        key = (*self.get_width_height(physical=True), self.figure.dpi)
        _RENDERER.submit(self._render_in_thread, builds, key)

    def _render_in_thread(self, builds: list[Callable[[], Any]], key: tuple) -> None:
        from matplotlib.backends.backend_agg import RendererAgg

        outcome: Any
        try:
            for build in builds:
                build()
            renderer = RendererAgg(*key)
            if not (self.in_child and _draw_in_child(self.figure, renderer)):
                self.figure.draw(renderer)
            outcome = (key, renderer)
        except Exception as error:  # reported in the main thread
            outcome = error
        try:
            self._rendered.emit(outcome)
        except RuntimeError:  # Qt deleted the widget meanwhile: nothing to show
            pass

    def _on_rendered(self, outcome: Any) -> None:
        """Main thread: show a finished rendering (or report its error), start the next one."""
        from matplotlib.backends.qt_compat import _isdeleted

        self._running = False
        if _isdeleted(self):
            return
        if isinstance(outcome, BaseException):
            try:
                raise outcome
            except Exception:  # matplotlib printed and swallowed these; napari shows them
                sys.excepthook(*sys.exc_info())
        else:
            self._lastKey, self.renderer = outcome  # what FigureCanvasAgg.get_renderer keeps
            self.render_count += 1
            self.update()
        if self._queued or self._builds:
            self._start()

    def wait_rendered(self, timeout: float = 10.0) -> bool:
        """Process Qt events until no rendering runs or waits (for tests and scripts)."""
        import time

        from qtpy.QtWidgets import QApplication

        end = time.perf_counter() + timeout
        while self.busy and time.perf_counter() < end:
            QApplication.processEvents()
            time.sleep(0.005)
        return not self.busy


LABEL_LEVELS = (0.98, 0.80, 0.62)  # heights (axes fraction) of staggered line labels
LABEL_GAP_PX = 11.0  # a rotated 7-pt label is about 10 px wide
REDRAW_DELAY_MS = 250  # a redraw waits for 250 ms without changes (the end of a brush stroke)
# a new plot draws itself once this long after it was made, shown or not (PlotCanvas.warm_up)
WARM_UP_DELAY_MS = 1500


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
    counts with all its points. None when no curve is given counts or nothing is shown."""
    if not counts:
        return None
    energy = np.asarray(energy, dtype=np.float64)
    shown = np.ones(energy.shape, bool)
    if xlim is not None:
        shown = (energy >= min(xlim)) & (energy <= max(xlim))
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
    (`signal_top`, with matplotlib's margin); a curve's noisier points run off the top."""
    top = signal_top(energy, spectra, counts, xlim)
    if top is None:
        return
    low, high = axes.get_ylim()  # autoscaled to every point
    margin = axes.margins()[1]
    if low < top and top + margin * (top - low) < high:
        axes.set_ylim(low, top + margin * (top - low))


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
