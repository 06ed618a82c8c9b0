"""The Phase analysis widget: a run on a tiny synthetic sample, Abort, errors, and Export."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from napari.layers import Layer
from waits import HANG_MS

from napari_sigma._napari import state
from napari_sigma._napari.analysis_widget import AnalysisWidget, format_progress
from napari_sigma._napari.layers import spectrum_image_layers
from napari_sigma._napari.phases_widget import PhasesWidget
from napari_sigma.compute.progress import Progress
from napari_sigma.io.results.export import read_labels_tiff
from napari_sigma.pipeline.settings import parse_names as parse_list
from napari_sigma.pipeline.settings import parse_phases

RUN_TIMEOUT_MS = 60_000


def test_parsing_of_the_text_fields():
    assert parse_list("auto") is None and parse_list(" ") is None
    assert parse_list("Fe, Si;O") == ("Fe", "Si", "O")
    assert parse_phases("Auto") == "auto" and parse_phases(" 4 ") == 4
    with pytest.raises(ValueError):
        parse_phases("many")
    with pytest.raises(ValueError):
        parse_phases("0")
    report = Progress("latent", 3, 20, "epoch 3/20", loss=0.0123)
    assert format_progress(report) == "latent: epoch 3/20 loss 0.0123"


@pytest.fixture(scope="module")
def sample():
    from napari_sigma.synthetic.generator import make_synthetic

    return make_synthetic(
        seed=0,
        shape=(40, 40),
        n_channels=1024,
        phases=("quartz", "magnetite", "albite"),
        grain_size=12.0,
        title="tiny",
    )


@pytest.fixture
def viewer_with_sample(plugin_viewer, dock, sample):
    viewer = plugin_viewer
    for data, kwargs, kind in spectrum_image_layers(sample.image):
        viewer.add_layer(Layer.create(data, kwargs, kind))
    widget = dock(viewer, "Phase analysis")
    assert isinstance(widget, AnalysisWidget)
    return viewer, widget


def set_fast_settings(widget, epochs: int = 3) -> None:
    widget.form.elements.value = "O,Si,Fe,Al,Na"
    widget.form.epochs.value = epochs
    widget.form.phases.value = "3"
    widget.form.device.value = "cpu"


@pytest.mark.gui
def test_form_defaults_follow_the_preset_and_the_source(viewer_with_sample, sample):
    _, widget = viewer_with_sample
    assert state.spectrum_image_of(widget.form.source.value) is sample.image
    widget.form.preset.value = "sigma"
    assert widget.form.binning.value == 2 and widget.form.normalisation.value == "sigma"
    set_fast_settings(widget, epochs=7)
    settings = widget.settings()
    assert settings.elements == ("O", "Si", "Fe", "Al", "Na") and settings.lines is None
    assert settings.latent.epochs == 7 and settings.clustering.n_phases == 3
    assert settings.bin_factor == 2 and settings.device == "cpu"
    widget.form.elements.value = "Fe_Ka, Si_Ka"
    assert widget.settings().lines == ("Fe_Ka", "Si_Ka")
    assert widget.settings().phase_finding.split is not None  # on by default
    widget.form.split.value = False
    assert widget.settings().phase_finding.split is None
    widget.form.split.value = True
    assert widget.settings().phase_finding.split is not None
    assert widget.settings().coating == ()  # no coat unless the user says so
    widget.form.coating.value = True
    assert widget.settings().coating == ("C",)


@pytest.mark.gui
def test_what_is_alive_when_a_run_starts_is_out_of_its_collections_reach(viewer_with_sample, qtbot):
    """A full collection in the analysis worker traversed every object not frozen (38-103 ms
    with the GIL held in JEOL runs); Run freezes what is alive first (the layers remembered, to
    be given back when removed)."""
    import gc

    from napari_sigma._napari import preload

    viewer, widget = viewer_with_sample
    set_fast_settings(widget)
    alive = [[]]
    alive[0].append(alive)  # a reference cycle made before the run
    assert any(o is alive for o in gc.get_objects())
    widget.run()
    assert not any(o is alive for o in gc.get_objects())  # frozen: not traversed
    assert all(layer in preload._frozen_layers for layer in viewer.layers)
    qtbot.waitUntil(lambda: widget.worker is None, timeout=RUN_TIMEOUT_MS)


@pytest.mark.gui
def test_a_result_is_frozen_once_its_layers_are_in_and_freed_when_they_are_deleted(
    viewer_with_sample, qtbot
):
    """Run froze what was alive before it, not what the result adds: every later full
    collection (37-53 ms in napari's main thread at each export, JEOL) traversed the result's
    objects. Once the result's layers are in, they are frozen too; deleting them gives them
    back to the collector: the result's memory comes back (its layers are collected)."""
    import gc
    import weakref

    from napari_sigma._napari import preload

    viewer, widget = viewer_with_sample
    set_fast_settings(widget)
    widget.run()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=RUN_TIMEOUT_MS)
    added = [widget.last_layers.phases, *widget.last_layers.components]
    assert added and all(layer in viewer.layers for layer in added)
    assert all(layer in preload._frozen_layers for layer in added)
    tracked = {id(o) for o in gc.get_objects()}
    assert not any(id(layer) in tracked for layer in added)  # frozen: not traversed
    alive = [weakref.ref(layer) for layer in added]
    del added, tracked
    viewer.layers.clear()
    qtbot.wait(100)  # the thaw's collection runs at the next turn of the event loop
    assert widget.last_layers is None
    gc.collect()
    assert [ref() for ref in alive] == [None] * len(alive)


