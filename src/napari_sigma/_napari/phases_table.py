"""The Phases tab's table as a user reads it: its columns and headers, the widths they take in
a narrow dock (headers in two lines, cells wrapped, then elided), its height, and what a mineral
cell says (score, "≈", "before edits") and its tooltip. :class:`_PhasesTable` holds the
`PhasesWidget` methods that do it.

Moved verbatim from :mod:`napari_sigma._napari.phases_widget` (which still exports every name).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtCore import QEvent, QObject
from qtpy.QtWidgets import QStyle

if TYPE_CHECKING:
    from napari_sigma._napari.phases_widget import PhasesWidget


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
# a map without a pixel size (Hitachi_TM3030Plus.bcf, unit "pix") has no areas: its cells were
# left empty, with no word why
NO_AREA = "–"
NO_AREA_NOTE = "the file gives no pixel size (a spatially uncalibrated map): areas in % only"
ELEMENTS_COLUMN = COLUMNS.index("elements")
MINERAL_COLUMN = COLUMNS.index("mineral")
# the numeric columns' headers in two lines when the table is narrower than its contents (their
# numbers are narrower than "area µm²"), and "elements" hyphenated (its cells' words, "Si,", are
# narrower than its header: the 30x30 .bcf's long names elided that header to "ement")
COMPACT_HEADERS = {"area %": "area\n%", "area µm²": "area\nµm²", "elements": "ele-\nments"}
# then these text columns give way, wrapping their cells at spaces (rows grow) down to their
# longest word or header, in this order; only past that are cells elided (whole in tooltips),
# first down to their headers' widths (a header is the column's name), then below. The mineral
# and name columns give way together, the wider first: a phase's name holds its mineral, and the
# mineral column alone narrowed to its longest word wrapped P45's "alkali feldspar Or54 + quartz
# (60:40) (0.20), before edits" to 8 lines beside its name on 2
# (eliding, too, the name and mineral columns give way together, the wider first: one by one,
# the 16x16 .bcf's single phase "P1 unknown (C5.13Si1.58Ti1.00Ce0.51Ca0.37Fe0.35O3.95)" was
# elided to "P1 / unk... / (C5...." in a 45 px name column beside a 205 px mineral column)
WRAP_ORDER = ((ELEMENTS_COLUMN,), (MINERAL_COLUMN, NAME_COLUMN))
ELIDE_ORDER = (((ELEMENTS_COLUMN, 40),), ((NAME_COLUMN, 48), (MINERAL_COLUMN, 48)))
ROW_HEIGHT = 22
# the table is as tall as its rows, with room for this many at least (so that merges and splits
# of a usual map leave its height alone); the phase spectra's plot below takes the rest of the
# dock: on a 1080-line screen a table of 6 phases kept a third of the tab empty
TABLE_ROOM_ROWS = 8
SWATCH_WIDTH = 22


class _PhasesTable:
    """The table's columns, headers and mineral cells (methods of `PhasesWidget`)."""

    def fit_columns(self) -> None:
        """Size the columns so that every column reads whole in the table's width.

        Columns get their contents' width; where the table is narrower, the numeric columns'
        headers take two lines, then the elements column, then the mineral and name columns
        together (the wider first) wrap their cells at spaces (those rows grow) down to their
        longest word or header; only a table too narrow for that elides cells (their full text
        in tooltips). The mineral column takes the spare
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
        for columns in WRAP_ORDER:
            if overflow > 0:
                overflow = self._narrow_widest_first(columns, overflow)
        header = table.horizontalHeader()
        for whole_headers in (True, False):  # too narrow to wrap whole words: elide the cells,
            for group in ELIDE_ORDER:  # then (narrower still) the headers too
                if overflow <= 0:
                    break
                floors = {
                    column: max(floor, header.sectionSizeHint(column)) if whole_headers else floor
                    for column, floor in group
                }
                overflow = self._narrow_widest_first(tuple(floors), overflow, floors)
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

    def _narrow_widest_first(
        self, columns: tuple[int, ...], overflow: int, floors: dict[int, int] | None = None
    ) -> int:
        """Narrow ``columns`` by ``overflow`` px in all, the widest first (down to the next
        one's width, then those two together...), none below its floor (default: its wrap
        floor); return what is left of ``overflow``."""
        table = self.table
        widths = {c: table.columnWidth(c) for c in columns}
        floor_of = self._wrap_floor if floors is None else floors.__getitem__
        floors = {c: min(widths[c], floor_of(c)) for c in columns}
        while overflow > 0:
            movable = [c for c in columns if widths[c] > floors[c]]
            if not movable:
                break
            top = max(widths[c] for c in movable)
            widest = [c for c in movable if widths[c] == top]
            level = max(
                [floors[c] for c in widest] + [widths[c] for c in movable if widths[c] < top]
            )
            step = min(top - level, -(-overflow // len(widest)))
            for c in widest:
                cut = min(step, overflow)
                widths[c] -= cut
                overflow -= cut
        for c, width in widths.items():
            table.setColumnWidth(c, width)
        return overflow

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
            ruled_out = getattr(found.identification, "ruled_out", "")
            if ruled_out:  # why the closest is not its name: its own elements
                lines.append(f"ruled out: {ruled_out}")
        if text.endswith(EDITED_MARK):
            lines.append(EDITED_NOTE)
        return "\n".join(lines)


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
