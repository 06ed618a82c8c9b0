"""X-ray emission lines (from xraydb, via the generated ``_xray_table``) and detector resolution.

Line families follow HyperSpy's naming (``Ka``, ``Kb``, ``La``, ``Lb1``, ``Lb2``, ``Lg1``, ``Ll``,
``Ln``, ``Ma``, ``Mb``, ``Mg``, ``Mz`` ...); energies are in keV and a family's ``weight`` is its
intensity relative to the strongest family of the same shell (K, L or M), 1.0.

*Tied* shells (`is_tied`): the L shell of an element without an La line (Cl, Ar, K, Ca, Sc: no
3d electrons, so only the L3-M1 (Ll), L2-M1 (Ln) and L1-M2,3 (Lb3, Lb4) lines), and the M shell
of an element without an Ma line (Zr..Sn: no 4f electrons, so only Mz and Mg). They are real
lines (Ca Ll 0.302 keV, on top of C Ka 0.277 keV; Sn Mz 0.410 keV, on N Ka 0.392 keV) but never
the line an element is mapped, identified or quantified by: the quantification fits them folded
into the template of the shell they are tied to (`tied_to`) with their physical ratio to its
lines (`napari_sigma.quant.line_fit`), the suggestion and the element maps bound them by that
shell (`napari_sigma.xray.line_families`), spectra are simulated with them
(`napari_sigma.quant.simulate`), and every other line list leaves them out unless asked
(``tied=True``).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from napari_sigma.xray._table import LINES

ELEMENTS: tuple[str, ...] = tuple(LINES)
"""Element symbols covered, Be..U in order of atomic number."""

DEFAULT_BEAM_ENERGY_KV = 20.0
MIN_OVERVOLTAGE = 1.5
MIN_LINE_ENERGY_KEV = 0.1
MN_KA_KEV = 5.8987
"""Energy of Mn Ka (intensity-weighted Ka1/Ka2), the reference of detector resolution."""
FANO_NOISE_EV = 2.45
"""``8 ln2 * F * epsilon`` in eV (Fano factor ~0.115, 3.8 eV per electron-hole pair in Si)."""
MIN_FWHM_KEV = 0.02
FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))
"""A Gaussian peak's full width at half maximum over its standard deviation (2.3548)."""

SHELL_ORDER = ("K", "L", "M")
ALPHA_FAMILY = {"K": "Ka", "L": "La", "M": "Ma"}


@dataclass(frozen=True)
class XrayLine:
    """One X-ray line family of an element.

    Parameters
    ----------
    element : str
        Element symbol, e.g. ``"Fe"``.
    family : str
        HyperSpy-style family name, e.g. ``"Ka"``.
    energy : float
        Line energy in keV (intensity-weighted over the family's lines).
    weight : float
        Intensity relative to the strongest family of the same shell (1.0).
    """

    element: str
    family: str
    energy: float
    weight: float

    @property
    def name(self) -> str:
        """The line's name as used in HyperSpy, e.g. ``"Fe_Ka"``."""
        return f"{self.element}_{self.family}"

    @property
    def shell(self) -> str:
        """``"K"``, ``"L"`` or ``"M"``."""
        return self.family[0]

    @property
    def tied(self) -> bool:
        """Whether the line belongs to a tied shell (`is_tied`)."""
        return is_tied(self.element, self.shell)

    @property
    def edge(self) -> float:
        """Ionisation energy (keV) of the line's initial level."""
        return LINES[self.element][self.family][2]


def _check_element(element: str) -> str:
    if element not in LINES:
        raise ValueError(
            f"unknown element {element!r}: expected a symbol from Be to U (case-sensitive, e.g. 'Fe')"
        )
    return element


