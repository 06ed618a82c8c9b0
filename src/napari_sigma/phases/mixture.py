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
best likelihood kept, :func:`_restarted_fits`), so that the chosen K does not hang on one start's
luck (the seed).

The mixture is fitted on at most ``fit_points`` points (a seeded subsample, scaled to unit
variance for stability), then every point is assigned. Phases are numbered 1..K by decreasing
number of points; label 0 marks points below ``min_probability``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

from napari_sigma.compute.arrays import host, namespace
from napari_sigma.compute.blocks import usable_cores
from napari_sigma.compute.device import resolve_device
from napari_sigma.compute.progress import Computation, Progress, run_to_completion
from napari_sigma.errors import AnalysisError

if TYPE_CHECKING:
    from napari_sigma.compute.torch_draws import TorchCpuDraws

STAGE = "clustering"
CRITERIA = ("bic", "bic_knee", "merge")
YIELD_INTERVAL_S = 0.25
PREDICT_CHUNK = 1 << 18
LLOYD_STEPS = 10
#: The restarts' short EM runs stop at this multiple of the tolerance (em-EM, see _restarted_fits).
SHORT_RUN_TOLERANCE = 10.0
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
        best likelihood kept (0: none; see :func:`_restarted_fits`).
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
class Mixture:
    """A fitted Gaussian mixture in the units of the input points.

    ``groups[m]`` is the phase index (0-based) of component ``m``; without merging it is the
    identity.
    """

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    groups: np.ndarray

    @property
    def n_components(self) -> int:
        """Number of Gaussian components."""
        return len(self.weights)


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
    mixtures: dict[int, Mixture] = {}
    scores: dict[int, float] = {}
    # the points and their outer products are the same for every K: prepared once
    torch_fit = settings.backend == "torch" and len(candidates) > 1
    prepared = _PreparedPoints(scaled, settings.device, len(scaled)) if torch_fit else None
    scored = None
    if prepared is not None and prepared.on_cpu and usable_cores() > 1:
        # the fits of the K are independent: two at a time, one per core (the same results)
        fits = yield from _fits_in_threads(scaled, candidates, settings, prepared)
    else:
        fits = {}
        for step, k in enumerate(candidates):
            message = f"Gaussian mixture with {k} phase{'s' if k > 1 else ''}"
            progress = Progress(STAGE, step, len(candidates) + 1, message)
            fitted = _fit_one(scaled, k, settings, prepared)
            fits[k] = yield from _with_progress(fitted, progress)
    if settings.n_phases == "auto" and settings.restarts > 0 and prepared is not None:
        progress = Progress(STAGE, len(candidates), len(candidates) + 1, RESTART_MESSAGE)
        restarted = _restarted_fits(scaled, fits, settings, prepared)
        fits = yield from _with_progress(restarted, progress)
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
    del prepared, scored
    yield Progress(STAGE, len(candidates), len(candidates) + 1, "assigning phases")
    mixture, rule = _select(mixtures, scores, fit, settings)
    criterion = scores if settings.n_phases == "auto" else {}
    return _result(points, mixture, criterion, rule, settings.min_probability, settings.device)


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


def bic(
    points: np.ndarray,
    mixture: Mixture,
    covariance: str = "full",
    prepared: _PreparedPoints | None = None,
) -> float:
    """Bayesian information criterion of a mixture on points (lower is better).

    ``prepared``: the same points as tensors with their outer products (:class:`_PreparedPoints`),
    when several mixtures are scored on them.
    """
    n, d = points.shape
    log_likelihood = _total_log_likelihood(points, mixture, prepared)
    return bic_of(log_likelihood, n, d, mixture.n_components, covariance)


def bic_of(log_likelihood: float, n: int, d: int, k: int, covariance: str = "full") -> float:
    """BIC of a ``k``-component mixture in ``d`` dimensions of total log-likelihood
    ``log_likelihood`` on ``n`` points."""
    covariance_params = k * d * (d + 1) / 2 if covariance == "full" else k * d
    n_params = (k - 1) + k * d + covariance_params
    return float(-2.0 * log_likelihood + n_params * math.log(n))


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


# ----------------------------------------------------------------------------- fitting


