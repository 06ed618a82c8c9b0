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
from functools import partial
from typing import Any

import numpy as np
from qtpy.QtCore import Qt, QTimer
from qtpy.QtGui import QColor
from qtpy.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from napari_sigma._napari import editing, state
from napari_sigma._napari.model_apply import _ModelApply
from napari_sigma._napari.phase_layer_dock import PhaseLayerDock
from napari_sigma._napari.phases_files import _PhasesFiles
from napari_sigma._napari.phases_table import (
    AREA_COLUMN,
    COLUMN_TIPS,
    COLUMNS,
    COMPACT_HEADERS,
    EDITED_MARK,
    EDITED_NOTE,
    ELEMENTS_COLUMN,
    ELIDE_ORDER,
    MINERAL_COLUMN,
    NAME_COLUMN,
    NM_AREA_MAP_UM2,
    NO_AREA,
    NO_AREA_NOTE,
    ROW_HEIGHT,
    SWATCH_WIDTH,
    TABLE_ROOM_ROWS,
    WRAP_ORDER,
    _ColumnFitter,
    _PhasesTable,
)
from napari_sigma._napari.phases_table_data import (
    _build_statistics,
    _build_with_edits,
    _export,
    _LayerSnapshot,
    _running_sums,
    _update_with_edits,
    _Updates,
    edit_record,
    edited_phases,
    found_labels,
    hex_color,
    line_energies,
)
from napari_sigma._napari.threads import leaving_a_core
from napari_sigma._napari.threads import start as start_low_priority

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

# moved to phases_table, phases_table_data and phases_files: importable from here as before
__all__ = [
    "AREA_COLUMN", "COLUMNS", "COLUMN_TIPS", "COMPACT_HEADERS", "DEFERRED_EVENTS", "EDITED_MARK",
    "EDITED_NOTE", "ELEMENTS_COLUMN", "ELIDE_ORDER", "LAYER_EVENTS", "MINERAL_COLUMN",
    "NAME_COLUMN", "NM_AREA_MAP_UM2", "ROW_HEIGHT", "SPECTRA_DELAY_MS", "STATISTICS_START_MS",
    "SWATCH_WIDTH", "SYNC_DELAY_MS", "SYNC_SPLIT_PIXELS", "SYNC_STATISTICS_BYTES",
    "TABLE_ROOM_ROWS", "WRAP_ORDER", "PhasesWidget", "_ColumnFitter", "_LayerSnapshot",
    "_PhasesFiles", "_PhasesTable", "_Updates", "_build_statistics", "_build_with_edits",
    "_export", "_running_sums", "_update_with_edits", "edit_record", "edited_phases",
    "found_labels", "hex_color", "line_energies",
]  # fmt: skip


def _row(*widgets: QWidget) -> QHBoxLayout:
    """A horizontal row of ``widgets``."""
    row = QHBoxLayout()
    for widget in widgets:
        row.addWidget(widget)
    return row


class PhasesWidget(_PhasesTable, _PhasesFiles, _ModelApply, PhaseLayerDock):
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
        history = "{} the latest label edit or phase rename ({} on the phases layer)"
        more = _row(
            self._button("Mark unassigned", self.unassign_selected),
            self._button("Undo", self.undo, history.format("Undo", "Ctrl+Z")),
            self._button("Redo", self.redo, history.format("Redo", "Ctrl+Shift+Z")),
        )
        model = "the phases as edited, for napari-sigma apply on other fields"
        sessions = _row(
            self._button("Export...", self._choose_export_folder),
            self._button("Save session...", self._choose_session_to_save),
            self._button("Save model...", self._choose_model_to_save, model),
            self._button("Open session...", self._choose_session_to_open),
        )
        sessions.addStretch()
        applying = _row(
            self._button(
                "Apply model...", self._choose_model_to_apply,
                "classify the open spectrum image with a saved model (or session): its phases, "
                "names and colours, and a warning where the model may not describe the field",
            ),
        )  # fmt: skip
        applying.addStretch()
        from napari_sigma._napari.plotting import SpectrumPlot

        self.spectrum_plot = SpectrumPlot(self, ylabel="mean counts / pixel")
        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addWidget(self.table, 2)
        layout.addLayout(edits)
        layout.addLayout(more)
        layout.addLayout(sessions)
        layout.addLayout(applying)
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
                NO_AREA if area is None else float(f"{float(area) * area_factor:.4g}"),
                ", ".join(main_elements(table.mean_intensities[k], lines)),
                self._mineral_text(phase_id, phase_id in edited),
            )
            for column, value in enumerate(cells, start=2):
                item = self.table.item(row, column)
                if item.data(Qt.ItemDataRole.DisplayRole) != value:
                    item.setData(Qt.ItemDataRole.DisplayRole, value)
                    if column == AREA_COLUMN:  # a dash where the map has no pixel size
                        item.setToolTip(NO_AREA_NOTE if value == NO_AREA else "")
                    elif column == ELEMENTS_COLUMN:  # whole, when elided
                        item.setToolTip(str(value))
                        texts_changed = True
                    elif column == MINERAL_COLUMN:  # whole, and what it is not resolved from
                        item.setToolTip(self._mineral_tooltip(phase_id, str(value)))
                        texts_changed = True
        self.table.setSortingEnabled(sorting)
        self.table.blockSignals(False)
        if fit and texts_changed:
            self.fit_columns()

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