@pytest.mark.gui
def test_the_run_s_summary_is_shown_with_the_result_s_repaint(
    viewer_with_sample, qtbot, monkeypatch
):
    """The summary (bar at 100, the label, the alternatives, the phases layer selected, the
    Phases tab) was a second compose right after the result's repaint; it is now the adding's
    ``before_repaint``: its changes are painted with the result, and shown once."""
    from napari_sigma._napari import analysis_widget

    viewer, widget = viewer_with_sample
    set_fast_settings(widget)
    given, summaries = [], []
    real_adding = analysis_widget.add_result_layers_stepwise

    def adding(*args, **kwargs):
        given.append(kwargs.get("before_repaint"))
        return real_adding(*args, **kwargs)

    monkeypatch.setattr(analysis_widget, "add_result_layers_stepwise", adding)
    real_summary = widget._show_summary
    monkeypatch.setattr(widget, "_show_summary", lambda r: summaries.append(r) or real_summary(r))
    widget.run()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=RUN_TIMEOUT_MS)
    assert len(given) == 1 and callable(given[0])
    assert len(summaries) == 1 and widget.progress_label.text().startswith("done: ")
    assert viewer.layers.selection.active is widget.last_layers.phases


@pytest.mark.gui
def test_run_adds_layers_then_a_second_run_never_touches_them(
    viewer_with_sample, dock, qtbot, tmp_path
):
    viewer, widget = viewer_with_sample
    set_fast_settings(widget)
    n_before = len(viewer.layers)
    reports = []
    worker = widget.run()
    worker.yielded.connect(reports.append)
    qtbot.waitUntil(lambda: widget.worker is None, timeout=RUN_TIMEOUT_MS)
    first = widget.last_layers
    result = state.result_of(first.phases)
    assert first.phases.name == "phases (tiny)"
    assert len(viewer.layers) == n_before + 2  # the phases and one layer of all components
    assert [c.name for c in first.components] == ["components (tiny)"]
    assert first.components[0].data.shape[0] == result.components.shape[0]
    np.testing.assert_array_equal(first.phases.data, result.labels)
    assert result.n_phases == 3 and set(np.unique(first.phases.data)) == {1, 2, 3}
    assert [p.name for p in state.plugin_data(first.phases)["phases"]] == result.phase_names
    assert widget.progress_label.text() == f"done: {result.phase_choice()}"
    assert widget.progress_label.text().startswith("done: given: 3 phases; next ")
    assert widget.form.run.enabled and not widget.form.abort.enabled
    # the alternatives are one click away
    assert widget.alternatives.count() == len(result.alternatives) > 0
    assert "BIC" in widget.progress_label.toolTip()

    # an edit through the Phases widget, then Export writes the edited labels
    phases = dock(viewer, "Phases")
    assert isinstance(phases, PhasesWidget)
    assert phases.layer is first.phases
    phases.merge_selected([1, 2])
    phases.rename(1, "merged grains")
    edited = np.array(first.phases.data, copy=True)
    written = phases.export_to(tmp_path)
    assert written["phases"] == tmp_path / "phases.tif"
    exported, _ = read_labels_tiff(tmp_path / "phases.tif")
    np.testing.assert_array_equal(exported, edited)
    assert "merged grains" in (tmp_path / "phase_stats.csv").read_text()
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["phase_ids"] == [1, 3] and run["phase_names"][0] == "merged grains"
    assert run["edits"]["removed_phases"] == [2]
    assert run["edits"]["renamed"]["1"][1] == "merged grains"
    assert run["edits"]["pixels_relabelled"] == int((result.labels == 2).sum())
    # the Phases tab's running sums stood in for the export's pass over the cube: exact, and
    # the same files as an export that sums the cube (the same code without them)
    assert_running_sums_make_the_same_export(phases, result, edited, tmp_path)

    widget.run()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=RUN_TIMEOUT_MS)
    assert widget.last_layers.phases.name == "phases (tiny) [2]"
    np.testing.assert_array_equal(first.phases.data, edited)  # the edited layer is untouched


