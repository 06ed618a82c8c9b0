"""Fluorescence yields: the probability that an ionised shell relaxes by emitting an X-ray.

The one source of these yields for the whole package (the element-map fit's shell bounds,
:mod:`napari_sigma.xray.fitting`, and the quantification, :mod:`napari_sigma.quant.atomic`):

- K and L levels: xraydb's tables (Elam, Ravel & Sieber 2002, after Krause 1979).
- M4 and M5 (the M shell's main level is M5), Z 40-92: the LLNL Evaluated Atomic Data Library
  (Perkins et al. 1991), ``xray/data/eadl_m_yields.csv`` (the source in the file's header).
  xraydb's own M yields below Ce are placeholders (M4 0.0027 and M5 0 for Zr-La).
- Other M levels and elements outside Z 40-92: the common approximation
  ``omega = Z^4 / (a + Z^4)`` (:func:`approximate_fluorescence_yield`).

The M constant ``a = 1.25e9`` matches xraydb's M5 yields where they exist: for Hf, W, Pt, Au, Pb,
Bi, Th and U the approximation is 0.96-1.18x xraydb with 1.25e9, 1.18-1.46x with 1.0e9. Below Hf
it was never fitted: it gives 2-5x EADL's M5 yield for Sn-Nd (Sn 5.0x, Ba 2.6x, Ce 2.2x, Nd 2.0x,
Gd 1.6x) and 20-35x for Zr-Ag. The K and L constants are within ~30 % of xraydb for Na..Ag (K) and
Fe..Pb (L3), lower than it.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

YIELD_CONSTANTS = {"K": 1.12e6, "L": 1.0e8, "M": 1.25e9}
"""The ``a`` of ``Z^4 / (a + Z^4)`` per shell."""

EADL_M_YIELDS_FILE = Path(__file__).with_name("data") / "eadl_m_yields.csv"
"""The M4 and M5 fluorescence yields of EADL (Perkins et al. 1991), Z 40-92: see the file's
header for the source."""


def approximate_fluorescence_yield(atomic_number: int, shell: str) -> float:
    """``Z^4 / (a + Z^4)`` with the ``a`` of ``shell`` (``"K"``, ``"L"`` or ``"M"``)."""
    z4 = float(atomic_number) ** 4
    return z4 / (YIELD_CONSTANTS[shell] + z4)


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


SHELL_EDGE = {"K": "K", "L": "L3", "M": "M5"}
"""The edge (initial level) of each line family's shell: the strongest lines of L and M start
from L3 and M5."""


def m_fluorescence_yield(atomic_number: int, level: str = "M5") -> float:
    """The yield of an M level: EADL's for M4 and M5 of Z 40-92, else
    :func:`approximate_fluorescence_yield`."""
    omega = eadl_m_yields().get((int(atomic_number), level)) if level in ("M4", "M5") else None
    return omega if omega is not None else approximate_fluorescence_yield(atomic_number, "M")


@lru_cache(maxsize=256)
def fluorescence_yield(element: str, shell: str) -> float:
    """Fluorescence yield of a shell's main level (K, L3, M5) or of a level (``"L2"``).

    K and L levels: xraydb (Elam et al. 2002). M levels: :func:`m_fluorescence_yield` (EADL's
    M4 and M5 for Z 40-92). Returns 0 where xraydb has no such edge (K, L levels).
    """
    from napari_sigma.xray import xraydb_direct as xraydb

    level = SHELL_EDGE.get(shell, shell)
    if level.startswith("M"):
        return m_fluorescence_yield(xraydb.atomic_number(element), level)
    edge = xraydb.xray_edges(element).get(level)
    return float(edge.fyield) if edge is not None else 0.0
