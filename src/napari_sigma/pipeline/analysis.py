"""The analysis pipeline and the Python API: spectrum image -> features -> latent -> phases -> NMF.

``analyse(image, settings)`` is a generator that yields :class:`~napari_sigma.compute.progress.Progress` and
returns an :class:`AnalysisResult`; ``run_analysis`` drives it to the end. The CLI and the napari
widgets both call it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

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
from napari_sigma.phases.mixture import ClusteringResult, cluster_phases
from napari_sigma.pipeline.settings import AnalysisSettings
from napari_sigma.spectrum_image import SpectrumImage


@dataclass
class AnalysisResult:
    """Everything an analysis produced, at the input's full resolution where it is an image."""

    image: SpectrumImage
    settings: AnalysisSettings
    lines: tuple[str, ...]
    intensities: np.ndarray
    latent: np.ndarray
    latent_pixels: np.ndarray
    latent_shape: tuple[int, int]
    bin_factor: int
    labels: np.ndarray
    probabilities: np.ndarray
    phase_names: list[str]
    phase_spectra: np.ndarray
    components: np.ndarray
    component_names: list[str]
    phase_weights: np.ndarray
    abundances: np.ndarray
    criterion: dict[int, float]
    timings: dict[str, float]
    device: str
    versions: dict[str, str]
    features: np.ndarray | None = None
    loss_history: list[float] = field(default_factory=list)
    intensity_sigma: np.ndarray | None = None
    phase_minerals: list = field(default_factory=list)
    """Quantification and identification of each phase (`napari_sigma.minerals.phases`)."""
    minerals_labels: np.ndarray | None = None
    """The labels ``phase_minerals`` were computed for, when they are not ``labels`` (a session
    saved after label edits and opened again: its ``labels`` are the edited ones)."""
    phase_fractions: np.ndarray | None = None
    core_labels: np.ndarray | None = None
    """Each phase's core (`napari_sigma.minerals.interiors.interior_labels` of ``labels``), when
    the phases were quantified from it."""
    core_spectra: np.ndarray | None = None
    """The counts summed over ``core_labels``, ``(K, E)`` float64 (exact for integer counts):
    the spectra the minerals are quantified from."""
    deep_spectra: np.ndarray | None = None
    """The counts summed over each phase's pixels at least
    :data:`~napari_sigma.io.mineralogy.BASIS_DEPTH` from another label, ``(K, E)`` float64
    (exact for integer counts; with ``core_spectra``): the mineral report's abundance basis."""
    core_depth: np.ndarray | None = None
    """Each pixel's distance to the nearest pixel of another phase
    (:func:`~napari_sigma.minerals.interiors.phase_depths` of ``labels``, float64 ``(y, x)``; with
    ``core_labels``, which are made from it): the minerals and the mineral report use it again
    instead of computing it anew."""
    host_spectra: tuple | None = None
    """What :func:`~napari_sigma.minerals.host.host_corrected_spectra` gave for ``labels``,
    ``core_spectra``, the image's channel and beam energies and ``core_depth``: ``(corrected
    core spectra (K, E) float64, {phase id: HostCorrection})``, when the minerals were
    quantified from it; the mineral report's abundance basis uses it again."""
    unassigned: dict[str, int] = field(default_factory=dict)
    alternatives: tuple[int, ...] = ()

    @property
    def n_phases(self) -> int:
        """Number of phases found (labels 1..K)."""
        return len(self.phase_names)

    @property
    def purity(self) -> np.ndarray | None:
        """Largest phase fraction of every pixel ``(y, x)`` (1 = one phase; 0 = unassigned).

        ``1 - purity`` is the second-phase fraction: where grain boundaries and overlapping
        grains mix phases.
        """
        if self.phase_fractions is None:
            return None
        return self.phase_fractions.max(axis=-1)

    def phase_choice(self) -> str:
        """One line on the number of phases: ``"auto: 3 phases; next 4, 5"``."""
        mode = self.settings.clustering.n_phases
        count = f"{self.n_phases} phase" + ("" if self.n_phases == 1 else "s")
        head = f"{'auto' if mode == 'auto' else 'given'}: {count}"
        if not self.alternatives:
            return head
        return f"{head}; next {', '.join(str(k) for k in self.alternatives)}"


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
        Data no analysis can use (see :mod:`napari_sigma.io.validation`), named by its file.
    """
    from napari_sigma.compute.device import resolve_device, torch_threads
    from napari_sigma.io.validation import check_at_the_door, validate_spectrum_image

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
    from napari_sigma.compute.device import configure_fast_math

    configure_fast_math(device)
    clock = _Stopwatch()
    lines = choose_lines(image, settings)
    with clock.stage("features"):
        measured, dose, raw, smoothed, grid, counts = yield from _features_stage(
            image, lines, settings, device, totals
        )
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
    phase_names = _phase_names(measured.intensities, labels, lines, clustering.n_phases)
    minerals, host = [], None
    if settings.identify_minerals:
        minerals, host = yield from _timed(
            clock, "minerals", _minerals(image, labels, lines, interior, settings, depth)
        )
        phase_names = mineral_phase_names(phase_names, minerals)
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
        from napari_sigma.io.validation import check_analysable

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
    already made (:func:`~napari_sigma.io.validation.check_analysable`), used where they are
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


def _unmix(
    image: SpectrumImage,
    labels: np.ndarray,
    clustering: ClusteringResult,
    settings: AnalysisSettings,
    device: str,
    lines: tuple[str, ...] = (),
) -> Computation[tuple[np.ndarray, ...]]:
    """Phase spectra, NMF, abundances and phase fractions; boundary pixels to their majority;
    minor twins assigned again (:mod:`~napari_sigma.phases.twins`, from the elements of
    ``lines``).

    Returns (labels, spectra, components, weights, abundances, interior spectra, fractions,
    core labels, deep spectra, depth): the labels after :func:`_majority_labels` and the twins'
    assignment, the spectra summed over them (the NMF components come from the spectra before
    those steps, which move a few per cent of pixels), the cores whose sums are the interior
    spectra (summed in the pass of the phase spectra, following the moved pixels), and the sums
    of the pixels the mineral report's abundance basis takes (:func:`_cores_and_deep`: the
    phase sums less those of the pixels nearer a boundary), and the distance transform of the
    labels the cores were made from (:func:`_cores_and_deep`). None without minerals.
    """
    # the steps' modules are imported here, before numba's load starts in a thread (two threads
    # importing at once may see each other's partly initialised modules)
    from napari_sigma.compute.device import resident_counts
    from napari_sigma.phases.boundaries import moved_spectra  # noqa: F401
    from napari_sigma.phases.spectra import phase_sums_steps  # noqa: F401
    from napari_sigma.unmixing.abundances import start_compiled_warm_up
    from napari_sigma.unmixing.nmf import nmf  # noqa: F401

    n_phases = clustering.n_phases
    yield Progress("unmixing", 0, 3, "phase spectra")
    # on a GPU the cube is uploaded once for both passes (phase sums and abundances)
    resident = resident_counts(image.counts, device)
    # the phases' own spectra, away from boundaries (minerals, the report's abundance basis)
    cores, deep, depth = _cores_and_deep(labels) if settings.identify_minerals else (None,) * 3
    # numba's compiled abundance code loaded beside the phase sums (nothing is imported here
    # until nnls_maps joins it; CLI/scripts, CPU, large cubes only)
    start_compiled_warm_up(image.counts if resident is None else resident, device)
    spectra, interior = yield from _phase_and_core_sums(
        image.counts, resident, labels, cores, n_phases, settings.identify_minerals
    )
    low_energy = _low_energy_channels(image, settings)
    weights, components = yield from _phase_spectra_nmf(
        spectra, low_energy, n_phases, settings, device
    )
    counts = image.counts if resident is None else resident
    pixels = np.bincount(labels.reshape(-1), minlength=n_phases + 1)[1 : n_phases + 1]
    abundances, fractions = yield from _abundances_and_fractions(
        counts, image.shape, components, spectra, pixels, low_energy, device
    )
    state = _Labelled(labels, spectra, interior, cores, deep, depth)
    if settings.cluster_space == "spatial" and settings.phase_finding.fraction_sigma >= 0:
        state = _to_majority(counts, state, fractions, pixels, ~low_energy, settings, n_phases)
    twins = settings.phase_finding.twins
    if settings.cluster_space == "spatial" and twins is not None and lines:
        state = yield from _with_twins(image, state, lines, twins)
    deep_sums = _deep_sums(counts, resident, state, n_phases)
    return (state.labels, state.spectra, components, weights, abundances, state.interior,
            fractions, state.cores, deep_sums, state.depth)  # fmt: skip


class _Labelled(NamedTuple):
    """Labels and what :func:`_unmix` keeps with them: the phases' sum spectra and, with
    minerals (else None), the core labels, the cores' sums (interior), the labels of the deep
    pixels and the labels' distance transform (:func:`_cores_and_deep`)."""

    labels: np.ndarray
    spectra: np.ndarray
    interior: np.ndarray | None
    cores: np.ndarray | None
    deep: np.ndarray | None
    depth: np.ndarray | None


