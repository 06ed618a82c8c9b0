"""X-ray generation in a bulk sample: the electron stopping power, mean ionisation potential and
backscatter factor of J.-L. Pouchou and F. Pichoir, "Quantitative analysis of homogeneous or
stratified microvolumes applying the model PAP", in *Electron Probe Quantitation*, K. F. J.
Heinrich and D. E. Newbury (eds.), Plenum (1991), pp. 31-75 (eq. 5-8 for the stopping power,
eq. 13-16 for the backscatter factor), and the X-rays generated per electron (the atomic-number
correction of a ZAF analysis).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from napari_sigma.quant.atomic import (
    SHELL_LEVELS,
    Composition,
    _has,
    atomic_number,
    atomic_weight,
    edge_energy,
)
from napari_sigma.quant.cross_sections import (
    emission_cross_section,
    line_cross_section,
    line_level,
)
from napari_sigma.xray.lines import XrayLine


def by_composition(cached: Any, composition: Composition, *args: Any) -> Any:
    """``cached(items, *args)`` with a composition's items as the cache's key, or the function
    the cache wraps where a fraction cannot be a key (an array): not cached then."""
    items = tuple(composition.items())
    try:
        return cached(items, *args)
    except TypeError:
        return cached.__wrapped__(items, *args)


def mean_ionisation_potential(element: str) -> float:
    """Mean ionisation potential J (keV), Zeller's fit used by PAP (Pouchou & Pichoir 1991, eq. 6).

    ``J = Z (10.04 + 8.25 exp(-Z / 11.22))`` eV.
    """
    z = atomic_number(element)
    return z * (10.04 + 8.25 * np.exp(-z / 11.22)) * 1e-3


def stopping_power(composition: Composition, energy_kev) -> np.ndarray:
    """Electron stopping power -dE/d(rho s) in keV cm^2/g (Pouchou & Pichoir 1991, eq. 5-8).

    ``dE/d(rho s) = -(M / J) / f(V)`` with ``M = sum C Z/A``, ``ln J = sum (C Z/A) ln J_i / M``,
    ``V = E / J`` and ``f(V) = sum_k D_k V^P_k``: ``D = (6.6e-6, 1.12e-5 (1.35 - 0.45 J^2),
    2.2e-6 / J)``, ``P = (0.78, 0.1, -(0.5 - 0.25 J))`` with J in keV.
    """
    m, j = _pap_m_j(composition, positive=False)
    v = np.asarray(energy_kev, dtype=np.float64) / j
    d = (6.6e-6, 1.12e-5 * (1.35 - 0.45 * j**2), 2.2e-6 / j)
    p = (0.78, 0.1, -(0.5 - 0.25 * j))
    f = sum(dk * v**pk for dk, pk in zip(d, p, strict=True))
    return (m / j) / f


def _pap_m_j(composition: Composition, positive: bool) -> tuple[float, float]:
    """``M = sum C Z/A`` and the mean ionisation potential ``J`` (keV) of a composition
    (Pouchou & Pichoir 1991, eq. 5-6), over its elements (``positive``: those with C > 0);
    cached per composition, as each line of a ZAF iteration asks for the same."""
    return by_composition(_pap_m_j_cached, composition, positive)


@lru_cache(maxsize=8192)
def _pap_m_j_cached(items: tuple, positive: bool) -> tuple[float, float]:
    weights = {
        el: c * atomic_number(el) / atomic_weight(el) for el, c in items if c > 0 or not positive
    }
    m = sum(weights.values())
    j = float(np.exp(sum(w * _log_mean_ionisation_potential(el) for el, w in weights.items()) / m))
    return m, j


@lru_cache(maxsize=256)
def _log_mean_ionisation_potential(element: str):
    """``np.log(mean_ionisation_potential(element))`` (cached: every new composition asks)."""
    return np.log(mean_ionisation_potential(element))


def backscatter_coefficient(composition: Composition) -> float:
    """Mean backscatter coefficient eta (Pouchou & Pichoir 1991, eq. 13).

    ``eta = 1.75e-3 Zb + 0.37 (1 - exp(-0.015 Zb^1.3))`` with ``Zb = (sum C_i Z_i^0.5)^2``.
    """
    return by_composition(_backscatter_coefficient, composition)


@lru_cache(maxsize=8192)
def _backscatter_coefficient(items: tuple) -> float:
    """:func:`backscatter_coefficient` of a composition's items, in their order (cached: every
    line's phi(rho z) of one ZAF iteration asks for the same composition's)."""
    zb = sum(c * np.sqrt(atomic_number(el)) for el, c in items) ** 2
    return float(1.75e-3 * zb + 0.37 * (1.0 - np.exp(-0.015 * zb**1.3)))


def backscatter_factor(composition: Composition, overvoltage: float) -> float:
    """Fraction R of the ionisations kept despite backscattering (Pouchou & Pichoir 1991, eq. 14-16).

    ``R = 1 - eta W (1 - G(U0))`` with ``W = 0.595 + eta/3.7 + eta^4.55``,
    ``q = (2W - 1)/(1 - W)``, ``G = (U0 - 1 - (1 - U0^-(1+q))/(1+q)) / ((2+q) J(U0))`` and
    ``J(U0) = 1 + U0 (ln U0 - 1)``.
    """
    u0 = float(overvoltage)
    if u0 <= 1.0:
        return 1.0
    try:
        return _backscatter_factor(tuple(composition.items()), u0)
    except TypeError:  # a fraction that cannot be a key: not cached
        return _backscatter_factor_of(backscatter_coefficient(composition), u0)


@lru_cache(maxsize=16384)
def _backscatter_factor(items: tuple, u0: float) -> float:
    """:func:`backscatter_factor` of a composition's items at an overvoltage above 1 (cached:
    the lines of one shell, and its phi(rho z), ask for the same)."""
    return _backscatter_factor_of(_backscatter_coefficient(items), u0)


def _backscatter_factor_of(eta: float, u0: float) -> float:
    w = 0.595 + eta / 3.7 + eta**4.55
    q = (2 * w - 1) / (1 - w)
    ju = 1 + u0 * (np.log(u0) - 1)
    g = (u0 - 1 - (1 - u0 ** -(1 + q)) / (1 + q)) / ((2 + q) * ju)
    return float(1.0 - eta * w * (1.0 - g))


def emissions_per_electron(
    composition: Composition,
    element: str,
    shell: str,
    beam_kev: float,
    points: int = 96,
    line: XrayLine | None = None,
) -> float:
    """X-rays of a shell (or of one of its ``line`` families) generated per incident electron
    and unit mass fraction, over N_A.

    ``n = R(U0) / A * integral sigma_x(E) / (-dE/d(rho s)) dE`` from the lowest excited edge to
    E0 (the bulk generation of the PAP model, Pouchou & Pichoir 1991 eq. 3, with the
    cross-sections of `ionisation_cross_section`: `emission_cross_section`, or
    `line_cross_section` for one family, whose overvoltage is then that of its own initial
    level), on a logarithmic grid.
    """
    try:
        ec, grid = _generation_grid(element, shell, beam_kev, points, line)
    except TypeError:  # a beam energy that cannot be a key (an array): not cached
        ec, grid = _generation_grid.__wrapped__(element, shell, beam_kev, points, line)
    if grid is None:
        return 0.0
    energies, sigma, steps = grid
    # np.trapezoid(y, energies)'s arithmetic, with the grid's steps (np.diff) kept
    y = sigma / _grid_stopping_power(composition, energies)
    integral = float((steps * (y[1:] + y[:-1]) / 2.0).sum(-1))
    return backscatter_factor(composition, beam_kev / ec) * integral / atomic_weight(element)


def _grid_stopping_power(composition: Composition, energies: np.ndarray) -> np.ndarray:
    """`stopping_power` of ``composition`` on an integration grid of `emissions_per_electron`
    (cached per composition and grid values: every line of a shell has its shell's grid)."""
    try:
        return _grid_stopping_cached(tuple(composition.items()), energies.tobytes())
    except TypeError:  # a fraction that cannot be a key: not cached
        return stopping_power(composition, energies)


@lru_cache(maxsize=2048)
def _grid_stopping_cached(items: tuple, energies: bytes) -> np.ndarray:
    found = stopping_power(dict(items), np.frombuffer(energies, dtype=np.float64))
    found.setflags(write=False)
    return found


@lru_cache(maxsize=4096, typed=True)
def _generation_grid(element: str, shell: str, beam_kev, points: int, line: XrayLine | None):
    """The edge of `emissions_per_electron`'s lowest level and its integration grid: the
    energies, cross-sections and the energies' steps (None when the beam is below the edge)."""
    level = shell if line is None else line_level(line)
    ec = edge_energy(element, level)
    if beam_kev <= ec:
        return ec, None
    energies, sigma = _cross_section_grid(element, shell, float(beam_kev), points, line)
    return ec, (energies, sigma, np.diff(energies))


@lru_cache(maxsize=2048)
def _cross_section_grid(
    element: str, shell: str, beam_kev: float, points: int, line: XrayLine | None
) -> tuple[np.ndarray, np.ndarray]:
    low = min(edge_energy(element, lv) for lv in SHELL_LEVELS[shell] if _has(element, lv))
    energies = np.geomspace(low * (1 + 1e-6), beam_kev, points)
    if line is None:
        return energies, np.asarray(emission_cross_section(element, shell, energies))
    return energies, np.asarray(line_cross_section(line, energies))


def emissions_per_electron_lines(
    composition: Composition, lines: tuple[XrayLine, ...], beam_kev: float, points: int = 96
) -> np.ndarray:
    """`emissions_per_electron` of each of ``lines`` (each with its family's own level, of
    any elements and shells), in one array operation over the lines.

    The same terms as there, each the same element-wise expression on the same operands: the
    lines' integration grids stacked as rows (`_stacked_grids`, cached), the PAP stopping power
    of ``composition`` on all of them at once (`stopping_power` is element-wise), each row's
    trapezoid sum, and the backscatter factor of each line's overvoltage from the cached
    scalar function. 0 for a line whose level the beam does not excite.
    """
    grids = _stacked_grids(lines, float(beam_kev), points)
    values = np.zeros(len(lines))
    if grids is None:
        return values
    rows, edges, energies, sigma, steps, weights = grids
    y = sigma / stopping_power(composition, energies)
    integral = (steps * (y[:, 1:] + y[:, :-1]) / 2.0).sum(-1)
    items = tuple(composition.items())  # backscatter_factor's cached path, the items made once
    by_edge = {ec: _backscatter_factor(items, float(beam_kev / ec)) for ec in set(edges)}
    factor = np.array([by_edge[ec] for ec in edges])
    values[rows] = factor * integral / weights
    return values


@lru_cache(maxsize=1024)
def _stacked_grids(lines: tuple[XrayLine, ...], beam_kev: float, points: int):
    """The integration grids of `emissions_per_electron` of the ``lines`` the beam excites, as
    rows: ``(rows, edges, energies, cross-sections, steps, atomic weights)`` (read-only), or
    None when it excites none."""
    rows, edges, grids, weights = [], [], [], []
    for i, line in enumerate(lines):
        ec, grid = _generation_grid(line.element, line.shell, beam_kev, points, line)
        if grid is not None:
            rows.append(i)
            edges.append(ec)
            grids.append(grid)
            weights.append(atomic_weight(line.element))
    if not rows:
        return None
    stacked = (
        np.array(rows),
        tuple(edges),
        np.array([g[0] for g in grids]),
        np.array([g[1] for g in grids]),
        np.array([g[2] for g in grids]),
        np.array(weights),
    )
    for array in (stacked[0], *stacked[2:]):
        array.setflags(write=False)
    return stacked
