"""napari's window's repaints held back and released, so that work split over turns of Qt's
event loop is repainted once per turn (:func:`_painted_a_turn_later`), and a dock's construction
is not painted inside napari's docking turn (`main_widget`).

Moved verbatim from :mod:`napari_sigma._napari.results` (which still exports every name).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def _shown(viewer: Any) -> bool:
    """Whether napari's window of ``viewer`` is shown (the pieces hold its repaints back)."""
    window = _qt_window(viewer)
    try:
        return window is not None and window.isVisible()
    except RuntimeError:  # deleted
        return False


def _qt_window(viewer: Any) -> Any:
    """napari's Qt main window of ``viewer`` (None: none, or a napari without it)."""
    try:
        return viewer.window._qt_window
    except Exception:
        return None


class _Turn:
    """One turn of :func:`_painted_a_turn_later`: ``then(callback)`` runs ``callback()`` a turn
    after the repaint; ``repaint_now()`` lets the window repaint at once (right after this
    turn, before the next piece)."""

    def __init__(self, window: Any) -> None:
        self.window = window
        self.after: list[Any] = []
        self.released = False

    def then(self, callback: Any) -> None:
        self.after.append(callback)

    def repaint_now(self) -> None:
        self.released = True
        if self.window is not None:
            release_paints(self.window)

    def run_after(self) -> None:
        for callback in self.after:
            callback()


def _paint_hold(window: Any, create: bool = True) -> Any:
    """The paint holder (:func:`_make_paint_holder`) of napari's window (made and installed on
    first use)."""
    holder = getattr(window, "_napari_sigma_paint_hold", None)
    if holder is None and create:
        holder = _make_paint_holder(window)
        window._napari_sigma_paint_hold = holder
    return holder


def _make_paint_holder(window: Any) -> Any:
    from qtpy.QtCore import QCoreApplication, QEvent, QObject

    class PaintHolder(QObject):
        """Holds back the repaints of a window: while held, its update requests (Qt's
        repaint manager posts one to the window when a widget in it changes) are swallowed;
        the widgets' dirty regions stay with Qt, and the repaint at :meth:`release` paints
        those regions only. (``setUpdatesEnabled(False)`` drops them instead, and turning
        updates on again repaints the whole window: ~30 ms more of main thread, JEOL.)"""

        def __init__(self) -> None:
            super().__init__(window)
            self.held = False
            self.swallowed = False

        def eventFilter(self, watched: Any, event: Any) -> bool:
            if self.held and event.type() == QEvent.Type.UpdateRequest:
                self.swallowed = True
                return True
            return False

        def hold(self) -> None:
            self.held = True

        def release(self) -> None:
            self.held = False
            if self.swallowed:  # the repaint manager waits for its request: post it again
                self.swallowed = False
                QCoreApplication.postEvent(window, QEvent(QEvent.Type.UpdateRequest))

    holder = PaintHolder()
    window.installEventFilter(holder)
    return holder


def paints_held(window: Any) -> bool:
    """Whether :func:`_painted_a_turn_later` holds back the repaints of ``window`` now."""
    holder = _paint_hold(window, create=False)
    return holder is not None and holder.held


def release_paints(window: Any) -> None:
    """Let ``window`` repaint what changed while its repaints were held back."""
    from qtpy import sip

    holder = _paint_hold(window, create=False)
    if holder is not None and not sip.isdeleted(window):
        holder.release()


@contextmanager
def _painted_a_turn_later(window: Any) -> Iterator[_Turn]:
    """Hold back the repaint of what is done inside until a later turn of Qt's event loop: the
    window's update requests are held back inside (:func:`_paint_hold`), a 1 ms timer lets it
    repaint what changed.

    Yields a :class:`_Turn`; its ``then`` callbacks run a turn after that repaint (at once when
    nothing was held back: no window, a hidden one, or repaints held back already).
    """
    from qtpy import sip
    from qtpy.QtCore import QTimer

    turn = _Turn(window)
    held = window is not None and not sip.isdeleted(window) and window.isVisible()
    held = held and not paints_held(window)
    if not held:
        yield turn
        turn.run_after()
        return
    _paint_hold(window).hold()
    try:
        yield turn
    finally:

        def repaint() -> None:
            release_paints(window)  # posts the repaint: done before the next timers
            if turn.after:
                QTimer.singleShot(1, lambda: turn.run_after())  # (a bound method: weakly held)

        if turn.released:  # released already: it repaints after this turn
            if turn.after:
                QTimer.singleShot(1, lambda: turn.run_after())  # (a bound method: weakly held)
        else:
            QTimer.singleShot(1, repaint)
