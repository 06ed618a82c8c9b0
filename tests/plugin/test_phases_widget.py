"""The Phases widget follows every edit of a phases Labels layer, and edits it in one undo step."""

from __future__ import annotations

import numpy as np
import pytest
from test_editing import make_fake_result
from waits import HANG_MS

from napari_sigma._napari import phases_table_data, plotting, state
from napari_sigma._napari import phases_widget as pw
from napari_sigma._napari.phases_widget import PhasesWidget
from napari_sigma._napari.results import add_result_layers

pytestmark = pytest.mark.gui


@pytest.fixture
def setup(plugin_viewer, dock):
    viewer = plugin_viewer
    result = make_fake_result(shape=(12, 18))
    layers = add_result_layers(viewer, result)
    widget = dock(viewer, "Phases")
    assert isinstance(widget, PhasesWidget)
    return viewer, result, layers.phases, widget


def expected_pixels(layer) -> dict[int, int]:
    counts = np.bincount(np.asarray(layer.data).ravel())
    return {k: int(n) for k, n in enumerate(counts) if k > 0 and n > 0}


def test_result_layers_have_unique_names_and_the_phase_model(make_napari_viewer):
    viewer = make_napari_viewer()
    result = make_fake_result()
    first = add_result_layers(viewer, result)
    second = add_result_layers(viewer, result)
    assert first.phases.name == "phases (fake)" and second.phases.name == "phases (fake) [2]"
    assert [la.name for la in first.components] == ["components (fake)"]
    assert [la.name for la in second.components] == ["components (fake) [2]"]
    assert first.components[0].data.shape == (2, *result.labels.shape)  # one layer, a slider
    components = np.asarray(first.components[0].data)
    np.testing.assert_array_equal(components, np.moveaxis(result.abundances, -1, 0))
    # the result's maps as they are (no transposing copy in napari's main thread: 17-90 ms)
    assert np.shares_memory(components, result.abundances)
    assert not first.phases.visible and second.phases.visible  # the earlier result is hidden
    model = state.plugin_data(first.phases)["phases"]
    assert [p.name for p in model] == result.phase_names
    assert state.result_of(first.phases) is result
    assert first.phases.data is not result.labels  # edits never touch the result
    np.testing.assert_allclose(first.phases.colormap.map(np.array([2]))[0], model.color(2))


def test_table_follows_strokes_fills_undo_and_redo_exactly(setup):
    _, _, layer, widget = setup
    assert widget.layer is layer and widget.row_pixels() == expected_pixels(layer)
    count_item = widget.table.item(0, 2)
    layer.brush_size = 3
    with layer.block_history():  # a plugin-style stroke: one event after the write
        layer.paint((5, 2), 2)
    assert widget.row_pixels() == expected_pixels(layer)
    assert widget.table.item(0, 2) is count_item  # same rows: cells updated in place
    layer.paint((8, 14), 1)  # a bare paint: its paint event comes before the write
    assert widget.row_pixels() == expected_pixels(layer)
    layer.data_setitem((np.array([0, 1]), np.array([17, 17])), 2)
    assert widget.row_pixels() == expected_pixels(layer)
    layer.fill((0, 0), 3)  # the (contiguous) part of phase 1 around (0, 0)
    assert widget.row_pixels() == expected_pixels(layer)
    before_undo = expected_pixels(layer)
    layer.undo()
    assert widget.row_pixels() == expected_pixels(layer) != before_undo
    layer.redo()
    assert widget.row_pixels() == expected_pixels(layer) == before_undo


def test_new_label_gets_a_row_with_generated_name_and_colour(setup):
    _, _, layer, widget = setup
    with layer.block_history():
        layer.paint((6, 9), 9)
    assert widget.row_ids() == [1, 2, 3, 9]
    assert widget.row_pixels() == expected_pixels(layer)
    assert widget.table.item(3, 1).text() == "phase 9"
    colour = np.asarray(widget.model.color(9))
    np.testing.assert_allclose(layer.colormap.map(np.array([9]))[0], colour)
    assert colour[3] == 1.0


def test_result_layers_are_added_in_turns_and_end_as_napari_makes_them(make_napari_viewer):
    """The phases layer's overlay visuals are built a turn after its insertion, one per turn,
    and napari's brush cursor is built (drawn transparent) before the first click on the brush;
    at the end every overlay is as napari made it, also when the adding stops early."""
    from napari.layers import Labels

    from napari_sigma._napari.results import add_result_layers_stepwise

    def shown(layer):
        return {name for name, overlay in layer._overlays.items() if overlay.visible}

    as_napari_makes_them = shown(Labels(np.zeros((2, 2), np.uint8)))
    assert as_napari_makes_them  # the polygon and brush outlines
    viewer = make_napari_viewer()
    cursor = viewer.canvas.overlays._brush_circle
    opacity = cursor.opacity
    stack = viewer.window._qt_viewer.controls  # napari's layer controls, a page per layer
    pages = stack.count()
    steps = add_result_layers_stepwise(viewer, make_fake_result())
    assert next(steps).components == []  # the components layer built, not yet inserted
    assert next(steps).components == []  # its layer controls built a turn later, unseen
    ahead = stack.widget(pages)
    assert stack.count() == pages + 1 and stack.currentWidget() is not ahead
    canvas = viewer.window._qt_viewer.canvas
    visuals = dict(canvas.layer_to_visual)
    assert next(steps).components == []  # its visual a turn later, not in napari's canvas yet
    assert canvas.layer_to_visual == visuals
    component = next(steps).components[0]  # inserted a turn later, with those controls
    assert component in viewer.layers and ahead.layer is component
    assert stack.widgets[component] is ahead and stack.count() == pages + 1
    assert canvas.layer_to_visual[component].layer is component
    assert canvas.layer_to_visual[component].node.parent is canvas.view.scene
    assert next(steps).phases is None  # the phases layer built, not yet inserted
    assert next(steps).phases is None  # its controls built
    assert next(steps).phases is None  # its visual built
    layer = next(steps).phases
    assert layer in viewer.layers and shown(layer) == set()
    assert type(stack.widgets[layer]).__name__ == "QtLabelsControls" and stack.count() == pages + 2
    pieces = list(steps)
    # + the activation, the brush cursor, and a turn for the result's repaint and one for the
    assert len(pieces) == len(as_napari_makes_them) + 4  # event loop to tick after it
    assert shown(layer) == as_napari_makes_them and viewer.layers.selection.active is layer
    # the cursor stays (transparent) until napari's cursor changes (no repaint of its own)
    assert cursor.visible and cursor.opacity == 0
    viewer.cursor.style = "circle"  # the paint brush: napari shows it, with its opacity
    assert cursor.visible and cursor.opacity == opacity
    viewer.cursor.style = "standard"
    assert not cursor.visible and cursor.opacity == opacity
    steps = add_result_layers_stepwise(viewer, make_fake_result())
    for _ in range(7):  # both built, the components inserted, their controls, visuals built
        next(steps)
    second = next(steps).phases
    steps.close()  # a run discarded while its layers were added
    assert shown(second) == as_napari_makes_them
    pages = stack.count()
    steps = add_result_layers_stepwise(viewer, make_fake_result())
    next(steps), next(steps), next(steps)  # the components layer's controls and visual
    assert stack.count() == pages + 1  # built, the layer not inserted
    steps.close()  # discarded then: its controls leave napari's stack, no layer was added
    assert stack.count() == pages and len(viewer.layers) == 4
    assert set(canvas.layer_to_visual) == set(viewer.layers)
    from napari_sigma._napari.history import history_of

    assert history_of(second) is not None and "phase" in second.features  # connected
    second.mode = "paint"  # napari's tools work on both layers
    layer.mode = "polygon"


