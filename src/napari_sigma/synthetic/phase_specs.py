"""The phases of a synthetic sample (:mod:`napari_sigma.synthetic.generator`): a phase's
composition and density (:class:`PhaseSpec`, from a formula: :func:`formula_atoms`,
:func:`weight_fractions`) and the minerals known by name (:func:`mineral`; the table
``MINERALS`` is built on first use)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True)
class PhaseSpec:
    """A phase: a name and a composition in weight fractions.

    Parameters
    ----------
    name : str
        Display name, e.g. ``"quartz"``.
    composition : dict of str to float
        Element symbol -> weight fraction; must sum to 1 (within 1 %, renormalised exactly).
    density : float
        Density in g/cm^3 (for reference).
    """

    name: str
    composition: dict[str, float]
    density: float = 3.0

    def __post_init__(self) -> None:
        total = sum(self.composition.values())
        if not self.composition or any(v < 0 for v in self.composition.values()):
            raise ValueError(f"phase {self.name!r}: composition must be non-empty and >= 0")
        if abs(total - 1.0) > 0.01:
            raise ValueError(f"phase {self.name!r}: weight fractions sum to {total:.4f}, not 1")
        normalised = {el: float(v) / total for el, v in self.composition.items() if v > 0}
        object.__setattr__(self, "composition", normalised)

    @classmethod
    def from_formula(cls, name: str, formula: str, density: float = 3.0) -> PhaseSpec:
        """A phase from a chemical formula such as ``"Ca5(PO4)3F"`` (atomic masses from xraydb)."""
        return cls(name, weight_fractions(formula), density)

    @property
    def mean_z(self) -> float:
        """Mass-weighted mean atomic number."""
        return sum(c * _atomic_number(el) for el, c in self.composition.items())

    def shifted(self, take_from: str, give_to: str, amount: float, name: str) -> PhaseSpec:
        """A twin phase with ``amount`` weight fraction moved from one element to another."""
        composition = dict(self.composition)
        if composition.get(take_from, 0.0) < amount:
            raise ValueError(f"{self.name} has less than {amount} of {take_from}")
        composition[take_from] -= amount
        composition[give_to] = composition.get(give_to, 0.0) + amount
        return PhaseSpec(name, composition, self.density)


def formula_atoms(formula: str) -> dict[str, float]:
    """Atoms per formula unit, e.g. ``"CaMg(CO3)2"`` -> ``{"Ca": 1, "Mg": 1, "C": 2, "O": 6}``.

    Parsed by ``xraydb.chemparse``; a formula it cannot read raises ValueError naming it.
    """
    from napari_sigma.xray import xraydb_direct as xraydb

    try:
        atoms = xraydb.chemparse(formula)
    except ValueError as error:
        raise ValueError(
            f"cannot parse formula {formula!r}: {str(error).splitlines()[0].rstrip(':')}"
        ) from None
    if not atoms:
        raise ValueError(f"cannot parse formula {formula!r}: no elements")
    return {element: float(count) for element, count in atoms.items()}


def weight_fractions(formula: str) -> dict[str, float]:
    """Weight fractions of the elements of a chemical formula (atomic masses from xraydb)."""
    from napari_sigma.quant.physics import atomic_weight  # cached: one xraydb query per element

    atoms = formula_atoms(formula)
    masses = {el: n * atomic_weight(el) for el, n in atoms.items() if n > 0}
    total = sum(masses.values())
    return {el: m / total for el, m in masses.items()}


@lru_cache(maxsize=128)
def _atomic_number(element: str) -> int:
    from napari_sigma.xray import xraydb_direct as xraydb

    return int(xraydb.atomic_number(element))


_MINERAL_FORMULAS: dict[str, tuple[str, float]] = {
    "quartz": ("SiO2", 2.65),
    "albite": ("NaAlSi3O8", 2.62),
    "orthoclase": ("KAlSi3O8", 2.56),
    "anorthite": ("CaAl2Si2O8", 2.73),
    "forsterite": ("Mg2SiO4", 3.27),
    "fayalite": ("Fe2SiO4", 4.39),
    "olivine_fo90": ("Mg1.8Fe0.2SiO4", 3.32),
    "enstatite": ("MgSiO3", 3.2),
    "diopside": ("CaMgSi2O6", 3.4),
    "almandine": ("Fe3Al2Si3O12", 4.3),
    "spinel": ("MgAl2O4", 3.58),
    "calcite": ("CaCO3", 2.71),
    "dolomite": ("CaMg(CO3)2", 2.85),
    "magnetite": ("Fe3O4", 5.18),
    "hematite": ("Fe2O3", 5.26),
    "ilmenite": ("FeTiO3", 4.72),
    "rutile": ("TiO2", 4.25),
    "chromite": ("FeCr2O4", 4.79),
    "corundum": ("Al2O3", 4.02),
    "cassiterite": ("SnO2", 6.95),
    "pyrite": ("FeS2", 5.01),
    "chalcopyrite": ("CuFeS2", 4.19),
    "pentlandite": ("Fe4.5Ni4.5S8", 4.8),
    "galena": ("PbS", 7.6),
    "sphalerite": ("ZnS", 4.05),
    "barite": ("BaSO4", 4.48),
    "anhydrite": ("CaSO4", 2.97),
    "apatite": ("Ca5(PO4)3F", 3.19),
    "zircon": ("ZrSiO4", 4.65),
    "halite": ("NaCl", 2.17),
    "sylvite": ("KCl", 1.99),
    "fluorite": ("CaF2", 3.18),
    "carbon": ("C", 1.8),
}


def _build_minerals() -> dict[str, PhaseSpec]:
    return {
        name: PhaseSpec.from_formula(name, formula, density)
        for name, (formula, density) in _MINERAL_FORMULAS.items()
    }


def mineral(name: str) -> PhaseSpec:
    """The :class:`PhaseSpec` of a mineral of ``MINERALS`` (stoichiometric composition)."""
    from napari_sigma.synthetic import generator as synthetic

    minerals = synthetic.MINERALS
    if name not in minerals:
        raise ValueError(f"unknown mineral {name!r}; known: {', '.join(sorted(minerals))}")
    return minerals[name]


def _as_phase(phase: str | PhaseSpec) -> PhaseSpec:
    return phase if isinstance(phase, PhaseSpec) else mineral(phase)