def is_tied(element: str, shell: str) -> bool:
    """Whether ``shell`` of ``element`` is tied to the shell below it (`tied_to`): an L or M
    shell that the line table holds without its alpha family (La, Ma).

    The table keeps such a shell only where its lines are real peaks a detector sees (see
    scripts/generate_xray_table.py):

    - the L lines of Cl..Sc, tied to K: with no 3d electrons their L shell emits only Ll, Ln,
      Lb3 and Lb4, a few tenths of the K production per atom, near the B, C and N K lines;
    - the M lines of Zr..Sn, tied to L: with no 4f electrons their M shell emits no Ma, only
      Mz (M4,5-N2,3; Sn 0.410 keV, on N Ka 0.392 keV; Ag 0.310 keV, on C Ka) and, from Rh,
      Mg (M3-N5; Sn 0.691 keV, on F Ka).

    A tied shell is never analysed alone: the quantification fits it with the lines of the
    shell it is tied to at their physical ratio; the suggestion and the element maps bound it
    by that shell (`napari_sigma.xray.line_families.family_design`).
    """
    return shell != "K" and ALPHA_FAMILY[shell] not in LINES[element]


def tied_to(element: str, shell: str) -> str:
    """The shell a tied shell (`is_tied`) is fitted with: K for an L shell, L for an M shell."""
    return SHELL_ORDER[SHELL_ORDER.index(shell) - 1]


def _make_line(element: str, family: str) -> XrayLine:
    energy, weight, _ = LINES[element][family]
    return XrayLine(element, family, energy, weight)


def element_lines(
    element: str,
    min_energy: float = MIN_LINE_ENERGY_KEV,
    max_energy: float | None = None,
    tied: bool = False,
) -> list[XrayLine]:
    """All line families of one element within an energy range, by increasing energy.

    Parameters
    ----------
    element : str
        Element symbol.
    min_energy, max_energy : float
        Energy range in keV (``max_energy=None``: no upper limit).
    tied : bool
        Include the lines of tied shells (`is_tied`, e.g. Ca Ll); left out by default.

    Returns
    -------
    list of XrayLine

    Raises
    ------
    ValueError
        For an unknown element.
    """
    _check_element(element)
    lines = [_make_line(element, family) for family in LINES[element]]
    lines = [
        line
        for line in lines
        if line.energy >= min_energy
        and (max_energy is None or line.energy <= max_energy)
        and (tied or not is_tied(element, line.shell))
    ]
    return sorted(lines, key=lambda line: line.energy)


def parse_line(name: str) -> XrayLine:
    """The line called ``name``, e.g. ``"Fe_Ka"``.

    Raises
    ------
    ValueError
        When the name is malformed or the element or family is unknown.
    """
    element, sep, family = name.strip().partition("_")
    if not sep or not family:
        raise ValueError(
            f"cannot parse X-ray line {name!r}: expected 'Element_Family' like 'Fe_Ka'"
        )
    _check_element(element)
    if family not in LINES[element]:
        known = ", ".join(LINES[element])
        raise ValueError(f"{element} has no line {family!r}; known lines: {known}")
    return _make_line(element, family)


def _excited(line: XrayLine, beam_energy: float) -> bool:
    return line.edge * MIN_OVERVOLTAGE <= beam_energy


class LineRangeWarning(UserWarning):
    """An element was dropped because none of its lines lies inside the recorded spectrum."""


def usable_range(axis, low_cutoff_kev: float = MIN_LINE_ENERGY_KEV) -> tuple[float, float]:
    """Energy range ``(low, high)`` keV of a spectrum where lines can be measured.

    Parameters
    ----------
    axis : EnergyAxis
        The spectrum's energy calibration.
    low_cutoff_kev : float
        The detector's low-energy cut-off (zero-energy strobe peak, window absorption).
    """
    low = max(float(axis.offset), float(low_cutoff_kev))
    return low, float(axis.max_energy)


def line_in_range(
    line: XrayLine, energy_range: tuple[float, float] | None, fwhm_mnka_kev: float = 0.130
) -> bool:
    """Whether a line's peak (its energy +- one detector FWHM) lies inside ``energy_range``.

    ``energy_range=None`` means no limit except the 0.1 keV floor of every line list.
    """
    if energy_range is None:
        return line.energy >= MIN_LINE_ENERGY_KEV
    margin = detector_fwhm(line.energy, fwhm_mnka_kev)
    return energy_range[0] <= line.energy - margin and line.energy + margin <= energy_range[1]


