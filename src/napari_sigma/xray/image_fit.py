"""Fitted element maps: every pixel of a spectrum image fitted with line families and a continuum.

The per-pixel model is that of `napari_sigma.xray.fitting` (line-family templates with coupled
shells, plus the map's mean continuum shape times a few non-negative B-splines). Weighted least
squares with fixed weights is linear in the data, so the whole cube is fitted from one projection
``b = counts @ (W A)`` (``W``: Poisson weights of the mean pixel spectrum, ``A``: the columns) —
the same single pass over the cube as window intensities — followed by a non-negative solve of
``min 0.5 x'Gx - b'x, x >= 0`` (``G = A'WA``, a few tens of unknowns) for all pixels at once
by coordinate descent. The counting variance of each family amplitude is linear in the fitted
model, so it is ``x @ V`` with a small precomputed matrix ``V``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from napari_sigma.compute.chunks import block_pixels
from napari_sigma.compute.progress import Computation, Progress
from napari_sigma.energy import EnergyAxis
from napari_sigma.xray import fitting

SOLVE_CHUNK = 4096
SOLVE_BLOCK = 8 * SOLVE_CHUNK  # pixels solved between two yields (about 0.1 s on one core)
MAX_SWEEPS = 60
TOLERANCE = 1e-2
VARIANCE_FLOOR = 1e-3
LINE_MARGIN_KEV = 1.0
SUM_PIXELS = 65536


@dataclass
class ImageFitDesign(fitting.FittedFamilies):
    """Everything needed to fit each pixel from its projection onto ``weights``.

    The fitted families are the `~napari_sigma.xray.fitting.FittedFamilies` fields.

    Parameters
    ----------
    weights : ndarray, shape (E, J + 1), float32
        Projection of a pixel spectrum (full energy axis): the first ``J`` columns give the
        reduced right-hand side of the element coefficients (continuum eliminated), the last
        the pixel's counts in the fitted window.
    gram : ndarray, shape (J, J)
        The reduced normal matrix of the element coefficients.
    to_families : ndarray, shape (J, F)
        Family amplitudes are ``coefficients @ to_families``.
    unit_variance : ndarray, shape (F,)
        Counting variance of the family amplitudes per count in the window, for a pixel whose
        spectrum has the shape of the mean spectrum (the variance of a linear estimate is
        linear in the expected counts; using the mean shape keeps the cube pass to one extra
        column).
    """

    weights: np.ndarray
    gram: np.ndarray
    to_families: np.ndarray
    unit_variance: np.ndarray

    def solve(self, projected: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Family amplitudes and their standard deviations for projected pixels ``(N, J + 1)``.

        Returns
        -------
        intensities, sigma : ndarray, shape (N, F), float32
        """
        n_elements = self.gram.shape[0]
        coefficients = nonnegative_gram_solve(self.gram, projected[:, :n_elements])
        intensities = coefficients @ self.to_families
        counts = np.clip(projected[:, n_elements : n_elements + 1], 0.0, None)
        sigma = np.sqrt(counts * self.unit_variance[None, :])
        return intensities.astype(np.float32), sigma.astype(np.float32)


