"""Tests of napari_sigma.metrics against label images and spectra with known answers."""

from types import SimpleNamespace

import numpy as np
import pytest

from napari_sigma import metrics


def _stripes() -> np.ndarray:
    """A 6x6 truth image: phase 1 in rows 0-1, phase 2 in rows 2-3, phase 3 in rows 4-5."""
    return np.repeat(np.arange(1, 4, dtype=np.int32), 12).reshape(6, 6)


def test_permuted_labels_are_a_perfect_match():
    truth = _stripes()
    permuted = np.array([0, 7, 3, 5])[truth]  # 1->7, 2->3, 3->5
    assert metrics.match_phases(truth, permuted) == {1: 7, 2: 3, 3: 5}
    assert metrics.adjusted_rand_index(truth, permuted) == pytest.approx(1.0)
    assert metrics.phase_iou(truth, permuted) == {1: 1.0, 2: 1.0, 3: 1.0}
    assert metrics.phase_f1(truth, permuted) == {1: 1.0, 2: 1.0, 3: 1.0}


def test_iou_and_f1_of_a_partly_wrong_map():
    truth = _stripes()
    labels = truth.copy()
    labels[2, :3] = 1  # 3 pixels of phase 2 labelled 1
    iou = metrics.phase_iou(truth, labels)
    assert iou[1] == pytest.approx(12 / 15)
    assert iou[2] == pytest.approx(9 / 12)
    assert iou[3] == pytest.approx(1.0)
    f1 = metrics.phase_f1(truth, labels)
    assert f1[1] == pytest.approx(2 * 12 / (12 + 15))
    assert f1[2] == pytest.approx(2 * 9 / (12 + 9))


def test_unassigned_pixels_count_as_misses():
    truth = _stripes()
    labels = truth.copy()
    labels[0, :] = 0
    assert metrics.phase_iou(truth, labels)[1] == pytest.approx(6 / 12)
    assert metrics.adjusted_rand_index(truth, labels) < 1.0


def test_merged_phases_leave_one_truth_unmatched():
    truth = _stripes()
    merged = np.where(truth == 3, 2, truth)
    mapping = metrics.match_phases(truth, merged)
    assert len(mapping) == 2
    assert mapping[1] == 1
    iou = metrics.phase_iou(truth, merged, mapping)
    assert iou[1] == 1.0
    assert sorted([iou[2], iou[3]]) == pytest.approx([0.0, 0.5])


def test_contingency_table_counts_pairs():
    truth = _stripes()
    labels = truth.copy()
    labels[2, :3] = 1
    table, truth_ids, predicted_ids = metrics.contingency_table(truth, labels)
    assert truth_ids.tolist() == [1, 2, 3]
    assert predicted_ids.tolist() == [1, 2, 3]
    assert table.tolist() == [[12, 0, 0], [3, 9, 0], [0, 0, 12]]


def test_random_labels_have_ari_near_zero():
    rng = np.random.default_rng(0)
    truth = rng.integers(1, 5, size=(100, 100))
    labels = rng.integers(1, 5, size=(100, 100))
    assert abs(metrics.adjusted_rand_index(truth, labels)) < 0.01


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="shape"):
        metrics.match_phases(np.ones((4, 4), int), np.ones((2, 2), int))


def test_cosine_and_spectral_angle():
    a = np.array([1.0, 0.0, 0.0])
    assert metrics.cosine_similarity(a, 5 * a) == pytest.approx(1.0)
    assert metrics.spectral_angle(a, 5 * a) == pytest.approx(0.0, abs=1e-6)
    assert metrics.spectral_angle(a, np.array([0.0, 2.0, 0.0])) == pytest.approx(90.0)
    assert metrics.spectral_angle(a, np.array([1.0, 1.0, 0.0])) == pytest.approx(45.0)
    assert metrics.cosine_similarity(a, np.zeros(3)) == 0.0


def test_match_spectra_and_most_similar_pair():
    pure = np.array([[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0.9, 0.1, 0]])
    shuffled = np.array([[0, 0, 3.0, 0.1], [0, 0.8, 0.2, 0], [2.0, 0, 0, 0]])
    pairs = metrics.match_spectra(pure, shuffled)
    assert pairs[0] == 2
    assert metrics.most_similar_pair(pure) == (1, 2)


def test_phase_accuracy_report_on_known_truth():
    truth_labels = _stripes()
    pure = np.array([[5.0, 1, 0, 0], [0, 1, 5.0, 0], [0, 1, 4.0, 1.0]])
    truth = SimpleNamespace(labels=truth_labels, pure_spectra=pure, phase_names=["A", "B", "C"])
    labels = np.array([0, 2, 1, 3])[truth_labels]  # A->2, B->1, C->3
    labels[5, 0] = 0
    phase_spectra = np.array([pure[1] * 100, pure[0] * 50, pure[2] * 10])
    components = np.array([2 * pure[2], pure[0], pure[1] + [0.5, 0, 0, 0]])
    report = metrics.phase_accuracy_report(truth, labels, phase_spectra, components)
    assert report["mapping"] == {"A": 2, "B": 1, "C": 3}
    assert report["n_phases_truth"] == 3
    assert report["n_phases_found"] == 3
    assert report["unassigned_fraction"] == pytest.approx(1 / 36, abs=1e-6)
    assert report["iou"]["C"] == pytest.approx(11 / 12, abs=1e-6)
    assert report["min_iou"] == pytest.approx(11 / 12, abs=1e-6)
    assert report["most_similar_pair"] == ["B", "C"]
    assert report["most_similar_pair_f1"][0] == pytest.approx(1.0)
    assert report["phase_spectra_cosine"] == {"A": 1.0, "B": 1.0, "C": 1.0}
    assert report["components_cosine"]["A"] == pytest.approx(1.0)
    assert report["components_cosine"]["B"] < 0.999
    expected_angle = metrics.spectral_angle(pure[1], pure[1] + [0.5, 0, 0, 0])
    assert report["components_angle_deg"]["B"] == pytest.approx(expected_angle, abs=1e-4)
