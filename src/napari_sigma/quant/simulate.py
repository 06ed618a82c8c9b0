"""Expected spectra of a composition with the quantification's physics.

Used to simulate library minerals at an acquisition's beam energy and detector (identification
by spectrum) and by the synthetic generator. Line areas per electron follow
:mod:`~napari_sigma.quant.physics` (bulk: PAP generation with Casnati's cross-section, XPP
absorption, Reed fluorescence; thin foil: production cross-section and foil absorption), times
the detector efficiency; peaks are Gaussians of the detector resolution. Every line of the
table is simulated, the tied L shells of Cl..Sc and M shells of Zr..Sn included
(:func:`napari_sigma.xray.lines.is_tied`: Ca Ll 0.302 keV, which a measured calcite spectrum shows
on C Ka; Sn Mz 0.405 keV).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache

import numpy as np

from napari_sigma.energy import EnergyAxis
from napari_sigma.quant import physics
from napari_sigma.quant.cache_keys import from_typed_items, typed_items
from napari_sigma.xray.lines import (
    ELEMENTS,
    FWHM_PER_SIGMA,
    XrayLine,
    detector_fwhm,
    element_lines,
)

MIN_LINE_KEV = 0.1


def line_intensities(
    composition: Mapping[str, float],
    beam_kev: float,
    detector: physics.Detector | None = None,
    takeoff_deg: float = 35.0,
    thin: bool = False,
    mass_thickness: float = 0.0,
    max_kev: float | None = None,
    absorption: str = "xpp",
) -> list[tuple[XrayLine, float]]:
    """Detected intensity of every line family of a composition, per electron (arbitrary units).

    Parameters
    ----------
    composition : dict of str to float
        Mass fractions (summing to 1).
    beam_kev : float
        Beam energy.
    detector : Detector
        Efficiency (default: an SDD with a polymer window for bulk samples, a windowless one
        for thin foils, as in the quantification).
    takeoff_deg : float
        Take-off angle.
    thin : bool
        Thin foil (no backscatter, stopping or bulk absorption; foil absorption when
        ``mass_thickness`` > 0) instead of a bulk sample.
    mass_thickness : float
        rho t of the foil (g/cm^2).
    max_kev : float, optional
        Highest line energy kept.
    absorption : {"xpp", "pdh"}
        Bulk absorption model (`napari_sigma.quant.physics.bulk_absorption`).
    """
    detector = detector or (physics.WINDOWLESS if thin else physics.Detector())
    high = beam_kev if max_kev is None else min(beam_kev, max_kev)
    lines, fractions = [], []
    for element, fraction in composition.items():
        if fraction <= 0 or element not in ELEMENTS:
            continue
        in_range = element_lines(element, MIN_LINE_KEV, high, tied=True)
        for shell in ("K", "L", "M"):
            for line in in_range:
                if line.shell == shell and line.edge < beam_kev:
                    lines.append(line)
                    fractions.append(fraction)
    if not thin and physics._plain_numbers(composition, beam_kev, takeoff_deg):
        return _bulk_areas(tuple(lines), fractions, composition, beam_kev, detector,
                           takeoff_deg, absorption)  # fmt: skip
    found = []
    for line, fraction in zip(lines, fractions, strict=True):
        element, shell = line.element, line.shell
        if thin:
            generated = physics.line_cross_section(line, beam_kev)
            generated = generated / physics.atomic_weight(element) * 1e22
            escape = physics.thin_film_absorption(
                composition, line.energy, mass_thickness, takeoff_deg
            )
        else:
            generated = physics.emissions_per_electron(
                composition, element, shell, beam_kev, line=line
            )
            escape = physics.bulk_absorption(
                absorption, composition, element, shell, line.energy, beam_kev, takeoff_deg
            )
            escape *= 1.0 + physics.fluorescence_ratio(composition, line, beam_kev, takeoff_deg)
        eff = physics.detector_efficiency(detector, line.energy)
        area = fraction * generated * escape * eff
        found.append((line, float(area)))
    return found


def _bulk_areas(lines, fractions, composition, beam_kev, detector, takeoff_deg, absorption):
    """`line_intensities` of a bulk sample with every term in array operations over the lines
    (:func:`~napari_sigma.quant.physics.bulk_detected_lines`' terms): each area the same
    product of the same doubles as computed one line at a time."""
    if not lines:
        return []
    generated = physics.emissions_per_electron_lines(composition, lines, beam_kev)
    escape = physics.bulk_absorption_lines(absorption, composition, lines, beam_kev, takeoff_deg)
    escape = escape * (1.0 + physics.fluorescence_ratios(composition, lines, beam_kev, takeoff_deg))
    eff = physics._efficiencies(detector, lines)
    areas = np.array(fractions, dtype=np.float64) * generated * escape * eff
    return list(zip(lines, areas.tolist(), strict=True))


def gaussian_peaks(
    axis: EnergyAxis, energies: np.ndarray, areas: np.ndarray, fwhm_mnka_kev: float
) -> np.ndarray:
    """Sum of Gaussian peaks of the detector resolution, in counts per channel."""
    channels = axis.energies
    sigmas = np.atleast_1d(detector_fwhm(energies, fwhm_mnka_kev)) / FWHM_PER_SIGMA
    spectrum = np.zeros(axis.size)
    for energy, sigma, area in zip(energies, sigmas, areas, strict=True):
        window = axis.channel_range(energy - 6 * sigma, energy + 6 * sigma)
        x = (channels[window] - energy) / sigma
        spectrum[window] += area * axis.scale / (sigma * np.sqrt(2 * np.pi)) * np.exp(-0.5 * x**2)
    return spectrum


def line_spectrum(
    composition: Mapping[str, float],
    axis: EnergyAxis,
    beam_kev: float,
    detector: physics.Detector | None = None,
    takeoff_deg: float = 35.0,
    thin: bool = False,
    mass_thickness: float = 0.0,
    absorption: str = "xpp",
) -> np.ndarray:
    """The characteristic lines of a composition on ``axis`` (arbitrary units per electron).

    Kept per composition and acquisition (a new array each call, the same numbers as computed
    anew): the phases of a map compare their spectra with those of the same library minerals
    (:func:`napari_sigma.minerals.spectral._rerank_by_spectrum`)."""
    try:
        key = typed_items(composition)
        return _line_spectrum_cached(key, axis, beam_kev, detector, takeoff_deg, thin,
                                     mass_thickness, absorption).copy()  # fmt: skip
    except TypeError:  # an argument that cannot be a key: not kept
        return _line_spectrum_of(composition, axis, beam_kev, detector, takeoff_deg, thin,
                                 mass_thickness, absorption)  # fmt: skip


@lru_cache(maxsize=256, typed=True)
def _line_spectrum_cached(composition, axis, beam_kev, detector, takeoff_deg, thin,
                          mass_thickness, absorption) -> np.ndarray:  # fmt: skip
    found = _line_spectrum_of(from_typed_items(composition), axis, beam_kev, detector,
                              takeoff_deg, thin, mass_thickness, absorption)  # fmt: skip
    found.setflags(write=False)
    return found


def _line_spectrum_of(composition, axis, beam_kev, detector, takeoff_deg, thin, mass_thickness,
                      absorption) -> np.ndarray:  # fmt: skip
    detector = detector or (physics.WINDOWLESS if thin else physics.Detector())
    found = line_intensities(
        composition, beam_kev, detector, takeoff_deg, thin, mass_thickness, axis.max_energy,
        absorption,
    )  # fmt: skip
    if not found:
        return np.zeros(axis.size)
    energies = np.array([line.energy for line, _ in found])
    areas = np.array([area for _, area in found])
    return gaussian_peaks(axis, energies, areas, detector.fwhm_mnka_kev)
