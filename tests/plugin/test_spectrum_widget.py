"""The Spectrum widget: cursor and phase spectra, element suggestion, markers, element maps."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from waits import HANG_MS

from napari_sigma._napari import spectrum_widget as sw
from napari_sigma._napari import state
from napari_sigma._napari.plotting import SpectrumPlot
from napari_sigma._napari.sample_data import TRUTH_LAYER_NAME
from napari_sigma.compute.progress import run_to_completion

DATA = Path("/work/shared/data/eds")
if not DATA.is_dir():
    DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "eds"
P45 = DATA / "bruker" / "P45_the_default_job.bcf"


# ------------------------------------------------------------------ pure helpers


def testline_markers_of_silicon_and_iron():
    from napari_sigma.energy import EnergyAxis
    from napari_sigma.spectrum_image import Spectrum

    spectrum = Spectrum(np.zeros(2048), EnergyAxis(-0.47, 0.01, 2048), beam_energy=15.0)
    markers = sw.line_markers(("Si", "Fe"), spectrum)
    assert markers["Si_Ka"] == pytest.approx(1.74, abs=0.01)
    assert markers["Fe_Ka"] == pytest.approx(6.40, abs=0.01)
    assert "Fe_La" in markers and "Fe_Kb" not in markers  # Kb is weaker than half of Ka


@pytest.mark.gui
def test_spectrum_plot_shows_spectra_markers_and_switches_to_log(qtbot):
    plot = SpectrumPlot()
    qtbot.addWidget(plot)
    plot.resize(411, 437)  # 4.11 in x 100 dpi != 411 px: the rendering must still be shown
    plot.show()
    energy = np.linspace(0, 10, 101)
    plot.set_spectra(energy, {"a": np.ones(101), "b": np.arange(101)})
    plot.set_markers({"Fe_Ka": 6.4})
    assert plot.draw_count == 0  # coalesced: one draw for both changes
    qtbot.waitUntil(lambda: plot.draw_count == 1, timeout=HANG_MS)
    assert plot.canvas.wait_rendered()  # built and rendered in the plot thread
    assert plot.canvas.render_count >= 1
    shown = plot.canvas.grab().toImage()  # what Qt paints: the rendering, not a blank canvas
    colours = {
        shown.pixel(x, y) for x in range(0, shown.width(), 3) for y in range(0, shown.height(), 3)
    }
    assert len(colours) > 5
    axes = plot.canvas.axes
    assert [line.get_label() for line in axes.get_lines()[:2]] == ["a", "b"]
    assert axes.get_yscale() == "linear"
    plot.set_log_scale(True)
    plot.flush()
    assert plot.canvas.wait_rendered()
    assert plot.canvas.axes.get_yscale() == "symlog"
    assert any(text.get_text() == "Fe_Ka" for text in plot.canvas.axes.texts)


@pytest.mark.gui
def test_the_legend_sits_above_the_spectra_which_keep_the_dock_s_width(qtbot):
    plot = SpectrumPlot()
    qtbot.addWidget(plot)
    plot.resize(460, 420)  # napari's dock width
    plot.show()
    energy = np.linspace(0, 15, 1501)
    names = [f"phase {k}: P{k} Si-O-Al-Fe" for k in range(1, 12)]  # 11 phases
    plot.set_spectra(energy, {name: np.full(1501, k + 1.0) for k, name in enumerate(names)})
    plot.flush()
    assert plot.canvas.wait_rendered()

    def extents():
        canvas = plot.canvas
        axes, legend = canvas.axes, canvas.axes.get_legend()
        box = legend.get_window_extent(canvas.get_renderer())
        return axes.get_window_extent(), box, canvas.figure.bbox

    axes, legend, figure = extents()
    assert axes.width >= 0.8 * figure.width  # the data keep the width (was 252 of 460 px)
    assert axes.height >= 0.55 * figure.height
    assert legend.y0 >= axes.y1 - 1  # above the data, covering none of it
    assert 0 <= legend.x0 and legend.x1 <= figure.width and legend.y1 <= figure.height
    assert [t.get_text() for t in plot.canvas.axes.get_legend().get_texts()] == names  # whole

    plot.resize(300, 420)  # a narrower dock: more rows would squeeze the plot, names are cut
    qtbot.waitUntil(lambda: plot.draw_count == 2, timeout=HANG_MS)
    plot.flush()
    assert plot.canvas.wait_rendered()
    axes, legend, figure = extents()
    assert legend.y0 >= axes.y1 - 1 and legend.x1 <= figure.width and legend.y1 <= figure.height
    assert axes.height >= 0.55 * figure.height
    texts = [t.get_text() for t in plot.canvas.axes.get_legend().get_texts()]
    pairs = zip(texts, names, strict=True)
    assert all(t == n or (t.endswith("…") and n.startswith(t[:-1])) for t, n in pairs)
    assert [line.get_label() for line in plot.canvas.axes.get_lines()[:11]] == names


# ------------------------------------------------------------------ the widget in a viewer


@pytest.fixture
def sample_viewer(plugin_viewer, dock, qtbot):
    """The sample opened and the widget docked as a user does it."""
    viewer = plugin_viewer
    viewer.open_sample("napari-sigma-eds", "synthetic")
    widget = dock(viewer, "Spectrum and elements")
    assert isinstance(widget, sw.SpectrumWidget)
    wait_loaded(widget, qtbot)
    return viewer, widget


def wait_loaded(widget, qtbot) -> None:
    """The sum spectrum and the element suggestion come from a worker."""
    qtbot.waitUntil(lambda: not widget.loading, timeout=30_000)


def _sample_image(viewer):
    return state.spectrum_image_of(viewer.layers[TRUTH_LAYER_NAME])


@pytest.mark.gui
def test_widget_shows_the_mean_spectrum_of_the_sample(sample_viewer):
    viewer, widget = sample_viewer
    image = _sample_image(viewer)
    assert widget.spectrum_image is image
    mean = widget.plot.spectra[sw.MEAN_KEY]
    np.testing.assert_allclose(mean, np.asarray(image.counts).mean(axis=(0, 1)))


@pytest.mark.gui
def test_a_second_spectrum_image_is_listed_without_replacing_the_shown_one(sample_viewer, qtbot):
    viewer, widget = sample_viewer
    image = widget.spectrum_image
    viewer.open(str(P45), plugin="napari-sigma-eds")
    assert widget.spectrum_image is image
    assert widget.source.count() == 2
    widget.source.setCurrentIndex(1)
    assert widget.spectrum_image.shape == (75, 100)
    wait_loaded(widget, qtbot)
    assert widget.plot.spectra[sw.MEAN_KEY].shape == (2048,)
    viewer.layers.clear()
    assert widget.spectrum_image is None and widget.source.count() == 0


@pytest.mark.gui
def test_cursor_spectrum_follows_the_mouse_and_is_computed_once_per_pixel(
    sample_viewer, monkeypatch
):
    viewer, widget = sample_viewer
    image = _sample_image(viewer)
    counts = np.asarray(image.counts)
    calls = []
    original = sw.neighbourhood_mean
    monkeypatch.setattr(
        sw, "neighbourhood_mean", lambda *a, **k: calls.append(a[1:]) or original(*a, **k)
    )
    size = image.pixel_size_um
    callback = viewer.mouse_move_callbacks[-1]
    event = SimpleNamespace(position=(0.5, 40 * size, 70 * size))  # (energy, y, x) world
    callback(viewer, event)
    callback(viewer, SimpleNamespace(position=(0.9, 40.2 * size, 69.9 * size)))  # same pixel
    assert widget.cursor_pixel == (40, 70)
    assert calls == [(40, 70)]
    np.testing.assert_allclose(widget.cursor_spectrum, counts[39:42, 69:72].mean(axis=(0, 1)))
    assert any(key.startswith(sw.CURSOR_KEY) for key in widget.plot.spectra)
    callback(viewer, SimpleNamespace(position=(-5 * size, 3 * size)))  # outside the map
    assert widget.cursor_pixel == (40, 70)


@pytest.mark.gui
def test_phase_spectrum_of_the_selected_label(sample_viewer, qtbot):
    viewer, widget = sample_viewer
    truth = viewer.layers[TRUTH_LAYER_NAME]
    counts = np.asarray(_sample_image(viewer).counts)
    viewer.layers.selection.active = truth
    truth.selected_label = 2
    qtbot.waitUntil(lambda: widget.phase_spectrum is not None, timeout=HANG_MS)  # from a worker
    expected = counts[truth.data == 2].mean(axis=0)
    np.testing.assert_allclose(widget.phase_spectrum, expected)
    names = state.plugin_data(truth)["phase_names"]
    assert f"{sw.PHASE_KEY} 2: {names[1]}" in widget.plot.spectra


@pytest.mark.gui
def test_typed_elements_are_added_checked_and_unknown_ones_reported(sample_viewer):
    _, widget = sample_viewer
    widget.elements.set_suggestions(["O", "Si"])
    widget.elements.add_elements("fe, Xx")
    assert widget.selected_elements == ("O", "Si", "Fe")
    assert "Xx" in widget.elements.message.text()
    assert "Fe_Ka" in widget.plot.markers


@pytest.mark.gui
def test_add_element_maps_adds_one_layer_per_element(sample_viewer, qtbot):
    from napari_sigma.xray.image_fit import fitted_line_maps

    viewer, widget = sample_viewer
    widget.elements.set_suggestions(["Si", "Fe"])
    widget.add_maps.click()
    names = ["Si_Ka", "Fe_Ka"]
    title = state.spectrum_image_of(viewer.layers[TRUTH_LAYER_NAME]).title
    assert not widget.add_maps.isEnabled()  # busy while the worker runs
    qtbot.waitUntil(widget.add_maps.isEnabled, timeout=30000)
    assert widget.status.text().startswith("added 2 element maps"), widget.status.text()
    image = _sample_image(viewer)
    expected, _, _ = run_to_completion(
        fitted_line_maps(image.counts, image.energy, names, image.beam_energy)
    )
    for index, name in enumerate(names):
        layer = viewer.layers[f"{title} {name}"]
        assert np.all(layer.data >= 0)  # fitted maps, never negative
        np.testing.assert_allclose(layer.data, expected[..., index], rtol=1e-5, atol=1e-3)
        assert str(layer.units[-1]) in {"micrometer", "µm"}


@pytest.mark.gui
def test_suggested_elements_of_p45_are_pre_checked_in_a_docked_widget(plugin_viewer, dock, qtbot):
    from napari_sigma.xray.elements import suggest_elements

    viewer = plugin_viewer
    viewer.open(str(P45), plugin="napari-sigma-eds")
    widget = dock(viewer, "Spectrum and elements")
    assert widget.selected_elements == ()  # suggested in a worker: docking does not wait for it
    wait_loaded(widget, qtbot)
    suggested = tuple(s.element for s in suggest_elements(widget.spectrum_image.sum_spectrum()))
    assert widget.selected_elements[: len(suggested)] == suggested
    assert {"O", "Na", "Al", "Si", "K"} <= set(widget.selected_elements)


@pytest.mark.gui
def test_a_canvas_deleted_before_its_idle_draw_raises_nothing(qtbot):
    from napari_sigma._napari.plotting import PlotCanvas

    plot = SpectrumPlot()
    plot.set_spectra(np.linspace(0, 10, 11), {"a": np.ones(11)})  # schedules an idle draw
    plot.deleteLater()  # the dock closes before Qt runs the idle draw
    qtbot.wait(50)  # pytest-qt fails the test if a callback raised

    canvas = PlotCanvas()
    qtbot.addWidget(canvas)
    errors = []
    hook = sys.excepthook
    canvas.figure.draw = lambda renderer: (_ for _ in ()).throw(ValueError("bad figure"))
    sys.excepthook = lambda *info: errors.append(info[1])
    try:
        canvas.draw()  # rendered in the plot thread; the error reaches the main thread's hook
        assert canvas.wait_rendered()
    finally:
        sys.excepthook = hook
    assert [str(e) for e in errors] == ["bad figure"]  # reported, not printed and swallowed


@pytest.mark.gui
def test_a_renamed_phase_is_renamed_in_the_spectrum_legend(sample_viewer, qtbot):
    from napari_sigma._napari.results import phases_layer_data

    viewer, widget = sample_viewer
    truth = viewer.layers[TRUTH_LAYER_NAME]
    result = SimpleNamespace(
        image=_sample_image(viewer), labels=np.asarray(truth.data), phase_names=["P1", "P2"]
    )
    data, kwargs = phases_layer_data(result, "phases (sample)")
    phases = viewer.add_labels(data, **kwargs)
    viewer.layers.selection.active = phases
    phases.selected_label = 2
    qtbot.waitUntil(lambda: f"{sw.PHASE_KEY} 2: P2" in widget.plot.spectra, timeout=30_000)
    state.plugin_data(phases)["phases"].rename(2, "quartz")
    assert f"{sw.PHASE_KEY} 2: quartz" in widget.plot.spectra


@pytest.mark.gui
def test_line_labels_are_staggered_and_thinned_until_zoomed(qtbot):
    from napari_sigma._napari.plotting import place_line_labels

    plot = SpectrumPlot()
    qtbot.addWidget(plot)
    plot.resize(500, 300)
    plot.show()
    lines = {f"L{i}": 0.5 + 0.02 * i for i in range(20)}  # 20 lines within 0.4 keV
    plot.set_spectra(np.linspace(0, 20, 2001), {"a": np.ones(2001)})
    plot.set_markers(lines)
    plot.flush()
    assert plot.canvas.wait_rendered()
    axes = plot.canvas.axes
    shown = [t for t in plot._labels if t.get_visible()]
    assert 1 <= len(shown) <= 6  # ~10 px per label: most are hidden at 0-20 keV
    assert len({t.get_position()[1] for t in shown}) > 1  # staggered over several heights
    axes.set_xlim(0.45, 0.95)  # zoomed in: every label fits
    assert place_line_labels(axes, plot._labels) == len(lines)


@pytest.mark.gui
def test_no_second_pass_over_the_cube_while_the_phases_widget_computes_phase_spectra(
    sample_viewer, qtbot, monkeypatch
):
    from napari_sigma._napari.results import phases_layer_data

    viewer, widget = sample_viewer
    image = _sample_image(viewer)
    labels = np.asarray(viewer.layers[TRUTH_LAYER_NAME].data)
    result = SimpleNamespace(image=image, labels=labels, phase_names=["P1", "P2"])
    data, kwargs = phases_layer_data(result, "phases (sample)")
    passes = []
    monkeypatch.setattr(sw, "masked_mean", lambda *args: passes.append(args))
    kwargs["metadata"][state.KEY][state.PHASE_SPECTRA_PENDING] = True  # a Phases widget's worker
    phases = viewer.add_labels(data, **kwargs)
    viewer.layers.selection.active = phases
    phases.selected_label = 2
    qtbot.wait(200)
    assert passes == [] and widget.phase_spectrum is None
    n = image.energy.size
    table = SimpleNamespace(
        phase_ids=np.array([1, 2]),
        pixels=np.array([5, 7]),
        mean_spectra=np.ones((2, n)) * [[1], [2]],
    )
    state.set_phase_spectra(phases, image.energy.energies, table)  # the sums are ready
    np.testing.assert_allclose(widget.phase_spectrum, 2.0)
    assert not state.phase_spectra_pending(phases) and passes == []


# a suggestion that ends only when its caller cancels it (no sleep, no timing): the widget's
# close and napari's exit must cancel it, not wait for it
BLOCKED_SUGGESTION = """
def blocked_until_cancelled(spectrum):
    from napari_sigma.compute import cancel
    running.set()
    cancel.current().wait(HANG_S)
    try:
        cancel.checkpoint()
    except cancel.Cancelled:
        ended.append("cancelled")
        raise
    ended.append("not cancelled")
    return []
