"""What an analysis produced (:class:`AnalysisResult`, made by
:mod:`napari_sigma.pipeline.analysis`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

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
    :data:`~napari_sigma.io.mineral_report.mineralogy.BASIS_DEPTH` from another label, ``(K, E)`` float64
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
    model_check: Any = None
    """How well the applied model describes the field
    (:class:`~napari_sigma.pipeline.model_check.FieldCheck`); None for an analysis of its own."""

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
