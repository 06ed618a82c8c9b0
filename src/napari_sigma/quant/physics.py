"""The physics of X-ray generation and detection used by the quantification.

Every term is a published model; each function names its source (paper and equation):

- atomic data: atomic weights, edge energies, fluorescence yields and jump ratios, and mass
  attenuation coefficients from xraydb, which tabulates W. T. Elam, B. D. Ravel and
  J. R. Sieber, *Radiat. Phys. Chem.* 63, 121 (2002); relative line intensities from the
  project's line table (``napari_sigma.xray.lines``, built from the same database);
- inner-shell ionisation cross-sections: of the K shell, G. Casnati, A. Tartari and C. Baraldi,
  *J. Phys. B* 15, 155 (1982), with its relativistic factor (eq. 4 and 5 of the paper); of the
  L1-L3, M4 and M5 levels, the analytical formulas of D. Bote, F. Salvat, A. Jablonski and
  C. J. Powell, *At. Data Nucl. Data Tables* 95, 871 (2009), with their parameters
  (``quant/data/bote_salvat_2009.csv``, see `bote_salvat_cross_section`);
- L-subshell vacancies after Coster-Kronig transfers: W. Bambynek et al., *Rev. Mod. Phys.* 44,
  716 (1972), sec. I.C, with the f_ij and subshell yields of M. O. Krause, *J. Phys. Chem. Ref.
  Data* 8, 307 (1979) as tabulated by xraydb, and each family's radiative branching within its
  level from the same database;
- electron stopping power, mean ionisation potential and backscatter factor: J.-L. Pouchou and
  F. Pichoir, "Quantitative analysis of homogeneous or stratified microvolumes applying the model
  PAP", in *Electron Probe Quantitation*, K. F. J. Heinrich and D. E. Newbury (eds.), Plenum
  (1991), pp. 31-75 (eq. 5-8 for the stopping power, eq. 13-16 for the backscatter factor);
- absorption of bulk samples: the XPP phi(rho z) of Pouchou & Pichoir (1991, same chapter:
  eq. 8-10 and 13 for the area F, eq. 28-29 and appendices 1, 2 and 4 for the shape), the
  default; or the Philibert-Duncumb-Heinrich f(chi) with Heinrich's sigma, K. F. J. Heinrich,
  *Electron Beam X-ray Microanalysis*, Van Nostrand (1981), eq. 10.29-10.31;
- characteristic fluorescence: S. J. B. Reed, *Brit. J. Appl. Phys.* 16, 913 (1965), eq. 10;
- absorption in a thin foil: the exponential escape average of Z. Horita, T. Sano and
  M. Nemoto, *Ultramicroscopy* 21, 271 (1987), eq. 2 (also Williams & Carter, *Transmission
  Electron Microscopy*, eq. 35.13);
- detector efficiency: transmission of the window and dead layer times absorption in the
  crystal (Beer-Lambert with Elam's coefficients), e.g. Goldstein et al., *Scanning Electron
  Microscopy and X-ray Microanalysis*, 4th ed. (2018), ch. 16.

Energies are in keV, mass attenuation in cm^2/g, cross-sections in cm^2.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from napari_sigma.xray import yields
from napari_sigma.xray.lines import XrayLine, element_lines
from napari_sigma.xray.yields import SHELL_EDGE

BOHR_RADIUS_CM = 0.529177e-8
RYDBERG_KEV = 13.6057e-3
ELECTRON_REST_KEV = 510.999
LEVEL_ELECTRONS = {"K": 2, "L1": 2, "L2": 2, "L3": 4, "M4": 4, "M5": 6}
"""Electrons of each level (Casnati's n_s)."""
SHELL_LEVELS = {"K": ("K",), "L": ("L1", "L2", "L3"), "M": ("M4", "M5")}
"""The levels whose vacancies feed a shell's lines (M1-M3 lines are negligible in EDS)."""
FLUORESCENCE_PROBABILITY = {("K", "K"): 1.0, ("L", "L"): 1.0, ("L", "K"): 0.24, ("K", "L"): 4.2}
"""Reed (1965)'s P_ij for (exciting line's shell, excited shell)."""

Composition = Mapping[str, float]


# ------------------------------------------------------------------------------- atomic data


@lru_cache(maxsize=256)
def atomic_number(element: str) -> int:
    """Atomic number Z (xraydb)."""
    import xraydb

    return int(xraydb.atomic_number(element))


@lru_cache(maxsize=256)
def atomic_weight(element: str) -> float:
    """Standard atomic weight in g/mol (xraydb)."""
    import xraydb

    return float(xraydb.atomic_mass(element))


@lru_cache(maxsize=1024)
def _edge(element: str, shell: str):
    import xraydb

    level = SHELL_EDGE.get(shell, shell)
    edge = xraydb.xray_edges(element).get(level)
    if edge is None:
        raise ValueError(f"{element} has no {level} edge")
    return edge


def edge_energy(element: str, shell: str) -> float:
    """Ionisation energy (keV) of a level (``"L2"``) or of a shell's main level (K, L3, M5)
    (Elam et al. 2002)."""
    return float(_edge(element, shell).energy) / 1000.0


def fluorescence_yield(element: str, shell: str) -> float:
    """Fluorescence yield omega of a level or of a shell's main level (K, L3, M5)
    (:func:`napari_sigma.xray.yields.fluorescence_yield`); raises for an element without it."""
    _edge(element, shell)  # raises for an element without this level
    return yields.fluorescence_yield(element, shell)


def jump_ratio(element: str, shell: str) -> float:
    """Absorption jump ratio r of the K, L3 or M5 edge (Elam et al. 2002)."""
    return float(_edge(element, shell).jump_ratio)


@lru_cache(maxsize=1024)
def _shell_lines(element: str, shell: str) -> tuple[XrayLine, ...]:
    return tuple(line for line in element_lines(element, 0.0, tied=True) if line.shell == shell)


def shell_lines(element: str, shell: str) -> list[XrayLine]:
    """All line families of one shell of an element (the project's line table), tied shells
    (:func:`napari_sigma.xray.lines.is_tied`) included."""
    return list(_shell_lines(element, shell))


@lru_cache(maxsize=4096)
def line_fraction(line: XrayLine) -> float:
    """Share of the shell's emitted X-rays that go into this family (weights of the table)."""
    total = sum(other.weight for other in shell_lines(line.element, line.shell))
    return line.weight / total if total > 0 else 0.0


@lru_cache(maxsize=512)
def _element_mu(element: str, energies: tuple[float, ...]) -> np.ndarray:
    energies_ev = np.clip(np.asarray(energies, dtype=np.float64), 0.1, None) * 1000.0
    tables = _elam_tables(element)
    mu = None if tables is None else _elam_total(tables, energies_ev)
    if mu is None:
        import xraydb

        mu = xraydb.mu_elam(element, energies_ev)
    return np.atleast_1d(np.asarray(mu, dtype=np.float64))


# Elam, Ravel & Sieber (2002) tables as xraydb stores them: ln E (eV), ln sigma and the second
# derivatives of a cubic spline through (ln E, ln sigma) for photo-absorption, coherent and
# incoherent scattering. xraydb.mu_elam evaluates the spline one energy at a time (a search of
# the table per energy: ~20 ms for a 2048-channel axis); here the same arithmetic runs on the
# whole axis at once, with the bracketing nodes found by binary search, and gives the same
# float64 numbers (tests/quant/test_elam_mu.py compares them bit for bit).
_ELAM_KINDS = (
    ("photoabsorption", "log_photoabsorption"),
    ("scattering", "log_coherent_scatter"),
    ("scattering", "log_incoherent_scatter"),
)


@lru_cache(maxsize=128)
def _elam_tables(element: str) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], ...] | None:
    """The three tables of an element, or None (then xraydb.mu_elam is called)."""
    import json

    import xraydb

    try:
        db = xraydb.get_xraydb()
        symbol = db.symbol(element)
        tables = []
        for table, column in _ELAM_KINDS:
            row = db.get_cache(table, column="element", value=symbol)[0]
            log_energy = np.array(json.loads(row.log_energy))
            values = np.array(json.loads(getattr(row, column)))
            spline = np.array(json.loads(getattr(row, column + "_spline")))
            if not (log_energy.ndim == 1 and log_energy.shape == values.shape == spline.shape):
                return None
            if log_energy.size < 2 or np.any(np.diff(log_energy) < 0):
                return None  # the binary search needs ordered nodes
            tables.append((log_energy, values, spline))
    except (AttributeError, IndexError, KeyError, TypeError, ValueError):
        return None
    return tuple(tables)


