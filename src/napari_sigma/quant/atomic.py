"""Atomic data of the quantification: atomic numbers and weights, edges, fluorescence yields,
jump ratios and the line table's relative intensities.

Atomic weights, edge energies, fluorescence yields and jump ratios from xraydb, which tabulates
W. T. Elam, B. D. Ravel and J. R. Sieber, *Radiat. Phys. Chem.* 63, 121 (2002); relative line
intensities from the project's line table (``napari_sigma.xray.lines``, built from the same
database). Energies are in keV.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path

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


EADL_M_YIELDS_FILE = Path(__file__).with_name("data") / "eadl_m_yields.csv"
"""The M4 and M5 fluorescence yields of EADL (Perkins et al. 1991), Z 40-92: see the file's
header for the source."""


@lru_cache(maxsize=1)
def eadl_m_yields() -> dict[tuple[int, str], float]:
    """``(Z, "M4" | "M5") -> omega`` from :data:`EADL_M_YIELDS_FILE`."""
    import csv

    with open(EADL_M_YIELDS_FILE, newline="") as handle:
        rows = csv.DictReader(line for line in handle if not line.startswith("#"))
        return {
            (int(row["Z"]), level): float(row[f"omega_{level}"])
            for row in rows
            for level in ("M4", "M5")
        }


def fluorescence_yield(element: str, shell: str) -> float:
    """Fluorescence yield omega of a level or of a shell's main level (K, L3, M5); raises for an
    element without it.

    M4 and M5 (the M shell's main level is M5): EADL's (:func:`eadl_m_yields`, Z 40-92). The
    ``Z^4 / (1.25e9 + Z^4)`` law of :func:`napari_sigma.xray.yields.fluorescence_yield`, fitted
    to xraydb's M5 yields of Hf-U, is within ~10 % of EADL from Hf up but 2-5x EADL's for Sn-Nd
    (Sn 5.0x, Ba 2.6x, Ce 2.2x, Nd 2.0x, Gd 1.6x), where it was never fitted; xraydb's own M
    yields below Ce are placeholders (M4 0.0027 and M5 0 for Zr-La). Other levels and
    elements: :func:`napari_sigma.xray.yields.fluorescence_yield` (K, L: Elam et al. 2002).
    """
    _edge(element, shell)  # raises for an element without this level
    level = SHELL_EDGE.get(shell, shell)
    if level in ("M4", "M5"):
        omega = eadl_m_yields().get((atomic_number(element), level))
        if omega is not None:
            return omega
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
