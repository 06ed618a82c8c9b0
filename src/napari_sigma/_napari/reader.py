"""napari reader: EDS spectrum images and single spectra from vendor files.

``get_reader(path)`` returns None for anything it cannot take (another extension, a directory, a
list holding a foreign file), so that napari tries other readers. For a file it takes, the returned
function yields:

- a spectrum image: its total-counts image, the file's own images (BSE, SE, HAADF) and the cube as a
  hidden ``(energy, y, x)`` Image layer, a view of the counts (see :mod:`napari_sigma._napari.layers`),
  read lazily (dask) for JEOL event streams and files above 256 MiB (:func:`reads_lazily`);
- a single spectrum: a hidden ``(1, E)`` Image layer with role ``"spectrum"`` that the Spectrum
  widget plots.

A file of a spectrum-image format that holds only a spectrum (a pruned Velox ``.emd``) opens as that
spectrum, with a warning notification naming the file. A file with the right extension that cannot
be read (corrupt, or holding neither a spectrum image nor a spectrum) raises :class:`~napari_sigma.errors.SpectrumImageError`, whose message names the
file and the cause; napari reports it and stays up. The file is read in a child process
(:mod:`napari_sigma.io.reading_process.isolation`): a reader that crashes on a corrupt file cannot take napari down.
Corrections made at the door (:mod:`napari_sigma.io.readers.validation`) are shown as warnings.
"""

from __future__ import annotations

import importlib
import threading
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from napari_sigma._napari.layers import (
    PIXELS,
    LayerData,
    layer_spatial,
    spectrum_image_layers,
    spectrum_layer,
    with_spatial,
)
from napari_sigma.compute.background import start_thread
from napari_sigma.spectrum_image import Spectrum, SpectrumImage

SPECTRUM_IMAGE_SUFFIXES = (".bcf", ".emd", ".spd", ".pts", ".asw", ".elid", ".rpl", ".h5oina")
ALWAYS_LAZY_SUFFIXES = (".pts", ".asw")  # compressed event streams: a small file, a huge cube
LAZY_ABOVE_BYTES = 256 * 2**20


def _is_supported(path: str | Path) -> bool:
    from napari_sigma.io.readers.reading import is_supported

    path = Path(path)
    return not path.is_dir() and is_supported(path)


def get_reader(
    path: str | Sequence[str],
) -> Callable[[str | Sequence[str]], list[LayerData]] | None:
    """Return a function reading ``path`` into layer data, or None if this plugin cannot take it.

    Parameters
    ----------
    path : str or list of str
        One file, or several (each must be a supported EDS file).

    Returns
    -------
    callable or None
        ``reader(path) -> list of (data, kwargs, layer_type)``.
    """
    paths = [path] if isinstance(path, str | Path) else list(path)
    if not paths or not all(_is_supported(p) for p in paths):
        return None
    return read_layers


def read_layers(path: str | Sequence[str]) -> list[LayerData]:
    """Read one or several EDS files into napari layer data.

    Parameters
    ----------
    path : str or list of str
        The files.

    Returns
    -------
    list of (data, kwargs, layer_type)

    Raises
    ------
    SpectrumImageError
        A file is broken or holds neither a spectrum image nor a spectrum.
    """
    paths = [path] if isinstance(path, str | Path) else list(path)
    layers: list[LayerData] = []
    try:
        for one in paths:
            layers.extend(read_file_layers(Path(one)))
    except ViewerClosedDuringRead:
        return [(None,)]  # napari's "read, nothing to add": its open returns no layers
    viewer = _current_viewer()
    tell_units_apart(paths, layers, viewer)
    return fit_spectra(layers, viewer)


def tell_units_apart(paths: Sequence[Any], layers: list[LayerData], viewer: Any) -> None:
    """One line when the file's maps are in pixels and the viewer's in a length, or the other
    way round (a file without a pixel size, the Hitachi tabletop's, beside a calibrated one):
    napari then draws every layer without units (no scale bar) and says only "Inconsistent
    units across layers"; the line names the file and why."""
    maps = [kwargs for _, kwargs, _ in layers if _role(kwargs) != "spectrum"]
    spatial = layer_spatial(maps[0]) if maps else None
    others = _map_layers(viewer)
    if spatial is None or not others:
        return
    mine = spatial[1][-1] == PIXELS
    apart = [layer for layer in others if (str(layer.units[-1]) == PIXELS) != mine]
    if not apart:
        return
    from napari.utils.notifications import show_warning

    name = Path(paths[0]).name
    words = {PIXELS: "pixels", "micrometer": "µm", "nanometer": "nm"}
    unit = str(apart[0].units[-1])
    theirs = f"{apart[0].name!r} in {words.get(unit, unit)}"
    why = "has no pixel size: its maps are in pixels" if mine else f"is in {spatial[1][-1]}"
    show_warning(
        f"{name} {why}, beside {theirs}: napari draws them without units (no scale bar); "
        "open it in a viewer of its own to measure"
    )


