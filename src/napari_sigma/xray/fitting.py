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

This module holds the fits (:func:`fit_spectrum`, :func:`fit_columns`, the pile-up and escape
columns); the rest lives by domain: :mod:`~napari_sigma.xray.line_families` (``LineFamily``,
``element_families``, ``family_profile``, ``family_design``, ``FamilyDesign``, ``ElementShell``)
and :mod:`~napari_sigma.xray.continuum` (``background_columns``, ``background_knots``,
``absorbed_continuum_columns``, ``reference_background``). Their names are importable from here as
before; change them in their own modules, patch them in the module that reads them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from napari_sigma.energy import EnergyAxis
from napari_sigma.xray import lines as xray

# moved by domain (eighteenth session): importable from here as before; a patch takes effect in
# the module that reads the name
from napari_sigma.xray.continuum import (  # noqa: F401
    ABSORPTION_EDGES_KEV,
    BACKGROUND_KNOT_KEV,
    absorbed_continuum_columns,
    background_columns,
    background_knots,
    reference_background,
)
from napari_sigma.xray.line_families import (  # noqa: F401
    LOWER_RATIO_SLACK,
    MIN_EDGE_OVERVOLTAGE,
    MIN_LINE_WEIGHT,
    SHELL_RATIO_SLACK,
    ElementShell,
    FamilyDesign,
    LineFamily,
    _coupled_columns,
    _is_required,
    _shell_yield,
    element_families,
    family_design,
    family_profile,
)

MODEL_ERROR = 0.02

IMAGE_BACKGROUND_SPLINES = 5

LOW_CUTOFF_KEV = 0.1


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
    # the power on parents above the edge only (an axis starting below -1.74 keV has parents <= 0)
    absorbed = (SI_K_EDGE_KEV / np.maximum(parent, SI_K_EDGE_KEV)) ** 2.7
    escape = np.where(parent > SI_K_EDGE_KEV, parent_net * absorbed, 0.0)
    columns = np.stack([pile_up, escape], axis=1)
    totals = columns.sum(axis=0)
    return columns / np.where(totals > 0, totals, 1.0)
