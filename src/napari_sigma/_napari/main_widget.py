"""The whole plugin in one dock: Analysis, Spectrum, Phases and Latent space as tabs.

Fits a 1920x1080 screen beside the image; the Phases tab keeps the phase table and the phase
spectra together while a user paints. Each tab is the same widget the plugin also contributes as
a dock of its own (Plugins menu), so either way of working sees the same layers.

Docking must not freeze napari: the dock opens empty (napari adds it, lays the window out and
saves its settings in that turn); the tabs' modules (the analysis settings, matplotlib, the plotting
tabs) are imported in a background thread (:mod:`~napari_sigma._napari.preload`, usually done
since a file was opened), and the tabs are then built one per turn of Qt's event loop, the
Analysis tab first and the Spectrum tab last (:data:`BUILD_ORDER`), or at once when a user
opens one, or code asks for it (:attr:`SigmaWidget.phases`). Built before that import, the
Analysis tab imported the settings in the main thread (56 of its 76 ms). napari imports this
module in its main thread to dock the plugin: it imports none of the tabs' modules
(:data:`TAB_MODULES`). The turns are 1 ms timers, not zero-delay ones: a zero single
shot (and a signal from another thread) is a posted event, run in the same pass of the event loop
as the others already posted, so two tabs or a tab and napari's own dock work made one freeze.

napari's docking turn itself (any dock, a bare QLabel too: the window laid out again, the canvas
resized, every changed widget painted and the window composed with the canvas' new frame) is one
freeze of ~100 ms with software OpenGL. The dock keeps its own share out of it: napari's window
holds back its repaint from the dock's construction until a turn after the dock is laid out
(:func:`_hold_repaint`), and the dock is empty then; the tab widget comes in a turn after that
repaint (its first show and paint with napari's style sheet were 25-40 ms of main thread inside
napari's repaint, JEOL: that repaint's main-thread CPU 51-60 -> 16-17 ms, a QLabel dock's 16).
"""

from __future__ import annotations

import importlib
import weakref
from collections.abc import Callable
from typing import Any

from qtpy.QtCore import QTimer, Signal
from qtpy.QtWidgets import QSizePolicy, QTabWidget, QVBoxLayout, QWidget

from napari_sigma._napari import state
from napari_sigma._napari.viewer_widget import ViewerWidget
from napari_sigma.compute.background import start_thread

MINIMUM_WIDTH = 460
# the longest the window's repaint waits for the dock to be laid out (a dock built but not shown)
REPAINT_HOLD_MS = 500
# what follows a long repaint waits this long from the repaint's request: a timer due sooner (a
# 1 ms one was, set before a repaint of 60-100 ms) runs first, so the two are not one freeze
AFTER_REPAINT_MS = 16
TURN_MS = 1  # between two tabs' builds: a timer, so that the event loop's other work comes between
# torch's import (a second of CPU in a thread) starts this long after the dock's last tab is built,
# so that it does not compete with the dock's first repaints (Run starts it at once if earlier)
COMPUTE_PRELOAD_DELAY_MS = 2000
TABS = (
    ("analysis", "Analysis"),
    ("spectrum", "Spectrum"),
    ("phases", "Phases"),
    ("latent", "Latent space"),
)


# the tabs' modules: imported when a tab is built (in the thread of `_import_in_background`
# first), not with this module, which napari imports in its main thread to dock the plugin
# when the preload has not imported it yet (this module's import in a napari viewer: 13-14 ms
# of CPU with the Analysis tab's module, 4 ms without)
TAB_MODULES = {
    "analysis": ("napari_sigma._napari.analysis_widget", "AnalysisWidget"),
    "spectrum": ("napari_sigma._napari.spectrum_widget", "SpectrumWidget"),
    "phases": ("napari_sigma._napari.phases_widget", "PhasesWidget"),
    "latent": ("napari_sigma._napari.latent_widget", "LatentWidget"),
}

# the order the tabs are built in, one per turn: the Spectrum tab last, because it starts its
# worker (the sum spectrum and the element suggestions: Python holding the GIL, in a thread
# below napari's priority) as it is built; the Phases and Latent tabs' builds (main thread, 15-40
# ms each) then waited for that thread in the same turns (gaps of 120-130 ms, JEOL, load 17)
BUILD_ORDER = ("analysis", "phases", "latent", "spectrum")


# the roles of a spectrum image's layers (the reader's, the sample's: `analysis_widget.SOURCE_ROLES`)
IMAGE_ROLES = ("total", "image", "cube")


def front_tab(layers: Any) -> str:
    """The tab a user expects in front for the viewer's ``layers``: ``"spectrum"`` when they
    hold a single spectrum (a ``.spx``, ``.msa``, ``.EDS``, a pruned Velox file) and no
    spectrum image (nothing to analyse: the spectrum is what there is to see), otherwise
    ``"analysis"``."""
    image = spectrum = False
    for layer in layers:
        role = state.role_of(layer)
        if role in IMAGE_ROLES and state.spectrum_image_of(layer) is not None:
            image = True
        elif role == "spectrum":
            spectrum = True
    return "spectrum" if spectrum and not image else "analysis"