@pytest.mark.parametrize("large", [True, False])
def test_statistics_are_built_after_the_last_turn_of_a_results_adding(
    plugin_viewer, dock, monkeypatch, qtbot, large
):
    """The Phases widget follows a run's phases layer from its insertion, but builds its
    statistics (for a large or lazy cube: a worker reading the cube) only once the run's layers
    are all in, in a turn of its own: started in the insertion's turn, the worker competed with
    napari's next insertion turns for the main thread. Meanwhile the layer's phase spectra count
    as pending, so no other widget starts a pass over the cube for them."""
    from napari_sigma._napari.results import add_result_layers_stepwise

    if large:
        monkeypatch.setattr(pw, "SYNC_STATISTICS_BYTES", 0)  # this small cube counts as large
    built, build, turn = [], pw._build_statistics, [0]
    counting = lambda *a: built.append(turn[0]) or build(*a)  # noqa: E731
    monkeypatch.setattr(pw, "_build_statistics", counting)  # in napari's main thread
    monkeypatch.setattr(phases_table_data, "_build_statistics", counting)  # in a worker
    widget = dock(plugin_viewer, "Phases")
    for added in add_result_layers_stepwise(plugin_viewer, make_fake_result(shape=(12, 18))):
        turn[0] += 1
        qtbot.wait(20)  # Qt's event loop runs between the turns, as in the Analysis widget
        if added.phases is not None:
            assert widget.layer is added.phases  # followed at once
            assert state.phase_spectra_pending(added.phases)
            assert widget.table_data is None and not built
    layer = added.phases
    if not large:  # in memory: built at once when the adding ends
        assert built == [turn[0]] and widget.table_data is not None
    qtbot.waitUntil(
        lambda: widget.table_data is not None and not widget.pending_updates(), timeout=HANG_MS
    )
    assert built == [turn[0]] and not state.phase_spectra_pending(layer)
    assert_table_is_a_recount(widget, layer, state.result_of(layer))


def test_without_a_phases_widget_the_phase_spectra_waiters_are_told_when_added(
    make_napari_viewer,
):
    """With no Phases widget to compute the phase spectra, whoever waited for them while the
    layers were added (a Spectrum widget) is told at the end and computes its phase itself."""
    from napari_sigma._napari.results import add_result_layers_stepwise

    viewer = make_napari_viewer()
    told = []
    state.phase_spectra_events.updated.connect(told.append)
    try:
        steps = add_result_layers_stepwise(viewer, make_fake_result())
        *_, added = steps
        assert told == [added.phases] and not state.phase_spectra_pending(added.phases)
        steps = add_result_layers_stepwise(viewer, make_fake_result())
        for _ in range(7):  # both layers built, the components inserted, controls, visuals
            next(steps)
        layer = next(steps).phases
        assert state.phase_spectra_pending(layer) and state.being_added(layer)
        steps.close()  # a run discarded while its layers were added
        assert told[-1] is layer and not state.being_added(layer)
    finally:
        state.phase_spectra_events.updated.disconnect(told.append)


def test_each_piece_of_a_results_adding_is_repainted_a_turn_later_and_waiters_told_after(
    make_napari_viewer, qtbot, monkeypatch
):
    """In a shown window, the repaint of each adding turn is held back to a later turn (on
    llvmpipe a turn's work and the window's compose after it froze napari together: 98 + 70 ms
    for the components layer, JEOL); the canvas with the new layer and the (transparent) brush
    cursor is first drawn in a held turn, where nothing reaches the screen (their first draw
    compiles and uploads: 42 ms of main thread for the cursor, JEOL), then the result shows in
    one repaint; the layers' waiters (the Phases widget's statistics) are told only after it,
    so that their workers do not compete."""
    from vispy import gloo

    from napari_sigma._napari import results
    from napari_sigma._napari.results import add_result_layers_stepwise, paints_held

    viewer = make_napari_viewer()
    viewer.window.show()
    window = viewer.window._qt_window
    qtbot.waitUntil(window.isVisible)
    scene = viewer.window._qt_viewer.canvas._scene_canvas
    cursor = viewer.canvas.overlays._brush_circle
    told, held, cursor_painted, unseen, pieces = [], [], [], [], []
    draw_unseen = results._draw_unseen

    def recording(viewer_, visuals=None):
        scene.set_current()
        before = gloo.read_pixels()
        drawn = draw_unseen(viewer_, visuals)
        scene.set_current()
        phases = pieces[-1].phases if pieces else None
        same = np.array_equal(gloo.read_pixels(), before)  # nothing reached the canvas
        unseen.append((len(pieces), drawn, phases in viewer.layers, cursor.visible, same, visuals))
        return drawn

    monkeypatch.setattr(results, "_draw_unseen", recording)
    state.result_events.added.connect(told.append)
    try:
        summary = []  # the caller's own changes: in a held turn just before the result's repaint
        for added in add_result_layers_stepwise(
            viewer,
            make_fake_result(),
            before_repaint=lambda: summary.append((len(pieces), paints_held(window))),
        ):
            pieces.append(added)
            held.append(paints_held(window))
            if not held[-1] and cursor.visible:  # repainted with the (transparent) cursor
                cursor_painted.append(len(pieces))
            assert not told
            qtbot.waitUntil(lambda: not paints_held(window), timeout=HANG_MS)  # a turn later
        # drawn unseen in three held turns, with the phases layer and the cursor in it: the
        # layer's visual, one of the cursor's circles, the whole canvas
        assert [u[1:5] for u in unseen] == [(True, True, True, True)] * 3
        assert all(held[u[0]] for u in unseen) and [u[0] for u in unseen] == [
            unseen[0][0] + i for i in range(3)
        ]
        layer = pieces[-1].phases
        canvas = viewer.window._qt_viewer.canvas
        assert unseen[0][5] == [canvas.layer_to_visual[layer].node]
        assert type(unseen[1][5][0]).__name__ == "Ellipse" and unseen[2][5] is None
        # two repaints of their own (the caller's first turn, the result), each followed by
        # an empty turn
        assert held.count(False) == 4 and held[1:3] == [False, False]
        assert cursor_painted == [len(pieces) - 1, len(pieces)]
        assert summary == [(len(pieces) - 3, True)] and held[-3:] == [True, False, False]
        # the last turn (clean-up only, after the last repaint) is not held back: no repaint
        layer = pieces[-1].phases
        assert not paints_held(window) and told == [layer] and not state.being_added(layer)
    finally:
        state.result_events.added.disconnect(told.append)


def test_a_held_repaint_paints_what_changed_not_the_whole_window(make_napari_viewer, qtbot):
    """Repaints held back during a result's adding keep what changed: at their release only
    the widgets that changed are painted (turning a window's updates off and on again, as
    before, repainted every widget of napari's window: ~30 ms more of main thread, JEOL)."""
    from qtpy.QtCore import QEvent, QObject
    from qtpy.QtWidgets import QLabel

    from napari_sigma._napari.results import _painted_a_turn_later, paints_held

    viewer = make_napari_viewer()
    viewer.window.show()
    window = viewer.window._qt_window
    qtbot.waitUntil(window.isVisible)
    changed, unchanged = QLabel("before"), QLabel("never changes")
    viewer.window.add_dock_widget(changed, area="right")
    viewer.window.add_dock_widget(unchanged, area="right")
    qtbot.waitUntil(lambda: unchanged.isVisible() and changed.isVisible())
    qtbot.wait(300)  # every first paint done

    class Paints(QObject):
        def __init__(self):
            super().__init__()
            self.widgets = []

        def eventFilter(self, watched, event):
            if event.type() == QEvent.Type.Paint:
                self.widgets.append(watched)
            return False

    paints = Paints()
    changed.installEventFilter(paints)
    unchanged.installEventFilter(paints)
    with _painted_a_turn_later(window):
        assert paints_held(window)
        changed.setText("after")
        qtbot.wait(50)  # the event loop turns: nothing is painted while held
        assert paints.widgets == []
    qtbot.waitUntil(lambda: changed in paints.widgets, timeout=HANG_MS)
    qtbot.wait(100)
    assert not paints_held(window) and unchanged not in paints.widgets


