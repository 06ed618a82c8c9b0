"""The evidence between two minor twins (:mod:`napari_sigma.phases.twins`, steps 3 and 4): each
pixel's score (:func:`pixel_scores`), where the twins' scores lie on the map
(:func:`measured_midpoint`), the ratios of pixels mixed with a third phase
(:func:`neighbour_phases`, :func:`margin_log_ratios`), the significance of a group's change
(:func:`significant_changes`), and the sums of the pixels away from other phases
(:func:`_evidence_sums`, :func:`_near_other`)."""

from __future__ import annotations

import numpy as np

from napari_sigma.phases.twin_models import TwinModel


def pixel_scores(
    counts, region: np.ndarray, model: TwinModel, rows_per_block: int = 64
) -> np.ndarray:
    """``counts @ w`` (:meth:`TwinModel.log_ratio_weights`) of every ``region`` pixel, 0 elsewhere.

    The counts are read in bands of ``rows_per_block`` rows, only the rows that hold region
    pixels, only the model's channels.
    """
    from napari_sigma.compute.blocks import RowChunks

    weights = model.log_ratio_weights()[0]
    out = np.zeros(region.shape, np.float64)
    reader = RowChunks(counts, model.channels)  # a lazy cube: each chunk read once, no band copy
    for low, high in _row_bands(region, rows_per_block):
        inside = region[low:high]
        out[low:high][inside] = reader.pixels(low, high, inside).astype(np.float64) @ weights
    return out


def _row_bands(mask: np.ndarray, rows_per_block: int):
    """``(low, high)`` of each band of ``rows_per_block`` rows that holds pixels of ``mask``,
    trimmed to its first and last such row (the rows whose counts are read)."""
    for top in range(0, mask.shape[0], rows_per_block):
        rows = np.flatnonzero(mask[top : top + rows_per_block].any(axis=1))
        if rows.size:
            yield top + int(rows[0]), top + int(rows[-1]) + 1


def measured_midpoint(
    scores: np.ndarray, evidence: np.ndarray, radius: int, start: float, gap: float
) -> tuple[float, float]:
    """The twins' mean scores as the map shows them: their midpoint and their distance.

    ``scores`` are the pixels' ``counts @ w``; they are averaged over the ``evidence`` pixels of
    each ``(2r+1)^2`` window (grains, not pixels), and a two-Gaussian mixture (shared variance)
    is fitted to the averages of windows at least half full, started at ``start -+ gap / 2``.
    Returns the midpoint of its two means and their distance (``start`` and ``gap`` when the
    mixture degenerates). The cores' means are not used: a grain of one twin inside the
    other's label sits in its core (seed 0 of ``minor_twin``: 18 % of the Fo90 core was Fo89)
    and moves the midpoint towards the grain's own twin, so that the grain's own pixels no
    longer tell; and cores chosen by the labels, which the same counts made, differ by more
    than the twins do (separation 0.55-0.62 against 0.48 with the true spectra).
    """
    from scipy.ndimage import uniform_filter

    size = 2 * radius + 1
    weight = uniform_filter(evidence.astype(np.float64), size, mode="constant")
    total = uniform_filter(np.where(evidence, scores, 0.0), size, mode="constant")
    full = evidence & (weight >= 0.5)
    if full.sum() < 20 or gap <= 0:
        return start, gap
    values = total[full] / weight[full]
    means = np.array([start - gap / 2.0, start + gap / 2.0])
    variance = max(float(values.var()) - gap**2 / 4.0, gap**2 / 100.0)
    shares = np.array([0.5, 0.5])
    for _ in range(100):
        log_p = -((values[:, None] - means) ** 2) / (2.0 * variance) + np.log(shares)
        log_p -= log_p.max(axis=1, keepdims=True)
        resp = np.exp(log_p)
        resp /= resp.sum(axis=1, keepdims=True)
        mass = resp.sum(axis=0)
        if np.any(mass < 1.0):
            return start, gap
        new = (resp * values[:, None]).sum(axis=0) / mass
        variance = float((resp * (values[:, None] - new) ** 2).sum() / len(values))
        shares = mass / len(values)
        converged = np.allclose(new, means, rtol=0, atol=1e-6 * gap)
        means = new
        if converged:
            break
    return float(means.mean()), float(abs(means[1] - means[0]))