def image_fit_design(
    sum_counts: np.ndarray,
    n_pixels: int,
    axis: EnergyAxis,
    elements: Sequence[str],
    beam_energy: float | None = None,
    fwhm_mnka_kev: float = 0.130,
    low_cutoff_kev: float = fitting.LOW_CUTOFF_KEV,
    n_background: int = fitting.IMAGE_BACKGROUND_SPLINES,
) -> ImageFitDesign:
    """The per-pixel fit of a spectrum image whose sum spectrum is ``sum_counts``.

    Each element is one template: its families in the ratios fitted on the sum spectrum
    (`napari_sigma.xray.fitting.fit_spectrum`, shells coupled), so every line of the element
    is evidence for it and overlaps are resolved by whole patterns. The continuum (the mean
    SNIP continuum times ``n_background`` B-splines, free per pixel) is eliminated from the
    normal equations, leaving one unknown per element.

    Parameters
    ----------
    sum_counts : ndarray, shape (E,)
        The image's sum spectrum (weights, family ratios and the continuum shape come from it).
    n_pixels : int
        Pixels summed in it.
    axis : EnergyAxis
        Energy calibration.
    elements : sequence of str
        Elements or line names.
    beam_energy, fwhm_mnka_kev, low_cutoff_kev
        As in `napari_sigma.xray.fitting.fit_spectrum`.
    n_background : int
        B-splines modulating the mean continuum per pixel.
    """
    energy_range, channels = _line_window(axis, elements, beam_energy, low_cutoff_kev)
    energies = axis.energies[channels]
    design = fitting.family_design(
        energies, axis.scale, fitting._elements_of(elements), beam_energy, energy_range,
        fwhm_mnka_kev,
    )  # fmt: skip
    total = fitting.fit_spectrum(
        sum_counts, axis, elements, beam_energy, fwhm_mnka_kev, low_cutoff_kev
    )
    element_columns, to_families = _element_templates(design, total, energies, axis.scale)
    reference = total.background[channels] / max(int(n_pixels), 1)
    background = fitting.background_columns(energies, reference, n_background)
    background = background[:, background.sum(axis=0) > 0]
    expected = np.maximum(total.model[channels] / max(int(n_pixels), 1), 0.0)
    floor = VARIANCE_FLOOR * max(float(expected.max()), 1e-12)
    inverse_variance = 1.0 / np.maximum(expected, floor)
    lines_w = element_columns * inverse_variance[:, None]
    back_w = background * inverse_variance[:, None]
    # eliminate the continuum: b_r = b_l - G_lb G_bb^-1 b_b, G_r = G_ll - G_lb G_bb^-1 G_bl
    g_bb_inv = np.linalg.pinv(background.T @ back_w)
    g_lb = element_columns.T @ back_w
    reduced_w = lines_w - back_w @ (g_bb_inv @ g_lb.T)
    gram = element_columns.T @ reduced_w
    estimator = to_families.T @ np.linalg.pinv(gram) @ reduced_w.T  # (F, C)
    full = np.zeros((axis.size, gram.shape[0] + 1))
    full[channels, : gram.shape[0]] = reduced_w
    full[channels, gram.shape[0]] = 1.0  # the pixel's counts in the window
    return ImageFitDesign(
        families=design.names,
        elements=tuple(f.element for f in design.families),
        weights=full.astype(np.float32),
        gram=gram,
        to_families=to_families,
        unit_variance=(estimator**2) @ expected / max(float(expected.sum()), 1e-12),
    )


def _line_window(
    axis: EnergyAxis, elements: Sequence[str], beam_energy: float | None, low_cutoff_kev: float
) -> tuple[tuple[float, float], slice]:
    """The fitted range: the usable range cut to ``LINE_MARGIN_KEV`` around the elements' lines.

    Channels far from every line only inform the continuum; leaving them out keeps the
    projection of the cube (its cost is proportional to the channels read) small.
    """
    energy_range, _ = fitting.fit_range(axis, beam_energy, low_cutoff_kev)
    lines = [
        line.energy
        for element in fitting._elements_of(elements)
        for family in fitting.element_families(element, beam_energy, energy_range)
        for line in family.lines
    ]
    if not lines:
        return energy_range, axis.channel_range(*energy_range)
    low = max(energy_range[0], min(lines) - LINE_MARGIN_KEV)
    high = min(energy_range[1], max(lines) + LINE_MARGIN_KEV)
    return (low, high), axis.channel_range(low, high)


def _element_templates(
    design: fitting.FamilyDesign, total: fitting.SpectrumFit, energies: np.ndarray, scale: float
) -> tuple[np.ndarray, np.ndarray]:
    """One column per element (its families in the sum-spectrum ratios) and the map to families.

    Returns
    -------
    columns : ndarray, shape (C, J)
    to_families : ndarray, shape (J, F)
        Family amplitude = element coefficient * the family's ratio to the main family.
    """
    fwhm_mnka_kev = design.fwhm_mnka_kev
    owners = list(dict.fromkeys(f.element for f in design.families))
    columns = np.zeros((len(energies), len(owners)))
    to_families = np.zeros((len(owners), len(design.families)))
    for index, family in enumerate(design.families):
        row = owners.index(family.element)
        main = total.intensities[total.elements.index(family.element)]
        value = total.intensities[total.families.index(family.name)]
        ratio = 1.0 if family.name == total.families[total.elements.index(family.element)] else 0.0
        if main > 0 and ratio == 0.0:
            ratio = value / main
        to_families[row, index] = ratio
        if ratio > 0:
            columns[:, row] += ratio * fitting.family_profile(
                energies, scale, family, fwhm_mnka_kev
            )
    return columns, to_families


