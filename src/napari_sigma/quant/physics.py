"""The physics of X-ray generation and detection used by the quantification: the namespace of
every physical term and the detected intensity of a line (`detected_lines`).

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

import numpy as np

from napari_sigma.quant.absorption import (
    ABSORPTION_MODELS,
    XppDistribution,
    absorption_factor,
    bulk_absorption,
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
)
from napari_sigma.quant.generation import (
    backscatter_coefficient,
    backscatter_factor,
    emissions_per_electron,
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
    "coster_kronig_probability",
    "detected_lines",
    "detector_efficiency",
    "detector_from_metadata",
    "edge_energy",
    "emission_cross_section",
    "emissions_per_electron",
    "fluorescence_ratio",
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
    if thin:
        for i, line in enumerate(lines):
            absorbed = thin_film_absorption(composition, line.energy, mass_thickness, takeoff_deg)
            eff = detector_efficiency(detector, line.energy)
            values[i] = line_cross_section(line, beam_kev) * absorbed * eff
        return values / atomic_weight(element) * 1e22
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
