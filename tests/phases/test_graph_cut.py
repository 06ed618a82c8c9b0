"""The two-label minimum cut: exact on small problems, and it recovers regions from weak evidence."""

from __future__ import annotations

import itertools

import numpy as np

from napari_sigma.phases.graph_cut import two_label_cut


def _energy(labels_a, log_ratio, region, beta):
    """Energy of a labelling (True = A) by the definition in graph_cut's docstring."""
    unary = np.where(labels_a, np.maximum(-log_ratio, 0), np.maximum(log_ratio, 0))[region].sum()
    pairwise = 0.0
    height, width = region.shape
    for y, x in zip(*np.nonzero(region), strict=True):
        for dy, dx, weight in ((0, 1, 1.0), (1, 0, 1.0), (1, 1, 2**-0.5), (1, -1, 2**-0.5)):
            v, u = y + dy, x + dx
            if 0 <= v < height and 0 <= u < width and region[v, u]:
                pairwise += weight * (labels_a[y, x] != labels_a[v, u])
    return unary + beta * pairwise


def test_the_cut_is_the_exact_minimum_on_a_small_region():
    rng = np.random.default_rng(0)
    region = np.ones((3, 4), dtype=bool)
    region[0, 0] = False  # an irregular region
    cells = np.argwhere(region)
    for _ in range(5):
        log_ratio = np.round(rng.normal(0, 1.0, region.shape), 3)
        best = np.inf
        for bits in itertools.product([False, True], repeat=len(cells)):
            labels = np.zeros(region.shape, dtype=bool)
            labels[tuple(cells.T)] = bits
            best = min(best, _energy(labels, log_ratio, region, 0.7))
        found = two_label_cut(log_ratio, region, 0.7)
        assert not found[~region].any()
        assert _energy(found, log_ratio, region, 0.7) <= best + 1e-2  # capacities are rounded


def test_weak_evidence_over_large_regions_recovers_them():
    rng = np.random.default_rng(1)
    truth = np.zeros((60, 60), dtype=bool)
    truth[:, :30] = True
    truth[20:40, 40:55] = True  # an island of A in B
    log_ratio = np.where(truth, 0.2, -0.2) + rng.normal(0, 0.6, truth.shape)
    region = np.ones_like(truth)
    pixel_by_pixel = np.mean((log_ratio > 0) == truth)
    cut = np.mean(two_label_cut(log_ratio, region, 0.3) == truth)
    assert pixel_by_pixel < 0.7
    assert cut > 0.95


def test_cutting_the_parts_one_group_at_a_time_gives_the_whole_regions_cut(monkeypatch):
    from scipy import ndimage

    from napari_sigma.phases import graph_cut

    rng = np.random.default_rng(2)
    region = ndimage.binary_opening(rng.random((90, 120)) > 0.45)  # many parts, some touching
    region[5:60, 10:70] = True  # one part larger than a group
    assert ndimage.label(region, structure=np.ones((3, 3)))[1] > 20
    log_ratio = np.round(rng.normal(0, 0.5, region.shape), 1)  # ties: zeros and equal costs
    whole = graph_cut._cut(log_ratio, region, 0.4, 1000.0)  # one graph, one maximum flow
    for part_pixels in (1, 50, 400, 10**6):
        monkeypatch.setattr(graph_cut, "PART_PIXELS", part_pixels)
        assert np.array_equal(two_label_cut(log_ratio, region, 0.4), whole)