def _elam_total(tables, energies_ev: np.ndarray) -> np.ndarray | None:
    """Photo-absorption + coherent + incoherent cross-sections (cm^2/g) at these energies, or
    None where xraydb itself would raise or warn (outside 100 eV - 800 keV, unordered nodes)."""
    energies = np.array(energies_ev, dtype=np.float64, ndmin=1)
    if energies.min() < 100.0 or energies.max() > 8.0e5:
        return None  # xraydb warns and clips: let it
    log_e = np.log(energies)
    total = None
    for nodes, values, spline in tables:
        below = np.searchsorted(nodes, log_e, side="left") - 1  # last node < E, else 0
        below[below < 0] = 0
        above = np.searchsorted(nodes, log_e, side="right")  # first node > E, else the last
        above[above >= nodes.size] = nodes.size - 1
        width = nodes[above] - nodes[below]
        if np.any(width <= 0):
            return None
        a = (nodes[above] - log_e) / width
        b = (log_e - nodes[below]) / width
        log_sigma = (
            a * values[below]
            + b * values[above]
            + (width * width / 6)
            * ((a * a - 1) * a * spline[below] + (b * b - 1) * b * spline[above])
        )
        sigma = np.exp(log_sigma)
        if total is None:
            total = sigma
        else:
            total += sigma
    return total