def usable_line(
    element: str,
    beam_energy: float | None = None,
    energy_range: tuple[float, float] | None = None,
) -> XrayLine | None:
    """The line used to map ``element``, or None when it has no line inside ``energy_range``.

    This is the one rule every part of napari-sigma uses (analysis, CLI, widgets, markers).
    Shells are tried in the order K, L, M (the strongest first); the first shell whose principal
    line (Ka, La, Ma, else its strongest family) is excited (overvoltage >= 1.5), lies below
    ``beam_energy / 2`` (as in HyperSpy) and lies inside the recorded spectrum
    (`line_in_range`) is chosen. When no shell qualifies (e.g. a very low beam energy), the most
    strongly excited principal line inside the spectrum whose edge is below the beam energy is
    returned; None when there is none.

    Parameters
    ----------
    element : str
        Element symbol.
    beam_energy : float or None
        Beam energy in kV (None: 20 kV).
    energy_range : (float, float) or None
        Recorded energy range in keV (see `usable_range`); None: no limit.

    Raises
    ------
    ValueError
        For an unknown element.
    """
    beam = DEFAULT_BEAM_ENERGY_KV if beam_energy is None else float(beam_energy)
    lines = element_lines(element, min_energy=0.0)
    principals = [_principal_line([line for line in lines if line.shell == s]) for s in SHELL_ORDER]
    inside = [line for line in principals if line is not None and line_in_range(line, energy_range)]
    for line in inside:
        if _excited(line, beam) and line.energy <= beam / 2:
            return line
    candidates = [line for line in inside if line.edge < beam] or [
        line for line in lines if line_in_range(line, energy_range) and line.edge < beam
    ]
    if not candidates:
        return None
    return max(candidates, key=lambda line: (beam / line.edge, line.weight))


def default_line(
    element: str,
    beam_energy: float | None = None,
    energy_range: tuple[float, float] | None = None,
) -> XrayLine:
    """The line used to map ``element`` at ``beam_energy`` kV (see `usable_line`).

    Raises
    ------
    ValueError
        For an unknown element, or an element with no usable line.
    """
    line = usable_line(element, beam_energy, energy_range)
    if line is None:
        raise ValueError(_no_line_message(element, beam_energy, energy_range))
    return line


def _no_line_message(element, beam_energy, energy_range) -> str:
    beam = DEFAULT_BEAM_ENERGY_KV if beam_energy is None else float(beam_energy)
    where = (
        f"inside the recorded spectrum ({energy_range[0]:.2f}-{energy_range[1]:.2f} keV)"
        if energy_range is not None
        else f"above {MIN_LINE_ENERGY_KEV} keV"
    )
    return f"{element} has no X-ray line {where} excited at {beam:g} kV"


def _principal_line(lines: list[XrayLine]) -> XrayLine | None:
    if not lines:
        return None
    alpha = [line for line in lines if line.family == ALPHA_FAMILY[line.shell]]
    return alpha[0] if alpha else max(lines, key=lambda line: line.weight)


def lines_for_elements(
    elements: Iterable[str],
    beam_energy: float | None = None,
    energy_range: tuple[float, float] | None = None,
) -> tuple[str, ...]:
    """Default line names (see `usable_line`) of several elements, in the given order.

    An element with no usable line is dropped with a `LineRangeWarning` that names it.

    Raises
    ------
    ValueError
        For an unknown element.
    """
    names = []
    for element in elements:
        line = usable_line(element, beam_energy, energy_range)
        if line is None:
            message = _no_line_message(element, beam_energy, energy_range)
            warnings.warn(f"{message}: dropped", LineRangeWarning, stacklevel=2)
            continue
        names.append(line.name)
    return tuple(names)


