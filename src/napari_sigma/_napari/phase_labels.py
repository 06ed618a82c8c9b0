"""A phases Labels layer's data and colours, without Qt: the label dtypes (uint8 up to 254
phases), the colour dict and napari colormap of its :class:`PhaseModel`, its features table, and
the colormap kept in step with the model.

Moved verbatim from :mod:`napari_sigma._napari.results` (which still exports every name).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from napari_sigma._napari import state
from napari_sigma._napari.phase_model import PhaseModel

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
        skip_retired_phase(layer, model)
        ensure_label_capacity(layer, layer.selected_label)

    layer.events.selected_label.connect(widen_for_selected)


def skip_retired_phase(layer: Any, model: PhaseModel) -> None:
    """Move napari's "new" label past the phases the model keeps without pixels.

    napari's new label (the layer controls' "new" button, its M key) is the layer's largest
    label plus one. After the highest phases were merged into another or unassigned, that is
    a phase the model still holds, for Undo: a region a user then painted "new" came up with
    that phase's name, colour and mineral ("P2 copper" over the aluminium of the Phenom
    file, qa25's walk). Such a selection becomes an id no phase has had (the lasso's and the
    split's choice); so does the same number typed in the spin box (napari's event does not
    tell them apart: Undo brings the phase back). Every other selection stays.
    """
    selected = int(layer.selected_label)
    if selected <= 0 or selected not in model:
        return
    if selected != int(np.max(layer.data, initial=0)) + 1:
        return  # a phase the layer shows, or a number beyond napari's "new"
    layer.selected_label = max(model.next_id(), selected)


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