def test_a_new_phase_is_drawn_in_its_colour_at_once_without_a_new_colormap(setup):
    """Ids a uint8 layer can hold are coloured in advance with the colour the model will give
    them: a phase painted or made by an edit is drawn before the table follows, and napari's
    colormap is not rebuilt (a full redraw) when the model adds it; a recolour still reaches it."""
    _, _, layer, widget = setup
    changes = []
    layer.events.colormap.connect(lambda *_: changes.append(1))
    colour = np.asarray(widget.model.color(9))  # the model's colour of a phase it has not yet
    assert 9 not in widget.model
    np.testing.assert_allclose(layer.colormap.map(np.array([9]))[0], colour, atol=1e-6)
    with layer.block_history():
        layer.paint((6, 9), 9)
    assert 9 in widget.model and 9 in widget.row_ids() and changes == []
    widget.model.set_color(9, "red")
    assert changes
    np.testing.assert_allclose(layer.colormap.map(np.array([9]))[0], [1, 0, 0, 1])
    np.testing.assert_allclose(layer.colormap.map(np.array([0]))[0], [0, 0, 0, 0])


def test_merge_is_one_undo_step(setup):
    _, _, layer, widget = setup
    before = np.array(layer.data, copy=True)
    widget.select_ids([2, 3])
    assert widget.merge_selected() == 2
    assert widget.row_ids() == [1, 2]
    assert widget.row_pixels() == {1: int((before == 1).sum()), 2: int((before >= 2).sum())}
    layer.undo()
    np.testing.assert_array_equal(layer.data, before)
    assert widget.row_pixels() == expected_pixels(layer)


def test_a_mineral_identified_before_an_edit_says_so_until_undone(plugin_viewer, dock):
    """The mineral column shows the analysis's identification of the phase it found; after a
    merge (or a stroke) the row's phase is another set of pixels, which only Export identifies
    again: the cell says "before edits" (a user read the merged garnet's 0.59 in the table and
    0.37 in the exported phase_stats.csv). Undone, the cell is the analysis's again."""
    from types import SimpleNamespace

    from napari_sigma._napari.phases_widget import EDITED_MARK, EDITED_NOTE, MINERAL_COLUMN

    minerals = {1: "quartz", 2: "albite", 3: "magnetite"}
    result = make_fake_result(shape=(12, 18))
    result.phase_minerals = [
        SimpleNamespace(phase_id=k, mineral=name, score=0.9, identification=True)
        for k, name in minerals.items()
    ]
    layer = add_result_layers(plugin_viewer, result).phases
    widget = dock(plugin_viewer, "Phases")

    def cells() -> dict[int, tuple[str, str]]:
        items = [widget.table.item(r, MINERAL_COLUMN) for r in range(widget.table.rowCount())]
        return {k: (i.text(), i.toolTip()) for k, i in zip(widget.row_ids(), items, strict=True)}

    assert cells() == {k: (f"{name} (0.90)",) * 2 for k, name in minerals.items()}
    widget.select_ids([2, 3])
    widget.merge_selected()
    merged = cells()
    assert merged[1] == ("quartz (0.90)", "quartz (0.90)")  # its pixels as found
    assert merged[2][0] == f"albite (0.90){EDITED_MARK}"
    assert merged[2][1].splitlines() == [merged[2][0], EDITED_NOTE]
    layer.undo()
    assert cells()[2] == ("albite (0.90)", "albite (0.90)")


@pytest.mark.parametrize("large", [False, True])
def test_strokes_that_swap_pixels_keeping_every_count_mark_the_minerals_until_undone(
    plugin_viewer, dock, qtbot, monkeypatch, MouseEvent, large
):
    """The mark compared a phase's pixel count with the analysis's: two strokes that move as
    many pixels of phase 1 to phase 2 as of phase 2 to phase 1 left every count as found and
    no cell marked, though both phases are other pixels now. It is exact: the phases whose
    pixels differ from those identified, through undo and redo (the Undo and Redo buttons;
    test_sessions: a session saved so reopens so). ``large``: the statistics (and the marks)
    follow the edits from a worker."""
    from types import SimpleNamespace

    from test_sessions import click
    from test_user_workflow import brush_stroke

    from napari_sigma._napari.phases_widget import EDITED_MARK, MINERAL_COLUMN

    if large:
        monkeypatch.setattr(pw, "SYNC_STATISTICS_BYTES", 0)  # this small cube counts as large
    minerals = {1: "quartz", 2: "albite", 3: "magnetite"}
    result = make_fake_result(shape=(12, 18))  # stripes: phase 1 in x 0-5, 2 in 6-11, 3 in 12-17
    result.phase_minerals = [
        SimpleNamespace(phase_id=k, mineral=name, score=0.9, identification=True)
        for k, name in minerals.items()
    ]
    layer = add_result_layers(plugin_viewer, result).phases
    widget = dock(plugin_viewer, "Phases")

    def cells() -> dict[int, str]:
        qtbot.waitUntil(
            lambda: widget.table_data is not None and not widget.pending_updates(),
            timeout=HANG_MS,
        )
        rows = range(widget.table.rowCount())
        texts = [widget.table.item(r, MINERAL_COLUMN).text() for r in rows]
        return dict(zip(widget.row_ids(), texts, strict=True))

    plain = {k: f"{name} (0.90)" for k, name in minerals.items()}
    swapped = {**plain, 1: plain[1] + EDITED_MARK, 2: plain[2] + EDITED_MARK}
    assert cells() == plain
    layer.mode, layer.brush_size = "paint", 1
    layer.selected_label = 2
    brush_stroke(layer, MouseEvent, (2, 1), (2, 4))  # phase 1's pixels to phase 2
    taken = int(np.count_nonzero((result.labels == 1) & (layer.data == 2)))
    assert taken >= 3 and np.count_nonzero(layer.data != result.labels) == taken
    assert cells() == swapped  # (counts differ: marked before too)
    layer.selected_label = 1
    brush_stroke(layer, MouseEvent, (7, 7), (7, 7 + taken - 1))  # as many of phase 2's back
    assert np.count_nonzero((result.labels == 2) & (layer.data == 1)) == taken
    assert expected_pixels(layer) == {k: int((result.labels == k).sum()) for k in minerals}
    assert cells() == swapped  # every count as found, the pixels not
    assert widget.row_pixels() == expected_pixels(layer)
    click(widget, "Undo")  # the second stroke
    assert cells() == swapped
    click(widget, "Undo")  # the first: the analysis's pixels again
    np.testing.assert_array_equal(layer.data, result.labels)
    assert cells() == plain
    click(widget, "Redo")
    click(widget, "Redo")
    assert cells() == swapped


