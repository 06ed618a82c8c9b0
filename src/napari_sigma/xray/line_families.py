"""Line families and their template columns (:mod:`napari_sigma.xray.fitting`): an element's
families measurable in a spectrum (:func:`element_families`, :class:`LineFamily`), a family's
channel profile (:func:`family_profile`), and the non-negative template columns of several
elements with each element's shells coupled by their yield ratios (:func:`family_design`,
:class:`FamilyDesign`)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from napari_sigma.xray import lines as xray
from napari_sigma.xray.yields import approximate_fluorescence_yield, fluorescence_yield

MIN_LINE_WEIGHT = 0.01

BOUNDED_TIED_SHELLS = ("M",)
"""Tied shells (`xray.lines.is_tied`) that the families hold, bounded by the shell they are tied
to: the M lines of Zr..Sn (Sn Mz 0.410 keV is read as N Ka without them). The tied L lines of
Cl..Sc (Ca Ll 0.302 keV) are left out here as before (only the quantification folds them in)."""

MIN_EDGE_OVERVOLTAGE = 1.05

SHELL_RATIO_SLACK = 3.0

LOWER_RATIO_SLACK = 3.0


@dataclass(frozen=True)
class ElementShell:
    """One shell of one element: what a line family or a fitted line group belongs to.

    Parameters
    ----------
    element : str
        Element symbol.
    shell : str
        ``"K"``, ``"L"`` or ``"M"``.
    """

    element: str
    shell: str


@dataclass(frozen=True)
class LineFamily(ElementShell):
    """The lines of one shell of one element inside a spectrum (an `ElementShell`).

    Parameters
    ----------
    lines : tuple of XrayLine
        The shell's line families with weight >= ``MIN_LINE_WEIGHT`` inside the spectrum.
    principal : XrayLine
        The line the family is measured and named by (Ka, La, Ma, else the strongest).
    """

    lines: tuple[xray.XrayLine, ...]
    principal: xray.XrayLine

    @property
    def name(self) -> str:
        """The principal line's name, e.g. ``"Fe_Ka"``."""
        return self.principal.name


def element_families(
    element: str,
    beam_energy: float | None,
    energy_range: tuple[float, float],
    fwhm_mnka_kev: float = 0.130,
) -> list[LineFamily]:
    """The line families of ``element`` measurable in a spectrum, main family first.

    A shell counts when its principal line lies inside ``energy_range``
    (`xray.lines.line_in_range`) and its edge is excited (overvoltage >= 1.05). The main family
    is that of `xray.lines.usable_line` (the analysed line). A tied shell
    (`xray.lines.is_tied`) of `BOUNDED_TIED_SHELLS` (Sn's M lines) counts only with the shell it
    is tied to (`xray.lines.tied_to`), and is never the main family: its amplitude is bounded
    by that shell's (`family_design`), never free.
    """
    beam = xray.DEFAULT_BEAM_ENERGY_KV if beam_energy is None else float(beam_energy)
    low, high = energy_range
    everything = xray.element_lines(element, min_energy=0.0, tied=True)
    families = []
    for shell in xray.SHELL_ORDER:
        shell_lines = [line for line in everything if line.shell == shell]
        principal = xray._principal_line(shell_lines)
        if principal is None or principal.edge * MIN_EDGE_OVERVOLTAGE > beam:
            continue
        if xray.is_tied(element, shell) and (
            shell not in BOUNDED_TIED_SHELLS
            or xray.tied_to(element, shell) not in {family.shell for family in families}
        ):
            continue
        kept = tuple(
            line
            for line in shell_lines
            if line.weight >= MIN_LINE_WEIGHT and low <= line.energy <= high
        )
        if xray.is_tied(element, shell):  # one family per line (see `_tied_families`)
            families += _tied_families(element, shell, kept, energy_range)
            continue
        if not xray.line_in_range(principal, energy_range):
            continue
        families.append(LineFamily(element, shell, kept, principal))
    main = xray.usable_line(element, beam, energy_range)
    if main is not None:
        families.sort(key=lambda family: family.shell != main.shell)
    return families


