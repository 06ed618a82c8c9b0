"""An :class:`~napari_sigma.pipeline.analysis.AnalysisResult` as napari layers.

A run becomes a Labels layer ``"phases (<title>)"`` (coloured by its :class:`PhaseModel`) and one
hidden Image layer ``"components (<title>)"`` holding every unmixed component map (a slider picks
one). Names are made unique (``"phases (<title>) [2]"``): a new run never replaces a layer a user
has edited; it hides the earlier results instead.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache, partial
from typing import Any

import numpy as np

from napari_sigma._napari import state
from napari_sigma._napari.layers import spatial_calibration
from napari_sigma._napari.phase_model import PhaseModel
from napari_sigma.compute.background import start_thread


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
SMALL_LABELS = np.dtype(np.uint8)
WIDE_LABELS = np.dtype(np.int32)


def label_dtype(max_label: int) -> np.dtype:
    """The dtype a phases layer's labels get: uint8 while every id (and the next new one) fits,
    int32 beyond (napari's selection spin box cannot go past the dtype's maximum)."""
    return SMALL_LABELS if int(max_label) < np.iinfo(SMALL_LABELS).max else WIDE_LABELS


def label_data(labels: Any) -> np.ndarray:
    """A copy of ``labels`` in :func:`label_dtype` of its largest id."""
    labels = np.asarray(labels)
    if labels.size and labels.min() < 0:
        raise ValueError(f"phase labels must be >= 0, got {labels.min()}")
    return np.array(labels, dtype=label_dtype(int(labels.max(initial=0))), copy=True)


def ensure_label_capacity(layer: Any, max_label: int) -> None:
    """Widen a phases layer's labels (uint8 -> int32) so that ``max_label`` and the next new id
    fit; napari's undo history and the plugin's stay (they hold indices and values)."""
    dtype = np.dtype(layer.data.dtype)
    if dtype.kind in "iu" and int(max_label) >= np.iinfo(dtype).max:
        layer.data = np.asarray(layer.data).astype(WIDE_LABELS)


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


def _shown(viewer: Any) -> bool:
    """Whether napari's window of ``viewer`` is shown (the pieces hold its repaints back)."""
    window = _qt_window(viewer)
    try:
        return window is not None and window.isVisible()
    except RuntimeError:  # deleted
        return False


def _qt_window(viewer: Any) -> Any:
    """napari's Qt main window of ``viewer`` (None: none, or a napari without it)."""
    try:
        return viewer.window._qt_window
    except Exception:
        return None


class _Turn:
    """One turn of :func:`_painted_a_turn_later`: ``then(callback)`` runs ``callback()`` a turn
    after the repaint; ``repaint_now()`` lets the window repaint at once (right after this
    turn, before the next piece)."""

    def __init__(self, window: Any) -> None:
        self.window = window
        self.after: list[Any] = []
        self.released = False

    def then(self, callback: Any) -> None:
        self.after.append(callback)

    def repaint_now(self) -> None:
        self.released = True
        if self.window is not None:
            release_paints(self.window)

    def run_after(self) -> None:
        for callback in self.after:
            callback()


def _paint_hold(window: Any, create: bool = True) -> Any:
    """The paint holder (:func:`_make_paint_holder`) of napari's window (made and installed on
    first use)."""
    holder = getattr(window, "_napari_sigma_paint_hold", None)
    if holder is None and create:
        holder = _make_paint_holder(window)
        window._napari_sigma_paint_hold = holder
    return holder


def _make_paint_holder(window: Any) -> Any:
    from qtpy.QtCore import QCoreApplication, QEvent, QObject

    class PaintHolder(QObject):
        """Holds back the repaints of a window: while held, its update requests (Qt's
        repaint manager posts one to the window when a widget in it changes) are swallowed;
        the widgets' dirty regions stay with Qt, and the repaint at :meth:`release` paints
        those regions only. (``setUpdatesEnabled(False)`` drops them instead, and turning
        updates on again repaints the whole window: ~30 ms more of main thread, JEOL.)"""

        def __init__(self) -> None:
            super().__init__(window)
            self.held = False
            self.swallowed = False

        def eventFilter(self, watched: Any, event: Any) -> bool:
            if self.held and event.type() == QEvent.Type.UpdateRequest:
                self.swallowed = True
                return True
            return False

        def hold(self) -> None:
            self.held = True

        def release(self) -> None:
            self.held = False
            if self.swallowed:  # the repaint manager waits for its request: post it again
                self.swallowed = False
                QCoreApplication.postEvent(window, QEvent(QEvent.Type.UpdateRequest))

    holder = PaintHolder()
    window.installEventFilter(holder)
    return holder


