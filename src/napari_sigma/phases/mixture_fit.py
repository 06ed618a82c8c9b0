"""Fitting a Gaussian mixture of K components, for one K (:mod:`~napari_sigma.phases.mixture`
scans K): EM in float64 from a k-means++ seeding and a few Lloyd steps (numpy on the CPU, torch on
another device), or scikit-learn's ``GaussianMixture``."""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING

import numpy as np

from napari_sigma.compute.arrays import host, namespace
from napari_sigma.compute.device import resolve_device
from napari_sigma.compute.progress import Computation
from napari_sigma.phases.gaussians import (
    Mixture,
    _as_float64,
    _like,
    _log_densities,
    _logsumexp,
    _m_step,
    _one_hot,
    _outer_products,
    _PreparedPoints,
    _responsibilities,
)

if TYPE_CHECKING:
    from napari_sigma.compute.torch_draws import TorchCpuDraws
    from napari_sigma.phases.mixture import ClusteringSettings


YIELD_INTERVAL_S = 0.25


LLOYD_STEPS = 10


def torch_generator(seed: int):
    """The draws of a CPU torch random generator seeded with ``seed``, made by numpy
    (:class:`~napari_sigma.compute.torch_draws.TorchCpuDraws`: the same numbers, torch not
    needed for them)."""
    from napari_sigma.compute.torch_draws import TorchCpuDraws

    return TorchCpuDraws(seed)


def _fit_one(
    scaled: np.ndarray,
    k: int,
    settings: ClusteringSettings,
    prepared: _PreparedPoints | None = None,
) -> Computation:
    """Fit a k-component mixture to standardised points (a generator ticking every 0.25 s).

    Returns (mixture, mean log-likelihood per point of that mixture on ``scaled``, or None
    when the fit did not compute it: sklearn, or EM stopped by ``max_iter``).
    """
    if settings.backend == "sklearn":
        return _fit_sklearn(scaled, k, settings), None
    best: Mixture | None = None
    best_ll, best_own = -np.inf, None
    for attempt in range(settings.n_init):
        seed = settings.seed + 1000 * attempt
        mixture, ll, converged = yield from _fit_torch(scaled, k, settings, seed, prepared)
        if ll > best_ll:
            best, best_ll, best_own = mixture, ll, (ll if converged else None)
    return best, best_own


def _fit_sklearn(scaled: np.ndarray, k: int, settings: ClusteringSettings) -> Mixture:
    from sklearn.mixture import GaussianMixture

    model = GaussianMixture(
        n_components=k,
        covariance_type=settings.covariance,
        reg_covar=1e-6,
        max_iter=settings.max_iter,
        tol=settings.tol,
        n_init=settings.n_init,
        random_state=settings.seed,
    ).fit(scaled)
    covariances = model.covariances_
    if settings.covariance == "diag":
        covariances = np.stack([np.diag(c) for c in covariances])
    return Mixture(model.weights_, model.means_, covariances, np.arange(k))


def _fit_torch(
    x_np: np.ndarray,
    k: int,
    settings: ClusteringSettings,
    seed: int,
    prepared: _PreparedPoints | None = None,
    start: Mixture | None = None,
) -> Computation:
    """EM for one initialisation; returns (Mixture, mean log-likelihood, converged).

    ``start``: begin EM with these ``k`` components (in the units of ``x_np``) instead of a
    k-means++ seeding and Lloyd steps (``seed`` is then unused).

    When converged, the log-likelihood is the mixture's own (the parameters of its E-step);
    else it is the one before the last M-step.

    ``prepared``: ``x_np`` as arrays with their outer products, shared by several fits.

    numpy on the CPU, torch on another device (:class:`_PreparedPoints`): the same formulas.
    """
    if prepared is None:
        device = resolve_device(settings.device)
        x = _as_float64(x_np, device)
        outer = _outer_products(x)
    else:
        (x, outer), *_ = prepared.chunks
    generator = torch_generator(seed)
    yield  # after the outer products: a cancel point before the k-means start
    if start is None:
        seeding = None if prepared is None else prepared.seedings.setdefault(seed, {})
        hard = _kmeans_labels(x, k, generator, seeding)
        yield
        weights, means, covs = _m_step(x, outer, _one_hot(hard, k, x), settings.covariance)
    else:
        weights, means, covs = (
            _like(x, a) for a in (start.weights, start.means, start.covariances)
        )
    xp = namespace(x)
    previous = -math.inf
    last_yield = time.perf_counter()
    log_likelihood = previous
    converged = False
    for _ in range(settings.max_iter):
        log_joint = _log_densities(x, means, covs, outer)  # a new array: added to in place
        log_joint += xp.log(weights)
        norm = _logsumexp(log_joint)
        log_likelihood = float(norm.mean())
        if abs(log_likelihood - previous) < settings.tol:
            converged = True
            break
        previous = log_likelihood
        resp = _responsibilities(log_joint, norm)  # log_joint's values are gone
        weights, means, covs = _m_step(x, outer, resp, settings.covariance)
        if time.perf_counter() - last_yield > YIELD_INTERVAL_S:
            yield
            last_yield = time.perf_counter()
    mixture = Mixture(*(host(t) for t in (weights, means, covs)), np.arange(k))
    return mixture, log_likelihood, converged


