"""Reader of Oxford Instruments AZtec ``.h5oina`` files (EDS spectrum images and electron images).

Written from the public H5OINA specification (github.com/oinanoanalysis/h5oina, file
``H5OINAFile.md``, format versions 1.0-8.0); no rosettasciio reader exists for it. The layout read:

- root: ``Format Version`` (mandatory, a string) and ``Index`` (the slice names; one slice ``1``
  for a single acquisition);
- ``/<slice>/EDS`` (or ``EDS1``, ``EDS2``, ... for a Unity multi-detector system), each with
  ``Data`` and ``Header`` groups. ``Data/Spectrum`` holds the counts as int32, one row per pixel
  ``(X Cells * Y Cells, Number Channels)`` (written with LZF compression, which h5py decodes);
  ``Data/Live Time`` the live time per pixel in seconds; ``Data/Window Integral/<line>`` AZtec's
  element maps in counts per second. ``Header`` holds ``X Cells``, ``Y Cells`` (int32),
  ``X Step``, ``Y Step`` (µm), ``Channel Width`` and ``Start Channel`` (eV: the width and the
  energy of channel zero), ``Beam Voltage`` (kV) and ``Relative Offset``/``Relative Size`` (the
  map's bounding box in the electron image, normalised by its width and height);
- ``/<slice>/Electron Image/Data/{SE,BSE,FSE}/<any name>``: images with one row per pixel, shaped
  by the ``X Cells``/``Y Cells`` of ``/<slice>/Electron Image/Header``.

The specification says "width x height" rows without naming the order; rows are taken as x
varying fastest (top-left origin, as its ``X``/``Y`` datasets describe), and when the file holds
``Data/X`` and ``Data/Y`` their first entries decide. A file without ``Data/Spectrum`` (AZtec
exports the spectra only as "unprocessed spectrum data") holds no spectrum image.

:func:`file_reader` returns rosettasciio-style signal dictionaries (``data``, ``axes``,
``metadata``, ``original_metadata``), so that :mod:`napari_sigma.io.readers.reading` builds the
:class:`~napari_sigma.spectrum_image.SpectrumImage` as for every other format. Electron images
that cover the map at an integer multiple of its resolution (the usual AZtec case: a 1024 x 768
image over a 256 x 192 map) are cropped to the map's bounding box and averaged down to the map's
pixels; others keep their own shape (and are listed as skipped).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from napari_sigma.errors import NotASpectrumImageError, SpectrumImageError
from napari_sigma.io.readers._rsciio import as_float

ELECTRON_DETECTORS = ("SE", "BSE", "FSE")
_EDS_GROUP = re.compile(r"^EDS\d*$")
_BAND_BYTES = 64 * 2**20  # lazy chunks: whole rows of the map, about this many bytes


def file_reader(filename: str | Path, lazy: bool = False) -> list[dict[str, Any]]:
    """Read the EDS cubes, element maps and electron images of an ``.h5oina`` file.

    Parameters
    ----------
    filename : str or Path
        The file.
    lazy : bool
        Give the cube as a dask array reading the file on demand (the file stays open).

    Returns
    -------
    list of dict
        Signal dictionaries: each EDS spectrum image first (``EDS``, or ``EDS1``, ``EDS2``...),
        then its live-time and window-integral maps, then the electron images.

    Raises
    ------
    NotASpectrumImageError
        A valid H5OINA file without spectrum data (an EBSD-only or processed-maps export).
    SpectrumImageError
        Not an H5OINA file, or its header contradicts its data.
    """
    import h5py

    path = Path(filename)
    try:
        h5 = h5py.File(path, "r")
    except OSError as exc:
        raise SpectrumImageError(path, f"not an HDF5 file, or truncated ({exc})") from exc
    try:
        signals = _read_slice(path, h5, lazy)
    except BaseException:
        h5.close()
        raise
    if not lazy:  # a lazy cube reads the open file on demand
        h5.close()
    return signals


# ----------------------------------------------------------------------------- structure


def _read_slice(path: Path, h5: Any, lazy: bool) -> list[dict[str, Any]]:
    if "Format Version" not in h5:
        raise SpectrumImageError(path, "not an H5OINA file (no 'Format Version' at the root)")
    root = {
        key: _scalar(h5[key])
        for key in ("Format Version", "Manufacturer", "Software Version")
        if key in h5
    }
    name = _first_slice_name(h5)
    if name not in h5:
        raise SpectrumImageError(path, f"the slice '{name}' named in the Index is missing")
    acquisition = h5[name]
    eds_names = sorted((key for key in acquisition if _EDS_GROUP.match(key)), key=_eds_order)
    cubes = [n for n in eds_names if "Spectrum" in acquisition[n].get("Data", {})]
    if not cubes:
        found = ", ".join(sorted(acquisition)) or "nothing"
        raise NotASpectrumImageError(
            path,
            f"no EDS spectrum data (/{name}/EDS/Data/Spectrum) in this H5OINA file (it holds "
            f"{found}); export the map from AZtec with its unprocessed spectrum data",
        )
    signals = []
    for eds_name in cubes:
        signals.extend(_eds_signals(path, acquisition[eds_name], eds_name, root, lazy))
    map_header = _header(acquisition[cubes[0]]["Header"])
    if "Electron Image" in acquisition:
        signals.extend(_electron_images(acquisition["Electron Image"], map_header))
    return signals


def _first_slice_name(h5: Any) -> str:
    if "Index" not in h5:
        return "1"
    names = np.atleast_1d(h5["Index"][()]).ravel()
    return _text(names[0]) if names.size else "1"


def _eds_order(name: str) -> int:
    return int(name[3:]) if name[3:] else 0


# ----------------------------------------------------------------------------- EDS


def _eds_signals(
    path: Path, group: Any, name: str, root: dict[str, Any], lazy: bool
) -> list[dict[str, Any]]:
    header = _header(group["Header"])
    nx, ny = _cells(path, header, name)
    spectra = group["Data"]["Spectrum"]
    if spectra.ndim != 2 or spectra.shape[0] != nx * ny:
        raise SpectrumImageError(
            path,
            f"{name}/Data/Spectrum has shape {spectra.shape}; the header announces "
            f"{nx} x {ny} pixels",
        )
    x_fastest = _x_varies_fastest(group["Data"])
    cube = _cube(spectra, nx, ny, x_fastest, lazy)
    width = _positive(header.get("Channel Width"))
    start = as_float(header.get("Start Channel"))
    if width is None or start is None:
        raise SpectrumImageError(
            path,
            f"invalid energy calibration in {name}/Header (Channel Width "
            f"{header.get('Channel Width')!r} eV, Start Channel {header.get('Start Channel')!r} eV)",
        )
    metadata: dict[str, Any] = {
        "General": {"title": _text(header.get("Analysis Label") or name)},
        "Signal": {"signal_type": "EDS_SEM"},
    }
    kv = _positive(header.get("Beam Voltage"))
    if kv is not None:
        metadata["Acquisition_instrument"] = {"SEM": {"beam_energy": kv}}
    axes = [
        *_spatial_axes(header, nx, ny),
        _axis("Energy", spectra.shape[1], width, start, "eV", navigate=False),
    ]
    original = {"root": root, "Header": header}
    signals = [{"data": cube, "axes": axes, "metadata": metadata, "original_metadata": original}]
    for title, values in _maps(group["Data"], name):
        image = _as_image(values, nx, ny, x_fastest)
        if image is not None:
            signals.append(_image_signal(image, title, _spatial_axes(header, nx, ny)))
    return signals


def _cells(path: Path, header: dict[str, Any], name: str) -> tuple[int, int]:
    nx, ny = header.get("X Cells"), header.get("Y Cells")
    try:
        nx, ny = int(nx), int(ny)
    except (TypeError, ValueError):
        nx = ny = 0
    if nx < 1 or ny < 1:
        raise SpectrumImageError(
            path, f"{name}/Header has no valid 'X Cells'/'Y Cells' ({nx!r}, {ny!r})"
        )
    return nx, ny


def _x_varies_fastest(data: Any) -> bool:
    if "X" not in data or "Y" not in data or data["X"].shape[0] < 2:
        return True
    x = np.asarray(data["X"][:2], dtype=np.float64).ravel()
    y = np.asarray(data["Y"][:2], dtype=np.float64).ravel()
    return not (x[0] == x[1] and y[0] != y[1])


def _cube(spectra: Any, nx: int, ny: int, x_fastest: bool, lazy: bool) -> Any:
    channels = spectra.shape[1]
    if lazy:
        import dask.array as da

        row_bytes = (nx if x_fastest else ny) * channels * spectra.dtype.itemsize
        rows = max(1, _BAND_BYTES // max(row_bytes, 1))
        per_row = nx if x_fastest else ny
        data = da.from_array(spectra, chunks=(rows * per_row, channels))
    else:
        data = spectra[()]
    if x_fastest:
        return data.reshape(ny, nx, channels)
    return data.reshape(nx, ny, channels).transpose(1, 0, 2)


def _maps(data: Any, name: str) -> list[tuple[str, Any]]:
    maps = []
    if "Live Time" in data:
        maps.append((f"{name} live time (s)", data["Live Time"]))
    if "Window Integral" in data:
        for line, values in data["Window Integral"].items():
            maps.append((f"{line} window integral (cps)", values))
    return maps


def _as_image(values: Any, nx: int, ny: int, x_fastest: bool) -> np.ndarray | None:
    flat = np.asarray(values[()]).ravel()
    if flat.size != nx * ny:
        return None
    return flat.reshape(ny, nx) if x_fastest else flat.reshape(nx, ny).T


# ----------------------------------------------------------------------------- electron images


def _electron_images(group: Any, map_header: dict[str, Any]) -> list[dict[str, Any]]:
    if "Data" not in group or "Header" not in group:
        return []
    header = _header(group["Header"])
    try:
        nx, ny = int(header.get("X Cells")), int(header.get("Y Cells"))
    except (TypeError, ValueError):
        return []
    map_nx, map_ny = int(map_header["X Cells"]), int(map_header["Y Cells"])
    box = _map_box(header, map_header, nx, ny)
    signals = []
    for detector in ELECTRON_DETECTORS:
        if detector not in group["Data"]:
            continue
        datasets = list(group["Data"][detector].items())
        for name, values in datasets:
            flat = np.asarray(values[()]).ravel()
            if flat.size != nx * ny or flat.dtype.fields is not None:
                continue
            image = flat.reshape(ny, nx)
            title = detector if len(datasets) == 1 else f"{detector} {name}"
            on_map = _onto_map(image, box, map_ny, map_nx)
            if on_map is not None:
                signals.append(
                    _image_signal(on_map, title, _spatial_axes(map_header, map_nx, map_ny))
                )
            else:
                signals.append(_image_signal(image, title, _spatial_axes(header, nx, ny)))
    return signals


def _map_box(
    header: dict[str, Any], map_header: dict[str, Any], nx: int, ny: int
) -> tuple[int, int, int, int] | None:
    """The map's bounding box ``(x0, y0, width, height)`` in electron-image pixels, if known."""
    offset, size = map_header.get("Relative Offset"), map_header.get("Relative Size")
    if offset is not None and size is not None:
        offset, size = np.ravel(offset).astype(float), np.ravel(size).astype(float)
        if offset.size == 2 and size.size == 2 and np.all(np.isfinite([*offset, *size])):
            return (
                round(offset[0] * nx),
                round(offset[1] * ny),
                round(size[0] * nx),
                round(size[1] * ny),
            )
    # no bounding box: the image covers the map when both span the same field
    map_width = as_float(map_header.get("X Step"))
    step = as_float(header.get("X Step"))
    if map_width is None or step is None or step <= 0:
        return None
    field = float(map_header["X Cells"]) * map_width
    return (0, 0, nx, ny) if abs(field - nx * step) <= 0.01 * field else None