def assert_running_sums_make_the_same_export(phases, result, edited, tmp_path):
    from napari_sigma._napari import phases_widget
    from napari_sigma.io.results import export
    from napari_sigma.phases.spectra import phase_sum_spectra

    sums = phases._export_sums(edited)
    fresh = phase_sum_spectra(result.image.counts, edited, int(edited.max()))
    assert sums is not None and sums.dtype == np.float64
    np.testing.assert_array_equal(sums, fresh)  # exact: integer counts
    given, real = [], export.phase_table_steps

    def table_steps(*args, **kwargs):
        given.append(kwargs.get("sum_spectra"))
        return real(*args, **kwargs)

    export.phase_table_steps, written = table_steps, {}
    try:
        for name, known in (("running", sums), ("summed", None)):
            out = tmp_path / name
            names = phases._export_labels_and_names()[1]
            written[name] = phases_widget._export(result, out, edited, names, known)
    finally:
        export.phase_table_steps = real
    # the first made its table from the sums; the second summed the cube (in the child here)
    assert given[0] is sums and all(known is None for known in given[1:])
    assert written["running"].keys() == written["summed"].keys()
    for key, path in written["running"].items():
        assert path.read_bytes() == written["summed"][key].read_bytes(), key


@pytest.mark.gui
def test_abort_during_training_adds_nothing_and_stops_within_a_second(viewer_with_sample, qtbot):
    viewer, widget = viewer_with_sample
    set_fast_settings(widget, epochs=5000)
    names = [layer.name for layer in viewer.layers]
    aborted_at = []

    def abort_in_training(report):
        if report.stage == "latent" and not aborted_at:
            aborted_at.append(time.process_time())
            widget.abort()

    worker = widget.run()
    worker.yielded.connect(abort_in_training)
    qtbot.waitUntil(lambda: widget.worker is None, timeout=RUN_TIMEOUT_MS)
    # the work after the abort, as this process's CPU (the wall clock is the machine's load):
    # the 5000 epochs not stopped would be minutes of it
    assert aborted_at and time.process_time() - aborted_at[0] < 2.0
    assert [layer.name for layer in viewer.layers] == names
    assert widget.progress_label.text() == "aborted"
    assert widget.form.run.enabled


