"""Sessions from napari: save the active phases layer's work, open it again in any viewer.

The format and its checks are the core's (:mod:`napari_sigma.pipeline.session`: JSON + npz, no
pickle, the source file's SHA-256). Here: which layer's labels, names and colours go in, and which
layers come back (the spectrum image's layers unless the viewer shows that image already, and
the phases layer with the saved labels, names and colours; its undo history starts fresh).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from napari_sigma._napari import state
from napari_sigma._napari.layers import spectrum_image_layers
from napari_sigma._napari.phase_model import Phase, PhaseModel
from napari_sigma._napari.results import (
    connect_colormap,
    phases_layer_data,
    result_title,
    unique_name,
)

SESSION_FILTER = "napari-sigma session (*.sigma)"
MODEL_FILTER = "napari-sigma model (*.sigma)"


def save_layer_session(path: str | Path, layer: Any) -> Path:
    """Save the phases layer's result, edited labels, names and colours to ``path``."""
    from napari_sigma.pipeline.session import save_session

    result, model = state.result_of(layer), state.plugin_data(layer).get("phases")
    if result is None or model is None:
        raise ValueError(f"layer {layer.name!r} is not a phases layer of napari-sigma")
    gui = {"layer_name": layer.name}
    return save_session(path, result, labels=np.asarray(layer.data), phases=list(model), gui=gui)


def save_layer_model(path: str | Path, layer: Any) -> Path:
    """Save the model of the phases layer as the user left it to ``path`` (no napari: safe in a
    worker): templates from its edited labels, its names, ids and colours
    (:func:`~napari_sigma.pipeline.fitting.model_from_result`, one pass over the cube), the file
    ``napari-sigma apply`` classifies other fields with."""
    from napari_sigma.compute.progress import run_to_completion
    from napari_sigma.pipeline.fitting import model_from_result
    from napari_sigma.pipeline.model import save_model

    result, model = state.result_of(layer), state.plugin_data(layer).get("phases")
    if result is None or model is None:
        raise ValueError(f"layer {layer.name!r} is not a phases layer of napari-sigma")
    labels = np.asarray(layer.data)
    return save_model(path, run_to_completion(model_from_result(result, labels, list(model))))


def read_session(path: str | Path) -> tuple[Any, Any]:
    """Read a session and its spectrum image (no napari: safe in a worker).

    Returns
    -------
    (Session, AnalysisResult)
        The session and its result with the edited labels.

    Raises
    ------
    SigmaFileError
        The file is no session, is damaged, or its source file is missing or changed.
    """
    from napari_sigma.pipeline.session import load_session

    session = load_session(path)
    return session, session.result(session.read_image())


def add_session_layers(viewer: Any, session: Any, result: Any) -> Any:
    """Add a read session's layers to ``viewer``; return its phases Labels layer."""
    image = result.image
    shown = any(_same_image(state.spectrum_image_of(layer), image) for layer in viewer.layers)
    if not shown:
        for data, kwargs, kind in spectrum_image_layers(image):
            getattr(viewer, f"add_{kind}")(data, **kwargs)
    model = PhaseModel(Phase(p.id, p.name, p.color) for p in session.phases)
    name = unique_name(viewer, f"phases ({result_title(result)})")
    # the session's (edited) labels, in the dtype napari draws without a remap, as a run's
    data, kwargs = phases_layer_data(result, name, model, labels=session.labels)
    layer = viewer.add_labels(data, **kwargs)
    connect_colormap(layer)
    viewer.layers.selection.active = layer
    return layer


def _same_image(shown: Any, image: Any) -> bool:
    if shown is None:
        return False
    if shown is image:
        return True
    source, other = getattr(shown, "source", None), getattr(image, "source", None)
    if source is None or other is None or Path(source) != Path(other):
        return False
    return _map_index(shown) == _map_index(image)  # one file, several maps: the same one


def _map_index(image: Any) -> int:
    return int((getattr(image, "metadata", None) or {}).get("map_index", 0))