def _onto_map(
    image: np.ndarray, box: tuple[int, int, int, int] | None, map_ny: int, map_nx: int
) -> np.ndarray | None:
    if box is None:
        return None
    x0, y0, width, height = box
    if width % map_nx or height % map_ny or width // map_nx != height // map_ny:
        return None
    if x0 < 0 or y0 < 0 or x0 + width > image.shape[1] or y0 + height > image.shape[0]:
        return None
    factor = width // map_nx
    crop = image[y0 : y0 + height, x0 : x0 + width].astype(np.float32)
    if factor == 1:
        return image[y0 : y0 + height, x0 : x0 + width]
    return crop.reshape(map_ny, factor, map_nx, factor).mean(axis=(1, 3))


# ----------------------------------------------------------------------------- helpers


def _header(group: Any) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, item in group.items():
        if hasattr(item, "shape"):
            values[key] = _scalar(item)
    return values


def _scalar(dataset: Any) -> Any:
    value = dataset[()]
    if isinstance(value, np.ndarray):
        if value.size == 1:
            value = value.ravel()[0]
        elif value.dtype.kind in "SOU":
            return [_text(v) for v in value.ravel()]
        else:
            return value.ravel()
    if isinstance(value, bytes | np.bytes_ | str):
        return _text(value)
    return value.item() if isinstance(value, np.generic) else value


def _text(value: Any) -> str:
    if isinstance(value, bytes | np.bytes_):
        return value.decode("utf-8", errors="replace")
    return str(value)


def _positive(value: Any) -> float | None:
    number = as_float(value)
    return number if number is not None and number > 0 else None


def _axis(name: str, size: int, scale: float, offset: float, units: str, navigate: bool) -> dict:
    return {
        "name": name,
        "size": int(size),
        "scale": float(scale),
        "offset": float(offset),
        "units": units,
        "navigate": navigate,
    }


def _spatial_axes(header: dict[str, Any], nx: int, ny: int) -> list[dict[str, Any]]:
    x_step = _positive(header.get("X Step"))
    y_step = _positive(header.get("Y Step")) or x_step  # line scans store Y Step = 0
    units = "µm" if x_step is not None else ""
    return [
        _axis("y", ny, y_step or 1.0, 0.0, units, navigate=True),
        _axis("x", nx, x_step or 1.0, 0.0, units, navigate=True),
    ]


def _image_signal(image: np.ndarray, title: str, axes: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "data": image,
        "axes": axes,
        "metadata": {"General": {"title": title}, "Signal": {"signal_type": ""}},
        "original_metadata": {},
    }
