"""Fitting a :class:`~napari_sigma.pipeline.model.FittedModel`: on many fields, or on one labelled field.

**Many fields** (:func:`fit_model`). Phases are found on a stratified sample of every field:
square tiles of the analysis grid, the same number from each field, spread over the field by
systematic sampling (one tile per cell of a regular grid, at a seeded offset). The tiles' window
counts, neighbour-averaged counts and doses are placed side by side in one strip, normalised to
the pooled mean dose, and the phase finding of a single map (homogeneous pixels, BIC, merging,
trace and split searches: :func:`~napari_sigma.phases.finding.find_phases`) runs on the strip.
Memory is bounded by ``max_pixels`` whatever the number of fields: fields are read one at a time
and only their tiles are kept (past ``max_pixels / tile²`` fields, an evenly spread subset of the
fields gives one tile each). A second pass classifies every field with the fitted templates and
sums the spectra of each phase; the NMF components are fitted on those pooled sums.

**One labelled field** (:func:`model_from_labels`): the model of an analysis as a user left it
(edited labels, renamed phases), to save with a session or apply to other fields.

In both, a phase's templates come from its homogeneous pixels (all of its pixels when it has
fewer than two, e.g. a trace phase or a phase painted by hand) with its final label.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from napari_sigma.compute.progress import Computation, Progress
from napari_sigma.errors import AnalysisError
from napari_sigma.pipeline.model import (
    FieldFeatures,
    FittedModel,
    classify,
    field_features,
    model_features,
    normalised,
)
from napari_sigma.pipeline.model_check import describe_fields, own_not_fitted

#: Pixels of the pooled sample (analysis grid) by default.
DEFAULT_SAMPLE_PIXELS = 512 * 512
DEFAULT_TILE = 32

FieldSource = Any  # a SpectrumImage, a path, or a callable returning a SpectrumImage


def load_field(source: FieldSource):
    """The spectrum image of a field source (a SpectrumImage, a file path or a callable)."""
    if isinstance(source, str | Path):
        from napari_sigma.io.readers.reading import read_spectrum_image

        return read_spectrum_image(source)
    if isinstance(source, Callable):
        return source()
    return source


@dataclass
class _Tiles:
    """Tiles of the fields side by side: windows, averaged windows, doses, intensities."""

    windows: list[np.ndarray]
    averaged: list[np.ndarray]
    dose: list[np.ndarray]
    averaged_dose: list[np.ndarray]
    intensities: list[np.ndarray]

    def side_by_side(self, name: str) -> np.ndarray:
        return np.concatenate(getattr(self, name), axis=1)


def tile_origins(
    grid: tuple[int, int], n_tiles: int, tile: int, rng: np.random.Generator
) -> list[tuple[int, int]]:
    """Top-left corners of ``n_tiles`` non-overlapping ``tile`` squares spread over ``grid``.

    Systematic sampling over the raster of all tile positions: positions ``(i + u) * P / n``
    for a random ``u`` in [0, 1), so every part of the field is represented.
    """
    ys = range(0, grid[0] - tile + 1, tile)
    xs = range(0, grid[1] - tile + 1, tile)
    positions = [(y, x) for y in ys for x in xs]
    if n_tiles >= len(positions):
        return positions
    picks = ((np.arange(n_tiles) + rng.random()) * len(positions) / n_tiles).astype(int)
    return [positions[i] for i in picks]


def _metadata_of(source: FieldSource):
    """The field opened lazily when it is a file (metadata without reading the cube)."""
    path = getattr(source, "path", source)
    if isinstance(path, str | Path):
        from napari_sigma.io.readers.reading import read_spectrum_image

        return read_spectrum_image(path, lazy=True, map_index=getattr(source, "map_index", 0))
    return load_field(source)


def shared_lines(sources: Sequence[FieldSource], settings: Any) -> tuple[str, ...]:
    """The lines of a shared model: the settings' lines or elements, else the union of the
    fields' elements (from their metadata, else suggested from the first field's spectrum)."""
    from napari_sigma.pipeline.analysis import choose_lines
    from napari_sigma.xray.lines import lines_for_elements

    first = _metadata_of(sources[0])
    if settings.lines or settings.elements:
        return choose_lines(first, settings)
    elements: list[str] = []
    beam = first.beam_energy
    for source in sources:
        image = first if source is sources[0] else _metadata_of(source)
        elements += [e for e in image.elements if e not in elements]
    if not elements:
        return choose_lines(first, settings)
    usable = [e for e in elements if e not in ("H", "He", "Li")]
    return tuple(lines_for_elements(usable, beam))


def fit_model(
    sources: Sequence[FieldSource],
    settings: Any,
    max_pixels: int = DEFAULT_SAMPLE_PIXELS,
    tile: int = DEFAULT_TILE,
    lines: tuple[str, ...] | None = None,
    executor: Any = None,
) -> Computation[FittedModel]:
    """Fit one phase model on a stratified sample pooled from every field.

    Parameters
    ----------
    sources : sequence
        The fields (SpectrumImage, file paths, or callables returning one); read one at a time,
        twice.
    settings : AnalysisSettings
        Analysis settings (``cluster_space`` must be ``"spatial"``).
    max_pixels : int
        Pixels of the pooled sample (analysis grid); bounds the memory of the fit.
    tile : int
        Side of the sampled tiles (analysis grid pixels); smaller fields give one whole tile.
    lines : tuple of str, optional
        The lines (default :func:`shared_lines`).
    executor : LocalExecutor or DaskExecutor, optional
        Where the per-field passes run (:mod:`napari_sigma.compute.distributed`); default here.

    Yields
    ------
    Progress
        Stages ``"features"`` (per field), ``"clustering"``, ``"unmixing"``.

    Returns
    -------
    FittedModel
    """
    from napari_sigma.compute.device import resolve_device, torch_threads
    from napari_sigma.compute.distributed import LocalExecutor

    if settings.cluster_space != "spatial":
        raise AnalysisError(
            "a shared model needs the spatial phase finding (cluster_space='spatial')"
        )
    if not sources:
        raise AnalysisError("no fields to fit a model on")
    executor = executor or LocalExecutor()
    device = resolve_device(settings.device)
    lines = tuple(lines or shared_lines(sources, settings))
    tiles, info = yield from _sample_tiles(sources, settings, lines, max_pixels, tile, executor)
    with torch_threads(device, settings.cpu_threads, device != "cpu"):
        model = yield from _fit_on_tiles(tiles, settings, lines, device)
    model.info.update(info)
    model = yield from _fit_components(model, sources, executor)
    return describe_fields(model, _metadata_of(sources[0]).beam_energy)


@dataclass(frozen=True)
class _TileTask:
    source: FieldSource
    settings: Any
    lines: tuple[str, ...]
    n_tiles: int
    tile: int
    index: int


def sample_field(task: _TileTask) -> _Tiles:
    """The sampled tiles of one field (a task: runs here or on a worker)."""
    from napari_sigma.compute.device import resolve_device, torch_threads
    from napari_sigma.compute.progress import run_to_completion
    from napari_sigma.features.intensities import bin_image, neighbour_average

    settings = task.settings
    device = resolve_device(settings.device)
    with _budget_of(task.source), torch_threads(device, settings.cpu_threads, device != "cpu"):
        image = load_field(task.source)
        features = run_to_completion(field_features(image, task.lines, settings, device))
    side = min(task.tile, *features.grid)
    radius = settings.features.neighbour_radius
    averaged = neighbour_average(features.windows, radius)
    averaged_dose = neighbour_average(features.dose[..., None], radius)[..., 0]
    intensities = bin_image(features.intensities, settings.bin_factor)
    rng = np.random.default_rng([settings.seed, task.index])
    tiles = _Tiles([], [], [], [], [])
    for y, x in tile_origins(features.grid, task.n_tiles, side, rng):
        window = (slice(y, y + side), slice(x, x + side))
        tiles.windows.append(features.windows[window])
        tiles.averaged.append(averaged[window])
        tiles.dose.append(features.dose[window])
        tiles.averaged_dose.append(averaged_dose[window])
        tiles.intensities.append(intensities[window])
    return tiles


def _sample_tiles(sources, settings, lines, max_pixels: int, tile: int, executor):
    n_fields = len(sources)
    per_field = max(1, max_pixels // (tile * tile * n_fields))
    chosen = range(n_fields)
    if n_fields * tile * tile > max_pixels:  # one tile each from an evenly spread subset
        keep = max(1, max_pixels // (tile * tile))
        chosen = np.unique((np.arange(keep) * n_fields / keep).astype(int)).tolist()
    tasks = [_TileTask(sources[i], settings, lines, per_field, tile, i) for i in chosen]
    pooled = _Tiles([], [], [], [], [])
    for step, tiles in enumerate(executor.map(sample_field, tasks), start=1):
        for name, group in vars(tiles).items():
            getattr(pooled, name).extend(group)
        yield Progress("features", step, len(tasks), f"sampled field {step}/{len(tasks)}")
    side = min(min(t.shape[:2]) for t in pooled.dose)
    pooled = _Tiles(*([t[:side, :side] for t in group] for group in vars(pooled).values()))
    info = {
        "fields": n_fields,
        "fields_sampled": len(tasks),
        "tiles": len(pooled.dose),
        "tile": side,
        "sampled_pixels": len(pooled.dose) * side * side,
    }
    return pooled, info


def _fit_on_tiles(tiles: _Tiles, settings, lines, device) -> Computation[FittedModel]:
    from napari_sigma.phases.finding import find_phases
    from napari_sigma.pipeline.analysis import _phase_finding

    windows, dose = tiles.side_by_side("windows"), tiles.side_by_side("dose")
    method = settings.features.normalisation
    reference = float(dose.mean())
    mean, std = _fraction_statistics(windows, dose) if method == "sigma" else (None, None)
    raw = normalised(windows, dose, method, reference, mean, std)
    averaged, averaged_dose = tiles.side_by_side("averaged"), tiles.side_by_side("averaged_dose")
    smoothed = normalised(averaged, averaged_dose, method, reference, mean, std)
    counts = (windows, dose) if settings.features.background == "none" else None
    # the seed and the device are the settings' own (AnalysisSettings sets them once)
    finding = yield from find_phases(
        raw, smoothed, settings.clustering, _phase_finding(settings), counts
    )
    labels = finding.labels.reshape(raw.shape[:2])
    ids = np.arange(1, finding.n_phases + 1)
    names = _names(tiles.side_by_side("intensities"), labels, ids, lines)
    return labelled_model(raw, smoothed, labels, ids, names, settings, lines, reference, mean, std)


def _fraction_statistics(windows: np.ndarray, dose: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    fractions = windows.reshape(-1, windows.shape[-1]) / np.maximum(dose.reshape(-1, 1), 1.0)
    return fractions.mean(axis=0), fractions.std(axis=0)


def _names(intensities, labels, ids, lines) -> list[str]:
    from napari_sigma.phases.statistics import main_elements, phase_display_name

    names = []
    for phase_id in ids:
        inside = labels == phase_id
        mean = intensities[inside].mean(axis=0) if inside.any() else np.zeros(len(lines))
        names.append(phase_display_name(int(phase_id), main_elements(mean, list(lines))))
    return names


def labelled_model(
    raw: np.ndarray,
    smoothed: np.ndarray,
    labels: np.ndarray,
    ids: np.ndarray,
    names: list[str],
    settings: Any,
    lines: tuple[str, ...],
    reference_dose: float,
    mean: np.ndarray | None = None,
    std: np.ndarray | None = None,
    colors: np.ndarray | None = None,
) -> FittedModel:
    """A model (without NMF components) whose phases are the labelled pixels of a feature map.

    Parameters
    ----------
    raw, smoothed : ndarray (y, x, F)
        Unsmoothed and smoothed features of the analysis grid.
    labels : ndarray (y, x) int
        Phase id of every grid pixel (0: unassigned, not used).
    ids, names : the phases to keep (ids without pixels are dropped).
    """
    from napari_sigma.phases.homogeneity import homogeneous_pixels
    from napari_sigma.phases.mixed_pixels import phase_templates

    finding = settings.phase_finding
    present = [k for k, phase_id in enumerate(ids) if np.any(labels == phase_id)]
    if not present:
        raise AnalysisError("no labelled pixels to fit a model on")
    ids = np.asarray(ids)[present]
    names = [names[k] for k in present]
    colors = None if colors is None else np.asarray(colors, dtype=np.float64)[present]
    homogeneous = homogeneous_pixels(smoothed, finding.homogeneity, finding.noise_quantile)
    training = _labelled_training_pixels(labels, ids, homogeneous)
    members = raw[training].astype(np.float64)
    hard = _index(ids, labels[training])
    mix_space = "anscombe" if settings.features.normalisation == "poisson" else "linear"
    templates = phase_templates(members, hard, len(ids), finding.mix_fractions, mix_space)
    n_features = members.shape[1]
    pooled = np.cov((members - templates[hard, 0]).T).reshape(n_features, n_features)
    whitening = np.linalg.cholesky(pooled + 1e-3 * np.eye(n_features))
    centred = members - members.mean(axis=0)
    axes = np.linalg.svd(centred[:: max(1, len(centred) // 20000)], full_matrices=False)[2][:2]
    rgba = _phase_rgba(colors, ids)
    return FittedModel(
        settings=settings,
        lines=tuple(lines),
        reference_dose=float(reference_dose),
        templates=templates,
        whitening=whitening,
        covariances=np.stack([_covariance(members[hard == k]) for k in range(len(ids))]),
        phase_ids=ids.astype(np.int32),
        phase_names=list(names),
        phase_colors=np.asarray(rgba, dtype=np.float64),
        components=np.zeros((0, 0)),
        component_names=[],
        phase_spectra=np.zeros((0, 0)),
        latent_basis=np.concatenate([members.mean(axis=0)[None], axes[:2]]),
        energy=(0.0, 1.0, 0),
        feature_mean=np.zeros(0) if mean is None else np.asarray(mean),
        feature_std=np.zeros(0) if std is None else np.asarray(std),
    )


def _labelled_training_pixels(
    labels: np.ndarray, ids: np.ndarray, homogeneous: np.ndarray
) -> np.ndarray:
    """The pixels :func:`labelled_model` learns from: each phase's homogeneous pixels, or all of
    its pixels where fewer than two are homogeneous."""
    training = np.zeros(labels.shape, bool)
    for phase_id in ids:
        inside = labels == phase_id
        few = np.count_nonzero(inside & homogeneous) < 2
        training |= inside if few else inside & homogeneous
    return training


def _phase_rgba(colors: np.ndarray | None, ids: np.ndarray) -> np.ndarray:
    """RGBA of the phases ``ids``: ``colors`` (RGB or RGBA rows), or the default phase colours."""
    from napari_sigma.phases.colors import phase_colors

    if colors is None:
        colors = np.asarray(phase_colors(int(ids.max())), dtype=np.float64)[ids - 1]
    rgba = (
        np.concatenate([colors[:, :3], np.ones((len(ids), 1))], axis=1)
        if colors.shape[1] == 3
        else colors
    )
    return rgba


def _index(ids: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Position in ``ids`` of every value (all values are in ``ids``)."""
    order = np.argsort(ids)
    return order[np.searchsorted(ids[order], values)]