def test_a_map_under_a_square_micrometre_shows_its_areas_in_nm2(plugin_viewer, dock):
    """test_TEM.bcf (STEM, 64² pixels of 0.77 nm) through napari: its one phase covered
    "0.002435" µm², a 57-pixel stroke "3.388e-05". A map under a µm² shows nm²; a larger one
    keeps µm², whatever its pixels' unit (the JEOL map: 512² pixels of 8.7 nm, 20 µm²)."""
    import dataclasses

    stem = make_fake_result(shape=(12, 18))
    stem.image = dataclasses.replace(stem.image, pixel_size=0.77, pixel_unit="nm")
    add_result_layers(plugin_viewer, stem)
    widget = dock(plugin_viewer, "Phases")
    column = pw.COLUMNS.index("area µm²")  # its header: "area nm²" or "area µm²"
    assert widget.table.horizontalHeaderItem(column).text().split() == ["area", "nm²"]
    pixels = widget.row_pixels()
    rows = widget._visual_rows().items()
    areas = {k: float(widget.table.item(r, column).text()) for k, r in rows}
    assert areas == {k: float(f"{n * 0.77**2:.4g}") for k, n in pixels.items()}
    for shape, size, unit in (((12, 18), 0.5, "µm"), ((120, 180), 8.7, "nm")):  # 54, 1.6 µm²
        large = make_fake_result(shape=shape)
        large.image = dataclasses.replace(large.image, pixel_size=size, pixel_unit=unit)
        add_result_layers(plugin_viewer, large)
        assert widget.layer is not None and state.result_of(widget.layer) is large
        assert widget.table.horizontalHeaderItem(column).text().split() == ["area", "µm²"]
        pixel_um2 = (size if unit == "µm" else size / 1e3) ** 2
        rows = widget._visual_rows().items()
        areas = {k: float(widget.table.item(r, column).text()) for k, r in rows}
        assert areas == {k: float(f"{n * pixel_um2:.4g}") for k, n in widget.row_pixels().items()}


def test_an_unknown_phase_s_mineral_cell_shows_no_score_and_names_the_closest(plugin_viewer, dock):
    """An unknown phase's identification carries the closest mineral's score: "unknown
    (Cu9.31Al1.00) (0.01)" read as a score of the unknown (Hitachi, 16x16 files). The cell
    shows the name; its tooltip names the closest minerals and their scores. A phase with no
    signal of its own (JEOL's hole: 0.08 counts/px of stray Cu, names18b) has no score (NaN):
    its cell read "no signal (0.08 counts/px) (nan)"; it shows the name, the phase's note in its
    tooltip."""
    from types import SimpleNamespace

    from napari_sigma._napari.phases_widget import MINERAL_COLUMN

    result = make_fake_result(shape=(12, 18))
    unknown = SimpleNamespace(unknown=True, unresolved=[],
                              alternatives=[("cuprite", 0.01), ("tenorite", 0.0)])  # fmt: skip
    empty = SimpleNamespace(unknown=False, unresolved=[], group="no signal")
    result.phase_minerals = [
        SimpleNamespace(phase_id=1, mineral="quartz", score=0.9, identification=True),
        SimpleNamespace(phase_id=2, mineral="unknown (Cu9.31Al1.00)", score=0.01,
                        identification=unknown),
        SimpleNamespace(phase_id=3, mineral="no signal (0.08 counts/px)", score=float("nan"),
                        identification=empty, note="no signal of its own: only stray X-rays"),
    ]  # fmt: skip
    add_result_layers(plugin_viewer, result)
    widget = dock(plugin_viewer, "Phases")
    items = {k: widget.table.item(r, MINERAL_COLUMN) for r, k in enumerate(widget.row_ids())}
    assert items[1].text() == "quartz (0.90)"
    assert items[2].text() == "unknown (Cu9.31Al1.00)"
    assert items[2].toolTip().splitlines() == [
        "unknown (Cu9.31Al1.00)",
        "no library mineral matches; closest: cuprite 0.01, tenorite 0.00",
    ]
    assert items[3].text() == "no signal (0.08 counts/px)"
    assert items[3].toolTip().splitlines() == [
        "no signal (0.08 counts/px)",
        "no signal of its own: only stray X-rays",
    ]


def test_an_uncalibrated_map_s_result_layers_share_the_file_layers_units(plugin_viewer):
    """A map without a spatial calibration (Hitachi_TM3030Plus.bcf: unit "pix"): the file's
    layers are in pixels, the cube's first axis in keV; the component maps' layer had no units
    (napari's default on its first axis too), and napari told the user "Inconsistent units
    across layers" twice as the result came in."""
    import dataclasses

    from napari.layers import Layer

    from napari_sigma._napari.layers import spectrum_image_layers

    result = make_fake_result(shape=(12, 18))
    result.image = dataclasses.replace(result.image, pixel_unit="pix")
    assert result.image.pixel_size_um is None
    for data, kwargs, kind in spectrum_image_layers(result.image):
        plugin_viewer.add_layer(Layer.create(data, kwargs, kind))
    add_result_layers(plugin_viewer, result)
    # what napari's canvas checks at its next draw (None: the warning)
    assert plugin_viewer.layers.extent.units is not None, [
        (layer.name, [str(u) for u in layer.units]) for layer in plugin_viewer.layers
    ]


def test_an_uncalibrated_map_s_areas_say_why_they_are_missing(plugin_viewer, dock, qtbot):
    """Hitachi_TM3030Plus.bcf through napari (qa20's session): no pixel size, and its "area µm²"
    cells were empty with no word why. They show a dash, and its tooltip says why; area % stays."""
    import dataclasses

    from napari_sigma._napari.phases_widget import AREA_COLUMN, NO_AREA, NO_AREA_NOTE

    result = make_fake_result(shape=(12, 18))
    result.image = dataclasses.replace(result.image, pixel_unit="pix")
    add_result_layers(plugin_viewer, result)
    widget = dock(plugin_viewer, "Phases")
    table = widget.table
    qtbot.waitUntil(lambda: table.rowCount() == 3 and widget.table_data is not None)
    for row in range(3):
        assert table.item(row, AREA_COLUMN).text() == NO_AREA
        assert table.item(row, AREA_COLUMN).toolTip() == NO_AREA_NOTE
        assert 0 < float(table.item(row, AREA_COLUMN - 1).text()) < 100  # area %


def test_split_unassign_and_rename(setup):
    _, result, layer, widget = setup
    parts = widget.split_selected(1, 2)
    assert parts == [1, 4]
    left = np.zeros(layer.data.shape, dtype=bool)
    left[:, :3] = True  # the fake latent separates the left and right half of phase 1
    stripe = result.labels == 1
    halves = {
        tuple(np.unique(layer.data[stripe & left])),
        tuple(np.unique(layer.data[stripe & ~left])),
    }
    assert halves == {(1,), (4,)}
    assert widget.row_pixels() == expected_pixels(layer)
    widget.unassign_selected([3])
    assert 3 not in widget.row_ids() and not (layer.data == 3).any()
    widget.table.item(widget.row_ids().index(2), 1).setText("albite")  # a user edit of the cell
    assert widget.model.name(2) == "albite"


def test_spectra_of_selected_phases_are_their_mean_spectra(setup):
    _, result, layer, widget = setup
    widget.select_ids([2])
    widget.refresh_spectra()
    spectra = widget.spectrum_plot.spectra
    assert list(spectra) == [widget.model.name(2)]
    counts = np.asarray(result.image.counts, dtype=np.float64)
    np.testing.assert_allclose(spectra[widget.model.name(2)], counts[layer.data == 2].mean(0))
    assert set(widget.spectrum_plot.markers) == set(result.lines)


def test_widget_follows_the_active_phases_layer(plugin_viewer, dock):
    viewer = plugin_viewer
    widget = dock(viewer, "Phases")
    assert widget.layer is None
    first = add_result_layers(viewer, make_fake_result()).phases
    assert widget.layer is first
    second = add_result_layers(viewer, make_fake_result(seed=1)).phases
    viewer.layers.selection.active = second
    assert widget.layer is second
    viewer.layers.remove(second)
    assert widget.layer is first


