"""Merging the mixture's components into phases (step 2 of :mod:`~napari_sigma.phases.finding`):
components closer than counting noise allows to tell apart, or the closest down to a given number."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from napari_sigma.phases.finding import PhaseFindingSettings


def _merged(
    points: np.ndarray,
    labels: np.ndarray,
    n_phases: int,
    target: int | None,
    settings: PhaseFindingSettings,
    floor: np.ndarray | None = None,
) -> tuple[np.ndarray, int]:
    """Merge indistinguishable phases (automatic K) or the closest ones down to a given K."""
    if target is None:
        return merge_close_phases(points, labels, settings.merge_distance, floor=floor)
    if n_phases > target:
        return merge_close_phases(points, labels, settings.merge_distance, target, floor)
    return labels, n_phases


def _noise_floor(raw: np.ndarray, labels: np.ndarray, averaged_pixels: int) -> np.ndarray:
    """Variance ``(F,)`` of each smoothed feature that counting noise alone gives.

    The within-group variance of the unsmoothed features of the training pixels, divided by
    the number of pixels averaged. Noise at a few counts per pixel makes the smoothed features
    discrete (a window of 0.2 counts per pixel takes a handful of values), and a mixture then
    cuts one phase into groups of almost no spread along such a feature, whose pooled
    covariance makes any difference look significant (measured: alumina at 120 counts per
    pixel cut into three "phases" 0.3 Zr counts apart).
    """
    raw = raw.astype(np.float64)
    groups = np.unique(labels, return_inverse=True)[1]
    sums = np.stack([np.bincount(groups, weights=raw[:, f]) for f in range(raw.shape[1])], axis=1)
    means = sums / np.bincount(groups)[:, None]
    return (raw - means[groups]).var(axis=0) / max(averaged_pixels, 1)


def merge_close_phases(
    points: np.ndarray,
    labels: np.ndarray,
    distance: float,
    target: int | None = None,
    floor: np.ndarray | None = None,
) -> tuple[np.ndarray, int]:
    """Merge the closest pair of groups while their Mahalanobis distance is below ``distance``.

    With a ``target`` number of groups, merge closest pairs until exactly that many remain
    (whatever their distance).

    Parameters
    ----------
    points : ndarray, shape (N, F)
        Features of the points.
    labels : ndarray, shape (N,)
        Group 0..K-1 of every point.
    distance : float
        Groups closer than this (pooled within-group covariance) are merged.
    target : int, optional
        Number of groups wanted instead of the distance rule.
    floor : ndarray, shape (F,), optional
        Smallest variance of each feature in the pooled covariance (counting noise): a feature
        whose pooled variance is below it is raised to it.

    Returns
    -------
    labels : ndarray, shape (N,)
        Groups renumbered 0..K'-1.
    n_groups : int
        K'.
    """
    labels = np.unique(labels, return_inverse=True)[1]
    while labels.max() > 0 and (target is None or labels.max() + 1 > target):
        n_groups = labels.max() + 1
        means = np.stack([points[labels == k].mean(axis=0) for k in range(n_groups)])
        pooled = np.cov((points - means[labels]).T).reshape(points.shape[1], points.shape[1])
        if floor is not None:
            pooled = pooled + np.diag(np.clip(floor - np.diag(pooled), 0.0, None))
        precision = np.linalg.pinv(pooled)
        diff = means[:, None, :] - means[None, :, :]
        dist = np.sqrt(np.einsum("abi,ij,abj->ab", diff, precision, diff))
        np.fill_diagonal(dist, np.inf)
        a, b = np.unravel_index(np.argmin(dist), dist.shape)
        if target is None and dist[a, b] >= distance:
            break
        labels = np.unique(np.where(labels == max(a, b), min(a, b), labels), return_inverse=True)[1]
    return labels, int(labels.max()) + 1
