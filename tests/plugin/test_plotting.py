"""The plugin's plots render in their thread only when what a user sees changes."""

from __future__ import annotations

import numpy as np
import pytest
from qtpy.QtWidgets import QTabWidget, QVBoxLayout, QWidget

from napari_sigma._napari import plotting
from napari_sigma._napari.plotting import SpectrumPlot

pytestmark = pytest.mark.gui


def plot_in_a_hidden_tab(qtbot) -> tuple[QTabWidget, SpectrumPlot]:
    tabs = QTabWidget()
    qtbot.addWidget(tabs)
    tabs.resize(460, 900)
    tabs.addTab(QWidget(), "shown")
    page = QWidget()
    QVBoxLayout(page)
    tabs.addTab(page, "hidden")
    plot = SpectrumPlot(page)
    page.layout().addWidget(plot)
    tabs.show()
    return tabs, plot


def test_a_hidden_plot_renders_once_shown_and_not_again_for_the_same_spectra(qtbot, monkeypatch):
    """A plot in a background tab renders nothing when Qt resizes it (a layer added to napari
    resized the hidden tabs: 2-3 renderings holding the GIL in that turn), and a redraw asked
    with the spectra it shows already renders nothing."""
    monkeypatch.setattr(plotting, "WARM_UP_DELAY_MS", 60_000, raising=False)  # not within this test
    tabs, plot = plot_in_a_hidden_tab(qtbot)
    qtbot.wait(100)
    plot.canvas.resize(300, 200)  # Qt resizing the hidden tab's widgets
    plot.canvas.draw_idle()
    energy = np.linspace(0, 10, 101)
    plot.set_spectra(energy, {"a": np.ones(101)})
    qtbot.wait(2 * plotting.REDRAW_DELAY_MS)
    assert plot.canvas.render_count == 0 and plot.draw_count == 0
    tabs.setCurrentIndex(1)
    qtbot.waitUntil(lambda: plot.draw_count == 1 and not plot.canvas.busy, timeout=10_000)
    rendered = plot.canvas.render_count
    assert rendered >= 1
    plot.set_spectra(energy.copy(), {"a": np.ones(101)})  # equal, not the same arrays
    plot.set_energy_range(None, None)
    qtbot.wait(3 * plotting.REDRAW_DELAY_MS)
    assert plot.draw_count == 1 and plot.canvas.render_count == rendered
    plot.set_spectra(energy, {"a": np.arange(101.0)})  # a change is drawn
    qtbot.waitUntil(lambda: plot.draw_count == 2, timeout=10_000)
    assert plot.canvas.wait_rendered()
    np.testing.assert_array_equal(plot.canvas.axes.get_lines()[0].get_ydata(), np.arange(101.0))


def test_a_new_plot_draws_once_a_while_after_it_is_made_even_hidden(qtbot, monkeypatch):
    """A plot draws itself once while napari is idle after it was made (the dock built), so
    that the process's first matplotlib rendering (fonts, tick layout: ~70 ms holding the GIL)
    is not paid when a run's result first shows the plot; shown later with nothing new, it
    renders only if its size changed."""
    monkeypatch.setattr(plotting, "WARM_UP_DELAY_MS", 50, raising=False)
    tabs, plot = plot_in_a_hidden_tab(qtbot)
    qtbot.waitUntil(lambda: plot.draw_count == 1 and plot.canvas.render_count == 1)
    assert plot.canvas.wait_rendered()
    assert plot.canvas.axes.get_xlabel() == "energy (keV)"  # built as a drawn plot is
    plot.set_spectra(np.zeros(0), {})  # what a Phases tab shows before its table
    tabs.setCurrentIndex(1)
    qtbot.wait(3 * plotting.REDRAW_DELAY_MS)
    assert plot.draw_count == 1  # nothing new: not built again
    assert plot.canvas.wait_rendered()
