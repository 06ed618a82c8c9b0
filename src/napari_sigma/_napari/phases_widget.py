"""The Phases dock widget: a live table of the phases of a phases Labels layer, and phase edits.

The table (colour, name, pixels, area %, area µm², main elements, mineral) follows every edit of the
layer: user brush strokes (``events.paint``), programmatic edits and undo/redo
(``events.set_data`` / ``events.data`` / ``events.labels_update``) all call the incremental
:meth:`~napari_sigma.phases.statistics.PhaseStatistics.update` and refresh the cells in place. Merge,
Split and Mark unassigned are each one undo step of the layer; names live in the layer's
:class:`~napari_sigma._napari.phase_model.PhaseModel`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from qtpy.QtCore import Qt, QTimer
from qtpy.QtGui import QColor
from qtpy.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from napari_sigma._napari import editing
from napari_sigma._napari.phase_layer_dock import PhaseLayerDock

COLUMNS = ("", "name", "pixels", "area %", "area µm²", "main elements", "mineral (score)")
NAME_COLUMN = 1
LAYER_EVENTS = ("paint", "set_data", "data", "labels_update", "visible")
SPECTRA_DELAY_MS = 150


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


def hex_color(rgba: Any) -> str:
    """``(r, g, b, a)`` floats -> ``"#rrggbb"``."""
    r, g, b = (round(255 * float(c)) for c in list(rgba)[:3])
    return f"#{r:02x}{g:02x}{b:02x}"


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
        self._row_ids: list[int] = []
        self._spectra_timer = QTimer(self)
        self._spectra_timer.setSingleShot(True)
        self._spectra_timer.setInterval(SPECTRA_DELAY_MS)
        self._spectra_timer.timeout.connect(self.refresh_spectra)
        self._build_ui()
        self.follow_phases_layers()

    # -- UI ----------------------------------------------------------------------------------
    def _build_ui(self) -> None:
        self.title = QLabel("no phases layer", self)
        self.table = QTableWidget(0, len(COLUMNS), self)
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.verticalHeader().setVisible(False)
        self.table.setColumnWidth(0, 22)
        self.table.setMinimumHeight(140)
        self.table.itemChanged.connect(self._on_item_changed)
        self.table.itemSelectionChanged.connect(self._spectra_timer.start)
        self.split_parts = QSpinBox(self)
        self.split_parts.setRange(2, 12)
        self.split_parts.setValue(2)
        buttons = QHBoxLayout()
        for text, slot in (
            ("Merge selected", self.merge_selected),
            ("Split into", self.split_selected),
            ("Mark unassigned", self.unassign_selected),
            ("Export...", self._choose_export_folder),
        ):
            button = QPushButton(text, self)
            button.clicked.connect(lambda _=False, slot=slot: slot())
            buttons.addWidget(button)
            if text == "Split into":
                buttons.addWidget(self.split_parts)
        from napari_sigma._napari.plotting import SpectrumPlot

        self.spectrum_plot = SpectrumPlot(self, ylabel="mean counts / pixel")
        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addWidget(self.table)
        layout.addLayout(buttons)
        layout.addWidget(self.spectrum_plot)

    # -- which layer -------------------------------------------------------------------------
    def forget_layer(self, layer: Any) -> None:
        """Drop the statistics kept for a layer that left the viewer."""
        self._statistics.pop(id(layer), None)

    def show_layer(self, layer: Any) -> None:
        """Show and edit the phases of ``layer`` (a phases Labels layer, or None)."""
        self._row_ids = []
        self.table.setRowCount(0)
        if layer is None:
            self.title.setText("no phases layer")
            self.table_data = None
            return
        self.title.setText(layer.name)
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
        """The (cached) incremental PhaseStatistics of the current layer."""
        key = id(self.layer)
        if key not in self._statistics:
            from napari_sigma.phases.statistics import PhaseStatistics

            result = self.result
            self._statistics[key] = PhaseStatistics(
                result.image.counts,
                result.intensities,
                list(result.lines),
                pixel_size_um=result.image.pixel_size_um,
                regions=False,  # the table shows no region statistics; they cost ~10 ms a phase
            )
        return self._statistics[key]

    # -- following edits ---------------------------------------------------------------------
    def _on_layer_changed(self, event: Any = None) -> None:
        if getattr(event, "type", None) == "visible" and not self.layer.visible:
            return
        self.sync()

    def _on_model_changed(self) -> None:
        self._refresh_names_and_colors()
        self._spectra_timer.start()

    def sync(self) -> Any:
        """Recompute the statistics of the layer (incrementally) and refresh the table."""
        if self.layer is None:
            return None
        table = self.statistics().update(np.asarray(self.layer.data))
        self.table_data = table
        ids = [int(i) for i, n in zip(table.phase_ids, table.pixels, strict=True) if n > 0]
        if self.model is not None:
            self.model.ensure(ids)  # phases a user painted get a name and colour
        if ids == self._row_ids:
            self._update_counts(table)
        else:
            self._rebuild_rows(table, ids)
        self._spectra_timer.start()
        return table

    def _row_of_phase(self, table: Any) -> dict[int, int]:
        return {int(phase_id): index for index, phase_id in enumerate(table.phase_ids)}

    def _rebuild_rows(self, table: Any, ids: list[int]) -> None:
        selected = set(self.selected_ids())
        self.table.blockSignals(True)
        self.table.setRowCount(len(ids))
        for row in range(len(ids)):
            swatch = QTableWidgetItem("")
            swatch.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
            self.table.setItem(row, 0, swatch)
            self.table.setItem(row, NAME_COLUMN, QTableWidgetItem(""))
            for column in range(2, len(COLUMNS)):
                item = QTableWidgetItem("")
                item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
                self.table.setItem(row, column, item)
        self._row_ids = ids
        self.table.blockSignals(False)
        self._refresh_names_and_colors()
        self._update_counts(table)
        self.table.clearSelection()
        for row, phase_id in enumerate(ids):
            if phase_id in selected:
                self.table.selectRow(row)

    def _update_counts(self, table: Any) -> None:
        from napari_sigma.phases.statistics import main_elements

        index = self._row_of_phase(table)
        lines = list(self.result.lines) if self.result is not None else []
        self.table.blockSignals(True)
        for row, phase_id in enumerate(self._row_ids):
            k = index[phase_id]
            area = table.area_um2[k] if table.area_um2 is not None else None
            cells = (
                f"{int(table.pixels[k])}",
                f"{100.0 * float(table.area_fraction[k]):.2f}",
                "" if area is None else f"{float(area):.4g}",
                ", ".join(main_elements(table.mean_intensities[k], lines)),
                self._mineral_text(phase_id),
            )
            for column, text in enumerate(cells, start=2):
                item = self.table.item(row, column)
                if item.text() != text:
                    item.setText(text)
        self.table.blockSignals(False)

    def _mineral_text(self, phase_id: int) -> str:
        """The analysis's identification of a phase (``"quartz (0.98)"``), or ``""``."""
        minerals = getattr(self.result, "phase_minerals", None) or []
        found = next((m for m in minerals if m.phase_id == phase_id), None)
        return f"{found.mineral} ({found.score:.2f})" if found and found.identification else ""

    def _refresh_names_and_colors(self) -> None:
        model = self.model
        if model is None:
            return
        self.table.blockSignals(True)
        for row, phase_id in enumerate(self._row_ids):
            self.table.item(row, 0).setBackground(QColor(hex_color(model.color(phase_id))))
            name_item = self.table.item(row, NAME_COLUMN)
            if name_item.text() != model.name(phase_id):
                name_item.setText(model.name(phase_id))
        self.table.blockSignals(False)

    def _on_item_changed(self, item: QTableWidgetItem) -> None:
        if item.column() == NAME_COLUMN and self.model is not None:
            phase_id = self._row_ids[item.row()]
            self.rename(phase_id, item.text())

    # -- table contents, for callers ---------------------------------------------------------
    def row_ids(self) -> list[int]:
        """Phase ids of the table rows, top to bottom."""
        return list(self._row_ids)

    def row_pixels(self) -> dict[int, int]:
        """Pixel count shown in the table, by phase id."""
        return {pid: int(self.table.item(row, 2).text()) for row, pid in enumerate(self._row_ids)}

    def selected_ids(self) -> list[int]:
        """Phase ids of the selected rows, in table order."""
        rows = sorted({index.row() for index in self.table.selectedIndexes()})
        return [self._row_ids[row] for row in rows if row < len(self._row_ids)]

    def select_ids(self, phase_ids: list[int]) -> None:
        """Select the rows of ``phase_ids``."""
        self.table.clearSelection()
        mode = self.table.selectionMode()
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.MultiSelection)
        for row, phase_id in enumerate(self._row_ids):
            if phase_id in phase_ids:
                self.table.selectRow(row)
        self.table.setSelectionMode(mode)

    # -- edits -------------------------------------------------------------------------------
    def rename(self, phase_id: int, name: str) -> None:
        """Rename a phase (the PhaseModel, hence the table and plots)."""
        self.model.rename(phase_id, name.strip() or self.model.name(phase_id))

    def merge_selected(self, phase_ids: list[int] | None = None) -> int | None:
        """Merge the selected phases into the first one (one undo step); return the target."""
        phase_ids = self.selected_ids() if phase_ids is None else list(phase_ids)
        if len(phase_ids) < 2:
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
        try:
            edit = editing.split_phase_edit(
                labels, self.result, phase_id, n, new_ids, seed=self._seed()
            )
        except ValueError as error:
            show_error(f"Split: {error}")
            return []
        self.model.ensure(new_ids)
        editing.apply_to_layer(self.layer, edit)
        return [phase_id, *new_ids]

    def _seed(self) -> int:
        return int(getattr(getattr(self.result, "settings", None), "seed", 0) or 0)

    def _choose_export_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export phases to folder")
        if folder:
            self.export_to(folder)

    def export_to(self, out_dir: str | Path) -> dict[str, Path]:
        """Export the result with the layer's edited labels and names to ``out_dir``."""
        from napari.utils.notifications import show_info

        from napari_sigma.io.export import export_result

        labels = np.asarray(self.layer.data)
        names = [self.model.name(k) for k in range(1, int(labels.max(initial=0)) + 1)]
        written = export_result(self.result, out_dir, labels=labels, names=names)
        show_info(f"Exported {len(written)} files to {out_dir}")
        return written

    # -- spectra -----------------------------------------------------------------------------
    def refresh_spectra(self) -> None:
        """Plot the mean spectra of the selected phases (all phases when none is selected)."""
        table, model, result = self.table_data, self.model, self.result
        if table is None or model is None or result is None:
            self.spectrum_plot.set_spectra(np.zeros(0), {})
            return
        ids = self.selected_ids() or self._row_ids
        index = self._row_of_phase(table)
        spectra = {model.name(i): table.mean_spectra[index[i]] for i in ids if i in index}
        colors = {model.name(i): hex_color(model.color(i)) for i in ids}
        self.spectrum_plot.set_spectra(result.image.energy.energies, spectra, colors)
        self.spectrum_plot.set_markers(line_energies(result.lines))
