"""The Phases table says which names the measurement does not resolve from other minerals: a
mark on the mineral cell and a tooltip naming them (issue #10: magnetite / hematite)."""

from __future__ import annotations

import os

import pytest
from test_editing import make_fake_result
from test_phases_widget import header_reads_whole, reads_whole

from napari_sigma._napari.results import add_result_layers
from napari_sigma.minerals.identify import Identification
from napari_sigma.minerals.phases import PhaseMineral

pytestmark = pytest.mark.gui


def identification(name, score, unresolved=()):
    return Identification(name=name, mineral=name, score=score, alternatives=[], series=None,
                          fractions={}, group="", density=5.0, trace=[], formula="",
                          unknown=False, unresolved=list(unresolved))  # fmt: skip


def test_the_mineral_cell_marks_a_name_not_resolved_and_its_tooltip_names_the_others(
    plugin_viewer, dock, qtbot
):
    from napari_sigma._napari.phases_widget import MINERAL_COLUMN

    result = make_fake_result(shape=(12, 18))
    result.phase_names = ["P1 Si", "P2 Fe-O", "P3 Fe"]
    result.phase_minerals = [
        PhaseMineral(1, None, identification("albite", 0.90)),
        PhaseMineral(2, None, identification("hematite", 0.64,
                                             [("maghemite", 0.64), ("magnetite", 0.51)])),
        PhaseMineral(3, None, identification("pyrite", 0.74, [("marcasite", 0.74)])),
    ]  # fmt: skip
    plugin_viewer.window.show()
    add_result_layers(plugin_viewer, result)
    widget = dock(plugin_viewer, "Phases")
    table = widget.table
    qtbot.waitUntil(lambda: table.rowCount() == 3)
    cells = {widget.row_ids()[r]: table.item(r, MINERAL_COLUMN) for r in range(3)}
    assert cells[1].text() == "albite (0.90)" and cells[1].toolTip() == "albite (0.90)"
    assert cells[2].text() == "hematite (0.64) ≈"
    tip = cells[2].toolTip().splitlines()
    assert tip[0] == "hematite (0.64) ≈"
    assert tip[1] == "≈ not resolved from: maghemite 0.64, magnetite 0.51"
    assert "standardless" in tip[2] and "not structure" in tip[2]
    assert cells[3].text() == "pyrite (0.74) ≈" and "marcasite 0.74" in cells[3].toolTip()
    header_tip = table.horizontalHeaderItem(MINERAL_COLUMN).toolTip()
    assert "≈" in header_tip
    for width in (440, 420):  # the dock's table: the mark reads whole with the rest
        table.setFixedWidth(width)
        qtbot.waitUntil(lambda w=width: w - 40 < table.viewport().width() < w)
        assert table.horizontalScrollBar().maximum() == 0
        for column in range(1, table.columnCount()):
            assert header_reads_whole(table, column), (width, column)
            for row in range(3):
                assert reads_whole(table, row, column), (width, row, column)
    shot = os.environ.get("NAPARI_SIGMA_SCREENSHOT_DIR")
    if shot:  # for a person to look at: NAPARI_SIGMA_SCREENSHOT_DIR=/tmp/shots pytest ...
        table.setFixedWidth(440)
        qtbot.wait(50)
        table.grab().save(os.path.join(shot, "phases_table_unresolved.png"))


def test_an_unknown_s_tooltip_says_why_its_closest_mineral_is_ruled_out(plugin_viewer, dock):
    """A ferrite whose own Cr and Ni are not 304's (issue #10) reads "unknown (...)" in the
    Phases table; the tooltip names the closest minerals and why the first is not its name."""
    from napari_sigma._napari.phases_widget import MINERAL_COLUMN
    from napari_sigma.minerals.identify import identify_composition

    ferrite = {"Fe": 66.3, "Cr": 24.8, "Ni": 5.1, "Mn": 1.4, "Si": 1.1, "O": 1.3}
    found = identify_composition(ferrite, {el: 0.3 for el in ferrite})
    result = make_fake_result(shape=(12, 18))
    result.phase_minerals = [PhaseMineral(2, None, found)]
    add_result_layers(plugin_viewer, result)
    widget = dock(plugin_viewer, "Phases")
    row = widget.row_ids().index(2)
    cell = widget.table.item(row, MINERAL_COLUMN)
    assert cell.text() == found.name and found.name.startswith("unknown (Fe2.")
    tip = cell.toolTip().splitlines()
    assert tip[1].startswith("no library mineral matches; closest: stainless steel 304 ")
    assert tip[2] == f"ruled out: {found.ruled_out}"
    assert "Ni 5.2 (9.6)" in tip[2]