def _widget_class(key: str) -> Any:
    module, name = TAB_MODULES[key]
    return getattr(importlib.import_module(module), name)


def _import_tab_modules() -> None:
    for module, _ in TAB_MODULES.values():
        importlib.import_module(module)


class _RepaintHold:
    """napari's window's repaints held back (`results._paint_hold`) from the dock's
    construction; :meth:`release_a_turn_later` lets it repaint after this turn (at the latest
    :data:`REPAINT_HOLD_MS` after the hold: a dock built but never laid out), and ``then()``
    runs a turn after that repaint."""

    def __init__(self, window: Any, then: Callable[[], Any]) -> None:
        from napari_sigma._napari import results

        # weakly: a pending timer must not keep a closed viewer's window or the dock alive
        self.window = weakref.ref(window)
        self.then = weakref.WeakMethod(then)
        self.held = True
        results._paint_hold(window).hold()
        QTimer.singleShot(REPAINT_HOLD_MS, lambda: self.release())  # (held strongly)

    def release_a_turn_later(self) -> None:
        QTimer.singleShot(TURN_MS, lambda: self.release())

    def release(self) -> None:
        from napari_sigma._napari import results

        window = self.window()
        if self.held and window is not None:
            self.held = False
            results.release_paints(window)  # posts the repaint: before the next timers
            QTimer.singleShot(AFTER_REPAINT_MS, lambda: self._then())

    def _then(self) -> None:
        then = self.then()
        if then is not None:
            then()


def _hold_repaint(viewer: Any, then: Callable[[], Any]) -> _RepaintHold | None:
    """Hold back the repaints of ``viewer``'s window (None: no shown window, or its repaints
    held back already)."""
    from qtpy import sip

    from napari_sigma._napari import results

    window = results._qt_window(viewer)
    if window is None or sip.isdeleted(window) or not window.isVisible():
        return None
    if results.paints_held(window):
        return None
    return _RepaintHold(window, then)


def _tab_widget(key: str, doc: str) -> property:
    """The widget of tab ``key`` as a read-only attribute, built when first read
    (`SigmaWidget.tab`)."""
    return property(lambda widget: widget.tab(key), doc=doc)


