"""The plugin's plots render in their thread only when what a user sees changes."""

from __future__ import annotations

import numpy as np
import pytest
from qtpy.QtWidgets import QTabWidget, QVBoxLayout, QWidget
from waits import HANG_MS

from napari_sigma._napari import plotting, spectrum_plot
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
    # not within this test
    monkeypatch.setattr(spectrum_plot, "WARM_UP_DELAY_MS", 60_000, raising=False)
    tabs, plot = plot_in_a_hidden_tab(qtbot)
    qtbot.wait(100)
    plot.canvas.resize(300, 200)  # Qt resizing the hidden tab's widgets
    plot.canvas.draw_idle()
    energy = np.linspace(0, 10, 101)
    plot.set_spectra(energy, {"a": np.ones(101)})
    qtbot.wait(2 * plotting.REDRAW_DELAY_MS)
    assert plot.canvas.render_count == 0 and plot.draw_count == 0
    tabs.setCurrentIndex(1)
    qtbot.waitUntil(lambda: plot.draw_count == 1 and not plot.canvas.busy, timeout=HANG_MS)
    rendered = plot.canvas.render_count
    assert rendered >= 1
    plot.set_spectra(energy.copy(), {"a": np.ones(101)})  # equal, not the same arrays
    plot.set_energy_range(None, None)
    qtbot.wait(3 * plotting.REDRAW_DELAY_MS)
    assert plot.draw_count == 1 and plot.canvas.render_count == rendered
    plot.set_spectra(energy, {"a": np.arange(101.0)})  # a change is drawn
    qtbot.waitUntil(lambda: plot.draw_count == 2, timeout=HANG_MS)
    assert plot.canvas.wait_rendered()
    np.testing.assert_array_equal(plot.canvas.axes.get_lines()[0].get_ydata(), np.arange(101.0))


def test_a_new_plot_draws_once_a_while_after_it_is_made_even_hidden(qtbot, monkeypatch):
    """A plot draws itself once while napari is idle after it was made (the dock built), so
    that the process's first matplotlib rendering (fonts, tick layout: ~70 ms holding the GIL)
    is not paid when a run's result first shows the plot; shown later with nothing new, it
    renders only if its size changed."""
    monkeypatch.setattr(spectrum_plot, "WARM_UP_DELAY_MS", 50, raising=False)
    tabs, plot = plot_in_a_hidden_tab(qtbot)
    qtbot.waitUntil(lambda: plot.draw_count == 1 and plot.canvas.render_count == 1, timeout=HANG_MS)
    assert plot.canvas.wait_rendered()
    assert plot.canvas.axes.get_xlabel() == "energy (keV)"  # built as a drawn plot is
    plot.set_spectra(np.zeros(0), {})  # what a Phases tab shows before its table
    tabs.setCurrentIndex(1)
    qtbot.wait(3 * plotting.REDRAW_DELAY_MS)
    assert plot.draw_count == 1  # nothing new: not built again
    assert plot.canvas.wait_rendered()


def drawn_pixels(canvas) -> np.ndarray:
    return np.array(canvas.renderer.buffer_rgba(), copy=True)


