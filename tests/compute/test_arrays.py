"""compute.arrays: numpy's names for numpy arrays (numpy itself) and for torch tensors."""

import numpy as np
import pytest

from napari_sigma.compute import arrays
from napari_sigma.compute.arrays import clamp_min, host, is_tensor, namespace, on_host

torch = pytest.importorskip("torch")


def test_numpy_arrays_get_numpy_itself():
    a = np.arange(6.0).reshape(2, 3)
    assert namespace(a) is np and on_host(a) and not is_tensor(a) and host(a) is a


def test_every_name_gives_numpys_values_on_tensors():
    """Each name of the torch namespace, on CPU tensors, gives what numpy gives on the same
    values (dtypes, shapes and values), so one function written with ``xp`` computes the same
    thing on either side."""
    rng = np.random.default_rng(0)
    a = rng.normal(size=(7, 5))
    b = rng.normal(size=(7, 5))
    mask = a > 0
    index = rng.integers(0, 5, (7, 1))
    xp = namespace(torch.as_tensor(a))
    assert xp is arrays.torch_namespace() and not on_host(torch.as_tensor(a))
    ta, tb, tmask, tindex = (torch.as_tensor(v) for v in (a, b, mask, index))

    def same(got, expected):
        got = host(got)
        assert got.shape == np.shape(expected)
        assert got.dtype == np.asarray(expected).dtype
        np.testing.assert_array_equal(got, expected)

    def close(got, expected):
        got = host(got)
        assert got.shape == np.shape(expected)
        assert got.dtype == np.asarray(expected).dtype
        np.testing.assert_allclose(got, expected, rtol=4 * np.finfo(np.float64).eps, atol=0)

    same(xp.where(tmask, ta, tb), np.where(mask, a, b))
    same(xp.zeros_like(ta), np.zeros_like(a))
    same(xp.zeros_like(ta, dtype=bool), np.zeros_like(a, dtype=bool))
    same(xp.full_like(ta, 2.0), np.full_like(a, 2.0))
    assert xp.empty_like(ta).shape == ta.shape
    same(xp.zeros(4, dtype=bool, like=ta), np.zeros(4, dtype=bool))
    same(xp.zeros((2, 3), dtype=np.float64, like=ta), np.zeros((2, 3)))
    same(xp.arange(5, like=ta), np.arange(5))
    same(xp.asarray([1.5, 2.0], dtype=np.float64, like=ta), np.asarray([1.5, 2.0]))
    copied = xp.copy(ta)
    copied[0, 0] = 99.0
    assert ta[0, 0] == a[0, 0]
    same(xp.abs(ta), np.abs(a))
    # transcendental functions: torch's and numpy's vector kernels are each correctly rounded to
    # within an ulp, but not always the same ulp (they differ on an AVX-512 EPYC)
    close(xp.exp(ta), np.exp(a))
    close(xp.log(xp.abs(ta)), np.log(np.abs(a)))
    same(xp.clip(ta, -0.5, 0.5), np.clip(a, -0.5, 0.5))
    same(clamp_min(ta, 0.0), np.maximum(0.0, a))
    for axis in (0, 1):
        for keepdims in (False, True):
            same(xp.any(tmask, axis=axis, keepdims=keepdims), np.any(mask, axis, keepdims=keepdims))
            same(xp.max(ta, axis=axis, keepdims=keepdims), np.max(a, axis, keepdims=keepdims))
            same(xp.min(ta, axis=axis, keepdims=keepdims), np.min(a, axis, keepdims=keepdims))
            got = host(xp.sum(ta, axis=axis, keepdims=keepdims))
            np.testing.assert_allclose(got, np.sum(a, axis, keepdims=keepdims), atol=1e-12)
        same(xp.argmax(ta, axis=axis), np.argmax(a, axis=axis))
        same(xp.argmin(ta, axis=axis), np.argmin(a, axis=axis))
    assert bool(xp.any(tmask)) == bool(np.any(mask))
    for got, expected in zip(xp.nonzero(tmask), np.nonzero(mask), strict=True):
        same(got, expected)
    same(xp.flatnonzero(tmask[:, 0]), np.flatnonzero(mask[:, 0]))
    same(xp.take_along_axis(ta, tindex, 1), np.take_along_axis(a, index, 1))
    same(xp.concatenate([ta, tb], axis=1), np.concatenate([a, b], axis=1))
    assert xp.array_equal(ta, xp.copy(ta)) and not xp.array_equal(ta, tb)
    assert xp.float64 is torch.float64 and np.float64 is namespace(a).float64