def checked_lines(
    names: Iterable[str],
    beam_energy: float | None = None,
    energy_range: tuple[float, float] | None = None,
) -> tuple[str, ...]:
    """The given line names that lie inside ``energy_range`` and are excited by the beam.

    Lines that do not are dropped with a `LineRangeWarning` that names them.

    Raises
    ------
    ValueError
        For a malformed or unknown line name.
    """
    beam = DEFAULT_BEAM_ENERGY_KV if beam_energy is None else float(beam_energy)
    kept = []
    for name in names:
        line = parse_line(name)
        if line_in_range(line, energy_range) and line.edge < beam:
            kept.append(line.name)
            continue
        where = (
            "" if energy_range is None else f" ({energy_range[0]:.2f}-{energy_range[1]:.2f} keV)"
        )
        warnings.warn(
            f"{line.name} at {line.energy:.2f} keV is not inside the recorded spectrum{where} "
            f"or not excited at {beam:g} kV: dropped",
            LineRangeWarning,
            stacklevel=2,
        )
    return tuple(kept)


def marker_lines(
    elements: Iterable[str],
    beam_energy: float | None = None,
    energy_range: tuple[float, float] | None = None,
    min_weight: float = 0.5,
) -> list[XrayLine]:
    """Lines to mark on a spectrum plot: those of ``elements`` inside the spectrum and excited.

    Parameters
    ----------
    elements : iterable of str
        Element symbols.
    beam_energy : float or None
        Beam energy in kV (None: 20 kV).
    energy_range : (float, float) or None
        Recorded energy range in keV (see `usable_range`).
    min_weight : float
        Drop lines weaker than this relative to their shell's strongest line.
    """
    beam = DEFAULT_BEAM_ENERGY_KV if beam_energy is None else float(beam_energy)
    return [
        line
        for element in elements
        for line in element_lines(element, min_energy=0.0)
        if line.weight >= min_weight and line.edge < beam and line_in_range(line, energy_range)
    ]


def lines_in_range(low: float, high: float, min_weight: float = 0.0) -> list[XrayLine]:
    """All lines of all elements with energy in ``[low, high]`` keV, by increasing energy.

    Parameters
    ----------
    low, high : float
        Energy range in keV.
    min_weight : float
        Drop lines weaker than this (relative to their shell's strongest line).
    """
    found = [
        line
        for element in ELEMENTS
        for line in element_lines(element, min_energy=low, max_energy=high)
        if line.weight >= min_weight
    ]
    return sorted(found, key=lambda line: line.energy)


def all_lines(
    min_weight: float = 0.05, max_energy: float | None = None, min_energy: float = 0.1
) -> list[XrayLine]:
    """Every line with at least ``min_weight`` in an energy range (e.g. for plot markers).

    Parameters
    ----------
    min_weight : float
        Relative weight threshold.
    max_energy : float or None
        Upper energy limit in keV (None: no limit).
    min_energy : float
        Lower energy limit in keV.
    """
    high = np.inf if max_energy is None else max_energy
    return lines_in_range(min_energy, high, min_weight=min_weight)


def detector_fwhm(energy_kev: float | np.ndarray, fwhm_mnka_kev: float = 0.130):
    """Energy resolution (FWHM, keV) of a Si detector at ``energy_kev``.

    Fiori & Newbury (1978): ``FWHM(E)^2 = FWHM(Mn Ka)^2 + 2.45 eV * (E - E(Mn Ka))`` with
    energies in eV, where 2.45 eV = ``8 ln2 * F * epsilon`` (Fano factor and pair-creation energy
    of silicon). The result is floored at 20 eV so that very good detectors at very low energy
    stay positive.

    Parameters
    ----------
    energy_kev : float or ndarray
        Photon energy in keV.
    fwhm_mnka_kev : float
        The detector's FWHM at Mn Ka (5.899 keV), in keV (0.130 is typical for SDDs).

    Returns
    -------
    float or ndarray
        FWHM in keV, same shape as ``energy_kev``.
    """
    energy_ev = np.asarray(energy_kev, dtype=np.float64) * 1000.0
    squared_ev2 = (fwhm_mnka_kev * 1000.0) ** 2 + FANO_NOISE_EV * (energy_ev - MN_KA_KEV * 1000.0)
    fwhm = np.sqrt(np.maximum(squared_ev2, (MIN_FWHM_KEV * 1000.0) ** 2)) / 1000.0
    return float(fwhm) if fwhm.ndim == 0 else fwhm
