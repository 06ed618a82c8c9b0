"""Characteristic fluorescence: S. J. B. Reed, *Brit. J. Appl. Phys.* 16, 913 (1965), eq. 10."""

from __future__ import annotations

import numpy as np

from napari_sigma.quant.absorption import lenard_sigma
from napari_sigma.quant.atomic import (
    Composition,
    atomic_weight,
    edge_energy,
    fluorescence_yield,
    jump_ratio,
    line_fraction,
    shell_lines,
)
from napari_sigma.quant.attenuation import mass_attenuation
from napari_sigma.xray.lines import XrayLine

FLUORESCENCE_PROBABILITY = {("K", "K"): 1.0, ("L", "L"): 1.0, ("L", "K"): 0.24, ("K", "L"): 4.2}
"""Reed (1965)'s P_ij for (exciting line's shell, excited shell)."""


def fluorescence_ratio(
    composition: Composition, line: XrayLine, beam_kev: float, takeoff_deg: float
) -> float:
    """Characteristic fluorescence of ``line`` by the other elements' lines, over its direct intensity.

    Reed (1965), eq. 10, summed over every exciting line B (energy above the edge of ``line``):
    ``I_f/I_A = 0.5 P C_B (r-1)/r omega_B p_B (A_A/A_B) ((U_B-1)/(U_A-1))^1.67
    (mu_A(E_B)/mu(E_B)) [ln(1+u)/u + ln(1+v)/v]`` with ``u = mu(E_A) csc(psi) / mu(E_B)`` and
    ``v = sigma / mu(E_B)``.
    """
    element, shell = line.element, line.shell
    ec_a = edge_energy(element, shell)
    u_a = beam_kev / ec_a
    if u_a <= 1.0 or (shell not in ("K", "L")):
        return 0.0
    r = jump_ratio(element, shell)
    mu_line = float(mass_attenuation(composition, line.energy))
    chi_a = mu_line / np.sin(np.radians(takeoff_deg))
    sigma = float(lenard_sigma(beam_kev, ec_a))
    total = 0.0
    from napari_sigma.xray.lines import ELEMENTS

    for other, c_b in composition.items():
        if other == element or c_b <= 0 or other not in ELEMENTS:
            continue
        for shell_b in ("K", "L"):
            p = FLUORESCENCE_PROBABILITY.get((shell_b, shell))
            if p is None:
                continue
            try:
                ec_b = edge_energy(other, shell_b)
            except ValueError:
                continue
            if beam_kev <= ec_b:
                continue
            omega_b = fluorescence_yield(other, shell_b)
            for line_b in shell_lines(other, shell_b):
                if line_b.energy <= ec_a:
                    continue
                mu_b = float(mass_attenuation(composition, line_b.energy))
                mu_ab = float(mass_attenuation(element, line_b.energy))
                u, v = chi_a / mu_b, sigma / mu_b
                total += (
                    0.5
                    * p
                    * c_b
                    * (r - 1)
                    / r
                    * omega_b
                    * line_fraction(line_b)
                    * atomic_weight(element)
                    / atomic_weight(other)
                    * ((beam_kev / ec_b - 1) / (u_a - 1)) ** 1.67
                    * mu_ab
                    / mu_b
                    * (np.log1p(u) / u + np.log1p(v) / v)
                )
    return float(total)
