"""The analysis' unmixing stage (:func:`_unmix`, called by :mod:`napari_sigma.pipeline.analysis`):
the phases' sum spectra and their cores' (one pass over the cube, or on the device), the NMF of
the phase spectra, the abundances and phase fractions (one pass), the boundary pixels moved to
their majority phase (:func:`_majority_labels`), the minor twins assigned again (:func:`_twins`),
and the cores and deep pixels the minerals and the mineral report sum (:func:`_cores_and_deep`).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from napari_sigma.compute.progress import Computation, Progress
from napari_sigma.phases.mixture import ClusteringResult
from napari_sigma.pipeline.settings import AnalysisSettings
from napari_sigma.spectrum_image import SpectrumImage


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
    try:
        if settings.cluster_space == "spatial" and settings.phase_finding.fraction_sigma >= 0:
            state = _to_majority(counts, state, fractions, pixels, ~low_energy, settings, n_phases)
        twins = settings.phase_finding.twins
        if settings.cluster_space == "spatial" and twins is not None and lines:
            state = yield from _with_twins(image, state, lines, twins)
        deep_sums = _deep_sums(counts, resident, state, n_phases)
    except BaseException:  # closed (cancelled) or failed: the later solve is not wanted
        cancel_abundances(abundances)
        raise
    return (state.labels, state.spectra, components, weights, abundances, state.interior,
            fractions, state.cores, deep_sums, state.depth)  # fmt: skip


def with_abundances(unmixed: tuple) -> tuple:
    """:func:`_unmix`'s tuple with its abundances (index 4) solved: waits for them where they
    were solved after the pass (:func:`_abundances_and_fractions`)."""
    abundances = unmixed[4]
    if not hasattr(abundances, "result"):
        return unmixed
    return (*unmixed[:4], abundances.result(), *unmixed[5:])


def cancel_abundances(abundances) -> None:
    """Stop the components' abundances solved after the pass (:func:`with_abundances`' wait)
    when the analysis ends without its result (closed by its caller, or an error): its thread
    ends after the batch under way and lets the kept projections go (~48 MB at 1024²). Arrays
    (solved in the pass) need nothing."""
    cancel = getattr(abundances, "cancel", None)
    if cancel is not None:
        cancel()


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
    pixel, from one pass over the cube (:func:`~napari_sigma.unmixing.abundances.nnls_maps`);
    the abundances may be still being solved: then an object whose ``result()`` is the array
    (:func:`with_abundances`)."""
    from napari_sigma.unmixing.abundances import nnls_maps
    from napari_sigma.unmixing.fractions import fractions_of_shares, mean_phase_spectra

    # abundances and phase fractions from one pass over the cube; the components'
    # abundances, which nothing reads before the result, solved after the pass by a thread
    # of their own where that pays (beside the minerals: nnls_maps' ``later``)
    bases = [(components, None), (mean_phase_spectra(spectra, pixels), low_energy)]
    abundances, shares = yield from nnls_maps(counts, bases, device=device, later=(0,))
    if not hasattr(abundances, "result"):
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
    at least :data:`~napari_sigma.io.mineral_report.mineralogy.BASIS_DEPTH` deep (the labels the mineral
    report's abundance basis sums), from one distance transform of ``labels``, and that
    transform (:func:`~napari_sigma.minerals.interiors.phase_depths`; None without labels)."""
    from napari_sigma.io.mineral_report.mineralogy import basis_labels
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