@pytest.mark.gui
def test_an_abort_empties_the_bar(viewer_with_sample, qtbot):
    # qa24's walk: Abort right after "features: line intensities 1/1" left "100%" beside
    # "aborted" (the Phenom file; 50% on JEOL's): the bar showed the last step's fraction
    viewer, widget = viewer_with_sample
    set_fast_settings(widget, epochs=5000)  # long enough for the bar to move before the abort
    names = [layer.name for layer in viewer.layers]
    shown = []

    def abort_once_the_bar_moved(value):
        if value > 0 and not shown:
            shown.append(value)
            widget.abort()

    widget.progress_bar.valueChanged.connect(abort_once_the_bar_moved)
    widget.run()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=RUN_TIMEOUT_MS)
    assert shown and widget.progress_label.text() == "aborted"
    assert widget.progress_bar.value() == 0
    assert [layer.name for layer in viewer.layers] == names


@pytest.mark.gui
def test_errors_become_notifications_and_add_nothing(viewer_with_sample, qtbot, monkeypatch):
    import napari.utils.notifications as notifications

    viewer, widget = viewer_with_sample
    messages = []
    monkeypatch.setattr(notifications, "show_error", messages.append)
    names = [layer.name for layer in viewer.layers]
    widget.form.phases.value = "many"
    assert widget.run() is None
    assert "invalid settings" in messages[-1]
    set_fast_settings(widget)
    widget.form.elements.value = "Qq"  # no such element: the worker fails
    widget.run()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=RUN_TIMEOUT_MS)
    assert "Phase analysis failed" in messages[-1] and "Qq" in messages[-1]
    assert [layer.name for layer in viewer.layers] == names


@pytest.mark.gui
def test_a_failure_s_reason_reads_whole_in_the_dock(viewer_with_sample, qtbot, monkeypatch):
    """SI_empty_selection.emd through napari (a user's session, seventeenth): the dock's line
    read "failed: /work/shared/data/eds/emd/SI_empty_selection.emd: nearly" (the reason cut
    at the dock's edge; the notification went away). The file's name, the reason wrapped in
    the dock's width, the whole text in the tooltip; the next run's progress is one line."""
    import napari.utils.notifications as notifications

    from napari_sigma.errors import AnalysisError

    _, widget = viewer_with_sample
    toasts = []
    monkeypatch.setattr(notifications, "show_error", toasts.append)
    widget.window().resize(460, 900)
    widget.window().show()
    path = "/work/shared/data/eds/emd/SI_empty_selection.emd"
    reason = (
        "nearly empty (72 counts in 320 pixels, 0.23 per pixel; at least 0.5 per pixel are needed)"
    )
    widget._on_error(AnalysisError(f"{path}: {reason}"))
    label = widget.progress_label
    assert label.text() == f"failed: SI_empty_selection.emd: {reason}"
    assert label.toolTip() == f"failed: {path}: {reason}"
    # the toast says the reason, not the plugin's class name before it ("AnalysisError: ...")
    assert toasts == [f"Phase analysis failed: {path}: {reason}"]
    qtbot.waitUntil(lambda: label.height() >= label.heightForWidth(label.width()), timeout=HANG_MS)
    assert label.wordWrap() and label.fontMetrics().horizontalAdvance(label.text()) > label.width()


@pytest.mark.gui
@pytest.mark.parametrize("when", ["at the first report", "during training"])
def test_deleting_the_source_layers_during_a_run_cancels_it(
    viewer_with_sample, qtbot, monkeypatch, when
):
    import napari.utils.notifications as notifications

    viewer, widget = viewer_with_sample
    set_fast_settings(widget, epochs=5000 if when == "during training" else 3)
    warnings = []
    monkeypatch.setattr(notifications, "show_warning", warnings.append)

    def delete_sources(report):
        if len(viewer.layers) and (when != "during training" or report.stage == "latent"):
            viewer.layers.clear()

    worker = widget.run()
    worker.yielded.connect(delete_sources)
    qtbot.waitUntil(lambda: widget.worker is None, timeout=RUN_TIMEOUT_MS)
    assert len(viewer.layers) == 0 and widget.last_layers is None
    assert warnings and "cancelled" in warnings[0], warnings
    assert widget.progress_label.text().startswith("cancelled")
    viewer.add_image(np.zeros((8, 8)))  # napari is up and draws
    viewer.window._qt_viewer.canvas.native.update()
    qtbot.wait(50)
    assert widget.form.run.enabled


