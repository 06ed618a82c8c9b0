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
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from napari_sigma.compute.blocks import threaded_map
from napari_sigma.compute.progress import Computation, Progress, run_to_completion
from napari_sigma.errors import AnalysisError
from napari_sigma.phases.boundaries import FRACTION_SIGMA, MIN_SEPARATION
from napari_sigma.phases.end_members import (
    MIXTURE_DISTANCE,
    NOISE_DISTANCE,
    boundary_zones,
    group_means,
    merge_noise_splits,
    mixture_zones,
    same_as_neighbours,
)
from napari_sigma.phases.mixed_pixels import MIX_FRACTIONS, MixSpace, phase_log_likelihood
from napari_sigma.phases.mixture import (
    ClusteringResult,
    ClusteringSettings,
    cluster_phases,
    fit_subsample_index,
)
from napari_sigma.phases.splitting import SplitSettings, composition_test, split_phase
from napari_sigma.phases.twins import TwinSettings


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
        mixed pixels around the last one's grains and finds any further trace phase.
    split : SplitSettings or None
        Search for phases of two compositions too close to tell pixel by pixel
        (:mod:`~napari_sigma.phases.splitting`); None: no search.
    averaged_pixels : int
        Pixels averaged into each smoothed feature (9 for a 3x3 neighbourhood). The merge
        distance never counts a difference as significant when it is smaller than the counting
        noise of such an average (see :func:`merge_close_phases`).
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
    support_test : bool
        With an automatic number of phases, window counts and a split search: a phase too thin
        for the grain-wise test (fewer than ``split.min_pixels`` interior pixels) is kept only
        when its pixels need it, by the trace search's own test (without it, a connected group
        of ``trace_min_pixels`` of its pixels that no other phase or mix of two explains at
        ``trace_false_alarm``); otherwise its pixels go to the other phases
        (:func:`_without_unsupported_phases`).
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
    support_test: bool = True


def local_variance(
    maps: np.ndarray, radius: int = 1, device: str = "cpu", band: int = 64
) -> np.ndarray:
    """Sum over features of the variance in a ``(2r+1)^2`` neighbourhood, shape ``(y, x)``.

    In float64 (numpy on the CPU, torch on another device; edges repeat the nearest pixel),
    ``band`` rows at a time (with ``radius`` rows either side), so that the temporaries stay in
    cache; on the CPU the bands run on every core (each band is computed by the same calls
    whichever thread).
    """
    from napari_sigma.compute.device import resolve_device
    from napari_sigma.phases._filters import box_sum

    device = resolve_device(device)
    maps = np.asarray(maps)
    if maps.ndim == 2:
        maps = maps[..., None]
    height = maps.shape[0]
    size = (2 * radius + 1) ** 2
    if device == "cpu":
        out_cpu = np.empty(maps.shape[:2], dtype=np.float64)

        def band_variance_cpu(top: int) -> None:
            low, high = max(top - radius, 0), min(top + band + radius, height)
            values = maps[low:high].astype(np.float64)
            mean = box_sum(values, radius)
            mean /= size
            square = box_sum(values * values, radius)  # values: maybe the input
            square /= size
            mean *= mean
            square -= mean
            variance = np.maximum(0.0, square).sum(axis=-1)
            rows = min(band, height - top)
            out_cpu[top : top + rows] = variance[top - low : top - low + rows]

        for _ in threaded_map(band_variance_cpu, range(0, height, band)):
            pass
        return out_cpu
    import torch

    source = torch.as_tensor(maps, device=device)
    out = torch.empty(maps.shape[:2], dtype=torch.float64, device=device)
    if device != "cpu":  # bands keep the CPU's temporaries in cache; a GPU wants one
        band = max(band, height)

    def band_variance(top: int) -> None:
        with torch.no_grad():
            low, high = max(top - radius, 0), min(top + band + radius, height)
            values = source[low:high].to(torch.float64)
            mean = box_sum(values, radius).div_(size)
            square = box_sum(values * values, radius).div_(size)  # values: maybe the input
            variance = square.sub_(mean.mul_(mean)).clamp_min_(0.0).sum(dim=-1)
            rows = min(band, height - top)
            out[top : top + rows] = variance[top - low : top - low + rows]

    for _ in threaded_map(band_variance, range(0, height, band), None if device == "cpu" else 1):
        pass
    return out.cpu().numpy()


