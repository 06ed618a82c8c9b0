"""Reading EDS spectrum images and spectra from vendor files (through rosettasciio).

Supported: Bruker ``.bcf``/``.spx``, Thermo Fisher Velox ``.emd``, EDAX ``.spd``/``.spc``, JEOL
``.pts``/``.asw``/``.eds``, Phenom ``.elid``, Lispix ``.rpl`` (+ ``.raw``), HyperSpy
``.hspy``/``.zspy``, ``.msa`` and Oxford Instruments AZtec ``.h5oina`` (read by
:mod:`napari_sigma.io.h5oina`, not rosettasciio). Every failure raises :class:`~napari_sigma.errors.SpectrumImageError`
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
- Every spectrum image is checked at the door (:func:`~napari_sigma.io.validation.validate_spectrum_image`):
  NaN, negative counts, eV/keV mix-ups, a missing beam energy and absurd pixel sizes are corrected
  with a warning naming the file, or refused with a ``SpectrumImageError``.
- Reading is isolated by default (``isolate=None``): the vendor reader runs in a child process
  (:mod:`napari_sigma.io.isolation`) so that a reader crashing, hanging or exhausting memory on a
  corrupt file gives a ``SpectrumImageError`` instead of killing the caller. It costs about 1 s on
  the first read of a session and a few ms plus the transfer of the counts afterwards;
  ``isolate=False`` (or ``NAPARI_SIGMA_ISOLATE=0``) reads in the calling process, for trusted
  files.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from napari_sigma.energy import EnergyAxis
from napari_sigma.errors import NotASpectrumImageError, SpectrumImageError
from napari_sigma.io import _rsciio as rh
from napari_sigma.io.events import as_event_cube, event_cube_of
from napari_sigma.io.validation import DataWarning, validate_spectrum_image
from napari_sigma.spectrum_image import Spectrum, SpectrumImage
from napari_sigma.units import is_uncalibrated, microns_per_unit

SUPPORTED_EXTENSIONS: dict[str, str] = {ext: fmt.description for ext, fmt in rh.FORMATS.items()}


def is_supported(path: str | Path) -> bool:
    """Whether the file extension is one this module reads (case-insensitive)."""
    return Path(path).suffix.lower() in rh.FORMATS


def read_spectrum_image(
    path: str | Path, lazy: bool = False, isolate: bool | None = None
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
        return _read_isolated("read_spectrum_image", path, lazy)
    direct = None if lazy else _read_direct(path, "read_spectrum_image")
    if direct is not None:
        return direct
    fmt, signals = _load(path, lazy)
    index = _find_spectrum_image(signals, fmt)
    if index is None:
        raise NotASpectrumImageError(path, _no_image_cause(signals, fmt))
    return validate_spectrum_image(_build_image(path, fmt, signals, index, lazy))


# Files whose cube may be an HDF5 dataset that io._hdf5_direct decodes without HDF5.
_DIRECT_SUFFIXES = (".hspy",)


def _read_direct(path: Path, function: str) -> SpectrumImage | None:
    """An eager in-process read of a cube stored as plain or byte-shuffled row bands, decoded
    straight into a new array (:mod:`napari_sigma.io._hdf5_direct`: a 4 GiB ``.hspy`` 13.7-16.2
    -> 4.2-4.3 s of CPU at load 6-9); None for any other file (then read the usual way)."""
    if path.suffix.lower() not in _DIRECT_SUFFIXES or not path.is_file():
        return None
    try:
        image = read_spectrum_image(path, lazy=True, isolate=False)
    except SpectrumImageError:
        return None  # the usual read gives the error
    dataset = _plain_hdf5_dataset(getattr(image, "counts", None))
    if dataset is None:
        return None
    from napari_sigma.io import _hdf5_direct

    if _hdf5_direct.plan(dataset) is None:
        return None
    return _read_into_image(path, image, _populated_array, 0, None)


def _populated_array(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """The destination of a direct read: :func:`napari_sigma.io._memory.zeroed_array` (its
    pages mapped at once, not np.empty's huge pages: a 4 GiB read 11.4-12.5 -> 4.2-4.3 s CPU)."""
    from napari_sigma.io._memory import zeroed_array

    return zeroed_array(shape, dtype)


def read_spectrum(path: str | Path, lazy: bool = False, isolate: bool | None = None) -> Spectrum:
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
        return _read_isolated("read_spectrum", path, False)
    fmt, signals = _load(path, lazy=True)
    index = _find_spectrum_image(signals, fmt)
    if index is not None:
        return _build_image(path, fmt, signals, index, lazy=True).sum_spectrum()
    return _build_spectrum(path, fmt, signals)


def read_any(
    path: str | Path, lazy: bool = False, isolate: bool | None = None
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
        return _read_isolated("read_any", path, lazy)
    fmt, signals = _load(path, lazy)
    index = _find_spectrum_image(signals, fmt)
    if index is not None:
        return validate_spectrum_image(_build_image(path, fmt, signals, index, lazy))
    if _find_spectrum(signals, fmt) is None:
        raise NotASpectrumImageError(path, "no spectrum image and no EDS spectrum in this file")
    return _build_spectrum(path, fmt, signals)


def probe_spectrum_image(
    path: str | Path, lazy: bool = True, isolate: bool | None = None
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
        return _read_isolated("probe_spectrum_image", path, True)
    return _probe(read_spectrum_image(path, lazy=True, isolate=False).counts)


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
    path: str | Path, lazy_above: float, largest_block: float, isolate: bool | None = None
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
            "read_spectrum_image_within", path, False, (lazy_above, largest_block)
        )
    image, probe = read_within_steps(path, lazy_above, largest_block)
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
) -> tuple[SpectrumImage, dict[str, Any]]:
    """:func:`read_spectrum_image_within` in this process: one lazy opening, then the lazy image
    (lazy, or an event stream: decoded once, densified by the caller), or the cube decoded
    into ``allocate``'s array (:func:`read_into`), or an eager read."""
    image = read_spectrum_image(path, lazy=True, isolate=False)
    probe = _probe(image.counts)
    if reads_lazily(probe, lazy_above, largest_block) or event_cube_of(image.counts) is not None:
        return image, probe
    placed = None
    if allocate is not None:
        placed = _read_into_image(path, image, allocate, min_bytes, write)
    if placed is None:
        placed = read_spectrum_image(path, isolate=False)
    return placed, probe


def _dense(image: SpectrumImage) -> SpectrumImage:
    """An image whose counts are an event stream made dense (an eager read of events)."""
    from dataclasses import replace

    events = event_cube_of(image.counts)
    if events is None:
        return image
    metadata = {**image.metadata, "lazy_from_file": False}
    return replace(image, counts=events.dense(), metadata=metadata)


# ----------------------------------------------------------------------------- loading


def _isolating(isolate: bool | None) -> bool:
    if isolate is not None:
        return isolate
    return os.environ.get("NAPARI_SIGMA_ISOLATE", "1").strip().lower() not in {"0", "no", "false"}


def _read_isolated(function: str, path: Path, lazy: bool, args: tuple = ()) -> Any:
    from napari_sigma.io.isolation import read_isolated

    if args:
        return read_isolated(function, path, lazy, args=args)
    return read_isolated(function, path, lazy)


def check_before_reading(path: Path) -> rh.FileFormat:
    """The file's format, after the checks that need no reader (extension, existence, container).

    Raises
    ------
    SpectrumImageError
        Unsupported extension, missing file, a folder, or a container that fails
        :func:`~napari_sigma.io._rsciio.check_container`.
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
    function: str, path: str | Path, allocate: Any, min_bytes: int = 0, write: Any = None
) -> SpectrumImage | None:
    """An eager read whose counts are decoded straight into an array the caller provides.

    The file is opened lazily, then its counts are decoded chunk by chunk into
    ``allocate(shape, dtype)`` (an ``np.ndarray``, e.g. on a shared-memory file): no second copy
    of the cube (:mod:`napari_sigma.io.isolation` hands it to the parent that way). The image is
    checked as an eager read is (:func:`~napari_sigma.io.validation.validate_spectrum_image`).

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
        Used when HDF5 is not needed to decode the file (:mod:`napari_sigma.io._hdf5_direct`).

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
    return _read_into_image(path, read(path, lazy=True, isolate=False), allocate, min_bytes, write)


def _read_into_image(
    path: Path, image: Any, allocate: Any, min_bytes: int, write: Any
) -> SpectrumImage | None:
    """:func:`read_into` on the file's lazily opened image."""
    from dataclasses import replace

    fmt = rh.FORMATS.get(path.suffix.lower())
    if fmt is None or not fmt.lazy or fmt.events or fmt.single_spectrum:
        return None
    counts = getattr(image, "counts", None)
    if not isinstance(image, SpectrumImage) or not hasattr(counts, "dask"):
        return None
    if counts.nbytes < min_bytes or counts.npartitions < 2 or event_cube_of(counts) is not None:
        return None
    out = allocate(tuple(counts.shape), counts.dtype)
    if out is None:
        return None
    store_counts(counts, out, write)
    metadata = {**image.metadata, "lazy_from_file": False, "validated": False}
    return validate_spectrum_image(replace(image, counts=out, metadata=metadata))


def store_counts(counts: Any, out: np.ndarray, write: Any = None) -> None:
    """Decode dask counts into ``out``; an HDF5 dataset read as it is goes without dask: its
    stored bytes placed directly when they are plain or byte-shuffled
    (:mod:`napari_sigma.io._hdf5_direct`; ``write``: see :func:`read_into`), else in one HDF5
    call."""
    dataset = _plain_hdf5_dataset(counts)
    if dataset is not None:
        from napari_sigma.io import _hdf5_direct

        plan = _hdf5_direct.plan(dataset)
        if plan is None:
            dataset.read_direct(out)
        else:
            place = None if write is None else (lambda offset, data: write(out, offset, data))
            _hdf5_direct.decode(plan, out, place)
        return
    import dask.array as da

    da.store(counts, out, lock=False, scheduler="synchronous")


def _plain_hdf5_dataset(counts: Any) -> Any:
    """The h5py dataset behind dask counts that are its chunks and nothing else, or None."""
    import sys

    h5py = sys.modules.get("h5py")
    if h5py is None or not hasattr(counts, "__dask_graph__"):
        return None
    graph = dict(counts.__dask_graph__())
    datasets = [v for v in graph.values() if isinstance(v, h5py.Dataset)]
    if len(datasets) != 1 or len(graph) != counts.npartitions + 1:
        return None  # a transpose, a type conversion ... on top of the dataset's chunks
    dataset = datasets[0]
    if dataset.shape != tuple(counts.shape) or dataset.dtype != counts.dtype:
        return None
    return dataset


def _load(path: Path, lazy: bool) -> tuple[rh.FileFormat, list[dict[str, Any]]]:
    fmt = check_before_reading(path)
    return fmt, rh.call_reader(path, fmt, lazy)


def _is_eds_cube(signal: Mapping[str, Any], fmt: rh.FileFormat) -> bool:
    ndim = getattr(signal.get("data"), "ndim", 0)
    kind = rh.signal_type(signal)
    return ndim >= 3 and ("EDS" in kind or (fmt.untyped_cubes and not kind))


def _find_spectrum_image(signals: Sequence[Mapping[str, Any]], fmt: rh.FileFormat) -> int | None:
    if fmt.single_spectrum:
        return None
    return next((i for i, s in enumerate(signals) if _is_eds_cube(s, fmt)), None)


def _find_spectrum(signals: Sequence[Mapping[str, Any]], fmt: rh.FileFormat) -> int | None:
    for i, signal in enumerate(signals):
        if getattr(signal.get("data"), "ndim", 0) != 1:
            continue
        if fmt.single_spectrum or "EDS" in rh.signal_type(signal):
            return i
    return None


def _no_image_cause(signals: Sequence[Mapping[str, Any]], fmt: rh.FileFormat) -> str:
    if _find_spectrum(signals, fmt) is not None:
        kind = "holds a single spectrum" if len(signals) == 1 else "holds only single spectra"
        return f"no spectrum image in this file: it {kind}; open it with read_spectrum"
    return "no spectrum image in this file"


# ----------------------------------------------------------------------------- building


def _build_image(
    path: Path,
    fmt: rh.FileFormat,
    signals: Sequence[Mapping[str, Any]],
    index: int,
    lazy: bool,
) -> SpectrumImage:
    signal = signals[index]
    data, axes = signal["data"], list(signal["axes"])
    if data.ndim != 3:
        raise SpectrumImageError(
            path, f"the spectrum image has {data.ndim} dimensions; only 2-D maps are supported"
        )
    energy_index = _energy_axis_index(axes)
    energy = _energy_axis(path, axes[energy_index], data.shape[energy_index])
    counts = _as_counts(np.moveaxis(data, energy_index, -1) if energy_index != 2 else data, lazy)
    x_axis = [axis for i, axis in enumerate(axes) if i != energy_index][1]
    pixel_size, pixel_unit = _pixel_calibration(x_axis)
    metadata = rh.apply_mapping(
        signal.get("metadata"), signal.get("original_metadata"), signal.get("mapping")
    )
    images, skipped = _images(signals, index, counts.shape[:2])
    return SpectrumImage(
        counts=counts,
        energy=energy,
        beam_energy=rh.beam_energy_kv(metadata),
        pixel_size=pixel_size,
        pixel_unit=pixel_unit,
        elements=rh.string_tuple(rh.get_item(metadata, "Sample.elements")),
        xray_lines=rh.string_tuple(rh.get_item(metadata, "Sample.xray_lines")),
        images=images,
        title=path.stem,
        source=path,
        metadata={
            **_common_metadata(fmt, signals, index, metadata),
            "skipped_images": skipped,
            "lazy_from_file": bool(lazy and fmt.lazy),
            "notes": _image_notes(signals, index, fmt),
            "warnings": _read_warnings(path, signal),
        },
    )


def _read_warnings(path: Path, signal: Mapping[str, Any]) -> list[str]:
    """What the user must know of what was read: a JEOL event stream that stops early."""
    sweeps = rh.jeol_sweeps(signal.get("original_metadata"))
    if sweeps is None:
        return []
    begun, recorded = sweeps
    note = (
        f"the event stream stops in sweep {begun} of the {recorded} its header records "
        "(a truncated file or an aborted acquisition): the counts are those of the part read"
    )
    warnings.warn(DataWarning(f"{path}: {note}"), stacklevel=3)
    return [note]


def _build_spectrum(
    path: Path, fmt: rh.FileFormat, signals: Sequence[Mapping[str, Any]]
) -> Spectrum:
    index = _find_spectrum(signals, fmt)
    if index is None:
        raise SpectrumImageError(path, "no EDS spectrum in this file")
    signal = signals[index]
    axes = list(signal["axes"])
    counts = np.asarray(signal["data"])
    metadata = rh.apply_mapping(
        signal.get("metadata"), signal.get("original_metadata"), signal.get("mapping")
    )
    return Spectrum(
        counts=counts,
        energy=_energy_axis(path, axes[0], counts.shape[0]),
        beam_energy=rh.beam_energy_kv(metadata),
        elements=rh.string_tuple(rh.get_item(metadata, "Sample.elements")),
        title=path.stem,
        source=path,
        metadata=_common_metadata(fmt, signals, index, metadata),
    )


def _common_metadata(
    fmt: rh.FileFormat, signals: Sequence[Mapping[str, Any]], index: int, metadata: dict[str, Any]
) -> dict[str, Any]:
    detector = rh.bruker_detector(signals[index].get("original_metadata"))
    if detector is not None:  # the file's own detector (window, dead layer, crystal)
        metadata = {**metadata, "eds_detector": detector}
    return {
        "format": fmt.description,
        "reader": fmt.reader_name,
        "signal_title": rh.signal_title(signals[index]),
        "signal_index": index,
        "n_signals": len(signals),
        "rsciio_metadata": metadata,
    }


def _image_notes(signals: Sequence[Mapping[str, Any]], index: int, fmt: rh.FileFormat) -> list[str]:
    others = [
        rh.signal_title(s) or f"signal {i}"
        for i, s in enumerate(signals)
        if i != index and _is_eds_cube(s, fmt)
    ]
    if not others:
        return []
    chosen = rh.signal_title(signals[index]) or f"signal {index}"
    return [
        f"the file holds {len(others) + 1} spectrum images; using the first ('{chosen}'), "
        f"not {', '.join(repr(t) for t in others)}"
    ]


def _as_counts(data: Any, lazy: bool) -> Any:
    is_dask = hasattr(data, "compute") and hasattr(data, "chunks")
    events = as_event_cube(data) if is_dask else None
    if events is not None:  # an event stream (JEOL): kept as events, densified only when eager
        return events.to_dask() if lazy else events.dense()
    if lazy:
        if is_dask:
            return data
        import dask.array as da

        return da.from_array(np.asarray(data), chunks="auto")
    if is_dask:
        return np.asarray(data.compute())
    # memory-mapped files (ripple) are read into memory: eager counts do not depend on the file
    return np.array(data) if isinstance(data, np.memmap) else np.asarray(data)


def _images(
    signals: Sequence[Mapping[str, Any]], index: int, shape: tuple[int, int]
) -> tuple[dict[str, np.ndarray], dict[str, tuple[int, ...]]]:
    images: dict[str, np.ndarray] = {}
    skipped: dict[str, tuple[int, ...]] = {}
    for i, signal in enumerate(signals):
        data = signal.get("data")
        if i == index or getattr(data, "ndim", 0) != 2 or "EDS" in rh.signal_type(signal):
            continue
        name = _unique_name(rh.signal_title(signal) or f"image {i}", images, skipped)
        image = np.asarray(data)
        if image.shape == tuple(shape) and image.dtype.fields is None:
            images[name] = image
        else:
            skipped[name] = tuple(image.shape)
    return images, skipped


def _unique_name(name: str, *taken: Mapping[str, Any]) -> str:
    candidate, number = name, 2
    while any(candidate in names for names in taken):
        candidate, number = f"{name} ({number})", number + 1
    return candidate


# ----------------------------------------------------------------------------- axes


def _energy_axis_index(axes: Sequence[Mapping[str, Any]]) -> int:
    signal_axes = [i for i, axis in enumerate(axes) if axis.get("navigate") is False]
    return signal_axes[-1] if signal_axes else len(axes) - 1


def _energy_axis(path: Path, axis: Mapping[str, Any], size: int) -> EnergyAxis:
    scale = rh.as_float(axis.get("scale"))
    offset = rh.as_float(axis.get("offset"))
    units = str(axis.get("units") or "").strip()
    if scale is None or scale <= 0 or offset is None:
        raise SpectrumImageError(
            path,
            f"invalid energy calibration (scale {axis.get('scale')!r}, offset {axis.get('offset')!r})",
        )
    if is_uncalibrated(units) and scale == 1.0 and offset == 0.0:
        raise SpectrumImageError(path, "no energy calibration (the energy axis is in channels)")
    factor = _kev_per_unit(units, scale)
    return EnergyAxis(offset=offset * factor, scale=scale * factor, size=int(size))


def _kev_per_unit(units: str, scale: float) -> float:
    lowered = units.lower()
    if lowered == "kev":
        return 1.0
    if lowered == "ev":
        return 1e-3
    # no usable unit: an EDS channel is a few eV wide, so a "large" scale is in eV
    return 1e-3 if scale >= 0.5 else 1.0


def _pixel_calibration(x_axis: Mapping[str, Any]) -> tuple[float, str]:
    scale = rh.as_float(x_axis.get("scale"))
    units = str(x_axis.get("units") or "").strip()
    if scale is None or scale <= 0 or is_uncalibrated(units):
        return 1.0, "px"
    factor = microns_per_unit(units)
    if factor is None:
        return scale, units
    microns = scale * factor
    return (microns * 1e3, "nm") if microns < 0.1 else (microns, "µm")