def paints_held(window: Any) -> bool:
    """Whether :func:`_painted_a_turn_later` holds back the repaints of ``window`` now."""
    holder = _paint_hold(window, create=False)
    return holder is not None and holder.held


def release_paints(window: Any) -> None:
    """Let ``window`` repaint what changed while its repaints were held back."""
    from qtpy import sip

    holder = _paint_hold(window, create=False)
    if holder is not None and not sip.isdeleted(window):
        holder.release()


@contextmanager
def _painted_a_turn_later(window: Any) -> Iterator[_Turn]:
    """Hold back the repaint of what is done inside until a later turn of Qt's event loop: the
    window's update requests are held back inside (:func:`_paint_hold`), a 1 ms timer lets it
    repaint what changed.

    Yields a :class:`_Turn`; its ``then`` callbacks run a turn after that repaint (at once when
    nothing was held back: no window, a hidden one, or repaints held back already).
    """
    from qtpy import sip
    from qtpy.QtCore import QTimer

    turn = _Turn(window)
    held = window is not None and not sip.isdeleted(window) and window.isVisible()
    held = held and not paints_held(window)
    if not held:
        yield turn
        turn.run_after()
        return
    _paint_hold(window).hold()
    try:
        yield turn
    finally:

        def repaint() -> None:
            release_paints(window)  # posts the repaint: done before the next timers
            if turn.after:
                QTimer.singleShot(1, lambda: turn.run_after())  # (a bound method: weakly held)

        if turn.released:  # released already: it repaints after this turn
            if turn.after:
                QTimer.singleShot(1, lambda: turn.run_after())  # (a bound method: weakly held)
        else:
            QTimer.singleShot(1, repaint)


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
        if layer is not None:  # contrast limits (~15-40 ms of main thread, JEOL); inserted
            yield added  # a turn later (its visual and layer controls: ~50-60 ms)
            with _inserted_inactive(viewer):
                added.components = [viewer.add_layer(layer)]
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
        with _inserted_inactive(viewer):
            added.phases = viewer.add_layer(layer)
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
            if _draw_unseen(viewer):  # the new visuals' first draw in a turn of its own
                yield added
            yield _LAST_REPAINT  # the result appears
    finally:
        if restore is not None:
            restore()


def _draw_unseen(viewer: Any) -> bool:
    """Draw napari's canvas once where nothing reaches the screen (a scissor box of no pixels),
    in its own OpenGL context and framebuffer; True when it was drawn.

    A visual's first draw builds its buffers (vispy), uploads them and compiles the draw's
    shaders (Mesa's llvmpipe): the brush cursor's two anti-aliased circles took 42-43 ms of
    napari's main thread, the phases layer 7-11 ms (JEOL), on top of the repaint that showed
    them (and the window's compose, ~70 ms of llvmpipe). Drawn here first, in a turn of its
    own with nothing composed, the repaint that shows them finds them built and compiled. The
    canvas' pixels are untouched (the scissor box is empty) and the window repaints it anyway.
    A napari or vispy without these internals: nothing drawn, nothing lost.
    """
    try:
        scene = viewer.window._qt_viewer.canvas._scene_canvas
        native = scene.native
        if not native.isVisible() or not native.isValid():
            return False
    except Exception:
        return False
    try:
        scene.set_current()
        context = scene.context
        context.set_scissor(0, 0, 0, 0)
        context.set_state(scissor_test=True)
        try:
            scene.draw_visual(scene.scene)
        finally:
            context.set_state(scissor_test=False)
            context.flush_commands()
    except Exception:
        return False
    return True


