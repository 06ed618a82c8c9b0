"""The column-by-column row sums and maxima give numpy's own numbers, bit for bit."""

import numpy as np
import pytest

from napari_sigma.compute.row_reductions import MAX_COLUMNS, row_max, row_sum


def _table(rng, rows, columns):
    """Values over many orders of magnitude, both signs: any change of the summation order
    shows in the last bits."""
    return rng.normal(size=(rows, columns)) * np.exp(rng.normal(size=(rows, columns)) * 6)


@pytest.mark.parametrize("columns", range(1, MAX_COLUMNS + 1))
def test_row_sums_and_maxima_are_numpy_s_bit_for_bit(columns):
    rng = np.random.default_rng(columns)
    values = _table(rng, 3000, columns)
    for keepdims in (False, True):
        summed = row_sum(values, keepdims=keepdims)
        expected = values.sum(axis=1, keepdims=keepdims)
        assert summed.shape == expected.shape
        assert summed.tobytes() == expected.tobytes()
        largest = row_max(values, keepdims=keepdims)
        assert largest.tobytes() == values.max(axis=1, keepdims=keepdims).tobytes()


@pytest.mark.parametrize("columns", [2, 6, 9, 12, 17])
def test_special_values_as_numpy(columns):
    """Negative zeros (numpy sums from +0), infinities of both signs and NaN."""
    rng = np.random.default_rng(7)
    values = _table(rng, 400, columns)
    values[:40] = -0.0
    values[40:80, 0] = np.inf
    values[80:120, -1] = -np.inf
    values[120:160, columns // 2] = np.nan
    values[160:200] = -np.inf
    values[200:240, 0] = np.inf
    values[200:240, -1] = -np.inf
    summed, expected = row_sum(values), values.sum(axis=1)
    assert np.array_equal(np.isnan(summed), np.isnan(expected))
    known = ~np.isnan(expected)
    assert summed[known].tobytes() == expected[known].tobytes()  # signs of zeros included
    largest, top = row_max(values), values.max(axis=1)
    assert np.array_equal(np.isnan(largest), np.isnan(top))
    assert largest[~np.isnan(top)].tobytes() == top[~np.isnan(top)].tobytes()


def test_other_layouts_and_types_are_numpy_s_own_reductions():
    """A strided, Fortran-ordered, float32, 3-D or too wide table is reduced by numpy itself
    (numpy's order for it is another); the last axis in every case."""
    rng = np.random.default_rng(3)
    wide = _table(rng, 50, MAX_COLUMNS + 5)
    cases = [
        wide[:, ::2],
        np.asfortranarray(wide[:, :9]),
        wide[:, :9].astype(np.float32),
        wide[:, :12].reshape(5, 10, 12),
        wide,
    ]
    for values in cases:
        assert row_sum(values).tobytes() == values.sum(axis=-1).tobytes()
        assert row_max(values).tobytes() == values.max(axis=-1).tobytes()
        assert row_sum(values, keepdims=True).shape == values.sum(-1, keepdims=True).shape


def test_an_empty_table():
    values = np.zeros((0, 6))
    assert row_sum(values).shape == (0,)
    assert row_max(values, keepdims=True).shape == (0, 1)
