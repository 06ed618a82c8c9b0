"""A phase model fitted once and applied to any field of the same kind.

:class:`FittedModel` holds what classifying a new field needs: the X-ray lines and feature
settings, the reference dose of the normalisation, the phase templates (each phase's mean
features and its majority mixtures with the others, :mod:`~napari_sigma.phases.mixed_pixels`)
under one shared covariance, each phase's own covariance, the spatial (Potts) prior, phase names
and colours, and the NMF components. It saves to a ``.sigma`` file
(:mod:`napari_sigma.io.archive`: JSON + npz, never pickle).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from napari_sigma.io.archive import Archive, read_archive, write_archive

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
        """The model as JSON content and arrays (see :mod:`napari_sigma.io.archive`)."""
        from napari_sigma.io.export import to_jsonable

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
        from napari_sigma.pipeline.session import settings_from_json

        offset, scale, size = content["energy"]
        return cls(
            settings=settings_from_json(content["settings"]),
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
