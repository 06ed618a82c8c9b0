"""The mineral library: minerals and common phases with formulas, groups, densities and series.

The packaged table ``data/minerals.csv`` (sources in its header) holds more than 400 minerals and
common non-mineral phases (alloys, slags, glasses, polymers); ``data/series.csv`` the
solid-solution series and their end members. Compositions are computed from the formulas with
xraydb's atomic weights. A user's CSV of the same columns extends or replaces the library
(:func:`load_library`).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from importlib import resources
from pathlib import Path

from napari_sigma.errors import SigmaError
from napari_sigma.synthetic.generator import formula_atoms, weight_fractions

REQUIRED_COLUMNS = ("name", "formula", "group", "density")


class LibraryError(SigmaError, ValueError):
    """A mineral table that cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class Mineral:
    """One library entry.

    Parameters
    ----------
    name, formula, group : str
        E.g. ``"albite"``, ``"NaAlSi3O8"``, ``"silicate: feldspar"``.
    density : float
        g/cm^3.
    composition : dict of str to float
        Mass fractions computed from the formula.
    """

    name: str
    formula: str
    group: str
    density: float
    composition: dict[str, float] = field(default_factory=dict, compare=False)

    @property
    def atoms(self) -> dict[str, float]:
        """Atoms per formula unit."""
        return formula_atoms(self.formula)

    @cached_property
    def formula_mass(self) -> float:
        """Mass of one formula unit (g/mol; computed once: every series comparison asks)."""
        from napari_sigma.quant.physics import atomic_weight

        return sum(n * atomic_weight(el) for el, n in self.atoms.items())


@dataclass(frozen=True)
class Series:
    """A solid-solution series: end members, their labels and which fractions name it."""

    name: str
    members: tuple[str, ...]
    labels: tuple[str, ...]
    named: tuple[bool, ...]


@dataclass
class MineralLibrary:
    """Minerals by name, in table order, and the solid-solution series."""

    minerals: dict[str, Mineral]
    series: list[Series] = field(default_factory=list)
    source: str = "packaged"

    def __len__(self) -> int:
        return len(self.minerals)

    def __getitem__(self, name: str) -> Mineral:
        return self.minerals[name]

    def __contains__(self, name: object) -> bool:
        return name in self.minerals

    def groups(self) -> list[str]:
        """The distinct groups, in table order."""
        return list(dict.fromkeys(m.group for m in self.minerals.values()))


def composition_of(formula: str) -> dict[str, float]:
    """Mass fractions of the elements of a formula (xraydb atomic weights;
    :func:`napari_sigma.synthetic.generator.weight_fractions`)."""
    return weight_fractions(formula)


def _rows(lines: Iterable[str], source: str) -> list[dict[str, str]]:
    content = [line for line in lines if line.strip() and not line.lstrip().startswith("#")]
    reader = csv.DictReader(content)
    missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise LibraryError(f"{source}: missing column(s) {', '.join(missing)}")
    return list(reader)


def _mineral(row: Mapping[str, str], source: str, line: int) -> Mineral:
    name = (row.get("name") or "").strip()
    formula = (row.get("formula") or "").strip()
    if not name or not formula:
        raise LibraryError(f"{source}: row {line} has no name or formula")
    try:
        composition = composition_of(formula)
        density = float(row.get("density") or "nan")
    except (ValueError, KeyError) as error:
        raise LibraryError(f"{source}: row {line} ({name}): {error}") from None
    if not density > 0:
        raise LibraryError(f"{source}: row {line} ({name}): density must be a positive number")
    return Mineral(name, formula, (row.get("group") or "").strip(), density, composition)


def read_minerals(path: str | Path) -> dict[str, Mineral]:
    """The minerals of a CSV file (columns name, formula, group, density; ``#`` comments)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise LibraryError(f"{path}: cannot read the mineral table ({error.strerror})") from None
    return _parse_minerals(text.splitlines(), str(path))


def _parse_minerals(lines: list[str], source: str) -> dict[str, Mineral]:
    minerals: dict[str, Mineral] = {}
    for i, row in enumerate(_rows(lines, source), start=1):
        mineral = _mineral(row, source, i)
        minerals.setdefault(mineral.name, mineral)
    if not minerals:
        raise LibraryError(f"{source}: no minerals in the table")
    return minerals


def _parse_series(lines: list[str], minerals: Mapping[str, Mineral]) -> list[Series]:
    reader = csv.DictReader([x for x in lines if x.strip() and not x.startswith("#")])
    grouped: dict[str, list[tuple[str, str, bool]]] = {}
    for row in reader:
        if row["member"] in minerals:
            grouped.setdefault(row["series"], []).append(
                (row["member"], row["label"], row["named"].strip().lower() == "yes")
            )
    return [
        Series(name, *map(tuple, zip(*members, strict=True)))
        for name, members in grouped.items()
        if len(members) >= 2
    ]


@lru_cache(maxsize=1)
def _packaged() -> MineralLibrary:
    data = resources.files("napari_sigma.minerals") / "data"
    minerals = _parse_minerals(
        (data / "minerals.csv").read_text(encoding="utf-8").splitlines(), "minerals.csv"
    )
    series = _parse_series((data / "series.csv").read_text(encoding="utf-8").splitlines(), minerals)
    return MineralLibrary(minerals, series)


def load_library(path: str | Path | None = None, replace: bool = False) -> MineralLibrary:
    """The packaged library, extended (or replaced) by the minerals of a user's CSV.

    Parameters
    ----------
    path : str or Path, optional
        A CSV with columns name, formula, group, density.
    replace : bool
        Use only the user's minerals (no packaged ones; series whose end members are all in
        the file are kept).

    Raises
    ------
    LibraryError
        When the file cannot be read or a row is malformed (the message names file and row).
    """
    packaged = _packaged()
    if path is None:
        return packaged
    user = read_minerals(path)
    minerals = dict(user) if replace else {**packaged.minerals, **user}
    series = [s for s in packaged.series if all(m in minerals for m in s.members)]
    return MineralLibrary(minerals, series, source=str(path))