def neighbour_phases(labels: np.ndarray, pair: tuple[int, int], margin: int) -> np.ndarray:
    """The most frequent label other than ``pair`` and 0 in each pixel's ``(2 margin + 1)^2``
    window (0 where there is none)."""
    from scipy.ndimage import uniform_filter

    size = 2 * max(int(margin), 1) + 1
    best = np.zeros(labels.shape, dtype=np.int64)
    best_share = np.zeros(labels.shape, dtype=np.float64)
    for phase in np.unique(labels).tolist():
        if phase <= 0 or phase in pair:
            continue
        share = uniform_filter((labels == phase).astype(np.float64), size, mode="constant")
        better = share > best_share + 1e-12
        best[better], best_share[better] = phase, share[better]
    return best


def margin_log_ratios(
    counts,
    margin: np.ndarray,
    neighbours: np.ndarray,
    model: TwinModel,
    phase_means: np.ndarray,
    midpoint: float,
    scale: float,
    rows_per_block: int = 64,
) -> np.ndarray:
    """Log-likelihood ratios of the twins at pixels that mix a twin with a third phase.

    A pixel next to a third phase ``o`` (``neighbours``, mean spectrum per pixel ``mu_o`` from
    ``phase_means``, on the model's channels) is modelled as ``f mu_t + (1 - f) mu_o``: ``mu_t``
    is ``mu_a`` or ``mu_b``, ``f`` the twin's share, estimated by weighted least squares along
    ``(mu_a + mu_b) / 2 - mu_o`` and clipped to [0, 1]. The ratio is the interior pixels' one
    (:meth:`TwinModel.log_ratio_weights`, the measured ``midpoint``, ``scale``) with the
    mixture's own weights ``w_f = log(m_a / m_b)``:
    ``(counts @ w_f - (m_a + m_b) / 2 @ w_f - f delta) scale``, ``delta`` the measured
    midpoint less the model's; at ``f = 1`` it is the interior pixels' ratio. Without the third
    phase in the model a few per cent of magnetite in an olivine pixel looks like the
    iron-richer twin; with it, these pixels (a quarter of the twins' pixels on ``minor_twin``)
    pin the twins' outlines along the other phases.

    Returns an array of ``margin``'s shape, 0 outside ``margin`` and where ``neighbours`` is 0.
    """
    from napari_sigma.compute.blocks import RowChunks

    spectrum_a, spectrum_b = model.spectra
    weights = np.log(spectrum_a / spectrum_b)
    twin = (spectrum_a + spectrum_b) / 2.0
    delta = midpoint - float(twin @ weights)
    floor = 1e-3 * max(float(twin.mean()), 1e-12)
    out = np.zeros(margin.shape, np.float64)
    used = margin & (neighbours > 0)
    reader = RowChunks(counts, model.channels)  # a lazy cube: each chunk read once, no band copy
    for low, high in _row_bands(used, rows_per_block):
        inside = used[low:high]
        block = reader.pixels(low, high, inside).astype(np.float64)
        others = neighbours[low:high][inside]
        values = np.zeros(len(block))
        for phase in np.unique(others).tolist():
            chosen = others == phase
            other = np.maximum(np.asarray(phase_means[phase - 1], np.float64), floor)
            direction = twin - other
            variance = np.maximum((twin + other) / 2.0, floor)
            norm = float(direction @ (direction / variance))
            if norm <= 0:
                continue
            x = block[chosen]
            share = np.clip(((x - other) @ (direction / variance)) / norm, 0.0, 1.0)[:, None]
            mix_a = np.maximum(share * spectrum_a + (1 - share) * other, floor)
            mix_b = np.maximum(share * spectrum_b + (1 - share) * other, floor)
            mixed = np.log(mix_a / mix_b)
            centre = np.sum((mix_a + mix_b) / 2.0 * mixed, axis=1)
            values[chosen] = (np.sum(x * mixed, axis=1) - centre - share[:, 0] * delta) * scale
        out[low:high][inside] = values
    return out


