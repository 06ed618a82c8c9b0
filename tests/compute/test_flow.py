"""The smallest minimum cut's source side without the GIL: scipy's maximum flow, node for node."""

from __future__ import annotations

import itertools
import sys
import threading
import time

import numpy as np
import pytest
from scipy.sparse import csr_matrix

from napari_sigma.compute import flow
from napari_sigma.compute.flow import _scipy_source_side, min_cut_source_side


@pytest.fixture(autouse=True)
def compiled_cut(request, monkeypatch):
    """The compiled flow in every test here but those of the choice of scipy's (named
    ``..._by_scipy``): the main thread without numba would take scipy's."""
    if not request.node.name.endswith("_by_scipy"):
        monkeypatch.setattr(flow, "_scipy_cuts", lambda graph: False)


def _random_graph(rng, n: int, m: int, top: int):
    tails, heads = rng.integers(0, n, m), rng.integers(0, n, m)
    keep = tails != heads
    capacities = rng.integers(0, top, m)[keep].astype(np.int32)
    graph = csr_matrix((capacities, (tails[keep], heads[keep])), shape=(n, n))
    graph.sum_duplicates()
    return graph


def test_the_source_side_is_scipy_s_on_random_graphs():
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(2, 60))
        graph = _random_graph(rng, n, int(rng.integers(0, 5 * n)), int(rng.integers(1, 50)))
        source, sink = (int(v) for v in rng.choice(n, 2, replace=False))
        assert np.array_equal(
            min_cut_source_side(graph, source, sink), _scipy_source_side(graph, source, sink)
        )


def test_the_two_label_cut_of_a_noisy_grain_is_scipy_s(monkeypatch):
    """The graph phases.graph_cut builds (terminal arcs, 8-neighbour links), several strengths."""
    from napari_sigma.phases.graph_cut import two_label_cut

    graphs = []

    def recording(graph, source, sink, original=flow.min_cut_source_side):
        graphs.append((graph.copy(), source, sink))
        return original(graph, source, sink)

    monkeypatch.setattr(flow, "min_cut_source_side", recording)
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[:80, :80]
    grain = np.where((yy - 40) ** 2 + (xx - 35) ** 2 < 25**2, 0.4, -0.4)
    for beta in (0.2, 0.6, 1.0):
        log_ratio = grain + rng.normal(0, 1.5, grain.shape)
        region = rng.random(grain.shape) < 0.95
        labelled = two_label_cut(log_ratio, region, beta)
        assert 0 < labelled.sum() < region.sum()
    assert graphs
    for graph, source, sink in graphs:
        assert np.array_equal(
            min_cut_source_side(graph, source, sink), _scipy_source_side(graph, source, sink)
        )


def test_other_threads_run_while_the_flow_is_computed():
    """With Python's thread switching held off (a 100 s switch interval), the main thread runs
    during the flow only if the flow lets go of the GIL: its ticks cover the flow's time, no gap
    longer than half of it (scipy's flow held the GIL for its whole call: one gap of most of
    it)."""
    rng = np.random.default_rng(2)
    size = 300
    index = np.arange(size * size).reshape(size, size)
    tails = np.concatenate([index[:, :-1].ravel(), index[:-1, :].ravel()])
    heads = np.concatenate([index[:, 1:].ravel(), index[1:, :].ravel()])
    n = size * size + 2
    evidence = rng.integers(-20, 21, size * size)
    source_arcs, sink_arcs = np.flatnonzero(evidence > 0), np.flatnonzero(evidence < 0)
    graph = csr_matrix(
        (
            np.concatenate(
                [np.full(2 * len(tails), 7), evidence[source_arcs], -evidence[sink_arcs]]
            ),
            (
                np.concatenate([tails, heads, np.full(len(source_arcs), n - 2), sink_arcs]),
                np.concatenate([heads, tails, source_arcs, np.full(len(sink_arcs), n - 1)]),
            ),
        ),
        shape=(n, n),
    )
    graph.sum_duplicates()
    min_cut_source_side(graph, n - 2, n - 1)  # compiled (or loaded from the cache) first
    window: list[float] = []
    result: list[np.ndarray] = []

    def cut() -> None:
        window.append(time.perf_counter())
        result.append(min_cut_source_side(graph, n - 2, n - 1))
        window.append(time.perf_counter())

    ticks: list[float] = []
    interval = sys.getswitchinterval()
    sys.setswitchinterval(100.0)
    try:
        worker = threading.Thread(target=cut)
        worker.start()
        while worker.is_alive():
            ticks.append(time.perf_counter())
            time.sleep(0.0005)
        worker.join()
    finally:
        sys.setswitchinterval(interval)
    inside = [window[0], *(t for t in ticks if window[0] < t < window[1]), window[1]]
    longest = max(b - a for a, b in itertools.pairwise(inside))
    assert longest < 0.5 * (window[1] - window[0]), (longest, window[1] - window[0])
    assert np.array_equal(result[0], _scipy_source_side(graph, n - 2, n - 1))


