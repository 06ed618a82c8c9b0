"""Mixed boundary pixels go to the phase with the larger share, not to a look-alike third phase."""

from __future__ import annotations

import numpy as np

from napari_sigma.phases.mixed_pixels import phase_log_likelihood, phase_templates


def _three_phases(rng, n=400, noise=0.5):
    """Training pixels of A (0, 0), C (8, 0) and B (4, 1.5): B looks like a 50/50 A-C mixture."""
    means = np.array([[0.0, 0.0], [4.0, 1.5], [8.0, 0.0]])
    hard = np.repeat([0, 1, 2], n)
    members = means[hard] + rng.normal(0, noise, (3 * n, 2))
    return members, hard


def _log_likelihood(members, hard, pixels, fractions):
    raw = np.concatenate([members, pixels])[None]  # one row of pixels
    mask = np.zeros(raw.shape[:2], dtype=bool)
    mask[0, : len(members)] = True
    return phase_log_likelihood(raw, mask, hard, 3, fractions)[0, len(members) :]


def test_a_boundary_mixture_is_not_given_to_the_phase_between():
    rng = np.random.default_rng(0)
    members, hard = _three_phases(rng)
    pixels = np.array([[4.0, 0.0], [2.4, 0.0], [5.6, 0.0]])  # A-C 50/50, 70/30, 30/70
    mixed = _log_likelihood(members, hard, pixels, (0.5, 0.6, 0.7, 0.8, 0.9)).argmax(axis=1)
    pure = _log_likelihood(members, hard, pixels, ()).argmax(axis=1)
    assert mixed[0] in (0, 2) and mixed[1] == 0 and mixed[2] == 2
    assert pure[0] == 1  # pure phases only: the 50/50 rim pixel becomes B


def test_pure_pixels_keep_their_phase():
    rng = np.random.default_rng(1)
    members, hard = _three_phases(rng)
    test_members, test_hard = _three_phases(rng, n=200)
    labels = _log_likelihood(members, hard, test_members, (0.5, 0.7, 0.9)).argmax(axis=1)
    assert np.mean(labels == test_hard) > 0.97


def test_anscombe_templates_mix_counts_not_square_roots():
    rng = np.random.default_rng(2)
    rates = np.array([[400.0, 5.0], [4.0, 300.0]])  # two phases, two lines, very different
    hard = np.repeat([0, 1], 5000)
    members = np.sqrt(rng.poisson(rates[hard]) + 0.375)
    templates = phase_templates(members, hard, 2, (0.5, 0.8), space="anscombe")
    for row, share in ((1, 0.5), (2, 0.8)):  # phase 0 with phase 1 at these shares
        mixed = np.sqrt(rng.poisson(share * rates[0] + (1 - share) * rates[1], (20000, 2)) + 0.375)
        np.testing.assert_allclose(templates[0, row], mixed.mean(axis=0), atol=0.02)
    linear = phase_templates(members, hard, 2, (0.5,), space="linear")
    assert abs(linear[0, 1, 0] - templates[0, 1, 0]) > 0.5  # mixing square roots would be wrong


def test_a_phase_without_training_pixels_is_never_chosen():
    rng = np.random.default_rng(3)
    members, hard = _three_phases(rng)
    hard = np.where(hard == 1, 0, hard)  # phase 1 has no training pixels left
    log_likelihood = _log_likelihood(members, hard, members[:5], (0.5,))
    assert np.all(np.isneginf(log_likelihood[:, 1]))
    assert np.all(np.isfinite(log_likelihood[:, [0, 2]]))


def _serial_template_log_likelihood(raw, templates, whitening, chunk_pixels):
    """The block loop of ``template_log_likelihood``'s CPU path on one thread, written out
    with the same numpy calls (the pin: numpy's matmul is OpenBLAS's, whose bits torch's
    addmm need not share on every CPU)."""
    n_phases, per_phase, n_features = templates.shape
    flat_templates = templates.reshape(-1, n_features).astype(np.float64)
    center = flat_templates.mean(axis=0)
    inverse = np.linalg.inv(np.asarray(whitening, dtype=np.float64))
    white = (flat_templates - center) @ inverse.T
    weights, norms = -2.0 * white.T, np.einsum("ij,ij->i", white, white)
    project = inverse.T.copy()
    flat = np.ascontiguousarray(raw.reshape(-1, n_features))
    out = np.empty((flat.shape[0], n_phases), dtype=np.float64)
    for start in range(0, flat.shape[0], chunk_pixels):
        block = (np.asarray(flat[start : start + chunk_pixels], np.float64) - center) @ project
        distance = block @ weights
        distance += norms
        nearest = np.min(distance.reshape(len(block), n_phases, per_phase), axis=2)
        nearest += np.sum(block * block, axis=1, keepdims=True)
        nearest *= -0.5
        out[start : start + len(block)] = nearest
    return out.reshape(*raw.shape[:2], n_phases)


def test_template_distances_on_threads_are_those_of_one_thread(monkeypatch):
    """The blocks run on every core (threaded_map), each by the same calls: the same bits as
    the serial loop, whichever thread took which block (a tail block included)."""
    from napari_sigma.compute.blocks import threaded_map, worker_threads
    from napari_sigma.phases import mixed_pixels

    workers_asked = []

    def recorded(function, items, workers=None):
        workers_asked.append(workers)
        return threaded_map(function, items, workers)

    monkeypatch.setattr(mixed_pixels, "threaded_map", recorded)
    rng = np.random.default_rng(4)
    members, hard = _three_phases(rng, n=300)
    templates = phase_templates(members, hard, 3, (0.5, 0.7, 0.9))
    raw = rng.normal(4.0, 3.0, (37, 101, 2))  # 3737 pixels: 14 blocks of 256 and a tail
    chol = np.linalg.cholesky(np.cov(members.T) + 1e-3 * np.eye(2))
    expected = _serial_template_log_likelihood(raw, templates, chol, 256)
    for threads in (1, 2, 3):
        with worker_threads(threads):
            got = mixed_pixels.template_log_likelihood(raw, templates, chol, "cpu", 256)
        assert np.array_equal(got, expected)
    assert workers_asked == [None, None, None]  # the CPU path takes every usable core
