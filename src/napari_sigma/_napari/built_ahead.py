"""napari's Qt controls of a layer built a turn before the layer is inserted.

Inserting a layer into a shown viewer builds, in the one callback chain of napari's
``layers.events.inserted``, the layer's vispy visual and its Qt layer controls (the contrast,
opacity, blending... widgets in napari's stack of controls, one widget per layer): the 30x30
map's hidden components layer was 63 ms of napari's main thread in one turn, ~a third of it the
controls (cProfile, load ~20). The controls depend on the layer only: built in a turn of their
own before the insertion (:func:`build_controls`) and handed to napari's container when the
layer arrives (:func:`controls_ready`), the insertion is that much shorter, and the widget the
user finds is the very one napari would have built (napari's own ``create_qt_layer_controls``).

A napari without these internals (or with its experimental dynamic layer controls): nothing is
built ahead, napari builds them at the insertion as always.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from napari_sigma._napari import state


def _container(viewer: Any) -> Any:
    """napari's stack of layer controls of ``viewer`` (None: none, or another napari)."""
    try:
        container = state.unwrap(viewer).window._qt_viewer.controls
        from napari.settings import get_settings

        if get_settings().experimental.dynamic_layer_controls:
            return None  # napari builds no controls per layer then
        if not isinstance(container.widgets, dict) or not hasattr(type(container), "_add"):
            return None
    except Exception:
        return None
    return container


def build_controls(viewer: Any, layer: Any) -> Any:
    """napari's controls widget of ``layer`` (not yet in ``viewer``), built and put in napari's
    stack of controls, not shown; None where nothing was built (see the module's note)."""
    container = _container(viewer)
    if container is None:
        return None
    try:
        from napari._qt.layer_controls.qt_layer_controls_container import (
            create_qt_layer_controls,
        )

        controls = create_qt_layer_controls(layer)
        controls.ndisplay = state.unwrap(viewer).dims.ndisplay
        container.addWidget(controls)  # a page of the stack, not the current one: unseen
    except Exception:
        return None
    return controls


def discard_controls(viewer: Any, controls: Any) -> None:
    """Take controls built ahead out of napari's stack (their layer was not inserted)."""
    container = _container(viewer)
    if container is None or controls is None:
        return
    if any(widget is controls for widget in container.widgets.values()):
        return  # napari's now: it removes them with their layer
    try:
        container.removeWidget(controls)
        controls.hide()
        controls.deleteLater()
    except RuntimeError:  # deleted with the window
        return


@contextmanager
def controls_ready(viewer: Any, layer: Any, controls: Any) -> Iterator[None]:
    """Inside, napari's container takes ``controls`` (:func:`build_controls`) for ``layer``
    when it is inserted, instead of building them; other layers as always. napari calls its
    container's ``_add`` by name on the container (its events hold methods as a weak reference
    and a name), so an attribute of the instance stands in for the class's method. Controls
    ``layer`` did not take (not inserted) are discarded (also by the caller, with
    :func:`discard_controls`, where it stops between building and inserting)."""
    container = _container(viewer) if controls is not None else None
    if container is None:
        yield
        return
    own_add = type(container)._add

    def add(event: Any) -> None:
        if event.value is layer:
            controls.ndisplay = state.unwrap(viewer).dims.ndisplay
            container.widgets[layer] = controls
        else:
            own_add(container, event)

    container._add = add
    try:
        yield
    finally:
        del container._add
        discard_controls(viewer, controls)
