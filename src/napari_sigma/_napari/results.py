"""An :class:`~napari_sigma.pipeline.analysis.AnalysisResult` as napari layers.

A run becomes a Labels layer ``"phases (<title>)"`` (coloured by its :class:`PhaseModel`) and one
hidden Image layer ``"components (<title>)"`` holding every unmixed component map (a slider picks
one). Names are made unique (``"phases (<title>) [2]"``): a new run never replaces a layer a user
has edited; it hides the earlier results instead.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np

from napari_sigma._napari import state
from napari_sigma._napari.built_ahead import (
    build_controls,
    build_visual,
    discard_controls,
    discard_visual,
    taken_at_insertion,
)
from napari_sigma._napari.drawing_warm_up import (
    _build_brush_cursor,
    _compile_labels_colouring,
    _draw_unseen,
    _hide_overlays,
    _inserted_inactive,
    _warm_up,
    cursor_circle,
    layer_visual,
    warm_up_labels_drawing,
)
from napari_sigma._napari.layers import (
    COMPONENT_LABEL,
    ENERGY_UNIT,
    energy_tiling,
    spatial_calibration,
)
from napari_sigma._napari.phase_labels import (
    PRECOLORED_IDS,
    SMALL_LABELS,
    WIDE_LABELS,
    _generated_colors,
    _signature,
    connect_colormap,
    ensure_label_capacity,
    label_data,
    label_dtype,
    layer_color_dict,
    layer_colormap,
    phase_features,
)
from napari_sigma._napari.phase_model import PhaseModel
from napari_sigma._napari.window_paints import (
    _make_paint_holder,
    _paint_hold,
    _painted_a_turn_later,
    _qt_window,
    _shown,
    _Turn,
    paints_held,
    release_paints,
)

# moved to phase_labels, window_paints and drawing_warm_up: importable from here as before
__all__ = [
    "PRECOLORED_IDS", "SMALL_LABELS", "WIDE_LABELS", "ResultLayers", "_Turn",
    "_build_brush_cursor", "_compile_labels_colouring", "_component_layer", "_draw_unseen",
    "_generated_colors", "_hide_overlays", "_insert_phases_layer", "_inserted_inactive",
    "_make_paint_holder", "_paint_hold", "_painted_a_turn_later", "_present_ids", "_qt_window",
    "_result_layers_in_pieces", "_shown", "_signature", "_warm_up", "add_result_layers",
    "add_result_layers_stepwise", "connect_colormap", "ensure_label_capacity", "label_data",
    "label_dtype", "layer_color_dict", "layer_colormap", "paints_held", "phase_features",
    "phases_layer_data", "release_paints", "result_title", "spatial_kwargs", "unique_name",
    "warm_up_labels_drawing",
]  # fmt: skip


@dataclass
class ResultLayers:
    """The layers one analysis run added."""

    phases: Any
    components: list[Any] = field(default_factory=list)


def unique_name(viewer: Any, name: str) -> str:
    """``name``, or ``"name [2]"``, ``"name [3]"``... whichever no layer of ``viewer`` has yet."""
    taken = {layer.name for layer in viewer.layers}
    if name not in taken:
        return name
    number = 2
    while f"{name} [{number}]" in taken:
        number += 1
    return f"{name} [{number}]"


def result_title(result: Any, fallback: str = "EDS") -> str:
    """A short title for a result's layers: the image title, file stem, or ``fallback``."""
    image = result.image
    if getattr(image, "title", ""):
        return image.title
    source = getattr(image, "source", None)
    return source.stem if source is not None else fallback


def spatial_kwargs(result: Any) -> dict[str, Any]:
    """Scale and units of full-resolution 2-D layers of ``result``: µm when calibrated, pixels
    when not (as the file's layers: `layers.spatial_calibration`)."""
    size, unit = spatial_calibration(result.image)
    return {"scale": (size, size), "units": (unit, unit)}


