"""Fit EDS spectra as non-negative sums of X-ray line-family templates and a smooth background.

Model
-----
A *line family* is one shell (K, L or M) of one element: every line of that shell inside the
recorded spectrum, as channel-integrated Gaussians with the relative weights of the generated
xraydb table (`xray.lines`) and the detector FWHM at each line's energy
(`xray.lines.detector_fwhm`). A family's template has unit area in its *principal* line (Ka,
La, Ma, else the strongest), so its fitted amplitude is the counts in that line, and it is named
after it (``"Fe_Ka"`` is the Fe K family measured as Fe Ka counts).

The shells of one element are coupled: every other shell's amplitude is bounded relative to the
main shell's (that of `xray.lines.usable_line`) by a rough physical yield ratio ``r`` (within a
factor ``SHELL_RATIO_SLACK``), and a shell at higher energy than the main one, well excited,
must be present (at least ``r / LOWER_RATIO_SLACK``). So Fe La cannot be claimed by F Ka while Fe
Ka is strong, and a heavy element cannot explain a light element's K peak with its M lines
alone. With non-negative coefficients the bounds are a set of columns (`FamilyDesign`).

The continuum is a reference background shape (SNIP of the spectrum, or of the map's sum
spectrum) multiplied by a few non-negative cubic B-splines, so its level and slope can change
smoothly but it cannot make peaks. Everything is fitted by non-negative weighted least squares
with Poisson weights: the amplitudes are never negative, and their counting uncertainty is
propagated from the Poisson variance of the fitted model.

`fit_spectrum` fits one spectrum (scipy NNLS); `ImageFitDesign` fits every pixel of a spectrum
image from one projection of the cube (``counts @ weights``, like the window intensities)
followed by a vectorised non-negative solve in the small space of the templates.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from napari_sigma.energy import EnergyAxis
from napari_sigma.xray import lines as xray
from napari_sigma.xray.yields import approximate_fluorescence_yield, fluorescence_yield

MIN_LINE_WEIGHT = 0.01
MIN_EDGE_OVERVOLTAGE = 1.05
SHELL_RATIO_SLACK = 3.0
LOWER_RATIO_SLACK = 3.0
MODEL_ERROR = 0.02
BACKGROUND_KNOT_KEV = 1.0
IMAGE_BACKGROUND_SPLINES = 5
LOW_CUTOFF_KEV = 0.1


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
    is that of `xray.lines.usable_line` (the analysed line).
    """
    beam = xray.DEFAULT_BEAM_ENERGY_KV if beam_energy is None else float(beam_energy)
    low, high = energy_range
    everything = xray.element_lines(element, min_energy=0.0)
    families = []
    for shell in xray.SHELL_ORDER:
        shell_lines = [line for line in everything if line.shell == shell]
        principal = xray._principal_line(shell_lines)
        if principal is None or principal.edge * MIN_EDGE_OVERVOLTAGE > beam:
            continue
        if not xray.line_in_range(principal, energy_range):
            continue
        kept = tuple(
            line
            for line in shell_lines
            if line.weight >= MIN_LINE_WEIGHT and low <= line.energy <= high
        )
        families.append(LineFamily(element, shell, kept, principal))
    main = xray.usable_line(element, beam, energy_range)
    if main is not None:
        families.sort(key=lambda family: family.shell != main.shell)
    return families


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
        Non-negative template columns (shell bounds built in, see the module docstring).
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
    edge = min(line.edge for line in xray.element_lines(element, 0.0) if line.shell == shell)
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
    edge = min(line.edge for line in xray.element_lines(element, 0.0) if line.shell == shell)
    overvoltage = max(beam / edge, 1.0 + 1e-3)
    return fluorescence * (overvoltage * np.log(overvoltage) - overvoltage + 1.0)


def background_knots(low: float, high: float, finest_kev: float = 0.1) -> np.ndarray:
    """Knots of the continuum B-splines: ``finest_kev + 0.1 E`` keV apart (at most 1 keV).

    The continuum changes fastest at low energy (detector window and self-absorption), where
    the peaks are also narrowest (FWHM 50-80 eV): a B-spline is always several peak widths
    wide, so non-negative splines follow the continuum without making peaks.
    """
    knots = [low]
    while knots[-1] < high:
        knots.append(knots[-1] + min(BACKGROUND_KNOT_KEV, finest_kev + 0.1 * max(knots[-1], 0.0)))
    first, last = knots[1] - knots[0], knots[-1] - knots[-2]
    before = [low - first * i for i in (3, 2, 1)]
    after = [knots[-1] + last * i for i in (1, 2, 3)]
    return np.array(before + knots + after)


