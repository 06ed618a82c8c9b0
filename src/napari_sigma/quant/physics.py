"""The physics of X-ray generation and detection used by the quantification: the namespace of
every physical term and the detected intensity of a line (`detected_lines`; of many lines of a
bulk sample at once, every term in array operations over the lines: `bulk_detected_lines`).

Each term lives in the module of its domain, which names its source (paper and equation):

- :mod:`~napari_sigma.quant.atomic`: atomic weights, edge energies, fluorescence yields and jump
  ratios (xraydb: Elam, Ravel & Sieber, *Radiat. Phys. Chem.* 63, 121, 2002), the line table's
  relative intensities;
- :mod:`~napari_sigma.quant.attenuation`: mass attenuation coefficients (Elam et al. 2002) and
  the mixture rule;
- :mod:`~napari_sigma.quant.cross_sections`: ionisation cross-sections (K: Casnati, Tartari &
  Baraldi, *J. Phys. B* 15, 155, 1982; L1-L3, M4, M5: Bote, Salvat, Jablonski & Powell, *At.
  Data Nucl. Data Tables* 95, 871, 2009), Coster-Kronig transfers (Bambynek et al. 1972;
  Krause 1979) and X-ray production;
- :mod:`~napari_sigma.quant.generation`: PAP stopping power, mean ionisation potential,
  backscatter factor and X-rays generated per electron (Pouchou & Pichoir 1991);
- :mod:`~napari_sigma.quant.absorption`: XPP phi(rho z) (Pouchou & Pichoir 1991), PDH f(chi)
  (Heinrich 1981) and thin-foil escape (Horita, Sano & Nemoto 1987);
- :mod:`~napari_sigma.quant.fluorescence`: characteristic fluorescence (Reed 1965, eq. 10);
- :mod:`~napari_sigma.quant.detector`: detector efficiency (window, dead layer, crystal), the
  detector a file describes, and the take-off angle.

Energies are in keV, mass attenuation in cm^2/g, cross-sections in cm^2.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache

import numpy as np

from napari_sigma.quant.absorption import (
    ABSORPTION_MODELS,
    XppDistribution,
    absorption_factor,
    bulk_absorption,
    bulk_absorption_lines,
    lenard_sigma,
    thin_film_absorption,
    xpp_absorption_factor,
    xpp_distribution,
)
from napari_sigma.quant.atomic import (
    BOHR_RADIUS_CM,
    ELECTRON_REST_KEV,
    LEVEL_ELECTRONS,
    RYDBERG_KEV,
    SHELL_LEVELS,
    Composition,
    atomic_number,
    atomic_weight,
    edge_energy,
    fluorescence_yield,
    jump_ratio,
    line_fraction,
    mean_atomic_number,
    shell_lines,
)
from napari_sigma.quant.attenuation import (
    mass_attenuation,
)
from napari_sigma.quant.cross_sections import (
    BOTE_SALVAT_FILE,
    BOTE_SALVAT_SPLIT,
    FAMILY_LINES,
    bote_salvat_cross_section,
    coster_kronig_probability,
    emission_cross_section,
    has_bote_salvat,
    ionisation_cross_section,
    level_branching,
    level_vacancies,
    line_cross_section,
    line_level,
)
from napari_sigma.quant.detector import (
    FILM_DENSITY,
    WINDOWLESS,
    Detector,
    detector_efficiency,
    detector_from_metadata,
    takeoff_angle,
)
from napari_sigma.quant.fluorescence import (
    FLUORESCENCE_PROBABILITY,
    fluorescence_ratio,
    fluorescence_ratios,
)
from napari_sigma.quant.generation import (
    backscatter_coefficient,
    backscatter_factor,
    emissions_per_electron,
    emissions_per_electron_lines,
    mean_ionisation_potential,
    stopping_power,
)
from napari_sigma.xray.lines import XrayLine

__all__ = [
    "ABSORPTION_MODELS",
    "BOHR_RADIUS_CM",
    "BOTE_SALVAT_FILE",
    "BOTE_SALVAT_SPLIT",
    "ELECTRON_REST_KEV",
    "FAMILY_LINES",
    "FILM_DENSITY",
    "FLUORESCENCE_PROBABILITY",
    "LEVEL_ELECTRONS",
    "RYDBERG_KEV",
    "SHELL_LEVELS",
    "WINDOWLESS",
    "Composition",
    "Detector",
    "XppDistribution",
    "absorption_factor",
    "atomic_number",
    "atomic_weight",
    "backscatter_coefficient",
    "backscatter_factor",
    "bote_salvat_cross_section",
    "bulk_absorption",
    "bulk_absorption_lines",
    "bulk_detected_lines",
    "coster_kronig_probability",
    "detected_lines",
    "detector_efficiency",
    "detector_from_metadata",
    "edge_energy",
    "emission_cross_section",
    "emissions_per_electron",
    "emissions_per_electron_lines",
    "fluorescence_ratio",
    "fluorescence_ratios",
    "fluorescence_yield",
    "has_bote_salvat",
    "ionisation_cross_section",
    "jump_ratio",
    "lenard_sigma",
    "level_branching",
    "level_vacancies",
    "line_cross_section",
    "line_fraction",
    "line_level",
    "mass_attenuation",
    "mean_atomic_number",
    "mean_ionisation_potential",
    "shell_lines",
    "stopping_power",
    "takeoff_angle",
    "thin_film_absorption",
    "xpp_absorption_factor",
    "xpp_distribution",
]


def detected_lines(
    lines: tuple[XrayLine, ...] | list[XrayLine],
    composition: Composition,
    beam_kev: float,
    takeoff_deg: float,
    detector: Detector,
    thin: bool = False,
    mass_thickness: float = 0.0,
    absorption: str = "xpp",
    fluorescence: Mapping | None = None,
) -> np.ndarray:
    """Detected counts of each of one element's ``lines`` per unit mass fraction (up to a
    constant common to every element and line of a spectrum).

    Thin foil: ``sigma_line(E0) / A * f_abs * eps`` with the production cross-section
    (`line_cross_section`), the foil's escape fraction (`thin_film_absorption` at
    ``mass_thickness``; 1 when it is 0) and the detector efficiency ``eps``. Bulk:
    ``n_line * f(chi) * (1 + F) * eps`` with the generation per electron of the PAP model
    (`emissions_per_electron`), the bulk escape of the line's own shell (`bulk_absorption`:
    XPP or PDH) and Reed's fluorescence ratio ``F`` (`fluorescence_ratio`; taken from
    ``fluorescence[line]`` when given). Lines of different shells of one element (a tied L shell
    fitted with the K lines, :func:`napari_sigma.xray.lines.is_tied`) each use their own
    shell's cross-section, depth distribution and absorption.
    """
    values = np.zeros(len(lines))
    if not lines:
        return values
    element = lines[0].element
    if not thin and _plain_numbers(composition, beam_kev, takeoff_deg):
        if fluorescence is not None and all(line in fluorescence for line in lines):
            ratios = np.array([fluorescence[line] for line in lines], dtype=np.float64)
        else:
            ratios = fluorescence_ratios(composition, tuple(lines), beam_kev, takeoff_deg)
            for i, line in enumerate(lines):
                if fluorescence is not None and line in fluorescence:
                    ratios[i] = fluorescence[line]
        return bulk_detected_lines(lines, composition, beam_kev, takeoff_deg, detector,
                                   absorption, ratios)  # fmt: skip
    if thin:
        for i, line in enumerate(lines):
            absorbed = thin_film_absorption(composition, line.energy, mass_thickness, takeoff_deg)
            eff = detector_efficiency(detector, line.energy)
            values[i] = line_cross_section(line, beam_kev) * absorbed * eff
        return values / atomic_weight(element) * 1e22
    # fractions as arrays: each term of each line on its own (the general, uncached path)
    for shell in dict.fromkeys(line.shell for line in lines):
        index = [i for i, line in enumerate(lines) if line.shell == shell]
        energies = np.array([lines[i].energy for i in index])
        escape = np.atleast_1d(
            bulk_absorption(
                absorption, composition, element, shell, energies, beam_kev, takeoff_deg
            )
        )
        for i, f_chi in zip(index, escape, strict=True):
            line = lines[i]
            if fluorescence is not None and line in fluorescence:
                ratio = fluorescence[line]
            else:
                ratio = fluorescence_ratio(composition, line, beam_kev, takeoff_deg)
            eff = detector_efficiency(detector, line.energy)
            generated = emissions_per_electron(composition, element, shell, beam_kev, line=line)
            values[i] = generated * f_chi * (1.0 + ratio) * eff
    return values


def bulk_detected_lines(
    lines: tuple[XrayLine, ...] | list[XrayLine],
    composition: Composition,
    beam_kev: float,
    takeoff_deg: float,
    detector: Detector,
    absorption: str = "xpp",
    fluorescence: np.ndarray | None = None,
) -> np.ndarray:
    """`detected_lines` of a bulk sample for ``lines`` of any elements and shells at once:
    ``n_line * f(chi) * (1 + F) * eps`` of each line, every term in array operations over the
    lines (`emissions_per_electron_lines`, `bulk_absorption_lines`, `fluorescence_ratios`,
    the detector efficiency of each line's energy), the fractions plain numbers.
    ``fluorescence``: each line's ratio F (computed when None).

    Each line's value is the same product of the same terms as one element's `detected_lines`
    had computed them one line at a time; only XPP's powers and exponentials of several shells
    in one array may differ from the one-shell form in the last bit (numpy's vector routines).
    """
    lines = tuple(lines)
    generated = emissions_per_electron_lines(composition, lines, beam_kev)
    escape = bulk_absorption_lines(absorption, composition, lines, beam_kev, takeoff_deg)
    if fluorescence is None:
        fluorescence = fluorescence_ratios(composition, lines, beam_kev, takeoff_deg)
    return generated * escape * (1.0 + fluorescence) * _efficiencies(detector, lines)


def _efficiencies(detector: Detector, lines: tuple[XrayLine, ...]) -> np.ndarray:
    """`detector_efficiency` at each line's energy (cached per detector and lines)."""
    try:
        return _efficiencies_cached(detector, lines)
    except TypeError:  # a detector that cannot be a key: not cached
        return np.array([detector_efficiency(detector, line.energy) for line in lines])


@lru_cache(maxsize=1024)
def _efficiencies_cached(detector: Detector, lines: tuple[XrayLine, ...]) -> np.ndarray:
    found = np.array([detector_efficiency(detector, line.energy) for line in lines])
    found.setflags(write=False)
    return found


_NUMBERS = (float, int, np.float64)


def _plain_numbers(composition: Composition, *values) -> bool:
    """Whether the fractions and ``values`` are numbers (not arrays): `bulk_detected_lines`'s
    array operations run over the lines."""
    return all(type(v) in _NUMBERS for v in (*composition.values(), *values))
