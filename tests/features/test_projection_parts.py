"""A map of one projection chunk is projected on every core: cut into a part per core at whole
cast sub-blocks, each part makes the one chunk's matrix products of the same sub-blocks, so the
features and totals are the one chunk's bit for bit (features.intensities.projection_chunks)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_sigma.compute import blocks
from napari_sigma.features import intensities
from napari_sigma.features.intensities import _one_chunk_parts, projection_chunks


def _cube(dtype, shape=(7, 9, 257), seed=5):
    rng = np.random.default_rng(seed)
    scale = 1 if dtype == np.uint16 else 1.37  # float counts: products depend on their order
    return (rng.gamma(0.7, 40.0, size=shape) * scale).astype(dtype)


@pytest.mark.parametrize("cores", [2, 3])
@pytest.mark.parametrize("dtype", [np.uint16, np.float32])
@pytest.mark.parametrize("with_totals", [False, True])
def test_one_chunk_on_every_core_is_the_one_chunk(monkeypatch, cores, dtype, with_totals):
    monkeypatch.setattr(blocks, "CAST_VALUES", 15 * 227)  # 15-pixel cast sub-blocks
    monkeypatch.setattr(intensities, "usable_cores", lambda: cores)
    cube = _cube(dtype)
    weights = np.random.default_rng(6).normal(size=(257, 5)).astype(np.float32)
    weights[:30] = 0.0  # the projected span: 227 channels
    calls = []
    project = blocks.project_pixels

    def recorded(pixels, w):
        calls.append(len(pixels))
        return project(pixels, w)

    monkeypatch.setattr(blocks, "project_pixels", recorded)
    results = []
    for workers in (1, None):  # one thread: one chunk; every core: a part per core
        calls.clear()
        totals = np.full(7 * 9, np.nan) if with_totals else None
        out, chunks = projection_chunks(cube, weights, "cpu", 65536, totals, workers)
        reports = list(chunks)
        results.append((out, totals, sorted(calls), [end for *_, end in reports]))
    (one, one_totals, one_calls, one_ends), (split, split_totals, split_calls, ends) = results
    assert one_calls == [63] and one_ends == [63]
    # 63 pixels = 5 sub-blocks (4 x 15 + 3): cut after whole sub-blocks only
    assert len(split_calls) == cores and sum(split_calls) == 63
    assert ends == sorted(ends) and ends[-1] == 63 and all(end % 15 == 0 for end in ends[:-1])
    np.testing.assert_array_equal(split, one)
    if with_totals:
        np.testing.assert_array_equal(split_totals, one_totals)


def test_the_parts_are_whole_sub_blocks(monkeypatch):
    monkeypatch.setattr(intensities, "usable_cores", lambda: 2)
    assert _one_chunk_parts(65536, 5269) == [(0, 31614), (31614, 65536)]
    assert _one_chunk_parts(100, 100) == [(0, 100)]  # one sub-block: one part
    assert _one_chunk_parts(101, 100) == [(0, 100), (100, 101)]
    monkeypatch.setattr(intensities, "usable_cores", lambda: 1)
    assert _one_chunk_parts(65536, 5269) == [(0, 65536)]


def test_several_chunks_and_one_worker_are_not_cut(monkeypatch):
    """Maps of several chunks keep their chunks of whole rows; so does one worker (a lazy or
    arriving cube's pass)."""
    monkeypatch.setattr(intensities, "usable_cores", lambda: 2)
    cube = _cube(np.uint16, shape=(23, 9, 257))
    weights = np.ones((257, 2), np.float32)
    _, chunks = projection_chunks(cube, weights, "cpu", 20, None, None)
    ends = [end for *_, end in chunks]
    assert all(end % 9 == 0 for end in ends) and len(ends) > 2
    _, chunks = projection_chunks(cube, weights, "cpu", 65536, None, 1)
    assert [end for *_, end in chunks] == [23 * 9]
