"""The phases' abundance area fractions over a map, from its summed spectrum
(:func:`abundance_fractions`): the map's mean spectrum unmixed onto each phase's spectrum per pixel
of the pure phase (:func:`abundance_basis`: the pixels at least :data:`BASIS_DEPTH` deep, the
mixing they still hold removed), near-identical phases and minor twins sharing theirs by label
area (:data:`NEAR_IDENTICAL`). The numbers of the mineral report's ``abundance_area_percent``
(:mod:`napari_sigma.io.mineral_report.mineralogy`)."""

from __future__ import annotations

from typing import Any

import numpy as np

NEAR_IDENTICAL = 0.9995
"""Phases whose mean spectra have a cosine above this cannot be told apart by unmixing: their
abundance is shared in proportion to their label areas. So are minor twins
(:func:`~napari_sigma.phases.twins.twin_pairs`: one pixel tells them apart by less than one
standard deviation of counting noise, and their spectra differ by a minor element): the map's mean
spectrum, a sum of such pixels, fixes their shares no better (olivines Fo90/Fo89 of the
benchmark's ``minor_twin`` case: +-3.9 percentage points with their true spectra; unmixing onto
the cores' noisy mean spectra gave errors unrelated to the labels', up to 2.8 points)."""

BASIS_DEPTH = 2.0
"""Pixels at least this far (px, :func:`~napari_sigma.minerals.interiors.phase_depths`) from another
label make a phase's spectrum in the abundance solve (:func:`abundance_basis`)."""


