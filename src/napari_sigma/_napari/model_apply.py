"""The Phases tab's *Apply model...*: a saved model (or session) applied to the open spectrum
image, its phases added as a layer, and one notification saying whether the model describes the
field (:mod:`napari_sigma.pipeline.model_check`): a warning naming the share of pixels that fit
no phase, the elements the model does not analyse and a beam energy that differs.

The reading and the classification run in a worker (:func:`read_and_apply`: no napari); the
layers are added on the main thread (:func:`add_applied_layers`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from napari_sigma._napari import state

SOURCE_ROLES = ("total", "image", "cube")


def open_spectrum_image(viewer: Any) -> Any:
    """The spectrum image to apply a model to: the selected layer's, else the first layer's
    that has one; None when none is open."""
    active = viewer.layers.selection.active
    layers = [active, *viewer.layers] if active is not None else list(viewer.layers)
    for layer in layers:
        if state.role_of(layer) in SOURCE_ROLES and state.spectrum_image_of(layer) is not None:
            return state.spectrum_image_of(layer)
    return None


def read_and_apply(path: str | Path, image: Any) -> tuple[Any, Any]:
    """Read the model at ``path`` (a model file, or a session: its model) and apply it to
    ``image`` (no napari: safe in a worker). Returns ``(model, result)``."""
    from napari_sigma.cli_fields import model_to_apply
    from napari_sigma.compute.progress import run_to_completion
    from napari_sigma.pipeline.model import apply_model

    model = model_to_apply(Path(path))
    return model, run_to_completion(apply_model(model, image))


def apply_report(path: str | Path, result: Any) -> tuple[bool, str]:
    """``(warns, text)``: the one-line notification of an applied model."""
    check = result.model_check
    phases = int(np.count_nonzero(np.bincount(np.ravel(result.labels))[1:]))
    head = f"Applied {Path(path).name} to {result.image.title or 'the field'}: {phases} " + (
        "phase" if phases == 1 else "phases"
    )
    if check is None:
        return False, head
    if check.warns:
        return True, f"{head}; {check.warning()}"
    share = 100 * check.not_fitted_fraction
    return False, f"{head}; the model describes the field ({share:.1f} % of pixels beyond it)"


def add_applied_layers(viewer: Any, model: Any, result: Any, path: str | Path) -> Any:
    """Add the applied model's phases layer (the model's ids, names and colours) and, where the
    field warns of pixels that fit no phase, their mask as a second Labels layer; return the
    phases layer."""
    from napari_sigma._napari.phase_model import Phase, PhaseModel
    from napari_sigma._napari.results import (
        connect_colormap,
        phases_layer_data,
        result_title,
        spatial_kwargs,
        unique_name,
    )

    phases = PhaseModel(
        Phase(int(i), str(n), tuple(float(c) for c in color))
        for i, n, color in zip(model.phase_ids, model.phase_names, model.phase_colors, strict=True)
    )
    title = f"{result_title(result)}, {Path(path).stem}"
    data, kwargs = phases_layer_data(result, unique_name(viewer, f"phases ({title})"), phases)
    layer = viewer.add_labels(data, **kwargs)
    connect_colormap(layer)
    check = result.model_check
    if check is not None and check.mask is not None:
        if check.too_many_not_fitted:
            viewer.add_labels(
                check.mask.astype(np.uint8),
                name=unique_name(viewer, f"not fitted ({title})"),
                opacity=0.5,
                **spatial_kwargs(result),
            )
    viewer.layers.selection.active = layer
    return layer


class _ModelApply:
    """*Apply model...* (methods of `PhasesWidget`; its `_session_worker` runs the work)."""

    def _choose_model_to_apply(self) -> None:
        from qtpy.QtWidgets import QFileDialog

        from napari_sigma._napari.sessions import MODEL_FILTER

        path, _ = QFileDialog.getOpenFileName(self, "Apply model", "", MODEL_FILTER)
        if path:
            self.apply_model_file(path)

    def apply_model_file(self, path: str | Path) -> Any:
        """Apply the model at ``path`` to the open spectrum image (in a worker); add its phases
        layer and notify how well the model describes the field. Return the worker."""
        from napari.utils.notifications import show_info

        image = open_spectrum_image(self.viewer)
        if image is None:
            show_info("Apply model: no spectrum image is open (open an EDS file first)")
            return None
        return self._session_worker(
            "Apply model", path, read_and_apply, (path, image),
            lambda applied: self._on_model_applied(path, *applied),
        )  # fmt: skip

    @state.alive_only
    def _on_model_applied(self, path: Any, model: Any, result: Any) -> None:
        from napari.utils.notifications import show_info, show_warning

        self.set_layer(add_applied_layers(self.viewer, model, result, path))
        warns, text = apply_report(path, result)
        (show_warning if warns else show_info)(text)