def test_a_spectrum_plot_is_drawn_in_a_child_process_with_the_same_pixels(qtbot, monkeypatch):
    """A spectrum plot's Agg drawing (100-160 ms of the plot thread holding napari's GIL at
    JEOL's 11 phases) runs in a child process: the figure is built here (what the toolbar and
    the zoom read) and its pixels come back, the same as drawn here; a child that dies is
    replaced, and a plot is drawn here when no child answers."""
    from matplotlib.backends.backend_agg import RendererAgg
    from matplotlib.figure import Figure

    monkeypatch.setattr(spectrum_plot, "WARM_UP_DELAY_MS", 60_000, raising=False)
    plot = SpectrumPlot()
    qtbot.addWidget(plot)
    plot.resize(460, 520)
    plot.show()
    energy = np.linspace(0, 10, 1001)
    rng = np.random.default_rng(0)
    spectra = {f"P{k} phase {k}": 5 + np.sin(energy * k) + rng.random(1001) for k in range(1, 8)}
    plot.set_spectra(energy, spectra)
    plot.set_markers({"Si_Ka": 1.74, "Fe_Ka": 6.4, "O_Ka": 0.525})
    drawn_here = []
    draw = Figure.draw
    monkeypatch.setattr(Figure, "draw", lambda *a, **k: drawn_here.append(1) or draw(*a, **k))
    plot.flush()
    assert plot.canvas.wait_rendered()
    assert plot.canvas.render_count >= 1 and drawn_here == []  # drawn in the child only
    child = plotting._child["process"]
    assert child is not None and child.calls >= 1
    shown = drawn_pixels(plot.canvas)
    key = (*plot.canvas.get_width_height(physical=True), plot.canvas.figure.dpi)
    here = RendererAgg(*key)
    draw(plot.canvas.figure, here)
    np.testing.assert_array_equal(shown, np.asarray(here.buffer_rgba()))  # the same pixels
    assert len(np.unique(shown.reshape(-1, 4), axis=0)) > 10  # a plot, not a blank image

    child._process.kill()  # the child dies: a new one draws the next change
    child._process.wait()
    plot.set_log_scale(True)
    plot.flush()
    assert plot.canvas.wait_rendered()
    assert drawn_here == [1]  # the dead child's drawing was made here
    plot.set_log_scale(False)
    plot.flush()
    assert plot.canvas.wait_rendered(timeout=60)  # (a new Python process imports matplotlib)
    assert drawn_here == [1] and plotting._child["process"] not in (None, child)
    np.testing.assert_array_equal(drawn_pixels(plot.canvas), shown)


def test_builds_queued_while_a_rendering_runs_are_replaced_by_the_last(qtbot):
    """Each build makes the whole figure: of the builds asked while a rendering runs only the
    last one runs before the next rendering (each held the GIL ~25 ms for a spectrum plot)."""
    import threading

    from napari_sigma._napari.plotting import PlotCanvas

    canvas = PlotCanvas()
    qtbot.addWidget(canvas)
    canvas.show()
    release, built = threading.Event(), []
    canvas.render(lambda: release.wait(10) and built.append("first"))
    for name in ("a", "b", "c"):
        canvas.render(lambda name=name: built.append(name))
    release.set()
    assert canvas.wait_rendered()
    assert built == ["first", "c"] and canvas.render_count == 2


def test_a_bright_map_s_counts_carry_no_multiplier_over_the_legend(qtbot, monkeypatch):
    """over16bit.bcf through napari (a user's session, seventeenth): 2.5 million counts per
    pixel at carbon's peak; matplotlib's "1e6" multiplier sat above the axes, over the
    legend's first name ("1e6y phase"). The ticks say it ("2.5M"), nothing is printed above
    the axes, and the plot is still drawn in the child process."""
    from matplotlib.figure import Figure

    monkeypatch.setattr(spectrum_plot, "WARM_UP_DELAY_MS", 60_000, raising=False)
    plot = SpectrumPlot(ylabel="mean counts / pixel")
    qtbot.addWidget(plot)
    plot.resize(460, 520)
    plot.show()
    energy = np.linspace(0, 10, 1001)
    peak = 2.5e6 * np.exp(-(((energy - 0.28) / 0.05) ** 2))
    plot.set_spectra(energy, {"my phase": peak, "phase 2": 0.9 * peak})
    drawn_here = []
    draw = Figure.draw
    monkeypatch.setattr(Figure, "draw", lambda *a, **k: drawn_here.append(1) or draw(*a, **k))
    plot.flush()
    assert plot.canvas.wait_rendered()
    assert drawn_here == []  # drawn in the child: the figure pickled with its tick labels
    axes = plot.canvas.axes
    formatter = axes.yaxis.get_major_formatter()
    labels = formatter.format_ticks(axes.get_yticks())
    assert formatter.get_offset() == ""  # matplotlib's default: "1e6"
    assert "2M" in labels and all(float(label.rstrip("kM")) < 1e4 for label in labels), labels
    plot.set_log_scale(True)  # the log scale keeps its powers of ten
    plot.flush()
    assert plot.canvas.wait_rendered()
    assert type(axes.yaxis.get_major_formatter()).__name__ != "CompactTicks"


