"""Finding phases in a spectrum image with the help of space: the default clustering strategy.

A Gaussian mixture fitted to every pixel of a map spends components on the mixed pixels along grain
boundaries (they form bridges between the phases' clusters), so the BIC keeps falling and phases are
split. Phases are therefore found in three steps:

1. **Homogeneous pixels.** Pixels whose neighbourhood varies no more than counting noise (local
   variance of the smoothed features below ``homogeneity`` times its lower quartile) are the
   interiors of grains. Their smoothed features form tight, Gaussian clusters, one per phase.
2. **Model selection on them.** A Gaussian mixture with the number of phases chosen by BIC on the
   smoothed features of the homogeneous pixels. With an automatic number, phases whose mean
   smoothed features lie less than ``merge_distance`` pooled standard deviations apart
   (Mahalanobis) are merged; with a given number K, the closest phases are merged until K remain
   (a mixture fitted with K directly split large phases and merged small ones: adjusted Rand
   index 0.77 instead of 0.96 on the low-dose case). Phases that close cannot be told apart pixel
   by pixel, and BIC splits such a phase when its cluster is slightly non-Gaussian (measured: pyrite at 50 counts
   per pixel split in two at distance 2.1, while distinct minerals lie 15-100 apart).
3. **Every pixel classified on its own spectrum.** Each phase's mean of the *unsmoothed*
   features (from its homogeneous pixels), and its mixtures with the other phases in which it
   has the larger share, are templates under one shared (counting-noise) covariance
   (:mod:`~napari_sigma.phases.mixed_pixels`); every pixel's log-likelihood under each phase is
   combined with a Potts prior from its 8 neighbours (iterated conditional modes, weight
   ``spatial_weight``), so boundaries stay sharp, a mixed boundary pixel goes to the phase with
   the larger share of it (not to a third phase whose spectrum looks like the mixture), and
   isolated noisy pixels follow their neighbours.

Two searches follow: trace phases, in grains too small to have homogeneous pixels
(:mod:`~napari_sigma.phases.trace`), and phases of two compositions too close to tell apart pixel
by pixel but not grain by grain (:mod:`~napari_sigma.phases.splitting`). Last, a phase that is
a zone of mixed pixels lying between two or more others is dropped
(:func:`~napari_sigma.phases.end_members.boundary_zones`).

The steps are in their own modules: :mod:`~napari_sigma.phases.homogeneity` (step 1),
:mod:`~napari_sigma.phases.merging` (the merges of step 2), :mod:`~napari_sigma.phases.potts`
(the spatial prior of step 3), :mod:`~napari_sigma.phases.searches` (the trace and split
searches), :mod:`~napari_sigma.phases.zones` (noise copies and mixture zones) and
:mod:`~napari_sigma.phases.support` (phases that neither their grains nor their pixels
support); this module holds the settings and the flow.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from napari_sigma.compute.progress import Computation, Progress
from napari_sigma.errors import AnalysisError
from napari_sigma.phases.boundaries import FRACTION_SIGMA, MIN_SEPARATION
from napari_sigma.phases.end_members import MIXTURE_DISTANCE, NOISE_DISTANCE, merge_noise_splits
from napari_sigma.phases.homogeneity import homogeneous_pixels, local_variance  # noqa: F401
from napari_sigma.phases.merging import _merged, _noise_floor, merge_close_phases  # noqa: F401
from napari_sigma.phases.mixed_pixels import MIX_FRACTIONS, MixSpace, phase_log_likelihood
from napari_sigma.phases.mixture import (
    ClusteringResult,
    ClusteringSettings,
    cluster_phases,
    fit_subsample_index,
)
from napari_sigma.phases.potts import ICM_BAND_ROWS, _potts_icm, _potts_icm_steps  # noqa: F401
from napari_sigma.phases.searches import _split_compositions, _unexplained, _with_trace
from napari_sigma.phases.small_phases import small_phase_steps
from napari_sigma.phases.splitting import SplitSettings
from napari_sigma.phases.support import (  # noqa: F401
    _placed_by_neighbours,
    _without_unsupported_phases,
)
from napari_sigma.phases.twins import TwinSettings
from napari_sigma.phases.zones import _without_boundary_zones, _without_mixture_zones

# the moved names stay importable from here (local_variance, homogeneous_pixels,
# merge_close_phases, _potts_icm, ...); patch or change them in their own modules


@dataclass(frozen=True)
class PhaseFindingSettings:
    """Parameters of the spatially aware phase finding.

    Parameters
    ----------
    homogeneity : float
        A pixel is homogeneous when its local variance is below this multiple of the noise level.
    noise_quantile : float
        The noise level is this quantile of the local variance over the map (0.25: measured to
        hold on small or binned maps where boundaries make up half the pixels; the median let
        boundary pixels in and split 3 phases into 6-7).
    spatial_weight : float
        Weight of each agreeing neighbour in the Potts prior (0 = no spatial prior).
    iterations : int
        Iterated-conditional-modes sweeps.
    mix_fractions : tuple of float
        Shares of the majority phase in the boundary-mixture templates (empty: pure phases only).
    mix_space : {"linear", "anscombe"}
        How features mix: ``"anscombe"`` for ``sqrt(counts + 3/8)`` features (the pipeline's
        ``poisson`` normalisation), ``"linear"`` otherwise.
    merge_distance : float
        With an automatic number of phases, merge phases closer than this (Mahalanobis distance
        of their mean smoothed features under the pooled within-phase covariance).
    trace_false_alarm : float
        Per-pixel false-alarm rate of the search for trace phases.
    trace_min_pixels : int
        Smallest connected group of unexplained pixels that makes a trace phase.
    trace_passes : int
        Searches for trace phases, one new phase each (0 = none): the next pass explains the
        mixed pixels around the last one's grains and finds any further trace phase. The
        small phases' inclusion search is repeated as many times while it adds a phase (at
        least once; :mod:`~napari_sigma.phases.small_phases`).
    split : SplitSettings or None
        Search for phases of two compositions too close to tell pixel by pixel
        (:mod:`~napari_sigma.phases.splitting`); None: no search.
    averaged_pixels : int
        Pixels averaged into each smoothed feature (9 for a 3x3 neighbourhood). The merge
        distance never counts a difference as significant when it is smaller than the counting
        noise of such an average (see :func:`~napari_sigma.phases.merging.merge_close_phases`).
    noise_distance : float
        With an automatic number of phases, candidates whose mean smoothed features lie closer
        than this many standard deviations of counting noise are one phase (0: no such merge;
        :func:`~napari_sigma.phases.end_members.merge_noise_splits`).
    mixture_distance : float
        With an automatic number of phases, a candidate that a non-negative mix of two or more
        others explains within this many standard deviations of counting noise, and that
        borders them, is a mixture zone and not a phase (0: keep them;
        :func:`~napari_sigma.phases.end_members.mixture_zones`).
    fraction_sigma : float
        After unmixing, boundary pixels between phases that one pixel tells apart go to the
        phase with the largest share, the phase fractions averaged over a Gaussian of at most
        this many pixels (:func:`~napari_sigma.phases.boundaries.majority_labels`); 0 averages
        nothing, a negative value keeps the labels of the spatial classification.
    min_separation : float
        Phases whose pure pixels lie fewer standard deviations of counting noise apart (in
        the fraction of one pixel) keep the labels between them (see
        :func:`~napari_sigma.phases.boundaries.distinct_groups`).
    twins : TwinSettings or None
        After unmixing, the pixels of phases that one pixel cannot tell apart ("minor twins")
        are assigned again from their whole spectra (:mod:`~napari_sigma.phases.twins`); None:
        not.
    small_phases : bool
        With an automatic number of phases and a split search, after it: phases too small for
        the split search tested for two compositions with the test's exact small-sample
        p-value, and inclusions of their own composition in any phase found from windows of
        pooled pixels and confirmed on independent pixels
        (:mod:`~napari_sigma.phases.small_phases`).
    support_test : bool
        With an automatic number of phases, window counts and a split search: a phase too thin
        for the grain-wise test (fewer than ``split.min_pixels`` interior pixels) is kept only
        when its pixels need it, by the trace search's own test (without it, a connected group
        of ``trace_min_pixels`` of its pixels that no other phase or mix of two explains at
        ``trace_false_alarm``); otherwise its pixels go to the other phases
        (:func:`~napari_sigma.phases.support._without_unsupported_phases`).
    """

    homogeneity: float = 2.0
    noise_quantile: float = 0.25
    spatial_weight: float = 1.0
    iterations: int = 5
    mix_fractions: tuple[float, ...] = MIX_FRACTIONS
    mix_space: MixSpace = "linear"
    merge_distance: float = 4.0
    trace_false_alarm: float = 1e-9
    trace_min_pixels: int = 6
    trace_passes: int = 3
    split: SplitSettings | None = field(default_factory=SplitSettings)
    averaged_pixels: int = 9
    noise_distance: float = NOISE_DISTANCE
    mixture_distance: float = MIXTURE_DISTANCE
    fraction_sigma: float = FRACTION_SIGMA
    min_separation: float = MIN_SEPARATION
    twins: TwinSettings | None = field(default_factory=TwinSettings)
    small_phases: bool = True
    support_test: bool = True


def find_phases(
    raw: np.ndarray,
    smoothed: np.ndarray,
    clustering: ClusteringSettings,
    settings: PhaseFindingSettings = PhaseFindingSettings(),
    counts: tuple[np.ndarray, np.ndarray] | None = None,
    valid: np.ndarray | None = None,
) -> Computation[ClusteringResult]:
    """Phases of every pixel from unsmoothed and smoothed feature maps.

    Parameters
    ----------
    raw, smoothed : ndarray, shape (y, x, F)
        Normalised features without and with neighbour averaging.
    clustering : ClusteringSettings
        Number of phases (or ``"auto"``: BIC), range, seed, device of the mixture.
    settings : PhaseFindingSettings
        Homogeneity threshold and spatial prior.
    counts : (ndarray (y, x, F), ndarray (y, x)), optional
        Raw window counts and total counts of every pixel (Poisson). With them, and an automatic
        number of phases, connected pixels that no phase or boundary mix explains become a new
        (trace) phase, up to ``trace_passes`` times (:mod:`~napari_sigma.phases.trace`).
    valid : ndarray of bool, shape (y, x), optional
        Pixels that hold a spectrum; the others (empty background, holes) train nothing and
        get label 0.

    Yields
    ------
    Progress
        Stage ``"clustering"``.

    Returns
    -------
    ClusteringResult
        Labels 1..K ordered by decreasing pixel count; probabilities from the spatial model.
    """
    from napari_sigma.compute.device import resolve_device

    device = resolve_device(clustering.device)
    mask = homogeneous_pixels(
        smoothed, settings.homogeneity, settings.noise_quantile, valid, device
    )
    if mask.sum() < max(2, clustering.min_phases):
        raise AnalysisError("too few homogeneous pixels to find phases; reduce the binning")
    target = None if clustering.n_phases == "auto" else int(clustering.n_phases)
    scan = max(clustering.max_phases, target or 0)
    selection = replace(
        clustering, n_phases="auto", max_phases=scan, criterion="bic", min_probability=None
    )
    # the training pixels: the homogeneous pixels the mixture is fitted on (at most
    # fit_points); everything learnt from them (templates, merges) is learnt from the same
    # sample, and every pixel is classified from it in one pass
    mask = _training_pixels(mask, selection)
    fitted = yield from cluster_phases(smoothed[mask], selection)
    mask, found = yield from _first_phases(raw, smoothed, mask, fitted, target, settings, device,
                                           valid)  # fmt: skip
    mask, found = yield from _with_traces(raw, mask, found, counts, target, settings, device)
    found = yield from _refined_phases(raw, smoothed, mask, found, counts, target, selection,
                                       settings, device, valid)  # fmt: skip
    return (yield from _clustering_result(raw, mask, found, fitted, clustering, valid))


def _first_phases(raw, smoothed, mask, fitted, target, settings, device, valid):
    """The phases of the mixture's fit: noise splits merged (automatic K), close phases merged,
    every pixel classified, noise copies and mixture zones dropped (automatic K): ``(mask,
    (labels, probabilities, hard, n_phases))`` (``mask``: the training pixels kept)."""
    yield Progress("clustering", 0, 1, "classifying every pixel")
    floor = _noise_floor(raw[mask], fitted.labels - 1, settings.averaged_pixels)
    hard = fitted.labels - 1
    if target is None and settings.noise_distance > 0:
        hard = merge_noise_splits(smoothed[mask], hard, floor, settings.noise_distance)
    hard, n_phases = _merged(smoothed[mask], hard, int(hard.max()) + 1, target, settings, floor)
    yield Progress("clustering", 0, 1, "classifying every pixel")
    labels, probabilities = yield from _classified(raw, mask, hard, n_phases, settings, device)
    if target is None and settings.mixture_distance > 0 and n_phases > 2:
        kept = _without_mixture_zones(raw, mask, hard, labels, settings, valid)
        if kept[0] is not mask:  # the same training pixels give the same labels
            mask, hard, n_phases = kept
            labels, probabilities = yield from _classified(
                raw, mask, hard, n_phases, settings, device
            )
    return mask, (labels, probabilities, hard, n_phases)


def _with_traces(raw, mask, found, counts, target, settings, device):
    """``(mask, found)`` with the trace phases (:mod:`~napari_sigma.phases.trace`), with
    ``counts`` only."""
    labels, probabilities, hard, n_phases = found
    # trace phases: as many passes as allowed, or as needed to reach a given K
    passes = settings.trace_passes if target is None else target - n_phases
    for _ in range(passes if counts is not None else 0):
        flagged = yield from _unexplained(labels, n_phases, counts, settings)
        if flagged is None:
            break
        mask, hard, n_phases = _with_trace(mask, hard, n_phases, flagged)
        labels, probabilities = yield from _classified(raw, mask, hard, n_phases, settings, device)
    return mask, (labels, probabilities, hard, n_phases)


def _refined_phases(raw, smoothed, mask, found, counts, target, selection, settings, device, valid):
    """``found`` after the split search, the boundary zones' and the support test and the
    small phases' search (automatic K), or refitted to the K asked for when those steps give fewer phases."""
    labels, probabilities, hard, n_phases = found
    if settings.split is not None and (target is None or n_phases < target):
        labels, probabilities, hard, n_phases = yield from _split_compositions(
            raw, mask, (labels, probabilities, hard, n_phases), target, settings, valid
        )
    if target is None and settings.mixture_distance > 0 and n_phases > 2:
        labels, probabilities, hard, n_phases = _without_boundary_zones(
            raw, mask, (labels, probabilities, hard, n_phases), settings, valid
        )
    if target is None and counts is not None and settings.support_test and n_phases > 1:
        labels, probabilities, hard, n_phases = yield from _without_unsupported_phases(
            mask, (labels, probabilities, hard, n_phases), counts, settings, valid
        )
    if target is None and settings.small_phases:  # confirmed on grains: after those checks
        labels, probabilities, hard, n_phases = yield from small_phase_steps(
            raw, mask, (labels, probabilities, hard, n_phases), counts, settings, valid
        )
    if target is not None and n_phases < target:  # asked for more than BIC and traces give
        refit = yield from cluster_phases(smoothed[mask], replace(selection, n_phases=target))
        hard, n_phases = refit.labels - 1, refit.n_phases
        labels, probabilities = yield from _classified(raw, mask, hard, n_phases, settings, device)
    return labels, probabilities, hard, n_phases


