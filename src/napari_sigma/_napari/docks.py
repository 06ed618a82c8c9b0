"""The plugin's separate docks as napari builds them (Plugins menu, ``add_plugin_dock_widget``).

Each factory imports its widget's module only once the preload's imports (:mod:`preload`),
when under way, are done: the tabbed dock starts them in a thread as it is built, and a script
that docks it and a separate widget in one turn of the event loop had napari's main thread
import matplotlib at the same time as that thread: each held a module the other waited for,
and Python handed one of them a partly made module ("cannot import name 'Transform' from
partially initialized module 'matplotlib.transforms'"; the widget did not open). A user's
clicks leave the preload the time it needs; then nothing waits.

napari stacks every dock it adds on the right under the ones there, and the window's minimum
height is then the sum of the docks' minimum heights: two of the plugin's docks (the tabbed one
and the Spectrum dock) made napari's window 1201 px tall, three 1687-1812 px, all five 2558 px:
on a 1080-line screen the lower docks and napari's own status bar were off the screen.
:func:`keep_on_screen` puts a dock of the plugin that would make the window taller than the
screen as a tab beside the plugin's previous dock in that area (each dock keeps the whole
height; a user drags a tab out to stack it again where it fits).
"""

from __future__ import annotations

import importlib
import itertools
import weakref
from typing import Any

from qtpy.QtCore import QEvent, QObject, QTimer


def _after_the_preload() -> None:
    from napari_sigma._napari import preload

    if preload.started():
        preload.wait()


class _Dock:
    """Calling the class builds the widget ``WIDGET`` of ``MODULE`` (napari passes the viewer
    to a class whose ``__init__`` takes ``napari_viewer``; a plain function it would not)."""

    MODULE = ""
    WIDGET = ""

    def __new__(cls, napari_viewer: Any) -> Any:
        _after_the_preload()
        widget_class = getattr(importlib.import_module(cls.MODULE), cls.WIDGET)
        widget = widget_class(napari_viewer)  # not a _Dock: Python calls no __init__ of ours
        keep_on_screen(widget)
        return widget

    def __init__(self, napari_viewer: Any) -> None:  # pragma: no cover - the signature napari reads
        raise AssertionError("never reached: __new__ returns the widget")


class SpectrumDock(_Dock):
    """The Spectrum and elements dock."""

    MODULE, WIDGET = "napari_sigma._napari.spectrum_widget", "SpectrumWidget"


class AnalysisDock(_Dock):
    """The Phase analysis dock."""

    MODULE, WIDGET = "napari_sigma._napari.analysis_widget", "AnalysisWidget"


class LatentDock(_Dock):
    """The Latent space dock."""

    MODULE, WIDGET = "napari_sigma._napari.latent_widget", "LatentWidget"


class PhasesDock(_Dock):
    """The Phases dock."""

    MODULE, WIDGET = "napari_sigma._napari.phases_widget", "PhasesWidget"


# -- the plugin's docks kept on the screen ------------------------------------------------------
FIT_MS = 1  # after napari's add_dock_widget has returned (it stacks and sizes the docks first)
_ADDED = itertools.count()


def keep_on_screen(widget: Any) -> None:
    """Once napari has docked ``widget`` (a turn later), and whenever the window's layout
    changes while it holds two or more of the plugin's docks: tabify the plugin's docks while
    the window's minimum height exceeds the screen's (:func:`fit_on_screen`)."""
    widget._napari_sigma_order = next(_ADDED)  # findChildren's order changes (raise_ reorders)
    ref = weakref.ref(widget)
    QTimer.singleShot(FIT_MS, lambda: _docked(ref()))


def _docked(widget: Any) -> None:
    from qtpy import sip

    if widget is None or sip.isdeleted(widget):
        return
    dock = _dock_of(widget)
    window = dock.parentWidget() if dock is not None else None
    if window is None or not hasattr(window, "tabifyDockWidget"):
        return
    if len(_our_docks(window)) < 2:  # one dock of ours: nothing of ours to put beside it
        return
    _Refit.install(window)
    fit_on_screen(window)


def _dock_of(widget: Any) -> Any:
    """The QDockWidget that holds ``widget`` (None: not docked)."""
    from qtpy.QtWidgets import QDockWidget

    parent = widget.parentWidget()
    while parent is not None and not isinstance(parent, QDockWidget):
        parent = parent.parentWidget()
    return parent


def _is_ours(dock: Any) -> bool:
    from napari_sigma._napari.viewer_widget import ViewerWidget

    return isinstance(dock.widget(), ViewerWidget)


def _our_docks(window: Any) -> list:
    """The plugin's docks shown in ``window``'s dock areas (not floating), in the order they
    were added."""
    from qtpy.QtWidgets import QDockWidget

    docks = [
        dock
        for dock in window.findChildren(QDockWidget)
        if dock.isVisibleTo(window) and not dock.isFloating() and _is_ours(dock)
    ]
    return sorted(docks, key=lambda dock: getattr(dock.widget(), "_napari_sigma_order", -1))


def room(window: Any) -> int | None:
    """The height the window may take: its screen's available height less the window frame's
    (None: no screen)."""
    screen = window.screen()
    if screen is None:
        return None
    frame = max(0, window.frameGeometry().height() - window.geometry().height())
    return screen.availableGeometry().height() - frame


def fit_on_screen(window: Any) -> int:
    """When ``window``'s minimum height exceeds the screen's (:func:`room`), put the plugin's
    docks that share a dock area as tabs of one group, in the order they were added, the
    newest one in front; return how many docks moved."""
    height = room(window)
    if height is None or window.minimumSizeHint().height() <= height:
        return 0
    moved = 0
    by_area: dict[Any, list] = {}
    for dock in _our_docks(window):
        by_area.setdefault(window.dockWidgetArea(dock), []).append(dock)
    for docks in by_area.values():
        first, newest = docks[0], None
        for dock in docks[1:]:
            if dock not in window.tabifiedDockWidgets(first):
                window.tabifyDockWidget(first, dock)
                newest = dock
                moved += 1
        if newest is not None:  # what the user just opened
            docks[-1].show()
            docks[-1].raise_()
    if moved and window.height() > height and not (window.isMaximized() or window.isFullScreen()):
        # Qt made the window taller when the docks' minimum grew; it does not shrink it back
        # (and a resize is held to the window's minimum size, the layout's when it last ran)
        window.layout().activate()
        window.resize(window.width(), max(height, window.minimumSizeHint().height()))
    return moved


class _Refit(QObject):
    """Fits the window again (:func:`fit_on_screen`) a turn after its layout changed: a dock's
    minimum height grows as its content comes (the tabbed dock's tabs, built after napari
    docked it)."""

    def __init__(self, window: Any) -> None:
        super().__init__(window)
        self.window = weakref.ref(window)
        self.pending = False
        window.installEventFilter(self)

    @classmethod
    def install(cls, window: Any) -> None:
        if getattr(window, "_napari_sigma_refit", None) is None:
            window._napari_sigma_refit = cls(window)

    def eventFilter(self, watched: Any, event: Any) -> bool:
        if event.type() == QEvent.Type.LayoutRequest and not self.pending:
            self.pending = True
            QTimer.singleShot(FIT_MS, self._refit)
        return False

    def _refit(self) -> None:
        from qtpy import sip

        self.pending = False
        window = self.window()
        if window is not None and not sip.isdeleted(window):
            fit_on_screen(window)  # (returns at once when the window fits)