def nonnegative_gram_solve(
    gram: np.ndarray, projected: np.ndarray, max_sweeps: int = MAX_SWEEPS, tol: float = TOLERANCE
) -> np.ndarray:
    """``argmin 0.5 x'Gx - b'x`` subject to ``x >= 0`` for every row ``b`` of ``projected``.

    Coordinate descent (exact for each coordinate), vectorised over pixels, in chunks of
    ``SOLVE_CHUNK`` pixels (small enough to stay in the CPU cache: 4096 measured 3-5x faster
    than 16384); a chunk stops when no coordinate moves by more than ``tol`` standard units
    (``|dx_k| sqrt(G_kk)``: a chi change of about ``tol``).

    Returns
    -------
    ndarray, shape (N, K), float64
    """
    projected = np.asarray(projected, dtype=np.float64)
    n, k = projected.shape
    out = np.zeros((n, k))
    diagonal = np.diag(gram).copy()
    usable = np.flatnonzero(diagonal > 0)
    start_map = np.linalg.pinv(gram)
    scale = np.sqrt(np.maximum(diagonal, 0.0))
    for first in range(0, n, SOLVE_CHUNK):
        b = np.ascontiguousarray(projected[first : first + SOLVE_CHUNK].T)  # (K, n)
        unconstrained = start_map @ b
        x = np.clip(unconstrained, 0.0, None)
        x[diagonal <= 0] = 0.0
        # pixels whose unconstrained solution is non-negative are already optimal
        clipped = np.flatnonzero((unconstrained < 0).any(axis=0))
        out[first : first + b.shape[1]] = x.T
        if clipped.size == 0:
            continue
        b, x = np.ascontiguousarray(b[:, clipped]), np.ascontiguousarray(x[:, clipped])
        for _ in range(max_sweeps):
            largest = 0.0
            for j in usable:
                new = np.maximum(x[j] + (b[j] - gram[j] @ x) / diagonal[j], 0.0)
                largest = max(largest, float(np.abs(new - x[j]).max()) * scale[j])
                x[j] = new
            if largest < tol:
                break
        out[first + clipped] = x.T
    return out


