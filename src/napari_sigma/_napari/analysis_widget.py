"""The Phase analysis dock widget: settings form, Run/Abort, progress, results as layers.

The form is a magicgui Container. Run starts :func:`napari_sigma.pipeline.analysis.analyse` in a napari
generator ``thread_worker`` (created unstarted, signals connected, then started in a low-priority
thread of the plugin's pool, :func:`napari_sigma._napari.threads.start`); every yielded
:class:`~napari_sigma.compute.progress.Progress` updates the bar and its label; layers are only added
when the worker returns, so Abort (``worker.quit()``, honoured at the next yield) leaves nothing
half-made. Failures become a napari error notification.

Deleting the analysed layers during a run cancels it (a warning says so; a result that arrives anyway
is discarded), and closing the viewer or the dock stops the worker at its next progress report: the
worker's signals reach only a live widget.
"""

from __future__ import annotations

import re
from typing import Any

from magicgui.widgets import CheckBox, ComboBox, Container, LineEdit, PushButton, SpinBox
from qtpy.QtWidgets import (
    QComboBox,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from napari_sigma._napari import state, threads
from napari_sigma._napari.results import ResultLayers, add_result_layers_stepwise
from napari_sigma._napari.viewer_widget import ViewerWidget

SOURCE_ROLES = ("total", "image", "cube")
AUTO = "auto"
PROGRESS_INTERVAL_MS = 250


def format_progress(report: Any) -> str:
    """``"latent: epoch 3/20 loss 0.012"`` from a Progress."""
    text = f"{report.stage}: {report.message or f'{report.step}/{report.total}'}"
    if report.loss is not None:
        text += f" loss {report.loss:.3g}"
    return text


# an absolute path (at the start of a word): its file's name is group 1
_PATH = re.compile(r"(?<![^\s'\"(\[=])(?:[A-Za-z]:)?[/\\](?:[^\s/\\:]+[/\\])+([^\s/\\:'\")\]]+)")


def shorten_paths(text: str) -> str:
    """``text`` with every absolute path replaced by its file's name (a dock's line)."""
    return _PATH.sub(r"\1", text)


def _reason(error: BaseException) -> str:
    """An error's line for a user: the plugin's own errors say what is wrong with the data or
    the settings ("AnalysisError: ... nearly empty" named a class in front of it); anything
    else keeps its type, the start of a bug report."""
    from napari_sigma.errors import SigmaError

    return str(error) if isinstance(error, SigmaError) else f"{type(error).__name__}: {error}"


class AnalysisWidget(ViewerWidget):
    """Dock widget that runs the phase analysis on a spectrum image layer.

    Parameters: those of `ViewerWidget`.
    """

    def __init__(self, napari_viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(napari_viewer, parent)
        self.worker: Any = None
        self.last_layers: ResultLayers | None = None
        self.last_result_callback: Any = None  # called after a run's layers were added
        self.adding = False  # a result's layers are being added, one per event-loop turn
        self._adding_layers: ResultLayers | None = None
        self._summary_shown = False  # the adding result's summary is shown
        self._finish_when_added = False
        self._run_image: Any = None  # the SpectrumImage of the running analysis
        self._cancelled = ""  # why the running analysis was cancelled ("" if it was not)
        self.form = self._build_form()
        self.progress_bar = QProgressBar(self)
        self.progress_bar.setRange(0, 100)
        self.progress_label = QLabel("", self)
        # progress reports are shown at most every PROGRESS_INTERVAL_MS: each change of the bar
        # repaints napari's whole window (a software-GL compose, slow while the run loads the CPU)
        from qtpy.QtCore import QTimer

        self._progress_timer = QTimer(self)
        self._progress_timer.setSingleShot(True)
        self._progress_timer.setInterval(PROGRESS_INTERVAL_MS)
        self._progress_timer.timeout.connect(self._show_pending_progress)
        self._pending_progress: Any = None
        layout = QVBoxLayout(self)
        layout.addWidget(self.form.native)
        layout.addWidget(self.progress_bar)
        layout.addWidget(self.progress_label)
        self.alternatives = QComboBox(self)
        self.alternatives.setToolTip("Numbers of phases worth trying (the model-selection curve)")
        self.rerun_button = QPushButton("Re-run with this number of phases", self)
        self.rerun_button.clicked.connect(self.rerun_with_alternative)
        layout.addWidget(self.alternatives)
        layout.addWidget(self.rerun_button)
        self._show_alternatives(())
        layout.addStretch()
        self.viewer.layers.events.inserted.connect(self._refresh_sources)
        self.viewer.layers.events.removed.connect(self._on_layer_removed)
        self._prefilled = AUTO
        self._prefilled_default = True
        self.form.source.changed.connect(self._prefill_elements)
        self.form.preset.changed.connect(self._apply_preset)
        self._apply_preset()
        self._refresh_sources()
        self._set_running(False)

    # -- form --------------------------------------------------------------------------------
    def _build_form(self) -> Container:
        widgets = [
            ComboBox(name="source", label="spectrum image", choices=self._source_choices),
            LineEdit(name="elements", label="elements", value=AUTO),
            ComboBox(name="preset", choices=["default", "sigma"], value="default"),
            SpinBox(name="binning", value=1, min=1, max=16),
            ComboBox(name="normalisation", choices=["poisson", "sigma", "none"], value="poisson"),
            ComboBox(name="latent_method", label="latent", choices=["ae", "pca", "umap"]),
            SpinBox(name="epochs", value=20, min=1, max=10000),
            LineEdit(name="phases", value=AUTO),
            CheckBox(
                name="split",
                text="split phases of two compositions",
                value=True,
                tooltip="Test every phase grain by grain for two close compositions "
                "(e.g. 1 wt% apart) and split it when they differ significantly",
            ),
            CheckBox(
                name="coating",
                text="carbon coated",
                value=False,
                tooltip="The sample carries a carbon coat or sits on a carbon film: a measured C "
                "that the coat can give is no evidence for a C-bearing mineral",
            ),
            SpinBox(name="seed", value=0, min=0, max=2**31 - 1),
            ComboBox(name="device", choices=["auto", "cpu", "cuda"], value="auto"),
            PushButton(name="run", text="Run"),
            PushButton(name="abort", text="Abort"),
        ]
        form = Container(widgets=widgets)
        form.run.changed.connect(self.run)
        form.abort.changed.connect(self.abort)
        return form

    def _source_choices(self, _widget: Any = None) -> list[tuple[str, Any]]:
        return [
            (layer.name, layer)
            for layer in self.viewer.layers
            if state.role_of(layer) in SOURCE_ROLES and state.spectrum_image_of(layer) is not None
        ]

    def _refresh_sources(self, *_: Any) -> None:
        self.form.source.reset_choices()
        self._prefill_elements()

    def _apply_preset(self, *_: Any) -> None:
        """Show the binning, normalisation, latent method and epochs of the chosen preset."""
        from napari_sigma.pipeline.settings import AnalysisSettings

        preset = AnalysisSettings.preset(self.form.preset.value)
        self.form.binning.value = preset.bin_factor
        self.form.normalisation.value = preset.features.normalisation
        self.form.latent_method.value = preset.latent.method
        self.form.epochs.value = preset.latent.epochs

    def _prefill_elements(self, *_: Any) -> None:
        """Elements from the docked Spectrum widget, else "auto" (the analysis chooses them)."""
        self._prefilled, self._prefilled_default = self._suggested_elements()
        self.form.elements.value = self._prefilled

    def _suggested_elements(self) -> tuple[str, bool]:
        """The elements field's default and whether it is the analysis's own default: the
        Spectrum widget's checked elements (its pre-checked default, untouched, is the same
        rule as "auto"), else "auto"."""
        for widget in self._docked_widgets():
            selected = getattr(widget, "selected_elements", None)
            if selected:
                selected = selected() if callable(selected) else selected
                return ",".join(selected), bool(getattr(widget, "elements_unedited", False))
        return AUTO, True

    def _docked_widgets(self) -> list[Any]:
        window = getattr(self.viewer, "window", None)
        try:
            return [w for w in window.dock_widgets.values() if w is not self]
        except (AttributeError, RuntimeError):
            return []

    def source_image(self) -> Any:
        """The SpectrumImage of the chosen source layer, or None."""
        layer = self.form.source.value
        return state.spectrum_image_of(layer) if layer is not None else None

    def settings(self) -> Any:
        """The :class:`~napari_sigma.pipeline.analysis.AnalysisSettings` the form describes."""
        from napari_sigma.pipeline.settings import settings_from_choices

        form = self.form
        elements = form.elements.value
        if elements == self._prefilled and self._prefilled_default:
            # the default, untouched: the analysis chooses the elements as the CLI does (the
            # same list, and each phase's spectrum may add elements to its quantification)
            elements = AUTO
        return settings_from_choices(
            form.preset.value,
            elements=elements,
            phases=form.phases.value,
            latent_method=form.latent_method.value,
            epochs=int(form.epochs.value),
            bin_factor=int(form.binning.value),
            normalisation=form.normalisation.value,
            split=bool(form.split.value),
            seed=int(form.seed.value),
            device=str(form.device.value),
            coating=("C",) if form.coating.value else (),
        )

    # -- running -----------------------------------------------------------------------------
    def run(self, *_: Any) -> Any:
        """Start the analysis in a worker thread; return the worker (None if it cannot start)."""
        from napari.utils.notifications import show_error

        if self.worker is not None:
            return None
        if self.form.elements.value == self._prefilled:  # not edited: follow the Spectrum widget
            self._prefill_elements()
        layer, image = self.form.source.value, self.source_image()
        if image is None:
            if not self.form.source.choices:  # e.g. a file of one spectrum: nothing to choose
                show_error(
                    "Phase analysis needs a spectrum image (a map with a spectrum per pixel); "
                    "no layer holds one (a single spectrum shows in the Spectrum tab)"
                )
            else:
                show_error("Phase analysis: choose a spectrum image layer first")
            return None
        try:
            settings = self.settings()
        except (ValueError, TypeError) as error:
            show_error(f"Phase analysis: invalid settings: {error}")
            return None
        from napari_sigma._napari import preload

        # torch's libraries loaded without the GIL, not by the worker; then napari's label
        # colouring compiled (for the result's first Labels layer), one after the other
        preload.start_compute()
        # what is alive now (napari, the dock, the label colouring compiled meanwhile, the
        # layers: remembered and given back to the collector when removed) out of the run's
        # full collections: the worker's traversed ~90 thousand such objects (38-103 ms with
        # the GIL held, JEOL, load 15-23)
        preload.freeze_long_lived()
        self.worker = self._make_worker(image, settings, title=layer.name)
        self._run_image, self._cancelled = image, ""
        self._set_running(True)
        self.progress_label.setWordWrap(False)  # a failure's reason wrapped; progress: one line
        self.progress_label.setToolTip("")
        self.progress_label.setText("starting")
        worker = self.worker
        self.destroyed.connect(lambda *_: worker.quit())  # the dock or the viewer closed
        threads.start(worker)  # a low-priority thread of the plugin's pool (see threads.py)
        return worker

    def _make_worker(self, image: Any, settings: Any, title: str) -> Any:
        from dataclasses import replace

        from napari.qt.threading import create_worker

        def steps() -> Any:
            from napari_sigma._napari import preload

            preload.wait_compute()  # torch imported by the preload thread, GIL-free dlopen first
            from napari_sigma.pipeline.analysis import analyse  # here, not in the main thread

            with threads.leave_a_core() as n:  # napari's drawing keeps a core (see threads.py)
                return (yield from analyse(image, replace(settings, cpu_threads=n)))

        running = steps()

        def computation() -> Any:
            return (yield from running)

        worker = create_worker(computation, _start_thread=False, _ignore_errors=True)
        # an aborted worker leaves its generator suspended, holding the run's arrays and its
        # thread limits until it is collected: close it (off the main thread)
        worker.aborted.connect(lambda: threads.close_in_background(running))
        worker.yielded.connect(self._on_progress)
        worker.returned.connect(lambda result: self._on_result(result, image, title))
        worker.errored.connect(self._on_error)
        worker.aborted.connect(self._on_aborted)
        worker.finished.connect(self._on_finished)
        return worker

    def abort(self, *_: Any) -> None:
        """Ask the running analysis to stop at its next progress report."""
        if self.worker is not None:
            self.progress_label.setText("aborting...")
            self.worker.quit()

    def _on_layer_removed(self, *_: Any) -> None:
        self._refresh_sources()
        last = self.last_layers
        if last is not None and not any(
            layer in self.viewer.layers for layer in (last.phases, *last.components)
        ):
            self.last_layers = None  # every layer of the last result deleted: its memory back
        if self.worker is not None and not self._cancelled and not self._run_source_present():
            from napari.utils.notifications import show_warning

            self._cancelled = "its spectrum image layers were deleted"
            self.progress_label.setText(f"cancelled: {self._cancelled}")
            show_warning(f"Phase analysis cancelled: {self._cancelled}")
            self.worker.quit()

    def _run_source_present(self) -> bool:
        return any(
            state.spectrum_image_of(layer) is self._run_image
            for layer in self.viewer.layers
            if state.role_of(layer) in SOURCE_ROLES
        )

    @state.alive_only
    def _on_progress(self, report: Any) -> None:
        if self._cancelled:
            return
        first = self._pending_progress is None and not self._progress_timer.isActive()
        self._pending_progress = report
        if first:  # the first report at once, then at most one per interval
            self._show_pending_progress()
            self._progress_timer.start()
        elif not self._progress_timer.isActive():
            self._progress_timer.start()

    def _show_pending_progress(self) -> None:
        report, self._pending_progress = self._pending_progress, None
        if report is None or self._cancelled or self.worker is None:
            return
        _set_bar_value(self.progress_bar, round(100 * report.fraction))
        self.progress_label.setText(format_progress(report))
        self._progress_timer.start()  # the next report waits for the interval

    def _end_progress(self) -> None:
        """No more progress reports are shown (the run ended: its final state is shown)."""
        self._progress_timer.stop()
        self._pending_progress = None

    def rerun_with_alternative(self, *_: Any) -> Any:
        """Run again with the number of phases chosen among the alternatives."""
        if self.alternatives.count() == 0:
            return None
        self.form.phases.value = str(self.alternatives.currentData())
        return self.run()

    def _show_alternatives(self, alternatives: tuple[int, ...], curve: str = "") -> None:
        self.alternatives.clear()
        for k in alternatives:
            self.alternatives.addItem(f"{k} phases", k)
        self.alternatives.setVisible(bool(alternatives))
        self.rerun_button.setVisible(bool(alternatives))
        self.progress_label.setToolTip(curve)

    @state.alive_only
    def _on_result(self, result: Any, image: Any, title: str) -> None:
        self._end_progress()
        if self._cancelled or not self._run_source_present():
            self._discard_result(self._cancelled or "its spectrum image layers were deleted")
            return
        self.adding = True
        self._summary_shown = False
        steps = add_result_layers_stepwise(
            self.viewer,
            result,
            title=_short_title(image, title),
            before_repaint=lambda: self._show_summary(result),
        )
        self._add_next_layer(steps, result, image)

    @state.alive_only
    def _add_next_layer(self, steps: Any, result: Any, image: Any) -> None:
        """Add the result's next layer; the next one at the next turn of Qt's event loop."""
        from qtpy.QtCore import QTimer

        if not any(
            state.spectrum_image_of(layer) is image
            for layer in self.viewer.layers
            if state.role_of(layer) in SOURCE_ROLES
        ):
            self._done_adding()
            self._discard_result("its spectrum image layers were deleted")
            return
        added = next(steps, None)
        if added is None:
            self._show_result(result)
            return
        self._adding_layers = added
        # 1 ms, not 0: a zero single shot is a posted event, run in the same pass of the event
        # loop before overdue timers and napari's paint (the pieces made one 0.45 s freeze)
        QTimer.singleShot(1, lambda: self._add_next_layer(steps, result, image))

    def _done_adding(self) -> None:
        self.adding = False
        self._adding_layers = None  # last_layers has them (a deleted result's memory comes back)
        if self._finish_when_added:
            self._finish_when_added = False
            self._on_finished()

    def _discard_result(self, reason: str) -> None:
        from napari.utils.notifications import show_warning

        self.progress_label.setText(f"result discarded: {reason}")
        show_warning(f"Phase analysis result discarded: {reason}")

    def _show_result(self, result: Any) -> None:
        """The result's layers are all added: its summary (if not shown with the result's
        repaint), the run ends."""
        if not self._summary_shown:
            self._show_summary(result)
        self.last_layers = self._adding_layers
        self._done_adding()
        from napari_sigma._napari import preload

        preload.freeze_result()  # out of every later full collection's reach

    def _show_summary(self, result: Any) -> None:
        """Select the phases layer, show the run's summary and the Phases tab: called by the
        adding in the turn just before the result's repaint, so that these widget changes are
        painted with the result (one compose: they were a second one right after it, 94-128 ms
        gaps at load 16, gui11b)."""
        self._summary_shown = True
        self.last_layers = self._adding_layers
        _set_bar_value(self.progress_bar, 100)
        self.progress_label.setText(f"done: {result.phase_choice()}")
        curve = "BIC on homogeneous pixels (lower is better):\n" + "\n".join(
            f"{k} phases: {v:.0f}" for k, v in sorted(result.criterion.items())
        )
        self._show_alternatives(tuple(result.alternatives), curve)
        if self.last_layers is not None:
            self.viewer.layers.selection.active = self.last_layers.phases
        if self.last_result_callback is not None:
            self.last_result_callback()

    @state.alive_only
    def _on_error(self, error: BaseException) -> None:
        from napari.utils.notifications import show_error

        self._end_progress()
        # the reason whole in the dock (SI_empty_selection.emd: "failed: /work/shared/data/eds/
        # emd/SI_empty_selection.emd: nearly" was all it showed), the full text in its tooltip
        self.progress_label.setWordWrap(True)
        self.progress_label.setText(f"failed: {shorten_paths(str(error))}")
        self.progress_label.setToolTip(f"failed: {error}")
        show_error(f"Phase analysis failed: {_reason(error)}")

    @state.alive_only
    def _on_aborted(self) -> None:
        self._end_progress()
        # the bar emptied: it showed the last step's fraction, "100%" beside "aborted" when the
        # abort came at the end of a step (the Phenom file in qa24's walk; 50% on JEOL's)
        _set_bar_value(self.progress_bar, 0)
        self.progress_label.setText(
            f"cancelled: {self._cancelled}" if self._cancelled else "aborted"
        )

    @state.alive_only
    def _on_finished(self) -> None:
        if self.adding:  # the run ends when its layers are all in (Run stays disabled until then)
            self._finish_when_added = True
            return
        self.worker = None
        self._run_image = None
        self._set_running(False)

    def _set_running(self, running: bool) -> None:
        self.form.run.enabled = not running
        self.form.abort.enabled = running


def _set_bar_value(bar: QProgressBar, value: int) -> None:
    """``bar.setValue(value)``, painted with the event loop's next repaint of the window.

    Qt's ``QProgressBar.setValue`` repaints the bar at once when its text changes (its
    ``repaint()``, not ``update()``): with napari's OpenGL canvas in the window, a whole-window
    software-GL compose inside the calling slot, with the GIL held (PyQt keeps it through the
    call), followed by a second compose at the event loop's repaint of the label changed with
    it: two composes without a turn between them (a 228 ms gap with 92 ms of main-thread CPU in
    a JEOL run, load 23). With the bar's updates off for the call, its change waits for that
    repaint (re-enabling them schedules it).
    """
    bar.setUpdatesEnabled(False)
    try:
        bar.setValue(value)
    finally:
        bar.setUpdatesEnabled(True)


def _short_title(image: Any, layer_name: str) -> str:
    title = getattr(image, "title", "") or ""
    return title or layer_name