def _build_brush_cursor(viewer: Any, lazily: bool = False) -> Any:
    """Build and draw napari's brush cursor (the viewer's circle overlay) before a user needs it.

    napari builds its visual when it is first shown, inside the user's first click on the paint
    brush (~30 ms of main thread: vispy's Ellipse, Polygon and transforms), and its first draw
    compiles its shaders (~50 ms more in the frame after; at 1024² the click on the brush froze
    napari 0.2 s). Here it is shown fully transparent, so that it is built now and drawn at the
    next paint; returns the function that gives it back to napari (to call after that paint),
    None when nothing was done (shown already, or a napari without these internals). Given back
    ``lazily``, it stays (transparent) until napari's cursor next changes style or size, where
    napari shows or hides it anyway: hiding it at once was one more repaint of the window
    (~110 ms at load 17, llvmpipe) for nothing a user sees.
    """
    try:
        overlay = viewer.canvas.overlays._brush_circle
        if overlay.visible:  # the cursor is shown: built and drawn already
            return None
        opacity = overlay.opacity
        overlay.opacity = 0.0
        overlay.visible = True
    except Exception:
        return None

    def restore(*_: Any) -> None:
        try:
            if lazily:
                for event in (viewer.cursor.events.style, viewer.cursor.events.size):
                    event.disconnect(restore)
            if getattr(viewer.cursor, "style", "") not in ("circle", "circle_frozen"):
                overlay.visible = False
            overlay.opacity = opacity
        except Exception:
            return

    if not lazily:
        return restore

    def later() -> None:
        try:
            for event in (viewer.cursor.events.style, viewer.cursor.events.size):
                event.connect(restore)
        except Exception:
            restore()

    return later


def _hide_overlays(layer: Any) -> list[Any]:
    """Hide the visible overlays of a layer not yet in a viewer and return them.

    napari builds the vispy visual of a layer's overlay when the overlay is visible, else when
    it becomes visible. A Labels layer's polygon and brush outlines cost ~40 % of adding one
    (vispy's Polygon, Ellipse, Line and their transforms: 60-100 ms of main thread at 1024²,
    cProfile); shown again one per turn of Qt's event loop, the insertion is three shorter
    freezes instead of one. A napari without these internals: nothing hidden, nothing lost.
    """
    try:
        overlays = [o for o in layer._overlays.values() if o.visible is True]
        for overlay in overlays:
            overlay.visible = False
    except Exception:
        return []
    return overlays


@contextmanager
def _inserted_inactive(viewer: Any) -> Iterator[None]:
    """Layers added inside are not made the active layer (napari does so on insert: its layer
    controls for that layer, the viewer buttons; ~40 % of adding a 1024² layer, profiled)."""
    layers = viewer.layers
    before = getattr(layers, "_activate_on_insert", None)
    if not isinstance(before, bool):  # another napari: it activates them, nothing lost
        yield
        return
    layers._activate_on_insert = False
    try:
        yield
    finally:
        layers._activate_on_insert = before


def connect_colormap(layer: Any) -> None:
    """Recolour the Labels layer, and name its labels, whenever its PhaseModel changes.

    The names go in the layer's ``features`` (one row per label, ``index`` = label value), which
    napari shows in the status bar for the label under the cursor: "phase: quartz". The layer also
    gets its undo history of label edits and renames (:mod:`~napari_sigma._napari.history`) and,
    when its spectrum image comes from a file, its autosave (:mod:`~napari_sigma._napari.recovery`).
    """
    from napari_sigma._napari.history import attach_history
    from napari_sigma._napari.recovery import attach_autosaver

    model = state.plugin_data(layer).get("phases")
    if model is None:
        return
    attach_history(layer)
    attach_autosaver(layer)
    known = {"colors": None}

    def follow() -> None:
        colors = layer_color_dict(model)
        signature = _signature(colors)
        if signature != known["colors"]:  # recompiling napari's colormap costs; names do not
            known["colors"] = signature  # (nor a new phase in its generated colour)
            layer.colormap = DirectLabelColormap(color_dict=colors)
        layer.features = phase_features(model)

    from napari.utils.colormaps import DirectLabelColormap

    drawn = layer.colormap.color_dict  # what napari draws now (phases_layer_data's colormap)
    known["colors"] = _signature(drawn)
    model.changed.connect(follow)
    layer.features = phase_features(model)

    def widen_for_selected(*_: Any) -> None:  # the spin box stops at the dtype's maximum
        ensure_label_capacity(layer, layer.selected_label)

    layer.events.selected_label.connect(widen_for_selected)


PRECOLORED_IDS = 254  # every id of a uint8 phases layer (label_dtype) but the last


@lru_cache(maxsize=1)
def _generated_colors() -> tuple[tuple[float, ...], ...]:
    from napari_sigma._napari.phase_model import palette

    return tuple(palette(PRECOLORED_IDS))