def _phase_and_core_sums(counts, resident, labels, cores, n_phases: int, with_cores: bool):
    """The phases' sum spectra and (``with_cores``) their cores', else None: ``(spectra,
    interior)``, in one pass over ``counts`` or on the device from the ``resident`` cube."""
    from napari_sigma.phases.spectra import phase_sums_steps
    from napari_sigma.unmixing.nmf import resident_phase_sums

    interior = None
    if resident is None:  # one pass over the cube for both sums
        label_sets = [labels, cores] if with_cores else [labels]
        spectra, *rest = yield from phase_sums_steps(counts, label_sets, n_phases)
        interior = rest[0] if rest else None
    else:
        spectra = resident_phase_sums(resident, labels, n_phases)
        if with_cores:
            interior = resident_phase_sums(resident, cores, n_phases)
    return spectra, interior


def _low_energy_channels(image: SpectrumImage, settings: AnalysisSettings) -> np.ndarray:
    """The channels below ``features.low_energy_cutoff_kev`` (True): left out of the NMF and of
    the phase fractions' fit."""
    low_energy = np.zeros(image.energy.size, dtype=bool)
    low_energy[
        : image.energy.channel_range(-np.inf, settings.features.low_energy_cutoff_kev).stop
    ] = True
    return low_energy


