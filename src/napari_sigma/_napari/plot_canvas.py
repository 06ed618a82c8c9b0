"""A matplotlib figure as a Qt widget in napari's dark theme, rendered off napari's main thread:
one plot thread builds and renders every figure of the plugin (:data:`_RENDERER`), the Agg
drawing itself in a child process at a lower priority (:func:`_draw_in_child`).

Moved verbatim from :mod:`napari_sigma._napari.plotting` (which still exports every name).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from qtpy.QtCore import Signal
from qtpy.QtWidgets import QSizePolicy, QWidget

from napari_sigma._napari.axes_drawing import BACKGROUND, style_axes

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
        from napari_sigma.io.results.child import ChildProcess

        try:
            _child["process"] = ChildProcess(("render_figure",), nice=CHILD_NICE)
        except OSError:  # no Python process can be started here: drawn in the thread
            _child["deaths"] = CHILD_DEATHS
        else:
            import atexit

            atexit.register(_close_drawing_child)
    return _child["process"]


def _close_drawing_child() -> None:
    """End the drawing child at exit: killed, not waited for (an idle child that had drawn
    once took 1.0 s to end at load 16, napari's exit waiting for it; the plot thread has
    ended before the exit handlers run, so no drawing is cut short)."""
    child, _child["process"] = _child["process"], None
    if child is not None:
        child.stop()


def _draw_in_child(figure: Any, renderer: Any) -> bool:
    """Draw ``figure`` into ``renderer`` (an empty RendererAgg) in the drawing child process:
    its pixels copied in (an image draw, ~1 ms). False when it could not be drawn there (the
    caller draws it); a child that died is replaced at the next drawing."""
    from napari_sigma.io.results.child import ChildDied

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
        Draw the figure in a child process (:func:`~napari_sigma.io.results.child.render_figure`, at a
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