def homogeneous_pixels(
    smoothed: np.ndarray,
    factor: float = 2.0,
    quantile: float = 0.5,
    valid: np.ndarray | None = None,
    device: str = "cpu",
) -> np.ndarray:
    """Boolean ``(y, x)`` mask of pixels whose neighbourhood is as uniform as counting noise allows.

    The noise level is the ``quantile`` of the local variance over the map (grain interiors must
    make up more than that fraction of the map); pixels up to ``factor`` times it are kept.
    Only ``valid`` pixels (default: all) count and are kept.
    """
    variance = local_variance(smoothed, device=device)
    if valid is None or not valid.any():
        return variance <= factor * np.quantile(variance, quantile)
    return valid & (variance <= factor * np.quantile(variance[valid], quantile))


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
    # trace phases: as many passes as allowed, or as needed to reach a given K
    passes = settings.trace_passes if target is None else target - n_phases
    for _ in range(passes if counts is not None else 0):
        flagged = yield from _unexplained(labels, n_phases, counts, settings)
        if flagged is None:
            break
        mask, hard, n_phases = _with_trace(mask, hard, n_phases, flagged)
        labels, probabilities = yield from _classified(raw, mask, hard, n_phases, settings, device)
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
    if target is not None and n_phases < target:  # asked for more than BIC and traces give
        refit = yield from cluster_phases(smoothed[mask], replace(selection, n_phases=target))
        hard, n_phases = refit.labels - 1, refit.n_phases
        labels, probabilities = yield from _classified(raw, mask, hard, n_phases, settings, device)
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


def _merged(
    points: np.ndarray,
    labels: np.ndarray,
    n_phases: int,
    target: int | None,
    settings: PhaseFindingSettings,
    floor: np.ndarray | None = None,
) -> tuple[np.ndarray, int]:
    """Merge indistinguishable phases (automatic K) or the closest ones down to a given K."""
    if target is None:
        return merge_close_phases(points, labels, settings.merge_distance, floor=floor)
    if n_phases > target:
        return merge_close_phases(points, labels, settings.merge_distance, target, floor)
    return labels, n_phases