def background_columns(
    energies: np.ndarray,
    reference: np.ndarray | None = None,
    n_splines: int | None = None,
    finest_kev: float = 0.1,
    beam_energy: float | None = None,
) -> np.ndarray:
    """Non-negative continuum columns: cubic B-splines, optionally times a reference shape.

    Parameters
    ----------
    energies : ndarray, shape (C,)
        Channel energies in keV.
    reference : ndarray, shape (C,) or None
        A reference continuum shape (e.g. a map's mean continuum) modulated by the splines;
        None: the splines themselves (`background_knots`).
    n_splines : int or None
        Uniformly spaced B-splines across the range; None: `background_knots`.
    finest_kev : float
        Knot spacing at 0 keV for `background_knots`.
    beam_energy : float or None
        When given (and ``reference`` is None), add `absorbed_continuum_columns`.
    """
    from scipy.interpolate import BSpline

    low, high = float(energies[0]), float(energies[-1])
    if n_splines is None:
        knots = background_knots(low, high, finest_kev)
    else:
        step = max(high - low, 1e-6) / max(1, n_splines - 3)
        knots = low + step * np.arange(-3, max(1, n_splines - 3) + 4)
    basis = BSpline.design_matrix(np.clip(energies, low, high), knots, 3, extrapolate=False)
    basis = basis.toarray()
    basis = basis[:, basis.sum(axis=0) > 0]
    if reference is None:
        if beam_energy is None:
            return basis
        return np.concatenate([basis, absorbed_continuum_columns(energies, beam_energy)], axis=1)
    return np.clip(reference, 0.0, None)[:, None] * basis


ABSORPTION_EDGES_KEV = (0.2, 0.3, 0.45, 0.65, 0.9, 1.3, 1.8)


def absorbed_continuum_columns(energies: np.ndarray, beam_energy: float) -> np.ndarray:
    """Kramers continuum ``(E0 - E) / E`` seen through absorbers of several thicknesses.

    ``exp(-(E_k / E)^3)`` for ``E_k`` in ``ABSORPTION_EDGES_KEV`` (absorption ~ E^-3: the
    detector window, dead layer and the sample itself): non-negative sums of these follow the
    steep low-energy rise of a real continuum, which B-splines wide enough not to make peaks
    cannot, and none of them can make a peak. Each column is scaled to a maximum of 1.
    """
    e = np.clip(energies, 0.05, None)
    kramers = np.clip(float(beam_energy) - e, 0.0, None) / e
    columns = np.stack([kramers * np.exp(-((k / e) ** 3)) for k in ABSORPTION_EDGES_KEV], axis=1)
    peaks = columns.max(axis=0)
    return columns / np.where(peaks > 0, peaks, 1.0)


def reference_background(counts: np.ndarray, scale: float, fwhm_mnka_kev: float) -> np.ndarray:
    """SNIP continuum of a (lightly smoothed) spectrum, with a window of ~2 detector FWHM."""
    from napari_sigma.xray.elements import _smooth, snip_background

    smooth = _smooth(np.asarray(counts, dtype=np.float64), scale, fwhm_mnka_kev)
    window = int(np.ceil(2.0 * xray.detector_fwhm(5.0, fwhm_mnka_kev) / scale))
    return np.clip(snip_background(smooth, window), 0.0, None), smooth


def fit_range(
    axis: EnergyAxis, beam_energy: float | None, low_cutoff_kev: float = LOW_CUTOFF_KEV
) -> tuple[tuple[float, float], slice]:
    """The usable energy range (`xray.lines.usable_range`, capped at the beam energy) and its channels."""
    low, high = xray.usable_range(axis, low_cutoff_kev)
    if beam_energy:
        high = min(high, float(beam_energy))
    return (low, high), axis.channel_range(low, high)


def _elements_of(items: Iterable[str]) -> tuple[str, ...]:
    """Element symbols from elements or line names (``"Fe"`` or ``"Fe_Ka"``), in order."""
    return tuple(dict.fromkeys(item.partition("_")[0] for item in items))


@dataclass
class FittedFamilies:
    """The line families of a fit, named by their principal lines, and their elements.

    Parameters
    ----------
    families : tuple of str
        Family names (principal lines), e.g. ``("Fe_Ka", "Fe_La", "Pt_La")``.
    elements : tuple of str
        The element of each family.
    """

    families: tuple[str, ...]
    elements: tuple[str, ...]


