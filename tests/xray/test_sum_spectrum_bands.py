"""image_fit.sum_spectrum: small unsigned counts summed in bands on every core give the numbers
of the one-block 64-bit sums (integers: exact in any order)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_sigma.compute import blocks
from napari_sigma.xray import image_fit
from napari_sigma.xray.image_fit import BAND_PIXELS, sum_spectrum


def _expected(counts: np.ndarray, max_pixels: int | None) -> tuple[np.ndarray, int]:
    ny, nx = counts.shape[:2]
    step = 1 if max_pixels is None else max(1, ny // max(1, max_pixels // nx))
    sampled = counts[::step]
    return sampled.sum(axis=(0, 1), dtype=np.int64).astype(np.float64), sampled.shape[0] * nx


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize(
    ("shape", "max_pixels"),
    [((37, 23, 50), None), ((128, 130, 17), None), ((300, 64, 9), 4096), ((5, 1, 3), None)],
)
def test_bands_give_the_sums_of_one_block(dtype, shape, max_pixels):
    rng = np.random.default_rng(sum(shape))
    high = np.iinfo(dtype).max
    counts = rng.integers(0, high, shape, endpoint=True).astype(dtype)
    total, summed = sum_spectrum(counts, max_pixels)
    want, want_summed = _expected(counts, max_pixels)
    assert total.dtype == np.float64 and summed == want_summed
    assert np.array_equal(total, want)


def test_a_full_band_of_largest_counts_does_not_overflow():
    counts = np.full((BAND_PIXELS // 64, 64, 4), np.iinfo(np.uint16).max, np.uint16)
    total, summed = sum_spectrum(counts)
    assert summed == BAND_PIXELS
    assert np.array_equal(total, np.full(4, float(np.iinfo(np.uint16).max) * BAND_PIXELS))


def test_one_thread_and_every_core_agree(monkeypatch):
    counts = np.random.default_rng(1).poisson(3.0, (200, 90, 33)).astype(np.uint16)
    several = sum_spectrum(counts)
    monkeypatch.setattr(blocks, "usable_cores", lambda *a, **k: 1)
    one = sum_spectrum(counts)
    assert np.array_equal(several[0], one[0]) and several[1] == one[1]


@pytest.mark.parametrize("dtype", [np.uint32, np.int16, np.float32])
def test_other_counts_are_summed_as_before(dtype):
    counts = np.random.default_rng(2).poisson(4.0, (40, 30, 12)).astype(dtype)
    assert not image_fit._sums_in_bands(counts)
    total, summed = sum_spectrum(counts, 300)
    want, want_summed = _expected(counts, 300)
    assert summed == want_summed and np.array_equal(total, want)


def test_rows_wider_than_a_band_are_summed_as_before():
    counts = np.ones((2, BAND_PIXELS + 1, 2), np.uint16)
    assert not image_fit._sums_in_bands(counts)
    total, summed = sum_spectrum(counts)
    assert summed == 2 * (BAND_PIXELS + 1)
    assert np.array_equal(total, np.full(2, 2.0 * (BAND_PIXELS + 1)))
