"""The source side of a minimum s-t cut, computed without holding Python's GIL.

scipy's :func:`~scipy.sparse.csgraph.maximum_flow` holds the GIL for its whole call: the twins'
cut of the JEOL map (one connected region of most of its 262 144 pixels) stopped napari's main
thread for as long (a 512 x 512 cut: 0.77 s of CPU, one 1.7 s gap of a 1 ms ticking thread at
load 23). Here the same cut comes from Dinic's maximum flow compiled by numba with ``nogil``:
the GUI's thread runs meanwhile.

The nodes reachable from the source in the residual graph of *any* maximum flow are the same
set (the source side of the smallest minimum cut), so this gives what scipy's flow followed by
a breadth-first search of its residual graph gives, node for node.

That is what a thread no viewer waits on uses when numba is not loaded yet (:func:`_scipy_cuts`:
``napari-sigma run`` and scripts cut in their main thread): numba's import and the load of its
cached kernels cost ~0.4 s of CPU once per process, scipy's flow on graphs of up to 65 538
nodes took 2-57 ms (the compiled one 1-84 ms).
"""

from __future__ import annotations

import sys
import threading

import numpy as np

from napari_sigma.compute._jit import lazy_njit

SCIPY_NODES = 1 << 17
"""Graphs of at most this many nodes are cut by scipy's flow where :func:`_scipy_cuts` allows."""


def min_cut_source_side(graph, source: int, sink: int) -> np.ndarray:
    """Nodes ``(n,)`` bool on the source side of the smallest minimum ``source``-``sink`` cut.

    Parameters
    ----------
    graph : scipy.sparse CSR matrix, shape (n, n)
        Non-negative integer capacities (``graph[u, v]`` of the arc u -> v; no duplicates:
        ``sum_duplicates`` first).
    source, sink : int
        Distinct nodes.
    """
    graph = graph.tocsr()
    indptr = np.asarray(graph.indptr, np.int64)
    indices = np.asarray(graph.indices, np.int64)
    capacity = np.asarray(graph.data, np.int64)
    if np.any(capacity < 0):
        raise ValueError("capacities must be non-negative")
    if source == sink:
        raise ValueError("the source and the sink must differ")
    if _scipy_cuts(graph):
        return _scipy_source_side(graph, int(source), int(sink))
    return _source_side(indptr, indices, capacity, int(source), int(sink))


def _scipy_cuts(graph) -> bool:
    """Whether scipy's flow cuts ``graph``: 32-bit capacities (scipy's type), at most
    :data:`SCIPY_NODES` nodes, in the main thread (napari analyses in a worker: its cuts keep
    the GIL free) and numba not imported (else its kernels cost no more to load)."""
    return (
        graph.data.dtype == np.int32
        and graph.shape[0] <= SCIPY_NODES
        and "numba" not in sys.modules
        and threading.current_thread() is threading.main_thread()
    )


def _scipy_source_side(graph, source: int, sink: int) -> np.ndarray:
    """The source side by scipy: Dinic's maximum flow, then the nodes the source reaches
    through the arcs its residual graph leaves with capacity (holds the GIL throughout)."""
    from scipy.sparse.csgraph import breadth_first_order, maximum_flow

    flow = maximum_flow(graph, source, sink, method="dinic").flow
    residual = (graph - flow).tocsr()
    residual.data = np.where(residual.data > 0, residual.data, 0)
    residual.eliminate_zeros()
    reached = breadth_first_order(residual, source, directed=True, return_predecessors=False)
    side = np.zeros(graph.shape[0], bool)
    side[reached] = True
    return side


def warm_up() -> None:
    """Compile (or load from numba's cache) the kernels for the types
    :func:`min_cut_source_side` passes: a two-node graph (see ``compute._jit.start_warm_up``)."""
    one = np.array([0, 1, 1], np.int64)
    _source_side(one, np.array([1], np.int64), np.array([1], np.int64), 0, 1)


def _source_side(indptr, indices, capacity, source, sink):
    start, head, residual, reverse = _residual_graph(indptr, indices, capacity)
    return _dinic_source_side(start, head, residual, reverse, source, sink)


@lazy_njit
def _residual_graph(indptr, indices, capacity):
    """Arcs by tail: every arc u -> v with its capacity, and its reverse v -> u with 0."""
    n = len(indptr) - 1
    m = len(indices)
    degree = np.zeros(n + 1, np.int64)
    for u in range(n):
        degree[u + 1] += indptr[u + 1] - indptr[u]
        for k in range(indptr[u], indptr[u + 1]):
            degree[indices[k] + 1] += 1
    start = np.cumsum(degree)
    fill = start[:-1].copy()
    head = np.empty(2 * m, np.int32)
    residual = np.empty(2 * m, np.int64)
    reverse = np.empty(2 * m, np.int32)
    for u in range(n):
        for k in range(indptr[u], indptr[u + 1]):
            v = indices[k]
            forward, backward = fill[u], fill[v]
            fill[u] += 1
            fill[v] += 1
            head[forward], residual[forward], reverse[forward] = v, capacity[k], backward
            head[backward], residual[backward], reverse[backward] = u, 0, forward
    return start, head, residual, reverse


@lazy_njit
def _dinic_source_side(start, head, residual, reverse, source, sink):
    """Dinic's maximum flow on the residual arcs (changed in place), then the nodes the
    source reaches through arcs left with capacity."""
    n = len(start) - 1
    level = np.empty(n, np.int64)
    queue = np.empty(n, np.int64)
    current = np.empty(n, np.int64)
    path = np.empty(n, np.int64)  # the arcs of the path being extended (levels rise)
    while True:
        level[:] = -1
        level[source] = 0
        queue[0] = source
        first, last = 0, 1
        while first < last:
            u = queue[first]
            first += 1
            if level[sink] >= 0 and level[u] >= level[sink]:
                break  # the levels beyond the sink's lead nowhere in this phase
            for a in range(start[u], start[u + 1]):
                v = head[a]
                if residual[a] > 0 and level[v] < 0:
                    level[v] = level[u] + 1
                    queue[last] = v
                    last += 1
        if level[sink] < 0:
            break
        current[:] = start[:-1]
        depth = 0
        u = source
        while True:  # a blocking flow: paths along rising levels, arcs tried once each
            if u == sink:
                pushed = residual[path[0]]
                for i in range(1, depth):
                    pushed = min(pushed, residual[path[i]])
                saturated = -1
                for i in range(depth):
                    a = path[i]
                    residual[a] -= pushed
                    residual[reverse[a]] += pushed
                    if saturated < 0 and residual[a] == 0:
                        saturated = i
                depth = saturated  # back to the tail of the first saturated arc
                u = source if depth == 0 else head[path[depth - 1]]
                continue
            advanced = False
            while current[u] < start[u + 1]:
                a = current[u]
                v = head[a]
                if residual[a] > 0 and level[v] == level[u] + 1:
                    path[depth] = a
                    depth += 1
                    u = v
                    advanced = True
                    break
                current[u] += 1
            if advanced:
                continue
            if u == source:
                break
            level[u] = -1  # a dead end for the rest of this phase
            depth -= 1
            u = head[reverse[path[depth]]]
            current[u] += 1
    reached = np.zeros(n, np.bool_)
    reached[source] = True
    queue[0] = source
    first, last = 0, 1
    while first < last:
        u = queue[first]
        first += 1
        for a in range(start[u], start[u + 1]):
            v = head[a]
            if residual[a] > 0 and not reached[v]:
                reached[v] = True
                queue[last] = v
                last += 1
    return reached
