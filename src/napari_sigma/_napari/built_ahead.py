"""napari's Qt controls and vispy visual of a layer built in turns before the layer is inserted.

Inserting a layer into a shown viewer builds, in the one callback chain of napari's
``layers.events.inserted``, the layer's vispy visual and its Qt layer controls (the contrast,
opacity, blending... widgets in napari's stack of controls, one widget per layer): the 30x30
map's hidden components layer was 63 ms of napari's main thread in one turn, ~a third of it the
controls and half the visual (cProfile, load ~20). Both depend on the layer only: built in
turns of their own before the insertion (:func:`build_controls`, :func:`build_visual`) and
handed to napari when the layer arrives (:func:`taken_at_insertion`), the insertion is that
much shorter, and what the user finds is what napari would have built (napari's own
``create_qt_layer_controls`` and ``create_vispy_layer``; the visual follows the layer's events
from its construction on, as it would from the insertion).

The two napari methods stood in for (the controls container's ``_add``, ``QtViewer._add_layer``)
are private and napari is not pinned: a stand-in is used only where the installed method is code
it was checked against (`KNOWN_NAPARI_CODE`, by :func:`code_fingerprint`). A napari whose method
changed, or one without these internals (or with its experimental dynamic layer controls, or its
experimental polling of visuals): nothing is built ahead, napari builds them at the insertion as
always (tests/plugin/test_built_ahead_napari.py fails then on a release in
`CHECKED_NAPARI_VERSIONS`, naming the method to check; on any other release it skips, saying so).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from napari_sigma._napari import state

CHECKED_NAPARI_VERSIONS = ("0.9.2",)
"""The napari releases whose two methods were read against the stand-ins (`KNOWN_NAPARI_CODE`)."""

KNOWN_NAPARI_CODE = {
    "QtLayerControlsContainer._add": frozenset({"77bf1a300aa37375"}),  # napari 0.9.2
    "QtViewer._add_layer": frozenset({"dade4ab906fb015e"}),  # napari 0.9.2
}
"""The fingerprints (:func:`code_fingerprint`) of the napari methods whose work the stand-ins
(:func:`controls_ready`, :func:`taken_at_insertion`) do: the controls container's ``_add``
builds the layer's controls (``create_qt_layer_controls``), sets their ``ndisplay``, adds them
to its stack and to ``widgets``, unless the dynamic layer controls are on; ``_add_layer``
builds the visual (``create_vispy_layer``), wires it to the experimental poller if any, and
calls ``canvas.add_layer_visual_mapping``. Another napari's code is added here once read."""


@functools.lru_cache(maxsize=16)
def code_fingerprint(function: Any) -> str | None:
    """A short hash of ``function``'s code: its body's syntax tree, its docstring, comments and
    layout left out (None: no source to read)."""
    import ast
    import hashlib
    import inspect
    import textwrap

    try:
        definition = ast.parse(textwrap.dedent(inspect.getsource(function))).body[0]
    except (OSError, TypeError, SyntaxError, IndexError):
        return None
    body = definition.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]
    tree = ast.dump(ast.Module(body=body, type_ignores=[]))
    return hashlib.sha256(tree.encode()).hexdigest()[:16]


def is_known_code(cls: type, name: str) -> bool:
    """Whether ``cls.name`` is napari code a stand-in was checked against (`KNOWN_NAPARI_CODE`)."""
    function = getattr(cls, name, None)
    known = KNOWN_NAPARI_CODE.get(f"{cls.__name__}.{name}", frozenset())
    return function is not None and code_fingerprint(function) in known


def _container(viewer: Any) -> Any:
    """napari's stack of layer controls of ``viewer`` (None: none, or another napari)."""
    try:
        container = state.unwrap(viewer).window._qt_viewer.controls
        from napari.settings import get_settings

        if get_settings().experimental.dynamic_layer_controls:
            return None  # napari builds no controls per layer then
        if not isinstance(container.widgets, dict) or not is_known_code(type(container), "_add"):
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


def _qt_viewer(viewer: Any) -> Any:
    """napari's QtViewer of ``viewer`` when it adds visuals the usual way (None: another
    napari, or its experimental polling, which wires each new visual to its poller)."""
    try:
        qt_viewer = state.unwrap(viewer).window._qt_viewer
        if getattr(qt_viewer, "_qt_poll", None) is not None or not is_known_code(
            type(qt_viewer), "_add_layer"
        ):
            return None
        qt_viewer.canvas.add_layer_visual_mapping  # noqa: B018 (present)
    except Exception:
        return None
    return qt_viewer


def build_visual(viewer: Any, layer: Any) -> Any:
    """napari's vispy visual of ``layer`` (not yet in ``viewer``), built and not in the
    canvas' scene yet; None where nothing was built."""
    qt_viewer = _qt_viewer(viewer)
    if qt_viewer is None:
        return None
    try:
        from napari._vispy.utils.visual import create_vispy_layer

        return create_vispy_layer(layer, font_info=qt_viewer.canvas.font_info())
    except Exception:
        return None


def discard_visual(viewer: Any, visual: Any) -> None:
    """Close a visual built ahead that napari did not take (its layer was not inserted)."""
    qt_viewer = _qt_viewer(viewer)
    if visual is None or qt_viewer is None:
        return
    if any(each is visual for each in qt_viewer.canvas.layer_to_visual.values()):
        return  # napari's now
    try:
        visual.close()
    except Exception:
        return


@contextmanager
def taken_at_insertion(viewer: Any, layer: Any, controls: Any, visual: Any) -> Iterator[None]:
    """Inside, napari takes ``controls`` and ``visual`` (either may be None: napari builds it)
    for ``layer`` when it is inserted; other layers as always. napari calls its QtViewer's
    ``_add_layer`` by name, as it does the controls' ``_add``
    (:func:`controls_ready`), so an attribute of the instance stands in for the method there
    too; the visual is put in the canvas as napari puts the one it builds."""
    qt_viewer = _qt_viewer(viewer) if visual is not None else None
    with controls_ready(viewer, layer, controls):
        if qt_viewer is None:
            yield
            return
        own_add = type(qt_viewer)._add_layer

        def add(inserted: Any) -> None:
            if inserted is layer:
                qt_viewer.canvas.add_layer_visual_mapping(layer, visual)
            else:
                own_add(qt_viewer, inserted)

        qt_viewer._add_layer = add
        try:
            yield
        finally:
            del qt_viewer._add_layer
            discard_visual(viewer, visual)


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
