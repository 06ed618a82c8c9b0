"""A reader's signals made into what :mod:`napari_sigma.io.readers.reading` returns: which signal is the
spectrum image (the first EDS cube, :func:`_find_spectrum_image`) or the spectrum
(:func:`_find_spectrum`), and the :class:`~napari_sigma.spectrum_image.SpectrumImage`
(:func:`_build_image`: counts in the file's dtype, calibrations, metadata, the file's 2-D images of
the map's shape, notes and warnings) or :class:`~napari_sigma.spectrum_image.Spectrum`
(:func:`_build_spectrum`) built from it."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from napari_sigma.errors import SpectrumImageError
from napari_sigma.io.readers import _rsciio as rh
from napari_sigma.io.readers.calibration import _energy_axis, _energy_axis_index, _pixel_calibration
from napari_sigma.io.readers.events import as_event_cube
from napari_sigma.io.readers.validation import DataWarning
from napari_sigma.spectrum_image import Spectrum, SpectrumImage


def _is_eds_cube(signal: Mapping[str, Any], fmt: rh.FileFormat) -> bool:
    ndim = getattr(signal.get("data"), "ndim", 0)
    kind = rh.signal_type(signal)
    return ndim >= 3 and ("EDS" in kind or (fmt.untyped_cubes and not kind))


def _spectrum_images(signals: Sequence[Mapping[str, Any]], fmt: rh.FileFormat) -> list[int]:
    """The indices of the file's spectrum images (EDS cubes), in the file's order."""
    if fmt.single_spectrum:
        return []
    return [i for i, s in enumerate(signals) if _is_eds_cube(s, fmt)]


def _find_spectrum_image(
    signals: Sequence[Mapping[str, Any]],
    fmt: rh.FileFormat,
    map_index: int = 0,
    path: Path | None = None,
) -> int | None:
    """The signal index of the file's ``map_index``-th spectrum image (0: the first); None when
    the file holds none. A file that holds some, but not that many, is refused naming them."""
    cubes = _spectrum_images(signals, fmt)
    if not cubes:
        return None
    if not 0 <= map_index < len(cubes):
        maps = ", ".join(_map_names(signals, cubes))
        raise SpectrumImageError(
            path or "file",
            f"there is no spectrum image {map_index + 1} in this file: it holds "
            f"{len(cubes)} ({maps})",
        )
    return cubes[map_index]


def _map_names(signals: Sequence[Mapping[str, Any]], cubes: Sequence[int]) -> list[str]:
    """``"1 'Image 1, Map 3'"``: the number a user chooses a map by (1-based) and its title."""
    return [f"{n} {rh.signal_title(signals[i]) or f'signal {i}'!r}" for n, i in enumerate(cubes, 1)]


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


def _build_image(
    path: Path,
    fmt: rh.FileFormat,
    signals: Sequence[Mapping[str, Any]],
    index: int,
    lazy: bool,
    counts: Any = None,
) -> SpectrumImage:
    """The spectrum image of signal ``index``; ``counts``: its counts as given (an h5py dataset
    that :mod:`~napari_sigma.io.readers.hspy_direct`'s caller decodes) instead of the signal's
    data made into counts (lazy: dask; else numpy)."""
    signal = signals[index]
    data, axes = signal["data"], list(signal["axes"])
    if data.ndim != 3:
        raise SpectrumImageError(
            path, f"the spectrum image has {data.ndim} dimensions; only 2-D maps are supported"
        )
    energy_index = _energy_axis_index(axes)
    energy = _energy_axis(path, axes[energy_index], data.shape[energy_index])
    if counts is None:
        counts = _as_counts(
            np.moveaxis(data, energy_index, -1) if energy_index != 2 else data, lazy
        )
    x_axis = [axis for i, axis in enumerate(axes) if i != energy_index][1]
    pixel_size, pixel_unit = _pixel_calibration(x_axis)
    metadata = rh.apply_mapping(
        signal.get("metadata"), signal.get("original_metadata"), signal.get("mapping")
    )
    images, skipped = _images(signals, index, counts.shape[:2])
    cubes = _spectrum_images(signals, fmt)
    title = path.stem
    if len(cubes) > 1:  # one of several maps: its own name (layers, reports)
        title = f"{path.stem} ({rh.signal_title(signal) or f'map {cubes.index(index) + 1}'})"
    return SpectrumImage(
        counts=counts,
        energy=energy,
        beam_energy=rh.beam_energy_kv(metadata),
        pixel_size=pixel_size,
        pixel_unit=pixel_unit,
        elements=rh.string_tuple(rh.get_item(metadata, "Sample.elements")),
        xray_lines=rh.string_tuple(rh.get_item(metadata, "Sample.xray_lines")),
        images=images,
        title=title,
        source=path,
        metadata={
            **_common_metadata(fmt, signals, index, metadata),
            **_maps_metadata(signals, cubes, index),
            "skipped_images": skipped,
            "lazy_from_file": bool(lazy and fmt.lazy),
            "notes": _image_notes(signals, index, fmt),
            "warnings": _read_warnings(path, signal),
        },
    )


def _maps_metadata(
    signals: Sequence[Mapping[str, Any]], cubes: Sequence[int], index: int
) -> dict[str, Any]:
    """For a file of several spectrum images: ``maps`` (their titles, in the file's order) and
    ``map_index`` (which one this is); nothing for a file of one (its metadata as before)."""
    if len(cubes) < 2:
        return {}
    return {"maps": [rh.signal_title(signals[i]) for i in cubes], "map_index": cubes.index(index)}


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


MAPS_NOTE = "the file holds {} spectrum images"  # how a multi-map note begins (napari: one)


def _image_notes(signals: Sequence[Mapping[str, Any]], index: int, fmt: rh.FileFormat) -> list[str]:
    cubes = _spectrum_images(signals, fmt)
    if len(cubes) < 2:
        return []
    names = _map_names(signals, cubes)
    others = [name for name, i in zip(names, cubes, strict=True) if i != index]
    return [
        f"{MAPS_NOTE.format(len(cubes))}; this is map {names[cubes.index(index)]}, not "
        f"{', '.join(others)} (napari-sigma run --map N reads map N)"
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
