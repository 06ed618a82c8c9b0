"""A scientist's session through napari's own entry points: sample, docks, run, edits, export."""

from __future__ import annotations

import numpy as np
import pytest
from napari.utils._proxies import ReadOnlyWrapper
from napari.utils.interactions import (
    mouse_move_callbacks,
    mouse_press_callbacks,
    mouse_release_callbacks,
)
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QFileDialog, QPushButton
from waits import HANG_MS

from napari_sigma._napari import state
from napari_sigma.io.results.export import read_labels_tiff

pytestmark = pytest.mark.gui
RUN_TIMEOUT_MS = 120_000
ELEMENTS = "O,Si,Al,Na,K,Ca,Mg,Fe,S"


def button(widget, text: str) -> QPushButton:
    (found,) = [b for b in widget.findChildren(QPushButton) if b.text() == text]
    return found


def brush_stroke(layer, mouse_event, start, end) -> None:
    """Press, drag and release in the layer's data coordinates, as napari's canvas does."""
    scale = np.asarray(layer.scale)

    def event(kind, where, dragging):
        position = tuple(np.asarray(where, dtype=float) * scale)
        return ReadOnlyWrapper(
            mouse_event(type=kind, is_dragging=dragging, position=position, dims_point=position)
        )

    mouse_press_callbacks(layer, event("mouse_press", start, False))
    mouse_move_callbacks(layer, event("mouse_move", end, True))
    mouse_release_callbacks(layer, event("mouse_release", end, False))


