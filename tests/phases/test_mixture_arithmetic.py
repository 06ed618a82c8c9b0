"""The mixtures' in-place arithmetic and column-wise row reductions give the numbers of the
expressions they replace, bit for bit (written out here as they were)."""

import math

import numpy as np
import pytest

from napari_sigma.phases import gaussians, mixture_fit, potts


def _old_log_densities(x, means, covs, outer):
    d = x.shape[1]
    rows, cols = np.triu_indices(d)
    cholesky = np.linalg.cholesky(covs)
    inverse = np.linalg.inv(cholesky)
    precision = np.swapaxes(inverse, 1, 2) @ inverse
    log_det = 2.0 * np.log(np.diagonal(cholesky, axis1=1, axis2=2)).sum(1)
    p_mean = np.einsum("kde,ke->kd", precision, means)
    upper = precision[:, rows, cols] * (2.0 - (rows == cols).astype(x.dtype))
    mahalanobis = outer @ upper.T - 2.0 * (x @ p_mean.T) + (p_mean * means).sum(1)
    return -0.5 * (d * math.log(2 * math.pi) + log_det + np.maximum(mahalanobis, 0.0))


def _old_logsumexp(values):
    largest = values.max(axis=1, keepdims=True)
    largest[np.isinf(largest)] = 0.0
    return np.log(np.exp(values - largest).sum(axis=1, keepdims=True)) + largest


def _mixture(rng, n, d, k):
    x = rng.normal(size=(n, d)) * rng.uniform(0.2, 3.0, d) + rng.normal(size=d)
    resp = rng.dirichlet(np.ones(k), n)
    outer = gaussians._outer_products(x)
    weights, means, covs = gaussians._m_step(x, outer, resp, "full")
    return x, outer, weights, means, covs


@pytest.mark.parametrize("n, d, k", [(5000, 9, 1), (5000, 9, 6), (3001, 4, 12), (700, 16, 9)])
def test_em_step_equals_the_old_expressions(n, d, k):
    rng = np.random.default_rng(n + d + k)
    x, outer, weights, means, covs = _mixture(rng, n, d, k)
    log_joint = gaussians._log_densities(x, means, covs, outer)
    expected = _old_log_densities(x, means, covs, outer)
    assert log_joint.tobytes() == expected.tobytes()
    log_joint += np.log(weights)
    expected = expected + np.log(weights)
    log_joint[: n // 10, 0] = -np.inf  # an empty component's column
    expected[: n // 10, 0] = -np.inf
    norm = gaussians._logsumexp(log_joint)
    assert norm.tobytes() == _old_logsumexp(expected).tobytes()
    resp = gaussians._responsibilities(log_joint, norm)
    assert resp.tobytes() == np.exp(expected - norm).tobytes()
    probabilities = gaussians._softmax(expected)
    shifted = np.exp(expected - expected.max(axis=1, keepdims=True))
    assert probabilities.tobytes() == (shifted / shifted.sum(axis=1, keepdims=True)).tobytes()


def test_nearest_centres_equal_the_old_expression():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(4000, 9))
    for k in (1, 2, 7, 12):
        centers = x[rng.choice(len(x), k, replace=False)]
        old = ((centers * centers).sum(1) + -2.0 * (x @ centers.T)).argmin(1)
        assert np.array_equal(mixture_fit._nearest_center(x, centers), old)


@pytest.mark.parametrize("shape", [(64, 100, 6), (7, 33, 12), (50, 1)])
def test_spatial_prior_softmax_equals_the_old_expression(shape):
    rng = np.random.default_rng(len(shape))
    score = rng.normal(size=shape) * 20
    shifted = np.exp(score - score.max(axis=-1, keepdims=True))
    old = shifted * (1.0 / shifted.sum(axis=-1, keepdims=True))
    assert potts._row_softmax(score).tobytes() == old.tobytes()
    band = score[::2]  # a strided band: numpy's own reductions
    shifted = np.exp(band - band.max(axis=-1, keepdims=True))
    old = shifted * (1.0 / shifted.sum(axis=-1, keepdims=True))
    assert potts._row_softmax(band).tobytes() == old.tobytes()


def test_the_triangle_is_made_once_per_size_and_read_only():
    rows, cols = gaussians._triangle(7, None)
    want = np.triu_indices(7)
    assert np.array_equal(rows, want[0]) and np.array_equal(cols, want[1])
    again = gaussians._triangle(7, None)
    assert again[0] is rows and again[1] is cols  # shared by every EM step
    assert not rows.flags.writeable and not cols.flags.writeable


@pytest.mark.parametrize("n, d, k", [(4096, 9, 6), (1000, 3, 12), (50, 9, 8)])
def test_lloyd_centres_from_contiguous_columns_equal_the_old_expression(n, d, k):
    rng = np.random.default_rng(n + d + k)
    x = rng.normal(size=(n, d)) * rng.uniform(0.1, 5.0, d)
    labels = rng.integers(0, k - 1, n)  # the last centre has no point: it stays
    centers = rng.normal(size=(k, d))
    sums = np.stack([np.bincount(labels, weights=x[:, j], minlength=k) for j in range(d)], 1)
    counts = np.bincount(labels, minlength=k).astype(x.dtype)[:, None]
    old = np.where(counts > 0, sums / np.maximum(counts, 1), centers)
    columns = np.ascontiguousarray(x.T)
    assert np.array_equal(mixture_fit._lloyd_centers(x, labels, centers, columns), old)
    assert np.array_equal(mixture_fit._lloyd_centers(x, labels, centers), old)
