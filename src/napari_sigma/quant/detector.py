"""The energy-dispersive detector: efficiency (transmission of the window and dead layer times
absorption in the crystal, Beer-Lambert with Elam's coefficients, e.g. Goldstein et al.,
*Scanning Electron Microscopy and X-ray Microanalysis*, 4th ed. (2018), ch. 16), the detector a
file describes, and the take-off angle.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from napari_sigma.quant.atomic import atomic_number
from napari_sigma.quant.attenuation import mass_attenuation


@dataclass(frozen=True)
class Detector:
    """An energy-dispersive detector: window, dead layer and crystal (the default is an SDD).

    Parameters
    ----------
    window_polymer_um : float
        Polymer window thickness (C8H8, 1.05 g/cm^3), µm; 0 for windowless.
    window_al_nm : float
        Aluminium coating of the window, nm.
    dead_layer_nm : float
        Silicon dead layer, nm.
    crystal_mm : float
        Silicon crystal thickness, mm.
    fwhm_mnka_kev : float
        Resolution at Mn Ka (keV).
    layers : tuple of (element, thickness_um, density_g_cm3)
        Further window layers (e.g. a file's own window description), in the X-rays' path.
    grid : (element, thickness_um, area_fraction) or None
        The window's support grid, covering ``area_fraction`` of the window.
    """

    window_polymer_um: float = 0.3
    window_al_nm: float = 30.0
    dead_layer_nm: float = 30.0
    crystal_mm: float = 0.45
    fwhm_mnka_kev: float = 0.130
    layers: tuple[tuple[str, float, float], ...] = ()
    grid: tuple[str, float, float] | None = None

    def efficiency(self, energy_kev) -> np.ndarray | float:
        """Detected fraction of the X-rays entering the detector (0..1) at ``energy_kev``.

        ``exp(-mu_w t_w - mu_Al t_Al - mu_Si t_dead) (1 - exp(-mu_Si t_crystal))``.
        """
        energies = np.atleast_1d(np.asarray(energy_kev, dtype=np.float64))
        window = mass_attenuation({"C": 0.9226, "H": 0.0774}, energies) * 1.05
        window = window * self.window_polymer_um * 1e-4
        window += mass_attenuation("Al", energies) * 2.70 * self.window_al_nm * 1e-7
        for element, thickness_um, density in self.layers:
            window = window + mass_attenuation(element, energies) * density * thickness_um * 1e-4
        silicon = mass_attenuation("Si", energies) * 2.33
        dead = silicon * self.dead_layer_nm * 1e-7
        crystal = silicon * self.crystal_mm * 0.1
        eff = np.exp(-window - dead) * -np.expm1(-crystal)
        if self.grid is not None:
            element, thickness_um, area = self.grid
            mu_t = mass_attenuation(element, energies) * _density(element) * thickness_um * 1e-4
            eff = eff * ((1.0 - area) + area * np.exp(-mu_t))
        return float(eff[0]) if np.ndim(energy_kev) == 0 else eff


FILM_DENSITY = 1.4
"""g/cm^3 of the light elements (Z <= 8 but Be) of a window film: polymer (polyimide ~1.4)."""


def _density(element: str) -> float:
    """Density (g/cm^3) of an element as a window layer: the film's for B, C, N, O; else the
    element's own (xraydb)."""
    from napari_sigma.xray import xraydb_direct as xraydb

    if atomic_number(element) <= 8 and element != "Be":
        return FILM_DENSITY
    return float(xraydb.atomic_density(element))


def detector_from_metadata(metadata: Mapping | None) -> Detector | None:
    """The detector a file describes (``metadata["eds_detector"]``, see
    `napari_sigma.io.readers._rsciio.bruker_detector`): its window layers (light elements at the film
    density, metals at their own), the window's support grid, the Si dead layer and the crystal
    thickness; None when the file describes none. The detector's own "DetLayers" list is not
    used: its units and densities are not documented (the same list is given for windowed and
    windowless Bruker detectors)."""
    from napari_sigma.xray import xraydb_direct as xraydb

    described = (metadata or {}).get("eds_detector")
    if not isinstance(described, Mapping):
        return None
    layers = tuple(
        (xraydb.atomic_symbol(int(z)), float(t), _density(xraydb.atomic_symbol(int(z))))
        for z, t in described.get("window_layers") or []
    )
    grid = described.get("grid")
    grid = (xraydb.atomic_symbol(int(grid[0])), float(grid[1]), float(grid[2])) if grid else None
    dead = described.get("dead_layer_um")
    crystal = described.get("crystal_mm")
    default = Detector()
    return Detector(
        window_polymer_um=0.0,
        window_al_nm=0.0,
        dead_layer_nm=1000.0 * float(dead) if dead else default.dead_layer_nm,
        crystal_mm=float(crystal) if crystal else default.crystal_mm,
        layers=layers,
        grid=grid,
    )


WINDOWLESS = Detector(window_polymer_um=0.0, window_al_nm=0.0)
"""A windowless SDD: the usual analytical-TEM detector (e.g. the four windowless SDDs of a
Thermo Fisher Super-X, JEOL's windowless Centurio, Oxford's windowless X-Max^N TLE). Only its Si
dead layer absorbs soft lines: about 0.95 of O Ka and 0.80 of C Ka are detected, against 0.64
and 0.59 behind the default polymer window. The thin-foil quantification uses it unless a
detector is given."""


def takeoff_angle(metadata: Mapping | None, default: float = 35.0) -> float:
    """Take-off angle (degrees) from HyperSpy-style metadata: elevation plus stage tilt.

    Looks at ``Acquisition_instrument.{SEM,TEM}.Detector.EDS.elevation_angle`` and
    ``...tilt_stage``; returns ``default`` when there is no elevation angle.
    """
    from napari_sigma.io.readers._rsciio import get_item

    if not metadata:
        return default
    for microscope in ("SEM", "TEM"):
        base = f"Acquisition_instrument.{microscope}"
        elevation = get_item(metadata, f"{base}.Detector.EDS.elevation_angle", None)
        if elevation is None:
            continue
        try:
            angle = float(elevation) + float(get_item(metadata, f"{base}.Stage.tilt_alpha", 0) or 0)
            angle += float(get_item(metadata, f"{base}.tilt_stage", 0) or 0)
        except (TypeError, ValueError):
            continue
        if 0.0 < angle < 90.0:
            return angle
    return default


@lru_cache(maxsize=4096)
def _efficiency_cached(detector: Detector, energy_kev: float) -> float:
    return float(detector.efficiency(energy_kev))


def detector_efficiency(detector: Detector, energy_kev: float) -> float:
    """``detector.efficiency(energy_kev)`` for one energy, cached."""
    return _efficiency_cached(detector, round(float(energy_kev), 6))