def ended(pid: int) -> bool:
    """Whether process ``pid`` has ended (gone, or a zombie its parent has not reaped yet)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return True


def test_sample_run_paint_lasso_merge_export(
    plugin_viewer, dock, qtbot, tmp_path, monkeypatch, MouseEvent
):
    viewer = plugin_viewer
    viewer.open_sample("napari-sigma-eds", "synthetic")
    spectrum = dock(viewer, "Spectrum and elements")
    analysis = dock(viewer, "Phase analysis")
    latent = dock(viewer, "Latent space")
    phases = dock(viewer, "Phases")
    assert spectrum.spectrum_image is not None

    analysis.form.elements.value = ELEMENTS
    analysis.form.epochs.value = 3
    analysis.form.device.value = "cpu"
    analysis.form.run.native.click()
    qtbot.waitUntil(lambda: analysis.worker is None, timeout=RUN_TIMEOUT_MS)
    layer = analysis.last_layers.phases
    assert analysis.progress_label.text().startswith("done"), analysis.progress_label.text()
    assert phases.layer is layer and latent.layer is layer
    qtbot.waitUntil(lambda: phases.table_data is not None, timeout=60_000)  # built in a worker
    n_phases = len(phases.row_ids())
    assert n_phases >= 4

    # a brush stroke with a new label: a new row, counted exactly
    new_label = max(phases.row_ids()) + 1
    layer.mode = "paint"
    layer.brush_size = 5
    layer.selected_label = new_label
    brush_stroke(layer, MouseEvent, (20, 20), (20, 60))
    # the sample's statistics were built in a worker: they are updated in one too (exactly)
    qtbot.waitUntil(lambda: not phases.pending_updates(), timeout=30_000)
    painted = int((np.asarray(layer.data) == new_label).sum())
    assert painted > 100 and phases.row_pixels()[new_label] == painted

    # a lasso around part of the latent space, assigned to a new phase (the lasso's callback)
    points = np.asarray(state.result_of(layer).latent)[:, :2]
    low, high = np.percentile(points, 5, axis=0), np.percentile(points, 40, axis=0)
    latent.target.setCurrentIndex(0)  # "new phase"
    latent._on_lasso([(low[0], low[1]), (high[0], low[1]), (high[0], high[1]), (low[0], high[1])])
    lassoed = int(layer.selected_label)
    qtbot.waitUntil(lambda: not phases.pending_updates(), timeout=30_000)
    assert lassoed not in (new_label, *range(1, n_phases + 1))
    assert phases.row_pixels()[lassoed] == int((np.asarray(layer.data) == lassoed).sum()) > 0

    # merge two rows with the button
    first, second = phases.row_ids()[:2]
    phases.select_ids([first, second])
    button(phases, "Merge selected").click()
    qtbot.waitUntil(lambda: not phases.pending_updates(), timeout=30_000)
    assert second not in phases.row_ids() and not (np.asarray(layer.data) == second).any()

    # export with the button (the folder dialog answered)
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(tmp_path))
    import napari.utils.notifications as notifications

    import napari_sigma.io.results.report as report

    shown, drawn_here = [], []
    monkeypatch.setattr(notifications, "show_info", shown.append)
    monkeypatch.setattr(report, "render_report", lambda *args, **kw: drawn_here.append(args))
    edited = np.array(layer.data, copy=True)
    button(phases, "Export...").click()
    assert phases.exporting  # in a worker
    # a hang detector, not a speed bound (the heartbeat bench measures the export): the export's
    # child process starts and imports in it; 30 s ran out once at load 10 (gui15b, s15)
    qtbot.waitUntil(lambda: not phases.exporting, timeout=RUN_TIMEOUT_MS)
    # said beside the button, not in a toast over the canvas (which redraws it)
    assert phases.title.text().startswith(f"{layer.name}: exported ")
    assert str(tmp_path) in phases.title.text() and shown == []
    exported, _ = read_labels_tiff(tmp_path / "phases.tif")
    np.testing.assert_array_equal(exported, edited)
    # report.png drawn in a child process: matplotlib held none of napari's GIL
    assert drawn_here == [] and (tmp_path / "report.png").read_bytes()[:4] == b"\x89PNG"

    # a second export: the same child answers it, warm (no interpreter, imports or mineral
    # library again), and writes the same files
    from napari_sigma.io.results.export_child import session_child

    child = session_child().pid
    again = tmp_path / "again"
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(again))
    button(phases, "Export...").click()
    qtbot.waitUntil(lambda: not phases.exporting, timeout=RUN_TIMEOUT_MS)
    files = sorted(again.iterdir())
    assert phases.title.text() == f"{layer.name}: exported {len(files)} files to {again}"
    assert child is not None and session_child().pid == child and drawn_here == []
    assert len(files) >= 7  # the maps, spectra, statistics, report.png and run.json at least
    for path in files:
        assert path.read_bytes() == (tmp_path / path.name).read_bytes(), path.name

    # the child killed while napari waits (out of memory, a user's kill): the next export starts
    # a new one, writes the same files, and says it in one line beside the button
    import os
    import signal

    os.kill(child, signal.SIGKILL)
    qtbot.waitUntil(lambda: ended(child), timeout=30_000)
    third = tmp_path / "third"
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(third))
    button(phases, "Export...").click()
    qtbot.waitUntil(lambda: not phases.exporting, timeout=RUN_TIMEOUT_MS)
    assert phases.title.text() == (
        f"{layer.name}: exported {len(files)} files to {third} (the export's child process "
        f"ended (exit code {-signal.SIGKILL}) between exports (a new one started))"
    )
    assert session_child().pid not in (None, child) and drawn_here == []
    for path in files:
        assert (third / path.name).read_bytes() == path.read_bytes(), path.name


def test_the_whole_plugin_docks_as_one_tabbed_panel(plugin_viewer, dock, qtbot):
    from napari_sigma._napari.main_widget import SigmaWidget

    viewer = plugin_viewer
    viewer.open_sample("napari-sigma-eds", "synthetic")
    sigma = dock(viewer, "napari-sigma")
    assert isinstance(sigma, SigmaWidget)
    titles = [sigma.tabs.tabText(i) for i in range(sigma.tabs.count())]
    assert titles == ["Analysis", "Spectrum", "Phases", "Latent space"]
    # the other tabs are built after matplotlib was imported in a thread, one per event-loop turn
    qtbot.waitUntil(lambda: sigma.built, timeout=30_000)
    qtbot.waitUntil(lambda: not sigma.spectrum.loading, timeout=30_000)
    assert sigma.selected_elements == sigma.spectrum.selected_elements != ()
    # One rule for the GUI and the CLI: the Spectrum tab pre-checks the default elements
    # (`default_elements`); left untouched, Run asks for "auto" as the CLI does (the same list,
    # and each phase's own elements added to its quantification: passing the list as given
    # turned that off, and P45 was named obsidian/beidellite/Or86 instead of the CLI's Or54 +
    # quartz, An37, Phl62). An edit of the boxes or of the field is run exactly as given.
    checked = sigma.spectrum.selected_elements
    assert len(checked) >= 2 and sigma.elements_unedited
    analysis = sigma.analysis
    analysis._prefill_elements()  # what Run does when the field was not edited
    assert analysis.form.elements.value == ",".join(checked)  # the user sees the list
    settings = analysis.settings()
    assert settings.elements is None and settings.lines is None  # run as "auto"
    sigma.spectrum.elements._boxes[checked[-1]].setChecked(False)  # the user unchecks one
    assert not sigma.elements_unedited
    analysis._prefill_elements()
    assert analysis.settings().elements == checked[:-1]
    sigma.spectrum.elements._boxes[checked[-1]].setChecked(True)  # back to the default
    analysis._prefill_elements()
    assert analysis.settings().elements is None
    analysis.form.elements.value = ",".join(checked[:2])  # the field edited
    assert analysis.settings().elements == checked[:2]


def _front(sigma) -> str:
    return sigma.tabs.tabText(sigma.tabs.currentIndex())


def test_a_file_of_one_spectrum_docks_the_panel_with_the_spectrum_tab_in_front(
    plugin_viewer, qtbot, monkeypatch
):
    """A user opens a single spectrum (bruker_nano.spx) and docks the plugin: the panel showed
    the Analysis tab with an empty "spectrum image" list (Run: "needs a spectrum image") over a
    black canvas; the spectrum was in a tab behind. The Spectrum tab is in front from the dock's
    first paint, built first, and shows the file's spectrum."""
    from test_napari_io import DATA

    from napari_sigma._napari import main_widget

    built = []
    make = main_widget._widget_class
    monkeypatch.setattr(main_widget, "_widget_class", lambda key: built.append(key) or make(key))
    viewer = plugin_viewer
    viewer.open(str(DATA / "bruker" / "bruker_nano.spx"), plugin="napari-sigma-eds")
    _, sigma = viewer.window.add_plugin_dock_widget("napari-sigma-eds", "napari-sigma")
    assert _front(sigma) == "Spectrum" and built == []  # in front, built in a later turn
    qtbot.waitUntil(lambda: sigma.built, timeout=HANG_MS)
    assert built[0] == "spectrum" and _front(sigma) == "Spectrum"
    qtbot.waitUntil(lambda: not sigma.spectrum.loading, timeout=HANG_MS)
    assert sigma.spectrum.source.currentText() == "bruker_nano"
    (curve,) = sigma.spectrum.plot.spectra.values()
    assert curve.size == 4096 and curve.max() > 0
    # its counts, named as what they are: not a "map mean" in "counts per pixel"
    assert list(sigma.spectrum.plot.spectra) == ["spectrum"]
    sigma.spectrum.plot.flush()
    assert sigma.spectrum.plot.canvas.wait_rendered(timeout=HANG_MS / 1e3)
    assert sigma.spectrum.plot.canvas.axes.get_ylabel() == "counts"
    sigma.show_tab("phases")  # the plugin's own pick (a run's result): what is opened keeps it
    viewer.open(str(DATA / "bruker" / "over16bit.bcf"), plugin="napari-sigma-eds")
    assert _front(sigma) == "Phases"


