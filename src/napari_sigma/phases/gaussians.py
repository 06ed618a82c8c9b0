"""A Gaussian mixture's components (:class:`Mixture`) and the likelihood helpers of
:mod:`~napari_sigma.phases.mixture`: log densities, the M-step, posteriors, in float64 with numpy
on the CPU or torch on another device (the same formulas)."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from napari_sigma.compute.arrays import namespace
from napari_sigma.compute.device import resolve_device
from napari_sigma.compute.progress import Computation
from napari_sigma.compute.row_reductions import row_max, row_sum
from napari_sigma.errors import AnalysisError

PREDICT_CHUNK = 1 << 18


@dataclass
class Mixture:
    """A fitted Gaussian mixture in the units of the input points.

    ``groups[m]`` is the phase index (0-based) of component ``m``; without merging it is the
    identity.
    """

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    groups: np.ndarray

    @property
    def n_components(self) -> int:
        """Number of Gaussian components."""
        return len(self.weights)


class _PreparedPoints:
    """Points as float64 arrays on a device (numpy on the CPU, torch tensors on CUDA), in
    chunks of ``chunk`` rows, with their outer products (:func:`_outer_products`): computed
    once for all the mixtures fitted to or scored on the same points (the same values as
    computing them for each mixture)."""

    def __init__(self, points: np.ndarray, device: str, chunk: int = PREDICT_CHUNK) -> None:
        device = resolve_device(device)
        self.device = str(device)
        self.chunks = []
        for start in range(0, len(points), max(chunk, 1)):
            part = _as_float64(points[start : start + chunk], device)
            self.chunks.append((part, _outer_products(part)))
        self.seedings: dict[int, dict] = {}  # k-means++ seeding per seed (see _kmeans_labels)
        self.on_cpu = self.device == "cpu"


def _as_float64(values, device: str):
    """``values`` as float64: a numpy array on the CPU, a torch tensor on another device."""
    if device == "cpu":
        return np.asarray(values, dtype=np.float64)
    import torch

    return torch.as_tensor(values, device=device).to(torch.float64)


# numpy (CPU) or torch (another device) by the type of the arrays: the same operations
# (compute.arrays' namespace; below the helpers whose formulas are chosen per side)


def _like(x, values):
    """``values`` as float64 beside ``x`` (numpy array or torch tensor on its device)."""
    if isinstance(x, np.ndarray):
        return np.array(values, dtype=np.float64)
    import torch

    return torch.as_tensor(values, dtype=x.dtype, device=x.device)


def _logsumexp(values):
    """``log(sum(exp(values)))`` over axis 1, kept ``(n, 1)``: torch's formula (the row's
    largest subtracted first; an infinite largest taken as 0)."""
    if not isinstance(values, np.ndarray):
        import torch

        return torch.logsumexp(values, dim=1, keepdim=True)
    largest = row_max(values, keepdims=True)
    largest[np.isinf(largest)] = 0.0
    # the same element-wise calls and row sums as log(exp(values - largest).sum()) + largest,
    # one (n, M) temporary instead of two; the rows reduced column by column (row_reductions)
    shifted = np.subtract(values, largest)
    sums = row_sum(np.exp(shifted, out=shifted), keepdims=True)
    return np.add(np.log(sums, out=sums), largest, out=sums)


def _responsibilities(log_joint, norm):
    """``exp(log_joint - norm)``; on numpy in place of ``log_joint`` (the same element-wise
    calls: its values are then gone)."""
    if not isinstance(log_joint, np.ndarray):
        import torch

        return torch.exp(log_joint - norm)
    return np.exp(np.subtract(log_joint, norm, out=log_joint), out=log_joint)


def _softmax(values) -> np.ndarray:
    """Row-wise softmax (torch's formula: ``exp(v - max) / sum``), as a numpy array."""
    if not isinstance(values, np.ndarray):
        import torch

        return torch.softmax(values, dim=1).cpu().numpy()
    shifted = np.exp(values - row_max(values, keepdims=True))
    return shifted / row_sum(shifted, keepdims=True)


def _one_hot(labels, k: int, like):
    if isinstance(like, np.ndarray):
        out = np.zeros((len(labels), k), dtype=like.dtype)
        out[np.arange(len(labels)), labels] = 1.0
        return out
    import torch

    return torch.nn.functional.one_hot(labels, k).to(like.dtype)


def _outer_products(x):
    """Row-wise products ``x_i x_j`` for ``i <= j``, shape (n, d(d+1)/2): second moments become
    matrix products (the upper triangle only: the matrices are symmetric)."""
    parts = [x[:, i : i + 1] * x[:, i:] for i in range(x.shape[1])]
    if isinstance(x, np.ndarray):
        return np.concatenate(parts, axis=1)
    import torch

    return torch.cat(parts, dim=1)


def _triangle(d: int, device) -> tuple:
    """Row and column indices of the upper triangle of a ``d x d`` matrix (diagonal included,
    row by row: numpy's order is torch's); numpy arrays for ``device`` None (made once per
    ``d``, read-only: every EM step of every fit indexes with them)."""
    if device is None:
        return _numpy_triangle(d)
    import torch

    index = torch.triu_indices(d, d, device=device)
    return index[0], index[1]


@functools.lru_cache(maxsize=64)
def _numpy_triangle(d: int) -> tuple[np.ndarray, np.ndarray]:
    """``np.triu_indices(d)``, read-only (shared by every caller)."""
    rows, cols = np.triu_indices(d)
    rows.setflags(write=False)
    cols.setflags(write=False)
    return rows, cols


def _device_of(x):
    return None if isinstance(x, np.ndarray) else x.device


def _symmetric(upper, d: int):
    """``(M, d, d)`` symmetric matrices from their upper triangles ``(M, d(d+1)/2)``."""
    rows, cols = _triangle(d, _device_of(upper))
    if isinstance(upper, np.ndarray):
        full = np.zeros((len(upper), d, d), dtype=upper.dtype)
    else:
        import torch

        full = torch.zeros((len(upper), d, d), dtype=upper.dtype, device=upper.device)
    full[:, rows, cols] = upper
    full[:, cols, rows] = upper
    return full


def _m_step(x, outer, resp, covariance: str) -> tuple:
    d = x.shape[1]
    counts = resp.sum(0) + 10 * np.finfo(np.float64).eps  # x is float64
    means = (resp.T @ x) / counts[:, None]
    second = _symmetric((resp.T @ outer) / counts[:, None], d)
    covs = second - means[:, :, None] * means[:, None, :]
    if isinstance(x, np.ndarray):
        if covariance == "diag":
            diagonal = np.diagonal(covs, axis1=1, axis2=2)
            covs = np.zeros_like(covs)
            covs[:, np.arange(d), np.arange(d)] = diagonal
        covs = covs + 1e-6 * np.eye(d, dtype=x.dtype)
    else:
        import torch

        if covariance == "diag":
            covs = torch.diag_embed(torch.diagonal(covs, dim1=1, dim2=2))
        covs = covs + 1e-6 * torch.eye(d, dtype=x.dtype, device=x.device)
    return counts / len(x), means, covs


def _log_densities(x, means, covs, outer=None):
    """Log density ``(n, M)`` of every point under every Gaussian component.

    The Mahalanobis term ``x'Px - 2 m'Px + m'Pm`` is two matrix products with the precomputed
    outer products of the points (upper triangle), which is much faster than batched
    triangular solves.

    numpy arrays on the CPU (the precision matrices from the Cholesky factors as
    ``torch.cholesky_inverse`` makes them), torch tensors on another device.
    """
    d = x.shape[1]
    outer = _outer_products(x) if outer is None else outer
    rows, cols = _triangle(d, _device_of(x))  # x'Px = sum over i <= j of (2 - [i = j]) P_ij x_i x_j
    if isinstance(x, np.ndarray):
        cholesky = _cholesky(covs)
        precision = _cholesky_inverse(cholesky)
        log_det = 2.0 * np.log(np.diagonal(cholesky, axis1=1, axis2=2)).sum(1)
        p_mean = np.einsum("kde,ke->kd", precision, means)
        upper = precision[:, rows, cols] * (2.0 - (rows == cols).astype(x.dtype))
        # -0.5 (d log 2 pi + log_det + max(x'Px - 2 m'Px + m'Pm, 0)) in place: the same
        # operations on the same operands in the same order (a + b is b + a exactly), one
        # (n, M) temporary instead of six
        mahalanobis = outer @ upper.T
        cross = x @ p_mean.T
        mahalanobis -= np.multiply(cross, 2.0, out=cross)
        mahalanobis += (p_mean * means).sum(1)
        np.maximum(mahalanobis, 0.0, out=mahalanobis)
        mahalanobis += d * math.log(2 * math.pi) + log_det
        mahalanobis *= -0.5
        return mahalanobis
    import torch

    cholesky = torch.linalg.cholesky(covs)
    precision = torch.cholesky_inverse(cholesky)
    log_det = 2.0 * torch.log(torch.diagonal(cholesky, dim1=1, dim2=2)).sum(1)
    p_mean = torch.einsum("kde,ke->kd", precision, means)
    upper = precision[:, rows, cols] * (2.0 - (rows == cols).to(x.dtype))
    mahalanobis = outer @ upper.T - 2.0 * (x @ p_mean.T) + (p_mean * means).sum(1)
    return -0.5 * (d * math.log(2 * math.pi) + log_det + mahalanobis.clamp_min(0.0))


def _cholesky(covs: np.ndarray) -> np.ndarray:
    """Lower Cholesky factors of ``(M, d, d)`` matrices (AnalysisError for a matrix that is
    not positive definite)."""
    try:
        return np.linalg.cholesky(covs)
    except np.linalg.LinAlgError as error:
        raise AnalysisError(
            f"a mixture component's covariance is not positive definite: {error}"
        ) from error


def _cholesky_inverse(cholesky: np.ndarray) -> np.ndarray:
    """``(L L')^-1 = inv(L)' inv(L)`` of every lower factor ``L`` (what LAPACK's ``potri``
    and ``torch.cholesky_inverse`` compute), in numpy: its BLAS is the one the analysis runs
    on one thread (scipy's LAPACK brings its own OpenBLAS, on every core when loaded after
    the limit: ~300x the CPU of these small matrices, measured)."""
    inverse = np.linalg.inv(cholesky)
    return np.swapaxes(inverse, 1, 2) @ inverse


def _unscaled(mixture: Mixture, center: np.ndarray, scale: float) -> Mixture:
    return Mixture(
        mixture.weights.copy(),
        mixture.means * scale + center,
        mixture.covariances * scale**2,
        mixture.groups.copy(),
    )


# ----------------------------------------------------------------------------- posteriors


def _component_log_joint(points: np.ndarray, mixture: Mixture, device: str) -> Computation:
    """Chunks of ``log w_m + log N(x | m)``, shape (chunk, M), float64 (numpy arrays on the
    CPU, torch tensors on another device)."""
    device = resolve_device(device)
    weights, means, covs = (
        _as_float64(a, device) for a in (mixture.weights, mixture.means, mixture.covariances)
    )
    log_weights = namespace(weights).log(weights)
    for start in range(0, len(points), PREDICT_CHUNK):
        chunk = _as_float64(points[start : start + PREDICT_CHUNK], device)
        yield _log_densities(chunk, means, covs) + log_weights


def _total_log_likelihood(
    points: np.ndarray, mixture: Mixture, prepared: _PreparedPoints | None = None
) -> float:
    if prepared is None:
        chunks = _component_log_joint(points, mixture, "auto")
    else:  # the same products as _component_log_joint, with the outer products computed once
        weights, means, covs = (
            _as_float64(a, prepared.device)
            for a in (mixture.weights, mixture.means, mixture.covariances)
        )
        log_weights = namespace(weights).log(weights)
        chunks = (
            _log_densities(x, means, covs, outer) + log_weights for x, outer in prepared.chunks
        )
    return float(sum(_logsumexp(c).sum() for c in chunks))


def _component_posteriors(points: np.ndarray, mixture: Mixture, device: str) -> np.ndarray:
    parts = [_softmax(c) for c in _component_log_joint(points, mixture, device)]
    return np.concatenate(parts)


def _phase_probabilities(points: np.ndarray, mixture: Mixture, device: str) -> np.ndarray:
    posteriors = _component_posteriors(points, mixture, device)
    return _group_columns(posteriors, mixture.groups).astype(np.float32)


def _group_columns(posteriors: np.ndarray, groups: np.ndarray) -> np.ndarray:
    n_groups = int(groups.max()) + 1
    summed = np.zeros((len(posteriors), n_groups), posteriors.dtype)
    for component, group in enumerate(groups):
        summed[:, group] += posteriors[:, component]
    return summed