class _PreparedPoints:
    """Points as float64 arrays on a device (numpy on the CPU, torch tensors on CUDA), in
    chunks of ``chunk`` rows, with their outer products (:func:`_outer_products`): computed
    once for all the mixtures fitted to or scored on the same points (the same values as
    computing them for each mixture)."""

    def __init__(self, points: np.ndarray, device: str, chunk: int = PREDICT_CHUNK) -> None:
        device = resolve_device(device)
        self.device = str(device)
        self.chunks = []
        for start in range(0, len(points), max(chunk, 1)):
            part = _as_float64(points[start : start + chunk], device)
            self.chunks.append((part, _outer_products(part)))
        self.seedings: dict[int, dict] = {}  # k-means++ seeding per seed (see _kmeans_labels)
        self.on_cpu = self.device == "cpu"


def _as_float64(values, device: str):
    """``values`` as float64: a numpy array on the CPU, a torch tensor on another device."""
    if device == "cpu":
        return np.asarray(values, dtype=np.float64)
    import torch

    return torch.as_tensor(values, device=device).to(torch.float64)


def _fits_in_threads(
    scaled: np.ndarray, candidates: list[int], settings: ClusteringSettings, prepared
) -> Computation[dict]:
    """`_fit_one` of every K, run by a thread per core; ``{k: (mixture, mean log-likelihood)}``.

    Each fit starts from the k-means++ seeding the sequential scan would give it (the seeding
    of K continues that of K - 1 draw for draw: made here first, in order, for every K), and
    runs the same torch calls on its own thread, so the results are those of the scan in
    order. Yields every ``YIELD_INTERVAL_S``; closing the generator stops the fits at their
    next step.
    """
    import copy

    seeds = [settings.seed + 1000 * attempt for attempt in range(settings.n_init)]
    (points, _), *_ = prepared.chunks
    seedings: dict[int, dict[int, dict]] = {k: {} for k in candidates}
    for seed in seeds:
        generator = torch_generator(seed)
        so_far = prepared.seedings.setdefault(seed, {})
        for k in sorted(candidates):
            _seeded_centers(points, k, generator, so_far)
            seedings[k][seed] = dict(so_far)  # tensors are replaced, never changed in place
    total = len(candidates) + 1
    yield Progress(STAGE, 0, total, _scan_message(candidates, 0))

    def fit(k: int):
        own = copy.copy(prepared)
        own.seedings = seedings[k]
        return _fit_one(scaled, k, settings, own)

    order = sorted(candidates, reverse=True)  # the largest K (the longest fits) first
    values = yield from _fits_of(
        [fit(k) for k in order],
        True,
        lambda done: Progress(STAGE, done, total, _scan_message(candidates, done)),
    )
    return dict(zip(order, values, strict=True))


def _scan_message(candidates, fitted: int) -> str:
    """What the parallel scan does: the fits run two at a time, the largest numbers first."""
    low, high = min(candidates), max(candidates)
    return f"Gaussian mixtures of {low}-{high} phases: {fitted} of {len(candidates)} fitted"


def torch_generator(seed: int):
    """The draws of a CPU torch random generator seeded with ``seed``, made by numpy
    (:class:`~napari_sigma.compute.torch_draws.TorchCpuDraws`: the same numbers, torch not
    needed for them)."""
    from napari_sigma.compute.torch_draws import TorchCpuDraws

    return TorchCpuDraws(seed)


def _fit_one(
    scaled: np.ndarray,
    k: int,
    settings: ClusteringSettings,
    prepared: _PreparedPoints | None = None,
) -> Computation:
    """Fit a k-component mixture to standardised points (a generator ticking every 0.25 s).

    Returns (mixture, mean log-likelihood per point of that mixture on ``scaled``, or None
    when the fit did not compute it: sklearn, or EM stopped by ``max_iter``).
    """
    if settings.backend == "sklearn":
        return _fit_sklearn(scaled, k, settings), None
    best: Mixture | None = None
    best_ll, best_own = -np.inf, None
    for attempt in range(settings.n_init):
        seed = settings.seed + 1000 * attempt
        mixture, ll, converged = yield from _fit_torch(scaled, k, settings, seed, prepared)
        if ll > best_ll:
            best, best_ll, best_own = mixture, ll, (ll if converged else None)
    return best, best_own


