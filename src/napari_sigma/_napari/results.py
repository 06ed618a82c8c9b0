"""An :class:`~napari_sigma.pipeline.analysis.AnalysisResult` as napari layers.

A run becomes a Labels layer ``"phases (<title>)"`` (coloured by its :class:`PhaseModel`) and one
Image layer per unmixed component ``"<component> (<title>)"``. Names are made unique
(``"phases (<title>) [2]"``), so a new run never replaces a layer a user has edited.
"""

from __future__ import annotations

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


def phases_layer_data(
    result: Any, name: str, model: PhaseModel | None = None
) -> tuple[np.ndarray, dict[str, Any]]:
    """Data and keyword arguments of the Labels layer of ``result`` (its own copy of the labels)."""
    model = model or PhaseModel.from_names(list(result.phase_names))
    model.ensure(np.unique(result.labels))
    kwargs = {
        "name": name,
        "colormap": model.colormap(),
        "metadata": state.tag(None, role="phases", result=result, phases=model),
        **spatial_kwargs(result),
    }
    return np.array(result.labels, dtype=np.int32, copy=True), kwargs


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
    title = title or result_title(result)
    added = ResultLayers(phases=None)
    if components:
        added.components = _add_component_layers(viewer, result, title)
    data, kwargs = phases_layer_data(result, unique_name(viewer, f"phases ({title})"))
    added.phases = viewer.add_labels(data, **kwargs)
    connect_colormap(added.phases)
    return added


def connect_colormap(layer: Any) -> None:
    """Recolour the Labels layer whenever its PhaseModel changes."""
    model = state.plugin_data(layer).get("phases")
    if model is None:
        return

    def recolour() -> None:
        layer.colormap = model.colormap()

    model.changed.connect(recolour)


def _add_component_layers(viewer: Any, result: Any, title: str) -> list[Any]:
    abundances = np.asarray(result.abundances)
    names = list(getattr(result, "component_names", []))
    layers = []
    for index in range(abundances.shape[-1]):
        label = names[index] if index < len(names) else f"C{index + 1}"
        layer = viewer.add_image(
            np.ascontiguousarray(abundances[..., index], dtype=np.float32),
            name=unique_name(viewer, f"{label} ({title})"),
            colormap="inferno",
            blending="additive",
            visible=False,
            metadata=state.tag(None, role="component", result=result, index=index),
            **spatial_kwargs(result),
        )
        layers.append(layer)
    return layers