def _tied_families(
    element: str, shell: str, lines: tuple[xray.XrayLine, ...], energy_range: tuple[float, float]
) -> list[LineFamily]:
    """A tied shell's lines inside the spectrum, one family each.

    Each is bounded by the shell it is tied to in proportion to its weight (`_coupled_columns`),
    not by the others: the ratios within a shell without its alpha line are the least known of
    the table (Sn's Mg (M3-N5) / Mz: 0.1 from the level populations, a few hundredths in other
    tables), and one fixed ratio makes the stronger line follow the weaker one's misfit.
    """
    return [
        LineFamily(element, shell, (line,), line)
        for line in lines
        if xray.line_in_range(line, energy_range)
    ]


def family_profile(
    energies: np.ndarray, scale: float, family: LineFamily, fwhm_mnka_kev: float
) -> np.ndarray:
    """Expected counts per channel of a family with one count in its principal line."""
    from scipy.special import erf

    low, high = energies - scale / 2, energies + scale / 2
    profile = np.zeros(len(energies))
    for line in family.lines:
        sigma = xray.detector_fwhm(line.energy, fwhm_mnka_kev) / xray.FWHM_PER_SIGMA
        z_low = (low - line.energy) / (sigma * np.sqrt(2.0))
        z_high = (high - line.energy) / (sigma * np.sqrt(2.0))
        profile += line.weight * 0.5 * (erf(z_high) - erf(z_low))
    return profile / family.principal.weight


@dataclass
class FamilyDesign:
    """Template columns of the line families of several elements on a set of channels.

    Parameters
    ----------
    families : tuple of LineFamily
        Every family, grouped by element, main family first.
    columns : ndarray, shape (C, J)
        Non-negative template columns (shell bounds built in, see :mod:`napari_sigma.xray.fitting`).
    to_families : ndarray, shape (J, F)
        Family amplitudes (counts in each principal line) are ``coefficients @ to_families``.
    column_elements : tuple of str
        The element of each column.
    """

    families: tuple[LineFamily, ...]
    columns: np.ndarray
    to_families: np.ndarray
    column_elements: tuple[str, ...]
    fwhm_mnka_kev: float = 0.130

    @property
    def names(self) -> tuple[str, ...]:
        """Family names (principal lines), e.g. ``("Fe_Ka", "Fe_La")``."""
        return tuple(family.name for family in self.families)


def family_design(
    energies: np.ndarray,
    scale: float,
    elements: Iterable[str],
    beam_energy: float | None,
    energy_range: tuple[float, float],
    fwhm_mnka_kev: float = 0.130,
    couple_shells: bool = True,
) -> FamilyDesign:
    """Template columns of ``elements`` (those without a measurable family are left out)."""
    beam = xray.DEFAULT_BEAM_ENERGY_KV if beam_energy is None else float(beam_energy)
    families: list[LineFamily] = []
    blocks, maps, owners = [], [], []
    for element in dict.fromkeys(elements):
        own = element_families(element, beam, energy_range, fwhm_mnka_kev)
        if not own:
            continue
        shapes = [family_profile(energies, scale, f, fwhm_mnka_kev) for f in own]
        if couple_shells and len(own) > 1:
            columns, mapping = _coupled_columns(element, own, shapes, beam)
        else:
            columns, mapping = np.stack(shapes, axis=1), np.eye(len(own))
        families += own
        blocks.append(columns)
        maps.append(mapping)
        owners += [element] * columns.shape[1]
    n_columns = sum(block.shape[1] for block in blocks)
    to_families = np.zeros((n_columns, len(families)))
    row = col = 0
    for mapping in maps:
        to_families[row : row + mapping.shape[0], col : col + mapping.shape[1]] = mapping
        row, col = row + mapping.shape[0], col + mapping.shape[1]
    design = np.concatenate(blocks, axis=1) if blocks else np.zeros((len(energies), 0))
    return FamilyDesign(tuple(families), design, to_families, tuple(owners), fwhm_mnka_kev)