class SigmaWidget(ViewerWidget):
    """One dock with the four plugin widgets as tabs, built without freezing napari (parameters
    of `ViewerWidget`)."""

    _imported = Signal()

    def __init__(self, napari_viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(napari_viewer, parent)
        # the tabs are not yet in the dock: napari lays out and paints an empty dock (a tab
        # widget's first show and paint with napari's style sheet: ~25 ms more of main thread
        # in the docking repaint than a QLabel's, JEOL); they come in at a later turn
        self.tabs = QTabWidget()
        self._widgets: dict[str, Any] = {}
        self._pages: dict[str, QWidget] = {}
        for key, title in TABS:
            page = QWidget(self.tabs)
            QVBoxLayout(page).setContentsMargins(0, 0, 0, 0)
            self._pages[key] = page
            self.tabs.addTab(page, title)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.setMinimumWidth(MINIMUM_WIDTH)
        # the dock's height is the tabs' (napari adds a stretch below a dock whose layout holds
        # no widget that wants height: the tabs, put in later, sat under an empty band)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Expanding)
        self._laid_out = False
        self._tabs_in = False
        # the tab in front follows the layers (`front_tab`) until a user or the plugin picks one
        self._front = front_tab(self.viewer.layers)
        self._following = True
        self._turning = False  # the tab in front is being turned by `_follow_layers`
        self._show_front_unbuilt()
        # napari adds the dock after this: its layout now, the window's repaint a turn later,
        # the tabs a turn after that
        self._repaint_hold = _hold_repaint(self.viewer, then=self._put_tabs_in)
        if self._repaint_hold is None:  # no shown window: nothing to split
            self._put_tabs_in()
        self._modules_ready = False  # matplotlib and the plotting tabs' modules are imported
        self._next_scheduled = False
        self.tabs.currentChanged.connect(self._on_tab_shown)
        self.viewer.layers.events.inserted.connect(self._follow_layers)
        self.viewer.layers.events.removed.connect(self._follow_layers)
        self._imported.connect(self._on_imported)
        start_thread(self._import_in_background, "napari-sigma-import")  # the exit waits
        from napari_sigma._napari.docks import keep_on_screen

        keep_on_screen(self)  # beside the plugin's other docks: as a tab where they do not fit

    def resizeEvent(self, event: Any) -> None:
        """The dock's first layout: the window repaints a turn later (`_hold_repaint`)."""
        super().resizeEvent(event)
        if not self._laid_out:
            self._laid_out = True
            if self._repaint_hold is not None:
                self._repaint_hold.release_a_turn_later()

    def _put_tabs_in(self) -> None:
        from qtpy import sip

        if not self._tabs_in and not sip.isdeleted(self):
            self._tabs_in = True
            self.layout().addWidget(self.tabs)
            if self._repaint_hold is not None:  # the first tab after the tabs' own repaint
                self._next_scheduled = True
                QTimer.singleShot(AFTER_REPAINT_MS, self._build_next)

    # -- the tabs, built when first needed ---------------------------------------------------
    def tab(self, key: str) -> Any:
        """The widget of tab ``key`` (``"analysis"``, ``"spectrum"``, ``"phases"``, ``"latent"``),
        built now if it was not yet."""
        widget = self._widgets.get(key)
        if widget is None:
            if not self._modules_ready:  # a tab asked for in the dock's first seconds
                from napari_sigma._napari import preload

                # the preload thread may be importing matplotlib right now: importing it here
                # as well, each thread holding one module the other waited for, Python handed
                # this thread a partly made module ("cannot import name 'Transform' from
                # partially initialized module 'matplotlib.transforms'", scripts/screenshots.py)
                preload.wait()
            widget = _widget_class(key)(self.viewer)
            self._widgets[key] = widget
            self._pages[key].layout().addWidget(widget)
            if key == "analysis":
                widget.last_result_callback = self._show_phases
        return widget

    analysis = _tab_widget("analysis", "The Analysis tab (`AnalysisWidget`).")
    spectrum = _tab_widget("spectrum", "The Spectrum tab (`~.spectrum_widget.SpectrumWidget`).")
    phases = _tab_widget("phases", "The Phases tab (`~.phases_widget.PhasesWidget`).")
    latent = _tab_widget("latent", "The Latent space tab (`~.latent_widget.LatentWidget`).")

    @property
    def built(self) -> bool:
        """Whether every tab is built."""
        return len(self._widgets) == len(TABS)

    def _import_in_background(self) -> None:
        from napari_sigma._napari import preload

        preload.wait()  # an import error shows when the tab is built, in the main thread
        try:  # the tabs' modules here, not in the main thread (those the preload did are in)
            _import_tab_modules()
        except Exception:  # raised again where the tab is built
            pass
        try:
            self._imported.emit()
        except RuntimeError:  # the dock was closed meanwhile
            pass

    def _on_imported(self) -> None:
        self._modules_ready = True
        self._schedule_next()

    def _schedule_next(self) -> None:
        if not self._next_scheduled:
            self._next_scheduled = True
            QTimer.singleShot(TURN_MS, self._build_next)

    def _build_next(self) -> None:
        """Build the next tab not built yet (once the modules are imported); the one after it
        at a later turn of the event loop."""
        from qtpy import sip

        self._next_scheduled = False
        if sip.isdeleted(self):
            return
        if not self._tabs_in:  # the docking's repaint and the tabs first (`_put_tabs_in`)
            return
        order = (self._front, *(key for key in BUILD_ORDER if key != self._front))
        missing = [key for key in order if key not in self._widgets]
        if missing and self._modules_ready:
            self.tab(missing[0])
            missing = missing[1:]
            if missing:
                self._schedule_next()
        if not missing:  # all built: torch a little later, before the user runs an analysis
            from napari_sigma._napari import preload

            QTimer.singleShot(COMPUTE_PRELOAD_DELAY_MS, preload.start_compute)

    def _on_tab_shown(self, index: int) -> None:
        if not self._turning:  # a user's click, or the plugin's `show_tab`: theirs from now on
            self._following = False
        self.tab(TABS[index][0])

    # -- the tab in front, following the layers -----------------------------------------------
    def _show_front_unbuilt(self) -> None:
        """Put the front tab's page in front without building it (built first: `_build_next`)."""
        self.tabs.blockSignals(True)
        self.tabs.setCurrentWidget(self._pages[self._front])
        self.tabs.blockSignals(False)

    @state.alive_only
    def _follow_layers(self, *_: Any) -> None:
        """A layer was added or removed: while the tab in front was not picked by a user or the
        plugin, the tab a user expects (`front_tab`) comes forward when it changes (a single
        spectrum opened: Spectrum; a spectrum image: Analysis)."""
        front = front_tab(self.viewer.layers)
        if front == self._front:
            return
        self._front = front
        if not self._following:
            return
        if front in self._widgets or self._modules_ready:
            self._turning = True
            try:
                self.show_tab(front)
            finally:
                self._turning = False
        else:  # the tab's modules are still imported: built first when they are
            self._show_front_unbuilt()

    @property
    def selected_elements(self) -> tuple[str, ...]:
        """The elements checked in the Spectrum tab (the Analysis tab starts from them)."""
        spectrum = self._widgets.get("spectrum")
        return spectrum.selected_elements if spectrum is not None else ()

    @property
    def elements_unedited(self) -> bool:
        """Whether the Spectrum tab's checked elements are its untouched default."""
        spectrum = self._widgets.get("spectrum")
        return bool(spectrum is not None and spectrum.elements_unedited)

    def show_tab(self, key: str) -> Any:
        """Bring tab ``key`` forward (built if it was not yet); return its widget."""
        widget = self.tab(key)
        self.tabs.setCurrentWidget(self._pages[key])
        return widget

    def _show_phases(self) -> None:
        """After a run, bring the Phases tab forward."""
        self.show_tab("phases")