def _current_viewer() -> Any:
    """napari's current viewer (the one a file is opened in), or None outside napari."""
    try:
        from napari import current_viewer

        return current_viewer()
    except Exception:
        return None


def fit_spectra(layers: list[LayerData], viewer: Any = None) -> list[LayerData]:
    """``layers`` with each single spectrum's spatial axes in the units of the maps beside it.

    A spectrum's layer (:func:`~napari_sigma._napari.layers.spectrum_layer`) has one pixel on
    two spatial axes that mean nothing; napari finds a viewer's units only where every layer's
    axes agree (µm and nm do, µm and pixels do not: "Inconsistent units across layers", a
    toast per layer added, units dropped from the drawing). The maps are the first spectrum
    image's read with it, otherwise the ``viewer``'s other layers. Spectra already in the
    ``viewer`` alone (a spectrum opened first) take the new maps' units too.
    """
    maps = [kwargs for _, kwargs, _ in layers if _role(kwargs) != "spectrum"]
    spatial = layer_spatial(maps[0]) if maps else _viewer_spatial(viewer)
    if spatial is None:
        return layers
    if maps:
        _fit_viewer_spectra(viewer, spatial)
    return [with_spatial(one, spatial) if _role(one[1]) == "spectrum" else one for one in layers]


def _role(kwargs: Any) -> str | None:
    from napari_sigma._napari import state

    metadata = kwargs.get("metadata") if isinstance(kwargs, dict) else None
    return (metadata or {}).get(state.KEY, {}).get("role")


def _viewer_spatial(viewer: Any) -> Any:
    """The spatial calibration of the viewer's layers other than spectra, when they agree."""
    others = _map_layers(viewer)
    if not others:
        return None
    extent = viewer.layers.get_extent(others)
    if extent.units is None or len(extent.units) < 2:
        return None
    step, units = extent.step, extent.units
    return (float(step[-2]), float(step[-1])), (str(units[-2]), str(units[-1]))


def _fit_viewer_spectra(viewer: Any, spatial: Any) -> None:
    """Give the viewer's spectra the new maps' spatial units when nothing else is there."""
    layers = _layers(viewer)
    if not layers or _map_layers(viewer):
        return
    (sy, sx), (uy, ux) = spatial
    for layer in layers:
        if layer.ndim == 3:
            layer.scale = (layer.scale[0], sy, sx)
            layer.units = (layer.units[0], uy, ux)


def _map_layers(viewer: Any) -> list[Any]:
    """The viewer's layers other than single spectra (its maps, labels and other layers)."""
    return [layer for layer in _layers(viewer) if _role({"metadata": layer.metadata}) != "spectrum"]


def _layers(viewer: Any) -> list[Any]:
    try:
        return list(viewer.layers)
    except Exception:  # no viewer, or one being closed
        return []


class ViewerClosedDuringRead(Exception):
    """napari's window was closed while the reader waited for the reading process."""


def read_file_layers(path: Path) -> list[LayerData]:
    """Layers of one file: a spectrum image's layers (each map's, for a file of several
    spectrum images: :func:`read_other_maps`), or a single spectrum's hidden layer."""
    lazy = reads_lazily(path)
    live = _live()
    if live:  # the dock's imports while napari waits for the read (see _read_keeping_napari_live)
        from napari_sigma._napari import preload

        preload.start()
    warm_up = warm_up_layer_adding(lazy, frozen=live)  # while this thread waits for the read
    try:
        data = _read(path, lazy, live)
    finally:
        warm_up.join()  # napari uses pint as soon as the layers are added: never both at once
    if isinstance(data, SpectrumImage):
        images = [data, *read_other_maps(path, data, lazy, live)]
        for image in images:
            warn_data_corrections(path, image)
        if len(images) > 1:
            warn_maps_opened(path, images)
        for image in images:
            offer_recovery_of(path, image.metadata.get("map_index", 0))
        return [
            (data, kwargs if k == 0 else {**kwargs, "visible": False}, kind)
            for k, image in enumerate(images)
            for data, kwargs, kind in spectrum_image_layers(image)
        ]  # each map an image of its own (another area, another pixel size: the .elid's third
        # is 2.03 µm, the others 1.22): shown at once, they lay on top of each other and the
        # first map's result over the last map's image; the first shown, the others hidden
    if path.suffix.lower() in SPECTRUM_IMAGE_SUFFIXES:
        warn_spectrum_only(path, data)
    return [spectrum_layer(data)]