def _grain_graphs(monkeypatch) -> list:
    """The graphs phases.graph_cut builds for a noisy grain (as the test above)."""
    from napari_sigma.phases.graph_cut import two_label_cut

    graphs = []

    def recording(graph, source, sink, original=flow.min_cut_source_side):
        graphs.append((graph.copy(), source, sink))
        return original(graph, source, sink)

    monkeypatch.setattr(flow, "min_cut_source_side", recording)
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[:60, :60]
    grain = np.where((yy - 30) ** 2 + (xx - 25) ** 2 < 18**2, 0.4, -0.4)
    for beta in (0.2, 1.0):
        two_label_cut(grain + rng.normal(0, 1.5, grain.shape), rng.random(grain.shape) < 0.95, beta)
    monkeypatch.undo()
    return graphs


def test_the_main_thread_without_numba_gives_the_same_side_by_scipy(monkeypatch):
    rng = np.random.default_rng(4)
    cases = [
        (_random_graph(rng, n, 4 * n, 30), *(int(v) for v in rng.choice(n, 2, replace=False)))
        for n in rng.integers(2, 80, 60)
    ]
    cases += _grain_graphs(monkeypatch)
    monkeypatch.delitem(sys.modules, "numba", raising=False)
    kernels = []
    monkeypatch.setattr(flow, "_source_side", lambda *a: kernels.append(a))
    for graph, source, sink in cases:
        assert flow._scipy_cuts(graph)
        side = min_cut_source_side(graph, source, sink)
        assert np.array_equal(side, _scipy_source_side(graph, source, sink))
    assert kernels == []  # numba's kernel never called: nothing of it loaded
    monkeypatch.undo()
    for graph, source, sink in cases:  # the compiled flow: the same sides
        assert np.array_equal(
            flow._source_side(
                *(np.asarray(a, np.int64) for a in (graph.indptr, graph.indices, graph.data)),
                source,
                sink,
            ),
            _scipy_source_side(graph, source, sink),
        )


def test_only_small_int32_graphs_in_the_main_thread_before_numba_are_cut_by_scipy(monkeypatch):
    graph = _random_graph(np.random.default_rng(5), 20, 60, 9)
    monkeypatch.delitem(sys.modules, "numba", raising=False)
    assert flow._scipy_cuts(graph)
    wide = csr_matrix(graph, dtype=np.int64)
    assert not flow._scipy_cuts(wide)  # scipy's flow takes 32-bit capacities
    big = csr_matrix((flow.SCIPY_NODES + 1, flow.SCIPY_NODES + 1), dtype=np.int32)
    assert not flow._scipy_cuts(big)
    seen = []
    worker = threading.Thread(target=lambda: seen.append(flow._scipy_cuts(graph)))
    worker.start()
    worker.join()
    assert seen == [False]  # napari's worker: the compiled flow, without the GIL
    monkeypatch.setitem(sys.modules, "numba", object())
    assert not flow._scipy_cuts(graph)
