"""The result files' writers: label and abundance TIFFs for ImageJ/Fiji (and the labels' reader),
the spectra and the phase statistics as CSV (:mod:`napari_sigma.io.results.export` writes them all).

Files are overwritten without asking.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from napari_sigma.energy import EnergyAxis
from napari_sigma.phases.statistics import PhaseTable


def _imagej_resolution(pixel_size_um: float | None) -> dict[str, Any]:
    """``imwrite`` keywords putting the pixel size (µm) where ImageJ reads it."""
    if pixel_size_um is None:
        return {"metadata": {}}
    if not (pixel_size_um > 0 and math.isfinite(pixel_size_um)):
        raise ValueError(f"pixel size must be positive, got {pixel_size_um}")
    pixels_per_um = 1.0 / float(pixel_size_um)
    return {"resolution": (pixels_per_um, pixels_per_um), "metadata": {"unit": "um"}}


def write_labels_tiff(path: str | Path, labels: np.ndarray, pixel_size_um: float | None) -> Path:
    """Write a label image as an ImageJ-compatible uint16 TIFF (Fiji shows the size in µm).

    Parameters
    ----------
    path : str or Path
        Output file (overwritten).
    labels : ndarray (y, x) int
        Labels 0..65535.
    pixel_size_um : float or None
        Pixel size in µm; None writes no calibration.

    Returns
    -------
    Path
    """
    import tifffile

    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"labels must be 2-D, got shape {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() > np.iinfo(np.uint16).max):
        raise ValueError("labels must lie in 0..65535 to be written as uint16")
    path = Path(path)
    keywords = _imagej_resolution(pixel_size_um)
    tifffile.imwrite(path, labels.astype(np.uint16), imagej=True, **keywords)
    return path


def read_labels_tiff(path: str | Path) -> tuple[np.ndarray, float | None]:
    """Read a label TIFF written by :func:`write_labels_tiff` (or by ImageJ).

    Returns
    -------
    labels : ndarray (y, x) int32
    pixel_size_um : float or None
        None when the file carries no µm calibration.
    """
    import tifffile

    with tifffile.TiffFile(Path(path)) as tif:
        labels = tif.asarray().astype(np.int32)
        unit = (tif.imagej_metadata or {}).get("unit", "")
        tag = tif.pages.first.tags.get("XResolution")
        resolution = tag.value if tag is not None else None
    if labels.ndim != 2:
        raise ValueError(f"{path} holds an image of shape {labels.shape}, not a label image")
    pixel_size = None
    if resolution and str(unit).replace("\\u00B5", "µ") in ("um", "µm", "micron") and resolution[0]:
        pixel_size = resolution[1] / resolution[0]
    return labels, pixel_size


def write_maps_tiff(
    path: str | Path, maps: np.ndarray, pixel_size_um: float | None, names: Sequence[str]
) -> Path:
    """Write maps (C, y, x) as a multi-page float32 ImageJ TIFF whose slice labels are ``names``."""
    import tifffile

    maps = np.asarray(maps, dtype=np.float32)
    if maps.ndim != 3 or maps.shape[0] != len(names):
        raise ValueError(f"maps of shape {maps.shape} for {len(names)} names")
    keywords = _imagej_resolution(pixel_size_um)
    keywords["metadata"] |= {"axes": "CYX", "Labels": [str(n) for n in names], "mode": "grayscale"}
    tifffile.imwrite(Path(path), maps, imagej=True, **keywords)
    return Path(path)


def write_spectra_csv(
    path: str | Path, energy_axis: EnergyAxis, spectra: np.ndarray, names: Sequence[str]
) -> Path:
    """Write spectra (K, E) as CSV: column ``energy_keV``, then one column per spectrum."""
    spectra = np.atleast_2d(np.asarray(spectra, dtype=np.float64))
    if spectra.shape != (len(names), energy_axis.size):
        raise ValueError(
            f"spectra of shape {spectra.shape} for {len(names)} names x {energy_axis.size} channels"
        )
    with Path(path).open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["energy_keV", *(str(n) for n in names)])
        for energy, values in zip(energy_axis.energies, spectra.T, strict=True):
            writer.writerow([f"{energy:.6f}", *(f"{v:.8g}" for v in values)])
    return Path(path)


def write_stats_csv(path: str | Path, table: PhaseTable, minerals: Sequence = ()) -> Path:
    """Write a phase table as CSV (one row per phase, columns of :meth:`PhaseTable.to_rows`).

    ``minerals`` (``PhaseMineral`` of :mod:`napari_sigma.minerals.phases`) add the columns
    ``mineral`` and ``mineral_score``.
    """
    rows = table.to_rows()
    by_id = {m.phase_id: m for m in minerals}
    for row in rows:
        found = by_id.get(int(row["phase_id"]))
        row["mineral"] = found.mineral if found else ""
        row["mineral_score"] = f"{found.score:.3f}" if found and found.identification else ""
    columns = [
        "phase_id",
        "name",
        "pixels",
        "area_fraction",
        "area_um2",
        "n_regions",
        "largest_region_px",
        "main_elements",
        "mineral",
        "mineral_score",
        *(f"mean_{line}" for line in table.line_names),
        "area_fraction_abundance",
    ]
    with Path(path).open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if row[k] is None else row[k] for k in columns})
    return Path(path)
