"""Which candidate phases are end members: noise splits and mixture zones are not phases.

The Gaussian mixture on homogeneous pixels proposes candidate phases. Two kinds of candidate are
not phases of their own:

- **Noise splits.** At a few counts per pixel the smoothed features are discrete and skewed, and
  a mixture cuts one phase into several groups. Cutting a Gaussian in two puts the halves' means
  1.6-2.2 noise standard deviations apart (2 phi(c) / (Phi(c)(1 - Phi(c))) for a cut at c), so
  groups whose means lie less than ``noise_distance`` standard deviations of *counting noise*
  apart are one phase (:func:`noise_distances`). Two real phases that close (minor-element twins)
  cannot be told apart pixel by pixel anyway; the grain-wise composition test
  (:mod:`~napari_sigma.phases.splitting`) separates them afterwards.
- **Mixture zones.** Where grains overlap through a foil, or the beam's interaction volume spans
  a boundary, pixels record a mixture of two or three phases, and a wide overlap zone has
  homogeneous pixels of its own. A candidate whose mean counts (per unit dose) a convex
  combination of two or more other candidates explains within counting noise (:func:`mixture_zones`), and whose
  pixels border those candidates, is a mixture zone: it is dropped, and its pixels go to the
  phase with the larger share through the boundary-mixture templates
  (:mod:`~napari_sigma.phases.mixed_pixels`).

Counting noise is that of one pixel's smoothed features: the within-group variance of the
unsmoothed features divided by the number of pixels averaged.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

#: Candidates closer than this (standard deviations of counting noise) are one phase.
NOISE_DISTANCE = 3.0
#: A mixture explains a candidate when its residual is below this (same units).
MIXTURE_DISTANCE = 3.0
#: Smallest share of a mixing partner that makes a candidate a mixture (else a noise copy).
MIN_PARTNER_SHARE = 0.1


def group_means(points: np.ndarray, labels: np.ndarray, n_groups: int) -> np.ndarray:
    """Mean of each group 0..K-1, ``(K, F)``."""
    sums = np.stack(  # np.add.at's sums in the same order, without its per-row overhead
        [
            np.bincount(labels, weights=points[:, f], minlength=n_groups)
            for f in range(points.shape[1])
        ],
        axis=1,
    ).reshape(n_groups, points.shape[1])
    return sums / np.maximum(np.bincount(labels, minlength=n_groups), 1)[:, None]


def noise_distances(means: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """Distances ``(K, K)`` between group means in standard deviations of counting noise."""
    diff = means[:, None, :] - means[None, :, :]
    return np.sqrt((diff * diff / np.maximum(noise, 1e-12)).sum(axis=-1))


def merge_noise_splits(
    points: np.ndarray, labels: np.ndarray, noise: np.ndarray, distance: float = NOISE_DISTANCE
) -> np.ndarray:
    """Merge the closest pair of groups while their noise distance is below ``distance``.

    Parameters
    ----------
    points : ndarray, shape (N, F)
        Smoothed features of the training pixels.
    labels : ndarray, shape (N,)
        Group of each point.
    noise : ndarray, shape (F,)
        Variance of counting noise of each smoothed feature.
    distance : float
        Merge threshold.

    Returns
    -------
    ndarray, shape (N,)
        Groups renumbered 0..K'-1 (sizes kept in the order of first appearance).
    """
    labels = np.unique(labels, return_inverse=True)[1]
    while labels.max() > 0:
        n_groups = labels.max() + 1
        dist = noise_distances(group_means(points, labels, n_groups), noise)
        np.fill_diagonal(dist, np.inf)
        a, b = np.unravel_index(np.argmin(dist), dist.shape)
        if dist[a, b] >= distance:
            break
        labels = np.unique(np.where(labels == max(a, b), min(a, b), labels), return_inverse=True)[1]
    return labels


def mixture_fit(
    target: np.ndarray, others: np.ndarray, noise: np.ndarray
) -> tuple[np.ndarray, float]:
    """Convex combination of ``others`` (M, F) closest to ``target`` (F,) in noise units.

    The features are scaled to one dose per pixel, so a mixture's shares are non-negative and
    sum to 1 (enforced by a heavily weighted extra row). Returns the shares ``(M,)`` and the
    residual distance in standard deviations of noise.
    """
    from scipy.optimize import nnls

    scale = 1.0 / np.sqrt(np.maximum(noise, 1e-12))
    weight = 1e3 * max(float(np.abs(others * scale).max()), 1.0)
    matrix = np.vstack([(others * scale).T, np.full((1, len(others)), weight)])
    shares = nnls(matrix, np.append(target * scale, weight))[0]
    residual = float(np.linalg.norm((others.T @ shares - target) * scale))
    return shares, residual


def mixture_zones(
    counts: np.ndarray,
    noise: np.ndarray,
    grid_labels: np.ndarray,
    distance: float = MIXTURE_DISTANCE,
    distinct: Callable[[int, int], bool] | None = None,
) -> list[tuple[int, list[int]]]:
    """Candidates that other candidates explain: noise copies and mixture zones.

    A candidate that one other candidate explains (scaled) is a noise copy of it; one that a
    non-negative mix of two or more others explains, and whose pixels border them, is a mixture
    zone. Candidates are taken out one at a time, the best explained first, and the rest tested
    again, so that each is explained by candidates that remain phases.

    Parameters
    ----------
    counts : ndarray, shape (K, F)
        Mean features of each candidate in a space where mixing is linear (counts).
    noise : ndarray, shape (K, F)
        Variance of counting noise of each candidate's mean smoothed pixel in that space.
    grid_labels : ndarray of int, shape (y, x)
        Provisional phase 0..K-1 of every pixel (negative: none), for adjacency.
    distance : float
        Largest residual (standard deviations of noise) of an explaining mixture.
    distinct : callable (k, partner) -> bool, optional
        Whether candidate ``k`` and the one candidate that explains it are two compositions
        by a test with the power of their whole regions (the grain-wise test of
        :mod:`~napari_sigma.phases.splitting`): such a candidate is not a noise copy. One
        pixel's noise is the right scale for a noise split's halves (1.6-2.2 standard
        deviations apart whatever the number of pixels), not for two phases of hundreds of
        pixels each that a pixel cannot tell apart.

    Returns
    -------
    list of (int, list of int)
        Each explained candidate with the candidates that explain it (one: a noise copy), in
        the order taken out. At least two candidates always remain.

    Notes
    -----
    The test is at one smoothed pixel's noise, so it abstains where that noise has no power:
    a candidate that one smoothed pixel cannot tell from an empty pixel
    (:func:`_told_from_nothing`) is taken out neither as a mixture zone nor (without
    ``distinct``) as a noise copy. ``distinct``'s test, with the power of the regions,
    decides a noise copy whatever the dose.
    """

    told = _told_from_nothing(counts, noise, distance)

    def accepts(k: int, partners: list[int]) -> bool:
        if len(partners) == 1 and distinct is not None:  # decided by the regions' test
            return not distinct(k, partners[0])
        if not told[k]:  # one pixel's test has no power on this candidate
            return False
        return len(partners) == 1 or (bool(partners) and _borders(grid_labels, k, partners))

    return _taken_out_one_by_one(counts, noise, distance, accepts)


def _told_from_nothing(counts: np.ndarray, noise: np.ndarray, distance: float) -> np.ndarray:
    """Whether one smoothed pixel tells each candidate ``(K,)`` from an empty pixel: its mean
    lies at least ``distance`` standard deviations of its noise from zero counts.

    A candidate nearer to nothing than that lies within ``distance`` of every mix that leans
    on a near-empty partner (a hole, the background) and of its own partners' faint mixes:
    the one-pixel test "a mix explains it" then holds for any composition and says nothing,
    and which candidate it takes out hangs on the mixture's exact means (its seed). Measured
    on JEOL ``rawdata.ASW`` (~1 count per pixel): every candidate of every seed lay 0.5-1.6
    standard deviations from an empty pixel, and on four seeds of five the step took out the
    carbon film with the hole as a "mix" of the cubanite and a C-O deposit (on one of them the
    film and the hole then stayed one phase).
    """
    return np.sqrt((counts**2 / np.maximum(noise, 1e-300)).sum(axis=1)) >= distance


def _taken_out_one_by_one(
    counts: np.ndarray,
    noise: np.ndarray,
    distance: float,
    accepts: Callable[[int, list[int]], bool],
    on_taken: Callable[[int, list[int]], None] | None = None,
) -> list[tuple[int, list[int]]]:
    """The candidates a non-negative mix of the remaining ones explains within ``distance``
    and that ``accepts(k, partners)``, taken out one at a time, the best explained first, the
    rest tested again (``on_taken(k, partners)`` after each); at least two remain."""
    remaining = list(range(len(counts)))
    explained: list[tuple[int, list[int]]] = []
    while len(remaining) > 2:
        best: tuple[float, int, list[int]] | None = None
        for k in remaining:
            partners, residual = _explaining(k, remaining, counts, noise[k])
            if residual >= distance or (best is not None and residual >= best[0]):
                continue
            if accepts(k, partners):
                best = (residual, k, partners)
        if best is None:
            break
        explained.append((best[1], best[2]))
        remaining.remove(best[1])
        if on_taken is not None:
            on_taken(best[1], best[2])
    return explained


def _explaining(
    k: int, remaining: list[int], counts: np.ndarray, noise: np.ndarray
) -> tuple[list[int], float]:
    """The candidates whose non-negative mix explains candidate ``k``, and its residual."""
    others = [j for j in remaining if j != k]
    shares, residual = mixture_fit(counts[k], counts[others], noise)
    return [others[i] for i in np.flatnonzero(shares >= MIN_PARTNER_SHARE)], residual


def _borders(grid_labels: np.ndarray, k: int, partners: list[int]) -> bool:
    """Whether candidate ``k``'s pixels touch every partner's pixels (8-neighbourhood)."""
    from scipy.ndimage import binary_dilation

    region = grid_labels == k
    if not region.any():
        return False
    around = binary_dilation(region, np.ones((3, 3), dtype=bool), iterations=2) & ~region
    touching = set(np.unique(grid_labels[around]).tolist())
    return all(p in touching for p in partners)


def contact_lengths(grid_labels: np.ndarray, n_groups: int) -> np.ndarray:
    """Pixel edges ``(K, K)`` (4-neighbourhood, symmetric) between groups 0..K-1 of a map
    (negative labels: no group)."""
    contacts = np.zeros((n_groups, n_groups), dtype=np.int64)
    for a, b in (
        (grid_labels[1:, :], grid_labels[:-1, :]),
        (grid_labels[:, 1:], grid_labels[:, :-1]),
    ):
        edge = (a != b) & (a >= 0) & (b >= 0)
        np.add.at(contacts, (a[edge], b[edge]), 1)
    return contacts + contacts.T


def same_as_neighbours(grid: np.ndarray) -> np.ndarray:
    """Pixels of a ``(y, x)`` label map whose 8 neighbours (the map's edge repeated) all carry
    their label."""
    height, width = grid.shape
    grown = np.pad(grid, 1, mode="edge")
    same = np.ones(grid.shape, dtype=bool)
    for dy in range(3):
        for dx in range(3):
            if dy != 1 or dx != 1:
                same &= grown[dy : dy + height, dx : dx + width] == grid
    return same


def lies_between(contacts: np.ndarray, k: int, partners: list[int]) -> bool:
    """Whether group ``k`` separates its ``partners`` on the map: every two of them touch each
    other along fewer pixel edges than each touches ``k``.

    A zone of pixels that mix two phases forms wherever those phases meet, so they hardly meet
    without it; a phase of intermediate composition that merely borders both leaves them
    meeting elsewhere.
    """
    for i, a in enumerate(partners):
        for b in partners[i + 1 :]:
            if contacts[a, b] >= min(contacts[k, a], contacts[k, b]):
                return False
    return True


def boundary_zones(
    counts: np.ndarray,
    noise: np.ndarray,
    grid_labels: np.ndarray,
    distance: float = MIXTURE_DISTANCE,
) -> list[tuple[int, list[int]]]:
    """Phases that are mixtures of two or more others along their boundaries.

    The test of :func:`mixture_zones` (a non-negative mix of the other phases explains the
    phase's mean counts within ``distance`` standard deviations of one smoothed pixel's counting
    noise, each partner with at least :data:`MIN_PARTNER_SHARE`), for phases as they are after
    every pixel is labelled, with two differences: a phase one other phase explains is left
    alone (phases a pixel cannot tell apart are the grain-wise split's, tested there), and the
    phase must lie between its partners (:func:`lies_between`), not only touch them.

    Parameters and returns as :func:`mixture_zones` (``grid_labels``: the phases 0..K-1).
    """
    contacts = contact_lengths(grid_labels, len(counts))

    def accepts(k: int, partners: list[int]) -> bool:
        return len(partners) >= 2 and lies_between(contacts, k, partners)

    def joined(zone: int, partners: list[int]) -> None:
        # the zone's pixels join its partners: their contacts are where the zone was
        for partner in partners:
            contacts[partner] += contacts[zone]
            contacts[:, partner] += contacts[:, zone]

    return _taken_out_one_by_one(counts, noise, distance, accepts, joined)