@lru_cache(maxsize=65536)
def _element_mu_at(element: str, energy_kev: float) -> float:
    return float(_element_mu(element, (energy_kev,))[0])


def _mixture_mu(items, energy: float):
    return sum(c * _element_mu_at(el, energy) for el, c in items if c > 0)


@lru_cache(maxsize=65536)
def _mixture_mu_at(items: tuple, energy: float):
    """The mixture rule at one energy for a composition's ``(element, fraction)`` items, in
    their order (the same sum as uncached, so the same number): a ZAF iteration asks for the
    same composition at the same line energy many times (absorption, fluorescence of each line
    by each other line; 93 % repeats in the minerals stage of a 256^2 map)."""
    return _mixture_mu(items, energy)


def mass_attenuation(absorber: str | Composition, energy_kev) -> np.ndarray | float:
    """Mass attenuation coefficient mu/rho (cm^2/g) of an element or a composition.

    Elam et al. (2002) photo-absorption plus scattering; for a composition the weight-fraction
    average of the elements' coefficients (the mixture rule).
    """
    composition = {absorber: 1.0} if isinstance(absorber, str) else absorber
    if np.ndim(energy_kev) == 0:  # the scalar path of the ZAF iteration, cached
        energy = round(float(energy_kev), 6)
        try:
            return _mixture_mu_at(tuple(composition.items()), energy)
        except TypeError:  # a fraction that cannot be a key (an array): not cached
            return _mixture_mu(composition.items(), energy)
    energies = np.atleast_1d(np.asarray(energy_kev, dtype=np.float64))
    key = tuple(np.round(energies, 6).tolist())
    mu = sum(c * _element_mu(el, key) for el, c in composition.items() if c > 0)
    return np.asarray(mu, dtype=np.float64) * np.ones_like(energies)


def mean_atomic_number(composition: Composition) -> float:
    """Mass-fraction weighted mean Z."""
    return sum(c * atomic_number(el) for el, c in composition.items())


# ---------------------------------------------------------------------------- cross-section


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
    import xraydb

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
    import xraydb

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


# ---------------------------------------------------------------- stopping and backscatter


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
    try:
        return _pap_m_j_cached(tuple(composition.items()), positive)
    except TypeError:  # a fraction that cannot be a key: not cached
        return _pap_m_j_cached.__wrapped__(tuple(composition.items()), positive)


@lru_cache(maxsize=8192)
def _pap_m_j_cached(items: tuple, positive: bool) -> tuple[float, float]:
    weights = {
        el: c * atomic_number(el) / atomic_weight(el) for el, c in items if c > 0 or not positive
    }
    m = sum(weights.values())
    j = float(
        np.exp(sum(w * np.log(mean_ionisation_potential(el)) for el, w in weights.items()) / m)
    )
    return m, j


