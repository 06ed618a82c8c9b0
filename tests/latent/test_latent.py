"""Tests of the latent space: autoencoder, PCA, UMAP hint, progress and cancellation."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.metrics import adjusted_rand_score

from napari_sigma.compute.progress import Progress, run_to_completion
from napari_sigma.errors import AnalysisError
from napari_sigma.latent.embedding import LatentResult, LatentSettings, encode, fit_latent

SMALL = LatentSettings(hidden=(64, 32), epochs=12, batch_size=256, train_pixels=2000, device="cpu")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def clusters() -> tuple[np.ndarray, np.ndarray]:
    """Four well-separated Poisson clusters in 8 features, 3000 pixels."""
    rng = np.random.default_rng(3)
    centres = rng.gamma(2.0, 10.0, size=(4, 8))
    labels = rng.integers(0, 4, 3000)
    return rng.poisson(centres[labels]).astype(np.float32), labels


def test_autoencoder_separates_clusters(clusters):
    features, truth = clusters
    result = run_to_completion(fit_latent(features, SMALL))
    assert isinstance(result, LatentResult)
    assert result.latent.shape == (3000, 2) and result.latent.dtype == np.float32
    assert len(result.loss_history) == SMALL.epochs
    assert result.loss_history[-1] < result.loss_history[0]
    found = KMeans(4, n_init=4, random_state=0).fit_predict(result.latent)
    assert adjusted_rand_score(truth, found) > 0.95


def test_autoencoder_is_deterministic_on_cpu(clusters):
    features, _ = clusters
    settings = LatentSettings(hidden=(32, 16), epochs=2, batch_size=128, device="cpu")
    first = run_to_completion(fit_latent(features, settings))
    second = run_to_completion(fit_latent(features, settings))
    np.testing.assert_array_equal(first.latent, second.latent)
    assert first.loss_history == second.loss_history


def test_encode_reproduces_the_latent(clusters):
    features, _ = clusters
    settings = LatentSettings(hidden=(32, 16), epochs=1, batch_size=512, device="cpu")
    result = run_to_completion(fit_latent(features, settings))
    np.testing.assert_allclose(encode(result.model, features, "cpu"), result.latent, atol=1e-5)


def test_progress_reports_every_epoch(clusters):
    features, _ = clusters
    settings = LatentSettings(hidden=(32, 16), epochs=3, batch_size=512, device="cpu")
    reports = []
    run_to_completion(fit_latent(features, settings), reports.append)
    assert all(isinstance(r, Progress) and r.stage == "latent" for r in reports)
    epoch_reports = [r for r in reports if r.loss is not None]
    assert [r.step for r in epoch_reports] == [1, 2, 3]
    assert all(r.total == 3 for r in epoch_reports)


def test_closing_mid_training_leaves_no_state(clusters):
    features, _ = clusters
    rng_state = torch.random.get_rng_state()
    computation = fit_latent(features, LatentSettings(hidden=(32, 16), epochs=50, device="cpu"))
    report = next(computation)
    while report.loss is None:
        report = next(computation)
    assert report.step == 1
    computation.close()
    with pytest.raises(StopIteration):
        next(computation)
    assert torch.equal(torch.random.get_rng_state(), rng_state)


def test_pca_matches_sklearn(clusters):
    features, _ = clusters
    settings = LatentSettings(method="pca", dim=2)
    result = run_to_completion(fit_latent(features, settings))
    reference = PCA(2).fit_transform(features.astype(np.float64))
    assert result.method == "pca" and result.latent.shape == (3000, 2)
    for axis in range(2):
        correlation = np.corrcoef(result.latent[:, axis], reference[:, axis])[0, 1]
        assert abs(correlation) > 0.9999


def test_sigma_preset_reproduces_sigma():
    settings = LatentSettings.sigma()
    assert (settings.hidden, settings.dim, settings.output) == ((512, 256, 128), 2, "softmax")
    assert (settings.batch_size, settings.learning_rate, settings.epochs) == (32, 1e-4, 20)
    assert settings.train_pixels is None and not settings.standardise
    assert LatentSettings.sigma(epochs=3).epochs == 3


def test_softmax_output_trains(clusters):
    features, _ = clusters
    normalised = features / features.sum(1, keepdims=True)
    settings = LatentSettings.sigma(hidden=(32, 16), epochs=1, batch_size=256, device="cpu")
    result = run_to_completion(fit_latent(normalised[:500], settings))
    assert np.isfinite(result.latent).all() and result.latent.shape == (500, 2)


def test_umap_missing_raises_install_hint(clusters, monkeypatch):
    monkeypatch.setitem(sys.modules, "umap", None)
    with pytest.raises(AnalysisError, match=r"pip install napari-sigma-eds\[umap\]"):
        run_to_completion(fit_latent(clusters[0], LatentSettings(method="umap")))


def test_bad_input_is_refused():
    with pytest.raises(AnalysisError):
        run_to_completion(fit_latent(np.full((10, 3), np.nan, np.float32)))
    with pytest.raises(AnalysisError):
        run_to_completion(fit_latent(np.ones((10, 3), np.float32), LatentSettings(method="tsne")))


def test_flat_adam_gives_the_weights_of_torch_adam_bit_for_bit():
    from napari_sigma.latent.embedding import FlatAdam, build_autoencoder

    data = torch.as_tensor(np.random.default_rng(5).normal(size=(512, 6)), dtype=torch.float32)
    weights = []
    for kind in ("torch", "flat"):
        torch.manual_seed(0)
        model = build_autoencoder(6, LatentSettings(hidden=(16, 8)))
        params = list(model.parameters())
        initial = torch.cat([p.detach().reshape(-1) for p in params])
        optimiser = torch.optim.Adam(params, lr=1e-2) if kind == "torch" else FlatAdam(params, 1e-2)
        for step in range(12):
            batch = data[step % 4 * 128 : (step % 4 + 1) * 128]
            loss = torch.nn.functional.mse_loss(model(batch), batch)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        weights.append(torch.cat([p.detach().reshape(-1) for p in model.parameters()]))
        assert (weights[-1] - initial).abs().max() > 1e-3  # training moved the weights
    assert torch.equal(weights[0], weights[1])


def test_flat_adam_keeps_parameters_and_gradients_as_views_of_its_buffers():
    from napari_sigma.latent.embedding import FlatAdam

    first, second = torch.nn.Parameter(torch.ones(3, 2)), torch.nn.Parameter(torch.zeros(4))
    optimiser = FlatAdam([first, second], lr=0.1)
    (first.sum() * 2 + second.sum()).backward()
    np.testing.assert_array_equal(optimiser.grad.numpy(), [2.0] * 6 + [1.0] * 4)
    optimiser.step()  # Adam's first step moves every weight by lr against its gradient's sign
    np.testing.assert_allclose(first.detach().numpy(), np.full((3, 2), 0.9), rtol=1e-6)
    np.testing.assert_allclose(optimiser.flat.numpy()[6:], -0.1, rtol=1e-6)
    optimiser.zero_grad()
    assert float(first.grad.abs().sum()) == 0.0
    optimiser.release_gradients()
    assert first.grad is None and second.grad is None


def test_training_does_not_import_torch_dynamo():
    """torch.optim's first step imports torch._dynamo (1.4 s); the autoencoder avoids it."""
    import subprocess

    script = (
        "import sys, numpy as np\n"
        "from napari_sigma.latent.embedding import LatentSettings, fit_latent\n"
        "from napari_sigma.compute.progress import run_to_completion\n"
        "x = np.random.default_rng(0).normal(size=(300, 4)).astype(np.float32)\n"
        "s = LatentSettings(hidden=(8,), epochs=1, batch_size=100, device='cpu')\n"
        "run_to_completion(fit_latent(x, s))\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "False"
