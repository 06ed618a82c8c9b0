"""The data model: a spectrum image (y, x, energy) and a single spectrum, both calibrated."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from napari_sigma.energy import EnergyAxis
from napari_sigma.units import microns_per_unit


@dataclass
class Spectrum:
    """One calibrated X-ray spectrum.

    Parameters
    ----------
    counts : ndarray, shape (E,)
        Counts per channel.
    energy : EnergyAxis
        The energy calibration.
    beam_energy : float or None
        Accelerating voltage in kV, if known.
    elements : tuple of str
        Elements named in the file's metadata (may be empty).
    title : str
        A display name.
    source : Path or None
        The file it came from.
    metadata : dict
        The reader's metadata, for reference.
    """

    counts: np.ndarray
    energy: EnergyAxis
    beam_energy: float | None = None
    elements: tuple[str, ...] = ()
    title: str = ""
    source: Path | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class SpectrumImage:
    """A calibrated EDS spectrum image.

    Parameters
    ----------
    counts : ndarray or dask array, shape (y, x, E)
        X-ray counts per pixel and channel.
    energy : EnergyAxis
        The energy calibration of the last axis.
    beam_energy : float or None
        Accelerating voltage in kV, if known.
    pixel_size : float
        Size of one pixel in ``pixel_unit`` (1.0 when uncalibrated).
    pixel_unit : str
        ``"µm"``, ``"nm"``, ... or ``"px"`` when the file is spatially uncalibrated.
    elements : tuple of str
        Element symbols from the metadata (may be empty).
    xray_lines : tuple of str
        Lines from the metadata such as ``"Fe_Ka"`` (may be empty).
    images : dict of str to ndarray
        The file's own 2-D images (BSE, SE, HAADF, ...), by name.
    title, source, metadata
        As in `Spectrum`: a display name, the file it came from, the reader's metadata.
    """

    counts: Any
    energy: EnergyAxis
    beam_energy: float | None = None
    pixel_size: float = 1.0
    pixel_unit: str = "px"
    elements: tuple[str, ...] = ()
    xray_lines: tuple[str, ...] = ()
    images: dict[str, np.ndarray] = field(default_factory=dict)
    title: str = ""
    source: Path | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        """Spatial shape ``(y, x)``."""
        return (int(self.counts.shape[0]), int(self.counts.shape[1]))

    @property
    def pixel_size_um(self) -> float | None:
        """Pixel size in µm, or None when the image is spatially uncalibrated."""
        factor = microns_per_unit(self.pixel_unit)
        return None if factor is None else self.pixel_size * factor

    def total_counts(self) -> np.ndarray:
        """Counts summed over energy, float64 image of shape ``(y, x)``."""
        events = _events(self.counts)
        if events is not None:  # a JEOL event stream: summed from its events, not its chunks
            return events.sum_last()
        if isinstance(self.counts, np.ndarray):
            from napari_sigma.features.intensities import total_counts

            return total_counts(self.counts)  # exact integer sums, in cache-sized blocks
        return np.asarray(self.counts.sum(axis=-1, dtype=np.float64))

    def sum_spectrum(self) -> Spectrum:
        """The spectrum summed over all pixels."""
        events = _events(self.counts)
        if events is not None:
            counts = events.sum_leading()
        else:
            from napari_sigma.compute.arrival import wait_for_all

            wait_for_all(self.counts)  # a cube still being read: every row (compute.arrival)
            counts = np.asarray(self.counts.sum(axis=(0, 1), dtype=np.float64))
        return Spectrum(
            counts=counts,
            energy=self.energy,
            beam_energy=self.beam_energy,
            elements=self.elements,
            title=f"{self.title} (sum)",
            source=self.source,
        )


def _events(counts: Any) -> Any:
    """The :class:`~napari_sigma.io.readers.events.EventCube` behind dask counts read from events, or None."""
    if isinstance(counts, np.ndarray) or not hasattr(counts, "dask"):
        return None
    from napari_sigma.io.readers.events import event_cube_of

    return event_cube_of(counts)