def significant_changes(
    before: np.ndarray,
    after: np.ndarray,
    log_ratio: np.ndarray,
    evidence: np.ndarray,
    pair: tuple[int, int],
    gap: float,
    z: float,
) -> np.ndarray:
    """``after`` where its changes from ``before`` are significant, ``before`` elsewhere.

    Each connected group of changed pixels, with ``n`` evidence pixels and a log-likelihood
    ratio ``L`` in favour of its new label, is kept when

    - it is large enough for its counts to tell the twins apart by ``z`` standard deviations:
      ``n gap >= z^2`` (``gap``: the expected log-likelihood ratio of one pixel between the
      twins; over the group the two hypotheses' means lie ``n gap`` apart, with standard
      deviation ``sqrt(n gap)``), and
    - ``L`` lies ``z`` standard deviations above what the group would show if ``before`` were
      right (mean ``-n gap / 2``).

    The minimum cut carves out exactly the pixels whose noise favours the other twin, so a
    small group's own ``L`` is biased: on ``minor_twin`` seeds 0-11 (olivines, ``gap`` ~0.14)
    the cut's groups of 1-42 pixels that reached 3-5 standard deviations were wrong but one
    (a boundary between two grains of different twins costs the Potts prior almost nothing to
    move, and a single pixel with a few Fe counts too many flips); the groups that were whole
    grains labelled as the other twin held 101-316 pixels at 3.9-7 standard deviations. The
    size rule also drops two right groups of 35 and 52 pixels (seeds 5 and 6).
    """
    from scipy.ndimage import label

    changed = after != before
    if z <= 0 or not changed.any():  # z 0: the cut's labels as they are
        return after
    groups, n_groups = label(changed, np.ones((3, 3), dtype=bool))
    towards = np.where(after == pair[0], log_ratio, -log_ratio)
    gain = np.bincount(groups.ravel(), np.where(evidence, towards, 0.0).ravel(), n_groups + 1)
    count = np.bincount(groups.ravel(), evidence.ravel(), n_groups + 1)
    spread = np.sqrt(np.maximum(count * gap, 1e-30))
    keep = (count * gap >= z**2) & (gain + count * gap / 2.0 >= z * spread)
    keep[0] = False
    return np.where(keep[groups], after, before)


def _evidence_sums(
    counts, labels: np.ndarray, evidence: np.ndarray, pair: tuple[int, int], rows: int = 64
) -> tuple[np.ndarray, tuple[int, int]]:
    """Sum spectra ``(2, E)`` of the ``evidence`` pixels of each label of ``pair``, and their
    numbers: every pixel of the twins away from other phases, not only the cores (the
    difference of two olivines is seen at 5-7 standard deviations in cores of ~1 000 pixels;
    its noise cost a quarter of the information of each pixel's ratio).

    A lazy cube is read in its own row chunks, each once, an event cube from its events
    (:class:`~napari_sigma.compute.blocks.RowChunks`, the same sums).
    """
    from napari_sigma.compute.blocks import RowChunks

    sums = np.zeros((2, int(counts.shape[-1])), np.float64)
    reader = RowChunks(counts)
    for top in range(0, labels.shape[0], rows):
        band = evidence[top : top + rows]
        if not band.any():
            continue
        chosen = [band & (labels[top : top + rows] == phase) for phase in pair]
        used = np.flatnonzero(np.logical_or(*chosen).any(axis=1))
        if used.size == 0:
            continue
        low, high = top + int(used[0]), top + int(used[-1]) + 1
        sums += reader.sums(low, high, [mask[low - top : high - top] for mask in chosen])
    pixels = tuple(int((evidence & (labels == phase)).sum()) for phase in pair)
    return sums, pixels


def _near_other(labels: np.ndarray, pair: tuple[int, int], margin: int) -> np.ndarray:
    """Pixels within ``margin`` (8-neighbourhood steps) of a label outside ``pair``."""
    from scipy.ndimage import binary_dilation

    other = ~np.isin(labels, pair)
    if margin <= 0 or not other.any():
        return np.zeros(labels.shape, dtype=bool)
    return binary_dilation(other, np.ones((3, 3), dtype=bool), iterations=margin)
