"""napari writers: Labels and Image layers as TIFF files calibrated in µm.

The pixel size comes from the layer's scale and units (``meta["scale"]``, ``meta["units"]``); a layer
in pixels is written uncalibrated. Labels are written as uint16 (an error above 65535 labels or for
negative labels), images as float32. Both read back unchanged with ``tifffile`` and, for labels,
:func:`napari_sigma.io.results.export.read_labels_tiff`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from napari_sigma.errors import SigmaError
from napari_sigma.units import microns_per_unit

MAX_UINT16_LABEL = np.iinfo(np.uint16).max


def pixel_size_um(meta: dict[str, Any]) -> float | None:
    """Pixel size in µm from a layer's ``scale`` and ``units`` (None when in pixels or unknown).

    Parameters
    ----------
    meta : dict
        The layer attributes napari passes to a writer.

    Returns
    -------
    float or None
        The size of the last (x) axis' step in µm.
    """
    scale = meta.get("scale")
    if scale is None or len(scale) == 0:
        return None
    units = meta.get("units")
    unit = str(units[-1]) if units is not None and len(units) else "pixel"
    factor = microns_per_unit(unit)
    if factor is None:
        return None
    return float(scale[-1]) * factor


def labels_as_uint16(data: Any) -> np.ndarray:
    """Labels as uint16, refusing values a 16-bit TIFF cannot hold.

    Raises
    ------
    SigmaError
        A label is negative or above 65535.
    """
    labels = np.asarray(data)
    if labels.size and int(labels.min()) < 0:
        raise SigmaError(f"cannot write negative labels (minimum {int(labels.min())}) to a TIFF")
    if labels.size and int(labels.max()) > MAX_UINT16_LABEL:
        raise SigmaError(
            f"cannot write {int(labels.max())} labels to a 16-bit TIFF (at most {MAX_UINT16_LABEL})"
        )
    return labels.astype(np.uint16)


def write_labels(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Write a Labels layer to a uint16 TIFF calibrated in µm.

    Parameters
    ----------
    path : str
        Destination ``.tif``/``.tiff``.
    data : array, shape (y, x)
        The labels.
    meta : dict
        The layer attributes (``scale``, ``units``).

    Returns
    -------
    list of str
        ``[path]``.
    """
    from napari_sigma.io.results.export import write_labels_tiff

    write_labels_tiff(Path(path), labels_as_uint16(data), pixel_size_um(meta))
    return [str(path)]


def write_image(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Write an Image layer to a float32 TIFF calibrated in µm.

    Parameters
    ----------
    path : str
        Destination ``.tif``/``.tiff``.
    data : array, shape (y, x) or (C, y, x)
        The image (a multiscale image writes its full-resolution level).
    meta : dict
        The layer attributes (``scale``, ``units``, ``name``).

    Returns
    -------
    list of str
        ``[path]``.
    """
    from napari_sigma.io.results.export import write_maps_tiff

    if isinstance(data, Sequence) and not isinstance(data, np.ndarray):
        data = data[0]
    image = np.asarray(data, dtype=np.float32)
    name = str(meta.get("name") or Path(path).stem)
    maps = image[np.newaxis] if image.ndim == 2 else image
    names = [name] if image.ndim == 2 else [f"{name} {i}" for i in range(maps.shape[0])]
    write_maps_tiff(Path(path), maps, pixel_size_um(meta), names)
    return [str(path)]
