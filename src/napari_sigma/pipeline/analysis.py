"""The analysis pipeline and the Python API: spectrum image -> features -> latent -> phases -> NMF.

``analyse(image, settings)`` is a generator that yields :class:`~napari_sigma.compute.progress.Progress` and
returns an :class:`AnalysisResult`; ``run_analysis`` drives it to the end. The CLI and the napari
widgets both call it.

This module holds the stages' flow (:func:`analyse`, the features, clustering and minerals
stages, the result); :class:`AnalysisResult` lives in :mod:`~napari_sigma.pipeline.result` and the
unmixing stage in :mod:`~napari_sigma.pipeline.unmixing_stage` (``AnalysisResult`` is importable
from here as before).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import numpy as np

from napari_sigma.compute.progress import Computation, Progress, run_to_completion
from napari_sigma.errors import AnalysisError
from napari_sigma.features.intensities import (
    bin_image,
    line_features,
    neighbour_average,
    normalise,
    total_counts,
)
from napari_sigma.latent.embedding import LatentResult, fit_latent
from napari_sigma.minerals.phases import mineral_phase_names
from napari_sigma.phases.finding import PhaseFindingSettings, find_phases
from napari_sigma.phases.mixture import cluster_phases

# moved by domain (eighteenth session): importable from here as before; a patch takes effect in
# the module that reads the name
from napari_sigma.pipeline.result import AnalysisResult
from napari_sigma.pipeline.settings import AnalysisSettings
from napari_sigma.pipeline.unmixing_stage import _unmix, cancel_abundances, with_abundances
from napari_sigma.spectrum_image import SpectrumImage


class _Stopwatch:
    def __init__(self) -> None:
        self.timings: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - start


def choose_lines(image: SpectrumImage, settings: AnalysisSettings) -> tuple[str, ...]:
    """The X-ray lines an analysis uses (see :class:`AnalysisSettings`).

    Only lines inside the recorded spectrum are used (:func:`~napari_sigma.xray.lines.usable_line`):
    an element or line outside it is dropped with a warning that names it.
    """
    from napari_sigma.xray.lines import checked_lines, lines_for_elements, usable_range

    energy_range = usable_range(image.energy, settings.features.low_energy_cutoff_kev)
    if settings.lines:
        lines = checked_lines(settings.lines, image.beam_energy, energy_range)
    else:
        elements = settings.elements
        if not elements:
            from napari_sigma.xray.elements import elements_to_analyse

            elements = elements_to_analyse(image.sum_spectrum(), image.title)
        usable = [e for e in elements or () if e not in ("H", "He", "Li")]
        lines = lines_for_elements(usable, image.beam_energy, energy_range)
    if not lines:
        raise AnalysisError(
            f"{image.title or 'spectrum image'}: no elements with X-ray lines inside the "
            f"recorded spectrum ({energy_range[0]:.2f}-{energy_range[1]:.2f} keV) given or found"
        )
    return tuple(lines)


def analyse(
    image: SpectrumImage, settings: AnalysisSettings, embed: bool = True
) -> Computation[AnalysisResult]:
    """Run the whole analysis as a generator of progress reports.

    Parameters
    ----------
    image : SpectrumImage
        The spectrum image.
    settings : AnalysisSettings
        Every parameter.
    embed : bool
        Compute the latent space also when the phases are not found in it
        (``settings.cluster_space`` other than ``"latent"``), where only a display of it
        (napari's latent-space plot, lasso selections) uses it. False: ``result.latent`` is
        empty, and nothing is spent on it (the CLI, whose output files do not show it).

    Yields
    ------
    Progress
        Stages ``features``, ``latent``, ``clustering``, ``unmixing``.

    Returns
    -------
    AnalysisResult

    Raises
    ------
    SpectrumImageError, AnalysisError
        Data no analysis can use (see :mod:`napari_sigma.io.readers.validation`), named by its file.
    """
    from napari_sigma.compute.device import resolve_device, torch_threads
    from napari_sigma.io.readers.validation import check_at_the_door, validate_spectrum_image

    image = validate_spectrum_image(image)  # at the door: before any work
    uses_torch = _uses_torch(settings, embed)
    importing = _torch_imported_meanwhile(image) if uses_torch else None
    try:
        # None: the counts are checked on the feature pass's sums (one read of the cube)
        totals = check_at_the_door(image, settings.bin_factor)
    finally:
        if importing is not None:
            importing.join()
    yield Progress("features", 0, 1, "data checked")
    device = resolve_device(settings.device)
    with torch_threads(device, settings.cpu_threads, uses_torch):
        return (yield from _analyse(image, settings, device, embed, totals))


def _uses_torch(settings: AnalysisSettings, embed: bool) -> bool:
    """Whether the analysis computes with torch: the autoencoder's latent space, or a device
    that may be a GPU. On the CPU everything else runs in numpy, and a CPU run without the
    autoencoder does not import torch (about 1 s of CPU)."""
    from napari_sigma.compute.device import cpu_without_torch

    latent = embed or settings.cluster_space == "latent"
    if latent and settings.latent.method == "ae":
        return True
    return not cpu_without_torch(settings.device)


def _torch_imported_meanwhile(image: SpectrumImage):
    """A started thread importing torch while the caller checks ``image`` (or None).

    The first analysis of a process imports torch (about 1.2 s of CPU here), which the device
    choice needs right after the data check. The check sums the counts of a map's pixels in
    numpy (the GIL released: every pixel of a map of up to 65536 pixels; a sample of rows of a
    larger one, whose sums come from the feature pass), so the import runs beside it on a
    second core. Only for counts in memory (numpy), whose check imports nothing
    while the thread runs (its modules are imported first, here), and the caller joins the
    thread before importing anything else: two threads never import at once (no import-lock
    cycle). Only in the main thread (the CLI, a script): no other thread of the process imports
    meanwhile. Nothing when torch is imported already, or on one core.
    """
    import sys
    import threading

    from napari_sigma.compute.background import start_thread

    if "torch" in sys.modules or not isinstance(image.counts, np.ndarray):
        return None
    if threading.current_thread() is not threading.main_thread():
        return None  # napari's worker: the viewer's thread may be importing meanwhile
    from napari_sigma.compute.blocks import usable_cores

    if usable_cores() < 2:
        return None
    import collections  # noqa: F401 - what the check's threads import, imported here first
    import contextvars  # noqa: F401
    import ctypes  # noqa: F401 - load_torch_libraries'
    from concurrent.futures import ThreadPoolExecutor  # noqa: F401

    from napari_sigma.compute.device import load_torch_libraries

    def run() -> None:
        try:
            load_torch_libraries()  # without the GIL: the check's threads go on meanwhile
            import torch  # noqa: F401
        except ImportError:  # the device choice then raises it where it belongs
            pass

    return start_thread(run, "napari-sigma torch import")  # the exit waits for it


def _analyse(
    image: SpectrumImage,
    settings: AnalysisSettings,
    device: str,
    embed: bool = True,
    totals: np.ndarray | None = None,
) -> Computation[AnalysisResult]:
    from napari_sigma.compute.arrival import wait_for_all
    from napari_sigma.compute.device import configure_fast_math

    configure_fast_math(device)
    clock = _Stopwatch()
    lines = choose_lines(image, settings)
    with clock.stage("features"):
        measured, dose, raw, smoothed, grid, counts = yield from _features_stage(
            image, lines, settings, device, totals
        )
        wait_for_all(image.counts)  # a cube read meanwhile: whole from here on (compute.arrival)
    flat = smoothed.reshape(-1, smoothed.shape[-1])
    if embed or settings.cluster_space == "latent":
        latent = yield from _timed(clock, "latent", fit_latent(flat, settings.latent))
    else:
        latent = LatentResult(np.zeros((0, settings.latent.dim), np.float32), method="none")
    valid = ~empty_pixels(dose)
    finding = _clustering_stage(settings, raw, smoothed, flat, latent, counts, valid)
    clustering = yield from _timed(clock, "clustering", finding)
    labels = _full_resolution(clustering.labels.reshape(grid), settings.bin_factor, image.shape)
    unmixed = yield from _timed(
        clock, "unmixing", _unmix(image, labels, clustering, settings, device, lines)
    )
    labels, interior, depth = unmixed[0], unmixed[5], unmixed[9]
    try:
        phase_names = _phase_names(measured.intensities, labels, lines, clustering.n_phases)
        minerals, host = [], None
        if settings.identify_minerals:
            minerals, host = yield from _timed(
                clock, "minerals", _minerals(image, labels, lines, interior, settings, depth)
            )
            phase_names = mineral_phase_names(phase_names, minerals)
    except BaseException:  # closed (an aborted run) or failed: the solve below is not wanted
        cancel_abundances(unmixed[4])
        raise
    with clock.stage("unmixing"):  # the components' abundances, solved beside the minerals
        unmixed = with_abundances(unmixed)
    found = (clustering, unmixed, phase_names, minerals, host, valid)
    return _analysis_result(image, settings, device, lines, measured, flat, latent, grid,
                            found, clock)  # fmt: skip


def _features_stage(image, lines, settings: AnalysisSettings, device, totals):
    """The features stage of :func:`_analyse`: the measured line features (``totals``: the
    full-resolution sums if already made), the dose, the unsmoothed and smoothed features of
    the analysis grid, the grid and the trace search's Poisson counts (None without windows)."""
    measured = yield from line_features(
        image, lines, settings.features, device, totals=totals is None
    )
    if totals is None:
        from napari_sigma.io.readers.validation import check_analysable

        totals = check_analysable(image, settings.bin_factor, measured.totals)
    binned = bin_image(measured.features, settings.bin_factor)
    dose = _dose(image, settings, totals)
    raw, smoothed = _analysis_features(binned, dose, settings)
    grid = (binned.shape[0], binned.shape[1])
    # the trace-phase search needs Poisson counts: raw windows, not background-subtracted
    windows = measured.windows
    counts = None if windows is None else (bin_image(windows, settings.bin_factor), dose)
    return measured, dose, raw, smoothed, grid, counts


def _clustering_stage(settings: AnalysisSettings, raw, smoothed, flat, latent, counts, valid):
    """The clustering stage's computation: the spatial phase finding, or a Gaussian mixture
    of the latent space or of the features."""
    clustering_settings = settings.clustering
    if settings.cluster_space == "spatial":
        return find_phases(
            raw, smoothed, clustering_settings, _phase_finding(settings), counts, valid
        )
    space = latent.latent if settings.cluster_space == "latent" else flat
    return cluster_phases(space, clustering_settings)


def _analysis_result(image, settings, device, lines, measured, flat, latent, grid, found, clock):
    """The :class:`AnalysisResult` of :func:`_analyse`'s stages (``found``: the clustering,
    :func:`_unmix`'s tuple, the phase names, minerals and host spectra, the valid pixels)."""
    clustering, unmixed, phase_names, minerals, host, valid = found
    labels, spectra, components, weights, abundances, interior, fractions, cores, deep, depth = (
        unmixed
    )
    unassigned = _full_resolution((~valid).astype(np.int32), settings.bin_factor, image.shape)
    return AnalysisResult(
        image=image,
        settings=settings,
        lines=lines,
        intensities=measured.intensities,
        latent=latent.latent[:, :2],
        latent_pixels=_representative_pixels(grid, settings.bin_factor, image.shape)[
            : len(latent.latent)
        ],
        latent_shape=grid,
        bin_factor=settings.bin_factor,
        labels=labels,
        probabilities=clustering.probabilities.reshape(*grid, -1),
        phase_names=phase_names,
        phase_spectra=spectra,
        components=components,
        component_names=[f"C{i + 1}" for i in range(components.shape[0])],
        phase_weights=weights,
        abundances=abundances,
        criterion=dict(clustering.criterion),
        timings=clock.timings,
        device=device,
        versions=package_versions(),
        features=flat,
        loss_history=list(latent.loss_history),
        intensity_sigma=measured.sigma,
        phase_minerals=minerals,
        phase_fractions=fractions,
        core_labels=cores if interior is not None else None,
        core_spectra=interior,
        deep_spectra=deep if interior is not None else None,
        core_depth=depth if interior is not None else None,
        host_spectra=host if interior is not None else None,
        unassigned={"no counts": int(unassigned.sum())} if unassigned.any() else {},
        alternatives=phase_alternatives(clustering.n_phases, clustering.criterion),
    )


def _minerals(image, labels, lines, spectra, settings: AnalysisSettings, depth=None):
    """Quantify and name the phases (see :func:`napari_sigma.minerals.phases.identify_phases`;
    ``depth``: :func:`~napari_sigma.minerals.interiors.phase_depths` of ``labels`` or None).

    Returns the phase minerals and the host correction of the core ``spectra``
    (:func:`~napari_sigma.minerals.host.host_corrected_spectra`: computed here once, for the
    identification and for the mineral report's abundance basis), or None where the
    identification makes none.
    """
    from napari_sigma.minerals.host import host_corrected_spectra
    from napari_sigma.minerals.library import load_library
    from napari_sigma.minerals.phases import elements_of_lines, identify_phases
    from napari_sigma.quant.quantify import QuantSettings

    library = load_library(settings.minerals)
    elements = elements_of_lines(lines)
    automatic = not settings.lines and not settings.elements and not image.elements
    host = None
    n_phases = int(labels.max(initial=0))
    # identify_phases corrects these spectra when it quantifies them as given
    if n_phases and spectra is not None and len(spectra) >= n_phases and image.beam_energy:
        if labels.ndim == 2 and QuantSettings().host_correction:
            yield Progress("minerals", 0, 1, "host correction")
            energies, beam = image.energy.energies, float(image.beam_energy)
            spectra = np.asarray(spectra, dtype=np.float64)
            host = host_corrected_spectra(image.counts, labels, spectra, energies, beam, depth)
    minerals = yield from identify_phases(
        image, labels, elements, library, quant_settings(settings), spectra=spectra,
        detect_elements=automatic, depth=depth, host=host,
    )  # fmt: skip
    return minerals, host


def quant_settings(settings):
    """The quantification settings of an analysis's minerals (None: the defaults; a stated
    coating: ``AnalysisSettings.coating``)."""
    from napari_sigma.quant.quantify import QuantSettings

    coating = tuple(getattr(settings, "coating", ()) or ())
    return QuantSettings(coating=coating) if coating else None


def empty_pixels(dose: np.ndarray, radius: int = 2, share: float = 0.05) -> np.ndarray:
    """Pixels without a spectrum: empty background, holes, beam blanked.

    A pixel is empty when its own total counts are below ``share`` of the typical pixel's (the
    median neighbourhood mean over pixels whose neighbourhood has counts) and it lies within
    ``radius`` of a pixel whose ``(2r+1)^2`` neighbourhood has that few counts on average. The
    neighbourhood keeps sparse maps (a few counts per pixel, many pixels at zero) whole.

    Parameters
    ----------
    dose : ndarray, shape (y, x)
        Total counts per pixel.

    Returns
    -------
    ndarray of bool, shape (y, x)
    """
    from scipy.ndimage import binary_dilation, uniform_filter

    local = uniform_filter(dose.astype(np.float64), 2 * radius + 1, mode="nearest")
    lit = local > 0
    if not lit.any():
        return np.zeros(dose.shape, dtype=bool)
    threshold = share * np.median(local[lit])
    core = local < threshold
    if not core.any():
        return core
    near = binary_dilation(core, np.ones((3, 3), dtype=bool), iterations=radius)
    return near & (dose < threshold)


def phase_alternatives(
    n_phases: int, criterion: dict[int, float], n_alternatives: int = 2
) -> tuple[int, ...]:
    """Numbers of phases worth trying after the chosen one.

    The next larger numbers first (a phase merged as noise or as a mixture zone is the first
    thing a user may want back), within the range the model selection scanned, then the next
    smaller one.
    """
    scanned = max(criterion, default=n_phases + n_alternatives)
    larger = [k for k in range(n_phases + 1, max(scanned, n_phases) + 1)][:n_alternatives]
    smaller = [n_phases - 1] if n_phases > 1 else []
    return tuple((larger + smaller)[:n_alternatives])


def run_analysis(
    image: SpectrumImage,
    settings: AnalysisSettings | None = None,
    on_progress: Callable[[Progress], None] | None = None,
) -> AnalysisResult:
    """Run :func:`analyse` to the end (blocking) and return its result."""
    return run_to_completion(analyse(image, settings or AnalysisSettings()), on_progress)


def _timed(clock: _Stopwatch, name: str, computation: Computation[Any]) -> Computation[Any]:
    start = time.perf_counter()
    result = None
    while True:
        try:
            report = next(computation)
        except StopIteration as stop:
            result = stop.value
            break
        clock.timings[name] = clock.timings.get(name, 0.0) + time.perf_counter() - start
        yield report
        start = time.perf_counter()
    clock.timings[name] = clock.timings.get(name, 0.0) + time.perf_counter() - start
    return result


def _analysis_features(
    binned: np.ndarray, dose: np.ndarray, settings: AnalysisSettings
) -> tuple[np.ndarray, np.ndarray]:
    """Unsmoothed and smoothed normalised features ``(yb, xb, F)`` on the analysis grid."""
    method = settings.features.normalisation
    raw = normalise(binned, dose, method).reshape(*binned.shape)
    radius = settings.features.neighbour_radius
    averaged_dose = neighbour_average(dose[..., None], radius)[..., 0]
    smoothed = normalise(neighbour_average(binned, radius), averaged_dose, method)
    return raw, smoothed.reshape(*binned.shape)


def _dose(
    image: SpectrumImage, settings: AnalysisSettings, totals: np.ndarray | None = None
) -> np.ndarray:
    """Total counts per pixel of the analysis grid; ``totals``: the full-resolution sums
    already made (:func:`~napari_sigma.io.readers.validation.check_analysable`), used where they are
    the same numbers (integer counts: exact; numpy counts: the same per-pixel sums)."""
    counts = image.counts
    same = isinstance(counts, np.ndarray) or np.dtype(counts.dtype).kind in "biu"
    if totals is None or not same:
        totals = total_counts(counts)
    return bin_image(totals, settings.bin_factor)


def _phase_finding(settings: AnalysisSettings) -> PhaseFindingSettings:
    """Phase-finding settings whose boundary mixtures match the feature normalisation."""
    poisson = settings.features.normalisation == "poisson"
    averaged = (2 * settings.features.neighbour_radius + 1) ** 2
    return replace(
        settings.phase_finding,
        mix_space="anscombe" if poisson else "linear",
        averaged_pixels=averaged,
    )


def _full_resolution(labels: np.ndarray, factor: int, shape: tuple[int, int]) -> np.ndarray:
    """Labels of the binned grid repeated to full resolution (the cropped edge takes its neighbour)."""
    full = np.repeat(np.repeat(labels, factor, axis=0), factor, axis=1)
    pad = ((0, shape[0] - full.shape[0]), (0, shape[1] - full.shape[1]))
    return np.pad(full, pad, mode="edge").astype(np.int32)


def _representative_pixels(
    grid: tuple[int, int], factor: int, shape: tuple[int, int]
) -> np.ndarray:
    rows = np.arange(grid[0]) * factor
    cols = np.arange(grid[1]) * factor
    return (rows[:, None] * shape[1] + cols[None, :]).reshape(-1).astype(np.int64)


def _phase_names(
    intensities: np.ndarray, labels: np.ndarray, lines: tuple[str, ...], n_phases: int
) -> list[str]:
    from napari_sigma.phases.spectra import phase_mean_spectra
    from napari_sigma.phases.statistics import main_elements, phase_display_name

    means = phase_mean_spectra(intensities, labels, n_phases)
    return [
        phase_display_name(k + 1, main_elements(means[k], list(lines))) for k in range(n_phases)
    ]


def package_versions() -> dict[str, str]:
    """Versions of the packages that shape a result (for ``run.json``)."""
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("napari-sigma-eds", "numpy", "scipy", "torch", "scikit-learn", "rosettasciio"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found
