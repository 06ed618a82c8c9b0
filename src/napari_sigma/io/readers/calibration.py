"""The axes of a reader's signal (:mod:`napari_sigma.io.readers.reading`): which one is the energy axis
(:func:`_energy_axis_index`), its calibration in keV (:func:`_energy_axis`: eV/keV told apart by
the unit or the channel width, :func:`_kev_per_unit`) and the pixel size
(:func:`_pixel_calibration`: µm, nm below 0.1 µm, ``"px"`` when uncalibrated)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from napari_sigma.energy import EnergyAxis
from napari_sigma.errors import SpectrumImageError
from napari_sigma.io.readers import _rsciio as rh
from napari_sigma.units import is_uncalibrated, microns_per_unit


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