@dataclass
class SpectrumFit(FittedFamilies):
    """The fit of one spectrum: the intensities of its `FittedFamilies`.

    Parameters
    ----------
    intensities : ndarray, shape (F,)
        Counts in each family's principal line (never negative).
    sigma : ndarray, shape (F,)
        Counting (Poisson) standard deviation of each intensity.
    background : ndarray, shape (E,)
        Fitted continuum on the full energy axis (0 outside the fitted range).
    model : ndarray, shape (E,)
        Fitted spectrum (continuum + lines) on the full axis.
    chi2 : float
        Poisson chi-square of the fit in the fitted range (variance ``max(model, 1)``).
    dof : int
        Channels fitted minus free parameters.
    energy_range : (float, float)
        The fitted energy range in keV.
    """

    intensities: np.ndarray
    sigma: np.ndarray
    background: np.ndarray
    model: np.ndarray
    chi2: float
    dof: int
    energy_range: tuple[float, float]

    def intensity(self, family: str) -> float:
        """The intensity of one family, e.g. ``fit.intensity("Fe_Ka")``."""
        return float(self.intensities[self.families.index(family)])

    def element_intensities(self) -> dict[str, float]:
        """Intensity of each element's main (first) family."""
        found: dict[str, float] = {}
        for element, value in zip(self.elements, self.intensities, strict=True):
            found.setdefault(element, float(value))
        return found


def fit_spectrum(
    counts: np.ndarray,
    energy_axis: EnergyAxis,
    elements: Sequence[str],
    beam_energy: float | None = None,
    fwhm_mnka_kev: float = 0.130,
    low_cutoff_kev: float = LOW_CUTOFF_KEV,
    couple_shells: bool = True,
) -> SpectrumFit:
    """Fit one spectrum with the line families of ``elements`` and a smooth continuum.

    Parameters
    ----------
    counts : ndarray, shape (E,)
        Counts per channel.
    energy_axis : EnergyAxis
        Its calibration.
    elements : sequence of str
        Elements (``"Fe"``) or lines (``"Fe_Ka"``: all families of Fe are fitted).
    beam_energy : float or None
        Beam energy in kV (None: 20 kV); lines not excited are not fitted.
    fwhm_mnka_kev : float
        Detector FWHM at Mn Ka in keV.
    low_cutoff_kev : float
        Channels below this energy are not fitted.
    couple_shells : bool
        Bound the shells of one element relative to each other (see the module docstring).

    Returns
    -------
    SpectrumFit
    """
    counts = np.asarray(counts, dtype=np.float64).ravel()
    if counts.size != energy_axis.size:
        raise ValueError(f"{counts.size} counts for an energy axis of {energy_axis.size} channels")
    energy_range, channels = fit_range(energy_axis, beam_energy, low_cutoff_kev)
    energies = energy_axis.energies[channels]
    data = counts[channels]
    design = family_design(
        energies, energy_axis.scale, _elements_of(elements), beam_energy, energy_range,
        fwhm_mnka_kev, couple_shells,
    )  # fmt: skip
    reference, smooth = reference_background(data, energy_axis.scale, fwhm_mnka_kev)
    net = np.clip(smooth - reference, 0.0, None)
    variance = np.maximum(smooth, 1.0) + (MODEL_ERROR * net) ** 2
    fit = fit_columns(design.columns, background_columns(energies), data, 1.0 / np.sqrt(variance))
    covariance = fit.line_covariance(variance=np.maximum(fit.model, 0.0))
    transform = design.to_families
    return SpectrumFit(
        families=design.names,
        elements=tuple(f.element for f in design.families),
        intensities=fit.lines @ transform,
        sigma=np.sqrt(np.clip(np.einsum("jf,jk,kf->f", transform, covariance, transform), 0, None)),
        background=on_axis(fit.background, channels, counts.size),
        model=on_axis(fit.model, channels, counts.size),
        chi2=float(np.sum((data - fit.model) ** 2 / np.maximum(fit.model, 1.0))),
        dof=int(data.size - np.count_nonzero(fit.coefficients)),
        energy_range=energy_range,
    )