def test_names_reach_the_status_bar_empty_names_and_lone_merges_are_refused(setup, monkeypatch):
    import napari.utils.notifications as notifications

    _, _, layer, widget = setup
    row = widget.row_ids().index(2)
    widget.table.item(row, 1).setText("quartz")  # a user edit of the cell
    status = layer.get_status(tuple(np.argwhere(layer.data == 2)[0]), world=False)
    assert "phase: quartz" in status["value"]
    widget.table.item(row, 1).setText("  ")  # an empty name keeps the old one, in the cell too
    assert widget.model.name(2) == "quartz" and widget.table.item(row, 1).text() == "quartz"
    messages = []
    monkeypatch.setattr(notifications, "show_info", messages.append)
    widget.select_ids([2])
    before = np.array(layer.data, copy=True)
    assert widget.merge_selected() is None
    assert "at least two" in messages[-1]
    np.testing.assert_array_equal(layer.data, before)


def test_columns_sort_numerically_and_edits_follow_the_sorted_rows(setup):
    from qtpy.QtCore import Qt

    _, _, layer, widget = setup
    pixels = widget.row_pixels()
    widget.table.sortByColumn(2, Qt.SortOrder.DescendingOrder)
    shown = [int(widget.table.item(r, 2).text()) for r in range(widget.table.rowCount())]
    assert shown == sorted(pixels.values(), reverse=True)
    with layer.block_history():
        layer.paint((5, 2), 3)
    assert widget.row_pixels() == expected_pixels(layer)
    widget.select_ids([1, 3])
    assert sorted(widget.selected_ids()) == [1, 3]


def test_renames_and_label_edits_undo_in_order_with_ctrl_z_and_the_buttons(setup, qtbot):
    from qtpy.QtCore import Qt

    from napari_sigma._napari.phases_widget import NAME_COLUMN

    viewer, _, layer, widget = setup
    model = state.plugin_data(layer)["phases"]
    original_name, original = model.name(1), np.array(layer.data, copy=True)
    widget.table.item(widget._visual_rows()[1], NAME_COLUMN).setText("quartz")  # a user's edit
    assert model.name(1) == "quartz"
    with layer.block_history():
        layer.paint((5, 2), 2)  # a label edit after the rename
    painted = np.array(layer.data, copy=True)
    assert not np.array_equal(painted, original)
    widget.table.item(widget._visual_rows()[2], NAME_COLUMN).setText("albite")

    viewer.layers.selection.active = layer
    canvas = viewer.window._qt_viewer.canvas.native
    ctrl = Qt.KeyboardModifier.ControlModifier
    qtbot.keyClick(canvas, Qt.Key.Key_Z, ctrl)  # napari's Undo key on the layer: the last rename
    assert model.name(2) != "albite" and model.name(1) == "quartz"
    np.testing.assert_array_equal(layer.data, painted)
    qtbot.keyClick(canvas, Qt.Key.Key_Z, ctrl)  # then the stroke
    np.testing.assert_array_equal(layer.data, original)
    assert model.name(1) == "quartz"
    assert widget.undo() == "rename"  # the Undo button: the first rename
    assert model.name(1) == original_name
    assert widget.table.item(widget._visual_rows()[1], NAME_COLUMN).text() == original_name
    assert widget.row_pixels() == expected_pixels(layer)

    assert widget.redo() == "rename" and model.name(1) == "quartz"
    qtbot.keyClick(canvas, Qt.Key.Key_Z, ctrl | Qt.KeyboardModifier.ShiftModifier)
    np.testing.assert_array_equal(layer.data, painted)  # the stroke again
    assert widget.row_pixels() == expected_pixels(layer)
    widget.rename(1, "feldspar")  # a new edit: nothing left to redo
    assert widget.redo() is None and model.name(1) == "feldspar"


def reads_whole(table, row: int, column: int) -> bool:
    """Whether a cell shows all of its text: every word within the column (the cell's text
    margins off), the lines it wraps to within the row's height."""
    from qtpy.QtCore import QRect, Qt
    from qtpy.QtWidgets import QStyle

    text = table.item(row, column).text()
    margin = 2 * (table.style().pixelMetric(QStyle.PixelMetric.PM_FocusFrameHMargin) + 1)
    width = table.columnWidth(column) - margin
    metrics = table.fontMetrics()
    if any(metrics.horizontalAdvance(word) > width for word in text.split()):
        return False
    flags = int(Qt.TextFlag.TextWordWrap.value)
    return metrics.boundingRect(QRect(0, 0, width, 10_000), flags, text).height() <= (
        table.rowHeight(row)
    )


def header_reads_whole(table, column: int) -> bool:
    header = table.horizontalHeader()
    return header.sectionSizeHint(column) <= table.columnWidth(column)


def test_every_column_reads_whole_in_a_narrow_table_without_scrolling(plugin_viewer, dock, qtbot):
    """At the dock's width (the README's 1920x1080 screenshots: the Phases table of a 460 px dock
    elided "P3 orthoclase" to "P3 ..." and cut the "elements" header) every header and cell reads
    whole: the numeric headers take two lines, text cells wrap at spaces (their rows grow),
    nothing scrolls sideways. Only a table too narrow for its longest words elides cells (the
    full text in tooltips). (Until the tenth session the name and elements columns were elided
    so that the mineral column stayed whole.)"""
    from types import SimpleNamespace

    from napari_sigma._napari.phases_widget import ELEMENTS_COLUMN, MINERAL_COLUMN, NAME_COLUMN

    result = make_fake_result(shape=(12, 18))
    result.phase_names = ["P1 orthoclase-rich rim", "P2 Si", "P3 Fe"]
    result.phase_minerals = [
        SimpleNamespace(phase_id=k, mineral=name, score=0.97, identification=True)
        for k, name in ((1, "orthoclase"), (2, "clinopyroxene"), (3, "magnetite"))
    ]
    plugin_viewer.window.show()  # a hidden table gets no resize events (its columns follow them)
    add_result_layers(plugin_viewer, result)
    widget = dock(plugin_viewer, "Phases")
    table = widget.table
    qtbot.waitUntil(lambda: table.rowCount() == 3)
    minerals = {table.item(r, MINERAL_COLUMN).text() for r in range(3)}
    assert minerals == {"orthoclase (0.97)", "clinopyroxene (0.97)", "magnetite (0.97)"}
    for width in (440, 420):  # the dock's (460 px) table and narrower; the contents need ~470
        table.setFixedWidth(width)
        qtbot.waitUntil(lambda w=width: w - 40 < table.viewport().width() < w)
        shown = sum(table.columnWidth(c) for c in range(table.columnCount()))
        assert shown <= table.viewport().width() and table.horizontalScrollBar().maximum() == 0
        for column in range(1, table.columnCount()):
            assert header_reads_whole(table, column), (width, column)
            for row in range(3):
                assert reads_whole(table, row, column), (width, row, column)
        assert max(table.rowHeight(r) for r in range(3)) > pw.ROW_HEIGHT  # a cell wrapped
    widget.rename(2, "P2 a much longer name than before")  # the columns follow a rename
    assert all(reads_whole(table, 1, c) for c in range(1, table.columnCount()))
    table.setFixedWidth(300)  # too narrow for whole words: elided, never scrolled
    qtbot.waitUntil(lambda: 260 < table.viewport().width() < 300)
    shown = sum(table.columnWidth(c) for c in range(table.columnCount()))
    assert shown <= table.viewport().width() and table.horizontalScrollBar().maximum() == 0
    assert not all(reads_whole(table, r, c) for r in range(3) for c in range(1, 7))  # elided
    for row in range(3):  # cells that may be elided keep their whole text in a tooltip
        for column in (NAME_COLUMN, ELEMENTS_COLUMN, MINERAL_COLUMN):
            item = table.item(row, column)
            assert item.toolTip() == item.text() != ""