def backscatter_coefficient(composition: Composition) -> float:
    """Mean backscatter coefficient eta (Pouchou & Pichoir 1991, eq. 13).

    ``eta = 1.75e-3 Zb + 0.37 (1 - exp(-0.015 Zb^1.3))`` with ``Zb = (sum C_i Z_i^0.5)^2``.
    """
    try:
        return _backscatter_coefficient(tuple(composition.items()))
    except TypeError:  # a fraction that cannot be a key: not cached
        return _backscatter_coefficient.__wrapped__(tuple(composition.items()))


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
    eta = backscatter_coefficient(composition)
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
    level = shell if line is None else line_level(line)
    ec = edge_energy(element, level)
    if beam_kev <= ec:
        return 0.0
    energies, sigma = _cross_section_grid(element, shell, float(beam_kev), points, line)
    integral = float(np.trapezoid(sigma / stopping_power(composition, energies), energies))
    return backscatter_factor(composition, beam_kev / ec) * integral / atomic_weight(element)


@lru_cache(maxsize=2048)
def _cross_section_grid(
    element: str, shell: str, beam_kev: float, points: int, line: XrayLine | None
) -> tuple[np.ndarray, np.ndarray]:
    low = min(edge_energy(element, lv) for lv in SHELL_LEVELS[shell] if _has(element, lv))
    energies = np.geomspace(low * (1 + 1e-6), beam_kev, points)
    if line is None:
        return energies, np.asarray(emission_cross_section(element, shell, energies))
    return energies, np.asarray(line_cross_section(line, energies))


def _has(element: str, level: str) -> bool:
    try:
        _edge(element, level)
    except ValueError:
        return False
    return True


# ------------------------------------------------------------------------------- absorption


def lenard_sigma(beam_kev: float, edge_kev) -> np.ndarray | float:
    """Heinrich's Lenard coefficient ``4.5e5 / (E0^1.65 - Ec^1.65)`` (Heinrich 1981, eq. 10.30)."""
    edge = np.minimum(np.asarray(edge_kev, dtype=np.float64), 0.95 * beam_kev)
    return 4.5e5 / (beam_kev**1.65 - edge**1.65)


ABSORPTION_MODELS = ("xpp", "pdh")
"""The bulk absorption corrections: XPP phi(rho z) (default) or PDH f(chi)."""


def bulk_absorption(model: str, *args: Any) -> np.ndarray | float:
    """f(chi) of an element's shell lines in a bulk sample, by ``model``.

    ``args``: ``composition, element, shell, line_kev, beam_kev, takeoff_deg``, those of
    `xpp_absorption_factor` (``"xpp"``); ``"pdh"``: `absorption_factor` at the shell's edge.
    """
    if model == "xpp":
        return xpp_absorption_factor(*args)
    if model == "pdh":
        composition, element, shell, line_kev, beam_kev, takeoff_deg = args
        edge = edge_energy(element, shell)
        return absorption_factor(composition, line_kev, edge, beam_kev, takeoff_deg)
    raise ValueError(f"unknown absorption model {model!r} (one of {', '.join(ABSORPTION_MODELS)})")


def absorption_factor(
    composition: Composition, line_kev, edge_kev, beam_kev: float, takeoff_deg: float
) -> np.ndarray | float:
    """f(chi): the fraction of the generated X-rays that leave a bulk sample.

    Philibert-Duncumb-Heinrich (Heinrich 1981, eq. 10.29-10.31):
    ``f = 1 / ((1 + chi/sigma) (1 + h/(1+h) chi/sigma))`` with ``chi = mu/rho csc(psi)``,
    Heinrich's sigma (`lenard_sigma`) and ``h = 1.2 sum C A / Z^2``.
    """
    mu = mass_attenuation(composition, line_kev)
    chi = np.asarray(mu) / np.sin(np.radians(takeoff_deg))
    h = 1.2 * sum(c * atomic_weight(el) / atomic_number(el) ** 2 for el, c in composition.items())
    ratio = chi / lenard_sigma(beam_kev, edge_kev)
    f = 1.0 / ((1.0 + ratio) * (1.0 + h / (1.0 + h) * ratio))
    return float(f) if np.ndim(f) == 0 else f