def _read(path: Path, lazy: bool, live: bool, map_index: int = 0) -> Any:
    """The file's ``map_index``-th spectrum image (or its spectrum), its data warnings kept for
    the notifications (:func:`warn_data_corrections`)."""
    from napari_sigma.io.readers.reading import read_any
    from napari_sigma.io.readers.validation import DataWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)  # shown as notifications, once
        if live:
            return _read_keeping_napari_live(path, lazy, map_index)
        return read_any(path, lazy=lazy, map_index=map_index)


def read_other_maps(path: Path, first: SpectrumImage, lazy: bool, live: bool) -> list[Any]:
    """The spectrum images of ``path`` after ``first`` (a Phenom ``.elid`` holds several maps):
    each is a spectrum image of its own, with its own layers (named after the map), which the
    plugin's widgets list as sources; the first alone was shown before (twentieth session)."""
    maps = first.metadata.get("maps") or []
    return [_read(path, lazy, live, index) for index in range(1, len(maps))]


LIVE_POLL_S = 0.01  # how long one wait for the reading process lasts between two event-loop turns


def _live() -> bool:
    """Whether the read runs in napari's main thread with files read in a child process."""
    from napari_sigma.io.readers.reading import _isolating

    if not _isolating(None) or threading.current_thread() is not threading.main_thread():
        return False
    from qtpy.QtWidgets import QApplication

    return QApplication.instance() is not None


def _read_keeping_napari_live(path: Path, lazy: bool, map_index: int = 0) -> Any:
    """:func:`~napari_sigma.io.readers.reading.read_any` in the reading process while Qt's event loop
    keeps turning in this thread (every :data:`LIVE_POLL_S`).

    napari calls a reader in its main thread and waits for it; the read is a wait for the child
    process (1.2-1.5 s on a first JEOL read, the child's start included), during which napari
    was frozen: no repaint, no timer. Here the wait is cut into 10 ms slices with one turn of
    the event loop between them, without user input (``ExcludeUserInputEvents``): clicks and
    keys wait for the end of the open as before (a second open, or closing a layer, cannot
    start in the middle of this one), while the window repaints and napari's and the plugin's
    timers run. napari itself turns the loop inside an open (its progress bar and each Image
    layer's controls call ``processEvents``). A read started from inside such a turn (a timer
    opening a file) is refused (:func:`~napari_sigma.io.reading_process.isolation.read_steps`) instead of
    waiting forever for the reading process this read holds.
    """
    from qtpy.QtCore import QEventLoop
    from qtpy.QtWidgets import QApplication

    from napari_sigma.io.reading_process.isolation import read_steps

    flags = QEventLoop.ProcessEventsFlag.ExcludeUserInputEvents
    window = _ViewerWindow.current()
    steps = read_steps("read_any", path, lazy, poll_s=LIVE_POLL_S, map_index=map_index)
    try:
        while True:
            try:
                next(steps)
            except StopIteration as done:
                return done.value
            QApplication.processEvents(flags)
            if window.closed():
                raise ViewerClosedDuringRead(path)
    finally:
        steps.close()  # unfinished: the reading process is stopped (a new one serves the next)


class _ViewerWindow:
    """The window of the viewer a file is opened in (napari's current viewer), watched for a
    close during the read.

    A window close is not user input: the live wait processes it. napari then went on to add
    the file's layers to the closed viewer: after ``viewer.close()`` into a viewer with no
    window, after a close of the window itself (its close button, the window manager) into a
    canvas whose OpenGL context was gone, where the first Image layer raised (vispy's
    ``glGetParameter``: "'NoneType' object has no attribute 'decode'"). Now the read stops there
    (its reading process with it) and napari gets no layers.
    """

    def __init__(self, viewer: Any = None) -> None:
        self.viewer = viewer
        window = getattr(getattr(viewer, "window", None), "_qt_window", None)
        self.had_window = window is not None
        self.shown = _is_visible(window) is True

    @classmethod
    def current(cls) -> _ViewerWindow:
        try:
            from napari import current_viewer

            return cls(current_viewer())
        except Exception:  # no napari viewer to watch: never closed
            return cls()

    def closed(self) -> bool:
        if not self.had_window:
            return False
        window = getattr(getattr(self.viewer, "window", None), "_qt_window", None)
        if window is None:  # napari's Viewer.close() drops its window
            return True
        return self.shown and _is_visible(window) is not True


def _is_visible(window: Any) -> bool | None:
    """Whether a Qt window is shown; None when there is none, False when Qt deleted it."""
    if window is None:
        return None
    try:
        return bool(window.isVisible())
    except RuntimeError:  # its C++ object is gone
        return False


WARM_UP_MODULES = ("scipy.ndimage",)
LAZY_WARM_UP_MODULES = ("dask.array",)


