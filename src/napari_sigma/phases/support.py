"""The support test of phase finding (:mod:`~napari_sigma.phases.finding`): a phase too thin
for the grain-wise test is kept only when its pixels need it; otherwise its pixels go to the
other phases."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from napari_sigma.compute.progress import Computation, Progress

if TYPE_CHECKING:
    from napari_sigma.phases.finding import PhaseFindingSettings


def _without_unsupported_phases(
    mask: np.ndarray,
    state: tuple[np.ndarray, np.ndarray, np.ndarray, int],
    counts: tuple[np.ndarray, np.ndarray],
    settings: PhaseFindingSettings,
    valid: np.ndarray | None = None,
) -> Computation[tuple[np.ndarray, np.ndarray, np.ndarray, int]]:
    """The phases without those that neither their grains nor their pixels support.

    Phases are added on two kinds of evidence: grain by grain (the split search's test on a
    phase's interior pixels, :mod:`~napari_sigma.phases.splitting`) and pixel by pixel (the
    trace search: connected pixels that no phase nor a mix of two explains,
    :mod:`~napari_sigma.phases.trace`). A phase whose region has fewer interior pixels than the
    grain-wise test needs (``split.min_pixels`` after ``split.erode`` erosions: a rim, a zone
    of boundary pixels, a few specks) can rest only on its pixels. It is asked the trace
    search's question with itself left out: do the other phases' profiles, pure or mixed two at
    a time, leave a group of at least ``trace_min_pixels`` connected pixels of it unexplained
    at ``trace_false_alarm`` (and is that group no mix of the other phases in sum, and a
    composition of its own: :func:`~napari_sigma.phases.trace.new_phase_groups`)? When not,
    the data do not need the phase: a candidate made from a few noisy training pixels that
    collected boundary mixtures, say (measured: espm_dev peridotite at 15 counts per pixel,
    seed 4, an orthopyroxene candidate of 22 training pixels whose 510 pixels were
    orthopyroxene-clinopyroxene-olivine mixtures beside the split search's orthopyroxene).
    Unsupported phases are taken out one at a time (the one with the fewest unexplained pixels
    first, the rest asked again without it); at least one phase remains (a map of one phase
    and a few noisy specks is one phase: velox's 16x16 map had a second "phase" of 2-15
    pixels, different ones on every seed). Their pixels are
    classified again among the remaining phases from their counts and neighbours
    (:func:`_reassigned`). ``state`` is (flat labels 0..K-1, probabilities (N, K), training
    labels, K); only ``valid`` pixels are asked.
    """
    from napari_sigma.phases.trace import _robust_profiles, chi_square_threshold

    labels, probabilities, hard, n_phases = state
    split = settings.split
    if split is None:
        return state
    windows, dose = counts
    grid = labels.reshape(dose.shape)
    asked = grid if valid is None else np.where(valid, grid, -1)
    thin = _thin_phases(asked, n_phases, split)
    if not thin:
        return state
    yield Progress("clustering", 0, 1, "testing thin phases")
    flat_counts = windows.reshape(-1, windows.shape[-1]).astype(np.float64)
    flat_dose = dose.reshape(-1).astype(np.float64)
    threshold = chi_square_threshold(windows.shape[-1], settings.trace_false_alarm)
    profiles, _ = _robust_profiles(flat_counts, flat_dose, grid, n_phases, threshold)
    pixels = (asked, flat_counts, flat_dose, threshold)
    remaining, dropped = yield from _unsupported(thin, pixels, profiles, n_phases, settings)
    if not dropped:
        return state
    kept = np.asarray(remaining)
    rank = np.full(n_phases, -1)
    rank[kept] = np.arange(len(kept))
    zone = np.flatnonzero(np.isin(labels, dropped))
    choice, chances = _reassigned(
        rank[labels].reshape(grid.shape), zone, flat_counts, flat_dose, profiles[kept], settings
    )
    labels = rank[labels]
    labels[zone] = choice
    hard = np.where(np.isin(hard, dropped), labels[mask.reshape(-1)], rank[hard])
    probabilities = probabilities[:, kept]
    probabilities[zone] = chances
    probabilities /= np.maximum(probabilities.sum(axis=1, keepdims=True), 1e-30)
    return labels, probabilities, hard, len(kept)


def _thin_phases(asked: np.ndarray, n_phases: int, split) -> list[int]:
    """The phases whose region has fewer interior pixels than the grain-wise test needs."""
    from napari_sigma.phases.splitting import _bounds, _interior

    thin = []
    for k in range(n_phases):
        region = asked == k
        box = _bounds(region, split.erode + 1)
        if region.any() and _interior(region[box], split.erode).sum() < split.min_pixels:
            thin.append(k)
    return thin


def _unsupported(thin, pixels, profiles, n_phases: int, settings: PhaseFindingSettings):
    """``(remaining, dropped)``: the phases kept and the thin phases taken out, one at a time
    (the one with the fewest unexplained pixels first, the rest asked again without it), while
    more than one phase remains. ``pixels``: the asked labels (-1: not asked), the flat window
    counts and doses, the chi-square threshold."""
    remaining = list(range(n_phases))
    dropped: list[int] = []
    while len(remaining) > 1:
        unsupported = []
        for k in [k for k in thin if k in remaining]:
            others = profiles[[j for j in remaining if j != k]]
            flagged = yield from _unsupported_pixels(k, pixels, others, settings)
            if flagged is not None:
                unsupported.append((int(flagged.sum()), k))
        if not unsupported:
            break
        k = min(unsupported)[1]
        remaining.remove(k)
        dropped.append(k)
    return remaining, dropped


def _unsupported_pixels(k: int, pixels, others, settings: PhaseFindingSettings):
    """None when phase ``k``'s pixels support it (a group of them no mix of the ``others``
    explains, or pixels placed by their neighbours that are no mix of the others); else its
    pixels that the others leave unexplained (their number ranks the unsupported phases)."""
    from napari_sigma.phases.trace import (
        _mixtures_of_known_phases,
        mixture_chi_square_steps,
        new_phase_groups,
    )

    asked, flat_counts, flat_dose, threshold = pixels
    members = np.flatnonzero(asked.reshape(-1) == k)
    chi = yield from mixture_chi_square_steps(flat_counts[members], flat_dose[members], others)
    flagged = np.zeros(asked.shape, dtype=bool)
    flagged.reshape(-1)[members[chi > threshold]] = True
    groups = new_phase_groups(
        flat_counts, flat_dose, others, flagged, threshold, settings.trace_min_pixels
    )
    if groups.any():
        return None
    placed = _placed_by_neighbours(asked, k)
    if (
        placed.any()
        and not _mixtures_of_known_phases(
            flat_counts, flat_dose, others, placed.astype(np.int32), threshold
        )[1]
    ):
        return None
    return flagged


def _reassigned(
    grid: np.ndarray,
    zone: np.ndarray,
    counts: np.ndarray,
    dose: np.ndarray,
    profiles: np.ndarray,
    settings: PhaseFindingSettings,
) -> tuple[np.ndarray, np.ndarray]:
    """Phases and probabilities ``(Z,)``, ``(Z, K)`` of the ``zone`` pixels (flat indices;
    ``grid`` holds -1 there, phases 0..K-1 elsewhere) from their own counts and their
    neighbours.

    Each pixel's fit by each phase is the best of the phase alone and its mixes with one
    other phase in which it has the larger share (Poisson chi-square of the window counts, as
    the trace search fits pixels; a mixed boundary pixel goes to its majority phase, not to a
    third phase that looks like the mix, as in the spatial classification's templates), scored
    ``-chi2 / 2`` plus ``spatial_weight`` for each of its 8 neighbours in that phase, by
    iterated conditional modes over the zone (``iterations`` sweeps). The spatial
    classification's probabilities do not serve here: a phase made by the split search has
    probability only on its own pixels.
    """
    own, dose = counts[zone], dose[zone]
    rate = own / np.maximum(dose, 1.0)[:, None]
    log_likelihood = np.full((len(zone), len(profiles)), -np.inf)
    for i in range(len(profiles)):
        for j in range(len(profiles)):
            step = profiles[i] - profiles[j]
            norm = float(step @ step)
            a = np.clip((rate - profiles[j]) @ step / norm, 0.5, 1.0) if norm > 0 else 1.0
            a = np.reshape(a, (-1, 1))
            expected = dose[:, None] * (a * profiles[i] + (1.0 - a) * profiles[j])
            chi = ((own - expected) ** 2 / np.maximum(expected, 0.5)).sum(axis=1)
            np.maximum(log_likelihood[:, i], -0.5 * chi, out=log_likelihood[:, i])
    grid = grid.copy()
    flat = grid.reshape(-1)
    score = log_likelihood
    for _ in range(max(settings.iterations, 1)):
        votes = np.stack(
            [_neighbours_in(grid, k).reshape(-1)[zone] for k in range(len(profiles))], axis=1
        )
        score = log_likelihood + settings.spatial_weight * votes
        choice = np.argmax(score, axis=1)
        if np.array_equal(choice, flat[zone]):
            break
        flat[zone] = choice
    score = score - score.max(axis=1, keepdims=True)
    chances = np.exp(score)
    return flat[zone], chances / chances.sum(axis=1, keepdims=True)


def _placed_by_neighbours(grid: np.ndarray, phase: int) -> np.ndarray:
    """Pixels of one checkerboard colour (``(y + x)`` odd) whose four neighbours (the map's
    edge repeated) all carry ``phase``, whatever their own label.

    Which pixels these are depends on the other colour's labels only, not on the pixels' own
    counts: their summed counts are an unbiased measure of what lies where the phase is. The
    pixels a classification gives a phase are not (they were chosen for looking like its
    template: the mean of a template's pixels leans towards the template's own noise).
    """
    height, width = grid.shape
    grown = np.pad(grid, 1, mode="edge")
    placed = (np.add.outer(np.arange(height), np.arange(width)) % 2) == 1
    for dy, dx in ((0, 1), (2, 1), (1, 0), (1, 2)):
        placed &= grown[dy : dy + height, dx : dx + width] == phase
    return placed


def _neighbours_in(grid: np.ndarray, phase: int) -> np.ndarray:
    """How many of each pixel's 8 neighbours (inside the map) carry ``phase``, ``(y, x)``."""
    height, width = grid.shape
    grown = np.pad(grid == phase, 1).astype(np.int16)
    total = np.zeros(grid.shape, dtype=np.int16)
    for dy in range(3):
        for dx in range(3):
            if dy != 1 or dx != 1:
                total += grown[dy : dy + height, dx : dx + width]
    return total