def _phase_spectra_nmf(spectra, low_energy, n_phases: int, settings: AnalysisSettings, device):
    """The NMF of the phase spectra without their low-energy channels: ``(weights,
    components)`` (:func:`~napari_sigma.unmixing.nmf.nmf`)."""
    from napari_sigma.unmixing.nmf import nmf

    n_components = settings.n_components or n_phases
    masked = np.where(low_energy, 0, spectra)
    yield Progress("unmixing", 1, 3, f"NMF with {n_components} components")
    weights, components = nmf(
        masked,
        n_components,
        seed=settings.seed,
        device=device,
        max_iter=300,
        tol=1e-5,
        init=settings.nmf_init,
    )
    return weights, components


def _abundances_and_fractions(counts, shape, components, spectra, pixels, low_energy, device):
    """The components' abundances ``(y, x, C)`` and the phase fractions ``(y, x, K)`` of every
    pixel, from one pass over the cube (:func:`~napari_sigma.unmixing.abundances.nnls_maps`)."""
    from napari_sigma.unmixing.abundances import nnls_maps
    from napari_sigma.unmixing.fractions import fractions_of_shares, mean_phase_spectra

    # abundances and phase fractions from one pass over the cube
    bases = [(components, None), (mean_phase_spectra(spectra, pixels), low_energy)]
    abundances, shares = yield from nnls_maps(counts, bases, device=device)
    abundances = abundances.reshape(*shape, -1)
    yield Progress("unmixing", 2, 3, "phase fractions")
    fractions = fractions_of_shares(shares).reshape(*shape, -1)
    return abundances, fractions


def _to_majority(counts, state: _Labelled, fractions, pixels, channels, settings, n_phases):
    """``state`` with the boundary pixels moved to their majority phase
    (:func:`_majority_labels`) and its sums following them (only the moved pixels are read
    again); ``state`` itself when none moves."""
    from napari_sigma.phases.boundaries import moved_spectra

    labels, spectra = state.labels, state.spectra
    interior, cores, deep, depth = state.interior, state.cores, state.deep, state.depth
    majority = _majority_labels(labels, fractions, spectra, pixels, channels, settings)
    if majority is labels:
        return state
    spectra = spectra + moved_spectra(counts, labels, majority, n_phases)
    if interior is not None:
        moved_cores, deep, depth = _cores_and_deep(majority)
        interior = interior + moved_spectra(counts, cores, moved_cores, n_phases)
        cores = moved_cores
    return _Labelled(majority, spectra, interior, cores, deep, depth)