def test_the_tab_in_front_follows_what_is_opened_until_a_user_picks_one(plugin_viewer, qtbot):
    """Docked on an empty viewer, the panel shows Analysis; a single spectrum opened brings
    the Spectrum tab forward, a spectrum image the Analysis tab again (what there is to do
    next). Once a user picks a tab (or a run brings the Phases tab forward), what is opened
    no longer turns it."""
    from test_napari_io import DATA

    viewer = plugin_viewer
    spectrum, spectrum_image = DATA / "jeol" / "met03.EDS", DATA / "bruker" / "over16bit.bcf"
    _, sigma = viewer.window.add_plugin_dock_widget("napari-sigma-eds", "napari-sigma")
    qtbot.waitUntil(lambda: sigma.built, timeout=HANG_MS)
    assert _front(sigma) == "Analysis"
    viewer.open(str(spectrum), plugin="napari-sigma-eds")
    assert _front(sigma) == "Spectrum"
    viewer.open(str(spectrum_image), plugin="napari-sigma-eds")
    assert _front(sigma) == "Analysis"
    bar = sigma.tabs.tabBar()
    qtbot.mouseClick(bar, Qt.MouseButton.LeftButton, pos=bar.tabRect(3).center())  # a user
    assert _front(sigma) == "Latent space"
    viewer.layers.clear()
    viewer.open(str(spectrum), plugin="napari-sigma-eds")
    assert _front(sigma) == "Latent space"