def _pap_m(element: str, shell: str) -> float:
    """Exponent m of PAP's ionisation cross-section ``Q = ln U / (U^m Ec^2)`` (Pouchou & Pichoir
    1991, eq. 10): ``0.86 + 0.12 exp(-(Z/5)^2)`` for K, 0.82 for L, 0.78 for M."""
    if shell == "K":
        return 0.86 + 0.12 * np.exp(-((atomic_number(element) / 5.0) ** 2))
    return 0.82 if shell == "L" else 0.78


@dataclass(frozen=True)
class XppDistribution:
    """The XPP depth distribution of ionisations of one shell in a matrix (Pouchou & Pichoir 1991).

    ``phi(rho z) = A exp(-a rho z) + (B rho z + phi0 - A) exp(-b rho z)`` (appendix 4), with area
    ``F`` (g/cm^2), surface ionisation ``phi0`` and mean depth ``r_bar`` (g/cm^2).
    """

    area: float
    phi0: float
    r_bar: float
    a: float
    b: float
    big_a: float
    big_b: float
    epsilon: float

    def phi(self, rho_z) -> np.ndarray:
        """phi(rho z) at mass depths ``rho_z`` (g/cm^2)."""
        z = np.asarray(rho_z, dtype=np.float64)
        return self.big_a * np.exp(-self.a * z) + (self.big_b * z + self.phi0 - self.big_a) * (
            np.exp(-self.b * z)
        )

    def emitted(self, chi) -> np.ndarray | float:
        """``F(chi) = integral phi(rho z) exp(-chi rho z)``: the emerging intensity (appendix 4)."""
        chi = np.asarray(chi, dtype=np.float64)
        b, eps = self.b, self.epsilon
        f = (
            self.phi0 + self.big_b / (b + chi) - self.big_a * b * eps / (b * (1.0 + eps) + chi)
        ) / (b + chi)
        return float(f) if f.ndim == 0 else f


def xpp_distribution(
    composition: Composition, element: str, shell: str, beam_kev: float
) -> XppDistribution:
    """XPP phi(rho z) of ``element``'s ``shell`` in ``composition`` at ``beam_kev``.

    Pouchou & Pichoir (1991): area ``F = R (1/S) / Q(U0)`` with the deceleration factor 1/S of
    eq. 8 (PAP stopping power, `stopping_power`), ``Q`` of eq. 10 and the backscatter factor R
    (`backscatter_factor`); ``phi0 = 1 + 3.3 (1 - U0^-(2 - 2.3 eta)) eta^1.2`` (appendix 2);
    ``F / r_bar = 1 + X ln(1 + Y (1 - U0^-0.42)) / ln(1 + Y)`` with ``X = 1 + 1.3 ln Zb``,
    ``Y = 0.2 + Zb/200``, and ``r_bar = F / phi0`` when that is smaller (eq. 28); initial slope
    ``P = g h^4 F / r_bar^2`` with ``g = 0.22 ln(4 Zb) (1 - 2 exp(-Zb (U0-1)/15))``,
    ``h = 1 - 10 (1 - 1/(1 + U0/10)) / Zb^2``, ``g h^4`` at most ``0.9 b r_bar^2 (b - 2 phi0/F)``
    (eq. 29); then b, a, epsilon, A and B of appendix 4.
    """
    ec = edge_energy(element, shell)
    u0 = beam_kev / ec
    if u0 <= 1.0:
        raise ValueError(f"{element} {shell}: the beam ({beam_kev:g} kV) is below the edge")
    m_big, j = _pap_m_j(composition, positive=True)
    v0 = beam_kev / j
    m = _pap_m(element, shell)
    d = (6.6e-6, 1.12e-5 * (1.35 - 0.45 * j**2), 2.2e-6 / j)
    p = (0.78, 0.1, -(0.5 - 0.25 * j))
    inv_s = 0.0
    for dk, pk in zip(d, p, strict=True):
        t = 1.0 + pk - m
        inv_s += dk * (v0 / u0) ** pk * (t * u0**t * np.log(u0) - u0**t + 1.0) / t**2
    inv_s *= u0 / (v0 * m_big)
    q0 = np.log(u0) / (u0**m * ec**2)
    area = backscatter_factor(composition, u0) * inv_s / q0
    zb = sum(c * np.sqrt(atomic_number(el)) for el, c in composition.items() if c > 0) ** 2
    eta = backscatter_coefficient(composition)
    phi0 = 1.0 + 3.3 * (1.0 - u0 ** -(2.0 - 2.3 * eta)) * eta**1.2
    x = 1.0 + 1.3 * np.log(zb)
    y = 0.2 + zb / 200.0
    f_over_r = 1.0 + x * np.log(1.0 + y * (1.0 - u0**-0.42)) / np.log(1.0 + y)
    r_bar = area / max(f_over_r, phi0)
    g = 0.22 * np.log(4.0 * zb) * (1.0 - 2.0 * np.exp(-zb * (u0 - 1.0) / 15.0))
    h = 1.0 - 10.0 * (1.0 - 1.0 / (1.0 + u0 / 10.0)) / zb**2
    b = np.sqrt(2.0) * (1.0 + np.sqrt(max(1.0 - r_bar * phi0 / area, 0.0))) / r_bar
    gh4 = min(g * h**4, 0.9 * b * r_bar**2 * (b - 2.0 * phi0 / area))
    slope = gh4 * area / r_bar**2
    a = (slope + b * (2.0 * phi0 - b * area)) / (b * area * (2.0 - b * r_bar) - phi0)
    eps = (a - b) / b
    if abs(eps) < 1e-6:
        eps = 1e-6 if eps >= 0 else -1e-6
        a = b * (1.0 + eps)
    big_b = (b**2 * area * (1.0 + eps) - slope - phi0 * b * (2.0 + eps)) / eps
    big_a = (big_b / b + phi0 - b * area) * (1.0 + eps) / eps
    return XppDistribution(float(area), float(phi0), float(r_bar), float(a), float(b),
                           float(big_a), float(big_b), float(eps))  # fmt: skip


