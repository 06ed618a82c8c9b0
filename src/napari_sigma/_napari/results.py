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
    model.ensure(np.unique(labels))
    kwargs = {
        "name": name,
        "colormap": model.colormap(),
        "metadata": state.tag(None, role="phases", result=result, phases=model),
        **spatial_kwargs(result),
    }
    return label_data(labels), kwargs


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
    """:func:`add_result_layers` in pieces: yields after the components layer, after the
    phases layer, and after making the phases layer the active one.

    A widget runs one step per turn of Qt's event loop, so that napari draws (and the user sees
    a live window) between them: at 1024² each is 0.1-0.2 s of napari's main thread (the
    layer's visual, overlays and controls; then the layer controls shown for the active
    layer), together 0.3-0.45 s. The last value yielded holds every layer.
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
    data, kwargs = phases_layer_data(result, unique_name(viewer, f"phases ({title})"))
    with _inserted_inactive(viewer):
        added.phases = viewer.add_labels(data, **kwargs)
    connect_colormap(added.phases)
    yield added
    viewer.layers.selection.active = added.phases
    yield added


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
        colors = model.color_dict()
        signature = {k: tuple(v) for k, v in colors.items() if k is not None}
        if signature != known["colors"]:  # recompiling napari's colormap costs; names do not
            known["colors"] = signature
            layer.colormap = model.colormap()
        layer.features = phase_features(model)

    model.changed.connect(follow)
    layer.features = phase_features(model)

    def widen_for_selected(*_: Any) -> None:  # the spin box stops at the dtype's maximum
        ensure_label_capacity(layer, layer.selected_label)

    layer.events.selected_label.connect(widen_for_selected)


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
    layer = viewer.add_image(
        np.ascontiguousarray(np.moveaxis(abundances, -1, 0), dtype=np.float32),
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
            layer = Labels(np.array([[0, 1], [2, 1]], dtype=dtype), colormap=model.colormap())
            layer._raw_to_displayed(layer.data)  # the texture mapping of every draw
            layer.colormap._data_to_texture(dtype.type(1))  # the selected label's colour
            layer.colormap.map(layer.data)  # the thumbnail's colours
        import skimage.segmentation  # noqa: F401 - napari's fill imports it on the first fill
        from vispy.visuals.line.dash_atlas import DashAtlas

        DashAtlas()  # its dash patterns (cached once per process) cost napari's first Labels
        # layer 0.1-0.19 s of main thread in its polygon tool's overlay (cProfile at 1024²)
    except Exception:  # a warm-up only: the first draw compiles instead
        return
