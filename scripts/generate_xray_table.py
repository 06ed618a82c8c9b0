"""Generate ``src/napari_sigma/xray/_table.py`` from xraydb.

Run from the repository root::

    python scripts/generate_xray_table.py

For every element Be..U (Z 4-92) the IUPAC/Siegbahn lines of xraydb are grouped into
HyperSpy-style families (``Ka`` = Ka1 + Ka2 at their intensity-weighted energy, ``Kb``, ``La``,
``Lb1`` ...). A family's relative weight is the xraydb branching ratio of its lines (which is
relative to their *initial level*) times an approximate electron-impact population factor of that
level (``LEVEL_FACTORS``: electron occupancy, reduced for L1/M3 which lose vacancies to
Coster-Kronig transitions), normalised so that the strongest family of each shell (K, L, M) is 1.0.
A shell is kept only when its alpha family (Ka, La, Ma) exists in xraydb, except the L shell of
the elements without 3d electrons whose L lines lie in the fitted range (Cl..Sc: Ll, Ln, Lb3,
Lb4), kept as a *tied* shell, and the M shell of the elements without 4f electrons whose M lines
lie there (Zr..Sn: Mz, and Mg from Rh), tied to their L shell (see
``_drop_shells_without_alpha``, ``_mz_energy`` and ``napari_sigma.xray.lines.is_tied``).
Each family also records the ionisation (edge) energy of its initial level, for overvoltage.

The same functions are used by the test that checks the committed table against xraydb.
"""

from __future__ import annotations

import argparse
import pprint
from pathlib import Path

from napari_sigma.quant.physics import FAMILY_LINES

FIRST_Z = 4
LAST_Z = 92
MIN_TABLE_ENERGY_KEV = 0.05
MIN_TABLE_WEIGHT = 1e-3
MIN_TIED_ENERGY_KEV = 0.15
"""An L shell without La is kept (tied) when its strongest line is at least this energy: the
lowest energy the quantification fits (``quant.line_fit.MIN_FIT_ENERGY_KEV``); below it (Mg..S
L lines, 0.05-0.15 keV) a detector's window and threshold leave nothing to measure."""

TIED_TO = {"L": "K", "M": "L"}
"""A shell kept without its alpha family is tied to this shell (``napari_sigma.xray.lines``)."""

# xraydb line names grouped into families (HyperSpy naming): one mapping for the table and the physics.
FAMILIES = FAMILY_LINES

# Approximate relative population of an initial level under electron impact (same shell only).
LEVEL_FACTORS: dict[str, float] = {
    "K": 1.0,
    "L3": 1.0,
    "L2": 0.5,
    "L1": 0.25,
    "M5": 1.0,
    "M4": 0.66,
    "M4,5": 1.0,
    "M3": 0.1,
    "M2": 0.05,
    "M1": 0.02,
}

# The edge whose energy gates a level when xraydb gives a combined level such as "M4,5".
EDGE_OF_LEVEL = {"M4,5": "M5"}

TABLE_PATH = Path(__file__).resolve().parents[1] / "src" / "napari_sigma" / "xray" / "_table.py"


def element_families(element: str) -> dict[str, tuple[float, float, float]]:
    """Families of one element: ``{family: (energy_kev, weight, edge_kev)}``.

    Parameters
    ----------
    element : str
        Element symbol.

    Returns
    -------
    dict
        Energies and edges rounded to 0.1 eV, weights to 1e-4; weights normalised per shell.
    """
    import xraydb

    lines = xraydb.xray_lines(element)
    edges = xraydb.xray_edges(element)
    raw: dict[str, tuple[float, float, float]] = {}
    for family, names in FAMILIES.items():
        members = [lines[name] for name in names if name in lines]
        members = [m for m in members if m.intensity > 0]
        if not members:
            continue
        level = members[0].initial_level
        edge_name = EDGE_OF_LEVEL.get(level, level)
        if level not in LEVEL_FACTORS or edge_name not in edges:
            continue
        intensity = sum(m.intensity for m in members)
        energy = sum(m.energy * m.intensity for m in members) / intensity / 1000.0
        if energy < MIN_TABLE_ENERGY_KEV:
            continue
        raw[family] = (energy, intensity * LEVEL_FACTORS[level], edges[edge_name].energy / 1000.0)
    kept = _drop_shells_without_alpha(raw)
    if "Mz" in kept and "Ma" not in kept:  # a tied M shell: its Mz is its main line
        energy, weight, edge = kept["Mz"]
        kept["Mz"] = (_mz_energy(edges, energy), weight, edge)
    return _normalise_per_shell(kept)