def test_every_header_reads_whole_beside_a_real_map_s_long_names(plugin_viewer, dock, qtbot):
    """The 30x30 .bcf's phases through napari (a user's session, seventeenth): long names and
    minerals ("P5 tschermakite + pseudobrookite (70:30)", "garnet Grs49Alm37Prp13", "before
    edits") left the table too narrow for whole words at the dock's width; the elements column
    was elided first, down to 40 px, and its header read "ement". A header is the column's
    name: it takes two lines ("ele-/ments") and the cells are elided before any header (their
    whole text in tooltips); only a table narrower still cuts headers, never scrolls."""
    from types import SimpleNamespace

    from napari_sigma._napari.phases_widget import ELEMENTS_COLUMN, MINERAL_COLUMN, NAME_COLUMN

    result = make_fake_result(shape=(12, 18))
    result.phase_names = [
        "P1 garnet Alm51Prp46 + K 0.5 wt%",
        "P5 tschermakite + pseudobrookite (70:30)",
        "P6 garnet Grs49Alm37Prp13",
    ]
    minerals = ("garnet Alm51Prp46", "tschermakite + pseudobrookite (70:30)",
                "garnet Grs49Alm37Prp13")  # fmt: skip
    result.phase_minerals = [
        SimpleNamespace(phase_id=k, mineral=name, score=0.59, identification=True)
        for k, name in enumerate(minerals, start=1)
    ]
    plugin_viewer.window.show()  # a hidden table gets no resize events (its columns follow them)
    add_result_layers(plugin_viewer, result)
    widget = dock(plugin_viewer, "Phases")
    table = widget.table
    qtbot.waitUntil(lambda: table.rowCount() == 3)
    widget.merge_selected([1, 2])  # "..., before edits": longer still
    qtbot.waitUntil(lambda: table.rowCount() == 2)
    for width in (440, 400, 300):
        table.setFixedWidth(width)
        qtbot.waitUntil(lambda w=width: w - 40 < table.viewport().width() < w)
        shown = sum(table.columnWidth(c) for c in range(table.columnCount()))
        assert shown <= table.viewport().width() and table.horizontalScrollBar().maximum() == 0
        for column in range(1, table.columnCount()):
            label = table.horizontalHeaderItem(column).text()
            assert header_reads_whole(table, column) or width < 400, (width, column, label)
        for row in range(table.rowCount()):
            for column in (NAME_COLUMN, ELEMENTS_COLUMN, MINERAL_COLUMN):
                item = table.item(row, column)
                assert item.toolTip().splitlines()[0] == item.text() != ""


def test_a_long_name_and_its_long_mineral_share_the_lines_they_wrap_to(plugin_viewer, dock, qtbot):
    """P45_the_default_job.bcf through napari (qa18's session): after an edit the mineral cell
    "alkali feldspar Or54 + quartz (60:40) (0.20), before edits" wrapped to 8 lines in a
    column narrowed to its longest word, beside its name "P1 alkali feldspar Or54 + quartz
    (60:40)" on 2 lines in a column kept wide: one row took a third of the table. The name and
    mineral columns now give way together, the wider first: the row wraps to half as many
    lines, and every header and word still reads whole."""
    from types import SimpleNamespace

    from napari_sigma._napari.phases_widget import MINERAL_COLUMN, NAME_COLUMN

    result = make_fake_result(shape=(12, 18))
    result.phase_names = ["P1 alkali feldspar Or54 + quartz (60:40)", "P2 plagioclase An37",
                          "P3 biotite Phl62"]  # fmt: skip
    minerals = ("alkali feldspar Or54 + quartz (60:40)", "plagioclase An37", "biotite Phl62")
    result.phase_minerals = [
        SimpleNamespace(phase_id=k, mineral=name, score=0.2, identification=True)
        for k, name in enumerate(minerals, start=1)
    ]
    plugin_viewer.window.show()  # a hidden table gets no resize events (its columns follow them)
    add_result_layers(plugin_viewer, result)
    widget = dock(plugin_viewer, "Phases")
    table = widget.table
    qtbot.waitUntil(lambda: table.rowCount() == 3)
    widget.merge_selected([1, 3])  # P1's cell: "..., before edits"
    qtbot.waitUntil(lambda: table.rowCount() == 2)
    table.setFixedWidth(440)  # the dock's width
    qtbot.waitUntil(lambda: 400 < table.viewport().width() < 440)
    row = widget.row_ids().index(1)
    assert table.item(row, MINERAL_COLUMN).text().endswith("before edits")
    line = table.fontMetrics().lineSpacing()
    lines = table.rowHeight(row) / line
    assert lines <= 5, (lines, table.columnWidth(NAME_COLUMN), table.columnWidth(MINERAL_COLUMN))
    assert sum(table.columnWidth(c) for c in range(table.columnCount())) <= table.viewport().width()
    for column in range(1, table.columnCount()):
        assert header_reads_whole(table, column), table.horizontalHeaderItem(column).text()


def test_a_name_of_one_long_word_is_elided_no_more_than_its_mineral(plugin_viewer, dock, qtbot):
    """16x16_12bit_packed_8bit.bcf through napari (qa20's session): its one phase, "P1 unknown
    (C5.13Si1.58Ti1.00Ce0.51Ca0.37Fe0.35O3.95)", has a word wider than the table can wrap to;
    the name column was elided first, alone, down to its header ("P1 / unk... / (C5...." in 45
    px) while the mineral column kept 205 px. Eliding, too, the two columns give way together,
    the wider first: the name reads "P1 unknown" whole and neither column is the other's prey."""
    from types import SimpleNamespace

    from napari_sigma._napari.phases_widget import MINERAL_COLUMN, NAME_COLUMN

    formula = "(C5.13Si1.58Ti1.00Ce0.51Ca0.37Fe0.35O3.95)"
    result = make_fake_result(shape=(12, 18))
    result.phase_names = [f"P1 unknown {formula}", "P2 Si", "P3 Fe"]
    result.phase_minerals = [
        SimpleNamespace(phase_id=k, mineral=name, score=0.0, identification=True)
        for k, name in ((1, f"unknown {formula}"), (2, "quartz"), (3, "magnetite"))
    ]
    plugin_viewer.window.show()  # a hidden table gets no resize events (its columns follow them)
    add_result_layers(plugin_viewer, result)
    widget = dock(plugin_viewer, "Phases")
    table = widget.table
    qtbot.waitUntil(lambda: table.rowCount() == 3)
    table.setFixedWidth(460)  # the 16x16 session's Phases dock
    qtbot.waitUntil(lambda: 420 < table.viewport().width() < 460)
    name, mineral = table.columnWidth(NAME_COLUMN), table.columnWidth(MINERAL_COLUMN)
    assert sum(table.columnWidth(c) for c in range(table.columnCount())) <= table.viewport().width()
    assert table.horizontalScrollBar().maximum() == 0
    assert name >= table.fontMetrics().horizontalAdvance("P1 unknown"), (name, mineral)
    assert abs(name - mineral) <= 2, (name, mineral)  # both elided, to the same width
    for column in range(1, table.columnCount()):
        assert header_reads_whole(table, column), table.horizontalHeaderItem(column).text()
    row = widget.row_ids().index(1)
    assert table.item(row, NAME_COLUMN).toolTip() == f"P1 unknown {formula}"


