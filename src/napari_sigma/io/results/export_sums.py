"""The sums the export takes instead of reading the cube again: an analysis' own phase sums
(:func:`_exact_phase_sums`), the mineral report's sums of edited labels
(:func:`_report_reads_the_cube`, :func:`_report_sums`), and the phases' abundance area fractions
(:func:`_phase_abundances`)."""

from __future__ import annotations

from typing import Any

import numpy as np


def _report_reads_the_cube(result: Any, labels: np.ndarray) -> bool:
    """Whether the mineral report of ``labels`` would read the cube and can be made from
    :func:`~napari_sigma.io.mineral_report.mineralogy.cube_sums` instead: labels other than the analysis' own
    (whose sums it kept), 2-D, with the beam energy (without it the abundances' host
    correction reads the cube whatever it is given)."""
    labels = np.asarray(labels)
    if labels.ndim != 2 or not result.image.beam_energy or not labels.any():
        return False
    return not np.array_equal(labels, result.labels)


def _report_sums(result: Any, labels: np.ndarray, ids: list[int], label_sums: Any) -> Any:
    """:func:`~napari_sigma.io.mineral_report.mineralogy.cube_sums` of ``labels`` for the mineral report, the
    line dispersions when the phases are identified anew (not the analysis' own minerals)."""
    from napari_sigma.io.mineral_report.mineralogy import cube_sums

    settings = getattr(result, "settings", None)
    identify = settings is None or getattr(settings, "identify_minerals", True)
    own = list(getattr(result, "phase_minerals", []) or [])
    described = getattr(result, "minerals_labels", None)
    if own and described is not None and np.array_equal(labels, described):
        identify = False  # a session reopened after edits: its minerals are of these labels
    n = int(max(ids, default=0))
    return cube_sums(result.image, labels, n, ids if identify else (), label_sums)


def _phase_abundances(
    result: Any, labels: np.ndarray, phase_ids, fractions=None, sums: Any = None
) -> np.ndarray:
    """Abundance area fraction of each phase of ``phase_ids``: the map's sum spectrum unmixed
    onto the phases' own spectra (:func:`~napari_sigma.io.mineral_report.mineralogy.abundance_fractions`, the
    numbers of the mineralogy report's ``abundance_area_percent``; ``fractions`` of labels 1..K
    when the report already solved it). Not the sum of per-pixel fractions: a non-negative
    fit of each noisy pixel puts positive shares of every phase in it, which inflates minor
    phases at low counts (1.7 % ilmenite read as 7 % at 30 counts per pixel)."""
    from napari_sigma.io.mineral_report.mineralogy import label_abundances

    n = int(max(phase_ids, default=0))
    if fractions is None and n:
        fractions = label_abundances(result, labels, n, sums)
    values = np.zeros(0) if fractions is None else np.asarray(fractions, np.float64).ravel()
    return np.array([values[k - 1] if 1 <= k <= values.size else 0.0 for k in phase_ids])


def _exact_phase_sums(result: Any, labels: np.ndarray, spectra: Any = None) -> np.ndarray | None:
    """``spectra`` when they can be the exact sums over ``labels`` (integer counts summed in
    float64, a row for every label, a column per channel): the result's phase sum spectra
    over its own labels, or a caller's over edited ones. The export's statistics then need no
    pass over the cube. None otherwise (the statistics sum the cube)."""
    if spectra is None or np.dtype(result.image.counts.dtype).kind not in "biu":
        return None
    spectra = np.asarray(spectra)
    if spectra.dtype != np.float64 or spectra.ndim != 2:
        return None
    channels = int(result.image.counts.shape[-1])
    covers = spectra.shape[0] >= int(labels.max(initial=0)) and spectra.shape[1] == channels
    return spectra if covers else None
