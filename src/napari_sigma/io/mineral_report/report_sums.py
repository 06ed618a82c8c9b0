"""What the mineral report reads of the cube (:func:`cube_sums`, kept in :class:`CubeSums`),
made where the cube is: a process without the cube makes the report from them, the same numbers
(:mod:`napari_sigma.io.mineral_report.mineralogy`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from napari_sigma.minerals.map_abundances import basis_labels


@dataclass
class CubeSums:
    """What the mineral report of ``labels`` reads of the cube (:func:`cube_sums`), made where
    the cube is: a process without the cube (the export's child when the cube is too large to
    send: 1024² x 2048, 4 GiB) makes the report from these, the same numbers.

    ``depth``: :func:`~napari_sigma.minerals.interiors.phase_depths` of ``labels``; ``cores``: their
    ``interior_labels``; ``core_sums``: the sum spectra of phases 1..K over ``cores``;
    ``map_sum``: the map's sum spectrum; ``deep_sums``: over the pixels at least
    :data:`~napari_sigma.minerals.map_abundances.BASIS_DEPTH` deep, None where
    :func:`~napari_sigma.minerals.map_abundances.abundance_basis` needs none; ``host``:
    ``host_corrected_spectra`` of ``core_sums`` (None where not needed); ``dispersion``:
    :func:`~napari_sigma.minerals.same_names.phase_line_dispersions` of ``cores`` over every
    element with a line (what a quantification may hold; empty when the phases are not
    identified)."""

    labels: np.ndarray
    depth: np.ndarray | None
    cores: np.ndarray
    core_sums: np.ndarray
    map_sum: np.ndarray
    deep_sums: np.ndarray | None = None
    host: tuple | None = None
    dispersion: dict = field(default_factory=dict)

    def of(self, labels: np.ndarray) -> bool:
        """Whether these are the sums of ``labels``."""
        return np.array_equal(self.labels, labels)


def cube_sums(
    image: Any, labels: np.ndarray, n_phases: int, dispersion_ids: Sequence[int] = (),
    label_sums: np.ndarray | None = None,
) -> CubeSums:  # fmt: skip
    """Every read of ``image.counts`` that
    :func:`~napari_sigma.io.mineral_report.mineralogy.write_mineral_report` and
    :func:`~napari_sigma.io.mineral_report.mineralogy.label_abundances` make for ``labels`` (phases
    1..``n_phases``), with the calls they make: one distance transform, the core sums (which
    the identification's phase spectra and
    the abundances' basis share), the deep sums, the host correction (numpy, the GIL released
    in their long calls) and the line dispersions of ``dispersion_ids``' cores (what
    :func:`~napari_sigma.minerals.phases.identify_phases` reads to tell phases of one name
    apart). ``label_sums``: exact sum spectra over ``labels`` (integer counts summed in
    float64), when known: the map's sum is theirs when every pixel has a label (the same
    integers)."""
    from napari_sigma.minerals.host import host_corrected_spectra
    from napari_sigma.minerals.interiors import interior_labels, phase_depths
    from napari_sigma.minerals.same_names import phase_line_dispersions
    from napari_sigma.unmixing.nmf import phase_sum_spectra
    from napari_sigma.xray import lines as xray

    labels = np.asarray(labels)
    counts = image.counts
    depth = phase_depths(labels) if labels.ndim == 2 else None
    cores = interior_labels(labels, depth)
    core_sums = np.asarray(phase_sum_spectra(counts, cores, n_phases), np.float64)
    covered = label_sums is not None and labels.size and labels.min() >= 1
    if covered and len(label_sums) >= int(labels.max()):
        map_sum = np.asarray(label_sums, np.float64).sum(axis=0)
    else:
        map_sum = np.asarray(counts.sum(axis=(0, 1)), dtype=np.float64)
    sums = CubeSums(labels, depth, cores, core_sums, map_sum)
    core_pixels = np.bincount(cores.ravel(), minlength=n_phases + 1)[1 : n_phases + 1]
    if labels.ndim == 2 and np.any(core_pixels > 0):  # what abundance_basis reads
        deep = basis_labels(labels, depth)
        deep_pixels = np.bincount(deep.ravel(), minlength=n_phases + 1)[1 : n_phases + 1]
        if np.any(deep_pixels > core_pixels):
            sums.deep_sums = phase_sum_spectra(counts, deep, n_phases)
        energy = getattr(getattr(image, "energy", None), "energies", None)
        beam = getattr(image, "beam_energy", None)
        sums.host = host_corrected_spectra(
            counts, labels, core_sums, energy, float(beam) if beam else None, depth
        )
    if dispersion_ids and labels.ndim == 2:  # every element a quantification may hold
        every = {int(pid): list(xray.ELEMENTS) for pid in dispersion_ids}
        sums.dispersion = phase_line_dispersions(image, cores, every)
    return sums
