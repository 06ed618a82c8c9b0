"""The spatial prior of phase finding: iterated conditional modes with an 8-neighbour Potts prior
(step 3 of :mod:`~napari_sigma.phases.finding`; also a fitted model's classification of a field)."""

from __future__ import annotations

import numpy as np

from napari_sigma.compute.blocks import threaded_map
from napari_sigma.compute.progress import Computation, Progress, run_to_completion

#: Rows per band of the spatial prior's first sweep and probabilities on the CPU's threads.
ICM_BAND_ROWS = 64


def _potts_icm(
    log_likelihood: np.ndarray, weight: float, iterations: int, device: str = "cpu"
) -> tuple[np.ndarray, np.ndarray]:
    """Iterated conditional modes with an 8-neighbour Potts prior; returns flat labels 0..K-1."""
    return run_to_completion(_potts_icm_steps(log_likelihood, weight, iterations, device))


def _potts_icm_steps(
    log_likelihood: np.ndarray, weight: float, iterations: int, device: str = "cpu"
) -> Computation[tuple[np.ndarray, np.ndarray]]:
    """:func:`_potts_icm`, yielding after every iteration (so that it can be cancelled).

    In float64 (numpy on the CPU, torch on another device: one function, by the arrays' type,
    :mod:`~napari_sigma.compute.arrays`); the neighbour counts are exact integers. After the
    first sweep only the pixels next to a changed label are scored again (the others' scores,
    hence their labels, cannot change): the same result as full sweeps. On the CPU the first
    sweep and the probabilities are computed in bands of rows on every core (each pixel's
    numbers are made by the same element-wise and per-row calls: the same bits).
    ``log_likelihood`` may be a torch tensor already (its device then decides).
    """
    from napari_sigma.compute.arrays import is_tensor
    from napari_sigma.compute.device import resolve_device

    if not is_tensor(log_likelihood) and resolve_device(device) == "cpu":
        likelihood = np.asarray(log_likelihood, dtype=np.float64)
    else:
        import torch

        on = log_likelihood.device if is_tensor(log_likelihood) else resolve_device(device)
        likelihood = torch.as_tensor(log_likelihood, device=on).to(torch.float64)
    return (yield from _potts_icm_arrays(likelihood, weight, iterations))


def _potts_icm_arrays(
    likelihood, weight: float, iterations: int
) -> Computation[tuple[np.ndarray, np.ndarray]]:
    """:func:`_potts_icm_steps` of a float64 ``(y, x, K)`` numpy array or torch tensor."""
    from napari_sigma.compute.arrays import host, namespace, on_host
    from napari_sigma.phases._filters import dilated, neighbour_counts, padded

    xp = namespace(likelihood)
    n_phases = likelihood.shape[-1]
    height = likelihood.shape[0]
    if on_host(likelihood):  # bands of rows on the CPU's threads; one on a device
        bands = [slice(row, row + ICM_BAND_ROWS) for row in range(0, height, ICM_BAND_ROWS)]
        workers = None
    else:
        bands, workers = [slice(0, height)], 1

    def in_bands(function) -> None:
        for _ in threaded_map(function, bands, workers):
            pass

    labels = likelihood.argmax(-1)
    score = likelihood
    near = None  # pixels whose neighbourhood changed in the last sweep
    for _ in range(iterations if weight > 0 else 0):
        if near is None:
            grown = padded(labels, 1, "nearest")
            score = xp.empty_like(likelihood)
            new = xp.empty_like(labels)

            def first_sweep(rows: slice, grown=grown, score=score, new=new, labels=labels):
                counts = neighbour_counts(labels, n_phases, xp.float64, rows=rows, grown=grown)
                counts *= weight
                counts += likelihood[rows]
                score[rows] = counts
                new[rows] = counts.argmax(-1)

            in_bands(first_sweep)
        else:
            at = xp.nonzero(near)
            local = neighbour_counts(labels, n_phases, xp.float64, at)
            local *= weight
            local += likelihood[at]
            score[at] = local
            new = xp.copy(labels)
            new[at] = local.argmax(-1)
        changed = new != labels
        if not bool(changed.any()):
            break
        labels = new
        near = dilated(changed)
        yield Progress("clustering", 0, 1, "spatial prior")
    probabilities = xp.empty_like(score)

    def softmax(rows: slice) -> None:
        probabilities[rows] = _row_softmax(score[rows])

    in_bands(softmax)
    return host(labels.reshape(-1)), host(probabilities.reshape(-1, n_phases))


def _row_softmax(part):
    """Softmax over the last axis: torch's kernel on a tensor; on numpy its formula
    (``exp(v - max)`` times the reciprocal of the row's sum)."""
    if not isinstance(part, np.ndarray):
        import torch

        return torch.softmax(part, dim=-1)
    from napari_sigma.compute.row_reductions import row_max, row_sum

    # a contiguous band (rows, x, K) as the table of its pixels' rows (a view: numpy reduces
    # its last axis row by row alike), reduced column by column (compute.row_reductions)
    rows = part.reshape(-1, part.shape[-1]) if part.flags.c_contiguous else part
    shifted = np.exp(rows - row_max(rows, keepdims=True))
    return (shifted * (1.0 / row_sum(shifted, keepdims=True))).reshape(part.shape)
