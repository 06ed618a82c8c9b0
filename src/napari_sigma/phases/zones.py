"""Candidates and phases that are not phases of their own in phase finding
(:mod:`~napari_sigma.phases.finding`): noise copies of another phase, and zones of mixed pixels
between two or more others (:mod:`~napari_sigma.phases.end_members`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from napari_sigma.phases.end_members import (
    boundary_zones,
    group_means,
    mixture_zones,
    same_as_neighbours,
)
from napari_sigma.phases.merging import _noise_floor
from napari_sigma.phases.splitting import composition_test

if TYPE_CHECKING:
    from napari_sigma.phases.finding import PhaseFindingSettings


def _without_mixture_zones(
    raw: np.ndarray,
    mask: np.ndarray,
    hard: np.ndarray,
    labels: np.ndarray,
    settings: PhaseFindingSettings,
    valid: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Training pixels without mixture zones, and with noise copies joined to their phase.

    A candidate one other explains is a noise copy only when the two, as classified (``labels``,
    flat 0..K-1; only ``valid`` pixels), are not two compositions grain by grain
    (:func:`_two_compositions`).
    """
    from napari_sigma.features.intensities import inverse_anscombe

    n_phases = int(hard.max()) + 1
    members = raw[mask].astype(np.float64)
    averaged = max(settings.averaged_pixels, 1)
    if settings.mix_space == "anscombe":  # mean counts; Poisson noise of a smoothed pixel
        counts = group_means(inverse_anscombe(members), hard, n_phases)
        noise = np.maximum(counts, 0.5) / averaged
    else:
        counts = group_means(members, hard, n_phases)
        noise = np.broadcast_to(_noise_floor(members, hard, averaged), counts.shape)
    grid = labels.reshape(raw.shape[:2])
    classified = grid if valid is None else np.where(valid, grid, -1)
    explained = mixture_zones(
        counts, noise, grid, settings.mixture_distance, _two_compositions(raw, classified, settings)
    )
    if not explained:
        return mask, hard, n_phases
    target = np.arange(n_phases)  # noise copies join their phase, mixture zones are dropped
    for k, partners in explained:
        target[target == k] = partners[0] if len(partners) == 1 else -1
    training = np.full(mask.shape, -1)
    training[mask] = target[hard]
    used = training >= 0
    hard = np.unique(training[used], return_inverse=True)[1]
    return used, hard, int(hard.max()) + 1


def _two_compositions(
    raw: np.ndarray, grid: np.ndarray, settings: PhaseFindingSettings
) -> Callable[[int, int], bool] | None:
    """Whether two candidates, as classified on the map (``grid``: 0..K-1, negative: no
    spectrum), are two compositions by the grain-wise test on their pixels together
    (:func:`~napari_sigma.phases.splitting.composition_test`, the split search's settings);
    None without a split search.

    The noise-copy rule (one pixel's noise) is right for a mixture's cut of one phase, whose
    halves lie 1.6-2.2 standard deviations of a pixel apart however many pixels they hold; it
    also joins two phases that a pixel cannot tell apart but their grains can (measured: the
    held-out banded iron ore's goethite rims, 17 training pixels, 1.8 standard deviations of a
    smoothed pixel from the hematite-magnetite candidate; their classified pixels together:
    T^2 59.6 on independent pixels). The grain-wise test asks the question with the power of
    the candidates' whole regions, on pixels whose noise made neither the grouping nor the
    classification's cut (checkerboard halves).
    """
    if settings.split is None:
        return None
    tested: dict[frozenset[int], bool] = {}  # the same pair may be asked again: test it once

    def distinct(k: int, partner: int) -> bool:
        pair = frozenset((k, partner))
        if pair not in tested:
            together = ((grid == k) | (grid == partner)).astype(np.int8)
            test = composition_test(raw, together, 1, settings.split, settings.mix_space)
            tested[pair] = test is not None and test.is_split(settings.split)
        return tested[pair]

    return distinct


