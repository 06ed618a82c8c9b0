"""The pure spectra of synthetic phases (:mod:`napari_sigma.synthetic.generator`): their lines
(:mod:`napari_sigma.quant.simulate`'s physics, Gaussian peaks of the detector FWHM) and Kramers'
bremsstrahlung through the same absorption and detector efficiency (:func:`phase_spectra`,
:func:`detector_efficiency`)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from napari_sigma.energy import EnergyAxis
from napari_sigma.synthetic.phase_specs import PhaseSpec
from napari_sigma.xray.lines import FWHM_PER_SIGMA, detector_fwhm

FWHM_MNKA_KEV = 0.130

TAKEOFF_DEG = 35.0

YIELD_EXPONENT = 0.3

LINE_SCALE = 4.5e25
"""Lines per electron of ``quant.simulate`` times this keep the continuum of quartz at 15 kV at
about a quarter of its counts."""

KRAMERS_CONSTANT = 0.00026
"""Bremsstrahlung per keV per unit of ``Zbar`` relative to the line intensities (about 25 % of
the counts of quartz at 15 kV)."""

NOISE_THRESHOLD_KEV = 0.1


def _mass_attenuation(composition: dict[str, float], energies_kev: np.ndarray) -> np.ndarray:
    """Mass attenuation coefficient (cm^2/g) of a composition at the given energies."""
    import xraydb

    energies_ev = np.clip(np.asarray(energies_kev, dtype=np.float64), 0.1, None) * 1000.0
    return sum(c * np.asarray(xraydb.mu_elam(el, energies_ev)) for el, c in composition.items())


GRID_STEP_KEV = 0.02


def _energy_grid(beam_energy: float) -> np.ndarray:
    """The coarse energy grid (keV) on which the bremsstrahlung is computed."""
    return np.arange(0.05, beam_energy + GRID_STEP_KEV, GRID_STEP_KEV)


@lru_cache(maxsize=256)
def _element_attenuation_on_grid(element: str, beam_energy: float) -> np.ndarray:
    return _mass_attenuation({element: 1.0}, _energy_grid(beam_energy))


@lru_cache(maxsize=16)
def _efficiency_on_grid(beam_energy: float) -> np.ndarray:
    return detector_efficiency(_energy_grid(beam_energy))


def _absorption_factor(
    phase: PhaseSpec, mu_rho: np.ndarray, edge_kev: np.ndarray, beam_energy: float
) -> np.ndarray:
    """Philibert's simplified f(chi): the fraction of generated X-rays leaving the sample."""

    from napari_sigma.quant.physics import atomic_weight

    mean_a = sum(c * atomic_weight(el) for el, c in phase.composition.items())
    h = 1.2 * mean_a / phase.mean_z**2
    chi = mu_rho / np.sin(np.radians(TAKEOFF_DEG))
    edge = np.minimum(edge_kev, 0.95 * beam_energy)
    sigma = 4.5e5 / (beam_energy**1.65 - edge**1.65)
    ratio = chi / sigma
    return 1.0 / ((1.0 + ratio) * (1.0 + h / (1.0 + h) * ratio))


def detector_efficiency(energies_kev: np.ndarray) -> np.ndarray:
    """Efficiency of a windowed silicon drift detector (0..1) at the given energies (keV)."""
    import xraydb

    energies_ev = np.clip(np.asarray(energies_kev, dtype=np.float64), 0.1, None) * 1000.0
    window = xraydb.material_mu("C8H8", energies_ev, density=1.05) * 3e-5
    window += xraydb.material_mu("Al", energies_ev, density=2.70) * 3e-6
    dead_layer = xraydb.material_mu("Si", energies_ev, density=2.33) * 3e-6
    crystal = xraydb.material_mu("Si", energies_ev, density=2.33) * 0.045
    return np.exp(-window - dead_layer) * -np.expm1(-crystal)


def _line_spectrum(phase: PhaseSpec, axis: EnergyAxis, beam_energy: float) -> np.ndarray:
    """Characteristic X-rays of a phase (arbitrary units per electron) on ``axis``.

    The quantification's physics (:func:`napari_sigma.quant.simulate.line_spectrum`, bulk, 35
    degree take-off, the default SDD) times ``LINE_SCALE``.
    """
    from napari_sigma.quant.physics import Detector
    from napari_sigma.quant.simulate import line_spectrum

    detector = Detector(fwhm_mnka_kev=FWHM_MNKA_KEV)
    lines = line_spectrum(phase.composition, axis, beam_energy, detector, TAKEOFF_DEG)
    return LINE_SCALE * lines


def _background_spectrum(phase: PhaseSpec, axis: EnergyAxis, beam_energy: float) -> np.ndarray:
    """Bremsstrahlung of a phase (Kramers, absorbed, detected), same units as the lines."""
    from scipy.ndimage import gaussian_filter1d

    grid = _energy_grid(beam_energy)
    mu_rho = sum(
        c * _element_attenuation_on_grid(el, beam_energy) for el, c in phase.composition.items()
    )
    absorbed = _absorption_factor(phase, mu_rho, grid, beam_energy)
    kramers = KRAMERS_CONSTANT * phase.mean_z * np.clip(beam_energy - grid, 0, None) / grid
    detected = kramers * absorbed * _efficiency_on_grid(beam_energy)
    energy = axis.energies
    spectrum = np.interp(energy, grid, detected, left=0.0, right=0.0) * axis.scale
    sigma_channels = detector_fwhm(1.0, FWHM_MNKA_KEV) / FWHM_PER_SIGMA / axis.scale
    threshold = 1.0 / (1.0 + np.exp(-(energy - NOISE_THRESHOLD_KEV) / 0.01))
    spectrum = gaussian_filter1d(spectrum, sigma_channels, mode="constant") * threshold
    spectrum[energy >= beam_energy] = 0.0
    return spectrum


def phase_spectra(
    phases: Sequence[PhaseSpec], axis: EnergyAxis, beam_energy: float
) -> tuple[np.ndarray, np.ndarray]:
    """Line and background spectra of phases, each scaled to 1 count times its relative yield.

    Returns
    -------
    lines, background : ndarray, shape (K, E) float64
        ``(lines + background)[k].sum()`` is ``(Zbar_k / mean Zbar) ** 0.3``.
    """
    lines = np.array([_line_spectrum(p, axis, beam_energy) for p in phases])
    background = np.array([_background_spectrum(p, axis, beam_energy) for p in phases])
    mean_z = np.array([p.mean_z for p in phases])
    yields = (mean_z / mean_z.mean()) ** YIELD_EXPONENT
    scale = yields / (lines + background).sum(axis=1)
    return lines * scale[:, None], background * scale[:, None]
