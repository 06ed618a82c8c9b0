"""Exact two-label segmentation with a Potts prior: a minimum s-t cut (a maximum flow).

The energy of a labelling of the pixels of a region into A and B is

    E = sum_i [l_i = B] * max(s_i, 0) + [l_i = A] * max(-s_i, 0)
        + beta * sum_{8-neighbours i, j} w_ij [l_i != l_j]

with ``s_i`` the log-likelihood ratio of A over B at pixel i, and ``w_ij`` 1 for side neighbours,
1/sqrt(2) for diagonal ones (a boundary's cost is then nearly the same in every direction). For two
labels and this prior the minimum cut is the exact minimum of E (no local minima as with iterated
conditional modes), which matters when each pixel carries little evidence and only whole grains
of pixels can tell A from B.
"""

from __future__ import annotations

import numpy as np

#: (dy, dx, weight) of the 8-neighbourhood links, each pair once.
_LINKS = ((0, 1, 1.0), (1, 0, 1.0), (1, 1, 2.0**-0.5), (1, -1, 2.0**-0.5))


def _neighbour_pairs(index: np.ndarray, dy: int, dx: int) -> tuple[np.ndarray, np.ndarray]:
    """Node indices of the pixel pairs ``(y, x)``-``(y + dy, x + dx)`` both inside the region."""
    height, width = index.shape
    if dx >= 0:
        first = index[: height - dy, : width - dx]
        second = index[dy:, dx:]
    else:
        first = index[: height - dy, -dx:]
        second = index[dy:, : width + dx]
    inside = (first >= 0) & (second >= 0)
    return first[inside], second[inside]


#: Pixels per maximum-flow call at most (unless one connected part is larger). The flow
#: (:func:`~napari_sigma.compute.flow.min_cut_source_side`) runs without the GIL; scipy's,
#: used before, held it for its whole call.
PART_PIXELS = 8192


def _parts(region: np.ndarray) -> list[tuple[slice, slice, np.ndarray]]:
    """The region as groups of its 8-connected parts: ``(rows, cols, mask in that window)``.

    Parts are joined in order until a group would pass :data:`PART_PIXELS`. No link joins two
    parts, so the energy is a sum over parts and each group's minimum cut is that of its parts.
    """
    from scipy import ndimage

    parts, count = ndimage.label(region, structure=np.ones((3, 3), dtype=bool))
    if count <= 1:
        return [(slice(None), slice(None), region)]
    sizes = np.bincount(parts.ravel(), minlength=count + 1)[1:]
    windows = ndimage.find_objects(parts)
    groups, members, size = [], [], 0
    for number, pixels in enumerate(sizes, start=1):
        if members and size + pixels > PART_PIXELS:
            groups.append(members)
            members, size = [], 0
        members.append(number)
        size += pixels
    groups.append(members)
    out = []
    for members in groups:
        rows = slice(
            min(windows[n - 1][0].start for n in members),
            max(windows[n - 1][0].stop for n in members),
        )
        cols = slice(
            min(windows[n - 1][1].start for n in members),
            max(windows[n - 1][1].stop for n in members),
        )
        out.append((rows, cols, np.isin(parts[rows, cols], members)))
    return out


def two_label_cut(
    log_ratio: np.ndarray, region: np.ndarray, beta: float, resolution: float = 1000.0
) -> np.ndarray:
    """Pixels of ``region`` labelled A in the minimum-energy labelling.

    Parameters
    ----------
    log_ratio : ndarray, shape (y, x)
        Log-likelihood ratio of A over B of every pixel (only ``region`` is read).
    region : ndarray of bool, shape (y, x)
        Pixels to label; links leave the region free (no cost at its edge).
    beta : float
        Cost of a unit length of A-B boundary.
    resolution : float
        Capacities are integers: energies are multiplied by this and rounded.

    Returns
    -------
    ndarray of bool, shape (y, x)
        True where A (False outside ``region``).
    """
    labelled_a = np.zeros(region.shape, dtype=bool)
    for rows, cols, part in _parts(region):
        labelled_a[rows, cols] |= _cut(log_ratio[rows, cols], part, beta, resolution)
    return labelled_a


def _cut(log_ratio: np.ndarray, region: np.ndarray, beta: float, resolution: float) -> np.ndarray:
    """:func:`two_label_cut` of one group of parts: one maximum flow over its graph.

    The source side of the residual graph of any maximum flow is the same set (the smallest
    minimum cut), so cutting parts one by one gives the whole region's labelling exactly.
    """
    from scipy.sparse import csr_matrix

    from napari_sigma.compute.flow import min_cut_source_side

    index = np.full(region.shape, -1, dtype=np.int64)
    n_nodes = int(region.sum())
    index[region] = np.arange(n_nodes)
    source, sink = n_nodes, n_nodes + 1
    scaled = np.clip(np.nan_to_num(log_ratio[region]) * resolution, -(2.0**30), 2.0**30)
    evidence = np.round(scaled).astype(np.int64)
    towards_a, towards_b = np.flatnonzero(evidence > 0), np.flatnonzero(evidence < 0)
    tails = [np.full(len(towards_a), source), towards_b]
    heads = [towards_a, np.full(len(towards_b), sink)]
    capacities = [evidence[towards_a], -evidence[towards_b]]
    for dy, dx, weight in _LINKS:
        first, second = _neighbour_pairs(index, dy, dx)
        link = np.full(len(first), max(1, round(beta * weight * resolution)), dtype=np.int64)
        tails += [first, second]
        heads += [second, first]
        capacities += [link, link]
    graph = csr_matrix(
        (
            np.concatenate(capacities).astype(np.int32),
            (np.concatenate(tails), np.concatenate(heads)),
        ),
        shape=(n_nodes + 2, n_nodes + 2),
    )
    graph.sum_duplicates()
    # the smallest minimum cut's source side, without the GIL (scipy's maximum flow held it
    # for its whole call: up to seconds on one large region, napari's thread stopped as long)
    on_source_side = min_cut_source_side(graph, source, sink)
    labelled_a = np.zeros(region.shape, dtype=bool)
    labelled_a[region] = on_source_side[:n_nodes]
    return labelled_a
