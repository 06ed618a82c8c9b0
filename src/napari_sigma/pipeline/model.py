"""A phase model fitted once and applied to any field of the same kind.

:class:`FittedModel` holds what classifying a new field needs: the X-ray lines and feature
settings, the reference dose of the normalisation, the phase templates (each phase's mean
features and its majority mixtures with the others, :mod:`~napari_sigma.phases.mixed_pixels`)
under one shared covariance, each phase's own covariance, the spatial (Potts) prior, phase names
and colours, and the NMF components. It saves to a ``.sigma`` file
(:mod:`napari_sigma.io.results.archive`: JSON + npz, never pickle).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from napari_sigma.io.results.archive import Archive, read_archive, write_archive

MODEL_KIND = "model"


@dataclass
class FittedModel:
    """A fitted phase model (see the module docstring).

    Attributes
    ----------
    settings : AnalysisSettings
        The settings it was fitted with (features, binning, phase finding, NMF).
    lines : tuple of str
        The X-ray lines of the features.
    reference_dose : float
        Mean counts per pixel (analysis grid) the ``poisson`` normalisation scales to.
    feature_mean, feature_std : ndarray (F,)
        Pooled statistics of the ``sigma`` normalisation (empty otherwise).
    templates : ndarray (K, T, F)
        Phase templates: row 0 the pure phase, the others its majority mixtures.
    whitening : ndarray (F, F)
        Lower Cholesky factor of the shared covariance.
    covariances : ndarray (K, F, F)
        Each phase's own covariance of its training features.
    phase_ids : ndarray (K,) int
        Label value of each phase.
    phase_names : list of str
        Name of each phase.
    phase_colors : ndarray (K, 4)
        RGBA colour of each phase (floats in [0, 1]).
    components : ndarray (C, E)
        NMF components on the energy axis ``energy`` (offset, scale, size).
    component_names : list of str
        Their names.
    phase_spectra : ndarray (K, E)
        Mean spectrum of each phase (counts per pixel) over the fitted pixels.
    latent_basis : ndarray (3, F)
        Mean and two principal axes of the training features (the latent view of applied fields).
    energy : tuple
        ``(offset, scale, size)`` of the energy axis of ``components``.
    info : dict
        How it was fitted (fields, sampled pixels, ...).
    """

    settings: Any
    lines: tuple[str, ...]
    reference_dose: float
    templates: np.ndarray
    whitening: np.ndarray
    covariances: np.ndarray
    phase_ids: np.ndarray
    phase_names: list[str]
    phase_colors: np.ndarray
    components: np.ndarray
    component_names: list[str]
    phase_spectra: np.ndarray
    latent_basis: np.ndarray
    energy: tuple[float, float, int]
    feature_mean: np.ndarray = field(default_factory=lambda: np.zeros(0))
    feature_std: np.ndarray = field(default_factory=lambda: np.zeros(0))
    info: dict[str, Any] = field(default_factory=dict)

    _ARRAYS = (
        "templates",
        "whitening",
        "covariances",
        "phase_ids",
        "phase_colors",
        "components",
        "phase_spectra",
        "latent_basis",
        "feature_mean",
        "feature_std",
    )

    @property
    def n_phases(self) -> int:
        """Number of phases K."""
        return len(self.phase_names)

    def to_archive(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """The model as JSON content and arrays (see :mod:`napari_sigma.io.results.archive`)."""
        from napari_sigma.io.results.export import to_jsonable

        content = to_jsonable(
            {
                "settings": self.settings,
                "lines": list(self.lines),
                "reference_dose": float(self.reference_dose),
                "phase_names": list(self.phase_names),
                "component_names": list(self.component_names),
                "energy": list(self.energy),
                "info": self.info,
            }
        )
        arrays = {name: np.asarray(getattr(self, name)) for name in self._ARRAYS}
        return content, arrays

    @classmethod
    def from_archive(cls, content: dict[str, Any], arrays: dict[str, np.ndarray]) -> FittedModel:
        """The model from :meth:`to_archive`'s content and arrays."""
        from napari_sigma.pipeline.settings import settings_from_json

        offset, scale, size = content["energy"]
        return cls(
            settings=settings_from_json(content["settings"], ignore_unknown=True),
            lines=tuple(content["lines"]),
            reference_dose=float(content["reference_dose"]),
            phase_names=[str(n) for n in content["phase_names"]],
            component_names=[str(n) for n in content["component_names"]],
            energy=(float(offset), float(scale), int(size)),
            info=dict(content.get("info") or {}),
            **{name: arrays[name] for name in cls._ARRAYS},
        )


def save_model(path: str | Path, model: FittedModel) -> Path:
    """Write a fitted model to a ``.sigma`` file."""
    content, arrays = model.to_archive()
    return write_archive(path, Archive(MODEL_KIND, content, arrays))