def _without_boundary_zones(
    raw: np.ndarray,
    mask: np.ndarray,
    state: tuple[np.ndarray, np.ndarray, np.ndarray, int],
    settings: PhaseFindingSettings,
    valid: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """The phases without those that are mixture zones between others, found on the phases as
    labelled (:func:`~napari_sigma.phases.end_members.boundary_zones`).

    The candidates' test (:func:`_without_mixture_zones`) sees only the mixture's training
    pixels, before the trace and split searches; a zone whose partner is found only by those
    (measured: the cobalt-rimmed tungsten carbide of the held-out cemented carbide, whose pure
    core had 4 training pixels and whose rim was split from the titanium carbide) stays a phase.
    Each phase's mean counts are taken over its pixels away from other phases (one pixel), the
    noise is that of one smoothed pixel, as for the candidates. A zone's pixels go to the
    partner the spatial classification gives the higher probability; the other labels are
    kept. ``state`` is (flat labels 0..K-1, probabilities (N, K), training labels, K).

    The mixture must explain a phase's mean within ``mixture_distance`` standard errors of that
    mean (its pixels' variance over their number), not of one pixel as for the candidates: a
    phase as labelled has hundreds of pixels, and one pixel's noise let the iron-oxide phase of
    the held-out banded iron ore (hematite, goethite: 1.8 standard deviations of one smoothed
    pixel from 9 % quartz + magnetite, 23 of its mean) pass for a zone; the carbide's rim is
    0.09 of one pixel (0.8 of its mean) from 22 % cobalt + 78 % carbide. The partners' own
    errors are left out (they would only let more pass).
    """
    labels, probabilities, hard, n_phases = state
    grid = labels.reshape(raw.shape[:2])
    if valid is not None:
        grid = np.where(valid, grid, -1)
    inner = _away_from_others(grid)
    groups = grid[inner]
    sizes = np.bincount(groups, minlength=n_phases)[:n_phases]
    measured = np.flatnonzero(sizes > 0)  # a phase of specks has no such pixel: not tested
    if len(measured) <= 2:
        return state
    counts, noise = _inner_means(raw, inner, groups, sizes, n_phases, settings)
    index = np.full(n_phases + 1, -1)  # the measured phases numbered 0..M-1 (-1: none)
    index[measured] = np.arange(len(measured))
    zones = boundary_zones(
        counts[measured], noise[measured], index[grid], settings.mixture_distance
    )
    explained = [(int(measured[k]), [int(measured[j]) for j in partners]) for k, partners in zones]
    for k, partners in explained:
        zone = labels == k
        choice = np.asarray(partners)[np.argmax(probabilities[zone][:, partners], axis=1)]
        labels = labels.copy()
        labels[zone] = choice
        hard = np.where(hard == k, labels[mask.reshape(-1)], hard)
    if not explained:
        return state
    kept = np.setdiff1d(np.arange(n_phases), [k for k, _ in explained])
    rank = np.full(n_phases, -1)
    rank[kept] = np.arange(len(kept))
    probabilities = probabilities[:, kept]
    probabilities /= np.maximum(probabilities.sum(axis=1, keepdims=True), 1e-30)
    return rank[labels], probabilities, rank[hard], len(kept)


def _inner_means(raw, inner, groups, sizes, n_phases: int, settings: PhaseFindingSettings):
    """``(counts, noise)`` ``(K, F)``: each phase's mean counts over its ``inner`` pixels (of
    label ``groups``, ``sizes`` of them) and the variance of that mean."""
    from napari_sigma.features.intensities import inverse_anscombe

    counts = np.empty((n_phases, raw.shape[-1]))
    spread = np.empty_like(counts)
    for f in range(raw.shape[-1]):  # one feature at a time: no (N, F) float64 copy
        values = raw[..., f][inner].astype(np.float64)
        if settings.mix_space == "anscombe":  # mixing is linear in counts
            values = inverse_anscombe(values)
        counts[:, f] = np.bincount(groups, values, n_phases)[:n_phases] / np.maximum(sizes, 1)
        squares = np.bincount(groups, values * values, n_phases)[:n_phases] / np.maximum(sizes, 1)
        spread[:, f] = squares - counts[:, f] ** 2
    # the variance of each phase's mean: its pixels' spread (counting noise and any real
    # variation), at least Poisson's where the features are counts
    if settings.mix_space == "anscombe":
        spread = np.maximum(spread, counts)
    noise = np.maximum(spread, 1e-12) / np.maximum(sizes, 1)[:, None]
    return counts, noise


def _away_from_others(grid: np.ndarray) -> np.ndarray:
    """Pixels whose 8 neighbours (the map's edge repeated) all carry their label (>= 0)."""
    return (grid >= 0) & same_as_neighbours(grid)
