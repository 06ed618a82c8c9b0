"""What napari builds, compiles or imports the first time it draws a phases layer, done ahead:
the new visuals' first draw in a turn of their own, the brush cursor's overlay, the layer's
overlays built one per turn, and napari's label colouring compiled in a background thread.

Moved verbatim from :mod:`napari_sigma._napari.results` (which still exports every name).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from napari_sigma._napari.phase_labels import SMALL_LABELS, WIDE_LABELS, layer_colormap
from napari_sigma._napari.phase_model import PhaseModel
from napari_sigma.compute.background import start_thread


def _draw_unseen(viewer: Any, visuals: list[Any] | None = None) -> bool:
    """Draw napari's canvas once where nothing reaches the screen (a scissor box of no pixels),
    in its own OpenGL context and framebuffer; True when it was drawn. With ``visuals`` (vispy
    visuals: :func:`layer_visual`, :func:`cursor_circle`), only those (and their children), so
    that new visuals' first draws can be spread over turns (the phases layer, one of the brush
    cursor's circles and the rest of the canvas: 8 + 43 ms of main thread in two turns at load
    15-19, the 30x30 map; all in one, 48 ms).

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
            if visuals is None:
                scene.draw_visual(scene.scene)
            for visual in visuals or ():
                _draw_node(scene, visual)
        finally:
            context.set_state(scissor_test=False)
            context.flush_commands()
    except Exception:
        return False
    return True


def layer_visual(viewer: Any, layer: Any) -> Any:
    """The vispy node that draws ``layer`` in napari's canvas (None: none, another napari)."""
    try:
        return viewer.window._qt_viewer.canvas.layer_to_visual[layer].node
    except Exception:
        return None


def cursor_circle(viewer: Any) -> Any:
    """One of the two circles of napari's brush cursor (vispy's Ellipse; None: not built, or
    another napari)."""
    try:
        canvas = viewer.window._qt_viewer.canvas
        return canvas._viewer_overlay_to_visual[viewer.canvas.overlays._brush_circle][
            0
        ]._white_circle
    except Exception:
        return None


def _draw_node(scene: Any, node: Any) -> None:
    """Draw ``node`` and its visible children as vispy's ``SceneCanvas.draw_visual`` draws the
    whole scene (which draws the whole scene whatever visual it is given)."""
    scene._drawing = True
    try:
        skipping = None
        for each, start in scene._generate_draw_order(node):
            if not start:
                if each is skipping:
                    skipping = None
            elif skipping is None:
                if not each.visible:
                    skipping = each
                elif hasattr(each, "draw"):
                    each.draw()
    finally:
        scene._drawing = False


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
