"""Each phase's depth (its pixels' distance to another phase), its core (the deepest pixels, which
make its own spectrum: away from the boundaries' mixed pixels) and the phases it touches."""

from __future__ import annotations

import numpy as np

CORE_FRACTION = 0.25
"""Share of a phase's pixels, the deepest, that make its own spectrum (see `interior_labels`)."""
MIN_CORE_PIXELS = 8
"""A phase's core keeps at least this many pixels (all of a smaller phase)."""


def interior_labels(labels: np.ndarray, depth: np.ndarray | None = None) -> np.ndarray:
    """Each phase's core: its deepest pixels, farthest from any other label.

    Pixels near a boundary mix the spectra of two phases (beam spread, interaction volume,
    grains overlapping through a foil); quantifying the core gives the phase's own composition.
    The depth of a pixel is its Euclidean distance to the nearest pixel of another label (the
    map's edge is no boundary). A phase keeps its ``CORE_FRACTION`` deepest pixels, at least
    ``MIN_CORE_PIXELS`` (ties at the threshold depth included): the centres of small particles
    rather than their mixed rims. On the espm_dev cases (truth labels) this took the
    composition errors from median 11 % to 6 % and named M23C6, NbC and the Cr-spinel (all
    pixels of small phases were used before).

    ``depth``: :func:`phase_depths` of ``labels``, when already computed.
    """
    labels = np.asarray(labels)
    interior = np.zeros_like(labels)
    if labels.ndim != 2 or not np.any(labels > 0):
        return interior
    return _interior_from_depths(labels, phase_depths(labels) if depth is None else depth)


def _interior_from_depths(labels: np.ndarray, depth: np.ndarray) -> np.ndarray:
    interior = np.zeros_like(labels)
    for pid in np.unique(labels[labels > 0]).tolist():
        mask = labels == pid
        values = depth[mask]
        keep = min(values.size, max(MIN_CORE_PIXELS, int(np.ceil(CORE_FRACTION * values.size))))
        threshold = np.partition(values, values.size - keep)[values.size - keep]
        interior[mask & (depth >= threshold)] = pid
    return interior


def phase_depths(labels: np.ndarray) -> np.ndarray:
    """Each labelled pixel's Euclidean distance to the nearest pixel of another label (the map's
    edge is no boundary); 0 where the label is 0 or below; infinite for a phase that fills the
    map (every pixel equally deep: all of it is its core).

    One distance transform per phase, over its bounding box; the phases' transforms run on
    every core (:func:`~napari_sigma.compute.blocks.threaded_map`; scipy's transform releases
    the GIL) and each writes only its own pixels."""
    from scipy.ndimage import distance_transform_edt, find_objects

    from napari_sigma.compute.blocks import threaded_map

    labels = np.asarray(labels)
    depths = np.zeros(labels.shape, dtype=np.float64)
    height, width = labels.shape

    def phase(item: tuple[int, tuple[slice, slice]]) -> None:
        pid, box = item
        y0, y1 = max(box[0].start - 1, 0), min(box[0].stop + 1, height)
        x0, x1 = max(box[1].start - 1, 0), min(box[1].stop + 1, width)
        mask = labels[y0:y1, x0:x1] == pid
        pad = ((int(y0 == 0), int(y1 == height)), (int(x0 == 0), int(x1 == width)))
        padded = np.pad(mask, pad, mode="edge")
        if padded.all():  # the phase fills the map: no other label anywhere
            depths[y0:y1, x0:x1][mask] = np.inf
            return
        depth = distance_transform_edt(padded)
        depth = depth[
            pad[0][0] : depth.shape[0] - pad[0][1], pad[1][0] : depth.shape[1] - pad[1][1]
        ]
        depths[y0:y1, x0:x1][mask] = depth[mask]

    boxes = find_objects(np.clip(labels, 0, None))
    found = [(pid, box) for pid, box in enumerate(boxes, start=1) if box is not None]
    for _ in threaded_map(phase, found):
        pass
    return depths


def touching_phases(labels: np.ndarray) -> dict[int, dict[int, int]]:
    """For each phase id, the phases it touches and the length of their shared boundary (pixel
    edges between 4-neighbours)."""
    labels = np.asarray(labels)
    pairs = []
    for a, b in ((labels[:-1, :], labels[1:, :]), (labels[:, :-1], labels[:, 1:])):
        edge = (a != b) & (a > 0) & (b > 0)
        pairs.append(np.stack([a[edge], b[edge]], axis=1))
    both = np.concatenate(pairs)
    both = np.concatenate([both, both[:, ::-1]])
    touching: dict[int, dict[int, int]] = {}
    if both.size:
        # one int64 key per pair: sorting rows (np.unique(axis=0)) compares a void dtype and
        # holds the GIL for the whole sort (napari's main thread waited 0.2 s at 1024²)
        base = int(both.max()) + 1
        keys, counts = np.unique(
            both[:, 0].astype(np.int64) * base + both[:, 1], return_counts=True
        )
        for key, n in zip(keys.tolist(), counts.tolist(), strict=True):
            p, q = divmod(key, base)
            touching.setdefault(int(p), {})[int(q)] = int(n)
    return touching
