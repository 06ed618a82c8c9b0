"""Where the plugin keeps its data on napari layers, so that widgets find each other's results.

Every layer the plugin makes carries ``layer.metadata["napari_sigma"]``, a dict with a ``"role"`` and
the core objects behind the layer:

- role ``"cube"`` / ``"total"`` / ``"image"`` (from the reader or sample data):
  ``{"role": ..., "spectrum_image": SpectrumImage}``; sample data also ``"truth": SyntheticSample``.
  A file's element maps are one ``"image"`` layer ``(element map, y, x)`` with ``"names"``: the
  maps' names in slice order.
- role ``"phases"`` (a Labels layer made by the analysis): ``{"role": "phases", "result": AnalysisResult,
  "phases": PhaseModel}`` where ``PhaseModel`` is the evented phase table of ``_napari/phase_model.py``.
- role ``"component"`` (the unmixed component maps, ``(component, y, x)``, tiling the
  energy axis's range): ``{"role": "component",
  "result": AnalysisResult, "names": [component names]}``.
"""

from __future__ import annotations

from typing import Any

KEY = "napari_sigma"


def plugin_data(layer: Any) -> dict[str, Any]:
    """The plugin's dict on a layer (empty if the layer is not the plugin's)."""
    data = getattr(layer, "metadata", {}).get(KEY)
    return data if isinstance(data, dict) else {}


def role_of(layer: Any) -> str | None:
    """The plugin role of a layer, or None."""
    return plugin_data(layer).get("role")


def spectrum_image_of(layer: Any):
    """The :class:`~napari_sigma.spectrum_image.SpectrumImage` behind a layer, or None."""
    data = plugin_data(layer)
    if "spectrum_image" in data:
        return data["spectrum_image"]
    result = data.get("result")
    return getattr(result, "image", None)


def result_of(layer: Any):
    """The :class:`~napari_sigma.pipeline.analysis.AnalysisResult` behind a layer, or None."""
    return plugin_data(layer).get("result")


def phase_name(layer: Any, label: int) -> str | None:
    """Display name of phase ``label`` of a phases or truth Labels layer, or None if unnamed.

    The layer's :class:`~napari_sigma._napari.phase_model.PhaseModel` (``"phases"``, so renames
    count) first, then the names it was made with (``"phase_names"``), then its result's.
    """
    data = plugin_data(layer)
    model = data.get("phases")
    if model is not None and label in model:
        return model.name(label)
    names = data.get("phase_names") or getattr(data.get("result"), "phase_names", None) or []
    return str(names[label - 1]) if 0 < label <= len(names) else None


def tag(layer_metadata: dict[str, Any] | None, **values: Any) -> dict[str, Any]:
    """Return a layer metadata dict with the plugin's entry set to ``values``."""
    metadata = dict(layer_metadata or {})
    metadata[KEY] = dict(values)
    return metadata


def unwrap(obj: Any) -> Any:
    """The object behind napari's ``PublicOnlyProxy`` (what napari hands a plugin widget).

    The proxy wraps every attribute it returns in a new proxy, so layers reached through it fail
    identity checks (``layer is self.layer``) and pay a frame inspection per attribute access;
    the widgets keep the viewer itself.
    """
    return getattr(obj, "__wrapped__", obj)


def alive_only(method: Any) -> Any:
    """A Qt widget's slot that does nothing once Qt deleted the widget (a worker outlived it)."""
    from functools import wraps

    @wraps(method)
    def slot(self: Any, *args: Any) -> Any:
        from qtpy import sip

        if sip.isdeleted(self):
            return None
        return method(self, *args)

    return slot


PHASE_SPECTRA_PENDING = "phase_spectra_pending"


class _PhaseSpectraEvents:
    """``updated(layer)``: the Phases widget stored new phase spectra for ``layer``."""

    from psygnal import Signal

    updated = Signal(object)


phase_spectra_events = _PhaseSpectraEvents()


def set_phase_spectra(layer: Any, energies: Any, table: Any) -> None:
    """Store the phase spectra of a phases layer (the Phases widget) and tell who listens."""
    data = plugin_data(layer)
    data["phase_spectra"] = (energies, table)
    data.pop(PHASE_SPECTRA_PENDING, None)
    phase_spectra_events.updated.emit(layer)


def phase_spectra_pending(layer: Any) -> bool:
    """Whether a Phases widget is computing the phase spectra of ``layer`` (a pass over the cube:
    no other widget should make a second one meanwhile), or will once the layer is added."""
    data = plugin_data(layer)
    return bool(data.get(PHASE_SPECTRA_PENDING) or data.get(ADDING))


ADDING = "adding"


class _ResultEvents:
    """``added(layer)``: a run's layers are all in the viewer, ``layer`` its phases layer
    (:func:`~napari_sigma._napari.results.add_result_layers_stepwise`)."""

    from psygnal import Signal

    added = Signal(object)


result_events = _ResultEvents()


def being_added(layer: Any) -> bool:
    """Whether ``layer`` is a phases layer whose run's layers are still being added, one per turn
    of Qt's event loop: work that can wait for them (its statistics) waits for
    :data:`result_events` ``.added``."""
    return bool(plugin_data(layer).get(ADDING))


def start_adding(layer: Any) -> None:
    """Mark a phases layer as being added (:func:`being_added`), before it enters a viewer."""
    plugin_data(layer)[ADDING] = True


def finish_adding(layer: Any) -> None:
    """The run's layers are all in: tell who waits (a Phases widget starts the statistics and
    the phase spectra); if none took the phase spectra on, those who wait for them are told
    (a Spectrum widget then computes its phase itself)."""
    data = plugin_data(layer)
    if not data.pop(ADDING, False):
        return
    result_events.added.emit(layer)
    if not phase_spectra_pending(layer):
        phase_spectra_events.updated.emit(layer)


def phase_spectra_of(layer: Any) -> tuple[Any, Any] | None:
    """``(energies, PhaseTable)`` the Phases widget last computed for a phases layer, or None.

    The table's ``mean_spectra`` follow the label image after every edit; ``energies`` are their
    channel energies in keV (coarser than the file's for a cube read lazily).
    """
    return plugin_data(layer).get("phase_spectra")


def shown(widget: Any) -> bool:
    """Whether a Qt widget shows when its window does (False inside a hidden tab or dock)."""
    window = widget.window()
    return window is widget or widget.isVisibleTo(window)