def test_phases_layer_is_uint8_and_widens_past_255_keeping_the_undo_history(setup):
    from napari_sigma._napari import editing

    _, result, layer, widget = setup
    assert layer.data.dtype == np.uint8  # napari draws it without a per-pixel remap
    np.testing.assert_array_equal(layer.data, result.labels)
    before = np.array(layer.data, copy=True)
    with layer.block_history():
        layer.paint((5, 2), 2)
    painted = np.array(layer.data, copy=True)
    edit = editing.merge_phases(np.asarray(layer.data), [2], 300)  # beyond uint8: never wraps
    editing.apply_to_layer(layer, edit)
    assert layer.data.dtype == np.int32
    assert 300 in widget.row_ids() and widget.row_pixels() == expected_pixels(layer)
    np.testing.assert_array_equal(layer.data, np.where(painted == 2, 300, painted.astype(np.int32)))
    widget.undo()  # the merge, then the stroke made while the layer was uint8
    np.testing.assert_array_equal(layer.data, painted)
    widget.undo()
    np.testing.assert_array_equal(layer.data, before)
    assert widget.row_pixels() == expected_pixels(layer)


def test_selecting_the_last_uint8_label_widens_so_new_labels_go_on(setup):
    _, _, layer, widget = setup
    layer.selected_label = 254
    assert layer.data.dtype == np.uint8
    layer.selected_label = 255  # napari's spin box stops at the dtype's maximum: widen first
    assert layer.data.dtype == np.int32
    layer.selected_label = 256
    with layer.block_history():
        layer.paint((6, 9), 256)
    assert 256 in widget.row_ids() and widget.row_pixels() == expected_pixels(layer)


def test_a_stroke_updates_the_table_once_when_released_not_at_every_move(
    setup, monkeypatch, MouseEvent, qtbot
):
    from test_user_workflow import brush_stroke

    from napari_sigma.phases.statistics import PhaseStatistics

    viewer, _, layer, widget = setup
    viewer.window.show()  # drawn: napari then updates the texture in place at every move
    qtbot.wait(100)
    updates = []
    update = PhaseStatistics.update
    monkeypatch.setattr(
        PhaseStatistics, "update", lambda self, *a, **k: updates.append(1) or update(self, *a, **k)
    )
    moves = []
    layer.events.labels_update.connect(lambda *_: moves.append(1))
    layer.mode, layer.brush_size, layer.selected_label = "paint", 2, 2
    before = expected_pixels(layer)
    updates.clear()
    brush_stroke(layer, MouseEvent, (2, 1), (2, 16))
    assert expected_pixels(layer) != before
    assert len(moves) >= 2  # napari refreshed the texture during the stroke
    assert len(updates) == 1  # the release (paint event); the moves' syncs are deferred
    assert widget.row_pixels() == expected_pixels(layer)
    qtbot.wait(2 * pw.SYNC_DELAY_MS)  # the deferred sync finds nothing new
    assert widget.row_pixels() == expected_pixels(layer)


def test_a_new_label_in_the_middle_of_a_stroke_replots_the_spectra_only_at_its_release(
    setup, qtbot, MouseEvent
):
    """The table follows a stroke a few times a second and names a phase painted with a new
    label at once, but the spectra plot (a rendering holding the GIL ~0.1 s at 1024², which
    stretched napari's frames during the stroke) follows its release only."""
    from napari.utils._proxies import ReadOnlyWrapper
    from napari.utils.interactions import (
        mouse_move_callbacks,
        mouse_press_callbacks,
        mouse_release_callbacks,
    )

    viewer, _, layer, widget = setup
    viewer.window.show()  # drawn: napari updates the texture in place at every move
    plot = widget.spectrum_plot
    qtbot.waitUntil(lambda: plot.draw_count >= 1 and not plot.canvas.busy, timeout=HANG_MS)
    drawn = plot.draw_count
    layer.mode, layer.brush_size, layer.selected_label = "paint", 2, 9

    def mouse(kind, where, dragging):
        position = tuple(np.asarray(where, dtype=float) * np.asarray(layer.scale))
        event = MouseEvent(type=kind, is_dragging=dragging, position=position, dims_point=position)
        return ReadOnlyWrapper(event)

    mouse_press_callbacks(layer, mouse("mouse_press", (2, 1), False))
    mouse_move_callbacks(layer, mouse("mouse_move", (2, 8), True))
    qtbot.waitUntil(lambda: 9 in widget.row_ids(), timeout=HANG_MS)  # the table followed
    assert 9 in widget.model
    qtbot.wait(pw.SPECTRA_DELAY_MS + 2 * plotting.REDRAW_DELAY_MS)
    assert plot.draw_count == drawn and widget.model.name(9) not in plot.spectra
    mouse_release_callbacks(layer, mouse("mouse_release", (2, 8), False))
    qtbot.waitUntil(lambda: widget.model.name(9) in plot.spectra, timeout=HANG_MS)


def recount(layer, result):
    """The phase table of the layer's labels counted from scratch (no running sums)."""
    from napari_sigma.phases.statistics import phase_table

    return phase_table(
        np.asarray(layer.data), result.image.counts, result.intensities, list(result.lines),
        regions=False,
    )  # fmt: skip


def assert_table_is_a_recount(widget, layer, result):
    table, full = widget.table_data.live(), recount(layer, result).live()
    np.testing.assert_array_equal(table.phase_ids, full.phase_ids)
    np.testing.assert_array_equal(table.pixels, full.pixels)
    np.testing.assert_array_equal(table.mean_spectra, full.mean_spectra)  # exact: integer sums
    np.testing.assert_allclose(table.mean_intensities, full.mean_intensities, rtol=1e-12)
    assert widget.row_pixels() == expected_pixels(layer)


def test_large_cube_statistics_follow_every_edit_from_a_worker_exactly(
    plugin_viewer, dock, monkeypatch, qtbot
):
    """A large (or lazy) cube's statistics are built in a worker and UPDATED there too: a split,
    strokes, a merge and undo change the table only when the worker returns, never in napari's
    main thread, and the table then equals a count from scratch; edits made while an update
    runs are all taken by the next one."""
    import threading
    import time

    from napari_sigma.phases.statistics import PhaseStatistics

    monkeypatch.setattr(pw, "SYNC_STATISTICS_BYTES", 0)  # this small cube counts as large
    threads, update = [], PhaseStatistics.update

    def slow_update(self, *args, **kwargs):  # slow enough that edits arrive while it runs
        threads.append(threading.current_thread())
        time.sleep(0.05)
        return update(self, *args, **kwargs)

    monkeypatch.setattr(PhaseStatistics, "update", slow_update)
    viewer = plugin_viewer
    result = make_fake_result(shape=(12, 18))
    layer = add_result_layers(viewer, result).phases
    widget = dock(viewer, "Phases")
    qtbot.waitUntil(
        lambda: widget.table_data is not None and not widget.pending_updates(), timeout=HANG_MS
    )
    assert_table_is_a_recount(widget, layer, result)
    main = threading.main_thread()
    threads.clear()
    assert widget.split_selected(1, 2) == [1, 4]  # a small phase: clustered at once
    assert widget.pending_updates() and 4 not in widget.row_ids()  # the table follows later
    qtbot.waitUntil(lambda: not widget.pending_updates(), timeout=HANG_MS)
    assert 4 in widget.row_ids()
    assert_table_is_a_recount(widget, layer, result)
    with layer.block_history():  # three edits in a row, while the first one's update runs
        layer.paint((5, 2), 2)
    with layer.block_history():
        layer.paint((8, 14), 7)
    widget.merge_selected([2, 3])
    assert widget.pending_updates()
    qtbot.waitUntil(lambda: not widget.pending_updates(), timeout=HANG_MS)
    assert_table_is_a_recount(widget, layer, result)
    assert 7 in widget.row_ids() and 3 not in widget.row_ids()
    spectra = state.phase_spectra_of(layer)[1]  # handed on to the other widgets: the last one
    np.testing.assert_array_equal(spectra.pixels, widget.table_data.pixels)
    assert not state.phase_spectra_pending(layer)
    layer.undo()
    qtbot.waitUntil(lambda: not widget.pending_updates(), timeout=HANG_MS)
    assert_table_is_a_recount(widget, layer, result)
    assert threads and main not in threads  # every update ran in a worker
    assert len(threads) < 6  # the edits made while one ran were taken together


