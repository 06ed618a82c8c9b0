"""Electron-impact ionisation and X-ray production cross-sections (cm^2) of the K, L and M
shells.

- Ionisation of the K shell: G. Casnati, A. Tartari and C. Baraldi, *J. Phys. B* 15, 155
  (1982), with its relativistic factor (eq. 4 and 5); of the L1-L3, M4 and M5 levels, the
  analytical formulas of D. Bote, F. Salvat, A. Jablonski and C. J. Powell, *At. Data Nucl.
  Data Tables* 95, 871 (2009), with their parameters (``quant/data/bote_salvat_2009.csv``, see
  `bote_salvat_cross_section`).
- L-subshell vacancies after Coster-Kronig transfers: W. Bambynek et al., *Rev. Mod. Phys.* 44,
  716 (1972), sec. I.C, with the f_ij and subshell yields of M. O. Krause, *J. Phys. Chem. Ref.
  Data* 8, 307 (1979) as tabulated by xraydb, and each family's radiative branching within its
  level from the same database.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from napari_sigma.quant.atomic import (
    BOHR_RADIUS_CM,
    ELECTRON_REST_KEV,
    LEVEL_ELECTRONS,
    RYDBERG_KEV,
    SHELL_LEVELS,
    _has,
    atomic_number,
    edge_energy,
    fluorescence_yield,
    line_fraction,
)
from napari_sigma.xray.lines import XrayLine
from napari_sigma.xray.yields import SHELL_EDGE

BOTE_SALVAT_FILE = Path(__file__).with_name("data") / "bote_salvat_2009.csv"
BOTE_SALVAT_SPLIT = 16.0
"""The overvoltage above which Bote et al. (2009)'s high-energy formula replaces the low-energy
one."""


@lru_cache(maxsize=1)
def _bote_salvat_parameters() -> dict[tuple[int, str], tuple[float, ...]]:
    """``(Z, level) -> (edge_kev, b, A_nlj, g1..g4, a1..a5)`` from :data:`BOTE_SALVAT_FILE`."""
    import csv

    with open(BOTE_SALVAT_FILE, newline="") as handle:
        rows = csv.DictReader(line for line in handle if not line.startswith("#"))
        table = {}
        for row in rows:
            numbers = [float(row[k]) for k in ("edge_ev", "b", "a_nlj", "g1", "g2", "g3", "g4",
                                               "a1", "a2", "a3", "a4", "a5")]  # fmt: skip
            numbers[0] /= 1000.0  # eV -> keV
            table[(int(row["z"]), row["level"])] = tuple(numbers)
    return table


def has_bote_salvat(element: str, level: str) -> bool:
    """Whether `bote_salvat_cross_section` has the parameters of this level (L1-L3 from Z = 12,
    M4 and M5 from Z = 33, up to Z = 92)."""
    return (atomic_number(element), level) in _bote_salvat_parameters()


def bote_salvat_cross_section(
    element: str, level: str, energy_kev, edge_kev: float | None = None
) -> np.ndarray | float:
    """Electron-impact ionisation cross-section (cm^2) of an L1-L3, M4 or M5 level: the analytical
    formulas of Bote, Salvat, Jablonski & Powell (2009), fitted to their distorted-wave and
    plane-wave Born calculations (within about 1 % except near threshold).

    With ``U = E / E_i``, for ``U <= 16``::

        sigma = 4 pi a0^2 (U - 1) / U^2 [a1 + a2 U + a3/(1+U) + a4/(1+U)^3 + a5/(1+U)^5]^2

    and above (``X = sqrt(E (E + 2 m c^2)) / m c^2``, ``beta^2 = X^2 / (1 + X^2)``)::

        sigma = 4 pi a0^2 (A_nlj / beta^2) U / (U + b)
                [(ln X^2 - beta^2)(1 + g1/X) + g2 + g3 (1 - beta^2)^(1/4) + g4/X]

    with the paper's parameters of each element and level (a1-a5, b, A_nlj, g1-g4; typed into
    ``quant/data/bote_salvat_2009.csv`` with the source). ``edge_kev``: the ionisation energy
    ``E_i`` (default: the edge of :func:`edge_energy`, as for every other term of the
    quantification; the paper's own ``E_i`` differ by up to 5 % for the L levels from Z = 22, more
    for the M levels of the lightest elements). 0 below the edge.
    """
    params = _bote_salvat_parameters()[(atomic_number(element), level)]
    _, b, a_nlj, g1, g2, g3, g4, a1, a2, a3, a4, a5 = params
    ei = edge_energy(element, level) if edge_kev is None else float(edge_kev)
    energy = np.asarray(energy_kev, dtype=np.float64)
    u = energy / ei
    above = u > 1.0
    u = np.where(above, u, 2.0)
    energy = np.where(above, energy, 2.0 * ei)
    inv = 1.0 / (1.0 + u)
    fit = a1 + a2 * u + inv * (a3 + inv**2 * (a4 + inv**2 * a5))
    low = (u - 1.0) / u**2 * fit**2
    x2 = energy * (energy + 2.0 * ELECTRON_REST_KEV) / ELECTRON_REST_KEV**2
    x = np.sqrt(x2)
    beta2 = x2 / (1.0 + x2)
    bracket = (np.log(x2) - beta2) * (1.0 + g1 / x) + g2 + g3 * (1.0 - beta2) ** 0.25 + g4 / x
    high = a_nlj / beta2 * u / (u + b) * bracket
    sigma = 4.0 * np.pi * BOHR_RADIUS_CM**2 * np.where(u <= BOTE_SALVAT_SPLIT, low, high)
    sigma = np.where(above, sigma, 0.0)
    return float(sigma) if sigma.ndim == 0 else sigma


def ionisation_cross_section(element: str, level: str, energy_kev) -> np.ndarray | float:
    """Electron-impact ionisation cross-section (cm^2) of a level (K, L1-L3, M4, M5; a shell
    name K, L, M means its main level).

    L1-L3, M4 and M5: `bote_salvat_cross_section` (Bote et al. 2009) where it has the level's
    parameters. K, and the levels it has not: Casnati, Tartari & Baraldi (1982), eq. 4-5:
    ``sigma = n_s a0^2 (R/E_c)^2 psi(U) phi(U) ln(U) / U * f_r(U)`` with
    ``phi = 10.57 exp(-1.736/U + 0.317/U^2)``, ``psi = (E_c/R)^d``,
    ``d = -0.0318 + 0.3160/U - 0.1135/U^2`` and the relativistic factor
    ``f_r = (1+2J)/(U+2J) ((U+J)/(1+J))^2 [(1+U)(U+2J)(1+J)^2 / (J^2(1+2J) + U(U+2J)(1+J)^2)]^1.5``
    with ``J = m c^2 / E_c``. The fit is Casnati's for K shells; for an L or M level without
    Bote et al.'s parameters the same form is used with its electron count and edge (an
    approximation).
    """
    level = SHELL_EDGE.get(level, level) if level in ("L", "M") else level
    if level != "K" and has_bote_salvat(element, level):
        return bote_salvat_cross_section(element, level, energy_kev)
    ec = edge_energy(element, level)
    u = np.asarray(energy_kev, dtype=np.float64) / ec
    above = u > 1.0
    u = np.where(above, u, 2.0)
    j = ELECTRON_REST_KEV / ec
    phi = 10.57 * np.exp(-1.736 / u + 0.317 / u**2)
    d = -0.0318 + 0.3160 / u - 0.1135 / u**2
    psi = (ec / RYDBERG_KEV) ** d
    relativistic = (
        (1 + 2 * j)
        / (u + 2 * j)
        * ((u + j) / (1 + j)) ** 2
        * (
            (1 + u)
            * (u + 2 * j)
            * (1 + j) ** 2
            / (j**2 * (1 + 2 * j) + u * (u + 2 * j) * (1 + j) ** 2)
        )
        ** 1.5
    )
    sigma = (
        LEVEL_ELECTRONS[level]
        * BOHR_RADIUS_CM**2
        * (RYDBERG_KEV / ec) ** 2
        * psi
        * phi
        * np.log(u)
        / u
        * relativistic
    )
    sigma = np.where(above, sigma, 0.0)
    return float(sigma) if sigma.ndim == 0 else sigma


def emission_cross_section(element: str, shell: str, energy_kev) -> np.ndarray | float:
    """X-ray production cross-section (cm^2) of all the lines of a shell.

    ``sum_levels n_level(E) omega_level`` over the levels of :data:`SHELL_LEVELS`, with the
    vacancies ``n`` of `level_vacancies` (Coster-Kronig transfers between the L levels; none
    between M4 and M5). A line's own cross-section is `line_cross_section`.
    """
    vacancies = level_vacancies(element, shell, energy_kev)
    total = 0.0
    for level, n in vacancies.items():
        omega = fluorescence_yield(element, level)
        total = total + omega * np.asarray(n)
    return float(total) if np.ndim(total) == 0 else total


FAMILY_LINES: dict[str, tuple[str, ...]] = {
    "Ka": ("Ka1", "Ka2"),
    "Kb": ("Kb1", "Kb3", "Kb5"),
    "La": ("La1", "La2"),
    "Lb1": ("Lb1",),
    "Lb2": ("Lb2,15", "Lb2"),
    "Lb3": ("Lb3",),
    "Lb4": ("Lb4",),
    "Lg1": ("Lg1",),
    "Lg3": ("Lg3",),
    "Ll": ("Ll",),
    "Ln": ("Ln",),
    "Ma": ("Ma",),
    "Mb": ("Mb",),
    "Mg": ("Mg",),
    "Mz": ("Mz",),
}
"""xraydb (IUPAC/Siegbahn) lines of each family of the line table (HyperSpy naming); the table's
generator, scripts/generate_xray_table.py, groups xraydb's lines by this mapping."""