@dataclass
class ImageFit(fitting.FittedFamilies):
    """Fitted family maps of a spectrum image (of its `~napari_sigma.xray.fitting.FittedFamilies`).

    Parameters
    ----------
    intensities : ndarray, shape (y, x, F), float32
        Counts in each family's principal line per pixel (never negative).
    sigma : ndarray, shape (y, x, F), float32
        Their counting standard deviations.
    extra : ndarray, shape (y, x, M), float32, or None
        Projections made in the same pass (``extra_weights`` of `fit_spectrum_image`).
    """

    intensities: np.ndarray
    sigma: np.ndarray
    extra: np.ndarray | None = None

    def maps_of(self, lines: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Intensity and sigma maps ``(y, x, L)`` of the given lines' families, in order.

        A line is matched to its element's family of the same shell (``"Fe_Kb"`` -> the Fe K
        family); a line whose family was not fitted gives zeros.
        """
        shape = (*self.intensities.shape[:2], len(lines))
        values, errors = np.zeros(shape, np.float32), np.zeros(shape, np.float32)
        keys = [(name.partition("_")[0], name.partition("_")[2][:1]) for name in self.families]
        for index, line in enumerate(lines):
            element, _, family = line.partition("_")
            if (element, family[:1]) in keys:
                found = keys.index((element, family[:1]))
                values[..., index] = self.intensities[..., found]
                errors[..., index] = self.sigma[..., found]
        return values, errors


def sum_spectrum(counts, max_pixels: int | None = None) -> tuple[np.ndarray, int]:
    """Counts summed over pixels, float64 ``(E,)``, and the number of pixels summed.

    With ``max_pixels``, only every n-th row is read so that about that many pixels are
    summed: the mean spectrum of a map is known well from a regular subsample, at a fraction
    of the cost of a pass over the cube.
    """
    from napari_sigma.compute.arrival import row_step, wait_for_rows

    ny, nx = int(counts.shape[0]), int(counts.shape[1])
    step = 1 if max_pixels is None else row_step(ny, nx, max_pixels)
    wait_for_rows(counts, slice(0, ny, step))  # a cube still being read (compute.arrival)
    per_pixel = int(counts.shape[-1]) * (np.dtype(counts.dtype).itemsize + 8)
    per_chunk = max(1, block_pixels(262144, per_pixel) // max(nx, 1))
    if _sums_in_bands(counts):
        return _summed_in_bands(counts, step, min(per_chunk, max(1, BAND_PIXELS // nx)))
    total = np.zeros(int(counts.shape[-1]))
    summed = 0
    for start in range(0, ny, per_chunk * step):
        block = np.asarray(counts[start : start + per_chunk * step : step])
        # integer accumulation: a float64 cast of every count measured 5-10x slower
        total += block.sum(axis=(0, 1), dtype=np.int64)  # a strided view: no reshape copy
        summed += block.shape[0] * nx
    return total, summed


BAND_PIXELS = 16384
"""Pixels per band of :func:`sum_spectrum`'s integer sums (at most 65537: a band's sums of
16-bit counts then fit in 32 bits)."""


def _sums_in_bands(counts) -> bool:
    """Whether :func:`sum_spectrum` sums ``counts`` in bands on every core: a numpy cube
    ``(y, x, E)`` of unsigned integers of at most 16 bits, rows of at most
    :data:`BAND_PIXELS` pixels (others: one block after the other in 64-bit sums)."""
    dtype = np.dtype(counts.dtype)
    return (
        isinstance(counts, np.ndarray)
        and counts.ndim == 3
        and dtype.kind in "bu"
        and dtype.itemsize <= 2
        and int(counts.shape[1]) <= BAND_PIXELS
    )


def _summed_in_bands(counts: np.ndarray, step: int, rows: int) -> tuple[np.ndarray, int]:
    """:func:`sum_spectrum` of small unsigned counts: every ``step``-th row, in bands of
    ``rows`` sampled rows summed as 32-bit integers (exact: a band holds at most
    :data:`BAND_PIXELS` pixels) on every core (numpy releases the GIL), the bands' sums added
    in float64 in order. Integer sums below 2**53 are exact in any order: the numbers of the
    one-thread loop of 64-bit sums."""
    from napari_sigma.compute.blocks import threaded_map

    ny, nx = int(counts.shape[0]), int(counts.shape[1])

    def band(start: int) -> tuple[np.ndarray, int]:
        block = counts[start : start + rows * step : step]  # a strided view: no copy
        return block.sum(axis=(0, 1), dtype=np.uint32), block.shape[0] * nx

    total = np.zeros(int(counts.shape[-1]))
    summed = 0
    for sums, pixels in threaded_map(band, range(0, ny, rows * step)):
        total += sums
        summed += pixels
    return total, summed


def fit_spectrum_image(
    counts,
    axis: EnergyAxis,
    elements: Sequence[str],
    beam_energy: float | None = None,
    fwhm_mnka_kev: float = 0.130,
    low_cutoff_kev: float = fitting.LOW_CUTOFF_KEV,
    device: str = "cpu",
    chunk_pixels: int = 65536,
    sum_counts: np.ndarray | None = None,
    extra_weights: np.ndarray | None = None,
    totals: np.ndarray | None = None,
) -> Computation[ImageFit]:
    """Fit every pixel of a spectrum image (see the module docstring).

    Parameters
    ----------
    counts : array, shape (y, x, E)
        The spectrum image (numpy or dask).
    axis : EnergyAxis
        Its calibration.
    elements : sequence of str
        Elements or line names.
    beam_energy, fwhm_mnka_kev, low_cutoff_kev
        As in `napari_sigma.xray.fitting.fit_spectrum`.
    device : {"cpu", "cuda"}
        Where the projection runs.
    chunk_pixels : int
        Pixels per chunk of the projection.
    sum_counts : ndarray or None
        The image's sum spectrum if already known (else a subsample of the rows is summed,
        `sum_spectrum`).
    extra_weights : ndarray, shape (E, M) or None
        More projections made in the same pass (e.g. the clustering windows): ``ImageFit.extra``.
    totals : ndarray, shape (y * x,), float64, or None
        Filled in the same pass with every pixel's counts summed over the whole energy axis
        (see `napari_sigma.features.intensities.projection_chunks`).

    Yields
    ------
    Progress
        Stage ``"features"``.

    Returns
    -------
    ImageFit
    """
    from napari_sigma.compute.blocks import prefetched, usable_cores
    from napari_sigma.features.intensities import pass_workers, projection_chunks

    ny, nx = int(counts.shape[0]), int(counts.shape[1])
    n_summed = ny * nx
    if sum_counts is None:
        sum_counts, n_summed = sum_spectrum(counts, SUM_PIXELS)
    design = image_fit_design(
        sum_counts, n_summed, axis, elements, beam_energy, fwhm_mnka_kev, low_cutoff_kev
    )
    extra = np.zeros((axis.size, 0), np.float32) if extra_weights is None else extra_weights
    weights = np.concatenate([design.weights, extra.astype(np.float32)], axis=1)
    # numpy counts on the CPU: the chunks are read and projected on every core while this
    # thread solves the pixels already projected (a lazy cube: one chunk at a time)
    workers = pass_workers(counts, device)
    flat, chunks = projection_chunks(counts, weights, device, chunk_pixels, totals, workers)
    if device == "cpu" and usable_cores() > 1:
        chunks = prefetched(chunks)  # the next chunks are read and projected while this is solved
    k = design.weights.shape[1]
    solver = _BlockSolver(design, flat[:, :k])
    for step, total, end in chunks:
        yield Progress("features", step, total, f"line intensities {step}/{total}")
        yield from solver.solve_up_to(end)
    yield from solver.solve_up_to(ny * nx, final=True)
    values, errors = solver.result()
    projected = flat.reshape(ny, nx, -1)
    n_families = len(design.families)
    return ImageFit(
        design.families,
        design.elements,
        values.reshape(ny, nx, n_families),
        errors.reshape(ny, nx, n_families),
        None if extra_weights is None else projected[..., k:],
    )


class _BlockSolver:
    """``design.solve`` of projected pixels in blocks of ``SOLVE_BLOCK`` as they come in.

    A block is a whole number of the solver's ``SOLVE_CHUNK`` chunks, which converge on their
    own, so the result is the one of a single call, whatever the projection's chunks.
    """

    def __init__(self, design: ImageFitDesign, projected: np.ndarray) -> None:
        self.design, self.projected = design, projected
        self.done = 0
        self.values: list[np.ndarray] = []
        self.errors: list[np.ndarray] = []

    def solve_up_to(self, end: int, final: bool = False) -> Computation[None]:
        """Solve every whole block below pixel ``end`` (and the last partial one when
        ``final``), yielding after each (cancellation)."""
        n = self.projected.shape[0]
        total = max(1, -(-n // SOLVE_BLOCK))
        while self.done < n and (self.done + SOLVE_BLOCK <= end or final):
            step = self.done // SOLVE_BLOCK
            yield Progress("features", step, total, "fitting line families per pixel")
            block = self.projected[self.done : self.done + SOLVE_BLOCK]
            block_values, block_errors = self.design.solve(block)
            self.values.append(block_values)
            self.errors.append(block_errors)
            self.done += len(block)

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        if not self.values:
            return self.design.solve(self.projected)
        return np.concatenate(self.values), np.concatenate(self.errors)


def fitted_line_maps(
    counts, axis: EnergyAxis, lines: Sequence[str], beam_energy: float | None = None, **options
) -> Computation[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """`fit_spectrum_image` of ``lines`` (the same computation), as maps of the lines.

    Parameters
    ----------
    counts, axis, beam_energy, **options
        As in `fit_spectrum_image` (``extra_weights`` for projections made in the same pass).
    lines : sequence of str
        Line names; each gets its element's family of the same shell (see `ImageFit.maps_of`).

    Returns
    -------
    intensities, sigma : ndarray, shape (y, x, L), float32
        Counts in each line's family principal line, and their counting standard deviations.
    extra : ndarray, shape (y, x, M), float32
        ``counts @ extra_weights`` (M = 0 without them).
    """
    fit = yield from fit_spectrum_image(counts, axis, lines, beam_energy, **options)
    intensities, sigma = fit.maps_of(lines)
    extra = (
        fit.extra if fit.extra is not None else np.zeros((*intensities.shape[:2], 0), np.float32)
    )
    return intensities, sigma, extra