def _covariance(points: np.ndarray) -> np.ndarray:
    d = points.shape[1]
    return np.cov(points.T).reshape(d, d) if len(points) > 1 else np.eye(d)


def field_phase_sums(task: tuple[FittedModel, FieldSource]) -> tuple[np.ndarray, tuple, tuple]:
    """Phase sum spectra ``(max id, E)`` of one field classified by a model, its energy axis
    ``(offset, scale, size)`` and ``(grid pixels beyond the model, grid pixels)``
    (:func:`~napari_sigma.pipeline.model_check.beyond_model`) (a task: runs here or on a
    worker)."""
    from napari_sigma.compute.device import resolve_device, torch_threads
    from napari_sigma.compute.progress import run_to_completion
    from napari_sigma.phases.spectra import phase_sum_spectra
    from napari_sigma.pipeline.analysis import _full_resolution
    from napari_sigma.pipeline.model import template_log_likelihood
    from napari_sigma.pipeline.model_check import beyond_model

    model, source = task
    settings = model.settings
    device = resolve_device(settings.device)
    with _budget_of(source), torch_threads(device, settings.cpu_threads, device != "cpu"):
        image = load_field(source)
        features = run_to_completion(field_features(image, model.lines, settings, device))
        raw = model_features(model, features)
        log_likelihood = template_log_likelihood(raw, model.templates, model.whitening)
        beyond = beyond_model(log_likelihood, raw.shape[-1])
        grid_labels, _ = classify(model, raw, log_likelihood=log_likelihood)
        labels = _full_resolution(grid_labels, settings.bin_factor, image.shape)
        sums = phase_sum_spectra(image.counts, labels, int(model.phase_ids.max()))
    energy = image.energy
    axis = (float(energy.offset), float(energy.scale), int(energy.size))
    return sums, axis, (int(np.count_nonzero(beyond)), int(beyond.size))