def _with_twins(image, state: _Labelled, lines, twins) -> Computation[_Labelled]:
    """``state`` after :func:`_twins`; the cores made again from the new labels when they moved
    (with minerals)."""
    labels, spectra, interior = yield from _twins(
        image, state.labels, state.spectra, state.interior, state.cores, lines, twins
    )
    cores, deep, depth = state.cores, state.deep, state.depth
    if labels is not state.labels and interior is not None:
        cores, deep, depth = _cores_and_deep(labels)
    return _Labelled(labels, spectra, interior, cores, deep, depth)


def _deep_sums(counts, resident, state: _Labelled, n_phases: int):
    """The sums of the pixels the mineral report's abundance basis takes (``state.deep``; None
    without minerals): on the device, or the phase sums less those of the few shallow pixels
    (read alone)."""
    from napari_sigma.phases.boundaries import moved_spectra
    from napari_sigma.unmixing.nmf import resident_phase_sums

    if state.interior is not None and resident is not None:  # summed on the device
        return resident_phase_sums(resident, state.deep, n_phases)
    if state.interior is not None:  # the phase sums less those of the few shallow pixels
        return state.spectra + moved_spectra(counts, state.labels, state.deep, n_phases)
    return None


def _cores_and_deep(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Each phase's core (:func:`~napari_sigma.minerals.interiors.interior_labels`) and its pixels
    at least :data:`~napari_sigma.io.mineralogy.BASIS_DEPTH` deep (the labels the mineral
    report's abundance basis sums), from one distance transform of ``labels``, and that
    transform (:func:`~napari_sigma.minerals.interiors.phase_depths`; None without labels)."""
    from napari_sigma.io.mineralogy import basis_labels
    from napari_sigma.minerals.interiors import interior_labels, phase_depths

    labels = np.asarray(labels)
    if labels.ndim != 2 or not np.any(labels > 0):
        return np.zeros_like(labels), np.zeros_like(labels), None
    depth = phase_depths(labels)
    return interior_labels(labels, depth), basis_labels(labels, depth), depth


def _twins(image, labels, spectra, interior, cores, lines, twins):
    """Labels, sum spectra and core sums after :func:`~napari_sigma.phases.twins.refine_twins_steps`
    (``cores``: the core labels of ``labels`` when ``interior`` holds their sums)."""
    from napari_sigma.minerals.phases import elements_of_lines
    from napari_sigma.phases.boundaries import moved_spectra
    from napari_sigma.phases.twins import refine_twins_steps

    n_phases = spectra.shape[0]
    refined, cores, _ = yield from refine_twins_steps(
        image.counts, labels, image.energy, elements_of_lines(lines), image.beam_energy, twins,
        interior, spectra, cores if interior is not None else None,
    )  # fmt: skip
    if refined is labels:
        return labels, spectra, interior
    spectra = spectra + moved_spectra(image.counts, labels, refined, n_phases)
    return refined, spectra, cores if interior is not None else None


def _majority_labels(
    labels: np.ndarray,
    fractions: np.ndarray,
    spectra: np.ndarray,
    pixels: np.ndarray,
    channels: np.ndarray,
    settings: AnalysisSettings,
) -> np.ndarray:
    """Boundary pixels to the phase with the larger share (``labels`` itself when none moves).

    See :func:`~napari_sigma.phases.boundaries.majority_labels`. A phase that would lose every
    pixel (all of them mixed) keeps its labels.
    """
    from napari_sigma.phases.boundaries import majority_labels

    finding = settings.phase_finding
    means = spectra / np.maximum(pixels, 1)[:, None]
    majority = majority_labels(
        labels, fractions, means, channels, finding.fraction_sigma, finding.min_separation
    )
    n_phases = len(pixels)
    kept = np.bincount(majority.reshape(-1), minlength=n_phases + 1)[1 : n_phases + 1]
    lost = np.flatnonzero((kept == 0) & (pixels > 0)) + 1
    if lost.size:
        majority = np.where(np.isin(labels, lost), labels, majority)
    return labels if np.array_equal(majority, labels) else majority.astype(labels.dtype)


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
