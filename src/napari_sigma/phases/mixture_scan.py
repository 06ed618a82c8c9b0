"""The scan over K of :func:`~napari_sigma.phases.mixture.cluster_phases`: the fits of every K
on a thread per core, and more starts of the fits near the K the criterion takes (restarts)."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_sigma.compute.blocks import usable_cores
from napari_sigma.compute.progress import Computation, Progress
from napari_sigma.phases.gaussians import _PreparedPoints, _total_log_likelihood
from napari_sigma.phases.mixture_choice import bic_of, knee_k
from napari_sigma.phases.mixture_fit import (
    YIELD_INTERVAL_S,
    _fit_one,
    _fit_torch,
    _seeded_centers,
    torch_generator,
)

if TYPE_CHECKING:
    from napari_sigma.phases.mixture import ClusteringSettings


STAGE = "clustering"


#: The restarts' short EM runs stop at this multiple of the tolerance (em-EM, see _restarted_fits).
SHORT_RUN_TOLERANCE = 10.0


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
    likelihoods = _mean_log_likelihoods(scaled, fits, prepared)
    part, explored = _explored_points(scaled, settings, prepared)
    short = replace(settings, tol=settings.tol * SHORT_RUN_TOLERANCE)
    done: set[int] = set()
    while True:
        best = _chosen_k(likelihoods, n, d, settings)
        todo = [k for k in (best - 1, best, best + 1) if k in fits and k not in done]
        if not todo:
            return fits
        for k in todo:
            done.add(k)
            if k < 2:
                continue
            chosen = yield from _best_short_start(part, k, short, settings, explored, fits[k][0])
            if chosen is None:
                continue
            chosen, chosen_ll, converged = yield from _fit_torch(  # polished on every point
                scaled, k, settings, settings.seed, prepared, chosen
            )
            if chosen_ll > likelihoods[k]:
                fits[k] = (chosen, chosen_ll if converged else None)
                likelihoods[k] = chosen_ll


def _mean_log_likelihoods(scaled: np.ndarray, fits: dict, prepared: _PreparedPoints) -> dict:
    """The mean log-likelihood of every scan fit (computed where the scan did not give it)."""
    n = scaled.shape[0]
    likelihoods = {}
    for k, (mixture, own) in fits.items():
        if own is None:
            own = _total_log_likelihood(scaled, mixture, prepared) / n
        likelihoods[k] = own
    return likelihoods


def _explored_points(scaled: np.ndarray, settings: ClusteringSettings, prepared: _PreparedPoints):
    """``(points, prepared points)`` the short starts run on: a seeded subsample of
    ``restart_points``, or every point of a small map."""
    n = scaled.shape[0]
    if n > settings.restart_points:
        rng = np.random.default_rng([settings.seed, 1])
        part = scaled[np.sort(rng.choice(n, settings.restart_points, replace=False))]
        explored = _PreparedPoints(part, prepared.device)
    else:
        part, explored = scaled, prepared
    return part, explored


def _chosen_k(likelihoods: dict, n: int, d: int, settings: ClusteringSettings) -> int:
    """The K the settings' rule takes on the BIC so far."""
    scores = {k: bic_of(n * ll, n, d, k, settings.covariance) for k, ll in likelihoods.items()}
    if settings.criterion == "bic_knee":
        return knee_k(scores, settings.knee_fraction)
    return min(scores, key=scores.__getitem__)


def _best_short_start(part, k: int, short, settings, explored, scan_fit) -> Computation[Any]:
    """The best of ``settings.restarts`` short starts of ``k`` components on the explored
    points where it beats the scan's fit run the same way (``scan_fit``, its rival); else
    None."""
    # the scan's fit, run as the short starts are on the same points (their rival),
    # and the starts: independent fits (each seed's seeding is its own), run two at a
    # time on two cores; the best taken in the order of the starts as one by one
    fitted_all = yield from _fits_of(
        [_fit_torch(part, k, short, settings.seed, explored, scan_fit)]
        + [
            _fit_torch(part, k, short, settings.seed + 1000 * (settings.n_init + a), explored)
            for a in range(settings.restarts)
        ],
        explored.on_cpu,
    )
    chosen, chosen_ll = None, fitted_all[0][1]
    for fitted in fitted_all[1:]:
        if fitted[1] > chosen_ll:
            chosen, chosen_ll = fitted[:2]
    return chosen


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
