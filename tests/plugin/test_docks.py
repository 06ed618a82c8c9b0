"""The plugin's docks as a user opens them from the Plugins menu: on the screen, and quick to dock.

napari stacks each dock it adds under those already on the right, and the window's minimum
height is the sum of theirs: two or three of the plugin's docks made napari's window taller than a
1080-line screen (1201-1812 px; five 2558 px). Docks that would not fit become tabs of one group.
"""

from __future__ import annotations

import subprocess
import sys

from waits import HANG_MS

PLUGIN = "napari-sigma-eds"


def _dock_of(window, widget):
    from qtpy.QtWidgets import QDockWidget

    (dock,) = [d for d in window.findChildren(QDockWidget) if d.widget() is widget]
    return dock


def _tab_titles(window, count):
    """The titles of the window's dock tab bar of ``count`` tabs, and the index of the front one."""
    from qtpy.QtWidgets import QTabBar

    (bar,) = [
        bar
        for bar in window.findChildren(QTabBar)
        if bar.isVisible() and bar.count() == count and bar.parent() is window
    ]
    return [bar.tabText(i).split(" (")[0] for i in range(count)], bar.currentIndex()


def test_docks_stack_while_they_fit_and_become_tabs_when_the_window_would_not(
    plugin_viewer, qtbot, monkeypatch
):
    from napari_sigma._napari import docks

    viewer = plugin_viewer
    viewer.window.show()
    window = viewer.window._qt_window
    qtbot.waitUntil(window.isVisible)
    viewer.open_sample(PLUGIN, "synthetic")
    screen = {"height": 10_000}
    monkeypatch.setattr(docks, "room", lambda _window: screen["height"])
    _, latent = viewer.window.add_plugin_dock_widget(PLUGIN, "Latent space")
    qtbot.wait(300)  # a user's click later
    _, spectrum = viewer.window.add_plugin_dock_widget(PLUGIN, "Spectrum and elements")
    qtbot.wait(300)
    latent_dock, spectrum_dock = _dock_of(window, latent), _dock_of(window, spectrum)
    assert window.tabifiedDockWidgets(latent_dock) == []  # room for both: stacked, as napari does
    # a screen just tall enough for these two: the third dock would push the window past it
    screen["height"] = window.minimumSizeHint().height() + 40
    window.resize(window.width(), screen["height"])
    _, phases = viewer.window.add_plugin_dock_widget(PLUGIN, "Phases")
    phases_dock = _dock_of(window, phases)
    qtbot.waitUntil(lambda: len(window.tabifiedDockWidgets(latent_dock)) == 2, timeout=HANG_MS)
    qtbot.wait(100)
    assert set(window.tabifiedDockWidgets(latent_dock)) == {spectrum_dock, phases_dock}
    assert window.minimumSizeHint().height() <= screen["height"]
    assert window.height() <= screen["height"]  # shrunk back after Qt made it taller
    assert _tab_titles(window, 3) == (["Latent space", "Spectrum and elements", "Phases"], 2)


def test_five_docks_in_one_turn_end_as_tabs_in_the_order_they_were_added(
    plugin_viewer, qtbot, monkeypatch
):
    """A script docking everything at once (``../shared/checks/user_path.py``): the tabbed dock
    is still empty when the others are added (its tabs come later and make it taller)."""
    from napari_sigma._napari import docks

    viewer = plugin_viewer
    viewer.window.show()
    window = viewer.window._qt_window
    qtbot.waitUntil(window.isVisible)
    window.resize(1600, 1000)
    monkeypatch.setattr(docks, "room", lambda _window: 1000)
    names = ["napari-sigma", "Spectrum and elements", "Phase analysis", "Latent space", "Phases"]
    widgets = [viewer.window.add_plugin_dock_widget(PLUGIN, name)[1] for name in names]
    qtbot.waitUntil(lambda: widgets[0].built, timeout=30_000)
    qtbot.wait(200)
    first = _dock_of(window, widgets[0])
    assert len(window.tabifiedDockWidgets(first)) == 4
    assert window.minimumSizeHint().height() <= 1000 and window.height() <= 1000
    assert _tab_titles(window, 5) == (names, 4)  # the newest in front


def test_napari_imports_the_tabbed_dock_s_module_without_the_tabs_modules():
    """napari imports the module of the dock's class in its main thread, in the dock call: the
    Analysis tab's module came with it (magicgui, the form: 85-130 ms of CPU; with the preload's
    thread importing beside it, the call took 100-206 ms at load 10). The tabs' modules come
    in the dock's background thread (fresh interpreter: nothing imported yet)."""
    code = (
        "import sys; import qtpy.QtWidgets; import napari_sigma._napari.main_widget; "
        "heavy = [m for m in ('napari_sigma._napari.analysis_widget', 'magicgui', 'matplotlib', "
        "'napari_sigma._napari.spectrum_widget') if m in sys.modules]; "
        "assert not heavy, heavy; print('ok')"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]
