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
(:mod:`napari_sigma.io.isolation`): a reader that crashes on a corrupt file cannot take napari down.
Corrections made at the door (:mod:`napari_sigma.io.validation`) are shown as warnings.
"""

from __future__ import annotations

import importlib
import threading
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from napari_sigma._napari.layers import LayerData, spectrum_image_layers, spectrum_layer
from napari_sigma.spectrum_image import Spectrum, SpectrumImage

SPECTRUM_IMAGE_SUFFIXES = (".bcf", ".emd", ".spd", ".pts", ".asw", ".elid", ".rpl", ".h5oina")
ALWAYS_LAZY_SUFFIXES = (".pts", ".asw")  # compressed event streams: a small file, a huge cube
LAZY_ABOVE_BYTES = 256 * 2**20


def _is_supported(path: str | Path) -> bool:
    from napari_sigma.io.reading import is_supported

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
    for one in paths:
        layers.extend(read_file_layers(Path(one)))
    return layers


def read_file_layers(path: Path) -> list[LayerData]:
    """Layers of one file: a spectrum image's layers, or a single spectrum's hidden layer."""
    from napari_sigma.io.reading import read_any
    from napari_sigma.io.validation import DataWarning

    lazy = reads_lazily(path)
    live = _live()
    if live:  # the dock's imports while napari waits for the read (see _read_keeping_napari_live)
        from napari_sigma._napari import preload

        preload.start()
    warm_up = warm_up_layer_adding(lazy)  # while this thread waits for the reading process
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DataWarning)  # shown below, once, as notifications
            data = _read_keeping_napari_live(path, lazy) if live else read_any(path, lazy=lazy)
    finally:
        warm_up.join()  # napari uses pint as soon as the layers are added: never both at once
    if isinstance(data, SpectrumImage):
        warn_data_corrections(path, data)
        offer_recovery_of(path)
        return spectrum_image_layers(data)
    if path.suffix.lower() in SPECTRUM_IMAGE_SUFFIXES:
        warn_spectrum_only(path, data)
    return [spectrum_layer(data)]


LIVE_POLL_S = 0.01  # how long one wait for the reading process lasts between two event-loop turns


def _live() -> bool:
    """Whether the read runs in napari's main thread with files read in a child process."""
    from napari_sigma.io.reading import _isolating

    if not _isolating(None) or threading.current_thread() is not threading.main_thread():
        return False
    from qtpy.QtWidgets import QApplication

    return QApplication.instance() is not None


def _read_keeping_napari_live(path: Path, lazy: bool) -> Any:
    """:func:`~napari_sigma.io.reading.read_any` in the reading process while Qt's event loop
    keeps turning in this thread (every :data:`LIVE_POLL_S`).

    napari calls a reader in its main thread and waits for it; the read is a wait for the child
    process (1.2-1.5 s on a first JEOL read, the child's start included), during which napari
    was frozen: no repaint, no timer. Here the wait is cut into 10 ms slices with one turn of
    the event loop between them, without user input (``ExcludeUserInputEvents``): clicks and
    keys wait for the end of the open as before (a second open, or closing a layer, cannot
    start in the middle of this one), while the window repaints and napari's and the plugin's
    timers run. napari itself turns the loop inside an open (its progress bar and each Image
    layer's controls call ``processEvents``). A read started from inside such a turn (a timer
    opening a file) is refused (:func:`~napari_sigma.io.isolation.read_steps`) instead of
    waiting forever for the reading process this read holds.
    """
    from qtpy.QtCore import QEventLoop
    from qtpy.QtWidgets import QApplication

    from napari_sigma.io.isolation import read_steps

    flags = QEventLoop.ProcessEventsFlag.ExcludeUserInputEvents
    steps = read_steps("read_any", path, lazy, poll_s=LIVE_POLL_S)
    try:
        while True:
            try:
                next(steps)
            except StopIteration as done:
                return done.value
            QApplication.processEvents(flags)
    finally:
        steps.close()


WARM_UP_MODULES = ("scipy.ndimage",)
LAZY_WARM_UP_MODULES = ("dask.array",)


def warm_up_layer_adding(lazy: bool) -> threading.Thread:
    """Do napari's and the reader's one-time costs of a first open in a thread; return it.

    The file is read in a child process (:mod:`napari_sigma.io.isolation`) while napari's main
    thread waits for it; the costs it paid afterwards, measured on the first JEOL open (load 5,
    profiled): building pint's unit registry when napari adds the first layer with units
    (1.6 s), importing ``dask.array`` to receive a lazy cube (1.0 s) and ``scipy.ndimage``
    (0.15 s). They run here during the wait. The caller joins the thread before napari adds
    layers: pint's lazy registry must not be built by two threads at once.
    """
    thread = threading.Thread(
        target=_warm_up, args=(lazy,), name="napari-sigma-open-warm-up", daemon=True
    )
    thread.start()
    return thread


def _warm_up(lazy: bool) -> None:
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
    """Show the corrections made at the door (NaN counts set to 0, eV converted ...), one each."""
    notes = image.metadata.get("warnings", [])
    if not notes:
        return
    from napari.utils.notifications import show_warning

    for note in notes:
        show_warning(f"{path.name}: {note}")


def offer_recovery_of(path: Path) -> None:
    """Offer to restore the phase edits autosaved for ``path`` (:mod:`~napari_sigma._napari.recovery`)."""
    from napari_sigma._napari.recovery import offer_recovery

    try:
        offer_recovery(path)
    except OSError:  # an unreadable cache folder must not stop the file from opening
        pass


def warn_spectrum_only(path: Path, spectrum: Spectrum) -> None:
    """Tell the user that a spectrum-image file held only a spectrum (shown in the widget)."""
    from napari.utils.notifications import show_warning

    show_warning(
        f"{path.name}: no spectrum image in this file (pruned or converted?); opened its "
        f"{spectrum.energy.size}-channel spectrum only (see the 'Spectrum and elements' widget)."
    )
