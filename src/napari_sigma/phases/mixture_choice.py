"""Choosing the number of phases of a Gaussian mixture (:mod:`~napari_sigma.phases.mixture`):
BIC, its knee, and merging components whose posteriors overlap."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from napari_sigma.phases.gaussians import (
    Mixture,
    _component_posteriors,
    _group_columns,
    _PreparedPoints,
    _total_log_likelihood,
)

if TYPE_CHECKING:
    from napari_sigma.phases.mixture import ClusteringSettings


def bic(
    points: np.ndarray,
    mixture: Mixture,
    covariance: str = "full",
    prepared: _PreparedPoints | None = None,
) -> float:
    """Bayesian information criterion of a mixture on points (lower is better).

    ``prepared``: the same points as tensors with their outer products (:class:`_PreparedPoints`),
    when several mixtures are scored on them.
    """
    n, d = points.shape
    log_likelihood = _total_log_likelihood(points, mixture, prepared)
    return bic_of(log_likelihood, n, d, mixture.n_components, covariance)


def bic_of(log_likelihood: float, n: int, d: int, k: int, covariance: str = "full") -> float:
    """BIC of a ``k``-component mixture in ``d`` dimensions of total log-likelihood
    ``log_likelihood`` on ``n`` points."""
    covariance_params = k * d * (d + 1) / 2 if covariance == "full" else k * d
    n_params = (k - 1) + k * d + covariance_params
    return float(-2.0 * log_likelihood + n_params * math.log(n))


def _select(
    mixtures: dict[int, Mixture],
    scores: dict[int, float],
    fit: np.ndarray,
    settings: ClusteringSettings,
) -> tuple[Mixture, str]:
    if settings.n_phases != "auto":
        return mixtures[int(settings.n_phases)], "fixed"
    best = min(scores, key=scores.__getitem__)
    if settings.criterion == "bic":
        return mixtures[best], "bic"
    if settings.criterion == "bic_knee":
        return mixtures[knee_k(scores, settings.knee_fraction)], "bic_knee"
    merged = merge_components(fit, mixtures[best], settings)
    return merged, "merge"


def knee_k(scores: dict[int, float], fraction: float) -> int:
    """Smallest K whose score is within ``fraction`` of the total improvement of the best K.

    Parameters
    ----------
    scores : dict of int to float
        Criterion (lower is better) per K.
    fraction : float
        Tolerated excess over the best score, relative to ``score(min K) - best score``.

    Returns
    -------
    int
    """
    ks = sorted(scores)
    best = min(scores.values())
    improvement = scores[ks[0]] - best
    if improvement <= 0:
        return ks[0]
    return next(k for k in ks if scores[k] - best <= fraction * improvement)


def merge_components(points: np.ndarray, mixture: Mixture, settings: ClusteringSettings) -> Mixture:
    """Greedily merge components while the best pair's normalised entropy gain is large.

    The gain of merging groups i and j is
    ``sum_n [(p_i + p_j) log(p_i + p_j) - p_i log p_i - p_j log p_j] / min(sum_n p_i, sum_n p_j)``
    (nats per point of the smaller group): near 0 for separate clusters, large when two
    components share one cluster.
    """
    groups = np.arange(mixture.n_components)
    posteriors = _component_posteriors(points, mixture, settings.device)
    while groups.max() + 1 > max(settings.min_phases, 1):
        pair, gain = _best_merge(_group_columns(posteriors, groups))
        if gain <= settings.merge_threshold:
            break
        keep, drop = pair
        groups = np.where(groups == drop, keep, groups)
        groups = np.unique(groups, return_inverse=True)[1].astype(np.int64)
    return Mixture(mixture.weights, mixture.means, mixture.covariances, groups)


def _best_merge(probabilities: np.ndarray) -> tuple[tuple[int, int], float]:
    def plogp(p: np.ndarray) -> np.ndarray:
        return p * np.log(np.clip(p, 1e-300, None))

    entropy_terms = plogp(probabilities).sum(0)
    masses = probabilities.sum(0)
    best_pair, best_gain = (0, 0), -np.inf
    n_groups = probabilities.shape[1]
    for i in range(n_groups):
        for j in range(i + 1, n_groups):
            joined = probabilities[:, i] + probabilities[:, j]
            mass = min(masses[i], masses[j])
            if mass <= 0:
                continue
            gain = (plogp(joined).sum() - entropy_terms[i] - entropy_terms[j]) / mass
            if gain > best_gain:
                best_pair, best_gain = (i, j), float(gain)
    return best_pair, best_gain