def _restarted_fits(
    scaled: np.ndarray, fits: dict, settings: ClusteringSettings, prepared: _PreparedPoints
) -> Computation[dict]:
    """The scan's fits, where the best of ``settings.restarts`` more starts beats them near
    the K that the criterion takes (lowest BIC, or the knee).

    EM climbs to the local maximum of the likelihood nearest its start, and a k-means++ start
    seldom puts a centre on a phase of few points: a broad component absorbs them, the BIC of
    that K is too high, and which K wins (so which candidate phases exist) moves with the seed
    (measured: the 30x30 Bruker map, 5 or 6 candidates over seeds 0-4 with one start per K,
    6 on every seed with 10 or more; its better 6-component fit lies 194 BIC below the best
    5-component one). BIC compares maximum likelihoods: each K's fit should be the best of
    several starts (scikit-learn's ``n_init``). A basin that one start in five reaches is
    missed by 20 starts with probability 0.8^20 = 1 %. The restarts are spent where they
    decide something: on the K the criterion takes and its two neighbours, and again around
    a new K until the chosen K's neighbours are done. The starts are explored as Biernacki,
    Celeux and Govaert's em-EM does (Comput. Stat. Data Anal. 41, 2003): short EM runs (a
    tolerance ``SHORT_RUN_TOLERANCE`` times looser) on at most ``restart_points`` of the
    points (a seeded subsample; all of them on small maps), against a short run from the
    scan's fit on the same points (a fair rival); a start that beats it is run to the full
    tolerance on every point and replaces the scan's fit when its likelihood is higher.
    Returns ``{k: (mixture, mean log-likelihood or None)}`` as the scan does.
    """
    n, d = scaled.shape
    fits = dict(fits)
    likelihoods = {}
    for k, (mixture, own) in fits.items():
        if own is None:
            own = _total_log_likelihood(scaled, mixture, prepared) / n
        likelihoods[k] = own
    if n > settings.restart_points:
        rng = np.random.default_rng([settings.seed, 1])
        part = scaled[np.sort(rng.choice(n, settings.restart_points, replace=False))]
        explored = _PreparedPoints(part, prepared.device)
    else:
        part, explored = scaled, prepared

    short = replace(settings, tol=settings.tol * SHORT_RUN_TOLERANCE)

    def chosen_k() -> int:  # the K the settings' rule takes on the BIC so far
        scores = {k: bic_of(n * ll, n, d, k, settings.covariance) for k, ll in likelihoods.items()}
        if settings.criterion == "bic_knee":
            return knee_k(scores, settings.knee_fraction)
        return min(scores, key=scores.__getitem__)

    done: set[int] = set()
    while True:
        best = chosen_k()
        todo = [k for k in (best - 1, best, best + 1) if k in fits and k not in done]
        if not todo:
            return fits
        for k in todo:
            done.add(k)
            if k < 2:
                continue
            # the scan's fit, run as the short starts are on the same points (their rival),
            # and the starts: independent fits (each seed's seeding is its own), run two at a
            # time on two cores; the best taken in the order of the starts as one by one
            fitted_all = yield from _fits_of(
                [_fit_torch(part, k, short, settings.seed, explored, fits[k][0])]
                + [
                    _fit_torch(
                        part, k, short, settings.seed + 1000 * (settings.n_init + a), explored
                    )
                    for a in range(settings.restarts)
                ],
                explored.on_cpu,
            )
            chosen, chosen_ll = None, fitted_all[0][1]
            for fitted in fitted_all[1:]:
                if fitted[1] > chosen_ll:
                    chosen, chosen_ll = fitted[:2]
            if chosen is None:
                continue
            chosen, chosen_ll, converged = yield from _fit_torch(  # polished on every point
                scaled, k, settings, settings.seed, prepared, chosen
            )
            if chosen_ll > likelihoods[k]:
                fits[k] = (chosen, chosen_ll if converged else None)
                likelihoods[k] = chosen_ll


