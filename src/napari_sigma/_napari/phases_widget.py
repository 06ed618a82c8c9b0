"""The Phases dock widget: a live table of the phases of a phases Labels layer, and phase edits.

The table (colour, name, pixels, area %, area µm² (nm² for a map under a µm²), main elements,
mineral) follows every edit of the layer: user brush strokes (``events.paint``), programmatic
edits and undo/redo
(``events.set_data`` / ``events.data`` / ``events.labels_update``) all call the incremental
:meth:`~napari_sigma.phases.statistics.PhaseStatistics.update` and refresh the cells in place. Merge,
Split and Mark unassigned are each one undo step of the layer; names live in the layer's
:class:`~napari_sigma._napari.phase_model.PhaseModel`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from qtpy.QtCore import QEvent, QObject, Qt, QTimer
from qtpy.QtGui import QColor
from qtpy.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QStyle,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from napari_sigma._napari import editing, state
from napari_sigma._napari.phase_layer_dock import PhaseLayerDock
from napari_sigma._napari.phase_model import Phase, PhaseModel
from napari_sigma._napari.threads import leaving_a_core
from napari_sigma._napari.threads import start as start_low_priority

COLUMNS = ("", "name", "pixels", "area %", "area µm²", "elements", "mineral")
COLUMN_TIPS = {
    "elements": "main elements: the strongest lines of the phase's mean spectrum",
    "mineral": "the mineral identified from the phase's composition, with its match score (0-1);"
    " ≈: not resolved from other minerals (see the cell's tooltip)",
}
NAME_COLUMN = 1
# a mineral cell of a phase whose pixels were edited: the analysis identified the phase it found
EDITED_MARK = ", before edits"
EDITED_NOTE = (
    "identified by the analysis on the phase it found; the phase was edited since (its pixels "
    "changed): Export identifies the edited phase again (phase_stats.csv, report.html)"
)
AREA_COLUMN = COLUMNS.index("area µm²")
# a map smaller than this (µm²) shows its phases' areas in nm²: test_TEM.bcf's (64² pixels of
# 0.77 nm) read "0.002435" and "3.388e-05" µm²; the JEOL map (512² of 8.7 nm, 20 µm²) keeps µm²
NM_AREA_MAP_UM2 = 1.0
ELEMENTS_COLUMN = COLUMNS.index("elements")
MINERAL_COLUMN = COLUMNS.index("mineral")
# the numeric columns' headers in two lines when the table is narrower than its contents (their
# numbers are narrower than "area µm²"), and "elements" hyphenated (its cells' words, "Si,", are
# narrower than its header: the 30x30 .bcf's long names elided that header to "ement")
COMPACT_HEADERS = {"area %": "area\n%", "area µm²": "area\nµm²", "elements": "ele-\nments"}
# then these text columns give way, wrapping their cells at spaces (rows grow) down to their
# longest word or header, in this order; only past that are cells elided (whole in tooltips),
# first down to their headers' widths (a header is the column's name), then below
WRAP_ORDER = (ELEMENTS_COLUMN, MINERAL_COLUMN, NAME_COLUMN)
ELIDE_ORDER = ((ELEMENTS_COLUMN, 40), (NAME_COLUMN, 48), (MINERAL_COLUMN, 48))
ROW_HEIGHT = 22
# the table is as tall as its rows, with room for this many at least (so that merges and splits
# of a usual map leave its height alone); the phase spectra's plot below takes the rest of the
# dock: on a 1080-line screen a table of 6 phases kept a third of the tab empty
TABLE_ROOM_ROWS = 8
SWATCH_WIDTH = 22
LAYER_EVENTS = ("paint", "set_data", "data", "labels_update", "visible")
# napari emits labels_update at every mouse move of a stroke (and inside every data_setitem,
# before its paint event): those syncs are coalesced, at most one per SYNC_DELAY_MS, and update
# the table only (the spectra and their plots follow the stroke's release, its paint event)
DEFERRED_EVENTS = ("labels_update",)
SYNC_DELAY_MS = 200
SPECTRA_DELAY_MS = 150
SYNC_STATISTICS_BYTES = 64 * 2**20  # larger or lazy cubes: the statistics are built in a worker
# that worker starts at a later turn of Qt's event loop than the one that asked for it (the last
# turn of a result's adding, which also brings the Phases tab forward): its start is not in that
# turn's frame (a 1 ms timer fires after the paint, not in the same pass of the event loop)
STATISTICS_START_MS = 1
SYNC_SPLIT_PIXELS = 20_000  # larger phases are re-clustered in a worker


def line_energies(lines: Any) -> dict[str, float]:
    """``{"Fe_Ka": 6.40, ...}`` for the analysed line names (unknown names are skipped)."""
    from napari_sigma.xray.lines import parse_line

    energies = {}
    for name in lines:
        try:
            energies[str(name)] = float(parse_line(str(name)).energy)
        except (ValueError, KeyError):
            continue
    return energies


def _build_statistics(result: Any, labels: np.ndarray | None) -> Any:
    """PhaseStatistics of a result on in-memory per-pixel spectra (first update on ``labels``)."""
    from napari_sigma.phases.pixel_cache import pixel_spectra
    from napari_sigma.phases.statistics import PhaseStatistics

    spectra = pixel_spectra(result.image.counts, result.image.energy)
    statistics = PhaseStatistics(
        spectra.counts,
        result.intensities,
        list(result.lines),
        pixel_size_um=result.image.pixel_size_um,
        regions=False,  # the table shows no region statistics; they cost ~10 ms a phase
        energies=spectra.energies,
        channels_summed=spectra.factor,
    )
    if labels is not None:
        statistics.update(labels)
    return statistics


def found_labels(result: Any) -> np.ndarray | None:
    """The labels the analysis identified its minerals on: its own, or a session's
    ``minerals_labels`` (saved after edits: the result's labels are the edited ones)."""
    labels = getattr(result, "minerals_labels", None)
    return getattr(result, "labels", None) if labels is None else labels


def edited_phases(found: np.ndarray | None, labels: np.ndarray) -> frozenset[int]:
    """The phases whose pixels in ``labels`` are not those they have in ``found``: the label a
    pixel had and the one it has, at every pixel where the two differ.

    Exact where a comparison of pixel counts is not: a stroke (or two) that gives a phase as
    many pixels as it takes moves them; undone, ``labels`` equal ``found`` again and no phase
    is edited. ``found`` None (no analysis labels) or of another shape: every phase counts as
    edited."""
    labels = np.asarray(labels)
    if found is None or np.shape(found) != labels.shape:
        return frozenset(int(k) for k in np.unique(labels))
    found = np.asarray(found)
    moved = found != labels
    if not moved.any():
        return frozenset()
    before = np.unique(found[moved])
    after = np.unique(labels[moved])
    return frozenset(int(k) for k in np.union1d(before, after))


def _update_with_edits(statistics: Any, found: np.ndarray | None, labels: np.ndarray):
    """The statistics updated to ``labels`` and the phases edited since the analysis."""
    return statistics.update(labels), edited_phases(found, labels)


def _build_with_edits(result: Any, labels: np.ndarray):
    """:func:`_build_statistics` on ``labels`` and the phases edited since the analysis."""
    return _build_statistics(result, labels), edited_phases(found_labels(result), labels)


@dataclass
class _Updates:
    """The statistics updates of one layer, made in workers one at a time (the latest labels
    not yet sent wait for the running one)."""

    sent: np.ndarray | None = None  # the labels of the last update started
    labels: np.ndarray | None = None  # the labels to update to next (None: nothing new)
    spectra: bool = False  # hand the phase spectra on after that update
    running: bool = False


class _LayerSnapshot:
    """What a session needs of a phases layer, copied in the main thread for a worker."""

    def __init__(self, layer: Any) -> None:
        self.name = layer.name
        self.data = np.array(layer.data, copy=True)
        data = dict(state.plugin_data(layer))
        data["phases"] = PhaseModel(Phase(p.id, p.name, p.color) for p in data["phases"])
        self.metadata = {state.KEY: data}


def _export(
    result: Any, out_dir: Any, labels: np.ndarray, names: list[str], sums: Any = None
) -> dict:
    """Export the edited labels; ``run.json`` also records the edits made in napari. ``sums``:
    the exact sum spectra of phases 1..K over ``labels`` when known (:func:`_running_sums`)."""
    import json

    from napari_sigma.io.export import export_result

    # report.png drawn in a child process: matplotlib holds none of napari's GIL (same bytes)
    written = export_result(
        result, out_dir, labels=labels, names=names, draw_in_process=True, sum_spectra=sums
    )
    run_path = Path(written["run"])
    info = json.loads(run_path.read_text())
    info.update(edit_record(result, labels, names))
    run_path.write_text(json.dumps(info, indent=2))
    return written


def _running_sums(statistics: Any, result: Any, labels: np.ndarray) -> np.ndarray | None:
    """The Phases tab's running sum spectra of phases 1..K (a copy) when they are the sums over
    ``labels`` of the result's own in-memory cube, every channel; else None.

    An export of edited labels then reads no cube for its phase statistics: a cube too large
    for the export's child (1024² x 2048, 4 GiB) was summed again in napari's process, in the
    export's worker. Integer counts make the running sums exact (float64 sums of integers, moved
    pixel by pixel as the user edits): the same table as a new pass, the same files (the export
    checks the counts are integers). Call it with no statistics update running
    (:meth:`PhasesWidget.pending_updates`): a worker changes these sums."""
    if statistics is None or statistics.counts is not result.image.counts:
        return None  # no statistics yet, or of a lazy cube's channel groups
    if getattr(statistics, "factor", 1) != 1:
        return None
    return statistics.sums_over(labels)


def edit_record(result: Any, labels: np.ndarray, names: list[str]) -> dict[str, Any]:
    """What changed in napari since the run: live phases with their current names, pixels moved."""
    counts = np.bincount(np.ravel(labels).astype(np.int64))
    live = [int(k) for k in np.flatnonzero(counts) if k > 0]
    original = list(result.phase_names)
    current = {k: names[k - 1] if k <= len(names) else f"phase {k}" for k in live}
    return {
        "phase_names": [current[k] for k in live],
        "phase_ids": live,
        "edits": {
            "pixels_relabelled": int(np.count_nonzero(np.asarray(labels) != result.labels)),
            "renamed": {
                str(k): [original[k - 1], current[k]]
                for k in live
                if k <= len(original) and original[k - 1] != current[k]
            },
            "removed_phases": [k for k in range(1, len(original) + 1) if k not in current],
            "added_phases": [k for k in live if k > len(original)],
        },
    }


def hex_color(rgba: Any) -> str:
    """``(r, g, b, a)`` floats -> ``"#rrggbb"``."""
    r, g, b = (round(255 * float(c)) for c in list(rgba)[:3])
    return f"#{r:02x}{g:02x}{b:02x}"


def _row(*widgets: QWidget) -> QHBoxLayout:
    """A horizontal row of ``widgets``."""
    row = QHBoxLayout()
    for widget in widgets:
        row.addWidget(widget)
    return row


class PhasesWidget(PhaseLayerDock):
    """Dock widget with the live phase table of the selected phases layer and its edits.

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer; the widget follows its active phases Labels layer.
    """

    def __init__(self, napari_viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(napari_viewer, parent)
        self.table_data: Any = None  # the last PhaseTable
        self._statistics: dict[int, Any] = {}
        self._building: set[int] = set()
        self._in_worker: dict[int, _Updates] = {}  # layers whose statistics update in a worker
        # the phases whose pixels differ from the analysis's, by layer, for the table shown
        self._edits: dict[int, frozenset[int]] = {}
        self.exporting = False
        self.busy = False  # a session is being saved or read
        self._naming_new_phases = False  # the model adds the phases a table found
        self._row_ids: list[int] = []
        self._spectra_timer = QTimer(self)
        self._spectra_timer.setSingleShot(True)
        self._spectra_timer.setInterval(SPECTRA_DELAY_MS)
        self._spectra_timer.timeout.connect(self.refresh_spectra)
        self._sync_timer = QTimer(self)
        self._sync_timer.setSingleShot(True)
        self._sync_timer.setInterval(SYNC_DELAY_MS)
        self._sync_timer.timeout.connect(self._sync_during_stroke)
        self._build_ui()
        self.follow_phases_layers()
        state.result_events.added.connect(self._on_result_added)

    # -- UI ----------------------------------------------------------------------------------
    def _build_ui(self) -> None:
        self.title = QLabel(self)
        # its text changes at every step (the layer's name, statistics, the export's folder):
        # sized by its text, each change re-laid out the whole dock (its every widget repainted:
        # 4 repaints of the dock during an export, JEOL), and a long folder name widened it;
        # it takes the dock's width (one line), the whole text in its tooltip
        self.title.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self._set_title("no phases layer")
        self.table = QTableWidget(0, len(COLUMNS), self)
        self.table.setHorizontalHeaderLabels(COLUMNS)
        for column, name in enumerate(COLUMNS):
            if name in COLUMN_TIPS:
                self.table.horizontalHeaderItem(column).setToolTip(COLUMN_TIPS[name])
        self.table.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.table.setWordWrap(True)  # fit_columns narrows text columns by wrapping at spaces
        self._column_fitter = _ColumnFitter(self)
        self.table.viewport().installEventFilter(self._column_fitter)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(ROW_HEIGHT)
        self.table.verticalHeader().setMinimumSectionSize(ROW_HEIGHT)
        header = self.table.horizontalHeader()
        header.setStretchLastSection(False)  # fit_columns gives the mineral column the rest
        header.setSortIndicator(-1, Qt.SortOrder.AscendingOrder)  # table order until a click
        self.table.setSortingEnabled(True)
        self.table.setColumnWidth(0, SWATCH_WIDTH)
        self.table.setMinimumHeight(200)
        self._fit_table_height()
        self.table.itemChanged.connect(self._on_item_changed)
        self.table.itemSelectionChanged.connect(self._spectra_timer.start)
        self.split_parts = QSpinBox(self)
        self.split_parts.setRange(2, 12)
        self.split_parts.setValue(2)
        edits = _row(  # two rows: five widgets in one were clipped in a 460 px dock
            self._button("Merge selected", self.merge_selected),
            self._button("Split into", self.split_selected),
            self.split_parts,
        )
        more = _row(
            self._button("Mark unassigned", self.unassign_selected),
            self._button("Export...", self._choose_export_folder),
        )
        history = "{} the latest label edit or phase rename ({} on the phases layer)"
        sessions = _row(
            self._button("Undo", self.undo, history.format("Undo", "Ctrl+Z")),
            self._button("Redo", self.redo, history.format("Redo", "Ctrl+Shift+Z")),
            self._button("Save session...", self._choose_session_to_save),
            self._button("Open session...", self._choose_session_to_open),
        )
        sessions.addStretch()
        from napari_sigma._napari.plotting import SpectrumPlot

        self.spectrum_plot = SpectrumPlot(self, ylabel="mean counts / pixel")
        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addWidget(self.table, 2)
        layout.addLayout(edits)
        layout.addLayout(more)
        layout.addLayout(sessions)
        layout.addWidget(self.spectrum_plot, 3)

    def _set_title(self, text: str) -> None:
        self.title.setText(text)
        self.title.setToolTip(text)

    def _button(self, text: str, slot: Callable[[], Any], tooltip: str = "") -> QPushButton:
        """A push button that calls ``slot()`` when clicked."""
        button = QPushButton(text, self)
        button.clicked.connect(lambda _=False: slot())
        if tooltip:
            button.setToolTip(tooltip)
        return button

    # -- which layer -------------------------------------------------------------------------
    def forget_layer(self, layer: Any) -> None:
        """Drop the statistics kept for a layer that left the viewer."""
        self._statistics.pop(id(layer), None)
        self._in_worker.pop(id(layer), None)
        self._edits.pop(id(layer), None)

    def show_layer(self, layer: Any) -> None:
        """Show and edit the phases of ``layer`` (a phases Labels layer, or None)."""
        self._row_ids = []
        self.table_data = None
        self.table.setRowCount(0)
        if layer is None:
            self._set_title("no phases layer")
            self.table_data = None
            return
        self._set_title(layer.name)
        self.sync()
        self.refresh_spectra()

    def _connect(self, layer: Any, connect: bool) -> None:
        for name in LAYER_EVENTS:
            emitter = getattr(layer.events, name, None)
            if emitter is not None:
                (emitter.connect if connect else emitter.disconnect)(self._on_layer_changed)
        model = self.model
        if model is not None:
            signal = model.changed
            (signal.connect if connect else signal.disconnect)(self._on_model_changed)

    def statistics(self) -> Any:
        """The incremental PhaseStatistics of the current layer (None while a worker builds it).

        Built once per layer: at once for an in-memory cube up to ``SYNC_STATISTICS_BYTES``,
        otherwise in a worker (a lazy cube is read once into per-pixel sums of channel groups,
        :func:`~napari_sigma.phases.pixel_cache.pixel_spectra`); the table follows when it is ready.
        """
        key = id(self.layer)
        if key in self._statistics:
            return self._statistics[key]
        if state.being_added(self.layer):  # its run's layers are still being added: after them
            return None  # (_on_result_added)
        counts = self.result.image.counts
        if isinstance(counts, np.ndarray) and counts.nbytes <= SYNC_STATISTICS_BYTES:
            self._statistics[key] = _build_statistics(self.result, None)
            return self._statistics[key]
        if key not in self._building:
            self._building.add(key)
            state.plugin_data(self.layer)[state.PHASE_SPECTRA_PENDING] = True
            self._set_title(f"{self.layer.name}: computing phase statistics ...")
            QTimer.singleShot(
                STATISTICS_START_MS, partial(self._start_statistics_worker, self.layer)
            )
        return None

    @state.alive_only
    def _on_result_added(self, layer: Any) -> None:
        """A run's layers are all in: the statistics of its phases layer, if it is ours."""
        if layer is self.layer:
            self.sync()

    @state.alive_only
    def _start_statistics_worker(self, layer: Any) -> None:
        from napari.qt.threading import create_worker

        if layer not in self.viewer.layers:  # removed before its worker started
            self._building.discard(id(layer))
            state.plugin_data(layer).pop(state.PHASE_SPECTRA_PENDING, None)
            return
        labels = np.array(layer.data, copy=True)
        worker = create_worker(
            leaving_a_core(_build_with_edits),
            state.result_of(layer),
            labels,
            _start_thread=False,
            _ignore_errors=True,
        )
        worker.returned.connect(lambda built: self._on_statistics_ready(layer, labels, *built))
        worker.errored.connect(lambda error: self._on_statistics_failed(layer, error))
        start_low_priority(worker)

    @state.alive_only
    def _on_statistics_ready(
        self, layer: Any, labels: np.ndarray, stats: Any, edits: frozenset[int]
    ) -> None:
        self._building.discard(id(layer))
        if layer not in self.viewer.layers:
            return
        self._statistics[id(layer)] = stats
        self._edits[id(layer)] = edits  # those of ``labels``, the statistics' labels
        self._in_worker[id(layer)] = _Updates(sent=labels)  # its updates: in workers too
        if layer is self.layer:
            self._set_title(layer.name)
            self.sync()

    @state.alive_only
    def _on_statistics_failed(self, layer: Any, error: BaseException) -> None:
        self._building.discard(id(layer))
        state.plugin_data(layer).pop(state.PHASE_SPECTRA_PENDING, None)
        if layer is self.layer:
            self._set_title(f"{layer.name}: phase statistics failed: {error}")

    # -- following edits ---------------------------------------------------------------------
    def _on_layer_changed(self, event: Any = None) -> None:
        kind = getattr(event, "type", None)
        if kind == "visible" and not self.layer.visible:
            return
        if kind in DEFERRED_EVENTS:  # every brush dab: the table follows a few times a second
            if not self._sync_timer.isActive():
                self._sync_timer.start()
            return
        self._sync_timer.stop()  # a whole edit (stroke released, undo, plugin edit): now
        self.sync()

    def _on_model_changed(self) -> None:
        self._refresh_names_and_colors()
        if not self._naming_new_phases:  # a rename or recolour: the plot's legend follows
            self._spectra_timer.start()

    def sync(self, spectra: bool = True) -> Any:
        """Recompute the statistics of the layer (incrementally) and refresh the table; with
        ``spectra`` (not during a stroke) also hand the phase spectra on and replot them.

        Statistics built in a worker (a large or lazy cube) are also updated in one, off napari's
        main thread (a split moving 10^4-10^5 pixels sums their spectra over every channel:
        ~40 ms at 1024² x 2048); the table follows when the update returns, and every edit made
        meanwhile is taken by the next update (:meth:`pending_updates`). Returns the table
        shown (then possibly older than the labels)."""
        if self.layer is None:
            return None
        statistics = self.statistics()
        if statistics is None:  # a worker builds them; sync() runs again when they are ready
            return None
        updates = self._in_worker.get(id(self.layer))
        if updates is not None:
            return self._update_in_worker(self.layer, statistics, updates, spectra)
        labels = np.asarray(self.layer.data)
        table, self._edits[id(self.layer)] = _update_with_edits(
            statistics, found_labels(self.result), labels
        )
        self._show_table(table, spectra)
        return table

    def pending_updates(self) -> bool:
        """Whether a worker is still bringing the current layer's statistics up to date."""
        updates = self._in_worker.get(id(self.layer)) if self.layer is not None else None
        return id(self.layer) in self._building or bool(updates and updates.running)

    def _update_in_worker(
        self, layer: Any, statistics: Any, updates: _Updates, spectra: bool
    ) -> Any:
        labels = np.asarray(layer.data)
        if not updates.running and statistics.table is not None and updates.sent is not None:
            if np.array_equal(labels, updates.sent):  # nothing changed since the last update
                self._show_table(statistics.table, spectra)
                return statistics.table
        updates.labels = np.array(labels, copy=True)  # the worker reads a copy: painting goes on
        updates.spectra = updates.spectra or spectra
        if spectra:  # the Spectrum widget waits for them instead of summing the phase itself
            state.plugin_data(layer)[state.PHASE_SPECTRA_PENDING] = True
        if not updates.running:
            self._start_update(layer, statistics, updates)
        return self.table_data

    def _start_update(self, layer: Any, statistics: Any, updates: _Updates) -> None:
        from napari.qt.threading import create_worker

        labels, spectra = updates.labels, updates.spectra
        updates.labels, updates.spectra, updates.sent, updates.running = None, False, labels, True
        found = found_labels(state.result_of(layer))
        worker = create_worker(
            _update_with_edits, statistics, found, labels, _start_thread=False, _ignore_errors=True
        )  # no BLAS in an update: no leave_a_core (threadpoolctl's look-up costs the GIL)
        worker.returned.connect(partial(self._on_update_done, layer, statistics, spectra))
        worker.errored.connect(partial(self._on_update_failed, layer))
        start_low_priority(worker)

    @state.alive_only
    def _on_update_done(self, layer: Any, statistics: Any, spectra: bool, updated: Any) -> None:
        updates = self._in_worker.get(id(layer))
        if updates is None or layer not in self.viewer.layers:  # the layer left meanwhile
            return
        table, self._edits[id(layer)] = updated
        updates.running = False
        if updates.labels is not None:  # edited meanwhile: its update next, the spectra with it
            updates.spectra = updates.spectra or spectra
            spectra = False
            self._start_update(layer, statistics, updates)
        if layer is self.layer:
            self._show_table(table, spectra)
        elif spectra:
            state.set_phase_spectra(layer, statistics.energies, table)

    @state.alive_only
    def _on_update_failed(self, layer: Any, error: BaseException) -> None:
        updates = self._in_worker.pop(id(layer), None)
        self._statistics.pop(id(layer), None)  # built again (and in a worker) at the next sync
        state.plugin_data(layer).pop(state.PHASE_SPECTRA_PENDING, None)
        if updates is not None and layer is self.layer:
            self._set_title(f"{layer.name}: phase statistics failed: {error}")

    def _show_table(self, table: Any, spectra: bool) -> None:
        """Show ``table`` (the statistics of the current layer); with ``spectra`` also hand the
        phase spectra on to the other widgets and replot them."""
        self.table_data = table
        if spectra:
            statistics = self._statistics[id(self.layer)]
            state.set_phase_spectra(self.layer, statistics.energies, table)
        ids = [int(i) for i, n in zip(table.phase_ids, table.pixels, strict=True) if n > 0]
        if self.model is not None:  # phases a user painted get a name and colour; their
            self._naming_new_phases = True  # spectra are plotted with the table's (``spectra``),
            try:  # not in the middle of a stroke (a render there convoyed napari's frames)
                self.model.ensure(ids)
            finally:
                self._naming_new_phases = False
        if ids == self._row_ids:
            self._update_counts(table)
        else:
            self._rebuild_rows(table, ids)
        if spectra:
            self._spectra_timer.start()

    def _sync_during_stroke(self) -> None:
        """The table follows a stroke; its spectra (plots, other widgets) follow the release."""
        self.sync(spectra=False)

    def _row_of_phase(self, table: Any) -> dict[int, int]:
        return {int(phase_id): index for index, phase_id in enumerate(table.phase_ids)}

    def _visual_rows(self) -> dict[int, int]:
        """Phase id -> the row that shows it now (rows move when a user sorts a column)."""
        rows = {}
        for row in range(self.table.rowCount()):
            item = self.table.item(row, 0)
            if item is not None:
                rows[int(item.data(Qt.ItemDataRole.UserRole))] = row
        return rows

    def _phase_at(self, row: int) -> int:
        return int(self.table.item(row, 0).data(Qt.ItemDataRole.UserRole))

    def _rebuild_rows(self, table: Any, ids: list[int]) -> None:
        selected = set(self.selected_ids())
        self.table.blockSignals(True)
        self.table.setSortingEnabled(False)
        self.table.setRowCount(len(ids))
        for row, phase_id in enumerate(ids):
            swatch = QTableWidgetItem("")
            swatch.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
            swatch.setData(Qt.ItemDataRole.UserRole, int(phase_id))
            self.table.setItem(row, 0, swatch)
            self.table.setItem(row, NAME_COLUMN, QTableWidgetItem(""))
            for column in range(2, len(COLUMNS)):
                item = QTableWidgetItem("")
                item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
                self.table.setItem(row, column, item)
        self._row_ids = ids
        self.table.blockSignals(False)
        self._refresh_names_and_colors(fit=False)
        self._update_counts(table, fit=False)
        self.fit_columns()
        kept = [i for i in ids if i in selected]
        self.table.blockSignals(True)  # the selection is the same: the plot need not follow
        self.table.clearSelection()  # (a new phase in the middle of a stroke replotted it)
        self.select_ids(kept)
        self.table.blockSignals(False)
        if len(kept) != len(selected):  # a selected phase is gone: the plot shows the rest
            self._spectra_timer.start()

    def fit_columns(self) -> None:
        """Size the columns so that every column reads whole in the table's width.

        Columns get their contents' width; where the table is narrower, the numeric columns'
        headers take two lines, then the elements, mineral and name columns wrap their cells at
        spaces (those rows grow) down to their longest word or header; only a table too narrow
        for that elides cells (their full text in tooltips). The mineral column takes the spare
        width; the table never scrolls sideways."""
        table = self.table
        available = table.viewport().width()
        for compact in (False, True):
            for column, name in enumerate(COLUMNS):
                label = self._header_label(name, compact)
                if table.horizontalHeaderItem(column).text() != label:
                    table.horizontalHeaderItem(column).setText(label)
            table.resizeColumnsToContents()  # each column: its widest cell or its header
            table.setColumnWidth(0, SWATCH_WIDTH)
            if self._columns_width() <= available:
                break
        overflow = self._columns_width() - available
        for column in WRAP_ORDER:
            if overflow <= 0:
                break
            width = table.columnWidth(column)
            narrower = max(width - overflow, min(width, self._wrap_floor(column)))
            table.setColumnWidth(column, narrower)
            overflow -= width - narrower
        header = table.horizontalHeader()
        for whole_headers in (True, False):  # too narrow to wrap whole words: elide the cells,
            for column, floor in ELIDE_ORDER:  # then (narrower still) the headers too
                if overflow <= 0:
                    break
                if whole_headers:
                    floor = max(floor, header.sectionSizeHint(column))
                width = table.columnWidth(column)
                narrower = max(width - overflow, min(width, floor))
                table.setColumnWidth(column, narrower)
                overflow -= width - narrower
        others = self._columns_width() - table.columnWidth(MINERAL_COLUMN)
        table.setColumnWidth(
            MINERAL_COLUMN, max(table.columnWidth(MINERAL_COLUMN), available - others)
        )
        table.resizeRowsToContents()  # wrapped cells: their rows take the lines they need
        self._fit_table_height()

    def _area_unit(self) -> tuple[str, float]:
        """The area column's unit and its factor from µm²: nm² for a map under a µm²."""
        image = getattr(self.result, "image", None)
        pixel = getattr(image, "pixel_size_um", None) if image is not None else None
        labels = getattr(self.result, "labels", None)
        if pixel is not None and labels is not None:
            if pixel * pixel * np.prod(np.shape(labels)) < NM_AREA_MAP_UM2:
                return "nm²", 1e6
        return "µm²", 1.0

    def _header_label(self, name: str, compact: bool) -> str:
        if name == COLUMNS[AREA_COLUMN]:
            unit = self._area_unit()[0]
            return f"area\n{unit}" if compact else f"area {unit}"
        return COMPACT_HEADERS.get(name, name) if compact else name

    def _fit_table_height(self) -> None:
        """The table's height at most its rows' (:data:`TABLE_ROOM_ROWS` at least)."""
        table = self.table
        rows = max(table.verticalHeader().length(), TABLE_ROOM_ROWS * ROW_HEIGHT)
        height = rows + table.horizontalHeader().sizeHint().height() + 2 * table.frameWidth()
        table.setMaximumHeight(max(table.minimumHeight(), height))

    def _columns_width(self) -> int:
        return sum(self.table.columnWidth(c) for c in range(len(COLUMNS)))

    def _wrap_floor(self, column: int) -> int:
        """The narrowest ``column`` reads whole in: its header, or its longest word (its cells
        wrap at spaces) with the cell's margins."""
        table = self.table
        metrics = table.fontMetrics()
        words = [
            word
            for row in range(table.rowCount())
            if table.item(row, column) is not None
            for word in table.item(row, column).text().split()
        ]
        longest = max((metrics.horizontalAdvance(word) for word in words), default=0)
        margin = 2 * (table.style().pixelMetric(QStyle.PixelMetric.PM_FocusFrameHMargin) + 1)
        return max(table.horizontalHeader().sectionSizeHint(column), longest + margin + 2)

    def _update_counts(self, table: Any, fit: bool = True) -> None:
        """Fill the rows' numbers, main elements and minerals from ``table``; the columns are
        fitted again (``fit``) when a text changed (numbers keep their columns' widths)."""
        from napari_sigma.phases.statistics import main_elements

        texts_changed = False

        index = self._row_of_phase(table)
        edited = self._edits.get(id(self.layer), frozenset())
        area_factor = self._area_unit()[1]
        lines = list(self.result.lines) if self.result is not None else []
        self.table.blockSignals(True)
        sorting = self.table.isSortingEnabled()
        self.table.setSortingEnabled(False)  # rows must not move while their cells change
        for phase_id, row in self._visual_rows().items():
            k = index[phase_id]
            area = table.area_um2[k] if table.area_um2 is not None else None
            cells = (  # numbers as numbers: the columns sort numerically
                int(table.pixels[k]),
                round(100.0 * float(table.area_fraction[k]), 2),
                "" if area is None else float(f"{float(area) * area_factor:.4g}"),
                ", ".join(main_elements(table.mean_intensities[k], lines)),
                self._mineral_text(phase_id, phase_id in edited),
            )
            for column, value in enumerate(cells, start=2):
                item = self.table.item(row, column)
                if item.data(Qt.ItemDataRole.DisplayRole) != value:
                    item.setData(Qt.ItemDataRole.DisplayRole, value)
                    if column == ELEMENTS_COLUMN:  # whole, when elided
                        item.setToolTip(str(value))
                        texts_changed = True
                    elif column == MINERAL_COLUMN:  # whole, and what it is not resolved from
                        item.setToolTip(self._mineral_tooltip(phase_id, str(value)))
                        texts_changed = True
        self.table.setSortingEnabled(sorting)
        self.table.blockSignals(False)
        if fit and texts_changed:
            self.fit_columns()

    def _phase_mineral(self, phase_id: int) -> Any:
        minerals = getattr(self.result, "phase_minerals", None) or []
        found = next((m for m in minerals if m.phase_id == phase_id), None)
        return found if found is not None and found.identification else None

    def _mineral_text(self, phase_id: int, edited: bool = False) -> str:
        """The analysis's identification of a phase (``"quartz (0.98)"``), or ``""``; marked
        ``"hematite (0.64) ≈"`` when the measurement does not resolve it from other minerals
        (:meth:`_mineral_tooltip` names them), and ``"quartz (0.98), before edits"`` once the
        phase's pixels were edited (a merge, a stroke, a lasso): the analysis identified the
        phase it found, not the edited one, which only Export identifies again."""
        found = self._phase_mineral(phase_id)
        if found is None:
            return ""
        if getattr(found.identification, "unknown", False):  # "unknown (Cu9.31Al1.00)": the
            text = found.mineral  # score was the closest mineral's (its tooltip names them)
            return f"{text}{EDITED_MARK}" if edited else text
        if not np.isfinite(found.score):  # no score: a phase with no signal of its own ("no
            text = found.mineral  # signal (0.08 counts/px)"), not "... (nan)"
            return f"{text}{EDITED_MARK}" if edited else text
        text = f"{found.mineral} ({found.score:.2f})"
        if getattr(found.identification, "unresolved", None):
            from napari_sigma.minerals.phases import UNRESOLVED_MARK  # loaded: ``found`` is one

            text += f" {UNRESOLVED_MARK}"
        return f"{text}{EDITED_MARK}" if edited else text

    def _mineral_tooltip(self, phase_id: int, text: str | None = None) -> str:
        """The mineral cell's tooltip: its whole ``text``, then what the name is not resolved
        from (``"≈ not resolved from: maghemite 0.64, magnetite 0.51"``) and why, and what an
        edit means for it."""
        text = self._mineral_text(phase_id) if text is None else text
        lines = [text]
        found = self._phase_mineral(phase_id)
        if found is not None and getattr(found.identification, "unresolved", None):
            from napari_sigma.minerals.phases import UNRESOLVED_MARK, UNRESOLVED_NOTE

            unresolved = found.not_resolved_from.replace("; ", ", ")
            lines += [f"{UNRESOLVED_MARK} not resolved from: {unresolved}", f"({UNRESOLVED_NOTE})"]
        if found is not None and not np.isfinite(found.score) and getattr(found, "note", ""):
            lines.append(str(found.note))  # what a name without a score means ("no signal ...")
        if found is not None and getattr(found.identification, "unknown", False):
            closest = getattr(found.identification, "alternatives", None) or []
            lines.append(
                "no library mineral matches; closest: "
                + ", ".join(f"{name} {score:.2f}" for name, score in closest)
                if closest
                else "no library mineral matches"
            )
        if text.endswith(EDITED_MARK):
            lines.append(EDITED_NOTE)
        return "\n".join(lines)

    def _refresh_names_and_colors(self, fit: bool = True) -> None:
        model = self.model
        if model is None:
            return
        self.table.blockSignals(True)
        sorting = self.table.isSortingEnabled()
        self.table.setSortingEnabled(False)
        renamed = False
        for phase_id, row in self._visual_rows().items():
            self.table.item(row, 0).setBackground(QColor(hex_color(model.color(phase_id))))
            name_item = self.table.item(row, NAME_COLUMN)
            if name_item.text() != model.name(phase_id):
                name_item.setText(model.name(phase_id))
                name_item.setToolTip(model.name(phase_id))  # whole, when the column is narrowed
                renamed = True
        self.table.setSortingEnabled(sorting)
        self.table.blockSignals(False)
        if fit and renamed:  # a longer or shorter name: the columns' widths follow
            self.fit_columns()

    def _on_item_changed(self, item: QTableWidgetItem) -> None:
        if item.column() == NAME_COLUMN and self.model is not None:
            self.rename(self._phase_at(item.row()), item.text())

    # -- table contents, for callers ---------------------------------------------------------
    def row_ids(self) -> list[int]:
        """Phase ids of the table rows, top to bottom."""
        return list(self._row_ids)

    def row_pixels(self) -> dict[int, int]:
        """Pixel count shown in the table, by phase id."""
        return {
            pid: int(self.table.item(row, 2).text()) for pid, row in self._visual_rows().items()
        }

    def selected_ids(self) -> list[int]:
        """Phase ids of the selected rows, in table order."""
        rows = sorted({index.row() for index in self.table.selectedIndexes()})
        return [self._phase_at(row) for row in rows if row < self.table.rowCount()]

    def select_ids(self, phase_ids: list[int]) -> None:
        """Select the rows of ``phase_ids``."""
        self.table.clearSelection()
        mode = self.table.selectionMode()
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.MultiSelection)
        for phase_id, row in self._visual_rows().items():
            if phase_id in phase_ids:
                self.table.selectRow(row)
        self.table.setSelectionMode(mode)

    # -- edits -------------------------------------------------------------------------------
    def rename(self, phase_id: int, name: str) -> None:
        """Rename a phase (the PhaseModel, hence the table, plots and status bar), one undo step.

        An empty name keeps the old one (the cell shows it again).
        """
        from napari_sigma._napari.history import attach_history

        name = name.strip() or self.model.name(phase_id)
        attach_history(self.layer).rename(phase_id, name)
        self._refresh_names_and_colors()

    def undo(self) -> str | None:
        """Undo the layer's latest label edit or rename (what Ctrl+Z on the layer does)."""
        from napari_sigma._napari.history import attach_history

        return attach_history(self.layer).undo() if self.layer is not None else None

    def redo(self) -> str | None:
        """Redo the latest undone label edit or rename (Ctrl+Shift+Z on the layer)."""
        from napari_sigma._napari.history import attach_history

        return attach_history(self.layer).redo() if self.layer is not None else None

    def merge_selected(self, phase_ids: list[int] | None = None) -> int | None:
        """Merge the selected phases into the first one (one undo step); return the target."""
        phase_ids = self.selected_ids() if phase_ids is None else list(phase_ids)
        if len(phase_ids) < 2:
            from napari.utils.notifications import show_info

            show_info("Merge: select at least two phases in the table (Ctrl+click) to merge them")
            return None
        edit = editing.merge_phases(np.asarray(self.layer.data), phase_ids, phase_ids[0])
        editing.apply_to_layer(self.layer, edit)
        return phase_ids[0]

    def unassign_selected(self, phase_ids: list[int] | None = None) -> None:
        """Set the pixels of the selected phases to 0 (one undo step)."""
        phase_ids = self.selected_ids() if phase_ids is None else list(phase_ids)
        if phase_ids:
            edit = editing.mark_unassigned(np.asarray(self.layer.data), phase_ids)
            editing.apply_to_layer(self.layer, edit)

    def split_selected(self, phase_id: int | None = None, n: int | None = None) -> list[int]:
        """Split a phase into ``n`` on its latent coordinates (one undo step); return its parts."""
        from napari.utils.notifications import show_error

        selected = self.selected_ids()
        phase_id = phase_id if phase_id is not None else (selected[0] if selected else None)
        n = int(n or self.split_parts.value())
        if phase_id is None or self.result is None:
            return []
        labels = np.asarray(self.layer.data)
        first_new = max(self.model.next_id(), int(labels.max()) + 1)
        new_ids = list(range(first_new, first_new + n - 1))
        args = (self.result, phase_id, n, new_ids)
        if int(np.count_nonzero(labels == phase_id)) > SYNC_SPLIT_PIXELS:
            self._split_in_background(np.array(labels, copy=True), *args)
            return [phase_id, *new_ids]
        try:
            edit = editing.split_phase_edit(labels, *args, seed=self._seed())
        except ValueError as error:
            show_error(f"Split: {error}")
            return []
        self._apply_split(self.layer, labels, new_ids, edit)
        return [phase_id, *new_ids]

    def _split_in_background(self, labels: np.ndarray, result: Any, *args: Any) -> None:
        """Cluster a large phase in a worker; the split is applied if the labels did not change."""
        from napari.qt.threading import create_worker
        from napari.utils.notifications import show_error

        layer, new_ids = self.layer, args[2]
        worker = create_worker(
            leaving_a_core(editing.split_phase_edit), labels, result, *args, seed=self._seed(),
            _start_thread=False, _ignore_errors=True,
        )  # fmt: skip
        worker.returned.connect(lambda edit: self._apply_split(layer, labels, new_ids, edit))
        worker.errored.connect(lambda error: show_error(f"Split: {error}"))
        self.busy = True
        worker.finished.connect(self._on_session_done)
        start_low_priority(worker)

    @state.alive_only
    def _apply_split(self, layer: Any, labels: np.ndarray, new_ids: list[int], edit: Any) -> None:
        from napari.utils.notifications import show_warning

        if layer not in self.viewer.layers:
            return
        if labels is not layer.data and not np.array_equal(labels, layer.data):
            show_warning("Split discarded: the phases were edited while it was computed")
            return
        state.plugin_data(layer)["phases"].ensure(new_ids)
        editing.apply_to_layer(layer, edit)

    def _seed(self) -> int:
        return int(getattr(getattr(self.result, "settings", None), "seed", 0) or 0)

    # -- sessions ----------------------------------------------------------------------------
    def _choose_session_to_save(self) -> None:
        from napari_sigma._napari.sessions import SESSION_FILTER

        path, _ = QFileDialog.getSaveFileName(self, "Save session", "", SESSION_FILTER)
        if path:
            self.save_session(path if path.endswith(".sigma") else f"{path}.sigma")

    def _choose_session_to_open(self) -> None:
        from napari_sigma._napari.sessions import SESSION_FILTER

        path, _ = QFileDialog.getOpenFileName(self, "Open session", "", SESSION_FILTER)
        if path:
            self.open_session(path)

    def save_session(self, path: str | Path) -> Any:
        """Save the current layer's session to ``path`` (in a worker); return the worker."""
        from napari.utils.notifications import show_info

        from napari_sigma._napari.sessions import save_layer_session

        if self.layer is None or self.result is None:
            show_info("Save session: no phases layer to save (run an analysis first)")
            return None
        saved = partial(self._on_session_saved, self.layer)
        snapshot = (path, _LayerSnapshot(self.layer))
        return self._session_worker("Save session", path, save_layer_session, snapshot, saved)

    @state.alive_only
    def _on_session_saved(self, layer: Any, written: Any) -> None:
        from napari.utils.notifications import show_info

        from napari_sigma._napari.recovery import forget_unsaved_edits

        forget_unsaved_edits(layer)  # saved: nothing to recover any more
        show_info(f"Session saved to {written}")

    def open_session(self, path: str | Path) -> Any:
        """Open a session file (read in a worker) and add its layers; return the worker."""
        from napari_sigma._napari.sessions import read_session

        return self._session_worker(
            "Open session", path, read_session, (path,), self._on_session_read
        )

    def _session_worker(
        self, action: str, path: str | Path, function: Any, args: tuple, returned: Any
    ) -> Any:
        """Start ``function(*args)`` in a worker: ``returned`` gets its result, an error is
        reported naming ``action`` and ``path``, and the widget is busy until it finishes."""
        from napari.qt.threading import create_worker

        worker = create_worker(function, *args, _start_thread=False, _ignore_errors=True)
        worker.returned.connect(returned)
        worker.errored.connect(lambda error: self._on_session_error(action, path, error))
        self.busy = True
        worker.finished.connect(self._on_session_done)
        worker.start()
        return worker

    @state.alive_only
    def _on_session_read(self, read: tuple[Any, Any]) -> None:
        from napari_sigma._napari.sessions import add_session_layers

        session, result = read
        self.set_layer(add_session_layers(self.viewer, session, result))

    @state.alive_only
    def _on_session_error(self, what: str, path: Any, error: BaseException) -> None:
        from napari.utils.notifications import show_error

        message = str(error)
        if str(Path(path).name) not in message:
            message = f"{Path(path).name}: {message}"
        show_error(f"{what} failed: {message}")

    @state.alive_only
    def _on_session_done(self) -> None:
        self.busy = False

    def _choose_export_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export phases to folder")
        if folder:
            self.export_in_background(folder)

    def export_in_background(self, out_dir: str | Path) -> Any:
        """Export like :meth:`export_to`, in a worker (the edited labels are copied first)."""
        from napari.qt.threading import create_worker

        if self.layer is None or self.result is None:
            return None
        labels, names = self._export_labels_and_names()
        worker = create_worker(
            leaving_a_core(_export), self.result, out_dir, labels, names,
            self._export_sums(labels), _start_thread=False, _ignore_errors=True,
        )  # fmt: skip
        worker.returned.connect(lambda written: self._on_exported(out_dir, written))
        worker.errored.connect(self._on_export_failed)
        self.exporting = True
        self._set_title(f"exporting to {out_dir} ...")
        start_low_priority(worker)
        return worker

    @state.alive_only
    def _on_exported(self, out_dir: Any, written: dict) -> None:
        """Say it in the title, beside the Export button: a napari notification (a toast over the
        canvas) made napari redraw its canvas (software OpenGL: 2.5x the compose of a label's
        text; heartbeat 78-171 ms vs 41-44 ms at load 10)."""
        self.exporting = False
        name = self.layer.name if self.layer is not None else "no phases layer"
        self._set_title(f"{name}: exported {len(written)} files to {out_dir}")

    @state.alive_only
    def _on_export_failed(self, error: BaseException) -> None:
        from napari.utils.notifications import show_error

        self.exporting = False
        self._set_title(f"export failed: {error}")
        show_error(f"Export failed: {type(error).__name__}: {error}")

    def _export_labels_and_names(self) -> tuple[np.ndarray, list[str]]:
        labels = np.array(self.layer.data, copy=True)
        names = [self.model.name(k) for k in range(1, int(labels.max(initial=0)) + 1)]
        return labels, names

    def _export_sums(self, labels: np.ndarray) -> np.ndarray | None:
        """The statistics' running sums over ``labels`` when up to date (:func:`_running_sums`)."""
        if self.pending_updates():  # a worker is moving them
            return None
        return _running_sums(self._statistics.get(id(self.layer)), self.result, labels)

    def export_to(self, out_dir: str | Path) -> dict[str, Path]:
        """Export the result with the layer's edited labels and names to ``out_dir``."""
        from napari.utils.notifications import show_info

        labels, names = self._export_labels_and_names()
        written = _export(self.result, out_dir, labels, names, self._export_sums(labels))
        show_info(f"Exported {len(written)} files to {out_dir}")
        return written

    # -- spectra -----------------------------------------------------------------------------
    def refresh_spectra(self) -> None:
        """Plot the mean spectra of the selected phases (all phases when none is selected)."""
        table, model, result = self.table_data, self.model, self.result
        statistics = self._statistics.get(id(self.layer))  # None: being built again
        if table is None or model is None or result is None or statistics is None:
            self.spectrum_plot.set_spectra(np.zeros(0), {})
            return
        ids = self.selected_ids() or self._row_ids
        index = self._row_of_phase(table)
        spectra = {
            model.name(i): table.mean_spectra[index[i]] / statistics.channels_summed
            for i in ids
            if i in index
        }
        colors = {model.name(i): hex_color(model.color(i)) for i in ids}
        counts = {  # the counts behind one count per pixel and channel of each curve
            model.name(i): float(table.pixels[index[i]]) * statistics.channels_summed
            for i in ids
            if i in index
        }
        energies = statistics.energies
        self.spectrum_plot.set_spectra(energies, spectra, colors, counts)
        energy = result.image.energy
        top = min(energy.max_energy, float(result.image.beam_energy or energy.max_energy))
        self.spectrum_plot.set_energy_range(0.0, top)  # nothing lies above the beam energy
        self.spectrum_plot.set_markers(line_energies(result.lines))


class _ColumnFitter(QObject):
    """Fits the Phases table's columns again whenever its viewport changes width."""

    def __init__(self, widget: PhasesWidget) -> None:
        super().__init__(widget)
        self._widget = widget
        self._width = -1

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Resize and watched.width() != self._width:
            self._width = watched.width()
            self._widget.fit_columns()
        return False