def _coupled_columns(
    element: str, families: list[LineFamily], shapes: list[np.ndarray], beam: float
) -> tuple[np.ndarray, np.ndarray]:
    """Columns ``[F, F + (hi_i - lo_i) T_i ...]`` with ``F = T_0 + sum(lo_i T_i)``.

    Amplitude ``a_i`` of family ``i`` is then bounded by ``lo_i a_0 <= a_i <= hi_i a_0``; the
    returned mapping ``(J, F)`` turns column coefficients into family amplitudes.
    """
    main = families[0].shell
    ratios = [
        _shell_yield(element, f.shell, beam) / _shell_yield(element, main, beam) for f in families
    ]
    ratios = [  # a tied shell's line (`_tied_families`): its share of its shell's yield
        r * f.principal.weight if xray.is_tied(element, f.shell) else r
        for f, r in zip(families, ratios, strict=True)
    ]
    upper = [SHELL_RATIO_SLACK * r for r in ratios[1:]]
    lower = [
        r / LOWER_RATIO_SLACK if _is_required(element, f.shell, main, beam) else 0.0
        for f, r in zip(families[1:], ratios[1:], strict=True)
    ]
    floor = shapes[0] + sum((lo * s for lo, s in zip(lower, shapes[1:], strict=True)), 0.0)
    columns = [floor]
    mapping = np.zeros((len(families), len(families)))
    mapping[:, 0] = 1.0
    mapping[:, 1:] = lower
    for index, (shape, lo, hi) in enumerate(zip(shapes[1:], lower, upper, strict=True), start=1):
        columns.append(floor + max(hi - lo, 0.0) * shape)
        mapping[index, index] += max(hi - lo, 0.0)
    return np.stack(columns, axis=1), mapping


def _is_required(element: str, shell: str, main: str, beam: float) -> bool:
    """Whether a shell at higher energy than the main one is excited enough to be required."""
    if xray.SHELL_ORDER.index(shell) >= xray.SHELL_ORDER.index(main):
        return False
    everything = xray.element_lines(element, 0.0, tied=True)
    edge = min(line.edge for line in everything if line.shell == shell)
    return beam >= xray.MIN_OVERVOLTAGE * edge


def _shell_yield(element: str, shell: str, beam: float) -> float:
    """Rough relative intensity of a shell's strongest line under a ``beam`` kV electron beam.

    Fluorescence yield times the generated intensity of a thick target, ``U ln U - U + 1``
    (Bethe stopping power and ionisation cross-section ``ln U / U``; U is the overvoltage of the
    shell's alpha edge). Absorption and detector efficiency are ignored: the ratio is only used
    as a loose bound (``SHELL_RATIO_SLACK``). The yields are the quantification's
    (:func:`~napari_sigma.xray.yields.fluorescence_yield`): xraydb's (Elam et al. 2002) K and
    L3, EADL's M5. The ``Z^4 / (a + Z^4)`` law used before for K and L put Ti's L3/K ratio at 2.0x
    xraydb's and V's at 1.4x (Cu's at 0.73x); the law is kept only where a table has no yield.
    """
    z = xray.ELEMENTS.index(element) + 4
    fluorescence = fluorescence_yield(element, shell)
    if fluorescence <= 0.0:
        fluorescence = approximate_fluorescence_yield(z, shell)
    everything = xray.element_lines(element, 0.0, tied=True)
    edge = min(line.edge for line in everything if line.shell == shell)
    overvoltage = max(beam / edge, 1.0 + 1e-3)
    return fluorescence * (overvoltage * np.log(overvoltage) - overvoltage + 1.0)
