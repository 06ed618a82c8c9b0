"""Accuracy of a phase map and of phase spectra against a ground truth (synthetic data).

Predicted phases carry arbitrary ids, so they are first matched one-to-one to the true phases
(Hungarian assignment on the intersection-over-union matrix, :func:`match_phases`); per-phase scores
are then read off the matched pairs. Spectra are compared with the cosine similarity and the spectral
angle, which ignore the overall scale (summed counts vs. counts per pixel).

Label images follow the project convention: int ``(y, x)``, 0 = unassigned, phases 1..K. Unassigned
pixels count as misses for every true phase. Every comparison takes ``truth_labels, labels``: the
true and the predicted label image, of the same shape.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

if TYPE_CHECKING:
    from napari_sigma.synthetic.generator import SyntheticSample


def _flat_labels(truth_labels: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    truth = np.asarray(truth_labels)
    predicted = np.asarray(labels)
    if truth.shape != predicted.shape:
        raise ValueError(
            f"label images differ in shape: truth {truth.shape}, labels {predicted.shape}"
        )
    return truth.ravel().astype(np.int64), predicted.ravel().astype(np.int64)


def phase_ids(labels: np.ndarray) -> np.ndarray:
    """The phase ids present in a label image, sorted, without 0 (unassigned)."""
    ids = np.unique(np.asarray(labels))
    return ids[ids > 0]


class PhasePairs(NamedTuple):
    """A value for every (true phase, predicted phase) pair, with the ids of the phases.

    Parameters
    ----------
    table : ndarray, shape (T, P)
        ``table[i, j]``: the value of true phase ``truth_ids[i]`` and predicted ``predicted_ids[j]``.
    truth_ids, predicted_ids : ndarray
        The non-zero ids of the rows and columns.
    """

    table: np.ndarray
    truth_ids: np.ndarray
    predicted_ids: np.ndarray


def contingency_table(truth_labels: np.ndarray, labels: np.ndarray) -> PhasePairs:
    """Pixel counts (int64) of every (true phase, predicted phase) pair."""
    truth, predicted = _flat_labels(truth_labels, labels)
    truth_ids, predicted_ids = phase_ids(truth), phase_ids(predicted)
    keep = (truth > 0) & (predicted > 0)
    rows = np.searchsorted(truth_ids, truth[keep])
    cols = np.searchsorted(predicted_ids, predicted[keep])
    table = np.zeros((truth_ids.size, predicted_ids.size), dtype=np.int64)
    np.add.at(table, (rows, cols), 1)
    return PhasePairs(table, truth_ids, predicted_ids)


def iou_matrix(truth_labels: np.ndarray, labels: np.ndarray) -> PhasePairs:
    """Intersection over union (float64) of every (true phase, predicted phase) pair."""
    truth, predicted = _flat_labels(truth_labels, labels)
    table, truth_ids, predicted_ids = contingency_table(truth, predicted)
    truth_sizes = np.array([(truth == t).sum() for t in truth_ids], dtype=np.float64)
    predicted_sizes = np.array([(predicted == p).sum() for p in predicted_ids], dtype=np.float64)
    union = truth_sizes[:, None] + predicted_sizes[None, :] - table
    iou = np.divide(table, union, out=np.zeros(table.shape), where=union > 0)
    return PhasePairs(iou, truth_ids, predicted_ids)


def match_phases(truth_labels: np.ndarray, labels: np.ndarray) -> dict[int, int]:
    """Match predicted phases one-to-one to true phases (Hungarian assignment maximising IoU).

    Returns
    -------
    dict of int to int
        ``{true phase id: predicted phase id}`` for the matched pairs. With more predicted than true
        phases the surplus stays unmatched; with fewer, some true phases are missing from the dict.
        Pairs that do not overlap at all are left out.
    """
    from scipy.optimize import linear_sum_assignment

    iou, truth_ids, predicted_ids = iou_matrix(truth_labels, labels)
    if iou.size == 0:
        return {}
    rows, cols = linear_sum_assignment(iou, maximize=True)
    return {
        int(truth_ids[r]): int(predicted_ids[c])
        for r, c in zip(rows, cols, strict=True)
        if iou[r, c] > 0
    }


def adjusted_rand_index(truth_labels: np.ndarray, labels: np.ndarray) -> float:
    """Adjusted Rand index of two label images (unassigned pixels form their own cluster).

    1 for identical partitions (up to renaming), about 0 for a random one.
    """
    from sklearn.metrics import adjusted_rand_score

    truth, predicted = _flat_labels(truth_labels, labels)
    return float(adjusted_rand_score(truth, predicted))


def phase_iou(
    truth_labels: np.ndarray, labels: np.ndarray, mapping: dict[int, int] | None = None
) -> dict[int, float]:
    """IoU of every true phase with its matched predicted phase (0 when unmatched).

    Parameters
    ----------
    truth_labels, labels : ndarray of int, same shape
    mapping : dict, optional
        ``{true id: predicted id}``; default :func:`match_phases`.
    """
    truth, predicted = _flat_labels(truth_labels, labels)
    mapping = match_phases(truth, predicted) if mapping is None else mapping
    scores = {}
    for true_id in phase_ids(truth):
        true_mask = truth == true_id
        if int(true_id) not in mapping:
            scores[int(true_id)] = 0.0
            continue
        predicted_mask = predicted == mapping[int(true_id)]
        union = np.count_nonzero(true_mask | predicted_mask)
        scores[int(true_id)] = float(np.count_nonzero(true_mask & predicted_mask) / union)
    return scores


def phase_f1(
    truth_labels: np.ndarray, labels: np.ndarray, mapping: dict[int, int] | None = None
) -> dict[int, float]:
    """F1 score (Dice) of every true phase with its matched predicted phase (0 when unmatched)."""
    iou = phase_iou(truth_labels, labels, mapping)
    return {phase: 2.0 * value / (1.0 + value) for phase, value in iou.items()}


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine of the angle between two spectra (1 = same shape); 0 if one is all zero."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    norm = np.linalg.norm(a) * np.linalg.norm(b)
    return float(np.dot(a, b) / norm) if norm > 0 else 0.0


def spectral_angle(a: np.ndarray, b: np.ndarray) -> float:
    """Spectral angle between two spectra in degrees (0 = same shape, 90 = orthogonal)."""
    return float(np.degrees(np.arccos(np.clip(cosine_similarity(a, b), -1.0, 1.0))))


def cosine_matrix(reference: np.ndarray, spectra: np.ndarray) -> np.ndarray:
    """Cosine similarity of every reference row with every spectrum row, shape ``(R, S)``."""
    ref = np.asarray(reference, dtype=np.float64)
    spc = np.asarray(spectra, dtype=np.float64)
    ref_norm = np.linalg.norm(ref, axis=1, keepdims=True)
    spc_norm = np.linalg.norm(spc, axis=1, keepdims=True)
    ref = np.divide(ref, ref_norm, out=np.zeros_like(ref), where=ref_norm > 0)
    spc = np.divide(spc, spc_norm, out=np.zeros_like(spc), where=spc_norm > 0)
    return ref @ spc.T


def match_spectra(reference: np.ndarray, spectra: np.ndarray) -> dict[int, int]:
    """Match spectra one-to-one to reference spectra (Hungarian assignment maximising cosine).

    Returns
    -------
    dict of int to int
        ``{reference row: spectrum row}`` (0-based rows).
    """
    from scipy.optimize import linear_sum_assignment

    similarity = cosine_matrix(reference, spectra)
    if similarity.size == 0:
        return {}
    rows, cols = linear_sum_assignment(similarity, maximize=True)
    return {int(r): int(c) for r, c in zip(rows, cols, strict=True)}


def most_similar_pair(spectra: np.ndarray) -> tuple[int, int]:
    """The two rows (0-based) of ``spectra`` with the highest cosine similarity."""
    similarity = cosine_matrix(spectra, spectra)
    np.fill_diagonal(similarity, -np.inf)
    first, second = np.unravel_index(int(np.argmax(similarity)), similarity.shape)
    return (int(min(first, second)), int(max(first, second)))


def _spectrum_scores(pure: np.ndarray, spectra: np.ndarray, pairs: dict[int, int]) -> dict:
    cosines = {r: cosine_similarity(pure[r], spectra[c]) for r, c in pairs.items()}
    angles = {r: spectral_angle(pure[r], spectra[c]) for r, c in pairs.items()}
    return {"cosine": cosines, "angle_deg": angles}


def _by_name(values: dict[int, float], names: list[str], offset: int) -> dict[str, float]:
    return {names[key - offset]: round(float(value), 6) for key, value in values.items()}


def _summary(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"mean": None, "min": None}
    return {"mean": round(float(np.mean(values)), 6), "min": round(float(np.min(values)), 6)}


def phase_accuracy_report(
    truth: SyntheticSample,
    labels: np.ndarray,
    phase_spectra: np.ndarray | None = None,
    components: np.ndarray | None = None,
) -> dict[str, Any]:
    """Accuracy of a phase map (and optionally its spectra) against a synthetic sample.

    Parameters
    ----------
    truth : SyntheticSample
        The ground truth: ``labels`` (1..K), ``pure_spectra`` (K, E), ``phase_names``.
    labels : ndarray of int, shape (y, x)
        The predicted label image (0 = unassigned, phases 1..P).
    phase_spectra : ndarray, shape (P, E), optional
        Row ``p-1`` = spectrum of predicted phase ``p``; compared with the pure spectrum of the true
        phase matched to ``p``.
    components : ndarray, shape (C, E), optional
        Unmixed (NMF) spectra; matched to the pure spectra by cosine (Hungarian).

    Returns
    -------
    dict
        ``ari``, ``n_phases_truth``, ``n_phases_found``, ``unassigned_fraction``, ``mapping``
        (true name -> predicted id), ``iou`` and ``f1`` (per true phase name), ``mean_iou``,
        ``min_iou``, ``smallest_phase`` and its ``smallest_phase_iou``, ``most_similar_pair``
        (the two true phases with the closest pure spectra) and their ``most_similar_pair_f1``;
        with spectra: ``phase_spectra_cosine`` / ``phase_spectra_angle_deg`` (per true phase name)
        and their ``*_summary``; with components: ``components_cosine`` / ``components_angle_deg``.
    """
    names = list(truth.phase_names)
    truth_labels = np.asarray(truth.labels)
    predicted = np.asarray(labels)
    mapping = match_phases(truth_labels, predicted)
    iou = phase_iou(truth_labels, predicted, mapping)
    f1 = {phase: 2.0 * value / (1.0 + value) for phase, value in iou.items()}
    sizes = {phase: int(np.count_nonzero(truth_labels == phase)) for phase in iou}
    smallest = min(sizes, key=sizes.get)
    pair = most_similar_pair(truth.pure_spectra)
    report: dict[str, Any] = {
        "ari": round(adjusted_rand_index(truth_labels, predicted), 6),
        "n_phases_truth": len(names),
        "n_phases_found": int(phase_ids(predicted).size),
        "unassigned_fraction": round(float(np.mean(predicted == 0)), 6),
        "mapping": {names[t - 1]: p for t, p in mapping.items()},
        "iou": _by_name(iou, names, 1),
        "f1": _by_name(f1, names, 1),
        "mean_iou": round(float(np.mean(list(iou.values()))), 6),
        "min_iou": round(float(np.min(list(iou.values()))), 6),
        "smallest_phase": names[smallest - 1],
        "smallest_phase_iou": round(iou[smallest], 6),
        "most_similar_pair": [names[pair[0]], names[pair[1]]],
        "most_similar_pair_f1": [round(f1[pair[0] + 1], 6), round(f1[pair[1] + 1], 6)],
    }
    pure = np.asarray(truth.pure_spectra, dtype=np.float64)
    if phase_spectra is not None:
        rows = {t - 1: p - 1 for t, p in mapping.items() if p - 1 < len(phase_spectra)}
        scores = _spectrum_scores(pure, np.asarray(phase_spectra), rows)
        report["phase_spectra_cosine"] = _by_name(scores["cosine"], names, 0)
        report["phase_spectra_angle_deg"] = _by_name(scores["angle_deg"], names, 0)
        report["phase_spectra_cosine_summary"] = _summary(list(scores["cosine"].values()))
    if components is not None and len(components):
        pairs = match_spectra(pure, np.asarray(components))
        scores = _spectrum_scores(pure, np.asarray(components), pairs)
        report["components_cosine"] = _by_name(scores["cosine"], names, 0)
        report["components_angle_deg"] = _by_name(scores["angle_deg"], names, 0)
        report["components_cosine_summary"] = _summary(list(scores["cosine"].values()))
    return report
