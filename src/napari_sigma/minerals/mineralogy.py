"""The automated-mineralogy report: modal mineralogy, grains, associations, particles, deportment.

Everything is computed from a label image and the identification of its phases (phases with the
same mineral name are one mineral). Areas are pixel counts (exact label areas); abundance areas
come from unmixing the map's mean spectrum onto the phases' mean spectra (so mixed boundary
pixels count fractionally); mass fractions use the library densities (3.0 g/cm^3 for unknown
phases). Grains are 8-connected regions of one mineral; boundaries are counted between
4-neighbour pixels, a pixel side long.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

UNKNOWN_DENSITY = 3.0
BACKGROUND = "background"
SUBSTRATE_GROUPS = ("carbon", "polymer", "no signal")
"""Library groups of a substrate or resin that particles sit on (``carbon``, ``epoxy``), and
the group of a phase without a signal of its own (a hole in the film, vacuum around particles:
:mod:`napari_sigma.minerals.signal`)."""
MIN_BACKGROUND_FRACTION = 0.2
LIBERATED, MIDDLING = 0.9, 0.3
"""Liberation classes of a particle's main mineral by its share of the particle's area."""


@dataclass
class Mineralogy:
    """The tables of the report (lists of row dicts, ready for CSV)."""

    modal: list[dict] = field(default_factory=list)
    grains: list[dict] = field(default_factory=list)
    association: list[dict] = field(default_factory=list)
    particles: list[dict] = field(default_factory=list)
    deportment: list[dict] = field(default_factory=list)
    mineral_of_label: dict[int, str] = field(default_factory=dict)
    label_fractions: np.ndarray | None = None
    """Abundance area fraction of labels 1..K (the ``fractions`` the tables were given)."""


def mineral_map(
    labels: np.ndarray, mineral_of_label: Mapping[int, str]
) -> tuple[np.ndarray, list[str]]:
    """Mineral index image (0 = background/unassigned, i = ``names[i - 1]``) and the names."""
    names = list(dict.fromkeys(mineral_of_label[pid] for pid in sorted(mineral_of_label)))
    lookup = np.zeros(int(max(mineral_of_label, default=0)) + 1, dtype=np.int32)
    for pid, name in mineral_of_label.items():
        lookup[pid] = names.index(name) + 1
    labels = np.asarray(labels)
    safe = np.where((labels >= 0) & (labels < lookup.size), labels, 0)
    return lookup[safe], names


def _perimeter_edges(mask: np.ndarray) -> int:
    padded = np.pad(mask, 1)
    return int(
        np.count_nonzero(padded[1:, :] != padded[:-1, :])
        + np.count_nonzero(padded[:, 1:] != padded[:, :-1])
    )


def grain_table(minerals: np.ndarray, names: Sequence[str], pixel_um: float) -> list[dict]:
    """One row per grain (8-connected region of one mineral)."""
    from scipy.ndimage import find_objects, label

    rows = []
    structure = np.ones((3, 3), dtype=bool)
    height, width = minerals.shape
    for index, name in enumerate(names, start=1):
        regions, _ = label(minerals == index, structure=structure)
        for grain, box in enumerate(find_objects(regions), start=1):
            if box is None:
                continue
            mask = regions[box] == grain
            area = int(mask.sum())
            touches = box[0].start == 0 or box[1].start == 0
            touches = touches or box[0].stop == height or box[1].stop == width
            rows.append({
                "grain_id": len(rows) + 1, "mineral": name, "area_px": area,
                "area_um2": area * pixel_um**2, "ecd_um": 2 * np.sqrt(area / np.pi) * pixel_um,
                "perimeter_um": _perimeter_edges(mask) * pixel_um, "touches_border": bool(touches),
            })  # fmt: skip
    return rows


def boundary_lengths(minerals: np.ndarray, n: int) -> np.ndarray:
    """Pixel sides shared by every pair of mineral indices 0..n (symmetric, (n+1, n+1))."""
    counts = np.zeros((n + 1, n + 1), dtype=np.int64)
    for a, b in ((minerals[1:, :], minerals[:-1, :]), (minerals[:, 1:], minerals[:, :-1])):
        differ = a != b
        np.add.at(counts, (a[differ], b[differ]), 1)
    return counts + counts.T


def association_table(minerals: np.ndarray, names: Sequence[str], pixel_um: float) -> list[dict]:
    """Shared boundary length of every pair of minerals and of each mineral with the background."""
    lengths = boundary_lengths(minerals, len(names))
    labels = [BACKGROUND, *names]
    totals = lengths.sum(axis=1)
    rows = []
    for i in range(len(labels)):
        for j in range(i + 1, len(labels)):
            if lengths[i, j] == 0:
                continue
            rows.append({
                "mineral_a": labels[i], "mineral_b": labels[j],
                "boundary_px": int(lengths[i, j]), "boundary_um": float(lengths[i, j] * pixel_um),
                "share_of_a_percent": 100.0 * lengths[i, j] / max(totals[i], 1),
                "share_of_b_percent": 100.0 * lengths[i, j] / max(totals[j], 1),
            })  # fmt: skip
    return rows


def particle_table(
    minerals: np.ndarray, names: Sequence[str], background: set[int], pixel_um: float
) -> list[dict]:
    """Particles (8-connected non-background regions) with their minerals and liberation class."""
    from scipy.ndimage import find_objects, label

    solid = ~np.isin(minerals, list(background | {0}))
    regions, _ = label(solid, structure=np.ones((3, 3), dtype=bool))
    rows = []
    height, width = minerals.shape
    for pid, box in enumerate(find_objects(regions), start=1):
        if box is None:
            continue
        inside = minerals[box][regions[box] == pid]
        area = inside.size
        shares = np.bincount(inside, minlength=len(names) + 1)[1:] / area
        order = np.argsort(-shares)
        main = int(order[0])
        share = float(shares[main])
        liberation = (
            "liberated" if share >= LIBERATED else ("middling" if share >= MIDDLING else "locked")
        )
        touches = (
            box[0].start == 0 or box[1].start == 0 or box[0].stop == height or box[1].stop == width
        )
        rows.append({
            "particle_id": pid, "area_px": int(area), "area_um2": area * pixel_um**2,
            "ecd_um": 2 * np.sqrt(area / np.pi) * pixel_um, "main_mineral": names[main],
            "main_mineral_percent": 100 * share, "liberation": liberation,
            "minerals": "; ".join(f"{names[i]} {100 * shares[i]:.1f}" for i in order if shares[i] > 0),
            "touches_border": bool(touches),
        })  # fmt: skip
    return rows


def _background_minerals(
    names, groups: Mapping[str, str], areas: np.ndarray, total: int
) -> set[int]:
    found = set()
    for i, name in enumerate(names, start=1):
        group = groups.get(name, "")
        if (
            any(group.startswith(g) for g in SUBSTRATE_GROUPS)
            and areas[i] >= MIN_BACKGROUND_FRACTION * total
        ):
            found.add(i)
    return found


def mineralogy(
    labels: np.ndarray,
    mineral_of_label: Mapping[int, str],
    pixel_um: float | None,
    densities: Mapping[str, float] | None = None,
    groups: Mapping[str, str] | None = None,
    fractions: np.ndarray | None = None,
    compositions: Mapping[str, Mapping[str, float]] | None = None,
    unresolved: Mapping[str, str] | None = None,
) -> Mineralogy:
    """All tables of the report.

    Parameters
    ----------
    labels : ndarray (y, x) int
        Phase labels (0 = unassigned).
    mineral_of_label : dict of int to str
        The mineral (or phase) name of every label present.
    pixel_um : float or None
        Pixel size (None: lengths in pixels, ``*_um`` columns then count pixels).
    densities, groups : dict of str to float / str
        Library density and group of each mineral name.
    fractions : ndarray (K,), optional
        Mean area fraction of phases 1..K over the map (abundance areas, e.g.
        :func:`napari_sigma.minerals.map_abundances.abundance_fractions`); None leaves
        ``abundance_area_percent`` empty.
    compositions : dict of str to dict, optional
        Mass fractions (0..1) of each mineral, for the element deportment.
    unresolved : dict of str to str, optional
        What each mineral name is not resolved from (``"maghemite 0.64; magnetite 0.51"``,
        :attr:`~napari_sigma.minerals.phases.PhaseMineral.not_resolved_from`): the modal
        table's ``not_resolved_from`` column.
    """
    pixel = float(pixel_um) if pixel_um else 1.0
    densities, groups = dict(densities or {}), dict(groups or {})
    labels = np.asarray(labels)
    minerals, names = mineral_map(labels, mineral_of_label)
    total = labels.size
    areas = np.bincount(minerals.ravel(), minlength=len(names) + 1)
    grains = grain_table(minerals, names, pixel)
    modal = _modal(names, areas, total, grains, densities, fractions, mineral_of_label)
    for row in modal:
        row["not_resolved_from"] = (unresolved or {}).get(row["mineral"], "")
    background = _background_minerals(names, groups, areas, total)
    if areas[0] >= MIN_BACKGROUND_FRACTION * total:
        background.add(0)
    particles = particle_table(minerals, names, background, pixel) if background else []
    deportment = _deportment(modal, compositions or {})
    label_fractions = None if fractions is None else np.asarray(fractions, np.float64).ravel()
    return Mineralogy(modal, grains, association_table(minerals, names, pixel), particles,
                      deportment, dict(mineral_of_label), label_fractions)  # fmt: skip


def _modal(names, areas, total, grains, densities, fractions, mineral_of_label) -> list[dict]:
    abundance = None
    if fractions is not None:
        per_phase = np.asarray(fractions, dtype=np.float64).ravel()
        abundance = np.zeros(len(names))
        for pid, name in mineral_of_label.items():
            if 1 <= pid <= per_phase.size:
                abundance[names.index(name)] += per_phase[pid - 1]
    mass = np.array([areas[i + 1] * densities.get(n, UNKNOWN_DENSITY) for i, n in enumerate(names)])
    mass_total = mass.sum() or 1.0
    grain_counts = {n: sum(1 for g in grains if g["mineral"] == n) for n in names}
    rows = []
    for i, name in enumerate(names):
        rows.append({
            "mineral": name, "pixels": int(areas[i + 1]),
            "area_percent": 100.0 * areas[i + 1] / total,
            "abundance_area_percent": "" if abundance is None else 100.0 * abundance[i],
            "wt_percent": 100.0 * mass[i] / mass_total,
            "density": densities.get(name, UNKNOWN_DENSITY), "grains": grain_counts[name],
        })  # fmt: skip
    if areas[0]:
        rows.append({"mineral": "unassigned", "pixels": int(areas[0]),
                     "area_percent": 100.0 * areas[0] / total, "abundance_area_percent": "",
                     "wt_percent": "", "density": "", "grains": ""})  # fmt: skip
    return rows


def _deportment(modal: list[dict], compositions: Mapping[str, Mapping[str, float]]) -> list[dict]:
    """Share of each element's mass held by each mineral (mass fraction x mineral mass)."""
    held: dict[str, dict[str, float]] = {}
    for row in modal:
        composition = compositions.get(row["mineral"])
        if not composition or row["wt_percent"] == "":
            continue
        for element, c in composition.items():
            held.setdefault(element, {})[row["mineral"]] = row["wt_percent"] * c
    rows = []
    for element, by_mineral in held.items():
        total = sum(by_mineral.values())
        for name, value in sorted(by_mineral.items(), key=lambda item: -item[1]):
            if total > 0 and value > 0:
                rows.append({"element": element, "mineral": name,
                             "element_mass_percent": 100 * value / total,
                             "sample_wt_percent": value / 100.0})  # fmt: skip
    return rows