def basis_labels(labels: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """``labels`` where a pixel is at least :data:`BASIS_DEPTH` deep (``depth``:
    :func:`~napari_sigma.minerals.interiors.phase_depths` of ``labels``), 0 elsewhere: the pixels
    whose sums make the abundance basis (:func:`abundance_basis`)."""
    return np.where(depth >= BASIS_DEPTH, labels, 0)


def abundance_fractions(
    image: Any, labels: np.ndarray, n_phases: int, known: tuple | None = None,
    deep_sums: np.ndarray | None = None, depth: np.ndarray | None = None,
    host: tuple | None = None,
) -> np.ndarray:  # fmt: skip
    """Mean area fraction of phases 1..K over the map, from its summed spectrum.

    The map's mean spectrum is unmixed (Poisson-weighted non-negative least squares) onto the
    phases' own mean spectra (counts per pixel of the pure phase, :func:`abundance_basis`): by
    linearity the result is the mean of the pixels' mixing fractions, mixed boundary pixels
    shared, without the bias of per-pixel non-negative fits at low counts. Near-identical
    phases share their abundance by label area, and so do minor twins (:data:`NEAR_IDENTICAL`).

    ``known``: ``(core labels, their sum spectra, the map's sum spectrum or None)`` already
    made for these labels (:func:`known_sums`), the same numbers as computed here from the
    counts. ``deep_sums``: the sum spectra of each label's pixels at least :data:`BASIS_DEPTH`
    deep, when already summed (:func:`abundance_basis` sums them otherwise: one pass over the
    cube, 0.2 s CPU for 512x512x2048). ``depth``: :func:`~napari_sigma.minerals.interiors.
    phase_depths` of ``labels`` when already computed (the analysis' ``core_depth``).
    ``host``: the host correction of the core sums of ``known`` when already computed (the
    analysis' ``host_spectra``; see :func:`abundance_basis`).
    """
    from scipy.optimize import nnls

    from napari_sigma.minerals.interiors import interior_labels, phase_depths
    from napari_sigma.unmixing.nmf import phase_sum_spectra

    labels = np.asarray(labels)
    if known is None:
        if depth is None and labels.ndim == 2:
            depth = phase_depths(labels)  # cores and basis: one EDT
        cores = interior_labels(labels, depth)
        sums = phase_sum_spectra(image.counts, cores, n_phases)
        map_sum = None
    else:
        cores, sums, map_sum = known
        sums = np.asarray(sums, np.float64)[:n_phases]
    if map_sum is None:
        map_sum = np.asarray(image.counts.sum(axis=(0, 1)), dtype=np.float64)
    core_pixels = np.bincount(cores.ravel(), minlength=n_phases + 1)[1 : n_phases + 1]
    label_pixels = np.bincount(labels.ravel(), minlength=n_phases + 1)[1 : n_phases + 1]
    means = sums / np.maximum(core_pixels, 1)[:, None]
    total = map_sum / labels.size
    groups = _similar_groups(means, core_pixels > 0, sums, core_pixels)
    own = abundance_basis(image, labels, sums, core_pixels, map_sum, deep_sums, depth, host)
    basis = np.array([
        (own[g] * label_pixels[g, None]).sum(axis=0) / max(label_pixels[g].sum(), 1)
        for g in groups
    ])  # fmt: skip
    weight = 1.0 / np.sqrt(np.maximum(total, 1.0 / labels.size))
    shares, _ = nnls((basis * weight).T, total * weight)
    fractions = np.zeros(n_phases)
    for group, share in zip(groups, shares, strict=True):
        fractions[group] = share * label_pixels[group] / max(label_pixels[group].sum(), 1)
    return fractions


def abundance_basis(
    image: Any, labels: np.ndarray, core_sums: np.ndarray, core_pixels: np.ndarray,
    map_sum: np.ndarray, deep_sums: np.ndarray | None = None, depth: np.ndarray | None = None,
    host: tuple | None = None,
) -> np.ndarray:  # fmt: skip
    """Each phase's mean spectrum per pixel of the pure phase, ``(K, E)``, for the abundance
    solve of :func:`abundance_fractions`.

    A phase's core (its deepest quarter, ``core_sums`` over ``core_pixels``) is nearly pure but
    few pixels: at 50 counts per pixel its noise alone moved the abundances by up to 0.6
    percentage points (the map's own noise is shared with the pixels a basis is made of, the
    rest of the core's is not). So the basis is made of every pixel at least
    :data:`BASIS_DEPTH` from another label, with what mixing it still holds measured and
    removed (:func:`_moved_to_core_level`): where boundaries are sharp it is the mean of those
    pixels, where mixing reaches deeper (wider interaction volume, grains overlapping through
    a foil) it is moved back along the line to its neighbours' spectra to the core's level.
    Particles in a host whose core still holds host (projected spheres through a foil:
    :func:`~napari_sigma.minerals.host.host_corrected_spectra`) keep their host-corrected core
    instead. Phases without pixels that deep keep their core. ``depth``:
    :func:`~napari_sigma.minerals.interiors.phase_depths` of ``labels``, when already computed.
    ``host``: what ``host_corrected_spectra`` gives for these ``labels``, ``core_sums`` (all K
    phases), the image's channel and beam energies and ``depth``, when already computed (the
    analysis' ``host_spectra``).
    """
    from napari_sigma.minerals.host import host_corrected_spectra
    from napari_sigma.minerals.interiors import phase_depths
    from napari_sigma.unmixing.nmf import phase_sum_spectra

    labels = np.asarray(labels)
    core_sums = np.asarray(core_sums, np.float64)
    n_phases = len(core_sums)
    core_pixels = np.asarray(core_pixels)
    basis = core_sums / np.maximum(core_pixels, 1)[:, None]
    if labels.ndim != 2 or not np.any(core_pixels > 0):
        return basis
    depth = phase_depths(labels) if depth is None else np.asarray(depth)
    deep = basis_labels(labels, depth)
    deep_pixels = np.bincount(deep.ravel(), minlength=n_phases + 1)[1 : n_phases + 1]
    if np.any(deep_pixels > core_pixels):
        if deep_sums is None or len(deep_sums) < n_phases:
            deep_sums = phase_sum_spectra(image.counts, deep, n_phases)
        deep_sums = np.asarray(deep_sums, np.float64)[:n_phases]
        moved = _moved_to_core_level(labels, core_sums, core_pixels, deep_sums, deep_pixels,
                                     map_sum)  # fmt: skip
        wider = deep_pixels > core_pixels
        basis[wider] = moved[wider]
    energy = getattr(getattr(image, "energy", None), "energies", None)
    beam = getattr(image, "beam_energy", None)
    if host is not None and beam and len(host[0]) == n_phases:
        corrected, corrections = host
    else:
        corrected, corrections = host_corrected_spectra(
            image.counts, labels, core_sums, energy, float(beam) if beam else None, depth
        )
    for pid in corrections:
        basis[pid - 1] = corrected[pid - 1] / max(core_pixels[pid - 1], 1)
    return basis


def _moved_to_core_level(
    labels: np.ndarray, core_sums: np.ndarray, core_pixels: np.ndarray, deep_sums: np.ndarray,
    deep_pixels: np.ndarray, map_sum: np.ndarray,
) -> np.ndarray:  # fmt: skip
    """Each phase's deep pixels' mean spectrum (per pixel) with the mixing it holds beyond its
    core's removed, ``(K, E)``.

    The deep set's mean ``D`` and the core's ``C`` lie on the line towards the mean ``H`` of
    the touching phases' cores (weighted by boundary length): ``D - C = c (H - C)``. ``c`` is
    measured by a Poisson-weighted projection (weights the map's mean spectrum: independent of
    the phase's own noise), less the expected share of the core's own noise in the product
    (``C`` is in both factors; the core's pixels are among the deep ones), and it is shrunk
    by ``max(0, 1 - se^2 / c^2)`` (``se`` its counting error): a ``c`` within the noise moves
    the basis by noise. Returns ``D - c (H - C)``; ``D`` where a phase touches no other.
    """
    from napari_sigma.minerals.interiors import touching_phases

    size = labels.size
    variance = np.maximum(np.asarray(map_sum, np.float64) / size, 1.0 / size)
    touching = touching_phases(labels)
    moved = deep_sums / np.maximum(deep_pixels, 1)[:, None]
    for k in np.flatnonzero((deep_pixels > 0) & (core_pixels > 0)).tolist():
        neighbours = {
            q: length for q, length in touching.get(k + 1, {}).items()
            if q <= len(core_sums) and core_pixels[q - 1] > 0
        }  # fmt: skip
        if not neighbours:
            continue
        length = float(sum(neighbours.values()))
        host = sum(w * core_sums[q - 1] / core_pixels[q - 1] for q, w in neighbours.items())
        core = core_sums[k] / core_pixels[k]
        direction = host / length - core
        g = direction / variance
        scale = float(direction @ g)
        if not np.isfinite(scale) or scale <= 0:
            continue
        core_noise = core_sums[k] / core_pixels[k] ** 2 - core_sums[k] / (
            core_pixels[k] * deep_pixels[k]
        )
        c = (float((moved[k] - core) @ g) - float(core_noise @ (1.0 / variance))) / scale
        noise = deep_sums[k] / deep_pixels[k] ** 2 + core_sums[k] / core_pixels[k] ** 2
        se2 = float(noise @ g**2) / scale**2
        if c != 0.0 and np.isfinite(c):
            moved[k] = moved[k] - c * max(0.0, 1.0 - se2 / c**2) * direction
    return moved


def known_sums(result: Any, labels: np.ndarray, n_phases: int) -> tuple | None:
    """What an analysis already summed for its own ``labels``: ``(core labels, core sum
    spectra, the map's sum spectrum or None)`` for :func:`abundance_fractions`, or None (other
    labels, e.g. edited ones; or sums that would not be exact).

    The map's sum spectrum is the sum of the phase spectra when every pixel has a phase
    (integer counts: exact, the numbers ``counts.sum(axis=(0, 1))`` gives).
    """
    cores = getattr(result, "core_labels", None)
    core_sums = getattr(result, "core_spectra", None)
    spectra = getattr(result, "phase_spectra", None)
    counts = getattr(getattr(result, "image", None), "counts", None)
    if cores is None or core_sums is None or counts is None:
        return None
    if np.dtype(counts.dtype).kind not in "biu" or len(core_sums) < n_phases:
        return None
    if not np.array_equal(labels, getattr(result, "labels", None)):
        return None
    map_sum = None
    if spectra is not None and len(spectra) >= int(labels.max(initial=0)) and labels.min() >= 1:
        map_sum = np.asarray(spectra, np.float64).sum(axis=0)
    return cores, core_sums, map_sum


def _similar_groups(
    means: np.ndarray, present: np.ndarray, sums: np.ndarray, pixels: np.ndarray
) -> list[list[int]]:
    from napari_sigma.phases.twins import twin_pairs

    unit = means / np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-30)
    twins = {
        frozenset((a - 1, b - 1))
        for a, b, _ in twin_pairs(sums, np.where(present, pixels, 0), disjoint=False)
    }
    groups: list[list[int]] = []
    for k in np.flatnonzero(present):
        for group in groups:
            close = unit[group[0]] @ unit[k] > NEAR_IDENTICAL or any(
                frozenset((g, int(k))) in twins for g in group
            )
            if close:
                group.append(int(k))
                break
        else:
            groups.append([int(k)])
    return groups