def load_model(path: str | Path) -> FittedModel:
    """Read a fitted model written by :func:`save_model`.

    Raises
    ------
    SigmaFileError
        Not a model file, damaged, tampered with, or of a newer format version.
    """
    from napari_sigma.errors import SigmaFileError

    archive = read_archive(path, kind=MODEL_KIND)
    try:
        return FittedModel.from_archive(archive.content, archive.arrays)
    except (KeyError, TypeError, ValueError) as error:
        raise SigmaFileError(path, f"incomplete or invalid model ({error!r})") from None


# --------------------------------------------------------------------------------------------
# Features of a field under a model


@dataclass
class FieldFeatures:
    """The features of one field on the analysis grid, from one pass over its cube.

    Attributes
    ----------
    intensities : ndarray (y, x, L)
        Background-subtracted line intensities at full resolution (maps, names, statistics).
    windows : ndarray (yb, xb, F)
        Binned feature windows (raw counts with ``background="none"``).
    dose : ndarray (yb, xb)
        Binned total counts.
    intensity_sigma : ndarray (y, x, L) or None
        Counting sigma of ``intensities``.
    """

    intensities: np.ndarray
    windows: np.ndarray
    dose: np.ndarray
    intensity_sigma: np.ndarray | None = None

    @property
    def grid(self) -> tuple[int, int]:
        """Shape of the analysis grid."""
        return (int(self.dose.shape[0]), int(self.dose.shape[1]))


def field_features(image: Any, lines: tuple[str, ...], settings: Any, device: str):
    """:class:`FieldFeatures` of ``image`` (a computation yielding progress; one read of the
    cube: the per-pixel totals come from the feature pass)."""
    from napari_sigma.features.intensities import bin_image, line_features

    measured = yield from line_features(image, lines, settings.features, device, totals=True)
    dose = bin_image(measured.totals, settings.bin_factor)
    features = bin_image(measured.features, settings.bin_factor)
    return FieldFeatures(measured.intensities, features, dose, measured.sigma)


def normalised(
    windows: np.ndarray,
    dose: np.ndarray,
    method: str,
    reference_dose: float,
    mean: np.ndarray | None = None,
    std: np.ndarray | None = None,
) -> np.ndarray:
    """Features ``(y, x, F)`` normalised against fixed references (not the map's own statistics).

    :func:`~napari_sigma.features.intensities.normalise` with the map's mean dose replaced by
    ``reference_dose`` (``poisson``) and the map's mean and standard deviation of the count
    fractions by ``mean`` and ``std`` (``sigma``), so that every field is put on the scale of
    the fitted model.
    """
    from napari_sigma.features.intensities import normalise

    features = normalise(windows, dose, method, reference_dose, mean, std)
    return features.reshape(windows.shape)


def model_features(model: FittedModel, features: FieldFeatures) -> np.ndarray:
    """Unsmoothed normalised features ``(yb, xb, F)`` of a field on the model's scale."""
    return normalised(
        features.windows,
        features.dose,
        model.settings.features.normalisation,
        model.reference_dose,
        model.feature_mean,
        model.feature_std,
    )


def template_log_likelihood(
    raw: np.ndarray, templates: np.ndarray, whitening: np.ndarray, device: str = "cpu"
) -> np.ndarray:
    """``-d^2 / 2`` from every pixel to the nearest template of each phase, shape ``(y, x, K)``.

    ``d`` is the Mahalanobis distance under the shared covariance ``whitening @ whitening.T``
    (the classification of :mod:`~napari_sigma.phases.mixed_pixels` with fixed templates).
    """
    from napari_sigma.phases.mixed_pixels import template_log_likelihood as nearest

    return nearest(raw, templates, whitening, device)


def classify(
    model: FittedModel,
    raw: np.ndarray,
    device: str = "cpu",
    log_likelihood: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Phase ids ``(yb, xb)`` and probabilities ``(yb * xb, K)`` of a field's features.

    The nearest template under the shared covariance, with the model's Potts prior (iterated
    conditional modes over the 8 neighbours). ``log_likelihood``: the features'
    :func:`template_log_likelihood` when the caller has it already.
    """
    from napari_sigma.phases.potts import _potts_icm

    finding = model.settings.phase_finding
    if log_likelihood is None:
        log_likelihood = template_log_likelihood(raw, model.templates, model.whitening, device)
    index, probabilities = _potts_icm(
        log_likelihood, finding.spatial_weight, finding.iterations, device
    )
    ids = np.asarray(model.phase_ids, dtype=np.int32)[index]
    return ids.reshape(raw.shape[:2]), probabilities.astype(np.float32)


def components_on(model: FittedModel, energy: Any) -> np.ndarray:
    """The model's NMF components on the energy axis ``energy`` (interpolated when it differs)."""
    offset, scale, size = model.energy
    if (offset, scale, size) == (float(energy.offset), float(energy.scale), int(energy.size)):
        return model.components
    source = offset + scale * np.arange(size)
    target = float(energy.offset) + float(energy.scale) * np.arange(int(energy.size))
    resampled = np.stack(
        [np.interp(target, source, c, left=0.0, right=0.0) for c in model.components]
    )
    return resampled * (float(energy.scale) / scale)  # counts per channel scale with its width


