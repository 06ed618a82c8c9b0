"""An :class:`~napari_sigma.pipeline.analysis.AnalysisResult` as napari layers.

A run becomes a Labels layer ``"phases (<title>)"`` (coloured by its :class:`PhaseModel`) and one
hidden Image layer ``"components (<title>)"`` holding every unmixed component map (a slider picks
one). Names are made unique (``"phases (<title>) [2]"``): a new run never replaces a layer a user
has edited; it hides the earlier results instead.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from napari_sigma._napari import state
from napari_sigma._napari.phase_model import PhaseModel


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
    """Scale and units of full-resolution 2-D layers of ``result`` (µm when calibrated)."""
    size = result.image.pixel_size_um
    if size is None or not np.isfinite(size) or size <= 0:
        return {"scale": (1.0, 1.0)}
    return {"scale": (float(size), float(size)), "units": ("µm", "µm")}


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
    *_, added = add_result_layers_stepwise(viewer, result, title, components)
    return added


def add_result_layers_stepwise(
    viewer: Any, result: Any, title: str | None = None, components: bool = True
) -> Iterator[ResultLayers]:
    """:func:`add_result_layers` in pieces: yields after the components layer, after building
    the phases layer (``phases`` still None), after inserting it, after each of its overlays'
    visuals (:func:`_hide_overlays`; the first with its colormap, names and history), after the
    brush cursor's visual and its first draw (:func:`_build_brush_cursor`) and after making
    the phases layer the active one. The phases layer is marked as being added
    (:func:`~napari_sigma._napari.state.being_added`) until the generator ends (or is closed):
    the Phases widget builds its statistics then, not in the middle of these turns, where its
    worker's start competed with napari's insertion for the main thread.

    A widget runs one step per turn of Qt's event loop, so that napari draws (and the user sees
    a live window) between them: at 1024² adding a layer in one piece was 0.1-0.2 s of
    napari's main thread (the layer's visual, overlays and controls; then the layer controls
    shown for the active layer), together 0.3-0.45 s. The last value yielded holds every layer.
    """
    title = title or result_title(result)
    for layer in viewer.layers:  # earlier results stay, hidden (a user may have edited them)
        if state.role_of(layer) in ("phases", "component"):
            layer.visible = False
    added = ResultLayers(phases=None)
    if components:
        with _inserted_inactive(viewer):
            added.components = _add_component_layers(viewer, result, title)
        yield added
    from napari.layers import Labels

    data, kwargs = phases_layer_data(result, unique_name(viewer, f"phases ({title})"))
    layer = Labels(data, **kwargs)
    state.start_adding(layer)  # its statistics wait for the last turn (state.finish_adding)
    try:
        yield from _insert_phases_layer(viewer, layer, added)
    finally:  # also when the caller stops early: whoever waits for the layer is told
        state.finish_adding(layer)


def _insert_phases_layer(viewer: Any, layer: Any, added: ResultLayers) -> Iterator[ResultLayers]:
    """The turns of :func:`add_result_layers_stepwise` from the built phases layer on."""
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
    restore = _build_brush_cursor(viewer)  # drawn (unseen) at the next paint, then hidden
    try:
        yield added
    finally:
        if restore is not None:
            restore()
    viewer.layers.selection.active = added.phases
    yield added


def _build_brush_cursor(viewer: Any) -> Any:
    """Build and draw napari's brush cursor (the viewer's circle overlay) before a user needs it.

    napari builds its visual when it is first shown, inside the user's first click on the paint
    brush (~30 ms of main thread: vispy's Ellipse, Polygon and transforms), and its first draw
    compiles its shaders (~50 ms more in the frame after; at 1024² the click on the brush froze
    napari 0.2 s). Here it is shown fully transparent, so that it is built now and drawn at the
    next paint; returns the function that hides it again (to call a turn later), None when
    nothing was done (shown already, or a napari without these internals).
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

    def restore() -> None:
        try:
            if getattr(viewer.cursor, "style", "") not in ("circle", "circle_frozen"):
                overlay.visible = False
            overlay.opacity = opacity
        except Exception:
            return

    return restore


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


def _add_component_layers(viewer: Any, result: Any, title: str) -> list[Any]:
    """The unmixed component maps as ONE hidden Image layer ``(component, y, x)`` (a slider)."""
    abundances = np.asarray(result.abundances)
    if abundances.ndim != 3 or abundances.shape[-1] == 0:
        return []
    names = list(getattr(result, "component_names", []))
    spatial = spatial_kwargs(result)
    kwargs = {"scale": (1.0, *spatial["scale"]), "axis_labels": ("component", "y", "x")}
    if "units" in spatial:  # the cube's energy axis is the viewer's first axis: share its unit
        kwargs["units"] = ("keV", *spatial["units"])
    # a view, not a copy: napari reads one component at a time when it is shown (a strided
    # slice, a few ms); the transposing copy cost 17-90 ms of main thread at 1024² x 8 (load 12)
    layer = viewer.add_image(
        np.moveaxis(np.asarray(abundances, dtype=np.float32), -1, 0),
        name=unique_name(viewer, f"components ({title})"),
        colormap="inferno",
        visible=False,
        metadata=state.tag(None, role="component", result=result, names=names),
        **kwargs,
    )
    return [layer]


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
    threading.Thread(
        target=_compile_labels_colouring, name="napari-sigma-warm-up", daemon=True
    ).start()


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
