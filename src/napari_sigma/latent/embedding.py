"""The latent space: a 2-D embedding of the per-pixel feature table.

Three methods share one interface, :func:`fit_latent`:

- ``"ae"``: a dense autoencoder trained in torch (SIGMA's method). The whole feature table lives
  as one tensor on the device; mini-batches are index slices of a seeded ``torch.randperm``, so
  there is no per-sample Python work and no DataLoader. Adam runs on one flat parameter buffer
  (:class:`FlatAdam`, the update of ``torch.optim.Adam`` without its ``torch._dynamo`` import).
- ``"pca"``: the leading principal components (exact, from the F x F covariance).
- ``"umap"``: the optional ``umap-learn`` package (``pip install napari-sigma-eds[umap]``).

Defaults (:class:`LatentSettings`) are chosen to train fast to a good embedding: the network is
trained on a random subsample of ``train_pixels`` pixels with large batches and a higher learning
rate, inputs standardised, a linear output layer; then every pixel is encoded.
:meth:`LatentSettings.sigma` reproduces SIGMA's own settings (softmax output, batch 32, Adam
lr 1e-4, 20 epochs over all pixels).

Threading is left to the caller (this module never calls ``torch.set_num_threads``).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from itertools import pairwise
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_sigma.compute.device import configure_fast_math, resolve_device
from napari_sigma.compute.progress import Computation, Progress
from napari_sigma.errors import AnalysisError

if TYPE_CHECKING:
    import torch

STAGE = "latent"
YIELD_INTERVAL_S = 0.25
ENCODE_CHUNK = 65536
LEAKY_SLOPE = 0.02
UMAP_HINT = "UMAP needs the optional package umap-learn: pip install napari-sigma-eds[umap]"


@dataclass(frozen=True)
class LatentSettings:
    """How to compute the latent space.

    Parameters
    ----------
    method : {"ae", "pca", "umap"}
        Autoencoder, principal components, or UMAP.
    dim : int
        Dimension of the latent space (2 for display).
    hidden : tuple of int
        Widths of the encoder's hidden layers; the decoder mirrors them.
    epochs : int
        Passes over the training pixels.
    batch_size : int
        Pixels per optimisation step.
    learning_rate : float
        Adam learning rate.
    train_pixels : int or None
        Train on a random subsample of this many pixels (None = all pixels); all pixels are
        encoded afterwards. Also the fitting subsample of UMAP.
    standardise : bool
        Scale every feature to zero mean and unit variance before training.
    output : {"linear", "softmax"}
        The decoder's output activation (SIGMA uses softmax).
    seed : int
        Seed of the weight initialisation, subsampling and batch order.
    device : {"auto", "cpu", "cuda"}
        Where to train.
    preset : str
        Name of the preset these settings came from (informative only).
    """

    method: str = "ae"
    dim: int = 2
    hidden: tuple[int, ...] = (128, 64, 32)
    epochs: int = 20
    batch_size: int = 2048
    learning_rate: float = 1e-3
    train_pixels: int | None = 20_000
    standardise: bool = True
    output: str = "linear"
    seed: int = 0
    device: str = "auto"
    preset: str = "default"

    @classmethod
    def sigma(cls, **overrides: Any) -> LatentSettings:
        """SIGMA's autoencoder: n-512-256-128-2-128-256-512-n, softmax output, MSE,
        Adam lr 1e-4, batch 32, 20 epochs over all pixels."""
        base = cls(
            method="ae",
            dim=2,
            hidden=(512, 256, 128),
            epochs=20,
            batch_size=32,
            learning_rate=1e-4,
            train_pixels=None,
            standardise=False,
            output="softmax",
            preset="sigma",
        )
        return replace(base, **overrides)


@dataclass
class LatentResult:
    """A computed latent space.

    Parameters
    ----------
    latent : ndarray, shape (N, dim), float32
        One row per input row.
    loss_history : list of float
        Mean training loss per epoch (empty for PCA/UMAP).
    method : str
        The method used.
    device : str
        ``"cpu"`` or ``"cuda"``.
    model : object or None
        The trained :class:`Autoencoder` (on the CPU) or the fitted UMAP object.
    """

    latent: np.ndarray
    loss_history: list[float] = field(default_factory=list)
    method: str = "ae"
    device: str = "cpu"
    model: Any = None


def build_autoencoder(n_features: int, settings: LatentSettings) -> torch.nn.Module:
    """The autoencoder: Linear + LayerNorm + LeakyReLU(0.02) blocks, mirrored decoder.

    Parameters
    ----------
    n_features : int
        Width of the input and of the reconstruction.
    settings : LatentSettings
        ``hidden``, ``dim`` and ``output`` are used.

    Returns
    -------
    torch.nn.Module
        A ``Sequential`` of ``.encoder`` and ``.decoder``, with buffers ``shift`` and ``scale``
        (the input standardisation).
    """
    import torch
    from torch import nn

    def block(n_in: int, n_out: int) -> list[nn.Module]:
        return [nn.Linear(n_in, n_out), nn.LayerNorm(n_out), nn.LeakyReLU(LEAKY_SLOPE)]

    widths = [n_features, *settings.hidden]
    encoder: list[nn.Module] = []
    for n_in, n_out in pairwise(widths):
        encoder += block(n_in, n_out)
    encoder.append(nn.Linear(widths[-1], settings.dim))
    back = [settings.dim, *reversed(settings.hidden)]
    decoder: list[nn.Module] = []
    for n_in, n_out in pairwise(back):
        decoder += block(n_in, n_out)
    decoder.append(nn.Linear(back[-1], n_features))
    if settings.output == "softmax":
        decoder.append(nn.Softmax(dim=1))
    elif settings.output != "linear":
        raise AnalysisError(f"unknown autoencoder output {settings.output!r}")

    model = nn.Sequential(
        OrderedDict(encoder=nn.Sequential(*encoder), decoder=nn.Sequential(*decoder))
    )
    model.register_buffer("shift", torch.zeros(n_features))
    model.register_buffer("scale", torch.ones(n_features))
    return model


def encode(model: torch.nn.Module, features: np.ndarray, device: str = "cpu") -> np.ndarray:
    """Encode features with a trained autoencoder, in large chunks without gradients.

    Parameters
    ----------
    model : torch.nn.Module
        As returned in :attr:`LatentResult.model`.
    features : ndarray, shape (N, F)
        Raw features (the model's own standardisation is applied).
    device : str
        ``"auto"``, ``"cpu"`` or ``"cuda"``.

    Returns
    -------
    ndarray, shape (N, dim), float32
    """
    import torch

    device = resolve_device(device)
    model = model.to(device).eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(features), ENCODE_CHUNK):
            chunk = torch.as_tensor(
                np.ascontiguousarray(features[start : start + ENCODE_CHUNK], dtype=np.float32),
                device=device,
            )
            chunk = (chunk - model.shift) / model.scale
            out.append(model.encoder(chunk).cpu().numpy())
    if not out:
        return np.zeros((0, model.encoder[-1].out_features), np.float32)
    return np.concatenate(out).astype(np.float32, copy=False)


def fit_latent(features: np.ndarray, settings: LatentSettings | None = None) -> Computation:
    """Compute the latent space of a feature table.

    Parameters
    ----------
    features : ndarray, shape (N, F), float32
        One row per pixel.
    settings : LatentSettings, optional
        Defaults to ``LatentSettings()``.

    Yields
    ------
    Progress
        ``stage="latent"``; for the autoencoder one report with ``loss`` after every epoch
        (``step`` = epochs done) and reports without loss at least every 0.25 s in between.

    Returns
    -------
    LatentResult

    Raises
    ------
    AnalysisError
        For an unknown method, too few pixels, non-finite features, or UMAP not installed.
    """
    settings = settings or LatentSettings()
    features = _checked_features(features, settings)
    if settings.method == "ae":
        return (yield from _fit_autoencoder(features, settings))
    if settings.method == "pca":
        yield Progress(STAGE, 0, 1, "principal components")
        return LatentResult(_pca(features, settings.dim), [], "pca", "cpu")
    if settings.method == "umap":
        return (yield from _fit_umap(features, settings))
    raise AnalysisError(f"unknown latent method {settings.method!r}: use 'ae', 'pca' or 'umap'")


def _checked_features(features: np.ndarray, settings: LatentSettings) -> np.ndarray:
    features = np.asarray(features, dtype=np.float32)
    if features.ndim != 2:
        raise AnalysisError(
            f"features must be a 2-D (pixels, features) table, not {features.shape}"
        )
    if len(features) < 2 or features.shape[1] < 1:
        raise AnalysisError(f"need at least 2 pixels and 1 feature, got {features.shape}")
    if settings.dim < 1 or settings.dim > max(features.shape[1], 2):
        raise AnalysisError(f"latent dim {settings.dim} does not fit {features.shape[1]} features")
    if not np.isfinite(features).all():
        raise AnalysisError("features contain NaN or infinite values")
    return features


def _training_rows(n: int, settings: LatentSettings) -> np.ndarray | None:
    """Sorted random subsample of row indices, or None for all rows."""
    if settings.train_pixels is None or settings.train_pixels >= n:
        return None
    rng = np.random.default_rng(settings.seed)
    return np.sort(rng.choice(n, size=settings.train_pixels, replace=False))


def _fit_autoencoder(features: np.ndarray, settings: LatentSettings) -> Computation:
    import torch

    device = resolve_device(settings.device)
    configure_fast_math(device)
    rows = _training_rows(len(features), settings)
    train = torch.as_tensor(features if rows is None else features[rows], device=device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings.seed)
        model = build_autoencoder(features.shape[1], settings).to(device)
    if settings.standardise:
        model.shift.copy_(train.mean(0))
        model.scale.copy_(train.std(0).clamp_min(1e-6))
    train = (train - model.shift) / model.scale
    optimiser = FlatAdam(list(model.parameters()), lr=settings.learning_rate)
    generator = torch.Generator(device=device).manual_seed(settings.seed)
    losses: list[float] = []
    yield Progress(STAGE, 0, settings.epochs, f"training on {len(train)} pixels")
    for epoch in range(settings.epochs):
        loss = yield from _train_epoch(model, optimiser, train, settings, generator, epoch)
        losses.append(loss)
        message = f"epoch {epoch + 1}/{settings.epochs}"
        yield Progress(STAGE, epoch + 1, settings.epochs, message, loss)
    optimiser.release_gradients()
    latent = encode(model, features, device)
    return LatentResult(latent, losses, "ae", device, model.cpu())


class FlatAdam:
    """Adam (Kingma & Ba 2015) over parameters that share one flat buffer.

    The update is element for element the one of ``torch.optim.Adam`` with its defaults
    (betas 0.9/0.999, eps 1e-8, no weight decay; same kernels, so bit-identical weights), but
    runs as five tensor operations on one buffer instead of five per parameter, and never
    touches ``torch.optim``, whose first ``step`` imports ``torch._dynamo`` (measured 1.4 s of
    a 2.7 s training on 2 cores).

    The parameters' data and gradients become views of two flat buffers (``flat``, ``grad``);
    backward accumulates into ``grad`` in place, which :meth:`zero_grad` clears.

    Parameters
    ----------
    params : list of torch.Tensor
        Leaf parameters of one dtype and device; their ``.data`` and ``.grad`` are re-pointed.
    lr : float
        Learning rate.
    betas : tuple of float
        Decay of the first and second moment averages.
    eps : float
        Added to the root of the second moment.
    """

    def __init__(
        self,
        params: list[torch.Tensor],
        lr: float,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        import torch

        self.params = params
        sizes = [p.numel() for p in params]
        self.flat = torch.cat([p.detach().reshape(-1) for p in params])
        self.grad = torch.zeros_like(self.flat)
        for p, data, grad in zip(
            params, self.flat.split(sizes), self.grad.split(sizes), strict=True
        ):
            p.data = data.view_as(p)
            p.grad = grad.view_as(p)
        self.exp_avg = torch.zeros_like(self.flat)
        self.exp_avg_sq = torch.zeros_like(self.flat)
        self.lr, self.betas, self.eps, self.steps = lr, betas, eps, 0

    def zero_grad(self) -> None:
        """Clear the accumulated gradients (in place: they stay views of the flat buffer)."""
        self.grad.zero_()

    def step(self) -> None:
        """One Adam update of every parameter from the accumulated gradients."""
        import torch

        beta1, beta2 = self.betas
        self.steps += 1
        with torch.no_grad():
            self.exp_avg.lerp_(self.grad, 1 - beta1)
            self.exp_avg_sq.mul_(beta2).addcmul_(self.grad, self.grad, value=1 - beta2)
            correction1 = 1 - beta1**self.steps
            correction2 = 1 - beta2**self.steps
            denominator = (self.exp_avg_sq.sqrt() / correction2**0.5).add_(self.eps)
            self.flat.addcdiv_(self.exp_avg, denominator, value=-self.lr / correction1)

    def release_gradients(self) -> None:
        """Drop the gradient views (the parameters keep their flat-buffer data)."""
        for p in self.params:
            p.grad = None


def _train_epoch(
    model: torch.nn.Module,
    optimiser: FlatAdam,
    train: torch.Tensor,
    settings: LatentSettings,
    generator: torch.Generator,
    epoch: int,
) -> Computation:
    """One pass over shuffled batches; returns the mean loss, yields every 0.25 s."""
    import torch

    model.train()
    order = torch.randperm(len(train), generator=generator, device=train.device)
    total = torch.zeros((), device=train.device)
    last_yield = time.perf_counter()
    n_batches = 0
    for start in range(0, len(train), settings.batch_size):
        batch = train[order[start : start + settings.batch_size]]
        loss = torch.nn.functional.mse_loss(model(batch), batch)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        total += loss.detach() * len(batch)
        n_batches += 1
        if time.perf_counter() - last_yield > YIELD_INTERVAL_S:
            message = f"epoch {epoch + 1}/{settings.epochs}, batch {n_batches}"
            yield Progress(STAGE, epoch, settings.epochs, message)
            last_yield = time.perf_counter()
    return float(total) / len(train)


def _pca(features: np.ndarray, dim: int) -> np.ndarray:
    """Projection on the leading principal axes (eigenvectors of the covariance), sign-fixed."""
    data = features.astype(np.float64)
    mean = data.mean(0)
    covariance = np.cov(data - mean, rowvar=False).reshape(data.shape[1], data.shape[1])
    _, vectors = np.linalg.eigh(covariance)
    axes = vectors[:, ::-1][:, :dim]
    axes *= np.sign(axes[np.abs(axes).argmax(0), np.arange(axes.shape[1])])
    latent = (data - mean) @ axes
    if latent.shape[1] < dim:
        latent = np.pad(latent, ((0, 0), (0, dim - latent.shape[1])))
    return latent.astype(np.float32)


def _fit_umap(features: np.ndarray, settings: LatentSettings) -> Computation:
    try:
        import umap
    except ImportError as error:
        raise AnalysisError(UMAP_HINT) from error
    yield Progress(STAGE, 0, 2, "fitting UMAP")
    rows = _training_rows(len(features), settings)
    reducer = umap.UMAP(n_components=settings.dim, random_state=settings.seed)
    reducer.fit(features if rows is None else features[rows])
    yield Progress(STAGE, 1, 2, "embedding all pixels")
    latent = reducer.transform(features) if rows is not None else reducer.embedding_
    return LatentResult(np.asarray(latent, np.float32), [], "umap", "cpu", reducer)
