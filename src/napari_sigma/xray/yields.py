"""Fluorescence yields: the probability that an ionised shell relaxes by emitting an X-ray.

The one source of these yields for the whole package (the element-map fit's shell bounds,
:mod:`napari_sigma.xray.fitting`, and the quantification, :mod:`napari_sigma.quant.atomic`):

- K shell: :func:`recommended_k_yield`, the fit J. H. Hubbell et al. recommend (*J. Phys.
  Chem. Ref. Data* 23, 339 (1994); W. Bambynek's 1984 fit to the selected measured yields).
  xraydb's K yields (Elam, Ravel & Sieber 2002) of Na-Sc are 12-17 % below every published
  compilation (Krause 1979; Hubbell et al. 1994): see :func:`recommended_k_yield`.
- L levels: xraydb's tables (Elam, Ravel & Sieber 2002, after Krause 1979).
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


K_YIELD_COEFFICIENTS = (0.0370, 0.03112, 5.44e-5, -1.25e-6)
"""``C_0..C_3`` of the K-shell fluorescence yield fit of :func:`recommended_k_yield`."""


def recommended_k_yield(atomic_number: int) -> float:
    """K-shell fluorescence yield omega_K from the semi-empirical fit
    ``(omega / (1 - omega))^(1/4) = C_0 + C_1 Z + C_2 Z^2 + C_3 Z^3`` with
    :data:`K_YIELD_COEFFICIENTS` (W. Bambynek's 1984 fit to the selected measured yields, the
    K yields J. H. Hubbell et al. recommend: *J. Phys. Chem. Ref. Data* 23, 339 (1994)).

    It gives O 0.0069, Mg 0.0291, Al 0.0387, Si 0.0504, Ca 0.169, Fe 0.355, within 4 % of M. O.
    Krause's table (*J. Phys. Chem. Ref. Data* 8, 307 (1979), table 1: Al 0.039, Si 0.050,
    Ca 0.163, Ti 0.219, Fe 0.340) from Mg to Cu. xraydb's K yields (Elam et al. 2002: O 0.0058,
    Mg 0.0257, Al 0.0330, Si 0.0429, Ca 0.147, Fe 0.351) are below both by 12-17 % from Na to
    Sc and agree from Ti up: Si K and Ca K lines were predicted 15 % weaker relative to Fe K
    than the published yields say, so a Cliff-Lorimer or ZAF quantification read Fe, Ti, K
    (and O beside them) low against Si and Al. Valid for Z >= 3 (no K X-rays below).
    """
    z = float(atomic_number)
    c0, c1, c2, c3 = K_YIELD_COEFFICIENTS
    x4 = (c0 + c1 * z + c2 * z * z + c3 * z**3) ** 4
    return x4 / (1.0 + x4)


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

    K: :func:`recommended_k_yield` (Hubbell et al. 1994). L levels: xraydb (Elam et al. 2002).
    M levels: :func:`m_fluorescence_yield` (EADL's M4 and M5 for Z 40-92). Returns 0 where
    xraydb has no such edge (K, L levels).
    """
    from napari_sigma.xray import xraydb_direct as xraydb

    level = SHELL_EDGE.get(shell, shell)
    if level.startswith("M"):
        return m_fluorescence_yield(xraydb.atomic_number(element), level)
    edge = xraydb.xray_edges(element).get(level)
    if edge is None:
        return 0.0
    if level == "K":
        return recommended_k_yield(xraydb.atomic_number(element))
    return float(edge.fyield)
