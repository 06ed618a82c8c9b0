"""Characteristic fluorescence: S. J. B. Reed, *Brit. J. Appl. Phys.* 16, 913 (1965), eq. 10."""

from __future__ import annotations

from functools import lru_cache

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
from napari_sigma.quant.attenuation import mass_attenuation, mixture_mu_items
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
    items = tuple(composition.items())
    mu_line = float(mixture_mu_items(items, line.energy))
    try:
        chi_a = mu_line / _sin_degrees(takeoff_deg)
        sigma = float(_lenard(beam_kev, ec_a))
        exciters = _exciters
    except TypeError:  # an argument that cannot be a key (an array): not cached
        chi_a = mu_line / np.sin(np.radians(takeoff_deg))
        sigma = float(lenard_sigma(beam_kev, ec_a))
        exciters = _exciters.__wrapped__
    terms = []
    for other, c_b in items:
        if other == element or c_b <= 0:
            continue
        # the factors of every line of `other` exciting `line` that do not depend on the
        # composition, in the order and with the arithmetic of the sum below (cached)
        for p, omega_b, fraction, a_a, a_b, overvoltage, energy_b, mu_ab in exciters(
            element, shell, other, beam_kev
        ):
            mu_b = float(mixture_mu_items(items, energy_b))
            u, v = chi_a / mu_b, sigma / mu_b
            terms.append((p, c_b, omega_b, fraction, a_a, a_b, overvoltage, mu_ab, mu_b, u, v))
    if not terms:
        return 0.0
    # ln(1 + u) and ln(1 + v) of every term in one call each (numpy's log1p of each element is
    # the one of the element alone); the terms are summed in order as before
    if np.ndim(chi_a) == 0:
        logs = np.log1p(np.array([(t[9], t[10]) for t in terms]))
    else:  # take-off angles as an array: each term's own
        logs = [(np.log1p(t[9]), np.log1p(t[10])) for t in terms]
    total = 0.0
    for (p, c_b, omega_b, fraction, a_a, a_b, overvoltage, mu_ab, mu_b, u, v), (
        log_u,
        log_v,
    ) in zip(terms, logs, strict=True):
        total += (
            0.5
            * p
            * c_b
            * (r - 1)
            / r
            * omega_b
            * fraction
            * a_a
            / a_b
            * overvoltage
            * mu_ab
            / mu_b
            * (log_u / u + log_v / v)
        )
    return float(total)


@lru_cache(maxsize=1024, typed=True)
def _sin_degrees(angle_deg):
    """``np.sin(np.radians(angle_deg))`` (cached: the take-off angle of every call)."""
    return np.sin(np.radians(angle_deg))


@lru_cache(maxsize=4096, typed=True)
def _lenard(beam_kev, edge_kev):
    """:func:`~napari_sigma.quant.absorption.lenard_sigma` (cached per beam and edge)."""
    return lenard_sigma(beam_kev, edge_kev)


@lru_cache(maxsize=16384, typed=True)
def _exciters(element: str, shell: str, other: str, beam_kev) -> tuple[tuple, ...]:
    """The lines of ``other`` that excite ``element``'s ``shell`` at ``beam_kev``: for each, in
    the order :func:`fluorescence_ratio` sums them, ``(P, omega_B, p_B, A_A, A_B,
    ((U_B-1)/(U_A-1))^1.67, E_B, mu_A(E_B))`` (Reed 1965, eq. 10's factors that do not depend
    on the composition)."""
    from napari_sigma.xray.lines import ELEMENTS

    if other not in ELEMENTS:
        return ()
    ec_a = edge_energy(element, shell)
    u_a = beam_kev / ec_a
    terms = []
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
            terms.append((
                p, omega_b, line_fraction(line_b), atomic_weight(element), atomic_weight(other),
                ((beam_kev / ec_b - 1) / (u_a - 1)) ** 1.67, line_b.energy,
                float(mass_attenuation(element, line_b.energy)),
            ))  # fmt: skip
    return tuple(terms)