def test_the_intensity_range_s_top_is_what_the_curves_counts_show():
    """`signal_top`: a curve's point counts at its value from 16 counts behind it, below that
    at its lower 2-sigma bound; a curve without counts with every point; within the x range."""
    energy = np.arange(10) * 0.5
    counted = np.full(10, 0.1)
    counted[4] = 0.3  # 0.3 per pixel over 200 pixels: 60 counts
    spike = np.zeros(10)
    spike[7] = 0.6  # 3 counts over 5 pixels: 3 - 2 sqrt(3) < 0
    grain = np.zeros(10)
    grain[2] = 8.0  # a 5-pixel grain's real peak: 40 counts, known to +-32 %
    top = plotting.signal_top
    assert top(energy, {"a": counted, "b": spike}, {}) is None  # no counts: autoscale
    assert top(energy, {"a": counted, "b": spike}, {"a": 200, "b": 5}) == 0.3
    assert top(energy, {"a": counted, "b": spike}, {"a": 200}) == 0.6  # b: every point
    assert top(energy, {"a": counted, "g": grain}, {"a": 200, "g": 5}) == 8.0
    few = np.zeros(10)
    few[1] = 2.0  # 10 counts over 5 pixels: known only down to 10 - 2 sqrt(10) = 3.68 counts
    assert top(energy, {"a": counted, "f": few}, {"a": 200, "f": 5}) == pytest.approx(
        (10 - 2 * np.sqrt(10)) / 5
    )
    assert top(energy, {"a": counted}, {"a": 200}, xlim=(2.5, 4.5)) == 0.1  # 0.3 lies at 2 keV


def test_a_nearly_empty_map_keeps_its_counts_in_the_intensity_range():
    """SI_empty_selection.emd (72 counts in 320 pixels): no point is known above zero
    (`signal_top` 0); the range was lowered to 0 and every count ran off the top (an axis of
    -0.0006..0, user path); autoscaled now, its counts are shown."""
    from matplotlib.figure import Figure

    energy = np.arange(400) * 0.01
    spectrum = np.zeros(400)
    spectrum[[30, 80, 95, 210]] = 1 / 320  # one count each over 320 pixels
    assert plotting.signal_top(energy, {"map": spectrum}, {"map": 320}) == 0
    axes = Figure().add_subplot()
    axes.plot(energy, spectrum)
    plotting._fit_intensities_to_signal(axes, energy, {"map": spectrum}, {"map": 320}, None)
    low, high = axes.get_ylim()
    assert low <= 0 and high >= spectrum.max()


def test_the_zero_energy_peak_never_sets_the_intensity_range():
    """A Velox map's strobe at 0 keV (and any detector's noise peak) runs off the top: below
    `ZERO_PEAK_END_KEV` no point counts, the X-ray peaks above it set the range."""
    from napari_sigma._napari.axes_drawing import ZERO_PEAK_END_KEV

    energy = np.arange(0, 2.0, 0.01)
    spectrum = np.full(energy.size, 0.01)
    spectrum[energy < 0.19] = 30.0 * np.exp(-((energy[energy < 0.19] / 0.04) ** 2))  # the strobe
    spectrum[np.argmin(np.abs(energy - 0.277))] = 0.08  # C Ka: 20 counts over 256 pixels
    top = plotting.signal_top(energy, {"map": spectrum}, {"map": 256})
    assert top == pytest.approx(0.08)
    assert ZERO_PEAK_END_KEV < 0.277  # C Ka always counts


def test_napari_s_exit_kills_the_drawing_child_without_waiting_for_it():
    """At exit the plot's drawing child is killed (exit code -9), not waited for: a graceful
    end of an idle child that had drawn once took 1.0 s at load 16, napari's exit with it."""
    import os
    import signal
    import subprocess
    import sys

    script = (
        "import atexit\n"
        "from matplotlib.figure import Figure\n"
        "from napari_sigma._napari import plot_canvas\n"
        "def after():  # registered first: runs after the drawing child's exit handler\n"
        "    print('exit code', child._process.wait(10), flush=True)\n"
        "atexit.register(after)\n"
        "child = plot_canvas._drawing_child()\n"
        "child.call('render_figure', Figure(figsize=(1, 1)), 2, 2, 72.0)\n"
    )
    from pathlib import Path

    src = str(Path(plotting.__file__).resolve().parents[2])
    path = os.pathsep.join(filter(None, (src, os.environ.get("PYTHONPATH"))))
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
        env=dict(os.environ, PYTHONPATH=path, QT_QPA_PLATFORM="offscreen"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[-2] == f"exit code {-signal.SIGKILL}"