def _fits_of(steps: list, on_cpu: bool, report=None) -> Computation[list]:
    """The values of the fit generators ``steps``, in order: on the CPU with several usable
    cores each run to its end by a thread per core, in the order given (numpy releases the
    GIL in its loops and products; each fit makes the same calls on whichever thread: the same
    values), else one after the other. Yields every ``YIELD_INTERVAL_S`` (``report(fits
    done)`` where given); closing the generator stops the fits at their next step."""
    if not on_cpu or usable_cores() < 2 or len(steps) < 2:
        values = []
        for step in steps:
            values.append((yield from step))
        return values
    import threading
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    stop = threading.Event()

    def run(inner):
        while True:
            if stop.is_set():
                inner.close()
                return None
            try:
                next(inner)
            except StopIteration as done:
                return done.value

    with ThreadPoolExecutor(usable_cores(), thread_name_prefix="napari-sigma mixture") as pool:
        futures = [pool.submit(run, step) for step in steps]
        try:
            pending = set(futures)
            while pending:
                finished, pending = wait(pending, YIELD_INTERVAL_S, FIRST_COMPLETED)
                for future in finished:
                    future.result()  # a fit's error is raised here
                yield None if report is None else report(len(steps) - len(pending))
        finally:
            stop.set()
    return [future.result() for future in futures]


def _fit_sklearn(scaled: np.ndarray, k: int, settings: ClusteringSettings) -> Mixture:
    from sklearn.mixture import GaussianMixture

    model = GaussianMixture(
        n_components=k,
        covariance_type=settings.covariance,
        reg_covar=1e-6,
        max_iter=settings.max_iter,
        tol=settings.tol,
        n_init=settings.n_init,
        random_state=settings.seed,
    ).fit(scaled)
    covariances = model.covariances_
    if settings.covariance == "diag":
        covariances = np.stack([np.diag(c) for c in covariances])
    return Mixture(model.weights_, model.means_, covariances, np.arange(k))


def _fit_torch(
    x_np: np.ndarray,
    k: int,
    settings: ClusteringSettings,
    seed: int,
    prepared: _PreparedPoints | None = None,
    start: Mixture | None = None,
) -> Computation:
    """EM for one initialisation; returns (Mixture, mean log-likelihood, converged).

    ``start``: begin EM with these ``k`` components (in the units of ``x_np``) instead of a
    k-means++ seeding and Lloyd steps (``seed`` is then unused).

    When converged, the log-likelihood is the mixture's own (the parameters of its E-step);
    else it is the one before the last M-step.

    ``prepared``: ``x_np`` as arrays with their outer products, shared by several fits.

    numpy on the CPU, torch on another device (:class:`_PreparedPoints`): the same formulas.
    """
    if prepared is None:
        device = resolve_device(settings.device)
        x = _as_float64(x_np, device)
        outer = _outer_products(x)
    else:
        (x, outer), *_ = prepared.chunks
    generator = torch_generator(seed)
    yield  # after the outer products: a cancel point before the k-means start
    if start is None:
        seeding = None if prepared is None else prepared.seedings.setdefault(seed, {})
        hard = _kmeans_labels(x, k, generator, seeding)
        yield
        weights, means, covs = _m_step(x, outer, _one_hot(hard, k, x), settings.covariance)
    else:
        weights, means, covs = (
            _like(x, a) for a in (start.weights, start.means, start.covariances)
        )
    xp = namespace(x)
    previous = -math.inf
    last_yield = time.perf_counter()
    log_likelihood = previous
    converged = False
    for _ in range(settings.max_iter):
        log_joint = _log_densities(x, means, covs, outer) + xp.log(weights)
        norm = _logsumexp(log_joint)
        log_likelihood = float(norm.mean())
        if abs(log_likelihood - previous) < settings.tol:
            converged = True
            break
        previous = log_likelihood
        resp = xp.exp(log_joint - norm)
        weights, means, covs = _m_step(x, outer, resp, settings.covariance)
        if time.perf_counter() - last_yield > YIELD_INTERVAL_S:
            yield
            last_yield = time.perf_counter()
    mixture = Mixture(*(host(t) for t in (weights, means, covs)), np.arange(k))
    return mixture, log_likelihood, converged