@lru_cache(maxsize=1024)
def coster_kronig_probability(element: str, initial: str, final: str) -> float:
    """Coster-Kronig probability f_ij of a direct transfer of a vacancy from level ``initial`` to
    the higher level ``final`` of the same shell (e.g. f13: ``"L1"``, ``"L3"``); xraydb's table
    (Elam, Ravel & Sieber 2002, after M. O. Krause, *J. Phys. Chem. Ref. Data* 8, 307, 1979).
    0 where not tabulated."""
    from napari_sigma.xray import xraydb_direct as xraydb

    try:
        return float(xraydb.ck_probability(element, initial, final, total=False))
    except (ValueError, KeyError):
        return 0.0


def level_vacancies(element: str, shell: str, energy_kev) -> dict[str, np.ndarray | float]:
    """Vacancies per atom (cm^2, per unit electron fluence) in each level of a shell after the
    Coster-Kronig transfers, from the direct ionisation cross-sections ``s_i``
    (`ionisation_cross_section`).

    L shell (vacancies move only towards higher levels, W. Bambynek et al., *Rev. Mod. Phys.* 44,
    716 (1972), sec. I.C; the same relations define their mean yields
    ``omega_L = sum_i N_i nu_i`` with ``nu_1 = omega_1 + f12 omega_2 + (f13 + f12 f23) omega_3``,
    ``nu_2 = omega_2 + f23 omega_3``, ``nu_3 = omega_3``)::

        n_1 = s_1
        n_2 = s_2 + f12 s_1
        n_3 = s_3 + f23 s_2 + (f13 + f12 f23) s_1

    so that ``sum_i n_i omega_i = sum_i s_i nu_i``. K: ``n_K = s_K``; M4, M5: no transfer.
    Levels the element lacks are left out.
    """
    s = {
        level: ionisation_cross_section(element, level, energy_kev)
        for level in SHELL_LEVELS[shell]
        if _has(element, level)
    }
    if shell != "L" or len(s) < 3:
        return s
    f12 = coster_kronig_probability(element, "L1", "L2")
    f13 = coster_kronig_probability(element, "L1", "L3")
    f23 = coster_kronig_probability(element, "L2", "L3")
    s1, s2, s3 = (np.asarray(s[level]) for level in ("L1", "L2", "L3"))
    n = {"L1": s1, "L2": s2 + f12 * s1, "L3": s3 + f23 * s2 + (f13 + f12 * f23) * s1}
    return {level: float(v) if np.ndim(v) == 0 else v for level, v in n.items()}


