"""Reading EDS spectrum images and spectra from vendor files (through rosettasciio).

Supported: Bruker ``.bcf``/``.spx``, Thermo Fisher Velox ``.emd``, EDAX ``.spd``/``.spc``, JEOL
``.pts``/``.asw``/``.eds``, Phenom ``.elid``, Lispix ``.rpl`` (+ ``.raw``), HyperSpy
``.hspy``/``.zspy``, ``.msa`` and Oxford Instruments AZtec ``.h5oina`` (read by
:mod:`napari_sigma.io.readers.h5oina`, not rosettasciio). Every failure raises :class:`~napari_sigma.errors.SpectrumImageError`
naming the file and the cause.

Choices made here:

- A file with several signals: the first EDS cube is the spectrum image (Phenom ``.elid`` files
  may hold several maps; the others are named in ``metadata["notes"]``).
- Counts keep the dtype of the file (no float copy); JEOL cubes are read as uint16.
- ``images`` holds the file's 2-D images (BSE, SE, HAADF, element maps ...) *only when their shape
  equals the map's*; images of another shape are listed in ``metadata["skipped_images"]``.
- ``lazy=True`` always gives dask counts. Formats whose reader cannot load lazily (Phenom
  ``.elid``) are read into memory first and wrapped (``metadata["lazy_from_file"]`` is False).
  JEOL ``.pts`` cubes are sparse on disk but dense in memory (a 512 x 512 x 4096 map is 2 GiB as
  uint16): read them with ``lazy=True`` unless that much memory is free.
- Pixel sizes are given in µm, or in nm below 0.1 µm; spatially uncalibrated maps get 1.0 ``"px"``.
- Beam energy comes from the metadata after applying the reader's ``mapping`` (Velox and Phenom
  keep it only in their original metadata).
- Every spectrum image is checked at the door (:func:`~napari_sigma.io.readers.validation.validate_spectrum_image`):
  NaN, negative counts, eV/keV mix-ups, a missing beam energy and absurd pixel sizes are corrected
  with a warning naming the file, or refused with a ``SpectrumImageError``.
- Reading is isolated by default (``isolate=None``): the vendor reader runs in a child process
  (:mod:`napari_sigma.io.reading_process.isolation`) so that a reader crashing, hanging or exhausting memory on a
  corrupt file gives a ``SpectrumImageError`` instead of killing the caller. It costs about 1 s on
  the first read of a session and a few ms plus the transfer of the counts afterwards;
  ``isolate=False`` (or ``NAPARI_SIGMA_ISOLATE=0``) reads in the calling process, for trusted
  files.

This module holds the read functions and what decides how a file is read (in a child process,
directly into an array, lazily); the rest lives by domain:

- :mod:`~napari_sigma.io.readers.signals`: the reader's signals made into a spectrum image or spectrum;
- :mod:`~napari_sigma.io.readers.calibration`: the energy axis and the pixel size;
- :mod:`~napari_sigma.io.readers.decoding`: a lazily opened cube decoded into a given array
  (``store_counts``).

``store_counts`` and the helpers the read functions call are importable from here as before;
change them in their own modules, patch them in the module that reads them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from napari_sigma.env_flags import env_flag
from napari_sigma.errors import NotASpectrumImageError, SpectrumImageError
from napari_sigma.io.readers import _rsciio as rh

# moved by domain (eighteenth session): importable from here as before; a patch takes effect in
# the module that reads the name
from napari_sigma.io.readers.decoding import (  # noqa: F401
    _hspy_read_into,
    _plain_hdf5_dataset,
    _read_into_image,
    store_counts,
)
from napari_sigma.io.readers.events import event_cube_of
from napari_sigma.io.readers.multi_map import load_once
from napari_sigma.io.readers.signals import (
    _build_image,
    _build_spectrum,
    _find_spectrum,
    _find_spectrum_image,
    _no_image_cause,
)
from napari_sigma.io.readers.validation import validate_spectrum_image
from napari_sigma.spectrum_image import Spectrum, SpectrumImage

SUPPORTED_EXTENSIONS: dict[str, str] = {ext: fmt.description for ext, fmt in rh.FORMATS.items()}


def is_supported(path: str | Path) -> bool:
    """Whether the file extension is one this module reads (case-insensitive)."""
    return Path(path).suffix.lower() in rh.FORMATS


def read_spectrum_image(
    path: str | Path, lazy: bool = False, isolate: bool | None = None, map_index: int = 0
) -> SpectrumImage:
    """Read the EDS spectrum image of a file.

    Parameters
    ----------
    path : str or Path
        A supported file (see ``SUPPORTED_EXTENSIONS``).
    lazy : bool
        Return dask counts instead of loading them into memory.
    isolate : bool, optional
        Run the vendor reader in a child process (default: yes, unless ``NAPARI_SIGMA_ISOLATE=0``).
    map_index : int
        Which of the file's spectrum images (0: the first; a Phenom ``.elid`` may hold several,
        named in ``metadata["maps"]``). Every read function takes it.

    Returns
    -------
    SpectrumImage
        Counts ``(y, x, E)`` with the file's dtype, energy calibration in keV, beam energy,
        pixel size, elements and the file's 2-D images.

    Raises
    ------
    NotASpectrumImageError
        The file is valid but holds no spectrum image (for example a single spectrum).
    SpectrumImageError
        Any other failure: unknown extension, missing, truncated or corrupt file, bad calibration.
    """
    path = Path(path)
    if _isolating(isolate):
        return _read_isolated("read_spectrum_image", path, lazy, map_index=map_index)
    direct = None if lazy or map_index else _read_direct(path, "read_spectrum_image")
    if direct is not None:
        return direct
    fmt, signals = load_once(path, lazy, _load)  # a file of several maps: decoded once
    index = _find_spectrum_image(signals, fmt, map_index, path)
    if index is None:
        raise NotASpectrumImageError(path, _no_image_cause(signals, fmt))
    return validate_spectrum_image(_build_image(path, fmt, signals, index, lazy))


# Files whose cube may be an HDF5 dataset that io._hdf5_direct decodes without HDF5.
_DIRECT_SUFFIXES = (".hspy",)


def _read_direct(path: Path, function: str) -> SpectrumImage | None:
    """An eager in-process read of a cube stored as plain or byte-shuffled row bands, decoded
    straight into a new array (:mod:`napari_sigma.io.readers._hdf5_direct`: a 4 GiB ``.hspy`` 13.7-16.2
    -> 4.2-4.3 s of CPU at load 6-9); None for any other file (then read the usual way)."""
    if path.suffix.lower() not in _DIRECT_SUFFIXES or not path.is_file():
        return None
    try:
        own = _own_hspy(path, _populated_array, 0, None, None, 0, None, True)
        if own is not None:
            return own[0]
        image = read_spectrum_image(path, lazy=True, isolate=False)
    except SpectrumImageError:
        return None  # the usual read gives the error
    dataset = _plain_hdf5_dataset(getattr(image, "counts", None))
    if dataset is None:
        return None
    from napari_sigma.io.readers import _hdf5_direct

    if _hdf5_direct.plan(dataset) is None:
        return None
    return _read_into_image(path, image, _populated_array, 0, None)


def _populated_array(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """The destination of a direct read: :func:`napari_sigma.io.readers._memory.zeroed_array` (its
    pages mapped at once, not np.empty's huge pages: a 4 GiB read 11.4-12.5 -> 4.2-4.3 s CPU)."""
    from napari_sigma.io.readers._memory import zeroed_array

    return zeroed_array(shape, dtype)


def read_spectrum(
    path: str | Path, lazy: bool = False, isolate: bool | None = None, map_index: int = 0
) -> Spectrum:
    """Read a single spectrum, or the sum spectrum of a file's spectrum image.

    Parameters
    ----------
    path : str or Path
        A supported file.
    lazy : bool
        Ignored (a spectrum is small; a spectrum image is summed chunk by chunk); kept so that
        every read function takes the same arguments.
    isolate : bool, optional
        Run the vendor reader in a child process (default: yes, unless ``NAPARI_SIGMA_ISOLATE=0``).

    Returns
    -------
    Spectrum
        The calibrated spectrum.

    Raises
    ------
    SpectrumImageError
        The file cannot be read or holds no EDS spectrum.
    """
    path = Path(path)
    if _isolating(isolate):
        return _read_isolated("read_spectrum", path, False, map_index=map_index)
    fmt, signals = _load(path, lazy=True)
    index = _find_spectrum_image(signals, fmt, map_index, path)
    if index is not None:
        return _build_image(path, fmt, signals, index, lazy=True).sum_spectrum()
    return _build_spectrum(path, fmt, signals)


def read_any(
    path: str | Path, lazy: bool = False, isolate: bool | None = None, map_index: int = 0
) -> SpectrumImage | Spectrum:
    """Read a file's spectrum image, or its single spectrum when it holds no spectrum image.

    Parameters
    ----------
    path : str or Path
        A supported file.
    lazy : bool
        Return dask counts for a spectrum image.
    isolate : bool, optional
        Run the vendor reader in a child process (default: yes, unless ``NAPARI_SIGMA_ISOLATE=0``).

    Returns
    -------
    SpectrumImage or Spectrum

    Raises
    ------
    SpectrumImageError
        The file cannot be read or holds neither a spectrum image nor an EDS spectrum
        (then a ``NotASpectrumImageError``).
    """
    path = Path(path)
    if _isolating(isolate):
        return _read_isolated("read_any", path, lazy, map_index=map_index)
    fmt, signals = load_once(path, lazy, _load)  # a file of several maps: decoded once
    index = _find_spectrum_image(signals, fmt, map_index, path)
    if index is not None:
        return validate_spectrum_image(_build_image(path, fmt, signals, index, lazy))
    if _find_spectrum(signals, fmt) is None:
        raise NotASpectrumImageError(path, "no spectrum image and no EDS spectrum in this file")
    return _build_spectrum(path, fmt, signals)


def probe_spectrum_image(
    path: str | Path, lazy: bool = True, isolate: bool | None = None, map_index: int = 0
) -> dict[str, Any]:
    """The shape, dtype and storage blocks of a file's spectrum image, without decoding it.

    The file is opened lazily (headers and, for JEOL event streams, the events) and checked at
    the door, but its counts are not decoded: the cheap first step of a reader that decides
    between an eager and a lazy read (:func:`~napari_sigma.compute.chunks.read_within`).

    Parameters
    ----------
    path : str or Path
        A supported file.
    lazy : bool
        Ignored (always lazy); kept so that every read function takes the same arguments.
    isolate : bool, optional
        Open the file in a child process (default: yes, unless ``NAPARI_SIGMA_ISOLATE=0``).

    Returns
    -------
    dict
        ``shape`` (y, x, E), ``dtype`` (str), ``nbytes`` of the cube in memory, and
        ``block_bytes``: the largest block the file can be read in (a whole spectrum row for an
        event stream, which can be read in any part).

    Raises
    ------
    SpectrumImageError
        As :func:`read_spectrum_image`.
    """
    path = Path(path)
    if _isolating(isolate):
        return _read_isolated("probe_spectrum_image", path, True, map_index=map_index)
    return _probe(read_spectrum_image(path, lazy=True, isolate=False, map_index=map_index).counts)


def _probe(counts: Any) -> dict[str, Any]:
    itemsize = np.dtype(counts.dtype).itemsize
    shape = tuple(int(n) for n in counts.shape)
    chunks = getattr(counts, "chunks", None)
    if event_cube_of(counts) is not None:
        block = int(np.prod(shape[1:])) * itemsize
    elif chunks is None:
        block = int(np.prod(shape)) * itemsize
    else:
        block = int(np.prod([max(c) for c in chunks])) * itemsize
    return {
        "shape": shape,
        "dtype": str(np.dtype(counts.dtype)),
        "nbytes": int(np.prod(shape)) * itemsize,
        "block_bytes": block,
    }


def read_spectrum_image_within(
    path: str | Path,
    lazy_above: float,
    largest_block: float,
    isolate: bool | None = None,
    arriving: bool = False,
    map_index: int = 0,
) -> tuple[SpectrumImage, dict[str, Any]]:
    """Read a spectrum image in memory, or lazily when it is large and can be read in parts.

    The file is opened once (lazily) and its size decides: counts of more than ``lazy_above``
    bytes stored in blocks of at most ``largest_block`` bytes stay lazy (dask); any other cube is
    read into memory (in the reading child, decoded straight into the shared file:
    :func:`read_into`). :func:`~napari_sigma.compute.chunks.read_within` sets the two sizes
    from a memory limit.

    Parameters
    ----------
    path : str or Path
        A supported file.
    lazy_above : float
        Cubes up to this many bytes are read into memory.
    largest_block : float
        A larger cube stays lazy only when its storage blocks are at most this many bytes.
    isolate : bool, optional
        Open the file in a child process (default: yes, unless ``NAPARI_SIGMA_ISOLATE=0``).
    arriving : bool
        In a child: return a cube decoded without HDF5 as soon as the file is opened, its rows
        arriving meanwhile (see :func:`napari_sigma.io.reading_process.isolation.read_steps`);
        the caller then reads the counts only through :mod:`napari_sigma.compute.arrival`'s
        waits (the analysis does). Without a child it has no effect.

    Returns
    -------
    (SpectrumImage, dict)
        The image and the probe of its cube (as :func:`probe_spectrum_image`).

    Raises
    ------
    SpectrumImageError
        As :func:`read_spectrum_image`.
    """
    path = Path(path)
    if _isolating(isolate):
        return _read_isolated(
            "read_spectrum_image_within", path, False, (lazy_above, largest_block), arriving,
            map_index,
        )  # fmt: skip
    image, probe = read_within_steps(path, lazy_above, largest_block, map_index=map_index)
    if not reads_lazily(probe, lazy_above, largest_block):
        image = _dense(image)
    return image, probe


def reads_lazily(probe: dict[str, Any], lazy_above: float, largest_block: float) -> bool:
    """Whether :func:`read_spectrum_image_within` keeps a cube of this probe lazy."""
    return probe["nbytes"] > lazy_above and probe["block_bytes"] <= largest_block


def read_within_steps(
    path: Path,
    lazy_above: float,
    largest_block: float,
    allocate: Any = None,
    write: Any = None,
    min_bytes: int = 0,
    arriving: Any = None,
    map_index: int = 0,
) -> tuple[SpectrumImage, dict[str, Any]]:
    """:func:`read_spectrum_image_within` in this process: one lazy opening, then the lazy image
    (lazy, or an event stream: decoded once, densified by the caller), or the cube decoded
    into ``allocate``'s array (:func:`read_into`), or an eager read.

    ``arriving``: ``(announce, report)``: a cube decoded without HDF5 is handed to
    ``announce(image, probe)`` before its rows are decoded, and ``report(ranges)`` gets the rows
    written as they are (:func:`~napari_sigma.io.readers.decoding._arriving_read`).

    An ``.hspy`` file that :mod:`~napari_sigma.io.readers.hspy_direct` reads is opened with
    h5py alone (the same image: :func:`~napari_sigma.io.readers.decoding._hspy_read_into`)."""
    if allocate is not None:
        own = _own_hspy(
            path, allocate, min_bytes, write, arriving, map_index,
            lambda probe: reads_lazily(probe, lazy_above, largest_block),
        )  # fmt: skip
        if own is not None:
            return own
    image = read_spectrum_image(path, lazy=True, isolate=False, map_index=map_index)
    probe = _probe(image.counts)
    if reads_lazily(probe, lazy_above, largest_block) or event_cube_of(image.counts) is not None:
        return image, probe
    placed = None
    if allocate is not None:
        hand = None
        if arriving is not None:
            announce, report = arriving
            hand = (lambda arrived: announce(arrived, probe), report)
        placed = _read_into_image(path, image, allocate, min_bytes, write, hand)
    if placed is None:
        placed = read_spectrum_image(path, isolate=False, map_index=map_index)
    return placed, probe


def _dense(image: SpectrumImage) -> SpectrumImage:
    """An image whose counts are an event stream made dense (an eager read of events)."""
    from dataclasses import replace

    events = event_cube_of(image.counts)
    if events is None:
        return image
    metadata = {**image.metadata, "lazy_from_file": False}
    return replace(image, counts=events.dense(), metadata=metadata)


def _isolating(isolate: bool | None) -> bool:
    if isolate is not None:
        return isolate
    return env_flag("NAPARI_SIGMA_ISOLATE")


def _read_isolated(
    function: str,
    path: Path,
    lazy: bool,
    args: tuple = (),
    arriving: bool = False,
    map_index: int = 0,
) -> Any:
    from napari_sigma.io.reading_process.isolation import read_isolated

    if arriving or map_index:
        return read_isolated(
            function, path, lazy, args=args, arriving=arriving, map_index=map_index
        )
    if args:
        return read_isolated(function, path, lazy, args=args)
    return read_isolated(function, path, lazy)


def check_before_reading(path: Path) -> rh.FileFormat:
    """The file's format, after the checks that need no reader (extension, existence, container).

    Raises
    ------
    SpectrumImageError
        Unsupported extension, missing file, a folder, or a container that fails
        :func:`~napari_sigma.io.readers._rsciio.check_container`.
    """
    fmt = rh.FORMATS.get(path.suffix.lower())
    if fmt is None:
        supported = ", ".join(sorted(rh.FORMATS))
        raise SpectrumImageError(
            path, f"unsupported file type '{path.suffix or path.name}'; supported: {supported}"
        )
    if not path.exists():
        raise SpectrumImageError(path, "file not found")
    if not path.is_file():
        raise SpectrumImageError(path, "not a file (a folder?)")
    rh.check_container(path)
    return fmt


def decode_all(data: SpectrumImage | Spectrum) -> None:
    """Decode every byte of lazy counts once (chunk by chunk, in bounded memory), to check them."""
    counts = data.counts
    if hasattr(counts, "dask"):
        counts.sum(axis=tuple(range(counts.ndim - 1))).compute()


def read_into(
    function: str,
    path: str | Path,
    allocate: Any,
    min_bytes: int = 0,
    write: Any = None,
    map_index: int = 0,
) -> SpectrumImage | None:
    """An eager read whose counts are decoded straight into an array the caller provides.

    The file is opened lazily, then its counts are decoded chunk by chunk into
    ``allocate(shape, dtype)`` (an ``np.ndarray``, e.g. on a shared-memory file): no second copy
    of the cube (:mod:`napari_sigma.io.reading_process.isolation` hands it to the parent that way). The image is
    checked as an eager read is (:func:`~napari_sigma.io.readers.validation.validate_spectrum_image`).

    Parameters
    ----------
    function : {"read_spectrum_image", "read_any"}
        The read function whose result this is.
    path : str or Path
        The file.
    allocate : callable
        ``(shape, dtype) -> ndarray or None`` (None: no room; nothing is decoded).
    min_bytes : int
        Smaller cubes are not read this way.
    write : callable, optional
        ``(array, byte_offset, data)``: places decoded bytes at that offset of the array's memory
        (e.g. ``pwrite`` to the file it maps: no page faults); default: a copy into the array.
        Used when HDF5 is not needed to decode the file (:mod:`napari_sigma.io.readers._hdf5_direct`).

    Returns
    -------
    SpectrumImage or None
        None when the file does not hold a chunked cube of at least ``min_bytes`` (single
        spectra, formats read as one block, event streams) or ``allocate`` gave None: read it
        the usual way.
    """

    path = Path(path)
    fmt = rh.FORMATS.get(path.suffix.lower())
    if fmt is None or not fmt.lazy or fmt.events or fmt.single_spectrum:
        return None
    read = {"read_spectrum_image": read_spectrum_image, "read_any": read_any}[function]
    own = _own_hspy(path, allocate, min_bytes, write, None, map_index)
    if own is not None:
        return own[0]
    image = read(path, lazy=True, isolate=False, map_index=map_index)
    return _read_into_image(path, image, allocate, min_bytes, write)


def _own_hspy(path: Path, *arguments: Any) -> tuple[SpectrumImage, dict[str, Any]] | None:
    """An ``.hspy`` file's eager read without rosettasciio, after the checks every read makes:
    :func:`~napari_sigma.io.readers.decoding._hspy_read_into` with the same ``arguments``;
    None for another file or where that read does not apply."""
    if path.suffix.lower() != ".hspy":
        return None
    check_before_reading(path)
    return _hspy_read_into(path, *arguments)


def _load(path: Path, lazy: bool) -> tuple[rh.FileFormat, list[dict[str, Any]]]:
    fmt = check_before_reading(path)
    return fmt, rh.call_reader(path, fmt, lazy)