def test_docking_builds_no_tab_in_napari_s_turn_and_each_tab_in_a_turn_of_its_own(
    plugin_viewer, qtbot, monkeypatch
):
    """napari's docking (its layout, its settings file) and our tabs' construction each take a
    turn of Qt's event loop: the dock call builds no tab, and a timer between every two tabs
    lets the loop's other work (a repaint, a heartbeat) run between them."""
    from qtpy.QtCore import QTimer

    from napari_sigma._napari import main_widget
    from napari_sigma._napari.main_widget import SigmaWidget

    built_in_turn = []  # the turn (the count of timer firings) in which each tab was built
    turns = [0]
    make = main_widget._widget_class

    def counting_class(key):
        cls = make(key)

        def build(viewer):
            built_in_turn.append((key, turns[0]))
            return cls(viewer)

        return build

    original_single_shot = QTimer.singleShot

    def counting_single_shot(ms, *rest):
        if len(rest) != 1 or not callable(rest[0]):  # napari's other forms: as they are
            return original_single_shot(ms, *rest)
        callback = rest[0]

        def fire():
            turns[0] += 1
            callback()

        return original_single_shot(ms, fire)

    monkeypatch.setattr(main_widget, "_widget_class", counting_class)
    monkeypatch.setattr(main_widget.QTimer, "singleShot", counting_single_shot)
    viewer = plugin_viewer
    viewer.open_sample("napari-sigma-eds", "synthetic")
    _, sigma = viewer.window.add_plugin_dock_widget("napari-sigma-eds", "napari-sigma")
    assert isinstance(sigma, SigmaWidget)
    assert built_in_turn == []  # napari's docking turn builds none of our tabs
    qtbot.waitUntil(lambda: sigma.built, timeout=30_000)
    # the Spectrum tab last: its worker (the sum spectrum) starts as it is built, and the other
    # tabs' builds in the main thread no longer share their turns with it
    assert [key for key, _ in built_in_turn] == ["analysis", "phases", "latent", "spectrum"]
    built_turns = [turn for _, turn in built_in_turn]
    assert len(set(built_turns)) == 4 and 0 not in built_turns  # one per timer turn
    assert sigma.analysis.last_result_callback == sigma._show_phases