# numpy (CPU) or torch (another device) by the type of the arrays: the same operations
# (compute.arrays' namespace; below the helpers whose formulas are chosen per side)


def _like(x, values):
    """``values`` as float64 beside ``x`` (numpy array or torch tensor on its device)."""
    if isinstance(x, np.ndarray):
        return np.array(values, dtype=np.float64)
    import torch

    return torch.as_tensor(values, dtype=x.dtype, device=x.device)


def _logsumexp(values):
    """``log(sum(exp(values)))`` over axis 1, kept ``(n, 1)``: torch's formula (the row's
    largest subtracted first; an infinite largest taken as 0)."""
    if not isinstance(values, np.ndarray):
        import torch

        return torch.logsumexp(values, dim=1, keepdim=True)
    largest = values.max(axis=1, keepdims=True)
    largest[np.isinf(largest)] = 0.0
    return np.log(np.exp(values - largest).sum(axis=1, keepdims=True)) + largest


def _softmax(values) -> np.ndarray:
    """Row-wise softmax (torch's formula: ``exp(v - max) / sum``), as a numpy array."""
    if not isinstance(values, np.ndarray):
        import torch

        return torch.softmax(values, dim=1).cpu().numpy()
    shifted = np.exp(values - values.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def _one_hot(labels, k: int, like):
    if isinstance(like, np.ndarray):
        out = np.zeros((len(labels), k), dtype=like.dtype)
        out[np.arange(len(labels)), labels] = 1.0
        return out
    import torch

    return torch.nn.functional.one_hot(labels, k).to(like.dtype)


def _kmeans_labels(x, k: int, generator: TorchCpuDraws, seeding: dict | None = None):
    """k-means++ seeding followed by a few Lloyd steps; returns hard labels.

    ``seeding``: the seeding so far of the same points with the same seed (centres, distances,
    generator state), extended and updated here: the seeding of k centres continues that of
    k - 1 draw for draw, so a scan over K seeds each centre once (same centres as from scratch).
    """
    centers = _seeded_centers(x, k, generator, seeding)
    previous = None
    for _ in range(LLOYD_STEPS):
        labels = _nearest_center(x, centers)
        if previous is not None and bool(namespace(labels).array_equal(labels, previous)):
            return labels  # converged: the same centres, the same labels from here on
        centers = _lloyd_centers(x, labels, centers)
        previous = labels
    return _nearest_center(x, centers)


def _lloyd_centers(x, labels, centers):
    """The mean of every centre's points (the old centre where it has none)."""
    k = len(centers)
    if isinstance(x, np.ndarray):
        # each centre's sum added point by point in the points' order from 0 (np.add.at's
        # sums, at a fraction of its cost), one coordinate at a time
        sums = np.stack(
            [np.bincount(labels, weights=x[:, j], minlength=k) for j in range(x.shape[1])], 1
        )
        counts = np.bincount(labels, minlength=k).astype(x.dtype)[:, None]
        return np.where(counts > 0, sums / np.maximum(counts, 1), centers)
    import torch

    sums = torch.zeros_like(centers).index_add_(0, labels, x)
    counts = torch.bincount(labels, minlength=k).to(x.dtype)[:, None]
    return torch.where(counts > 0, sums / counts.clamp_min(1), centers)


def _seeded_centers(x, k: int, generator: TorchCpuDraws, seeding: dict | None = None):
    """The k-means++ seeding of ``k`` centres (see :func:`_kmeans_labels`), continuing
    ``seeding`` when it holds at most ``k`` centres; ``seeding`` is updated."""
    n = len(x)
    on_host = isinstance(x, np.ndarray)
    if seeding and len(seeding["centers"]) <= k:
        centers, closest = seeding["centers"], seeding["closest"]
        generator.set_state(seeding["state"])
    else:
        first = generator.randint(n)
        centers = x[first : first + 1]
        closest = ((x - centers[0]) ** 2).sum(1)
    for _ in range(len(centers), k):
        probabilities = host(closest / closest.sum())
        if not np.isfinite(probabilities).all() or float(probabilities.sum()) <= 0:
            probabilities = np.full((n,), 1.0 / n, dtype=np.float64)
        pick = generator.multinomial_one(probabilities)
        if on_host:
            centers = np.concatenate([centers, x[pick : pick + 1]])
            closest = np.minimum(closest, ((x - x[pick]) ** 2).sum(1))
        else:
            import torch

            centers = torch.cat([centers, x[pick : pick + 1]])
            closest = torch.minimum(closest, ((x - x[pick]) ** 2).sum(1))
    if seeding is not None:
        seeding.update(centers=centers, closest=closest, state=generator.get_state())
    return centers


def _nearest_center(x, centers):
    """Index of the nearest centre of every point: the smallest ``|c|^2 - 2 x.c`` (one product;
    ``|x|^2`` is the same for every centre)."""
    if isinstance(x, np.ndarray):
        return ((centers * centers).sum(1) + -2.0 * (x @ centers.T)).argmin(1)
    import torch

    return torch.addmm((centers * centers).sum(1), x, centers.T, alpha=-2.0).argmin(1)


def _outer_products(x):
    """Row-wise products ``x_i x_j`` for ``i <= j``, shape (n, d(d+1)/2): second moments become
    matrix products (the upper triangle only: the matrices are symmetric)."""
    parts = [x[:, i : i + 1] * x[:, i:] for i in range(x.shape[1])]
    if isinstance(x, np.ndarray):
        return np.concatenate(parts, axis=1)
    import torch

    return torch.cat(parts, dim=1)


def _triangle(d: int, device) -> tuple:
    """Row and column indices of the upper triangle of a ``d x d`` matrix (diagonal included,
    row by row: numpy's order is torch's); numpy arrays for ``device`` None."""
    if device is None:
        return np.triu_indices(d)
    import torch

    index = torch.triu_indices(d, d, device=device)
    return index[0], index[1]


def _device_of(x):
    return None if isinstance(x, np.ndarray) else x.device


def _symmetric(upper, d: int):
    """``(M, d, d)`` symmetric matrices from their upper triangles ``(M, d(d+1)/2)``."""
    rows, cols = _triangle(d, _device_of(upper))
    if isinstance(upper, np.ndarray):
        full = np.zeros((len(upper), d, d), dtype=upper.dtype)
    else:
        import torch

        full = torch.zeros((len(upper), d, d), dtype=upper.dtype, device=upper.device)
    full[:, rows, cols] = upper
    full[:, cols, rows] = upper
    return full


def _m_step(x, outer, resp, covariance: str) -> tuple:
    d = x.shape[1]
    counts = resp.sum(0) + 10 * np.finfo(np.float64).eps  # x is float64
    means = (resp.T @ x) / counts[:, None]
    second = _symmetric((resp.T @ outer) / counts[:, None], d)
    covs = second - means[:, :, None] * means[:, None, :]
    if isinstance(x, np.ndarray):
        if covariance == "diag":
            diagonal = np.diagonal(covs, axis1=1, axis2=2)
            covs = np.zeros_like(covs)
            covs[:, np.arange(d), np.arange(d)] = diagonal
        covs = covs + 1e-6 * np.eye(d, dtype=x.dtype)
    else:
        import torch

        if covariance == "diag":
            covs = torch.diag_embed(torch.diagonal(covs, dim1=1, dim2=2))
        covs = covs + 1e-6 * torch.eye(d, dtype=x.dtype, device=x.device)
    return counts / len(x), means, covs


def _log_densities(x, means, covs, outer=None):
    """Log density ``(n, M)`` of every point under every Gaussian component.

    The Mahalanobis term ``x'Px - 2 m'Px + m'Pm`` is two matrix products with the precomputed
    outer products of the points (upper triangle), which is much faster than batched
    triangular solves.

    numpy arrays on the CPU (the precision matrices from the Cholesky factors as
    ``torch.cholesky_inverse`` makes them), torch tensors on another device.
    """
    d = x.shape[1]
    outer = _outer_products(x) if outer is None else outer
    rows, cols = _triangle(d, _device_of(x))  # x'Px = sum over i <= j of (2 - [i = j]) P_ij x_i x_j
    if isinstance(x, np.ndarray):
        cholesky = _cholesky(covs)
        precision = _cholesky_inverse(cholesky)
        log_det = 2.0 * np.log(np.diagonal(cholesky, axis1=1, axis2=2)).sum(1)
        p_mean = np.einsum("kde,ke->kd", precision, means)
        upper = precision[:, rows, cols] * (2.0 - (rows == cols).astype(x.dtype))
        mahalanobis = outer @ upper.T - 2.0 * (x @ p_mean.T) + (p_mean * means).sum(1)
        return -0.5 * (d * math.log(2 * math.pi) + log_det + np.maximum(mahalanobis, 0.0))
    import torch

    cholesky = torch.linalg.cholesky(covs)
    precision = torch.cholesky_inverse(cholesky)
    log_det = 2.0 * torch.log(torch.diagonal(cholesky, dim1=1, dim2=2)).sum(1)
    p_mean = torch.einsum("kde,ke->kd", precision, means)
    upper = precision[:, rows, cols] * (2.0 - (rows == cols).to(x.dtype))
    mahalanobis = outer @ upper.T - 2.0 * (x @ p_mean.T) + (p_mean * means).sum(1)
    return -0.5 * (d * math.log(2 * math.pi) + log_det + mahalanobis.clamp_min(0.0))


def _cholesky(covs: np.ndarray) -> np.ndarray:
    """Lower Cholesky factors of ``(M, d, d)`` matrices (AnalysisError for a matrix that is
    not positive definite)."""
    try:
        return np.linalg.cholesky(covs)
    except np.linalg.LinAlgError as error:
        raise AnalysisError(
            f"a mixture component's covariance is not positive definite: {error}"
        ) from error


def _cholesky_inverse(cholesky: np.ndarray) -> np.ndarray:
    """``(L L')^-1 = inv(L)' inv(L)`` of every lower factor ``L`` (what LAPACK's ``potri``
    and ``torch.cholesky_inverse`` compute), in numpy: its BLAS is the one the analysis runs
    on one thread (scipy's LAPACK brings its own OpenBLAS, on every core when loaded after
    the limit: ~300x the CPU of these small matrices, measured)."""
    inverse = np.linalg.inv(cholesky)
    return np.swapaxes(inverse, 1, 2) @ inverse


def _unscaled(mixture: Mixture, center: np.ndarray, scale: float) -> Mixture:
    return Mixture(
        mixture.weights.copy(),
        mixture.means * scale + center,
        mixture.covariances * scale**2,
        mixture.groups.copy(),
    )


# ----------------------------------------------------------------------------- posteriors


def _component_log_joint(points: np.ndarray, mixture: Mixture, device: str) -> Computation:
    """Chunks of ``log w_m + log N(x | m)``, shape (chunk, M), float64 (numpy arrays on the
    CPU, torch tensors on another device)."""
    device = resolve_device(device)
    weights, means, covs = (
        _as_float64(a, device) for a in (mixture.weights, mixture.means, mixture.covariances)
    )
    log_weights = namespace(weights).log(weights)
    for start in range(0, len(points), PREDICT_CHUNK):
        chunk = _as_float64(points[start : start + PREDICT_CHUNK], device)
        yield _log_densities(chunk, means, covs) + log_weights


def _total_log_likelihood(
    points: np.ndarray, mixture: Mixture, prepared: _PreparedPoints | None = None
) -> float:
    if prepared is None:
        chunks = _component_log_joint(points, mixture, "auto")
    else:  # the same products as _component_log_joint, with the outer products computed once
        weights, means, covs = (
            _as_float64(a, prepared.device)
            for a in (mixture.weights, mixture.means, mixture.covariances)
        )
        log_weights = namespace(weights).log(weights)
        chunks = (
            _log_densities(x, means, covs, outer) + log_weights for x, outer in prepared.chunks
        )
    return float(sum(_logsumexp(c).sum() for c in chunks))


def _component_posteriors(points: np.ndarray, mixture: Mixture, device: str) -> np.ndarray:
    parts = [_softmax(c) for c in _component_log_joint(points, mixture, device)]
    return np.concatenate(parts)


def _phase_probabilities(points: np.ndarray, mixture: Mixture, device: str) -> np.ndarray:
    posteriors = _component_posteriors(points, mixture, device)
    return _group_columns(posteriors, mixture.groups).astype(np.float32)


def _group_columns(posteriors: np.ndarray, groups: np.ndarray) -> np.ndarray:
    n_groups = int(groups.max()) + 1
    summed = np.zeros((len(posteriors), n_groups), posteriors.dtype)
    for component, group in enumerate(groups):
        summed[:, group] += posteriors[:, component]
    return summed


def _labels(probabilities: np.ndarray, min_probability: float | None) -> np.ndarray:
    labels = (probabilities.argmax(1) + 1).astype(np.int32)
    if min_probability is not None:
        labels[probabilities.max(1) < min_probability] = 0
    return labels


def _require_mixture(result: ClusteringResult) -> Mixture:
    if result.mixture is None:
        raise AnalysisError("this clustering result holds no mixture to predict with")
    return result.mixture


# ----------------------------------------------------------------------------- choosing K


def _select(
    mixtures: dict[int, Mixture],
    scores: dict[int, float],
    fit: np.ndarray,
    settings: ClusteringSettings,
) -> tuple[Mixture, str]:
    if settings.n_phases != "auto":
        return mixtures[int(settings.n_phases)], "fixed"
    best = min(scores, key=scores.__getitem__)
    if settings.criterion == "bic":
        return mixtures[best], "bic"
    if settings.criterion == "bic_knee":
        return mixtures[knee_k(scores, settings.knee_fraction)], "bic_knee"
    merged = merge_components(fit, mixtures[best], settings)
    return merged, "merge"


def knee_k(scores: dict[int, float], fraction: float) -> int:
    """Smallest K whose score is within ``fraction`` of the total improvement of the best K.

    Parameters
    ----------
    scores : dict of int to float
        Criterion (lower is better) per K.
    fraction : float
        Tolerated excess over the best score, relative to ``score(min K) - best score``.

    Returns
    -------
    int
    """
    ks = sorted(scores)
    best = min(scores.values())
    improvement = scores[ks[0]] - best
    if improvement <= 0:
        return ks[0]
    return next(k for k in ks if scores[k] - best <= fraction * improvement)


def merge_components(points: np.ndarray, mixture: Mixture, settings: ClusteringSettings) -> Mixture:
    """Greedily merge components while the best pair's normalised entropy gain is large.

    The gain of merging groups i and j is
    ``sum_n [(p_i + p_j) log(p_i + p_j) - p_i log p_i - p_j log p_j] / min(sum_n p_i, sum_n p_j)``
    (nats per point of the smaller group): near 0 for separate clusters, large when two
    components share one cluster.
    """
    groups = np.arange(mixture.n_components)
    posteriors = _component_posteriors(points, mixture, settings.device)
    while groups.max() + 1 > max(settings.min_phases, 1):
        pair, gain = _best_merge(_group_columns(posteriors, groups))
        if gain <= settings.merge_threshold:
            break
        keep, drop = pair
        groups = np.where(groups == drop, keep, groups)
        groups = np.unique(groups, return_inverse=True)[1].astype(np.int64)
    return Mixture(mixture.weights, mixture.means, mixture.covariances, groups)


def _best_merge(probabilities: np.ndarray) -> tuple[tuple[int, int], float]:
    def plogp(p: np.ndarray) -> np.ndarray:
        return p * np.log(np.clip(p, 1e-300, None))

    entropy_terms = plogp(probabilities).sum(0)
    masses = probabilities.sum(0)
    best_pair, best_gain = (0, 0), -np.inf
    n_groups = probabilities.shape[1]
    for i in range(n_groups):
        for j in range(i + 1, n_groups):
            joined = probabilities[:, i] + probabilities[:, j]
            mass = min(masses[i], masses[j])
            if mass <= 0:
                continue
            gain = (plogp(joined).sum() - entropy_terms[i] - entropy_terms[j]) / mass
            if gain > best_gain:
                best_pair, best_gain = (i, j), float(gain)
    return best_pair, best_gain


# ----------------------------------------------------------------------------- the result


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