def test_a_failed_worker_update_says_so_and_the_next_edit_builds_again(
    plugin_viewer, dock, monkeypatch, qtbot
):
    from napari_sigma.phases.statistics import PhaseStatistics

    monkeypatch.setattr(pw, "SYNC_STATISTICS_BYTES", 0)
    viewer = plugin_viewer
    result = make_fake_result(shape=(12, 18))
    layer = add_result_layers(viewer, result).phases
    widget = dock(viewer, "Phases")
    qtbot.waitUntil(
        lambda: widget.table_data is not None and not widget.pending_updates(), timeout=HANG_MS
    )
    update = PhaseStatistics.update
    monkeypatch.setattr(PhaseStatistics, "update", lambda *a, **k: 1 / 0)
    with layer.block_history():
        layer.paint((5, 2), 2)
    qtbot.waitUntil(lambda: "failed" in widget.title.text(), timeout=HANG_MS)
    assert not state.phase_spectra_pending(layer)
    monkeypatch.setattr(PhaseStatistics, "update", update)
    with layer.block_history():
        layer.paint((8, 14), 3)
    qtbot.waitUntil(
        lambda: widget.title.text() == layer.name and not widget.pending_updates(), timeout=HANG_MS
    )
    assert_table_is_a_recount(widget, layer, result)


@pytest.mark.gui
def test_every_button_shows_its_whole_text_in_a_narrow_dock(plugin_viewer, dock, qtbot):
    """Docked at 460 px (napari's right dock at 1920x1080), the buttons' texts were clipped
    ("lerge selectec", "ark unassigne") when five widgets shared one row."""
    from qtpy.QtWidgets import QPushButton

    widget = dock(plugin_viewer, "Phases")
    widget.resize(460, 900)
    widget.show()
    qtbot.waitExposed(widget)
    buttons = widget.findChildren(QPushButton)
    assert buttons
    clipped = [b.text() for b in buttons if b.isVisible() and b.width() < b.sizeHint().width()]
    assert not clipped, clipped


def test_a_new_title_changes_no_geometry_of_the_dock(setup, qtbot):
    """The title above the table (the layer's name, the statistics, the export's folder) takes
    the dock's width whatever its text: a longer text re-laid out the whole dock (every widget
    of it repainted at each change of the title: 4 repaints during an export) and a long
    folder name made the dock wider; the whole text is in its tooltip."""
    widget = setup[-1]
    widget.resize(460, 700)
    widget.layout().activate()
    minimum, table = widget.minimumSizeHint(), widget.table.geometry()
    title = widget.title.geometry()
    text = "exporting to " + "/a/folder/with/a/long/name" * 8 + " ..."
    widget._set_title(text)
    qtbot.wait(50)  # the layout's request processed
    widget.layout().activate()
    assert widget.minimumSizeHint() == minimum and widget.table.geometry() == table
    assert widget.title.geometry() == title and widget.title.toolTip() == text


def test_the_table_is_as_tall_as_its_rows_and_the_phase_spectra_take_the_rest(
    plugin_viewer, dock, qtbot
):
    """In a full-height dock (the README's 1920x1080 screenshots) the table of six phases took
    2/5 of the tab, a third of it empty rows, and the phase spectra's plot the rest: the table
    is now at most as tall as its rows (room for :data:`TABLE_ROOM_ROWS` at least, so that a
    merge or split of a usual map changes no geometry), the plot takes what is left."""
    plugin_viewer.window.show()
    layers = add_result_layers(plugin_viewer, make_fake_result(shape=(12, 18)))
    widget = dock(plugin_viewer, "Phases")
    table = widget.table
    qtbot.waitUntil(lambda: table.rowCount() == 3)
    plugin_viewer.window._qt_window.resize(1600, 1000)  # a full-height dock
    qtbot.waitUntil(lambda: widget.height() > 800)
    qtbot.wait(100)
    rows = max(table.verticalHeader().length(), pw.TABLE_ROOM_ROWS * pw.ROW_HEIGHT)
    fitted = rows + table.horizontalHeader().height() + 2 * table.frameWidth()
    assert table.height() <= max(table.minimumHeight(), fitted) + 1
    below = widget.height() - table.geometry().bottom()  # the buttons' rows, then the plot
    assert widget.spectrum_plot.height() > below - 150
    layer = layers.phases
    layer.brush_size = 1
    with layer.block_history():  # more phases than the room: the table grows with them
        for k in range(pw.TABLE_ROOM_ROWS):
            layer.paint((k, 0), 10 + k)
    qtbot.waitUntil(lambda: table.rowCount() == 3 + pw.TABLE_ROOM_ROWS)
    head = table.horizontalHeader().height()
    assert table.verticalHeader().length() > pw.TABLE_ROOM_ROWS * pw.ROW_HEIGHT
    assert table.maximumHeight() >= table.verticalHeader().length() + head


def test_a_few_pixel_phase_s_noise_leaves_the_intensity_range_to_the_counted_phases(
    plugin_viewer, dock, qtbot, MouseEvent
):
    """16x16_12bit_packed_8bit.bcf through napari (qa17, qa18): a stroke of 4 pixels painted
    with a new label, its mean spectrum spikes of a few counts, set the Phases plot's intensity
    range over the map's 252-pixel phase, which lay flat along the bottom. Here: 5 pixels of
    one count each in one channel (1.0 per pixel) beside phases whose peaks are ~0.3. The range is what the counts show (`plotting.signal_top`): the counted
    phases' peaks fill it, the stroke's noise runs off the top."""
    import dataclasses

    from test_user_workflow import brush_stroke

    result = make_fake_result(shape=(16, 16))  # stripes: phases 1, 2, 3 of 80-96 pixels
    rng = np.random.default_rng(7)
    rates = np.full((3, 300), 0.02)  # a sparse map: 0.3 counts per pixel in a peak's channel
    for k, channel in enumerate((20, 70, 150)):
        rates[k, channel - 2 : channel + 3] = 0.3
    counts = rng.poisson(rates[result.labels - 1]).astype(np.uint16)
    counts[1, :8] = 0
    counts[1, :8, 250] = 1  # the stroke's pixels: one count each in one channel
    result.image = dataclasses.replace(result.image, counts=counts)
    layer = add_result_layers(plugin_viewer, result).phases
    widget = dock(plugin_viewer, "Phases")
    plugin_viewer.window.show()  # the plot draws when shown
    layer.mode, layer.brush_size, layer.selected_label = "paint", 1, 4
    brush_stroke(layer, MouseEvent, (1, 1), (1, 5))
    painted = int(np.count_nonzero(layer.data == 4))
    assert 3 <= painted <= 8 and (layer.data[1, :8] == 4).sum() == painted
    plot = widget.spectrum_plot
    stroke = widget.model.name(4)
    qtbot.waitUntil(lambda: stroke in plot.spectra and len(plot.spectra) == 4, timeout=HANG_MS)
    plot.flush()
    qtbot.waitUntil(lambda: not plot.canvas.busy and not plot._pending, timeout=HANG_MS)
    _, high = plot.canvas.axes.get_ylim()
    spectra = plot.spectra
    counted = max(spectra[widget.model.name(k)][:250].max() for k in (1, 2, 3))
    assert 0.2 <= counted <= 1.0 / 2  # the phases' peaks: below half the stroke's spike
    assert spectra[stroke][250] == 1.0  # one count in each pixel
    assert counted <= high < 1.0  # every counted peak whole; the spike off the top
    assert high <= 1.2 * counted  # the peaks fill the range (matplotlib's 5 % margin)