def _fit_components(model: FittedModel, sources, executor) -> Computation[FittedModel]:
    """Pooled phase sum spectra of every field (classified by ``model``), then the NMF."""
    from napari_sigma.compute.device import resolve_device
    from napari_sigma.energy import EnergyAxis

    sums, energy, beyond = None, None, np.zeros(2, np.int64)
    tasks = [(model, source) for source in sources]
    for step, (field_sums, axis, counts) in enumerate(
        executor.map(field_phase_sums, tasks), start=1
    ):
        beyond += counts
        if energy is not None and axis != energy:
            raise AnalysisError(
                f"field {step} ({_describe(sources[step - 1])}): its energy axis {axis} differs "
                f"from the first field's {energy}"
            )
        energy = axis
        sums = field_sums if sums is None else sums + field_sums
        yield Progress("unmixing", step, len(sources), f"phase spectra of field {step}")
    device = resolve_device(model.settings.device)
    model.info["not_fitted_fraction"] = float(beyond[0] / max(beyond[1], 1))
    return with_components(model, sums, EnergyAxis(*energy), device)


def _budget_of(source: FieldSource):
    """The memory budget a field source asks for (its ``limit``), as a context."""
    from napari_sigma.compute.chunks import memory_budget

    return memory_budget(getattr(source, "limit", None))


