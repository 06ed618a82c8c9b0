"""Element-line intensity features per pixel: windows, background, binning, smoothing, normalisation.

A line's intensity is the counts in a window of ``±window_fwhm`` detector FWHM around the line,
minus the continuum under it estimated from two side windows (``background="sides"``). Both are
linear in the counts, so all lines are computed at once as one matrix product of the pixel spectra
with a weight matrix ``(E, L)`` (:func:`line_weights`), in chunks of pixels, on the CPU or the GPU.
Because the intensities are linear in the counts, binning the intensity maps is identical to
binning the cube first, and much cheaper.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from itertools import pairwise
from typing import Literal

import numpy as np

from napari_sigma.compute.arrival import wait_for_all, wait_for_rows
from napari_sigma.compute.blocks import block_projector, cast_pixels, threaded_map, usable_cores
from napari_sigma.compute.chunks import block_pixels
from napari_sigma.compute.progress import Computation, Progress
from napari_sigma.energy import EnergyAxis

Normalisation = Literal["poisson", "sigma", "none"]
ANSCOMBE_OFFSET = 0.375
#: Pixels per block of the ``"poisson"`` normalisation (blocks on every core).
NORMALISE_ROWS = 1 << 16
"""The 3/8 of the Anscombe transform ``sqrt(counts + 3/8)``, which makes Poisson noise Gaussian
with variance 1/4 (Anscombe 1948)."""


@dataclass(frozen=True)
class FeatureSettings:
    """How per-pixel features are made from the spectrum image.

    Parameters
    ----------
    background : {"sides", "none", "fit"}
        ``"sides"`` subtracts the continuum interpolated from windows either side of each line;
        ``"none"`` keeps raw window counts (SIGMA); ``"fit"`` uses the fitted line-family
        intensities (:mod:`~napari_sigma.xray.image_fit`; in the analysis pipeline only, where
        they are computed anyway; elsewhere it reads as ``"none"``).
    window_fwhm : float
        Half-width of the line window in units of the detector FWHM at the line energy.
    fwhm_mnka_kev : float
        Detector resolution at Mn Ka in keV.
    neighbour_radius : int
        Radius of the square neighbourhood averaged per pixel (1 = 3x3, 0 = none).
    normalisation : {"poisson", "sigma", "none"}
        ``"poisson"``: intensities scaled to the mean dose per pixel and square-root
        (Anscombe) transformed, so that counting noise is about equal on every feature;
        ``"sigma"``: SIGMA's chain (divide by the pixel's total counts, z-score each element,
        softmax across elements); ``"none"``: raw intensities.
    low_energy_cutoff_kev : float
        Channels below this energy are never used (zero-energy strobe peak).
    """

    background: Literal["sides", "none", "fit"] = "sides"
    window_fwhm: float = 1.0
    fwhm_mnka_kev: float = 0.130
    neighbour_radius: int = 1
    normalisation: Normalisation = "poisson"
    low_energy_cutoff_kev: float = 0.1


def _line_energy(name: str) -> float:
    from napari_sigma.xray.lines import parse_line

    return parse_line(name).energy


def _window(axis: EnergyAxis, centre: float, half_width: float) -> tuple[int, int]:
    window = axis.channel_range(centre - half_width, centre + half_width)
    return window.start, window.stop


def line_weights(
    axis: EnergyAxis, lines: Sequence[str], settings: FeatureSettings = FeatureSettings()
) -> np.ndarray:
    """Weights ``(E, L)`` whose product with a spectrum gives background-subtracted line counts.

    Side windows as wide as the peak window sit just outside it; a side that falls below the
    low-energy cutoff, off the axis, or on another analysed line's window is dropped.

    Parameters
    ----------
    axis : EnergyAxis
        The energy calibration.
    lines : sequence of str
        Line names such as ``"Fe_Ka"``.
    settings : FeatureSettings
        Window width, resolution and background method.

    Returns
    -------
    ndarray, shape (E, L), float32
    """
    from napari_sigma.xray.lines import detector_fwhm

    energies = [_line_energy(name) for name in lines]
    half_widths = [
        settings.window_fwhm * detector_fwhm(e, settings.fwhm_mnka_kev) for e in energies
    ]
    peaks = [_window(axis, e, h) for e, h in zip(energies, half_widths, strict=True)]
    lowest = axis.channel_range(settings.low_energy_cutoff_kev, np.inf).start
    weights = np.zeros((axis.size, len(lines)), dtype=np.float64)
    for index, (start, stop) in enumerate(peaks):
        start = max(start, lowest)
        if stop <= start:
            continue
        weights[start:stop, index] = 1.0
        if settings.background == "sides":
            _subtract_sides(weights[:, index], (start, stop), peaks, lowest, axis.size)
    return weights.astype(np.float32)


def _subtract_sides(
    column: np.ndarray,
    peak: tuple[int, int],
    all_peaks: list[tuple[int, int]],
    lowest: int,
    size: int,
) -> None:
    start, stop = peak
    width = stop - start
    sides = [(start - width, start), (stop, stop + width)]
    free = [
        (a, b)
        for a, b in sides
        if a >= lowest and b <= size and not any(a < q1 and p0 < b for p0, q1 in all_peaks)
    ]
    if not free:  # both sides blocked: fall back to whatever side windows lie on the axis
        free = [(a, b) for a, b in sides if a >= lowest and b <= size]
    if not free:
        return
    n_side = sum(b - a for a, b in free)
    for a, b in free:
        column[a:b] -= width / n_side


def line_intensities(
    counts,
    axis: EnergyAxis,
    lines: Sequence[str],
    settings: FeatureSettings = FeatureSettings(),
    device: str = "cpu",
    chunk_pixels: int = 65536,
) -> Computation[np.ndarray]:
    """Counts of each line in each pixel (background-subtracted unless ``background="none"``).

    Parameters
    ----------
    counts : array, shape (y, x, E)
        The spectrum image (numpy, or dask: chunks are computed one at a time).
    axis : EnergyAxis
        Its energy calibration.
    lines : sequence of str
        Line names.
    settings : FeatureSettings
        Window and background settings.
    device : {"cpu", "cuda"}
        Where the matrix products run.
    chunk_pixels : int
        Pixels per chunk (bounds the float copy made of the cube).

    Yields
    ------
    Progress
        One per chunk, stage ``"features"``.

    Returns
    -------
    ndarray, shape (y, x, L), float32
    """
    weights = line_weights(axis, lines, settings)
    return (yield from project_spectra(counts, weights, device, chunk_pixels))


@dataclass
class LineFeatures:
    """What one pass over a spectrum image gives the analysis (see `line_features`).

    Parameters
    ----------
    intensities : ndarray, shape (y, x, L)
        Fitted intensities of the lines (counts in each line's family, never negative).
    sigma : ndarray, shape (y, x, L)
        Their counting standard deviation.
    features : ndarray, shape (y, x, L)
        The per-pixel features of phase finding: ``intensities`` with ``background="fit"``,
        else the line windows (``FeatureSettings.background``: raw or sides subtracted).
    windows : ndarray, shape (y, x, L) or None
        The raw line windows (Poisson counts, for the trace-phase search); None with
        ``background="sides"``.
    totals : ndarray, shape (y, x), float64, or None
        Every pixel's counts summed over the whole energy axis, read in the same pass
        (:func:`total_counts`'s numbers), when they were asked for.
    """

    intensities: np.ndarray
    sigma: np.ndarray
    features: np.ndarray
    windows: np.ndarray | None
    totals: np.ndarray | None = None


def line_features(
    image,
    lines: Sequence[str],
    settings: FeatureSettings,
    device: str = "cpu",
    totals: bool = False,
) -> Computation[LineFeatures]:
    """Line intensities, their sigma and the phase-finding features of a spectrum image.

    One pass over the cube (:func:`~napari_sigma.xray.image_fit.fitted_line_maps`): the
    fitted line-family intensities and the line windows (`line_weights`) are projected
    together. The analysis, a fitted model applied to a new field and the widgets all measure
    lines this way.

    Parameters
    ----------
    image : SpectrumImage
        Counts ``(y, x, E)`` (numpy or dask), energy axis and beam energy.
    lines : sequence of str
        Line names, e.g. ``("Fe_Ka", "Si_Ka")``.
    settings : FeatureSettings
        Windows, background, detector resolution and low-energy cutoff.
    device : str
        ``"cpu"`` or a torch device.
    totals : bool
        Also sum every pixel's counts over the whole energy axis in the same pass
        (``LineFeatures.totals``; the cube is then read once instead of twice when the
        caller needs both, e.g. the analysis' dose and data check).

    Returns
    -------
    LineFeatures
    """
    from napari_sigma.xray.image_fit import fitted_line_maps

    fitted = settings.background == "fit"
    window_settings = replace(settings, background="none") if fitted else settings
    window_weights = line_weights(image.energy, lines, window_settings)
    ny, nx = int(image.counts.shape[0]), int(image.counts.shape[1])
    summed = np.empty(ny * nx, np.float64) if totals else None
    intensities, sigma, windows = yield from fitted_line_maps(
        image.counts, image.energy, lines, image.beam_energy,
        fwhm_mnka_kev=settings.fwhm_mnka_kev, low_cutoff_kev=settings.low_energy_cutoff_kev,
        device=device, extra_weights=window_weights, totals=summed,
    )  # fmt: skip
    features = intensities if fitted else windows
    raw = None if settings.background == "sides" else windows
    pixel_totals = None if summed is None else summed.reshape(ny, nx)
    return LineFeatures(intensities, sigma, features, raw, pixel_totals)


def project_spectra(
    counts, weights: np.ndarray, device: str = "cpu", chunk_pixels: int = 65536
) -> Computation[np.ndarray]:
    """Product of every pixel spectrum with a weight matrix ``(E, M)``, in chunks of pixels.

    Only the channel span where some weight is non-zero is read, so a cube is never converted to
    float as a whole.

    The chunks of numpy counts on the CPU are read and projected on every core
    (:func:`pass_workers`).

    Returns
    -------
    ndarray, shape (y, x, M), float32
    """
    workers = pass_workers(counts, device)
    out, chunks = projection_chunks(counts, weights, device, chunk_pixels, workers=workers)
    for step, total, _ in chunks:
        yield Progress("features", step, total, f"line intensities {step}/{total}")
    return out.reshape(int(counts.shape[0]), int(counts.shape[1]), -1)


def pass_workers(counts, device: str) -> int | None:
    """Threads that read and project the chunks of a pass over ``counts``
    (:func:`projection_chunks`' ``workers``): every usable core (None) for numpy counts on the
    CPU (views of the cube: chunks in flight cost only their float casts), else one (a lazy
    cube's memory limit counts one band in flight; a GPU's products queue on one stream)."""
    return None if device == "cpu" and isinstance(counts, np.ndarray) else 1


def projection_chunks(
    counts,
    weights: np.ndarray,
    device: str = "cpu",
    chunk_pixels: int = 65536,
    totals: np.ndarray | None = None,
    workers: int | None = 1,
) -> tuple[np.ndarray, Iterator[tuple[int, int, int]]]:
    """:func:`project_spectra` as an output table and the iterator that fills it.

    ``totals``: a float64 array of ``y * x`` values that the iterator fills, chunk by chunk
    with the projection, with every pixel's counts summed over the whole energy axis
    (:func:`total_counts`'s numbers, bit for bit): the pass then reads whole pixel spectra
    instead of the weights' channel span, and the cube is not read a second time for them.

    ``workers``: threads that read and project the chunks (None: the usable cores,
    :func:`~napari_sigma.compute.blocks.threaded_map`; at most that many chunks in flight).
    Each chunk is made by the same calls on whichever thread and written to its own rows, so
    the numbers are those of one thread; the iterator still reports the chunks in order. A
    numpy map of one chunk on the CPU is cut, on every core (``workers`` None), into a chunk
    per core at whole cast sub-blocks (:func:`_one_chunk_parts`): the same products as one
    chunk (:func:`~napari_sigma.compute.blocks.project_pixels` makes the same matrix products
    of the same sub-blocks), on every core.

    Returns
    -------
    out : ndarray, shape (y * x, M), float32
        Filled chunk by chunk (whole rows) as the iterator runs.
    chunks : iterator of (step, total, end)
        After each chunk: its number, the number of chunks, and the pixels projected so far
        (rows ``out[:end]`` are final). Its consumer may work on them meanwhile, e.g. with the
        iterator run ahead in a thread (:func:`~napari_sigma.compute.blocks.prefetched`).
    """
    used = np.flatnonzero(np.any(weights != 0, axis=1))
    ny, nx = int(counts.shape[0]), int(counts.shape[1])
    out = np.zeros((ny * nx, weights.shape[1]), dtype=np.float32)
    if totals is not None and totals.shape != (ny * nx,):
        raise ValueError(f"totals of shape {totals.shape} for {ny} x {nx} pixels")
    if used.size == 0:
        if totals is None:
            return out, iter(())
        used = np.arange(1)  # nothing to project, the totals still to sum
    span = slice(int(used[0]), int(used[-1]) + 1)
    project = block_projector(weights[span], device)
    itemsize = np.dtype(counts.dtype).itemsize
    per_pixel = (span.stop - span.start) * (itemsize + 4)
    if totals is not None:
        per_pixel += (int(counts.shape[-1]) - (span.stop - span.start)) * itemsize
    rows_per_chunk = max(1, block_pixels(chunk_pixels, per_pixel) // max(nx, 1))
    parts = [(row * nx, min(row + rows_per_chunk, ny) * nx) for row in range(0, ny, rows_per_chunk)]
    if len(parts) == 1 and workers is None and device == "cpu" and isinstance(counts, np.ndarray):
        parts = _one_chunk_parts(ny * nx, cast_pixels(span.stop - span.start))
    total = len(parts)
    sum_type = _sum_type(counts)

    def chunk(part: tuple[int, int]) -> int:
        first, end = part
        top, bottom = first // nx, -(-end // nx)  # the rows that hold the chunk's pixels
        wait_for_rows(counts, slice(top, bottom))  # a cube still being read
        within = slice(first - top * nx, end - top * nx)
        if totals is None:
            block = np.asarray(counts[top:bottom, :, span])
        else:  # whole spectra, read once: their sums, and the span projected
            spectra = np.asarray(counts[top:bottom])
            spectra = spectra.reshape(-1, spectra.shape[-1])[within]
            block = spectra[:, span]
        pixels = block.reshape(-1, block.shape[-1])[within] if totals is None else block
        projected = project(pixels)
        if not isinstance(projected, np.ndarray):  # a tensor on the GPU
            projected = projected.cpu().numpy()
        out[first:end] = projected
        if totals is not None:
            totals[first:end] = spectra.sum(axis=-1, dtype=sum_type)
        return end

    def chunks() -> Iterator[tuple[int, int, int]]:
        ends = threaded_map(chunk, parts, workers)
        for step, end in enumerate(ends, start=1):
            yield step, total, end

    return out, chunks()


def _one_chunk_parts(n_pixels: int, sub_block: int) -> list[tuple[int, int]]:
    """``(first, end)`` pixels of a map of one chunk cut into a part per usable core, every cut
    at a whole number of cast sub-blocks of ``sub_block`` pixels from the first pixel (each part
    then casts and multiplies the one chunk's sub-blocks: the same products); one part where
    the map is one sub-block or one core is usable."""
    sub_blocks = -(-n_pixels // max(sub_block, 1))
    pieces = min(usable_cores(), sub_blocks)
    if pieces < 2:
        return [(0, n_pixels)]
    cuts = [sub_block * (sub_blocks * i // pieces) for i in range(pieces)] + [n_pixels]
    return list(pairwise(cuts))


def total_counts(counts, chunk_pixels: int = 262144) -> np.ndarray:
    """Counts summed over energy per pixel, float64 ``(y, x)``, computed in chunks.

    Counts of at most 16 bits are summed as 32-bit integers (exact below 65537 channels; twice
    as fast as converting every count to float64), other counts in float64.
    """
    ny, nx = int(counts.shape[0]), int(counts.shape[1])
    per_pixel = int(counts.shape[-1]) * (np.dtype(counts.dtype).itemsize + 8)
    rows = max(1, block_pixels(chunk_pixels, per_pixel) // max(nx, 1))
    out = np.empty((ny, nx), dtype=np.float64)
    total_type = _sum_type(counts)
    wait_for_all(counts)  # a cube still being read (compute.arrival)

    def band(row: int) -> None:  # bands are independent and exact: summed on every core
        out[row : row + rows] = np.asarray(counts[row : row + rows]).sum(axis=-1, dtype=total_type)

    for _ in threaded_map(band, range(0, ny, rows)):
        pass
    return out


def _sum_type(counts) -> type:
    """The accumulator of :func:`total_counts`: 32-bit integers for counts of at most 16 bits
    (exact below 65537 channels), else float64. Per pixel the sum is one reduction over its
    spectrum, so any split of the pixels into blocks gives the same numbers."""
    dtype = np.dtype(counts.dtype)
    small = dtype.kind in "bu" and dtype.itemsize <= 2 and int(counts.shape[-1]) <= 1 << 16
    return np.uint32 if small else np.float64


def bin_image(array: np.ndarray, factor: int) -> np.ndarray:
    """Sum ``factor x factor`` blocks over the first two axes (the remainder is cropped)."""
    if factor <= 1:
        return array
    ny, nx = array.shape[0] // factor, array.shape[1] // factor
    if ny == 0 or nx == 0:
        raise ValueError(f"binning by {factor} leaves no pixels of a {array.shape[:2]} map")
    cropped = np.asarray(array[: ny * factor, : nx * factor])
    blocks = cropped.reshape(ny, factor, nx, factor, *cropped.shape[2:])
    return blocks.sum(axis=(1, 3))


def neighbour_average(maps: np.ndarray, radius: int) -> np.ndarray:
    """Mean over a ``(2r+1) x (2r+1)`` neighbourhood of each pixel (edges use the nearest pixel)."""
    if radius <= 0:
        return maps
    from scipy.ndimage import uniform_filter

    maps = maps.astype(np.float32, copy=False)
    if maps.ndim != 3 or maps.shape[-1] < 2:
        size = (2 * radius + 1, 2 * radius + 1) + (1,) * (maps.ndim - 2)
        return uniform_filter(maps, size=size, mode="nearest")
    # each map filtered alone, on every core (scipy.ndimage releases the GIL): the window does
    # not reach across maps, so these are the filter's numbers for the stack, bit for bit
    out = np.empty(maps.shape, np.float32)

    def one_map(index: int) -> None:
        out[..., index] = uniform_filter(maps[..., index], 2 * radius + 1, mode="nearest")

    for _ in threaded_map(one_map, range(maps.shape[-1])):
        pass
    return out


def normalise(
    maps: np.ndarray,
    total: np.ndarray,
    method: Normalisation = "poisson",
    reference_dose: float | None = None,
    mean: np.ndarray | None = None,
    std: np.ndarray | None = None,
) -> np.ndarray:
    """Per-pixel features ``(N, L)`` from intensity maps ``(y, x, L)`` and total counts ``(y, x)``.

    Parameters
    ----------
    maps : ndarray, shape (y, x, L)
        Line intensities (already binned and neighbour-averaged as wanted).
    total : ndarray, shape (y, x)
        Total counts per pixel on the same grid.
    method : {"poisson", "sigma", "none"}
        See :class:`FeatureSettings`.
    reference_dose : float or None
        ``"poisson"``: the dose every pixel is scaled to; None: the map's mean dose.
    mean, std : ndarray, shape (L,), or None
        ``"sigma"``: mean and standard deviation of the count fractions; None: the map's own.
        A fitted model passes the references of the fields it was fitted on, so that every
        field is put on the same scale.

    Returns
    -------
    ndarray, shape (N, L), float32
    """
    flat = maps.reshape(-1, maps.shape[-1]).astype(np.float64)
    dose = total.reshape(-1).astype(np.float64)
    if method == "none":
        return flat.astype(np.float32)
    if method == "poisson":
        reference = np.mean(dose) if reference_dose is None else reference_dose
        out = np.empty(flat.shape, np.float32)

        def rows(start: int) -> None:
            # anscombe(clip(flat * scale, 0)) in place: no temporary copies of the (N, L)
            # table; element-wise, so any rows on any core give the same numbers
            part = flat[start : start + NORMALISE_ROWS]
            part *= (reference / np.maximum(dose[start : start + NORMALISE_ROWS], 1.0))[:, None]
            np.clip(part, 0.0, None, out=part)
            part += ANSCOMBE_OFFSET
            out[start : start + NORMALISE_ROWS] = np.sqrt(part, out=part)

        for _ in threaded_map(rows, range(0, len(flat), NORMALISE_ROWS)):
            pass
        return out
    if method == "sigma":
        fractions = flat / np.maximum(dose, 1.0)[:, None]
        mean = fractions.mean(axis=0) if mean is None else mean
        std = fractions.std(axis=0) if std is None else std
        z = (fractions - mean) / np.where(std > 0, std, 1.0)
        z -= z.max(axis=1, keepdims=True)
        soft = np.exp(z)
        return (soft / soft.sum(axis=1, keepdims=True)).astype(np.float32)
    raise ValueError(f"unknown normalisation {method!r}: use 'poisson', 'sigma' or 'none'")


def anscombe(counts: np.ndarray) -> np.ndarray:
    """The Anscombe transform ``sqrt(counts + 3/8)`` of non-negative counts."""
    return np.sqrt(counts + ANSCOMBE_OFFSET)


def inverse_anscombe(features: np.ndarray) -> np.ndarray:
    """Counts from Anscombe features: ``features**2 - 3/8``, clipped at zero (algebraic inverse)."""
    return np.clip(features**2 - ANSCOMBE_OFFSET, 0.0, None)