# napari draws uint8 labels as they are; wider integers go through a per-pixel remap to the
# texture's dtype (numba, a parallel launch per brush dab: 11 ms each at 1024², profiled) and
# uint16 costs a Python loop over 65536 values per colormap change. Phase ids above this stay int32.
def phases_layer_data(
    result: Any, name: str, model: PhaseModel | None = None, labels: Any = None
) -> tuple[np.ndarray, dict[str, Any]]:
    """Data and keyword arguments of the Labels layer of ``result``: its own copy of the labels
    (``labels``, default the result's) in the smallest dtype napari draws without a remap."""
    labels = result.labels if labels is None else labels
    model = model or PhaseModel.from_names(list(result.phase_names))
    model.ensure(_present_ids(labels))
    kwargs = {
        "name": name,
        "colormap": layer_colormap(model),
        "metadata": state.tag(None, role="phases", result=result, phases=model),
        **spatial_kwargs(result),
    }
    return label_data(labels), kwargs


def _present_ids(labels: Any) -> np.ndarray:
    """The label values present in ``labels`` (ascending): a bincount for non-negative integers
    (np.unique sorts the 1M labels of a 1024² map: ~10 ms of napari's main thread)."""
    flat = np.asarray(labels).ravel()
    if flat.dtype.kind in "bu" or (flat.dtype.kind == "i" and flat.size and flat.min() >= 0):
        return np.flatnonzero(np.bincount(flat, minlength=1))
    return np.unique(flat)


def add_result_layers(
    viewer: Any, result: Any, title: str | None = None, components: bool = True
) -> ResultLayers:
    """Add the layers of one analysis run to ``viewer`` under unique names.

    Parameters
    ----------
    viewer : napari.Viewer
        Where to add them.
    result : AnalysisResult
        The run.
    title : str, optional
        The name in brackets (default: the image's title).
    components : bool
        Also add one Image layer per unmixed component (abundance map).

    Returns
    -------
    ResultLayers
    """
    *_, added = _result_layers_in_pieces(viewer, result, title, components)  # in one go
    return added


def add_result_layers_stepwise(
    viewer: Any,
    result: Any,
    title: str | None = None,
    components: bool = True,
    before_repaint: Callable[[], Any] | None = None,
) -> Iterator[ResultLayers]:
    """:func:`add_result_layers` in pieces, one per turn of Qt's event loop (the Analysis
    widget's way); the pieces are those of :func:`_result_layers_in_pieces`.

    In a shown window each piece's repaint is held back until a later turn
    (:func:`_painted_a_turn_later`): whatever a turn changes on screen is repainted right after
    it, before Qt's timers run, and on llvmpipe (software OpenGL) the window's compose is ~70 ms
    of CPU, so each adding turn froze napari for its own work plus a compose (components layer
    89 + ~70 ms, JEOL, ninth session). Held back, the pieces' turns are short freezes of their
    own, with the event loop running between them, and the result appears in one repaint at the
    end, which paints only the widgets that changed. Only after that repaint are the waiters
    told that the layers are in (:func:`~napari_sigma._napari.state.finish_adding`: the Phases
    widget's statistics start), so that their workers do not compete with it.

    ``before_repaint``: called once, in a held turn of its own just before the result's repaint
    (the caller's own widget changes, e.g. its summary, then share that repaint's compose
    instead of making one more); in a hidden window, before the last turn.
    """
    window = _qt_window(viewer)
    pieces = _result_layers_in_pieces(
        viewer, result, title, components, finish=False, repaints=True
    )
    added: ResultLayers | None = None
    finished = settle = last = False
    pending: Any = None  # a piece held back a turn (the repaint after before_repaint's turn)
    try:
        while True:
            if settle:  # an empty turn after a repaint: the next piece waits for a tick
                settle = False  # (its timer was due before the heartbeat's, so it followed
                yield added  # the repaint in one freeze: 92 + 23 ms, JEOL)
                continue
            # after the last repaint only clean-up is left, nothing on screen: held back, it
            # was one more repaint of the whole window (93-124 ms at load 13-21) for nothing
            with _painted_a_turn_later(None if last else window) as turn:
                piece, pending = (next(pieces, _END) if pending is None else pending), None
                if before_repaint is not None and (piece is _LAST_REPAINT or piece is _END):
                    callback, before_repaint = before_repaint, None
                    callback()  # its changes held: painted with the result (a turn later)
                    pending = piece
                elif piece is _REPAINT or piece is _LAST_REPAINT:  # a repaint of its own after
                    turn.repaint_now()  # this (empty) turn
                    settle, last = True, piece is _LAST_REPAINT
                elif piece is _END:  # all in: the waiters after the repaint (now: none held)
                    finished = True
                    if added is not None and added.phases is not None:
                        turn.then(partial(state.finish_adding, added.phases))
                    return
                else:
                    added = piece
            yield added
    finally:  # also when the caller stops early (the pieces' own clean-up; waiters told now)
        pieces.close()
        if not finished and added is not None and added.phases is not None:
            state.finish_adding(added.phases)