def _kmeans_labels(x, k: int, generator: TorchCpuDraws, seeding: dict | None = None):
    """k-means++ seeding followed by a few Lloyd steps; returns hard labels.

    ``seeding``: the seeding so far of the same points with the same seed (centres, distances,
    generator state), extended and updated here: the seeding of k centres continues that of
    k - 1 draw for draw, so a scan over K seeds each centre once (same centres as from scratch).
    """
    centers = _seeded_centers(x, k, generator, seeding)
    # numpy: the points' coordinates as contiguous rows, made once for every Lloyd step
    columns = np.ascontiguousarray(x.T, dtype=np.float64) if isinstance(x, np.ndarray) else None
    previous = None
    for _ in range(LLOYD_STEPS):
        labels = _nearest_center(x, centers)
        if previous is not None and bool(namespace(labels).array_equal(labels, previous)):
            return labels  # converged: the same centres, the same labels from here on
        centers = _lloyd_centers(x, labels, centers, columns)
        previous = labels
    return _nearest_center(x, centers)


def _lloyd_centers(x, labels, centers, columns=None):
    """The mean of every centre's points (the old centre where it has none).

    ``columns``: numpy's ``x.T`` as a contiguous float64 array (else each coordinate is
    gathered from ``x`` here: the same values).
    """
    k = len(centers)
    if isinstance(x, np.ndarray):
        if columns is None:
            columns = np.ascontiguousarray(x.T, dtype=np.float64)
        # each centre's sum added point by point in the points' order from 0 (np.add.at's
        # sums, at a fraction of its cost), one coordinate at a time (bincount reads a
        # contiguous row of weights as it is; a column of x it copies first)
        sums = np.stack(
            [np.bincount(labels, weights=columns[j], minlength=k) for j in range(x.shape[1])], 1
        )
        counts = np.bincount(labels, minlength=k).astype(x.dtype)[:, None]
        return np.where(counts > 0, sums / np.maximum(counts, 1), centers)
    import torch

    sums = torch.zeros_like(centers).index_add_(0, labels, x)
    counts = torch.bincount(labels, minlength=k).to(x.dtype)[:, None]
    return torch.where(counts > 0, sums / counts.clamp_min(1), centers)


def _seeded_centers(x, k: int, generator: TorchCpuDraws, seeding: dict | None = None):
    """The k-means++ seeding of ``k`` centres (see :func:`_kmeans_labels`), continuing
    ``seeding`` when it holds at most ``k`` centres; ``seeding`` is updated."""
    n = len(x)
    on_host = isinstance(x, np.ndarray)
    if seeding and len(seeding["centers"]) <= k:
        centers, closest = seeding["centers"], seeding["closest"]
        generator.set_state(seeding["state"])
    else:
        first = generator.randint(n)
        centers = x[first : first + 1]
        closest = ((x - centers[0]) ** 2).sum(1)
    for _ in range(len(centers), k):
        probabilities = host(closest / closest.sum())
        if not np.isfinite(probabilities).all() or float(probabilities.sum()) <= 0:
            probabilities = np.full((n,), 1.0 / n, dtype=np.float64)
        pick = generator.multinomial_one(probabilities)
        if on_host:
            centers = np.concatenate([centers, x[pick : pick + 1]])
            closest = np.minimum(closest, ((x - x[pick]) ** 2).sum(1))
        else:
            import torch

            centers = torch.cat([centers, x[pick : pick + 1]])
            closest = torch.minimum(closest, ((x - x[pick]) ** 2).sum(1))
    if seeding is not None:
        seeding.update(centers=centers, closest=closest, state=generator.get_state())
    return centers


def _nearest_center(x, centers):
    """Index of the nearest centre of every point: the smallest ``|c|^2 - 2 x.c`` (one product;
    ``|x|^2`` is the same for every centre)."""
    if isinstance(x, np.ndarray):  # |c|^2 + (-2 x.c) in place: the same sums
        products = x @ centers.T
        products *= -2.0
        products += (centers * centers).sum(1)
        return products.argmin(1)
    import torch

    return torch.addmm((centers * centers).sum(1), x, centers.T, alpha=-2.0).argmin(1)