def layer_color_dict(model: PhaseModel) -> dict[int | None, np.ndarray]:
    """The label -> RGBA mapping of a phases layer: the model's phases, and every other id up to
    :data:`PRECOLORED_IDS` in the colour the model gives a phase it adds (``generated_color``).

    A phase a user paints, a lasso or a split creates is then drawn in its colour at once (the
    model learns of it when the table follows the edit), and adding it to the model changes no
    colour: napari rebuilds a Labels colormap and redraws the whole layer at every change
    (~10-20 ms of main thread at 1024²). Larger ids are transparent until the model has them.
    """
    mapping = {k: np.array(c) for k, c in enumerate(_generated_colors(), start=1)}
    mapping.update(model.color_dict())
    return mapping


def layer_colormap(model: PhaseModel) -> Any:
    """napari's ``DirectLabelColormap`` of a phases layer (:func:`layer_color_dict`)."""
    from napari.utils.colormaps import DirectLabelColormap

    return DirectLabelColormap(color_dict=layer_color_dict(model))


def _signature(colors: dict) -> dict[int, tuple[float, ...]]:
    """Comparable colours of a color dict (napari keeps them in float32)."""
    return {
        k: tuple(np.asarray(v, np.float32).tolist()) for k, v in colors.items() if k is not None
    }


def phase_features(model: PhaseModel) -> Any:
    """A features table of the phases for a Labels layer: label value and name."""
    import pandas as pd

    ids = [0, *model.ids]
    return pd.DataFrame({"index": ids, "phase": [model.name(i) for i in ids]})


def _component_layer(viewer: Any, result: Any, title: str) -> Any:
    """The hidden Image layer ``(component, y, x)`` of the unmixed component maps, not yet in
    ``viewer`` (None: the result has none)."""
    from napari.layers import Image

    abundances = np.asarray(result.abundances)
    if abundances.ndim != 3 or abundances.shape[-1] == 0:
        return None
    names = list(getattr(result, "component_names", []))
    spatial = spatial_kwargs(result)
    kwargs = {"scale": (1.0, *spatial["scale"]), "axis_labels": ("component", "y", "x")}
    # the cube's energy axis is the viewer's first axis: share its unit (napari's default,
    # pixels, there made the layers' units inconsistent on an uncalibrated map: its warning)
    kwargs["units"] = ("keV", *spatial["units"])
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


_warm_up = {"started": False}


def warm_up_labels_drawing() -> None:
    """Compile napari's label colouring in a background thread, once per session.

    napari maps label values to colours with numba functions compiled on the first Labels layer
    coloured by a ``DirectLabelColormap`` (1-2 s in the main thread when a run's phases layer
    appears). Compiling them on a throw-away layer while the analysis runs takes that off the
    main thread; the layer never enters a viewer. napari's first fill imports
    ``skimage.segmentation`` (1.4 s at load 10) and its first Labels layer in a viewer computes
    vispy's dash patterns (its polygon tool's outline): both done here too. A napari without
    these internals only loses the warm-up.
    """
    if _warm_up["started"]:
        return
    _warm_up["started"] = True
    start_thread(_compile_labels_colouring, "napari-sigma-warm-up")  # the exit waits for it


def _compile_labels_colouring() -> None:
    try:
        from napari.layers import Labels

        model = PhaseModel.from_names(["a", "b"])
        for dtype in (SMALL_LABELS, WIDE_LABELS):  # phases layers' dtypes (label_dtype)
            layer = Labels(np.array([[0, 1], [2, 1]], dtype=dtype), colormap=layer_colormap(model))
            layer._raw_to_displayed(layer.data)  # the texture mapping of every draw
            layer.colormap._data_to_texture(dtype.type(1))  # the selected label's colour
            layer.colormap.map(layer.data)  # the thumbnail's colours
        # napari's first fill imports skimage's flood (skimage loads its submodules lazily:
        # importing skimage.segmentation alone left ~16 ms of imports to the first fill)
        from skimage.segmentation import flood  # noqa: F401
        from vispy.visuals.line.dash_atlas import DashAtlas

        DashAtlas()  # its dash patterns (cached once per process) cost napari's first Labels
        # layer 0.1-0.19 s of main thread in its polygon tool's overlay (cProfile at 1024²)
    except Exception:  # a warm-up only: the first draw compiles instead
        return