def test_napari_s_docking_lays_out_in_one_turn_and_repaints_in_a_later_one(plugin_viewer, qtbot):
    """napari's docking turn (any dock: the window laid out again, the canvas resized, every
    changed widget painted and composed with the canvas' new frame) was one ~100 ms freeze with
    software OpenGL, our tab widget's first show and paint in it. The window's repaint is held
    back from the dock's construction until a turn after its layout: the canvas is resized while
    nothing is painted, the window repaints an empty dock after, and the tabs come in later."""
    from qtpy.QtCore import QEvent, QObject

    from napari_sigma._napari.main_widget import SigmaWidget
    from napari_sigma._napari.results import paints_held

    viewer = plugin_viewer
    viewer.window.show()
    window = viewer.window._qt_window
    qtbot.waitUntil(window.isVisible)
    viewer.open_sample("napari-sigma-eds", "synthetic")
    qtbot.wait(300)  # the layers' first paints done
    canvas = viewer.window._qt_viewer.canvas.native
    events = []

    class Log(QObject):
        def eventFilter(self, watched, event):
            if watched is canvas and event.type() == QEvent.Type.Resize:
                events.append(("canvas resized", paints_held(window)))
            elif watched is window and event.type() == QEvent.Type.Paint:
                tabs_shown = sigma is not None and sigma.tabs.isVisible()
                events.append(
                    ("window painted", len(sigma._widgets) if sigma else None, tabs_shown)
                )
            return False

    sigma = None
    log = Log()
    canvas.installEventFilter(log)
    window.installEventFilter(log)
    _, sigma = viewer.window.add_plugin_dock_widget("napari-sigma-eds", "napari-sigma")
    assert isinstance(sigma, SigmaWidget)
    assert paints_held(window)  # napari's docking turn lays the window out, paints nothing
    qtbot.waitUntil(lambda: ("window painted", 0, False) in events, timeout=5000)
    qtbot.waitUntil(lambda: sigma.built, timeout=30_000)
    canvas.removeEventFilter(log)
    window.removeEventFilter(log)
    resized = [event[1] for event in events if event[0] == "canvas resized"]
    assert resized and all(resized)  # the canvas took its new size while paints were held
    first_paint = events.index(("window painted", 0, False))  # an empty dock, no tab built
    assert events.index(("canvas resized", True)) < first_paint  # the repaint came after
    assert not paints_held(window) and sigma.tabs.isVisible() and sigma.tabs.parent() is sigma
    qtbot.wait(100)
    assert sigma.tabs.geometry() == sigma.rect()  # the tabs fill the dock (no band above them)


def test_a_dock_never_laid_out_holds_no_repaint_for_long(plugin_viewer, qtbot):
    """The dock's construction holds napari's window's repaints until its layout; a dock that
    is built but never added to the window lets the window repaint at the latest
    REPAINT_HOLD_MS after."""
    from napari_sigma._napari import main_widget
    from napari_sigma._napari.results import paints_held

    viewer = plugin_viewer
    viewer.window.show()
    window = viewer.window._qt_window
    qtbot.waitUntil(window.isVisible)
    sigma = main_widget.SigmaWidget(viewer)
    assert paints_held(window)
    qtbot.waitUntil(lambda: not paints_held(window), timeout=main_widget.REPAINT_HOLD_MS + 1000)
    sigma.deleteLater()


def test_a_tab_asked_for_while_the_preload_imports_waits_for_its_imports(
    plugin_viewer, monkeypatch
):
    """A tab built at once (a user's click, ``show_tab``) in the dock's first seconds imported
    matplotlib in the main thread while the preload thread imported it too; each holding a
    module the other waited for, Python gave the main thread a partly made module (ImportError
    "partially initialized module 'matplotlib.transforms'", scripts/screenshots.py). The tab
    now waits for the preload's imports first."""
    import threading

    from napari_sigma._napari import main_widget, preload

    events = []

    def wait(timeout=None):
        if threading.current_thread() is threading.main_thread():
            events.append("main thread waits")
        return True

    monkeypatch.setattr(preload, "wait", wait)
    make = main_widget._widget_class
    monkeypatch.setattr(main_widget, "_widget_class", lambda key: events.append(key) or make(key))
    _, sigma = plugin_viewer.window.add_plugin_dock_widget("napari-sigma-eds", "napari-sigma")
    assert not sigma._modules_ready  # the preload's "done" has not reached the dock yet
    sigma.show_tab("spectrum")
    assert events == ["main thread waits", "spectrum"], events