def _describe(source: FieldSource) -> str:
    if isinstance(source, str | Path):
        return str(source)
    return getattr(source, "title", "") or type(source).__name__


def with_components(model: FittedModel, sums: np.ndarray, energy: Any, device: str) -> FittedModel:
    """``model`` with NMF components fitted on phase sum spectra ``(max id, E)`` on ``energy``."""
    from napari_sigma.unmixing.nmf import nmf

    settings = model.settings
    rows = sums[np.asarray(model.phase_ids) - 1]
    n_components = settings.n_components or len(rows)
    masked = rows.copy()
    masked[:, : energy.channel_range(-np.inf, settings.features.low_energy_cutoff_kev).stop] = 0
    _, components = nmf(
        masked, n_components, seed=settings.seed, device=device, max_iter=300, tol=1e-5,
        init=settings.nmf_init,
    )  # fmt: skip
    return replace(
        model,
        components=components,
        component_names=[f"C{i + 1}" for i in range(len(components))],
        phase_spectra=rows,
        energy=(float(energy.offset), float(energy.scale), int(energy.size)),
    )


def model_from_result(result: Any, labels: np.ndarray | None = None, phases: Any = None):
    """The model of an analysis as a user left it (a computation: one pass over the cube).

    Parameters
    ----------
    result : AnalysisResult
        The analysis.
    labels : ndarray (y, x), optional
        The labels as edited (default ``result.labels``).
    phases : iterable, optional
        The phase table (ids, names, colours; see :func:`~napari_sigma.pipeline.session.save_session`);
        default the result's names and the palette.

    Returns
    -------
    FittedModel
        Templates from the (edited) labels, the result's settings and lines; NMF components
        fitted on the phase sums of the edited labels.
    """
    from napari_sigma.compute.device import resolve_device
    from napari_sigma.features.intensities import neighbour_average
    from napari_sigma.phases.spectra import phase_sum_spectra
    from napari_sigma.pipeline.session import session_phases

    settings, image = result.settings, result.image
    labels = np.asarray(result.labels if labels is None else labels)
    rows = session_phases(result, phases)
    device = resolve_device(settings.device)
    features: FieldFeatures = yield from field_features(
        image, tuple(result.lines), settings, device
    )
    method = settings.features.normalisation
    reference = float(features.dose.mean())
    mean, std = (
        _fraction_statistics(features.windows, features.dose) if method == "sigma" else (None, None)
    )
    raw = normalised(features.windows, features.dose, method, reference, mean, std)
    radius = settings.features.neighbour_radius
    averaged_dose = neighbour_average(features.dose[..., None], radius)[..., 0]
    smoothed = normalised(
        neighbour_average(features.windows, radius), averaged_dose, method, reference, mean, std
    )
    factor = settings.bin_factor
    grid_labels = labels[::factor, ::factor][: features.grid[0], : features.grid[1]]
    order = sorted(rows, key=lambda row: row.id)
    model = labelled_model(
        raw, smoothed, grid_labels, np.array([r.id for r in order]), [r.name for r in order],
        settings, tuple(result.lines), reference, mean, std,
        colors=np.array([r.color for r in order], dtype=np.float64),
    )  # fmt: skip
    model.info["not_fitted_fraction"] = own_not_fitted(model, raw)
    sums = phase_sum_spectra(image.counts, labels, int(model.phase_ids.max()))
    yield Progress("unmixing", 1, 1, "model components")
    return describe_fields(with_components(model, sums, image.energy, device), image.beam_energy)