def _clustering_result(raw, mask, found, fitted, clustering, valid):
    """The :class:`ClusteringResult` of the phases found: labels 1..K by decreasing size (0
    outside ``valid`` and, with ``min_probability``, where uncertain), their means and
    covariances."""
    labels, probabilities, hard, _ = found
    if valid is not None:
        labels = np.where(valid.reshape(-1), labels, -1)
    labels, probabilities, order = _ordered_by_size(labels, probabilities)
    means = _label_means(raw.reshape(-1, raw.shape[-1]), labels, len(order))
    if clustering.min_probability is not None:  # the "unassigned" label 0 of uncertain pixels
        labels = np.where(probabilities.max(axis=1) < clustering.min_probability, 0, labels)
    yield Progress("clustering", 1, 1, f"{len(order)} phases")
    return ClusteringResult(
        labels=labels.astype(np.int32),
        probabilities=probabilities.astype(np.float32),
        n_phases=len(order),
        means=means,
        covariances=_covariances(raw[mask], hard, order),
        criterion=dict(fitted.criterion),
        criterion_name="bic on homogeneous pixels",
        weights=np.bincount(labels, minlength=len(order) + 1)[1:] / labels.size,
        mixture=None,
        min_probability=clustering.min_probability,
    )


def _training_pixels(mask: np.ndarray, clustering: ClusteringSettings) -> np.ndarray:
    """The pixels of ``mask`` that :func:`cluster_phases` fits on: the same seeded sample.

    A map of a million homogeneous pixels learns its phases from ``fit_points`` of them (the
    mixture always did); their templates' means then carry ~1 % of a pixel's noise instead of
    ~0.3 %, and every pass over the training pixels (posteriors, noise floor, merges,
    templates, covariances) is ten times shorter.
    """
    index = np.flatnonzero(mask)
    chosen = fit_subsample_index(len(index), clustering)
    if chosen is None:
        return mask
    sample = np.zeros(mask.shape, dtype=bool)
    sample.reshape(-1)[index[chosen]] = True
    return sample