@lru_cache(maxsize=4096)
def line_level(line: XrayLine) -> str:
    """The initial level of a line family: K, the L level whose edge is the family's edge in
    the line table, or the M shell's main level (M5)."""
    if line.shell != "L":
        return SHELL_EDGE[line.shell]
    levels = [level for level in SHELL_LEVELS["L"] if _has(line.element, level)]
    return min(levels, key=lambda level: abs(edge_energy(line.element, level) - line.edge))


@lru_cache(maxsize=4096)
def level_branching(line: XrayLine) -> float:
    """Radiative branching ratio of an L family within its initial level: the sum of xraydb's
    intensities of its lines (Elam et al. 2002: each level's X-ray lines sum to 1)."""
    from napari_sigma.xray import xraydb_direct as xraydb

    level = line_level(line)
    names = FAMILY_LINES.get(line.family, (line.family,))
    return float(
        sum(
            entry.intensity
            for name, entry in xraydb.xray_lines(line.element).items()
            if name in names and entry.initial_level == level
        )
    )


def line_cross_section(line: XrayLine, energy_kev) -> np.ndarray | float:
    """X-ray production cross-section (cm^2) of one line family.

    L families: ``n_level(E) omega_level b_line`` with the Coster-Kronig-corrected vacancies
    of `level_vacancies`, the level's fluorescence yield and the family's radiative branching
    within its level (`level_branching`). K and M families: the shell's
    `emission_cross_section` times the family's share of the shell (`line_fraction`).
    """
    if line.shell != "L" or not _has(line.element, line_level(line)):
        return emission_cross_section(line.element, line.shell, energy_kev) * line_fraction(line)
    level = line_level(line)
    n = level_vacancies(line.element, "L", energy_kev)[level]
    return fluorescence_yield(line.element, level) * level_branching(line) * n
