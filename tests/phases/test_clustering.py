"""Tests of the Gaussian-mixture phases: backends agree, the number of phases, labels."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from napari_sigma.compute.progress import Progress, run_to_completion
from napari_sigma.errors import AnalysisError
from napari_sigma.phases.mixture import (
    ClusteringResult,
    ClusteringSettings,
    cluster_phases,
    knee_k,
    predict,
    split_phase,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def blobs(k: int, n: int = 6000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """k elongated Gaussian blobs of unequal sizes, centres 12 apart on a circle."""
    rng = np.random.default_rng(seed)
    sizes = np.maximum((rng.dirichlet(np.full(k, 2.0)) * n).astype(int), n // 40)
    angles = 2 * np.pi * np.arange(k) / k
    radius = 12.0 / (2 * np.sin(np.pi / k))
    points, labels = [], []
    for i, size in enumerate(sizes):
        turn = rng.uniform(0, np.pi)
        rotation = np.array([[np.cos(turn), -np.sin(turn)], [np.sin(turn), np.cos(turn)]])
        shape = rotation @ np.diag([2.0, 0.5])
        centre = radius * np.array([np.cos(angles[i]), np.sin(angles[i])])
        points.append(centre + rng.normal(size=(size, 2)) @ shape.T)
        labels.append(np.full(size, i))
    return np.concatenate(points), np.concatenate(labels)


def run(points: np.ndarray, **settings) -> ClusteringResult:
    return run_to_completion(cluster_phases(points, ClusteringSettings(device="cpu", **settings)))


def test_torch_and_sklearn_agree():
    points, truth = blobs(4)
    mine = run(points, n_phases=4)
    reference = run(points, n_phases=4, backend="sklearn")
    assert adjusted_rand_score(mine.labels, reference.labels) > 0.99
    assert adjusted_rand_score(truth, mine.labels) > 0.99
    np.testing.assert_allclose(np.sort(mine.weights), np.sort(reference.weights), atol=1e-3)


@pytest.mark.parametrize("k", [3, 4, 5, 6])
def test_auto_finds_the_true_number_of_phases(k):
    points, truth = blobs(k, seed=k)
    result = run(points, max_phases=8)
    assert result.n_phases == k
    assert adjusted_rand_score(truth, result.labels) > 0.99
    assert sorted(result.criterion) == list(range(1, 9))


@pytest.mark.parametrize("seed", range(10))
def test_the_number_of_phases_does_not_depend_on_the_seed(seed):
    """Six elongated blobs: one k-means++ start per K found 6 on 4 of these 10 seeds (two
    components in one blob, one across two; the BIC or its knee then lands elsewhere); the
    best of the restarts near the chosen K finds 6 on every seed."""
    points, truth = blobs(6, seed=6)
    result = run(points, max_phases=8, seed=seed)
    assert result.n_phases == 6
    assert adjusted_rand_score(truth, result.labels) > 0.99
    single = run(points, max_phases=8, seed=seed, restarts=0)
    assert result.criterion[6] <= single.criterion[6]  # restarts only ever keep a better fit


def test_restarts_are_spent_near_the_chosen_k(monkeypatch):
    """The restarts fit the chosen K and its neighbours only (here K = 3 of 1..8)."""
    from napari_sigma.phases import mixture_scan

    points, _ = blobs(3, n=3000, seed=3)
    fitted = []
    original = mixture_scan._fit_torch

    def recorded(x, k, settings, seed, prepared=None, start=None):
        if seed >= settings.seed + 1000 * settings.n_init:  # a restart's seed
            fitted.append(k)
        return original(x, k, settings, seed, prepared, start)

    monkeypatch.setattr(mixture_scan, "_fit_torch", recorded)  # the restarts' fits
    result = run(points, max_phases=8, restarts=4)
    assert result.n_phases == 3
    assert sorted(set(fitted)) == [2, 3, 4] and len(fitted) == 12


def test_the_restarts_on_two_threads_are_the_restarts_one_by_one(monkeypatch):
    """A K's short starts (and their rival, the scan's fit) are independent fits: on the CPU
    with two usable cores they run two at a time (compute.blocks.worker_threads bounds them),
    and the mixture, labels, probabilities and BIC values are those of one core bit for bit."""
    from napari_sigma.compute.blocks import worker_threads
    from napari_sigma.phases import mixture_scan

    batches = []
    original = mixture_scan._fits_of

    def recorded(steps, on_cpu, report=None):
        batches.append(len(steps))
        return original(steps, on_cpu, report)

    monkeypatch.setattr(mixture_scan, "_fits_of", recorded)  # the scan's and the restarts'
    points, _ = blobs(5, n=5000, seed=11)
    found = {}
    for threads in (1, 2):
        with worker_threads(threads):
            found[threads] = run(points, max_phases=8, restarts=6, seed=2)
    assert batches.count(7) >= 6  # the rival and 6 starts of each K near the chosen one
    one, two = found[1], found[2]
    assert one.n_phases == two.n_phases == 5
    assert np.array_equal(one.labels, two.labels)
    assert one.probabilities.tobytes() == two.probabilities.tobytes()
    assert one.criterion == two.criterion
    assert one.means.tobytes() == two.means.tobytes()


def test_merge_joins_a_non_gaussian_phase():
    rng = np.random.default_rng(1)
    angle = rng.uniform(0, np.pi, 4000)
    arc = np.c_[8 * np.cos(angle), 8 * np.sin(angle)] + rng.normal(0, 0.4, (4000, 2))
    blob = rng.normal(0, 0.5, (2000, 2)) + np.array([0.0, -6.0])
    points, truth = np.concatenate([arc, blob]), np.repeat([0, 1], [4000, 2000])
    plain = run(points, criterion="bic", max_phases=8)
    merged = run(points, criterion="merge", max_phases=8)
    assert plain.n_phases > 2
    assert merged.n_phases == 2
    assert adjusted_rand_score(truth, merged.labels) > 0.99
    assert merged.means.shape == (2, 2) and merged.covariances.shape == (2, 2, 2)


def test_knee_rule():
    assert knee_k({1: 100.0, 2: 10.0, 3: 5.0, 4: 4.9, 5: 4.5}, 0.1) == 2
    assert knee_k({1: 100.0, 2: 10.0, 3: 5.0, 4: 4.9, 5: 4.5}, 0.01) == 3
    assert knee_k({1: 1.0, 2: 2.0}, 0.02) == 1


def test_phases_are_numbered_by_decreasing_size():
    points, _ = blobs(3, seed=7)
    result = run(points, n_phases=3)
    counts = np.bincount(result.labels, minlength=4)[1:]
    assert list(counts) == sorted(counts, reverse=True)
    assert result.labels.dtype == np.int32 and set(np.unique(result.labels)) == {1, 2, 3}
    assert result.probabilities.shape == (len(points), 3)
    np.testing.assert_allclose(result.probabilities.sum(1), 1.0, atol=1e-5)


def test_min_probability_leaves_ambiguous_points_unassigned():
    rng = np.random.default_rng(2)
    points = np.concatenate([rng.normal(-1.5, 1, (3000, 2)), rng.normal(1.5, 1, (3000, 2))])
    result = run(points, n_phases=2, min_probability=0.9)
    unassigned = result.labels == 0
    assert unassigned.any()
    np.testing.assert_array_equal(unassigned, result.probabilities.max(1) < 0.9)
    middle = np.abs(points.sum(1)) < 0.2
    assert unassigned[middle].all()


def test_predict_matches_the_fit_labels():
    points, _ = blobs(3, seed=5)
    result = run(points, n_phases=3)
    np.testing.assert_array_equal(predict(points, result), result.labels)


def test_fit_on_subsample_labels_every_point():
    points, truth = blobs(3, n=20000, seed=4)
    result = run(points, n_phases=3, fit_points=2000)
    assert result.labels.shape == (len(points),)
    assert adjusted_rand_score(truth, result.labels) > 0.99


def test_split_phase_splits_two_blobs():
    rng = np.random.default_rng(0)
    points = np.concatenate([rng.normal(0, 1, (700, 3)), rng.normal(8, 1, (300, 3))])
    parts = split_phase(points, 2, seed=0)
    assert parts.dtype == np.int32
    np.testing.assert_array_equal(parts, np.repeat([0, 1], [700, 300]))


def test_progress_and_errors():
    points, _ = blobs(3)
    reports = []
    run_to_completion(cluster_phases(points, ClusteringSettings(max_phases=4)), reports.append)
    assert reports and all(isinstance(r, Progress) and r.stage == "clustering" for r in reports)
    with pytest.raises(AnalysisError):
        run(points, criterion="aic")
    with pytest.raises(AnalysisError):
        run(np.full((10, 2), np.nan))


@pytest.mark.parametrize("n_init", [1, 2])
def test_the_scan_over_k_on_two_cores_gives_the_sequential_results(monkeypatch, n_init):
    from napari_sigma.phases import mixture, mixture_scan

    points, _ = blobs(4, n=3000, seed=2)
    settings = ClusteringSettings(n_phases="auto", max_phases=7, seed=5, n_init=n_init)
    for module in (mixture, mixture_scan):  # cluster_phases' and _fits_of's
        monkeypatch.setattr(module, "usable_cores", lambda: 1)
    one = run_to_completion(cluster_phases(points, settings))
    for module in (mixture, mixture_scan):
        monkeypatch.setattr(module, "usable_cores", lambda: 2)
    reports = []
    two = run_to_completion(cluster_phases(points, settings), reports.append)
    assert one.criterion == two.criterion  # every K's BIC, to the last bit
    np.testing.assert_array_equal(one.labels, two.labels)
    np.testing.assert_array_equal(one.means, two.means)
    assert reports and all(r.stage == "clustering" for r in reports)


def test_the_parallel_scan_says_what_it_fits(monkeypatch):
    """The fits run largest K first, two at a time: the progress named the smallest K still
    waiting ("Gaussian mixture with 1 phases" for most of the scan)."""
    from napari_sigma.phases import mixture, mixture_scan

    points, _ = blobs(3, n=2000, seed=2)
    for module in (mixture, mixture_scan):  # cluster_phases' and _fits_of's
        monkeypatch.setattr(module, "usable_cores", lambda: 2)
    reports = []
    settings = ClusteringSettings(n_phases="auto", max_phases=5, seed=1)
    run_to_completion(cluster_phases(points, settings), reports.append)
    scan = [r.message for r in reports if r.message.startswith("Gaussian")]
    assert scan[0] == "Gaussian mixtures of 1-5 phases: 0 of 5 fitted"
    assert scan[-1] == "Gaussian mixtures of 1-5 phases: 5 of 5 fitted"
    assert not any("with 1 phases" in message for message in scan)


def test_a_closed_scan_stops_its_fits():
    import threading

    points, _ = blobs(3, n=20000, seed=1)
    scan = cluster_phases(points, ClusteringSettings(n_phases="auto", max_phases=10))
    next(scan)
    scan.close()
    assert not any(t.name.startswith("napari-sigma mixture") for t in threading.enumerate())
