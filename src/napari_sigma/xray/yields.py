"""Fluorescence yields: the probability that an ionised shell relaxes by emitting an X-ray.

K and L come from xraydb's tables (the K and L3 edges); M, where xraydb has no usable value for
most elements, from the common approximation ``omega = Z^4 / (a + Z^4)``. The M constant
``a = 1.25e9`` is the one that matches xraydb's M5 yields where they exist: for Hf, W, Pt, Au, Pb,
Bi, Th and U the approximation is 0.96-1.18x xraydb with 1.25e9, 1.18-1.46x with 1.0e9. The K
and L constants are within ~30 % of xraydb for Na..Ag (K) and Fe..Pb (L3), lower than it.
"""

from __future__ import annotations

from functools import lru_cache

YIELD_CONSTANTS = {"K": 1.12e6, "L": 1.0e8, "M": 1.25e9}
"""The ``a`` of ``Z^4 / (a + Z^4)`` per shell."""


def approximate_fluorescence_yield(atomic_number: int, shell: str) -> float:
    """``Z^4 / (a + Z^4)`` with the ``a`` of ``shell`` (``"K"``, ``"L"`` or ``"M"``)."""
    z4 = float(atomic_number) ** 4
    return z4 / (YIELD_CONSTANTS[shell] + z4)


SHELL_EDGE = {"K": "K", "L": "L3", "M": "M5"}
"""The edge (initial level) of each line family's shell: the strongest lines of L and M start
from L3 and M5."""


@lru_cache(maxsize=256)
def fluorescence_yield(element: str, shell: str) -> float:
    """Fluorescence yield of a shell's main level (K, L3, M5) or of a level (``"L2"``).

    K and L levels: xraydb (Elam et al. 2002, after Krause 1979). M levels, where those tables
    are empty for most elements: :func:`approximate_fluorescence_yield`. Returns 0 where xraydb
    has no such edge (K, L levels).
    """
    from napari_sigma.xray import xraydb_direct as xraydb

    level = SHELL_EDGE.get(shell, shell)
    if level.startswith("M"):
        return approximate_fluorescence_yield(xraydb.atomic_number(element), "M")
    edge = xraydb.xray_edges(element).get(level)
    return float(edge.fyield) if edge is not None else 0.0
