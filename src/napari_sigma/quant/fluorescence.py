"""Characteristic fluorescence: S. J. B. Reed, *Brit. J. Appl. Phys.* 16, 913 (1965), eq. 10."""

from __future__ import annotations

from dataclasses import dataclass
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
from napari_sigma.quant.attenuation import mass_attenuation, mixture_mu_energies, mixture_mu_items
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


def fluorescence_ratios(
    composition: Composition, lines: tuple[XrayLine, ...], beam_kev: float, takeoff_deg: float
) -> np.ndarray:
    """`fluorescence_ratio` of each of ``lines``, in array operations over the lines.

    Reed (1965), eq. 10, as there: every term of every line at once (`_ExcitingTerms`, the
    composition's elements' exciting lines of each line, cached), with the same element-wise
    arithmetic in the same order; each line's terms are summed in their order there (the
    composition's elements, then each one's exciting lines), a term whose element has no mass
    (or a slot a line with fewer terms leaves free) adding exactly 0. So each ratio is the
    same double as `fluorescence_ratio`'s.
    """
    items = tuple(composition.items())
    table = _exciting_terms(lines, tuple(el for el, _ in items), float(beam_kev), takeoff_deg)
    ratios = np.zeros(len(lines))
    if table is None:
        return ratios
    mu_line = mixture_mu_energies(items, table.line_energies)[table.rows]
    mu_b = mixture_mu_energies(items, table.energies)[table.energy_index]
    c_b = np.array([c for _, c in items], dtype=np.float64)[table.element_index]
    active = (c_b > 0) & (table.p > 0)  # an element without mass, a free slot: no term
    with np.errstate(divide="ignore", invalid="ignore"):  # (those of a matrix without mass)
        chi_a = (mu_line / table.sin_takeoff)[:, None]
        u, v = chi_a / mu_b, table.sigma[:, None] / mu_b
        log_u, log_v = np.log1p(u), np.log1p(v)
        r = table.jump[:, None]
        terms = (
            0.5 * table.p * c_b * (r - 1) / r * table.omega_b * table.fraction * table.a_a
            / table.a_b * table.overvoltage * table.mu_ab / mu_b * (log_u / u + log_v / v)
        )  # fmt: skip
    terms = np.where(active, terms, 0.0)
    total = np.zeros(table.rows.size)
    for column in terms.T:  # each line's terms in order, the same sums as one line's loop
        total = total + column
    ratios[table.rows] = total
    return ratios


@dataclass(frozen=True)
class _ExcitingTerms:
    """The factors of `fluorescence_ratio`'s terms that do not depend on the fractions, for a
    set of lines in a matrix of given elements: one row per line that fluorescence can excite
    (``rows``: their index among the lines), one column per term in the order of the sum, free
    slots with ``p = 0``. ``line_energies`` and ``energies``: the keys (keV, rounded as
    `mixture_mu_items` rounds them) of mu(E_A) of every line and mu(E_B) of the exciting lines;
    ``energy_index``/``element_index``: each term's E_B and element B among them."""

    rows: np.ndarray
    line_energies: tuple
    energies: tuple
    energy_index: np.ndarray
    element_index: np.ndarray
    jump: np.ndarray
    sigma: np.ndarray
    sin_takeoff: float
    p: np.ndarray
    omega_b: np.ndarray
    fraction: np.ndarray
    a_a: np.ndarray
    a_b: np.ndarray
    overvoltage: np.ndarray
    mu_ab: np.ndarray


@lru_cache(maxsize=1024)
def _exciting_terms(
    lines: tuple, elements: tuple, beam_kev: float, takeoff_deg
) -> _ExcitingTerms | None:
    found = [(i, _exciting_row(line, elements, beam_kev)) for i, line in enumerate(lines)]
    found = [(i, row) for i, row in found if row is not None]
    if not found:
        return None
    index_of: dict[float, int] = {}  # the exciting lines' energies (keys), each once
    for _, row in found:
        for key in row[3]:
            index_of.setdefault(key, len(index_of))
    shape = (len(found), max(row[2].shape[1] for _, row in found))
    columns = np.zeros((8, *shape))
    columns[3:5] = 1.0  # a free slot: P = 0, A_A = A_B = 1 (a term of exactly 0)
    energy_index = np.zeros(shape, dtype=np.intp)
    element_index = np.zeros(shape, dtype=np.intp)
    for r, (_, (_, _, factors, keys, others)) in enumerate(found):
        columns[:, r, : len(keys)] = factors
        energy_index[r, : len(keys)] = [index_of[key] for key in keys]
        element_index[r, : len(keys)] = others
    return _ExcitingTerms(
        np.array([i for i, _ in found]), tuple(round(float(line.energy), 6) for line in lines),
        tuple(index_of), energy_index, element_index, np.array([row[0] for _, row in found]),
        np.array([row[1] for _, row in found]), _sin_degrees(takeoff_deg), columns[0],
        columns[1], columns[2], columns[3], columns[4], columns[5], columns[7],
    )  # fmt: skip


@lru_cache(maxsize=8192)
def _exciting_row(line: XrayLine, elements: tuple, beam_kev: float) -> tuple | None:
    """One line's terms of `fluorescence_ratio` in a matrix of ``elements``, in the order of
    its sum: ``(r, sigma, factors (8, n), E_B keys, element indices)``, or None when nothing
    excites it."""
    element, shell = line.element, line.shell
    ec_a = edge_energy(element, shell)
    if beam_kev / ec_a <= 1.0 or shell not in ("K", "L"):
        return None
    terms = [
        (k, term)
        for k, other in enumerate(elements)
        if other != element
        for term in _exciters(element, shell, other, beam_kev)
    ]
    if not terms:
        return None
    factors = np.array([t for _, t in terms]).T
    keys = tuple(round(float(t[6]), 6) for _, t in terms)
    others = np.array([k for k, _ in terms], dtype=np.intp)
    return jump_ratio(element, shell), float(_lenard(beam_kev, ec_a)), factors, keys, others