def apply_model(model: FittedModel, image: Any, device: str | None = None):
    """Classify, unmix and describe one field with a fitted model (a computation).

    Parameters
    ----------
    model : FittedModel
        The model (its phase ids, names and colours are kept).
    image : SpectrumImage
        A field of the same kind (same lines measurable; any energy calibration).
    device : str, optional
        Torch device (default the model's ``settings.device``).

    Yields
    ------
    Progress

    Returns
    -------
    AnalysisResult
        Labels are the model's phase ids; the latent view is the projection of the features on
        the model's two principal axes; ``criterion`` is empty; ``model_check`` says how well
        the model describes the field (:mod:`~napari_sigma.pipeline.model_check`).
    """
    from napari_sigma.compute.device import resolve_device, torch_threads

    resolved = resolve_device(device or model.settings.device)
    with torch_threads(resolved, model.settings.cpu_threads, resolved != "cpu"):
        return (yield from _apply(model, image, resolved))


def _apply(model: FittedModel, image: Any, device: str):
    from napari_sigma.compute.progress import Progress
    from napari_sigma.phases.spectra import phase_sum_spectra
    from napari_sigma.pipeline.analysis import (
        AnalysisResult,
        _full_resolution,
        _representative_pixels,
        _Stopwatch,
        _timed,
        package_versions,
    )
    from napari_sigma.pipeline.model_check import beyond_model, check_field
    from napari_sigma.unmixing.abundances import abundance_maps

    clock = _Stopwatch()
    settings = model.settings
    features = yield from _timed(
        clock, "features", field_features(image, model.lines, settings, device)
    )
    with clock.stage("clustering"):
        raw = model_features(model, features)
        log_likelihood = template_log_likelihood(raw, model.templates, model.whitening, device)
        beyond = beyond_model(log_likelihood, raw.shape[-1]).astype(np.int32)
        grid_labels, probabilities = classify(model, raw, device, log_likelihood)
        labels = _full_resolution(grid_labels, settings.bin_factor, image.shape)
        not_fitted = _full_resolution(beyond, settings.bin_factor, image.shape).astype(bool)
    yield Progress("clustering", 1, 1, f"{model.n_phases} phases of the model")
    n_ids = int(np.max(model.phase_ids))
    with clock.stage("unmixing"):
        spectra = phase_sum_spectra(image.counts, labels, n_ids)
    with clock.stage("check"):
        check = check_field(model, image, spectra.sum(axis=0), not_fitted)
    twins = settings.phase_finding.twins
    if twins is not None:
        with clock.stage("unmixing"):
            labels, spectra = yield from _twins_of_model(image, labels, spectra, model, twins)
    components = components_on(model, image.energy)
    abundances = yield from _timed(
        clock, "unmixing", abundance_maps(image.counts, components, device=device)
    )
    basis = model.latent_basis
    flat = raw.reshape(-1, raw.shape[-1])
    return AnalysisResult(
        image=image,
        settings=settings,
        lines=tuple(model.lines),
        intensities=features.intensities,
        latent=((flat - basis[0]) @ basis[1:].T).astype(np.float32),
        latent_pixels=_representative_pixels(features.grid, settings.bin_factor, image.shape),
        latent_shape=features.grid,
        bin_factor=settings.bin_factor,
        labels=labels,
        probabilities=probabilities.reshape(*features.grid, -1),
        phase_names=names_by_id(model),
        phase_spectra=spectra,
        components=components,
        component_names=list(model.component_names),
        phase_weights=np.zeros((n_ids, len(components))),
        abundances=abundances,
        criterion={},
        timings=clock.timings,
        device=device,
        versions=package_versions(),
        features=None,
        intensity_sigma=features.intensity_sigma,
        model_check=check,
    )


def _twins_of_model(image: Any, labels: np.ndarray, spectra: np.ndarray, model, twins):
    """Labels and sums after :func:`~napari_sigma.phases.twins.refine_twins_steps`, taking the
    cut's labels as they are (``significance`` 0).

    The significance test protects labels that a grain-level split made; here each pixel was
    classified on its own features, on which minor twins are half a standard deviation apart
    (``minor_twin``, a model fitted on seeds 0-2 and applied to each: ARI 0.77, the twins
    speckled; with the cut 0.946-0.951).
    """
    from dataclasses import replace

    from napari_sigma.minerals.phases import elements_of_lines
    from napari_sigma.phases.boundaries import moved_spectra
    from napari_sigma.phases.twins import refine_twins_steps

    refined, _, _ = yield from refine_twins_steps(
        image.counts, labels, image.energy, elements_of_lines(model.lines), image.beam_energy,
        replace(twins, significance=0.0), label_sums=spectra,
    )  # fmt: skip
    if refined is labels:
        return labels, spectra
    return refined, spectra + moved_spectra(image.counts, labels, refined, len(spectra))


def names_by_id(model: FittedModel) -> list[str]:
    """Names of phases 1..max id (ids the model lacks get ``"phase <id>"``)."""
    by_id = dict(zip((int(i) for i in model.phase_ids), model.phase_names, strict=True))
    return [by_id.get(k, f"phase {k}") for k in range(1, int(np.max(model.phase_ids)) + 1)]