@pytest.mark.gui
def test_closing_the_viewer_during_training_stops_the_worker(viewer_with_sample, qtbot):
    viewer, widget = viewer_with_sample
    set_fast_settings(widget, epochs=5000)
    worker = widget.run()
    finished = []
    worker.finished.connect(lambda: finished.append(True))

    def close_viewer(report):
        if report.stage == "latent" and not finished:
            viewer.close()
            finished.append(False)

    worker.yielded.connect(close_viewer)
    qtbot.waitUntil(lambda: finished[-1:] == [True], timeout=RUN_TIMEOUT_MS)  # not 5000 epochs
    assert len(viewer.layers) == 0  # closing removed them; the run added nothing


def test_a_progress_report_is_painted_with_the_window_s_next_repaint(plugin_viewer, dock, qtbot):
    """Qt's QProgressBar.setValue repaints the bar at once when its text changes: inside the
    slot, with napari's OpenGL canvas in the window, a whole-window compose holding the GIL,
    then a second one for the label at the next repaint. The bar now paints with the label."""
    from qtpy.QtCore import QEvent, QObject

    from napari_sigma.compute.progress import Progress

    widget = dock(plugin_viewer, "Phase analysis")
    plugin_viewer.window._qt_window.show()
    qtbot.waitUntil(widget.progress_bar.isVisible, timeout=HANG_MS)
    qtbot.wait(100)
    paints = []

    class Paints(QObject):
        def eventFilter(self, obj, event):
            if event.type() == QEvent.Type.Paint:
                paints.append(inside[0])
            return False

    inside = [False]
    counter = Paints()
    widget.progress_bar.installEventFilter(counter)
    widget.worker = object()  # as while a run is going
    try:
        for fraction, step in ((0.37, 37), (0.81, 81)):
            widget._pending_progress = Progress("features", step, 100, f"block {step}/100")
            inside[0] = True
            widget._show_pending_progress()
            inside[0] = False
            assert widget.progress_bar.value() == round(100 * fraction)
            qtbot.waitUntil(lambda: len(paints) > 0, timeout=HANG_MS)
            assert paints and not any(paints), paints  # painted, never inside the slot
            paints.clear()
        widget._end_progress()
    finally:
        widget.worker = None
        widget.progress_bar.removeEventFilter(counter)


def test_progress_is_shown_at_most_every_interval(plugin_viewer, dock, qtbot):
    """A burst of progress reports repaints the bar twice (the first at once, the latest after
    the interval), not once per report: each repaint composes napari's whole window."""
    from napari_sigma._napari.analysis_widget import PROGRESS_INTERVAL_MS
    from napari_sigma.compute.progress import Progress

    widget = dock(plugin_viewer, "Phase analysis")
    widget.worker = object()  # as while a run is going
    shown = []
    widget.progress_bar.valueChanged.connect(shown.append)
    for step in range(1, 51):
        widget._on_progress(Progress("features", step, 50, f"block {step}/50"))
    assert shown == [2] and widget.progress_label.text().endswith("block 1/50")
    qtbot.waitUntil(lambda: shown[-1] == 100, timeout=HANG_MS)
    assert shown == [2, 100] and widget.progress_label.text().endswith("block 50/50")
    widget._on_progress(Progress("features", 1, 2))  # within the interval: pending
    widget._end_progress()  # the run ended: the pending report is dropped
    qtbot.wait(2 * PROGRESS_INTERVAL_MS)
    assert shown == [2, 100]
    widget.worker = None