"""


def test_a_script_that_closes_the_viewer_while_the_suggestion_runs_exits_cleanly(tmp_path):
    """The Spectrum widget's sum/suggestion worker outlived viewer.close(): at exit it emitted on
    a Qt object PyQt had deleted and the process aborted (exit 134); then Python waited for it
    (10 s at most: under load the suggestion outlasted it, qa20). napari's exit now cancels it:
    here a suggestion that can only end by a cancel."""
    import subprocess
    import sys

    script = tmp_path / "close_early.py"
    script.write_text(
        "import atexit, threading\n"
        "import napari\n"
        "from napari_sigma._napari import spectrum_widget as sw\n"
        "from napari_sigma._napari.layers import spectrum_image_layers\n"
        "from napari_sigma._napari.spectrum_widget import SpectrumWidget\n"
        "from napari_sigma.synthetic.generator import make_synthetic\n"
        f"HANG_S = {HANG_MS / 1000}\n"
        "running, ended = threading.Event(), []\n"
        f"{BLOCKED_SUGGESTION}\n"
        "sw._suggestions = blocked_until_cancelled\n"
        "atexit.register(lambda: print('suggestion:', *ended))  # runs after the plugin's waits\n"
        "viewer = napari.Viewer(show=False)\n"
        "image = make_synthetic(seed=0, shape=(128, 128), n_channels=2048).image\n"
        "for data, kwargs, kind in spectrum_image_layers(image):\n"
        "    getattr(viewer, f'add_{kind}')(data, **kwargs)\n"
        "viewer.window.add_dock_widget(SpectrumWidget(viewer))\n"
        "assert running.wait(HANG_S)\n"
        "viewer.close()\n"
    )
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "has been deleted" not in done.stderr
    assert "suggestion: cancelled" in done.stdout, (done.stdout, done.stderr[-2000:])


@pytest.mark.gui
def test_closing_the_viewer_cancels_the_spectrum_tab_s_suggestion(plugin_viewer, dock, qtbot):
    """The viewer closed while the element suggestion runs: it stops (cancelled at its next
    fit), nothing waits for it."""
    namespace = {"HANG_S": HANG_MS / 1000, "running": __import__("threading").Event(), "ended": []}
    exec(BLOCKED_SUGGESTION, namespace)
    viewer = plugin_viewer
    viewer.open_sample("napari-sigma-eds", "synthetic")
    original = sw._suggestions
    sw._suggestions = namespace["blocked_until_cancelled"]
    try:
        widget = dock(viewer, "Spectrum and elements")
        assert namespace["running"].wait(HANG_MS / 1000)
        assert widget.loading
        viewer.close()
        qtbot.waitUntil(lambda: bool(namespace["ended"]), timeout=HANG_MS)
    finally:
        sw._suggestions = original
    assert namespace["ended"] == ["cancelled"]


@pytest.mark.gui
def test_choosing_another_source_cancels_the_previous_suggestion(sample_viewer, qtbot):
    viewer, widget = sample_viewer
    namespace = {"HANG_S": HANG_MS / 1000, "running": __import__("threading").Event(), "ended": []}
    exec(BLOCKED_SUGGESTION, namespace)
    original = sw._suggestions
    sw._suggestions = namespace["blocked_until_cancelled"]
    try:
        viewer.open_sample("napari-sigma-eds", "synthetic")  # a second spectrum image
        qtbot.waitUntil(lambda: widget.source.count() == 2, timeout=HANG_MS)
        widget.source.setCurrentIndex(1 - widget.source.currentIndex())
        assert namespace["running"].wait(HANG_MS / 1000)
        sw._suggestions = original
        widget.source.setCurrentIndex(1 - widget.source.currentIndex())  # back: cancels it
        qtbot.waitUntil(lambda: bool(namespace["ended"]), timeout=HANG_MS)
        wait_loaded(widget, qtbot)
    finally:
        sw._suggestions = original
    assert namespace["ended"] == ["cancelled"]
    assert "could not read" not in widget.status.text()  # a cancel is no failure


@pytest.mark.gui
def test_the_pre_checked_elements_are_those_the_cli_analyses(plugin_viewer, dock, qtbot):
    # test_TEM.bcf lists Cu, O, Pd, Ti; its spectrum shows Si (its strongest peak) and N: the
    # Spectrum tab pre-checks what `napari-sigma run` analyses (choose_lines), no more, no less.
    import warnings

    from napari_sigma.pipeline.analysis import AnalysisSettings, choose_lines

    viewer = plugin_viewer
    viewer.open(str(DATA / "bruker" / "test_TEM.bcf"), plugin="napari-sigma-eds")
    widget = dock(viewer, "Spectrum and elements")
    wait_loaded(widget, qtbot)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lines = choose_lines(widget.spectrum_image, AnalysisSettings())
    assert widget.selected_elements == tuple(name.partition("_")[0] for name in lines)
    assert widget.selected_elements == ("Cu", "O", "Pd", "Ti", "Si", "N")
    assert widget.elements_unedited


def test_a_velox_map_s_spectrum_is_scaled_to_its_x_ray_peaks_not_its_strobe(
    plugin_viewer, dock, qtbot
):
    """Test_SI_16x16_215_kx.emd through napari (qa20's session): the Velox strobe at 0 keV
    (9473 counts; the map's C Ka: 20) set the mean spectrum's range at 37 counts per pixel, the
    plot a flat line at the bottom. The zero-energy peak runs off the top now; C Ka's channel
    reaches at least a fifth of the height."""
    viewer = plugin_viewer
    viewer.open(str(DATA / "emd" / "Test_SI_16x16_215_kx.emd"), plugin="napari-sigma-eds")
    widget = dock(viewer, "Spectrum and elements")
    wait_loaded(widget, qtbot)
    plot = widget.plot
    plot.flush()
    assert plot.canvas.wait_rendered()
    low, high = plot.canvas.axes.get_ylim()
    energies = widget.spectrum_image.energy.energies
    mean = widget._mean
    carbon = mean[np.abs(energies - 0.277) < 0.03].max()
    assert mean[energies < 0.05].max() > 10 * high  # the strobe runs off the top
    assert carbon > 0.2 * (high - low), (carbon, high)