_REPAINT = object()  # a piece asking for a repaint of its own before the next piece
_LAST_REPAINT = object()  # the same, after which nothing changes on screen (clean-up only)
_END = object()


def _result_layers_in_pieces(
    viewer: Any,
    result: Any,
    title: str | None = None,
    components: bool = True,
    finish: bool = True,
    repaints: bool = False,
) -> Iterator[Any]:
    """:func:`add_result_layers` in pieces: yields after building the components layer, after
    inserting it, after building the phases layer (``phases`` still None), after inserting it,
    after each of its overlays' visuals (:func:`_hide_overlays`; the first with its colormap,
    names and history), after making the phases layer the active one and after the brush
    cursor's visual (:func:`_build_brush_cursor`). With ``repaints`` (a shown window, pieces
    whose repaints are held back): first a turn of nothing and its repaint (:data:`_REPAINT`),
    a full garbage collection, and after the cursor the canvas' first draw, unseen
    (:func:`_draw_unseen`), then :data:`_LAST_REPAINT`, the repaint that shows the result. The
    phases layer is marked as being added (:func:`~napari_sigma._napari.state.being_added`)
    until the generator ends (or is closed):
    the Phases widget builds its statistics then, not in the middle of these turns, where its
    worker's start competed with napari's insertion for the main thread.

    A widget runs one step per turn of Qt's event loop, so that napari draws (and the user sees
    a live window) between them: at 1024² adding a layer in one piece was 0.1-0.2 s of
    napari's main thread (the layer's visual, overlays and controls; then the layer controls
    shown for the active layer), together 0.3-0.45 s. The last value yielded holds every layer.
    """
    title = title or result_title(result)
    added = ResultLayers(phases=None)
    if repaints and _shown(viewer):
        # first what the caller changed in this turn (the Analysis widget's progress) repaints
        # on its own (it shared a freeze with the collection below: 100 ms, JEOL, load 16)
        yield added
        yield _REPAINT
        # then a full garbage collection in a turn of its own: the run's objects made one due,
        # and it fell inside the brush cursor's piece (vispy's visuals: many small objects),
        # 52-55 ms of main thread over napari's whole heap on top of its 23 ms (JEOL, two
        # runs); collected now, none is due again while the pieces run
        gc.collect()
        yield added
    for layer in viewer.layers:  # earlier results stay, hidden (a user may have edited them)
        if state.role_of(layer) in ("phases", "component"):
            layer.visible = False
    if components:
        layer = _component_layer(viewer, result, title)  # built: napari's Image layer, its
        if layer is not None:  # contrast limits (~15-40 ms of main thread, JEOL); its layer
            yield added  # controls and its visual a turn later each, inserted a turn after
            yield from _insert_built_ahead(viewer, layer, added)
            added.components = [layer]
        yield added
    from napari.layers import Labels

    data, kwargs = phases_layer_data(result, unique_name(viewer, f"phases ({title})"))
    layer = Labels(data, **kwargs)
    state.start_adding(layer)  # its statistics wait for the last turn (state.finish_adding)
    try:
        yield from _insert_phases_layer(viewer, layer, added, repaints)
    finally:  # also when the caller stops early: whoever waits for the layer is told
        if finish:  # (else the caller tells them: add_result_layers_stepwise)
            state.finish_adding(layer)