@dataclass
class ColumnFit:
    """A non-negative weighted least-squares fit of line columns and continuum columns.

    The one solver of the spectrum fits (`fit_spectrum`, element suggestion and the
    quantification's `napari_sigma.quant.line_fit.fit_lines`): each builds its own columns and
    weights and calls `fit_columns`.

    Parameters
    ----------
    matrix : ndarray, shape (C, J + B)
        The line columns, then the continuum columns.
    weights : ndarray, shape (C,)
        Weight of each channel (residuals are multiplied by it).
    coefficients : ndarray, shape (J + B,)
        The fitted coefficients (never negative).
    n_lines : int
        J, the number of line columns.
    chi2 : float
        Weighted chi-square, ``sum(((model - data) * weights) ** 2)``.
    """

    matrix: np.ndarray
    weights: np.ndarray
    coefficients: np.ndarray
    n_lines: int
    chi2: float

    @property
    def lines(self) -> np.ndarray:
        """Coefficients of the line columns, ``(J,)``."""
        return self.coefficients[: self.n_lines]

    @property
    def model(self) -> np.ndarray:
        """The fitted spectrum on the fitted channels, ``(C,)``."""
        return self.matrix @ self.coefficients

    @property
    def background(self) -> np.ndarray:
        """The continuum part of the model, ``(C,)``."""
        return self.matrix[:, self.n_lines :] @ self.coefficients[self.n_lines :]

    def line_covariance(self, variance: np.ndarray | None = None) -> np.ndarray:
        """Counting covariance ``(J, J)`` of the line coefficients.

        Over the line columns and the active continuum columns (inactive ones are held at
        zero), with ``H = A' W A`` and ``W = weights**2``: ``H^-1`` when the weights are the
        inverse standard deviations of the counts (``variance`` None), else the sandwich
        ``H^-1 A' W diag(variance) W A H^-1`` (e.g. the Poisson variance of the model when the
        weights come from a smoothed spectrum).
        """
        active = np.ones(self.coefficients.size, bool)
        active[self.n_lines :] = self.coefficients[self.n_lines :] > 0
        a = self.matrix[:, active]
        w = self.weights**2
        covariance = np.linalg.pinv(a.T @ (w[:, None] * a))
        if variance is not None:
            sandwich = a.T @ ((w**2 * variance)[:, None] * a)
            covariance = covariance @ sandwich @ covariance
        return covariance[: self.n_lines, : self.n_lines]


def fit_columns(
    lines: np.ndarray, continuum: np.ndarray, data: np.ndarray, weights: np.ndarray
) -> ColumnFit:
    """Fit ``data ~ [lines, continuum] @ c`` with ``c >= 0``, residuals weighted by ``weights``.

    scipy's NNLS on the weighted columns, each scaled to unit norm first (the solution is the
    same; the scaling keeps the active-set iterations well conditioned).

    Parameters
    ----------
    lines : ndarray, shape (C, J)
        Line columns (templates) on the fitted channels.
    continuum : ndarray, shape (C, B)
        Continuum columns.
    data : ndarray, shape (C,)
        Counts on the fitted channels.
    weights : ndarray, shape (C,)
        Weight of each channel, typically ``1 / sqrt(variance)``.

    Returns
    -------
    ColumnFit
    """
    from scipy.optimize import nnls

    matrix = np.concatenate([lines, continuum], axis=1)
    scaled = matrix * weights[:, None]
    norms = np.maximum(np.linalg.norm(scaled, axis=0), 1e-30)
    coefficients, _ = nnls(scaled / norms, data * weights, maxiter=50 * matrix.shape[1])
    coefficients = coefficients / norms
    residual = (matrix @ coefficients - data) * weights
    return ColumnFit(matrix, weights, coefficients, lines.shape[1], float(residual @ residual))


def on_axis(values: np.ndarray, channels: slice, size: int) -> np.ndarray:
    """``values`` of the fitted channels on the full axis of ``size`` channels (0 elsewhere)."""
    full = np.zeros(size)
    full[channels] = values
    return full


SI_KA_KEV = 1.7398
SI_K_EDGE_KEV = 1.8389


def detector_artefact_columns(energy_axis: EnergyAxis, net: np.ndarray) -> np.ndarray:
    """Shapes of the pile-up (sum) and silicon escape peaks of a spectrum, ``(E, 2)``.

    Built from the spectrum's own peaks (``net``: counts above the continuum, full axis), so
    they need no element list:

    - pile-up: two photons detected as one, at the sum of their energies, with a rate
      proportional to the product of the two lines' rates: the autoconvolution of ``net``;
    - escape: a Si K photon of the detector escapes and the event is recorded 1.74 keV low,
      only above the Si K edge, less often at high energy (the photon is absorbed deeper):
      ``net(E + 1.74) * (1.839 / (E + 1.74))^2.7``.

    Both columns are scaled to unit sum (their amplitudes are fitted).
    """
    net = np.clip(np.asarray(net, dtype=np.float64), 0.0, None)
    size, offset, scale = energy_axis.size, energy_axis.offset, energy_axis.scale
    # channel k of the sum of channels i and j: E_i + E_j = 2 offset + (i + j) scale
    pile = np.convolve(net, net)
    shift = round(offset / scale)
    index = np.arange(size) - shift
    pile_up = np.where(
        (index >= 0) & (index < len(pile)), pile[np.clip(index, 0, len(pile) - 1)], 0.0
    )
    energies = energy_axis.energies
    parent = energies + SI_KA_KEV
    parent_net = np.interp(parent, energies, net, left=0.0, right=0.0)
    escape = np.where(parent > SI_K_EDGE_KEV, parent_net * (SI_K_EDGE_KEV / parent) ** 2.7, 0.0)
    columns = np.stack([pile_up, escape], axis=1)
    totals = columns.sum(axis=0)
    return columns / np.where(totals > 0, totals, 1.0)