def warm_up_layer_adding(lazy: bool, frozen: bool = False) -> threading.Thread:
    """Do napari's and the reader's one-time costs of a first open in a thread; return it.

    The file is read in a child process (:mod:`napari_sigma.io.reading_process.isolation`) while napari's main
    thread waits for it; the costs it paid afterwards, measured on the first JEOL open (load 5,
    profiled): building pint's unit registry when napari adds the first layer with units
    (1.6 s), importing ``dask.array`` to receive a lazy cube (1.0 s) and ``scipy.ndimage``
    (0.15 s). They run here during the wait. The caller joins the thread before napari adds
    layers: pint's lazy registry must not be built by two threads at once. ``frozen``: with the
    collector paused and what they made frozen (:func:`_warm_up`), for a caller whose own thread
    only waits meanwhile (the reading process reads the file).
    """
    return start_thread(_warm_up, "napari-sigma-open-warm-up", args=(lazy, frozen))


def _warm_up(lazy: bool, frozen: bool) -> None:
    """The imports and pint's registry; ``frozen``: with the collector paused and what they made
    frozen (:func:`~napari_sigma._napari.preload.collector_paused`: a full collection in the
    middle of them held the GIL for 136 ms of a JEOL open, load 15). The freeze runs while
    napari's main thread waits for the reading process or for this thread: nothing of the file
    exists in napari's process yet."""
    if not frozen:
        _warm_up_imports(lazy)
        return
    from napari_sigma._napari import preload

    with preload.collector_paused():
        _warm_up_imports(lazy)
        preload.freeze_long_lived()


def _warm_up_imports(lazy: bool) -> None:
    for name in WARM_UP_MODULES + (LAZY_WARM_UP_MODULES if lazy else ()):
        try:
            importlib.import_module(name)
        except Exception:  # the reader's own import raises it where it belongs
            continue
    try:
        import pint

        registry = pint.get_application_registry()
        for unit in (
            "µm",
            "keV",
            "pixel",
        ):  # builds the registry, then parses the units napari gets
            registry.Unit(unit)
    except Exception:  # napari's own use of pint reports it
        pass


def reads_lazily(path: Path) -> bool:
    """Whether to read ``path`` as a dask cube: JEOL event streams, and files above 256 MiB.

    Small files are read into memory: it is faster (a lazy Velox read takes seconds longer than
    an eager one) and the cube view is indexed on every mouse move.
    """
    if path.suffix.lower() in ALWAYS_LAZY_SUFFIXES:
        return True
    return path.stat().st_size > LAZY_ABOVE_BYTES


def warn_data_corrections(path: Path, image: SpectrumImage) -> None:
    """Show the corrections made at the door (NaN counts set to 0, eV converted ...), one each,
    and the reader's notes, as information (not the note of which map of several was read:
    napari opens them all, :func:`warn_maps_opened`)."""
    from napari_sigma.io.readers.signals import MAPS_NOTE

    maps = len(image.metadata.get("maps") or [])
    warned = image.metadata.get("warnings", [])
    noted = [
        note
        for note in image.metadata.get("notes", [])
        if not (maps > 1 and note.startswith(MAPS_NOTE.format(maps)))
    ]
    if not warned and not noted:
        return
    from napari.utils.notifications import show_info, show_warning

    for note in warned:
        show_warning(f"{path.name}: {note}")
    for note in noted:
        show_info(f"{path.name}: {note}")


def warn_maps_opened(path: Path, images: Sequence[SpectrumImage]) -> None:
    """One line: the file held several spectrum images, each opened as its own (the first
    shown, the others' layers hidden)."""
    from napari.utils.notifications import show_info

    from napari_sigma._napari.layers import display_title

    names = ", ".join(repr(display_title(image)) for image in images)
    show_info(
        f"{path.name}: the file holds {len(images)} spectrum images, each opened: {names}; "
        "the first is shown, the others' layers are hidden (each its own area)"
    )


def offer_recovery_of(path: Path, map_index: int = 0) -> None:
    """Offer to restore the phase edits autosaved for ``path`` (its ``map_index``-th spectrum
    image; :mod:`~napari_sigma._napari.recovery`)."""
    from napari_sigma._napari.recovery import offer_recovery

    try:
        offer_recovery(path, map_index)
    except OSError:  # an unreadable cache folder must not stop the file from opening
        pass


def warn_spectrum_only(path: Path, spectrum: Spectrum) -> None:
    """Tell the user that a spectrum-image file held only a spectrum (shown in the widget)."""
    from napari.utils.notifications import show_warning

    show_warning(
        f"{path.name}: no spectrum image in this file (pruned or converted?); opened its "
        f"{spectrum.energy.size}-channel spectrum only (see the 'Spectrum and elements' widget)."
    )