def _insert_phases_layer(
    viewer: Any, layer: Any, added: ResultLayers, repaints: bool = False
) -> Iterator[Any]:
    """The turns of :func:`add_result_layers_stepwise` from the built phases layer on
    (``repaints``: the unseen draw and :data:`_LAST_REPAINT` after the cursor)."""
    hidden = _hide_overlays(layer)  # their visuals are built later, one per turn
    yield added  # built (colormap, thumbnail), not yet in the viewer
    connected = False
    try:
        yield from _insert_built_ahead(viewer, layer, added)
        added.phases = layer
        yield added
        connect_colormap(added.phases)  # names, undo history, autosave: a turn later
        connected = True
        while hidden:
            hidden.pop(0).visible = True
            yield added
    finally:  # also when the caller stops early: the layer's tools keep their overlays
        if added.phases is not None and not connected:
            connect_colormap(added.phases)
        for overlay in hidden:
            overlay.visible = True
    viewer.layers.selection.active = added.phases
    yield added
    # drawn (transparent) from the next paint on, then hidden (lazily: at napari's next cursor
    # change)
    restore = _build_brush_cursor(viewer, lazily=repaints)
    try:
        yield added
        if repaints:
            for visuals in _first_draws(viewer, added.phases):  # the new visuals' first
                if _draw_unseen(viewer, visuals):  # draws, each in a turn of its own
                    yield added
            yield _LAST_REPAINT  # the result appears
    finally:
        if restore is not None:
            restore()


def _first_draws(viewer: Any, layer: Any) -> list[list[Any] | None]:
    """What :func:`_draw_unseen` draws in each turn after a phases layer's insertion: the
    layer's visual, one of the brush cursor's circles, then the whole canvas (None)."""
    visuals = [layer_visual(viewer, layer), cursor_circle(viewer)]
    return [[visual] for visual in visuals if visual is not None] + [None]


def _insert_built_ahead(viewer: Any, layer: Any, added: ResultLayers) -> Iterator[Any]:
    """Insert ``layer`` (not made the active layer) after building its layer controls and its
    visual in turns of their own (:mod:`~napari_sigma._napari.built_ahead`); what was built is
    let go again if the caller stops in between."""
    controls = visual = None
    try:
        controls = build_controls(viewer, layer)
        if controls is not None:
            yield added
        visual = build_visual(viewer, layer)
        if visual is not None:
            yield added
        with _inserted_inactive(viewer), taken_at_insertion(viewer, layer, controls, visual):
            viewer.add_layer(layer)
    finally:  # (nothing to do for what the layer took)
        discard_controls(viewer, controls)
        discard_visual(viewer, visual)


def _component_layer(viewer: Any, result: Any, title: str) -> Any:
    """The hidden Image layer ``(component, y, x)`` of the unmixed component maps, not yet in
    ``viewer`` (None: the result has none). The components share the viewer's first axis with
    the cube's energy and tile its whole range (`layers.energy_tiling`): K equal stretches of
    the slider, one component each."""
    from napari.layers import Image

    abundances = np.asarray(result.abundances)
    if abundances.ndim != 3 or abundances.shape[-1] == 0:
        return None
    names = list(getattr(result, "component_names", []))
    spatial = spatial_kwargs(result)
    # the components tile the energy slider's whole range (`layers.energy_tiling`, qa23: one
    # per keV left most of it an empty canvas; an axis of their own cost napari's slider rebuild)
    tiling = energy_tiling(getattr(result, "image", None), abundances.shape[-1])
    step, first = tiling or (1.0, 0.0)
    kwargs = {
        "scale": (step, *spatial["scale"]),
        "translate": (first, 0.0, 0.0),
        "axis_labels": ("component" if tiling is None else COMPONENT_LABEL, "y", "x"),
        # the cube's energy axis is the viewer's first axis: share its unit (napari's default,
        # pixels, there made the layers' units inconsistent on an uncalibrated map: its warning)
        "units": (ENERGY_UNIT, *spatial["units"]),
    }
    # a view, not a copy: napari reads one component at a time when it is shown (a strided
    # slice, a few ms); the transposing copy cost 17-90 ms of main thread at 1024² x 8 (load 12)
    return Image(
        np.moveaxis(np.asarray(abundances, dtype=np.float32), -1, 0),
        name=unique_name(viewer, f"components ({title})"),
        colormap="inferno",
        visible=False,
        metadata=state.tag(None, role="component", result=result, names=names),
        **kwargs,
    )