def _without_mixture_zones(
    raw: np.ndarray,
    mask: np.ndarray,
    hard: np.ndarray,
    labels: np.ndarray,
    settings: PhaseFindingSettings,
    valid: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Training pixels without mixture zones, and with noise copies joined to their phase.

    A candidate one other explains is a noise copy only when the two, as classified (``labels``,
    flat 0..K-1; only ``valid`` pixels), are not two compositions grain by grain
    (:func:`_two_compositions`).
    """
    from napari_sigma.features.intensities import inverse_anscombe

    n_phases = int(hard.max()) + 1
    members = raw[mask].astype(np.float64)
    averaged = max(settings.averaged_pixels, 1)
    if settings.mix_space == "anscombe":  # mean counts; Poisson noise of a smoothed pixel
        counts = group_means(inverse_anscombe(members), hard, n_phases)
        noise = np.maximum(counts, 0.5) / averaged
    else:
        counts = group_means(members, hard, n_phases)
        noise = np.broadcast_to(_noise_floor(members, hard, averaged), counts.shape)
    grid = labels.reshape(raw.shape[:2])
    classified = grid if valid is None else np.where(valid, grid, -1)
    explained = mixture_zones(
        counts, noise, grid, settings.mixture_distance, _two_compositions(raw, classified, settings)
    )
    if not explained:
        return mask, hard, n_phases
    target = np.arange(n_phases)  # noise copies join their phase, mixture zones are dropped
    for k, partners in explained:
        target[target == k] = partners[0] if len(partners) == 1 else -1
    training = np.full(mask.shape, -1)
    training[mask] = target[hard]
    used = training >= 0
    hard = np.unique(training[used], return_inverse=True)[1]
    return used, hard, int(hard.max()) + 1


def _two_compositions(
    raw: np.ndarray, grid: np.ndarray, settings: PhaseFindingSettings
) -> Callable[[int, int], bool] | None:
    """Whether two candidates, as classified on the map (``grid``: 0..K-1, negative: no
    spectrum), are two compositions by the grain-wise test on their pixels together
    (:func:`~napari_sigma.phases.splitting.composition_test`, the split search's settings);
    None without a split search.

    The noise-copy rule (one pixel's noise) is right for a mixture's cut of one phase, whose
    halves lie 1.6-2.2 standard deviations of a pixel apart however many pixels they hold; it
    also joins two phases that a pixel cannot tell apart but their grains can (measured: the
    held-out banded iron ore's goethite rims, 17 training pixels, 1.8 standard deviations of a
    smoothed pixel from the hematite-magnetite candidate; their classified pixels together:
    T^2 59.6 on independent pixels). The grain-wise test asks the question with the power of
    the candidates' whole regions, on pixels whose noise made neither the grouping nor the
    classification's cut (checkerboard halves).
    """
    if settings.split is None:
        return None
    tested: dict[frozenset[int], bool] = {}  # the same pair may be asked again: test it once

    def distinct(k: int, partner: int) -> bool:
        pair = frozenset((k, partner))
        if pair not in tested:
            together = ((grid == k) | (grid == partner)).astype(np.int8)
            test = composition_test(raw, together, 1, settings.split, settings.mix_space)
            tested[pair] = test is not None and test.is_split(settings.split)
        return tested[pair]

    return distinct


def _noise_floor(raw: np.ndarray, labels: np.ndarray, averaged_pixels: int) -> np.ndarray:
    """Variance ``(F,)`` of each smoothed feature that counting noise alone gives.

    The within-group variance of the unsmoothed features of the training pixels, divided by
    the number of pixels averaged. Noise at a few counts per pixel makes the smoothed features
    discrete (a window of 0.2 counts per pixel takes a handful of values), and a mixture then
    cuts one phase into groups of almost no spread along such a feature, whose pooled
    covariance makes any difference look significant (measured: alumina at 120 counts per
    pixel cut into three "phases" 0.3 Zr counts apart).
    """
    raw = raw.astype(np.float64)
    groups = np.unique(labels, return_inverse=True)[1]
    sums = np.stack([np.bincount(groups, weights=raw[:, f]) for f in range(raw.shape[1])], axis=1)
    means = sums / np.bincount(groups)[:, None]
    return (raw - means[groups]).var(axis=0) / max(averaged_pixels, 1)


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


def _unexplained(
    labels: np.ndarray,
    n_phases: int,
    counts: tuple[np.ndarray, np.ndarray],
    settings: PhaseFindingSettings,
) -> Computation[np.ndarray | None]:
    """Mask of the pixels no phase or boundary mix explains, or None when there are none."""
    from napari_sigma.phases.trace import unexplained_pixels_steps

    windows, dose = counts
    yield Progress("clustering", 0, 1, "searching unexplained pixels")
    flagged = yield from unexplained_pixels_steps(
        windows,
        dose,
        labels.reshape(dose.shape),
        n_phases,
        settings.trace_false_alarm,
        settings.trace_min_pixels,
    )
    n_flagged = int(flagged.sum())
    yield Progress("clustering", 0, 1, f"{n_flagged} unexplained pixels")
    return flagged if n_flagged else None


def _split_compositions(
    raw: np.ndarray,
    mask: np.ndarray,
    state: tuple[np.ndarray, np.ndarray, np.ndarray, int],
    target: int | None,
    settings: PhaseFindingSettings,
    valid: np.ndarray | None = None,
) -> Computation[tuple[np.ndarray, np.ndarray, np.ndarray, int]]:
    """Split phases of two compositions: every one that passes the test (automatic number of
    phases), or the most significant ones up to a given K.

    ``state`` is (flat labels 0..K-1, probabilities (N, K), training labels, K). Pixels that
    are not ``valid`` (empty) belong to no phase here: tested with a phase, the empty
    background of Hitachi_TM3030Plus.bcf was its "second composition", and the sample's
    pixels with the fewest counts became a phase of 1 115 specks.
    """
    labels, probabilities, hard, n_phases = state
    grid = labels.reshape(raw.shape[:2]) + 1
    if valid is not None:
        grid = np.where(valid, grid, 0)
    tests = {}

    def tested(phase: int):
        return composition_test(raw, grid, phase + 1, settings.split, settings.mix_space)

    yield Progress("clustering", 0, n_phases, "testing phases for two compositions")
    # the phases' tests are independent numpy work: on every core, taken in order
    for phase, test in enumerate(threaded_map(tested, range(n_phases))):
        yield Progress("clustering", phase + 1, n_phases, "testing phases for two compositions")
        if test is not None and test.p_value < settings.split.p_value:
            tests[phase] = test
    if target is None:
        chosen = [phase for phase, test in tests.items() if test.is_split(settings.split)]
    else:
        chosen = sorted(tests, key=lambda phase: -tests[phase].t_squared)
        chosen = chosen[: max(0, target - n_phases)]
    for phase in chosen:
        yield Progress("clustering", phase, n_phases, "splitting a phase of two compositions")
        second = split_phase(raw, grid, phase + 1, tests[phase], settings.split).reshape(-1)
        labels = np.where(second, n_phases, labels)
        moved = np.zeros((len(labels), 1), dtype=probabilities.dtype)
        moved[second, 0] = probabilities[second, phase]
        probabilities = np.concatenate([probabilities, moved], axis=1)
        probabilities[second, phase] = 0.0
        hard = np.where(second[mask.reshape(-1)] & (hard == phase), n_phases, hard)
        n_phases += 1
    return labels, probabilities, hard, n_phases


def _without_boundary_zones(
    raw: np.ndarray,
    mask: np.ndarray,
    state: tuple[np.ndarray, np.ndarray, np.ndarray, int],
    settings: PhaseFindingSettings,
    valid: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """The phases without those that are mixture zones between others, found on the phases as
    labelled (:func:`~napari_sigma.phases.end_members.boundary_zones`).

    The candidates' test (:func:`_without_mixture_zones`) sees only the mixture's training
    pixels, before the trace and split searches; a zone whose partner is found only by those
    (measured: the cobalt-rimmed tungsten carbide of the held-out cemented carbide, whose pure
    core had 4 training pixels and whose rim was split from the titanium carbide) stays a phase.
    Each phase's mean counts are taken over its pixels away from other phases (one pixel), the
    noise is that of one smoothed pixel, as for the candidates. A zone's pixels go to the
    partner the spatial classification gives the higher probability; the other labels are
    kept. ``state`` is (flat labels 0..K-1, probabilities (N, K), training labels, K).

    The mixture must explain a phase's mean within ``mixture_distance`` standard errors of that
    mean (its pixels' variance over their number), not of one pixel as for the candidates: a
    phase as labelled has hundreds of pixels, and one pixel's noise let the iron-oxide phase of
    the held-out banded iron ore (hematite, goethite: 1.8 standard deviations of one smoothed
    pixel from 9 % quartz + magnetite, 23 of its mean) pass for a zone; the carbide's rim is
    0.09 of one pixel (0.8 of its mean) from 22 % cobalt + 78 % carbide. The partners' own
    errors are left out (they would only let more pass).
    """
    from napari_sigma.features.intensities import inverse_anscombe

    labels, probabilities, hard, n_phases = state
    grid = labels.reshape(raw.shape[:2])
    if valid is not None:
        grid = np.where(valid, grid, -1)
    inner = _away_from_others(grid)
    groups = grid[inner]
    sizes = np.bincount(groups, minlength=n_phases)[:n_phases]
    measured = np.flatnonzero(sizes > 0)  # a phase of specks has no such pixel: not tested
    if len(measured) <= 2:
        return state
    counts = np.empty((n_phases, raw.shape[-1]))
    spread = np.empty_like(counts)
    for f in range(raw.shape[-1]):  # one feature at a time: no (N, F) float64 copy
        values = raw[..., f][inner].astype(np.float64)
        if settings.mix_space == "anscombe":  # mixing is linear in counts
            values = inverse_anscombe(values)
        counts[:, f] = np.bincount(groups, values, n_phases)[:n_phases] / np.maximum(sizes, 1)
        squares = np.bincount(groups, values * values, n_phases)[:n_phases] / np.maximum(sizes, 1)
        spread[:, f] = squares - counts[:, f] ** 2
    # the variance of each phase's mean: its pixels' spread (counting noise and any real
    # variation), at least Poisson's where the features are counts
    if settings.mix_space == "anscombe":
        spread = np.maximum(spread, counts)
    noise = np.maximum(spread, 1e-12) / np.maximum(sizes, 1)[:, None]
    index = np.full(n_phases + 1, -1)  # the measured phases numbered 0..M-1 (-1: none)
    index[measured] = np.arange(len(measured))
    zones = boundary_zones(
        counts[measured], noise[measured], index[grid], settings.mixture_distance
    )
    explained = [(int(measured[k]), [int(measured[j]) for j in partners]) for k, partners in zones]
    for k, partners in explained:
        zone = labels == k
        choice = np.asarray(partners)[np.argmax(probabilities[zone][:, partners], axis=1)]
        labels = labels.copy()
        labels[zone] = choice
        hard = np.where(hard == k, labels[mask.reshape(-1)], hard)
    if not explained:
        return state
    kept = np.setdiff1d(np.arange(n_phases), [k for k, _ in explained])
    rank = np.full(n_phases, -1)
    rank[kept] = np.arange(len(kept))
    probabilities = probabilities[:, kept]
    probabilities /= np.maximum(probabilities.sum(axis=1, keepdims=True), 1e-30)
    return rank[labels], probabilities, rank[hard], len(kept)


def _without_unsupported_phases(
    mask: np.ndarray,
    state: tuple[np.ndarray, np.ndarray, np.ndarray, int],
    counts: tuple[np.ndarray, np.ndarray],
    settings: PhaseFindingSettings,
    valid: np.ndarray | None = None,
) -> Computation[tuple[np.ndarray, np.ndarray, np.ndarray, int]]:
    """The phases without those that neither their grains nor their pixels support.

    Phases are added on two kinds of evidence: grain by grain (the split search's test on a
    phase's interior pixels, :mod:`~napari_sigma.phases.splitting`) and pixel by pixel (the
    trace search: connected pixels that no phase nor a mix of two explains,
    :mod:`~napari_sigma.phases.trace`). A phase whose region has fewer interior pixels than the
    grain-wise test needs (``split.min_pixels`` after ``split.erode`` erosions: a rim, a zone
    of boundary pixels, a few specks) can rest only on its pixels. It is asked the trace
    search's question with itself left out: do the other phases' profiles, pure or mixed two at
    a time, leave a group of at least ``trace_min_pixels`` connected pixels of it unexplained
    at ``trace_false_alarm`` (and is that group no mix of the other phases in sum, and a
    composition of its own: :func:`~napari_sigma.phases.trace.new_phase_groups`)? When not,
    the data do not need the phase: a candidate made from a few noisy training pixels that
    collected boundary mixtures, say (measured: espm_dev peridotite at 15 counts per pixel,
    seed 4, an orthopyroxene candidate of 22 training pixels whose 510 pixels were
    orthopyroxene-clinopyroxene-olivine mixtures beside the split search's orthopyroxene).
    Unsupported phases are taken out one at a time (the one with the fewest unexplained pixels
    first, the rest asked again without it); at least one phase remains (a map of one phase
    and a few noisy specks is one phase: velox's 16x16 map had a second "phase" of 2-15
    pixels, different ones on every seed). Their pixels are
    classified again among the remaining phases from their counts and neighbours
    (:func:`_reassigned`). ``state`` is (flat labels 0..K-1, probabilities (N, K), training
    labels, K); only ``valid`` pixels are asked.
    """
    from napari_sigma.phases.splitting import _bounds, _interior
    from napari_sigma.phases.trace import (
        _mixtures_of_known_phases,
        _robust_profiles,
        chi_square_threshold,
        mixture_chi_square_steps,
        new_phase_groups,
    )

    labels, probabilities, hard, n_phases = state
    split = settings.split
    if split is None:
        return state
    windows, dose = counts
    grid = labels.reshape(dose.shape)
    asked = grid if valid is None else np.where(valid, grid, -1)
    thin = []
    for k in range(n_phases):
        region = asked == k
        box = _bounds(region, split.erode + 1)
        if region.any() and _interior(region[box], split.erode).sum() < split.min_pixels:
            thin.append(k)
    if not thin:
        return state
    yield Progress("clustering", 0, 1, "testing thin phases")
    flat_counts = windows.reshape(-1, windows.shape[-1]).astype(np.float64)
    flat_dose = dose.reshape(-1).astype(np.float64)
    threshold = chi_square_threshold(windows.shape[-1], settings.trace_false_alarm)
    profiles, _ = _robust_profiles(flat_counts, flat_dose, grid, n_phases, threshold)
    remaining = list(range(n_phases))
    dropped: list[int] = []
    while len(remaining) > 1:
        unsupported = []
        for k in [k for k in thin if k in remaining]:
            members = np.flatnonzero(asked.reshape(-1) == k)
            others = profiles[[j for j in remaining if j != k]]
            chi = yield from mixture_chi_square_steps(
                flat_counts[members], flat_dose[members], others
            )
            flagged = np.zeros(grid.shape, dtype=bool)
            flagged.reshape(-1)[members[chi > threshold]] = True
            groups = new_phase_groups(
                flat_counts, flat_dose, others, flagged, threshold, settings.trace_min_pixels
            )
            if groups.any():
                continue
            placed = _placed_by_neighbours(asked, k)
            if (
                placed.any()
                and not _mixtures_of_known_phases(
                    flat_counts, flat_dose, others, placed.astype(np.int32), threshold
                )[1]
            ):
                continue
            unsupported.append((int(flagged.sum()), k))
        if not unsupported:
            break
        k = min(unsupported)[1]
        remaining.remove(k)
        dropped.append(k)
    if not dropped:
        return state
    kept = np.asarray(remaining)
    rank = np.full(n_phases, -1)
    rank[kept] = np.arange(len(kept))
    zone = np.flatnonzero(np.isin(labels, dropped))
    choice, chances = _reassigned(
        rank[labels].reshape(grid.shape), zone, flat_counts, flat_dose, profiles[kept], settings
    )
    labels = rank[labels]
    labels[zone] = choice
    hard = np.where(np.isin(hard, dropped), labels[mask.reshape(-1)], rank[hard])
    probabilities = probabilities[:, kept]
    probabilities[zone] = chances
    probabilities /= np.maximum(probabilities.sum(axis=1, keepdims=True), 1e-30)
    return labels, probabilities, hard, len(kept)


def _reassigned(
    grid: np.ndarray,
    zone: np.ndarray,
    counts: np.ndarray,
    dose: np.ndarray,
    profiles: np.ndarray,
    settings: PhaseFindingSettings,
) -> tuple[np.ndarray, np.ndarray]:
    """Phases and probabilities ``(Z,)``, ``(Z, K)`` of the ``zone`` pixels (flat indices;
    ``grid`` holds -1 there, phases 0..K-1 elsewhere) from their own counts and their
    neighbours.

    Each pixel's fit by each phase is the best of the phase alone and its mixes with one
    other phase in which it has the larger share (Poisson chi-square of the window counts, as
    the trace search fits pixels; a mixed boundary pixel goes to its majority phase, not to a
    third phase that looks like the mix, as in the spatial classification's templates), scored
    ``-chi2 / 2`` plus ``spatial_weight`` for each of its 8 neighbours in that phase, by
    iterated conditional modes over the zone (``iterations`` sweeps). The spatial
    classification's probabilities do not serve here: a phase made by the split search has
    probability only on its own pixels.
    """
    own, dose = counts[zone], dose[zone]
    rate = own / np.maximum(dose, 1.0)[:, None]
    log_likelihood = np.full((len(zone), len(profiles)), -np.inf)
    for i in range(len(profiles)):
        for j in range(len(profiles)):
            step = profiles[i] - profiles[j]
            norm = float(step @ step)
            a = np.clip((rate - profiles[j]) @ step / norm, 0.5, 1.0) if norm > 0 else 1.0
            a = np.reshape(a, (-1, 1))
            expected = dose[:, None] * (a * profiles[i] + (1.0 - a) * profiles[j])
            chi = ((own - expected) ** 2 / np.maximum(expected, 0.5)).sum(axis=1)
            np.maximum(log_likelihood[:, i], -0.5 * chi, out=log_likelihood[:, i])
    grid = grid.copy()
    flat = grid.reshape(-1)
    score = log_likelihood
    for _ in range(max(settings.iterations, 1)):
        votes = np.stack(
            [_neighbours_in(grid, k).reshape(-1)[zone] for k in range(len(profiles))], axis=1
        )
        score = log_likelihood + settings.spatial_weight * votes
        choice = np.argmax(score, axis=1)
        if np.array_equal(choice, flat[zone]):
            break
        flat[zone] = choice
    score = score - score.max(axis=1, keepdims=True)
    chances = np.exp(score)
    return flat[zone], chances / chances.sum(axis=1, keepdims=True)


def _placed_by_neighbours(grid: np.ndarray, phase: int) -> np.ndarray:
    """Pixels of one checkerboard colour (``(y + x)`` odd) whose four neighbours (the map's
    edge repeated) all carry ``phase``, whatever their own label.

    Which pixels these are depends on the other colour's labels only, not on the pixels' own
    counts: their summed counts are an unbiased measure of what lies where the phase is. The
    pixels a classification gives a phase are not (they were chosen for looking like its
    template: the mean of a template's pixels leans towards the template's own noise).
    """
    height, width = grid.shape
    grown = np.pad(grid, 1, mode="edge")
    placed = (np.add.outer(np.arange(height), np.arange(width)) % 2) == 1
    for dy, dx in ((0, 1), (2, 1), (1, 0), (1, 2)):
        placed &= grown[dy : dy + height, dx : dx + width] == phase
    return placed


def _neighbours_in(grid: np.ndarray, phase: int) -> np.ndarray:
    """How many of each pixel's 8 neighbours (inside the map) carry ``phase``, ``(y, x)``."""
    height, width = grid.shape
    grown = np.pad(grid == phase, 1).astype(np.int16)
    total = np.zeros(grid.shape, dtype=np.int16)
    for dy in range(3):
        for dx in range(3):
            if dy != 1 or dx != 1:
                total += grown[dy : dy + height, dx : dx + width]
    return total


def _away_from_others(grid: np.ndarray) -> np.ndarray:
    """Pixels whose 8 neighbours (the map's edge repeated) all carry their label (>= 0)."""
    return (grid >= 0) & same_as_neighbours(grid)


def _with_trace(
    mask: np.ndarray, hard: np.ndarray, n_phases: int, flagged: np.ndarray
) -> tuple[np.ndarray, np.ndarray, int]:
    """Training pixels with the unexplained pixels added as one new phase, number K."""
    training = np.full(mask.shape, -1)
    training[mask] = hard
    training[flagged] = n_phases
    used = training >= 0
    return used, training[used], n_phases + 1


def merge_close_phases(
    points: np.ndarray,
    labels: np.ndarray,
    distance: float,
    target: int | None = None,
    floor: np.ndarray | None = None,
) -> tuple[np.ndarray, int]:
    """Merge the closest pair of groups while their Mahalanobis distance is below ``distance``.

    With a ``target`` number of groups, merge closest pairs until exactly that many remain
    (whatever their distance).

    Parameters
    ----------
    points : ndarray, shape (N, F)
        Features of the points.
    labels : ndarray, shape (N,)
        Group 0..K-1 of every point.
    distance : float
        Groups closer than this (pooled within-group covariance) are merged.
    target : int, optional
        Number of groups wanted instead of the distance rule.
    floor : ndarray, shape (F,), optional
        Smallest variance of each feature in the pooled covariance (counting noise): a feature
        whose pooled variance is below it is raised to it.

    Returns
    -------
    labels : ndarray, shape (N,)
        Groups renumbered 0..K'-1.
    n_groups : int
        K'.
    """
    labels = np.unique(labels, return_inverse=True)[1]
    while labels.max() > 0 and (target is None or labels.max() + 1 > target):
        n_groups = labels.max() + 1
        means = np.stack([points[labels == k].mean(axis=0) for k in range(n_groups)])
        pooled = np.cov((points - means[labels]).T).reshape(points.shape[1], points.shape[1])
        if floor is not None:
            pooled = pooled + np.diag(np.clip(floor - np.diag(pooled), 0.0, None))
        precision = np.linalg.pinv(pooled)
        diff = means[:, None, :] - means[None, :, :]
        dist = np.sqrt(np.einsum("abi,ij,abj->ab", diff, precision, diff))
        np.fill_diagonal(dist, np.inf)
        a, b = np.unravel_index(np.argmin(dist), dist.shape)
        if target is None and dist[a, b] >= distance:
            break
        labels = np.unique(np.where(labels == max(a, b), min(a, b), labels), return_inverse=True)[1]
    return labels, int(labels.max()) + 1


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


#: Rows per band of the spatial prior's first sweep and probabilities on the CPU's threads.
ICM_BAND_ROWS = 64


def _potts_icm(
    log_likelihood: np.ndarray, weight: float, iterations: int, device: str = "cpu"
) -> tuple[np.ndarray, np.ndarray]:
    """Iterated conditional modes with an 8-neighbour Potts prior; returns flat labels 0..K-1."""
    return run_to_completion(_potts_icm_steps(log_likelihood, weight, iterations, device))


def _potts_icm_steps(
    log_likelihood: np.ndarray, weight: float, iterations: int, device: str = "cpu"
) -> Computation[tuple[np.ndarray, np.ndarray]]:
    """:func:`_potts_icm`, yielding after every iteration (so that it can be cancelled).

    In float64 (numpy on the CPU, torch on another device: one function, by the arrays' type,
    :mod:`~napari_sigma.compute.arrays`); the neighbour counts are exact integers. After the
    first sweep only the pixels next to a changed label are scored again (the others' scores,
    hence their labels, cannot change): the same result as full sweeps. On the CPU the first
    sweep and the probabilities are computed in bands of rows on every core (each pixel's
    numbers are made by the same element-wise and per-row calls: the same bits).
    ``log_likelihood`` may be a torch tensor already (its device then decides).
    """
    from napari_sigma.compute.arrays import is_tensor
    from napari_sigma.compute.device import resolve_device

    if not is_tensor(log_likelihood) and resolve_device(device) == "cpu":
        likelihood = np.asarray(log_likelihood, dtype=np.float64)
    else:
        import torch

        on = log_likelihood.device if is_tensor(log_likelihood) else resolve_device(device)
        likelihood = torch.as_tensor(log_likelihood, device=on).to(torch.float64)
    return (yield from _potts_icm_arrays(likelihood, weight, iterations))


def _potts_icm_arrays(
    likelihood, weight: float, iterations: int
) -> Computation[tuple[np.ndarray, np.ndarray]]:
    """:func:`_potts_icm_steps` of a float64 ``(y, x, K)`` numpy array or torch tensor."""
    from napari_sigma.compute.arrays import host, namespace, on_host
    from napari_sigma.phases._filters import dilated, neighbour_counts, padded

    xp = namespace(likelihood)
    n_phases = likelihood.shape[-1]
    height = likelihood.shape[0]
    if on_host(likelihood):  # bands of rows on the CPU's threads; one on a device
        bands = [slice(row, row + ICM_BAND_ROWS) for row in range(0, height, ICM_BAND_ROWS)]
        workers = None
    else:
        bands, workers = [slice(0, height)], 1

    def in_bands(function) -> None:
        for _ in threaded_map(function, bands, workers):
            pass

    labels = likelihood.argmax(-1)
    score = likelihood
    near = None  # pixels whose neighbourhood changed in the last sweep
    for _ in range(iterations if weight > 0 else 0):
        if near is None:
            grown = padded(labels, 1, "nearest")
            score = xp.empty_like(likelihood)
            new = xp.empty_like(labels)

            def first_sweep(rows: slice, grown=grown, score=score, new=new, labels=labels):
                counts = neighbour_counts(labels, n_phases, xp.float64, rows=rows, grown=grown)
                counts *= weight
                counts += likelihood[rows]
                score[rows] = counts
                new[rows] = counts.argmax(-1)

            in_bands(first_sweep)
        else:
            at = xp.nonzero(near)
            local = neighbour_counts(labels, n_phases, xp.float64, at)
            local *= weight
            local += likelihood[at]
            score[at] = local
            new = xp.copy(labels)
            new[at] = local.argmax(-1)
        changed = new != labels
        if not bool(changed.any()):
            break
        labels = new
        near = dilated(changed)
        yield Progress("clustering", 0, 1, "spatial prior")
    probabilities = xp.empty_like(score)

    def softmax(rows: slice) -> None:
        probabilities[rows] = _row_softmax(score[rows])

    in_bands(softmax)
    return host(labels.reshape(-1)), host(probabilities.reshape(-1, n_phases))


def _row_softmax(part):
    """Softmax over the last axis: torch's kernel on a tensor; on numpy its formula
    (``exp(v - max)`` times the reciprocal of the row's sum)."""
    if not isinstance(part, np.ndarray):
        import torch

        return torch.softmax(part, dim=-1)
    shifted = np.exp(part - part.max(axis=-1, keepdims=True))
    return shifted * (1.0 / shifted.sum(axis=-1, keepdims=True))


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
