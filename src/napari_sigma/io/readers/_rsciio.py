"""Low-level helpers around rosettasciio readers: formats, container checks, metadata, axes.

Everything here works on the plain dictionaries that every ``rsciio.<format>.file_reader`` returns
(``data``, ``axes``, ``metadata``, ``original_metadata`` and sometimes ``mapping``). rosettasciio is
imported lazily, inside :func:`call_reader`.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path
from typing import Any

import numpy as np

from napari_sigma.errors import SpectrumImageError
from napari_sigma.io.readers import containers
from napari_sigma.io.readers.containers import with_article


@dataclass(frozen=True)
class FileFormat:
    """How to read one file extension with rosettasciio.

    Parameters
    ----------
    module : str
        The ``rsciio`` sub-package whose ``file_reader`` reads it.
    description : str
        A name users recognise.
    lazy : bool
        Whether the rsciio reader can return dask arrays.
    single_spectrum : bool
        The format holds one spectrum (never a spectrum image).
    untyped_cubes : bool
        A 3-D cube without a signal type may be taken as EDS (formats without that metadata).
    options : dict
        Extra keyword arguments for the reader.
    package : str
        The package holding ``module`` (``"napari_sigma.io"`` for the readers of this project).
    events : bool
        An event stream (JEOL ``.pts``): always decoded lazily into an
        :class:`~napari_sigma.io.readers.events.EventCube` (see :func:`call_reader`).
    """

    module: str
    description: str
    lazy: bool = True
    single_spectrum: bool = False
    untyped_cubes: bool = False
    options: dict[str, Any] = field(default_factory=dict)
    package: str = "rsciio"
    events: bool = False

    @property
    def reader_name(self) -> str:
        """The module whose ``file_reader`` reads the format, e.g. ``"rsciio.bruker"``."""
        return f"{self.package}.{self.module}"


def _jeol_options() -> dict[str, Any]:
    # uint8 (the rsciio default) overflows above 255 counts per channel and pixel
    return {"SI_dtype": np.uint16}


FORMATS: dict[str, FileFormat] = {
    ".bcf": FileFormat("bruker", "Bruker Esprit hypermap"),
    ".spx": FileFormat("bruker", "Bruker single spectrum", lazy=False, single_spectrum=True),
    ".emd": FileFormat("emd", "Thermo Fisher Velox EMD"),
    ".spd": FileFormat("edax", "EDAX TEAM/Genesis spectrum image"),
    ".spc": FileFormat("edax", "EDAX single spectrum", lazy=False, single_spectrum=True),
    ".pts": FileFormat("jeol", "JEOL Analysis Station map", options=_jeol_options(), events=True),
    ".asw": FileFormat(
        "jeol", "JEOL Analysis Station project", options=_jeol_options(), events=True
    ),
    ".eds": FileFormat("jeol", "JEOL single spectrum", lazy=False, single_spectrum=True),
    ".elid": FileFormat("phenom", "Thermo Fisher Phenom ELID", lazy=False),
    ".rpl": FileFormat("ripple", "Lispix ripple (.rpl + .raw)", untyped_cubes=True),
    ".hspy": FileFormat("hspy", "HyperSpy HDF5", untyped_cubes=True),
    ".zspy": FileFormat("zspy", "HyperSpy zarr (needs the zarr package)", untyped_cubes=True),
    ".msa": FileFormat("msa", "EMSA/MSA single spectrum", lazy=False, single_spectrum=True),
    ".h5oina": FileFormat("h5oina", "Oxford Instruments AZtec H5OINA", package="napari_sigma.io"),
}


# ----------------------------------------------------------------------------- reading


def call_reader(path: Path, fmt: FileFormat, lazy: bool) -> list[dict[str, Any]]:
    """Run the rsciio reader of ``fmt`` on ``path``; every failure becomes a SpectrumImageError.

    Parameters
    ----------
    path : Path
        An existing file.
    fmt : FileFormat
        Its format.
    lazy : bool
        Ask for dask arrays (only passed on where the reader supports it). Event streams
        (``fmt.events``) are always read lazily: rosettasciio decodes the whole stream either
        way, and its events are kept as an :class:`~napari_sigma.io.readers.events.EventCube` (a few MB)
        rather than a dense cube (2 GiB for a 512 x 512 x 4096 map); the caller densifies it when
        it wants numpy counts.

    Returns
    -------
    list of dict
        The reader's signal dictionaries.
    """
    check_container(path)
    options = dict(fmt.options)
    if fmt.lazy:
        options["lazy"] = True if fmt.events else lazy
    try:
        reader = import_module(fmt.reader_name).file_reader
        if fmt.events:
            from napari_sigma.io.readers.events import collecting_events

            with collecting_events():
                signals = reader(str(path), **options)
        else:
            signals = reader(str(path), **options)
    except SpectrumImageError:
        raise
    except ModuleNotFoundError as exc:
        raise SpectrumImageError(
            path, f"reading {fmt.description} files needs the Python package '{exc.name}'"
        ) from exc
    except MemoryError as exc:
        raise SpectrumImageError(
            path, "not enough memory to load this file; open it lazily instead"
        ) from exc
    except Exception as exc:
        raise SpectrumImageError(
            path,
            f"could not be read as {with_article(fmt.description)} file; it may be truncated or "
            f"corrupt ({type(exc).__name__}: {exc})",
        ) from exc
    if not signals:
        raise SpectrumImageError(path, f"no data found in this {fmt.description} file")
    return list(signals)


def check_container(path: Path) -> None:
    """Reject truncated containers that crash or hang rosettasciio instead of failing.

    A truncated ``.bcf`` can crash the Python process in rsciio's compiled decoder, and a
    truncated ``.elid`` makes its reader loop forever, so both are checked before reading; an
    empty file, a truncated HDF5 container and a ``.rpl`` without its whole ``.raw`` are named
    as such (:mod:`~napari_sigma.io.readers.containers`).
    """
    containers.check_not_empty(path)
    suffix = path.suffix.lower()
    if suffix == ".bcf":
        _check_bcf_size(path)
    elif suffix == ".elid":
        _check_bzip2_end(path)
    elif suffix in containers.HDF5_SUFFIXES:
        containers.check_hdf5_size(path, FORMATS[suffix].description)
    elif suffix == ".rpl":
        containers.check_ripple_data(path)


_BCF_SIGNATURE = b"AAMVHFSS"
_BCF_HEADER_SIZE = 0x118  # bytes before the first chunk of the SFS container


def _check_bcf_size(path: Path) -> None:
    size = path.stat().st_size
    with path.open("rb") as file:
        header = file.read(0x14C)
    if len(header) < 0x14C or header[:8] != _BCF_SIGNATURE:
        raise SpectrumImageError(path, "not a Bruker .bcf container (bad or truncated header)")
    chunk_size = int.from_bytes(header[0x128:0x12C], "little")
    n_chunks = int.from_bytes(header[0x148:0x14C], "little")
    expected = _BCF_HEADER_SIZE + chunk_size * n_chunks
    if size < expected:
        raise SpectrumImageError(
            path, f"the file is truncated: {size} bytes of the {expected} its header announces"
        )


_BZIP2_END_OF_STREAM = 0x177245385090  # 48-bit magic, followed by a 32-bit CRC and 0-7 pad bits


def _check_bzip2_end(path: Path) -> None:
    with path.open("rb") as file:
        start = file.read(3)
        file.seek(0, 2)
        size = file.tell()
        file.seek(max(size - 11, 0))
        tail = int.from_bytes(file.read(), "big")
    if start != b"BZh":
        raise SpectrumImageError(path, "not a Phenom .elid file (no bzip2 header)")
    ends_cleanly = any(
        (tail >> (32 + pad)) & (2**48 - 1) == _BZIP2_END_OF_STREAM for pad in range(8)
    )
    if not ends_cleanly:
        raise SpectrumImageError(path, "the file is truncated (its compressed stream has no end)")


# ----------------------------------------------------------------------------- metadata


def get_item(tree: Mapping[str, Any] | None, dotted: str, default: Any = None) -> Any:
    """Value at a dotted path such as ``"Sample.elements"`` in nested dicts, or ``default``."""
    node: Any = tree
    for key in dotted.split("."):
        if not isinstance(node, Mapping) or key not in node:
            return default
        node = node[key]
    return node


def set_item(tree: dict[str, Any], dotted: str, value: Any) -> None:
    """Set a value at a dotted path, creating the intermediate dicts."""
    *parents, last = dotted.split(".")
    node = tree
    for key in parents:
        child = node.get(key)
        if not isinstance(child, dict):
            child = node[key] = {}
        node = child
    node[last] = value


class _ListKeysDict(dict):
    """A dict whose ``keys()`` is a list, as some rsciio mapping functions expect (HyperSpy's DTB)."""

    def keys(self):  # type: ignore[override]
        return list(super().keys())


def apply_mapping(
    metadata: Mapping[str, Any] | None,
    original_metadata: Mapping[str, Any] | None,
    mapping: Mapping[str, tuple[str, Callable[[Any], Any] | None]] | None,
) -> dict[str, Any]:
    """Metadata completed with the reader's ``mapping`` from the original metadata.

    Parameters
    ----------
    metadata : dict
        The reader's metadata (not modified; a deep copy is returned).
    original_metadata : dict
        The reader's original metadata.
    mapping : dict
        ``{"original.dotted.path": ("target.dotted.path", function or None)}``. An entry whose
        source is missing or whose function fails (some need HyperSpy) is skipped.

    Returns
    -------
    dict
        The completed metadata.
    """
    result = copy.deepcopy(dict(metadata or {}))
    for source, (target, function) in (mapping or {}).items():
        value = get_item(original_metadata, source)
        if value is None:
            continue
        if function is not None:
            value = _apply_function(function, value)
            if value is None:
                continue
        set_item(result, target, value)
    return result


def _apply_function(function: Callable[[Any], Any], value: Any) -> Any:
    try:
        return function(value)
    except Exception:
        if not isinstance(value, Mapping):
            return None
    try:
        return function(_ListKeysDict(value))
    except Exception:
        return None


def beam_energy_kv(metadata: Mapping[str, Any]) -> float | None:
    """Accelerating voltage in kV from ``Acquisition_instrument.SEM|TEM.beam_energy``, or None.

    Strings are parsed; 0, negative or unparsable values give None; values above 1000 are taken
    as volts.
    """
    for microscope in ("SEM", "TEM"):
        value = as_float(get_item(metadata, f"Acquisition_instrument.{microscope}.beam_energy"))
        if value is not None and value > 0:
            return value / 1000.0 if value > 1000.0 else value
    return None


def as_float(value: Any) -> float | None:
    """``float(value)`` when it is a finite number (also from a string), else None."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def string_tuple(value: Any) -> tuple[str, ...]:
    """A tuple of the non-empty strings in a metadata list (a single string counts as one)."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple | np.ndarray):
        return ()
    return tuple(str(item) for item in value if isinstance(item, str | np.str_) and str(item))


def signal_type(signal: Mapping[str, Any]) -> str:
    """The signal type recorded by the reader ("" when absent)."""
    return str(get_item(signal.get("metadata"), "Signal.signal_type", "") or "")


def signal_title(signal: Mapping[str, Any]) -> str:
    """The signal's title ("" when absent)."""
    return str(get_item(signal.get("metadata"), "General.title", "") or "")


def jeol_sweeps(original_metadata: Mapping[str, Any] | None) -> tuple[int, int] | None:
    """``(begun, recorded)``: the sweeps (frames) a JEOL ``.pts`` event stream holds the start
    of, against the sweep count its header records; None for another file or a whole stream.

    rosettasciio's ``jeol_pts_frame_start_index`` has one entry per sweep plus the stream's
    end, -1 where the stream stopped before it (a truncated file, an aborted acquisition).
    """
    starts = (original_metadata or {}).get("jeol_pts_frame_start_index")
    if starts is None:
        return None
    starts = np.asarray(starts).ravel()
    if starts.size == 0 or not (starts < 0).any():
        return None
    recorded = as_float(get_item(original_metadata, "PTTD Data.AnalyzableMap MeasData.Doc.Sweep"))
    begun = int(np.count_nonzero(starts >= 0))
    return begun, int(recorded) if recorded else starts.size - 1


def bruker_detector(original_metadata: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The EDS detector a Bruker file (.bcf, .spx) describes in its ``Detector`` header, as plain
    numbers: ``{"type", "window_type", "window_layers": [[Z, thickness_um], ...],
    "grid": [Z, thickness_um, area_fraction] or None, "dead_layer_um", "crystal_mm"}``; None when
    the file has no such description. Window layers with a ``RelativeArea`` are the window's
    support grid (it covers that share of the window)."""
    detector = (original_metadata or {}).get("Detector")
    if not isinstance(detector, Mapping):
        return None
    layers, grid = [], None
    window = detector.get("WindowLayers")
    for layer in window.values() if isinstance(window, Mapping) else []:
        if not isinstance(layer, Mapping):
            continue
        z, thickness = as_float(layer.get("Atom")), as_float(layer.get("Thickness"))
        if z is None or thickness is None or thickness <= 0:
            continue
        area = as_float(layer.get("RelativeArea"))
        if area is not None and 0 < area < 1:
            grid = [int(z), thickness, area]
        else:
            layers.append([int(z), thickness])
    dead, crystal = (
        as_float(detector.get("SiDeadLayerThickness")),
        as_float(detector.get("DetectorThickness")),
    )
    if not layers and grid is None and dead is None:
        return None
    return {
        "type": str(detector.get("Type", "")),
        "window_type": str(detector.get("WindowType", "")),
        "window_layers": layers,
        "grid": grid,
        "dead_layer_um": dead,
        "crystal_mm": crystal,
    }
