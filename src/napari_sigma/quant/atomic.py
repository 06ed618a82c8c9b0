"""Atomic data of the quantification: atomic numbers and weights, edges, fluorescence yields,
jump ratios and the line table's relative intensities.

Atomic weights, edge energies, K and L fluorescence yields and jump ratios from xraydb, which
tabulates W. T. Elam, B. D. Ravel and J. R. Sieber, *Radiat. Phys. Chem.* 63, 121 (2002); M4 and M5
yields from EADL (:mod:`napari_sigma.xray.yields`); relative line
intensities from the project's line table (``napari_sigma.xray.lines``, built from the same
database). Energies are in keV.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache

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

Composition = Mapping[str, float]


@lru_cache(maxsize=256)
def atomic_number(element: str) -> int:
    """Atomic number Z (xraydb)."""
    from napari_sigma.xray import xraydb_direct as xraydb

    return int(xraydb.atomic_number(element))


@lru_cache(maxsize=256)
def atomic_weight(element: str) -> float:
    """Standard atomic weight in g/mol (xraydb)."""
    from napari_sigma.xray import xraydb_direct as xraydb

    return float(xraydb.atomic_mass(element))


@lru_cache(maxsize=1024)
def _edge(element: str, shell: str):
    from napari_sigma.xray import xraydb_direct as xraydb

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
    """Fluorescence yield omega of a level or of a shell's main level (K, L3, M5); raises for an
    element without it. The values are :func:`napari_sigma.xray.yields.fluorescence_yield`'s
    (K, L: Elam et al. 2002; M4 and M5 of Z 40-92: EADL, Perkins et al. 1991), the same ones the
    element-map fit bounds its shells with.
    """
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


def mean_atomic_number(composition: Composition) -> float:
    """Mass-fraction weighted mean Z."""
    return sum(c * atomic_number(el) for el, c in composition.items())


def _has(element: str, level: str) -> bool:
    try:
        _edge(element, level)
    except ValueError:
        return False
    return True