def _mz_energy(edges, listed_kev: float) -> float:
    """The energy (keV) of the Mz family (M4,5-N2,3) of an M shell without Ma: its two
    transitions, M5-N3 and M4-N2, weighted by the populations of their initial levels
    (`LEVEL_FACTORS`), each at the difference of xraydb's edge energies.

    xraydb lists Mz at the M4-N2 energy alone (Sn: 409.6 eV = E(M4) - E(N2)); the M5-N3
    transition (Sn: 401.3 eV) has the larger initial level and is the other half of the peak a
    detector sees ("Sn M4-N2 + M5-N3": J. I. Goldstein et al., *Scanning Electron Microscopy and
    X-Ray Microanalysis*, 4th ed., Springer 2018, fig. 16.5). ``listed_kev`` is kept where
    xraydb lacks an N2 or N3 edge.
    """
    needed = ("M4", "M5", "N2", "N3")
    if any(level not in edges for level in needed):
        return listed_kev
    m4, m5, n2, n3 = (edges[level].energy / 1000.0 for level in needed)
    w4, w5 = LEVEL_FACTORS["M4"], LEVEL_FACTORS["M5"]
    return (w5 * (m5 - n3) + w4 * (m4 - n2)) / (w4 + w5)


def _drop_shells_without_alpha(
    raw: dict[str, tuple[float, float, float]],
) -> dict[str, tuple[float, float, float]]:
    """Keep the L (M) shell only when xraydb has its La (Ma) line, or as a tied shell
    (`TIED_TO`) when the shell it is tied to is kept and its strongest line is at least
    ``MIN_TIED_ENERGY_KEV``.

    For Rb..Sn xraydb lists only Mz (M4,5-N2,3) and, from Rh, Mg (M3-N5): with no 4f electrons
    there is no Ma. They are not lines an element is analysed by, but real peaks where a detector
    sees them (Sn Mz 0.405 keV on N Ka 0.392 keV, read as nitrogen without it; Ag Mz 0.310 keV
    beside C Ka): those of Zr..Sn are kept as a tied M shell, Y's and below (Mz < 0.15 keV) not.
    For Mg..Sc it lists
    the L lines of atoms without 3d electrons (L3-M1 Ll, L2-M1 Ln, L1-M2,3 Lb3 and Lb4; no La,
    which is L3-M4,5): those of Cl..Sc (>= ``MIN_TIED_ENERGY_KEV``) are real peaks on the B, C
    and N K lines (Ca Ll 0.302 keV, C Ka 0.277 keV; per atom ~0.2 of Ca's K production at
    200 kV), kept as a tied L shell, never analysed alone
    (:func:`napari_sigma.xray.lines.is_tied`).
    """
    shells = {family[0] for family in raw if family in ("Ka", "La", "Ma")}
    for shell, anchor in TIED_TO.items():
        if anchor in shells and shell not in shells and _strongest_energy(raw, shell) is not None:
            if _strongest_energy(raw, shell) >= MIN_TIED_ENERGY_KEV:
                shells.add(shell)
    return {family: value for family, value in raw.items() if family[0] in shells}


def _strongest_energy(raw: dict[str, tuple[float, float, float]], shell: str) -> float | None:
    """Energy (keV) of the strongest family of ``shell`` in ``raw``; None when it has none."""
    lines = [(weight, energy) for family, (energy, weight, _) in raw.items() if family[0] == shell]
    return max(lines)[1] if lines else None


def _normalise_per_shell(
    raw: dict[str, tuple[float, float, float]],
) -> dict[str, tuple[float, float, float]]:
    strongest: dict[str, float] = {}
    for family, (_, weight, _) in raw.items():
        strongest[family[0]] = max(strongest.get(family[0], 0.0), weight)
    table = {}
    for family, (energy, weight, edge) in raw.items():
        relative = weight / strongest[family[0]]
        if relative >= MIN_TABLE_WEIGHT:
            table[family] = (round(energy, 4), round(relative, 4), round(edge, 4))
    return table


def build_table() -> dict[str, dict[str, tuple[float, float, float]]]:
    """The whole table, Be..U, in order of atomic number."""
    import xraydb

    return {
        xraydb.atomic_symbol(z): element_families(xraydb.atomic_symbol(z))
        for z in range(FIRST_Z, LAST_Z + 1)
    }


def render_table(table: dict[str, dict[str, tuple[float, float, float]]]) -> str:
    """Python source of the ``_xray_table`` module."""
    import xraydb

    header = (
        '"""X-ray line families per element (GENERATED by scripts/generate_xray_table.py; do not edit).\n'
        "\n"
        f"Source: xraydb {xraydb.__version__}. ``LINES[element][family] = (energy_keV, weight, edge_keV)``;\n"
        "weights are relative to the strongest family of the same shell (K, L, M).\n"
        '"""\n\n'
    )
    body = pprint.pformat(table, width=100, sort_dicts=False)
    return f"{header}XRAYDB_VERSION = {xraydb.__version__!r}\n\nLINES = {body}\n"


def main() -> None:
    """Write the table module (or the path given with ``--output``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=TABLE_PATH)
    args = parser.parse_args()
    args.output.write_text(render_table(build_table()), encoding="utf-8")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