def _classified(
    raw: np.ndarray,
    mask: np.ndarray,
    hard: np.ndarray,
    n_phases: int,
    settings: PhaseFindingSettings,
    device: str = "cpu",
) -> Computation[tuple[np.ndarray, np.ndarray]]:
    """Labels and probabilities of every pixel from the training pixels' phase templates."""
    yield Progress("clustering", 0, 1, "phase likelihoods")
    log_likelihood = phase_log_likelihood(
        raw, mask, hard, n_phases, settings.mix_fractions, settings.mix_space, device=device
    )
    yield Progress("clustering", 0, 1, "spatial prior")
    return (
        yield from _potts_icm_steps(
            log_likelihood, settings.spatial_weight, settings.iterations, device
        )
    )


def _label_means(values: np.ndarray, labels: np.ndarray, n_labels: int) -> np.ndarray:
    """Mean ``(K, F)`` of the ``values`` of each label 1..K (float64 sums, label 0 ignored)."""
    sizes = np.bincount(labels, minlength=n_labels + 1)[1 : n_labels + 1]
    sums = np.stack(
        [
            np.bincount(labels, weights=values[:, f], minlength=n_labels + 1)[1 : n_labels + 1]
            for f in range(values.shape[1])
        ],
        axis=1,
    )
    return sums / sizes[:, None]


def _covariances(points: np.ndarray, labels: np.ndarray, order: np.ndarray) -> np.ndarray:
    d = points.shape[1]
    return np.stack(
        [
            np.cov(points[labels == k].T).reshape(d, d) if (labels == k).sum() > 1 else np.eye(d)
            for k in order
        ]
    )


def _ordered_by_size(
    labels: np.ndarray, probabilities: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Drop empty phases, number the rest 1..K by decreasing size (label -1 becomes 0)."""
    assigned = labels >= 0
    counts = np.bincount(labels[assigned], minlength=probabilities.shape[1])
    order = np.argsort(-counts, kind="stable")
    order = order[counts[order] > 0]
    rank = np.full(probabilities.shape[1], -1)
    rank[order] = np.arange(len(order))
    kept = probabilities[:, order]
    kept /= np.maximum(kept.sum(axis=1, keepdims=True), 1e-30)
    kept[~assigned] = 0.0
    return np.where(assigned, rank[np.maximum(labels, 0)] + 1, 0), kept, order
