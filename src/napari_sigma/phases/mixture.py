"""Phases as a Gaussian mixture in the latent space.

Two backends fit the same model: ``"torch"`` (EM in float64, k-means++ seeding followed by a few
Lloyd steps; with torch on CUDA when there is one, with numpy on the CPU, so that a CPU run does
not import torch) and ``"sklearn"`` (``GaussianMixture``, the reference).
Both give the mixture as arrays; everything after the fit (posteriors, criteria, merging, labels)
is shared code.

Choosing the number of phases (``ClusteringSettings.criterion``):

- ``"bic"``: the K of lowest BIC (SIGMA). On real data BIC usually keeps falling (phases are not
  Gaussian blobs) and lands on ``max_phases``.
- ``"bic_knee"`` (default): the smallest K whose BIC lies within ``knee_fraction`` of the whole
  improvement from ``min_phases`` to the best K: it stops where more components only refine shapes.
- ``"merge"``: fit the BIC-best K, then greedily merge the pair of components whose posteriors
  overlap most (entropy criterion of Baudry et al. 2010, per point of the smaller group) while
  that overlap exceeds ``merge_threshold``. A phase may then be a mixture of several Gaussians,
  which suits elongated or curved clusters.

With ``"auto"``, the K the criterion takes and its neighbours get ``restarts`` more starts (the
best likelihood kept, :func:`~napari_sigma.phases.mixture_scan._restarted_fits`), so that the
chosen K does not hang on one start's luck (the seed).

The mixture is fitted on at most ``fit_points`` points (a seeded subsample, scaled to unit
variance for stability), then every point is assigned. Phases are numbered 1..K by decreasing
number of points; label 0 marks points below ``min_probability``.

The parts are in their own modules: :mod:`~napari_sigma.phases.mixture_scan` (the scan over K on
a thread per core, the restarts), :mod:`~napari_sigma.phases.mixture_fit` (the fit of one K: EM
from a k-means++ seeding, or scikit-learn's), :mod:`~napari_sigma.phases.mixture_choice` (BIC,
the knee rule, merging components) and :mod:`~napari_sigma.phases.gaussians` (:class:`Mixture`
and the likelihood helpers: densities, M-step, posteriors); this module holds the settings, the
result and the entry points.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from napari_sigma.compute.blocks import usable_cores
from napari_sigma.compute.progress import Computation, Progress, run_to_completion
from napari_sigma.errors import AnalysisError
from napari_sigma.phases.gaussians import (  # noqa: F401
    PREDICT_CHUNK,
    Mixture,
    _phase_probabilities,
    _PreparedPoints,
    _unscaled,
)
from napari_sigma.phases.mixture_choice import (  # noqa: F401
    _select,
    bic,
    bic_of,
    knee_k,
    merge_components,
)
from napari_sigma.phases.mixture_fit import (  # noqa: F401
    LLOYD_STEPS,
    YIELD_INTERVAL_S,
    _fit_one,
    _fit_torch,
    torch_generator,
)
from napari_sigma.phases.mixture_scan import (  # noqa: F401
    SHORT_RUN_TOLERANCE,
    STAGE,
    _fits_in_threads,
    _fits_of,
    _restarted_fits,
)

# the moved names stay importable from here (Mixture, bic, bic_of, knee_k, merge_components,
# torch_generator, ...); patch or change them in their own modules


CRITERIA = ("bic", "bic_knee", "merge")


RESTART_MESSAGE = "More starts of the mixtures near the chosen number of phases"


@dataclass(frozen=True)
class ClusteringSettings:
    """How to find phases in the latent space.

    Parameters
    ----------
    n_phases : int or "auto"
        A fixed number of phases, or choose it with ``criterion``.
    max_phases, min_phases : int
        The range of K scanned by ``"auto"``.
    covariance : {"full", "diag"}
        Covariance type of every component.
    criterion : {"bic_knee", "bic", "merge"}
        The rule choosing K (see the module docstring).
    knee_fraction : float
        ``"bic_knee"``: tolerated BIC excess over the best, as a fraction of the total improvement.
    merge_threshold : float
        ``"merge"``: merge while the normalised entropy gain of the best pair exceeds this (nats).
    min_probability : float or None
        Points whose highest phase probability is below this get label 0.
    fit_points : int or None
        Fit on a random subsample of at most this many points (None = all).
    seed : int
        Seed of the subsample and of the initialisation.
    device : {"auto", "cpu", "cuda"}
        Device of the torch backend.
    backend : {"torch", "sklearn"}
        Who fits the mixture.
    n_init : int
        Initialisations per K; the best likelihood is kept.
    restarts : int
        ``"auto"`` (torch): more starts for the K the criterion takes and its neighbours, the
        best likelihood kept (0: none; see
        :func:`~napari_sigma.phases.mixture_scan._restarted_fits`).
    restart_points : int
        The restarts are explored on at most this many of the fitted points (a seeded
        subsample), the best polished on all of them.
    max_iter : int
        EM iterations at most.
    tol : float
        Convergence threshold on the change of the mean log-likelihood per point.
    """

    n_phases: int | str = "auto"
    max_phases: int = 12
    min_phases: int = 1
    covariance: str = "full"
    criterion: str = "bic_knee"
    knee_fraction: float = 0.02
    merge_threshold: float = 0.05
    min_probability: float | None = None
    fit_points: int | None = 100_000
    seed: int = 0
    device: str = "auto"
    backend: str = "torch"
    n_init: int = 1
    restarts: int = 20
    restart_points: int = 4096
    max_iter: int = 200
    tol: float = 1e-3


@dataclass
class ClusteringResult:
    """Phases found in the latent space.

    Parameters
    ----------
    labels : ndarray, shape (N,), int32
        Phase 1..K of every point, 0 where the probability is below ``min_probability``.
    probabilities : ndarray, shape (N, K), float32
        Posterior probability of every phase (column k-1 = phase k).
    n_phases : int
        K.
    means : ndarray, shape (K, d)
        Mean of every phase.
    covariances : ndarray, shape (K, d, d)
        Covariance of every phase (moment-matched when a phase holds several components).
    criterion : dict of int to float
        The model-selection criterion per scanned K (empty for a fixed K).
    criterion_name : str
        Name of the criterion values (``"bic"``) and the rule that chose K, e.g. ``"bic_knee"``.
    weights : ndarray, shape (K,)
        Mixing weight of every phase.
    mixture : Mixture
        The components, for :func:`predict`.
    min_probability : float or None
        The threshold used for label 0.
    """

    labels: np.ndarray
    probabilities: np.ndarray
    n_phases: int
    means: np.ndarray
    covariances: np.ndarray
    criterion: dict[int, float] = field(default_factory=dict)
    criterion_name: str = "bic"
    weights: np.ndarray | None = None
    mixture: Mixture | None = None
    min_probability: float | None = None


def cluster_phases(points: np.ndarray, settings: ClusteringSettings | None = None) -> Computation:
    """Fit a Gaussian mixture to the points and label every point with its phase.

    Parameters
    ----------
    points : ndarray, shape (N, d)
        The latent coordinates (or any features).
    settings : ClusteringSettings, optional
        Defaults to ``ClusteringSettings()``.

    Yields
    ------
    Progress
        ``stage="clustering"``, at least every 0.25 s; ``step`` counts the fitted K.

    Returns
    -------
    ClusteringResult

    Raises
    ------
    AnalysisError
        For unknown settings, non-finite points or fewer points than phases.
    """
    settings = settings or ClusteringSettings()
    points = _checked_points(points, settings)
    fit = _fit_subsample(points, settings)
    center, scale = fit.mean(0), float(fit.std()) or 1.0
    scaled = (fit - center) / scale
    candidates = _candidate_ks(settings, len(fit))
    # the points and their outer products are the same for every K: prepared once
    torch_fit = settings.backend == "torch" and len(candidates) > 1
    prepared = _PreparedPoints(scaled, settings.device, len(scaled)) if torch_fit else None
    fits = yield from _scanned_fits(scaled, candidates, settings, prepared)
    if settings.n_phases == "auto" and settings.restarts > 0 and prepared is not None:
        progress = Progress(STAGE, len(candidates), len(candidates) + 1, RESTART_MESSAGE)
        restarted = _restarted_fits(scaled, fits, settings, prepared)
        fits = yield from _with_progress(restarted, progress)
    mixtures, scores = _unscaled_with_bic(fits, candidates, fit, center, scale, settings)
    del prepared
    yield Progress(STAGE, len(candidates), len(candidates) + 1, "assigning phases")
    mixture, rule = _select(mixtures, scores, fit, settings)
    criterion = scores if settings.n_phases == "auto" else {}
    return _result(points, mixture, criterion, rule, settings.min_probability, settings.device)


def _scanned_fits(scaled, candidates, settings: ClusteringSettings, prepared) -> Computation[dict]:
    """``{k: (mixture, mean log-likelihood or None)}`` of every candidate K on the scaled
    points: two at a time on a CPU of several cores, else one after the other."""
    if prepared is not None and prepared.on_cpu and usable_cores() > 1:
        # the fits of the K are independent: two at a time, one per core (the same results)
        return (yield from _fits_in_threads(scaled, candidates, settings, prepared))
    fits = {}
    for step, k in enumerate(candidates):
        message = f"Gaussian mixture with {k} phase{'s' if k > 1 else ''}"
        progress = Progress(STAGE, step, len(candidates) + 1, message)
        fitted = _fit_one(scaled, k, settings, prepared)
        fits[k] = yield from _with_progress(fitted, progress)
    return fits


def _unscaled_with_bic(fits, candidates, fit, center, scale, settings: ClusteringSettings):
    """``(mixtures, scores)``: every K's mixture in the points' own units and its BIC (from
    EM's own likelihood where the fit gives it, else computed on the points)."""
    mixtures: dict[int, Mixture] = {}
    scores: dict[int, float] = {}
    scored = None
    for k in candidates:
        mixture, mean_log_likelihood = fits[k]
        mixtures[k] = _unscaled(mixture, center, scale)
        if mean_log_likelihood is not None:  # EM's own likelihood of the mixture, unscaled
            total = len(fit) * (mean_log_likelihood - fit.shape[1] * math.log(scale))
            scores[k] = bic_of(total, len(fit), fit.shape[1], k, settings.covariance)
        else:
            if scored is None and len(candidates) > 1:
                scored = _PreparedPoints(fit, "auto")
            scores[k] = bic(fit, mixtures[k], settings.covariance, scored)
    return mixtures, scores


def predict_probabilities(points: np.ndarray, result: ClusteringResult) -> np.ndarray:
    """Phase probabilities ``(N, K)`` float32 of new points under a fitted result."""
    mixture = _require_mixture(result)
    return _phase_probabilities(np.asarray(points, np.float64), mixture, "auto")


def predict(points: np.ndarray, result: ClusteringResult) -> np.ndarray:
    """Phase labels ``(N,)`` int32 (1..K, 0 below the result's ``min_probability``) of new points."""
    return _labels(predict_probabilities(points, result), result.min_probability)


def split_phase(points: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Split a set of points in ``n`` groups with an ``n``-component Gaussian mixture.

    Parameters
    ----------
    points : ndarray, shape (M, d)
        The points of one phase.
    n : int
        Number of parts (>= 1).
    seed : int
        Seed of the initialisation.

    Returns
    -------
    ndarray, shape (M,), int32
        Part 0..n-1 of every point, numbered by decreasing size.
    """
    settings = ClusteringSettings(n_phases=n, seed=seed, fit_points=None, device="cpu")
    result = run_to_completion(cluster_phases(points, settings))
    return (result.probabilities.argmax(1)).astype(np.int32)


# ----------------------------------------------------------------------------- checks and setup


def _checked_points(points: np.ndarray, settings: ClusteringSettings) -> np.ndarray:
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or len(points) == 0:
        raise AnalysisError(f"points must be a non-empty (N, d) table, not shape {points.shape}")
    if not np.isfinite(points).all():
        raise AnalysisError("points contain NaN or infinite values")
    if settings.backend not in ("torch", "sklearn"):
        raise AnalysisError(f"unknown clustering backend {settings.backend!r}")
    if settings.covariance not in ("full", "diag"):
        raise AnalysisError(f"unknown covariance type {settings.covariance!r}")
    if settings.criterion not in CRITERIA:
        raise AnalysisError(f"unknown criterion {settings.criterion!r}: use one of {CRITERIA}")
    fixed = settings.n_phases
    if fixed != "auto" and (not isinstance(fixed, int | np.integer) or fixed < 1):
        raise AnalysisError(f"n_phases must be 'auto' or a positive integer, not {fixed!r}")
    smallest = settings.min_phases if fixed == "auto" else int(fixed)
    if len(points) < max(smallest, 2):
        raise AnalysisError(f"{len(points)} points cannot make {smallest} phases")
    return points


def _fit_subsample(points: np.ndarray, settings: ClusteringSettings) -> np.ndarray:
    chosen = fit_subsample_index(len(points), settings)
    return points if chosen is None else points[chosen]


def fit_subsample_index(n_points: int, settings: ClusteringSettings) -> np.ndarray | None:
    """Sorted indices of the points a mixture is fitted on (None: all ``n_points`` of them).

    At most ``settings.fit_points``, drawn without replacement with ``settings.seed``.
    """
    if settings.fit_points is None or n_points <= settings.fit_points:
        return None
    rng = np.random.default_rng(settings.seed)
    return np.sort(rng.choice(n_points, settings.fit_points, replace=False))


def _candidate_ks(settings: ClusteringSettings, n_points: int) -> list[int]:
    if settings.n_phases != "auto":
        return [int(settings.n_phases)]
    top = min(settings.max_phases, n_points - 1)
    if top < settings.min_phases:
        raise AnalysisError(f"cannot scan {settings.min_phases}..{settings.max_phases} phases")
    return list(range(max(settings.min_phases, 1), top + 1))


def _with_progress(inner: Computation, report: Progress) -> Computation:
    """Relay an inner generator's ticks as ``report`` and return its value."""
    while True:
        try:
            next(inner)
        except StopIteration as stop:
            return stop.value
        yield report


# ----------------------------------------------------------------------------- the result


def _labels(probabilities: np.ndarray, min_probability: float | None) -> np.ndarray:
    labels = (probabilities.argmax(1) + 1).astype(np.int32)
    if min_probability is not None:
        labels[probabilities.max(1) < min_probability] = 0
    return labels


def _require_mixture(result: ClusteringResult) -> Mixture:
    if result.mixture is None:
        raise AnalysisError("this clustering result holds no mixture to predict with")
    return result.mixture


def _result(
    points: np.ndarray,
    mixture: Mixture,
    criterion: dict[int, float],
    rule: str,
    min_probability: float | None,
    device: str,
) -> ClusteringResult:
    probabilities = _phase_probabilities(points, mixture, device)
    counts = np.bincount(probabilities.argmax(1), minlength=probabilities.shape[1])
    order = np.argsort(-counts, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    mixture = Mixture(mixture.weights, mixture.means, mixture.covariances, rank[mixture.groups])
    probabilities = probabilities[:, order]
    weights, means, covariances = _phase_moments(mixture)
    return ClusteringResult(
        labels=_labels(probabilities, min_probability),
        probabilities=probabilities,
        n_phases=probabilities.shape[1],
        means=means,
        covariances=covariances,
        criterion={int(k): float(v) for k, v in criterion.items()},
        criterion_name=rule,
        weights=weights,
        mixture=mixture,
        min_probability=min_probability,
    )


def _phase_moments(mixture: Mixture) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weight, mean and covariance of every phase (moment-matched over its components)."""
    n_phases = int(mixture.groups.max()) + 1
    d = mixture.means.shape[1]
    weights = np.zeros(n_phases)
    means = np.zeros((n_phases, d))
    covariances = np.zeros((n_phases, d, d))
    for phase in range(n_phases):
        members = mixture.groups == phase
        w = mixture.weights[members]
        weights[phase] = w.sum()
        means[phase] = w @ mixture.means[members] / w.sum()
        offsets = mixture.means[members] - means[phase]
        spread = mixture.covariances[members] + offsets[:, :, None] * offsets[:, None, :]
        covariances[phase] = np.tensordot(w, spread, axes=1) / w.sum()
    return weights, means, covariances