def xpp_absorption_factor(
    composition: Composition,
    element: str,
    shell: str,
    line_kev,
    beam_kev: float,
    takeoff_deg: float,
) -> np.ndarray | float:
    """f(chi) = F(chi) / F of the XPP distribution (Pouchou & Pichoir 1991, appendix 4):
    the fraction of a shell's X-rays of energy ``line_kev`` that leave a bulk sample, with
    ``chi = mu/rho(line) csc(psi)``."""
    dist = xpp_distribution(composition, element, shell, beam_kev)
    chi = np.asarray(mass_attenuation(composition, line_kev)) / np.sin(np.radians(takeoff_deg))
    f = np.asarray(dist.emitted(chi)) / dist.area
    return float(f) if f.ndim == 0 else f


def thin_film_absorption(
    composition: Composition, line_kev, mass_thickness_g_cm2: float, takeoff_deg: float
) -> np.ndarray | float:
    """Fraction of X-rays escaping a foil of mass thickness rho t, generated uniformly in depth.

    ``(1 - exp(-chi rho t)) / (chi rho t)`` with ``chi = mu/rho csc(alpha)`` (Horita et al. 1987,
    eq. 2).
    """
    chi = np.asarray(mass_attenuation(composition, line_kev)) / np.sin(np.radians(takeoff_deg))
    x = chi * max(mass_thickness_g_cm2, 0.0)
    f = np.where(x > 1e-9, -np.expm1(-x) / np.maximum(x, 1e-12), 1.0)
    return float(f) if np.ndim(f) == 0 else f


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


# --------------------------------------------------------------------------------- detector


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
    import xraydb

    if atomic_number(element) <= 8 and element != "Be":
        return FILM_DENSITY
    return float(xraydb.atomic_density(element))


def detector_from_metadata(metadata: Mapping | None) -> Detector | None:
    """The detector a file describes (``metadata["eds_detector"]``, see
    `napari_sigma.io._rsciio.bruker_detector`): its window layers (light elements at the film
    density, metals at their own), the window's support grid, the Si dead layer and the crystal
    thickness; None when the file describes none. The detector's own "DetLayers" list is not
    used: its units and densities are not documented (the same list is given for windowed and
    windowless Bruker detectors)."""
    import xraydb

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
    from napari_sigma.io._rsciio import get_item

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


# ------------------------------------------------------------------------- detected lines


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
