"""Phases that are two compositions: found grain by grain, where single pixels cannot tell.

Two phases that differ by about 1 wt% of one element (olivines Fo90 and Fo89, say) differ by
less than half a standard deviation of counting noise in a pixel of a few hundred counts: no
per-pixel classifier and no mixture model separates them, and the phase finder sees one phase.
Over a grain of a few hundred pixels the difference is many standard deviations. So each phase
is tested for two compositions in space:

1. **Grouping.** The phase's interior pixels (eroded by ``erode`` pixels, away from mixed
   boundaries) are split in a checkerboard. Features of the even pixels are averaged over a
   ``(2r+1)^2`` window inside the phase, whitened by the phase's covariance and scaled by the
   square root of the pixels averaged, and divided in two by 2-means.
2. **Test on independent pixels.** The odd pixels of the two groups are compared by Hotelling's
   T^2 (their noise is independent of the even pixels that made the groups, so for a uniform
   phase T^2 follows a chi-square with F degrees of freedom, whatever the grouping). The phase is
   two phases when the chi-square p-value is below ``p_value``, each group holds at least
   ``min_share`` of it, and some feature's mean counts differ by at least
   ``min_relative_difference`` between the groups (counting statistics alone would call any
   real gradient in a large map significant).
3. **Labelling.** Every pixel of the phase is relabelled by the exact minimum of a Potts energy
   (:func:`~napari_sigma.phases.graph_cut.two_label_cut`) whose data term is the linear-discriminant
   log-likelihood ratio of the two groups' mean features: the boundary between the two
   compositions follows the evidence of whole grains. Pixels within ``boundary_margin`` of
   another phase carry no evidence (the prior labels them from their neighbours): a few percent
   of magnetite mixed into an olivine pixel adds the iron that tells the olivines apart, and
   counting them turned whole thin grains into the iron-richer twin (twin F1 0.80-0.90 with
   them on the benchmark seeds 0-7, 0.92-0.97 without).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from napari_sigma.features.intensities import inverse_anscombe
from napari_sigma.phases.graph_cut import two_label_cut


@dataclass(frozen=True)
class SplitSettings:
    """Parameters of the search for phases of two compositions.

    Parameters
    ----------
    radius : int
        Half-width of the window over which the grouping averages features.
    erode : int
        Pixels removed from the edge of a phase before testing (mixed boundary pixels).
    p_value : float
        Chi-square p-value of Hotelling's T^2 below which a phase is two compositions.
    min_share : float
        Smallest share of the tested pixels in each group.
    min_relative_difference : float
        Smallest relative difference of mean counts, in some feature, between the groups.
    min_pixels : int
        Fewest interior pixels of a phase to test it.
    boundary_cost : float
        Potts cost of a unit length of boundary between the two compositions (log-likelihood).
    boundary_margin : int
        Pixels this close to another phase carry no evidence in the labelling.
    """

    radius: int = 6
    erode: int = 2
    p_value: float = 1e-6
    min_share: float = 0.1
    min_relative_difference: float = 0.03
    min_pixels: int = 200
    boundary_cost: float = 0.2
    boundary_margin: int = 1


@dataclass(frozen=True)
class SplitTest:
    """Outcome of the two-composition test of one phase.

    Attributes
    ----------
    t_squared : float
        Hotelling's T^2 of the odd pixels of the two groups.
    p_value : float
        Its chi-square p-value.
    share : float
        Share of the smaller group.
    relative_difference : float
        Largest relative difference of mean counts between the groups, over the features.
    groups : ndarray of int, shape (y, x)
        1 and 2 on the tested pixels (the two groups), 0 elsewhere.
    """

    t_squared: float
    p_value: float
    share: float
    relative_difference: float
    groups: np.ndarray

    def is_split(self, settings: SplitSettings) -> bool:
        """Whether the phase is two compositions by the criteria of ``settings``."""
        return (
            self.p_value < settings.p_value
            and self.share >= settings.min_share
            and self.relative_difference >= settings.min_relative_difference
        )


def _windowed_mean(
    features: np.ndarray, mask: np.ndarray, radius: int
) -> tuple[np.ndarray, np.ndarray]:
    """Mean of ``features`` over the ``mask`` pixels of each window, and how many there were."""
    from scipy.ndimage import uniform_filter

    size = (2 * radius + 1, 2 * radius + 1)
    weight = mask.astype(np.float32)
    count = uniform_filter(weight, size, mode="constant") * (size[0] * size[1])
    sums = np.stack(
        [
            uniform_filter((features[..., i] * weight).astype(np.float32), size, mode="constant")
            for i in range(features.shape[-1])
        ],
        axis=-1,
    ) * (size[0] * size[1])
    # float32 sums of up to (2r+1)^2 values: relative error ~1e-6, far below counting noise
    return sums.astype(np.float64) / np.maximum(count, 1e-9)[..., None], count.astype(np.float64)


def _two_means(points: np.ndarray, iterations: int = 50, max_points: int = 50_000) -> np.ndarray:
    """Boolean 2-means assignment, started by the sign along the first principal axis.

    The centres are fitted on at most ``max_points`` evenly strided points, then every point
    goes to the nearer one.
    """
    sample = points[:: max(1, len(points) // max_points)]
    centred = sample - sample.mean(axis=0)
    axis = np.linalg.svd(centred, full_matrices=False)[2][0]
    first = centred @ axis > 0
    for _ in range(iterations):
        if first.all() or not first.any():
            break
        a, b = sample[first].mean(axis=0), sample[~first].mean(axis=0)
        new = ((sample - a) ** 2).sum(axis=1) < ((sample - b) ** 2).sum(axis=1)
        if np.array_equal(new, first):
            break
        first = new
    if first.all() or not first.any():
        return np.ones(len(points), dtype=bool)
    a, b = sample[first].mean(axis=0), sample[~first].mean(axis=0)
    return ((points - a) ** 2).sum(axis=1) < ((points - b) ** 2).sum(axis=1)


def _interior(region: np.ndarray, erode: int) -> np.ndarray:
    """Pixels of ``region`` farther than ``erode`` from other phases (the image edge is not one)."""
    from scipy.ndimage import binary_erosion

    if erode <= 0:
        return region
    padded = np.pad(region, erode, mode="edge")
    eroded = binary_erosion(padded, np.ones((3, 3), dtype=bool), iterations=erode)
    return eroded[erode:-erode, erode:-erode]


def _grouping(raw: np.ndarray, interior: np.ndarray, radius: int) -> np.ndarray:
    """Groups 1/2 of the interior pixels from window means of the even checkerboard pixels."""
    rows, cols = np.indices(interior.shape)
    even = interior & ((rows + cols) % 2 == 0)
    values = raw[even]
    mean = values.mean(axis=0)
    covariance = np.cov(values.T).reshape(raw.shape[-1], raw.shape[-1])
    chol = np.linalg.cholesky(covariance + 1e-9 * np.eye(raw.shape[-1]))
    window_mean, count = _windowed_mean(raw, even, radius)
    scaled = np.linalg.solve(chol, (window_mean[interior] - mean).T).T
    scaled *= np.sqrt(np.maximum(count[interior], 1.0))[:, None]
    groups = np.zeros(interior.shape, dtype=np.int8)
    groups[interior] = np.where(_two_means(scaled), 1, 2)
    return groups


def composition_test(
    raw: np.ndarray,
    labels: np.ndarray,
    phase: int,
    settings: SplitSettings = SplitSettings(),
    space: str = "linear",
) -> SplitTest | None:
    """Test one phase for two compositions (None when it has too few interior pixels).

    Parameters
    ----------
    raw : ndarray, shape (y, x, F)
        Unsmoothed features.
    labels : ndarray of int, shape (y, x)
        Current phase of every pixel.
    phase : int
        The phase tested.
    settings : SplitSettings
        Window, erosion, thresholds.
    space : {"linear", "anscombe"}
        How to recover mean counts from features (for the relative difference).
    """
    from scipy.special import chdtrc  # chi2.sf without importing scipy.stats (~2 s)

    interior = _interior(labels == phase, settings.erode)
    if interior.sum() < settings.min_pixels:
        return None
    raw = raw.astype(np.float64)
    groups = _grouping(raw, interior, settings.radius)
    rows, cols = np.indices(interior.shape)
    odd = (rows + cols) % 2 == 1
    first, second = raw[odd & (groups == 1)], raw[odd & (groups == 2)]
    n_features = raw.shape[-1]
    if min(len(first), len(second)) <= n_features:
        return SplitTest(0.0, 1.0, 0.0, 0.0, groups)
    difference = first.mean(axis=0) - second.mean(axis=0)
    residuals = np.concatenate([first - first.mean(axis=0), second - second.mean(axis=0)])
    pooled = np.cov(residuals.T).reshape(n_features, n_features) + 1e-9 * np.eye(n_features)
    t_squared = float(
        difference
        @ np.linalg.solve(pooled, difference)
        * len(first)
        * len(second)
        / (len(first) + len(second))
    )
    share = min(len(first), len(second)) / (len(first) + len(second))
    return SplitTest(
        t_squared=t_squared,
        p_value=float(chdtrc(n_features, t_squared)),
        share=share,
        relative_difference=_relative_difference(first, second, space),
        groups=groups,
    )


def _relative_difference(first: np.ndarray, second: np.ndarray, space: str) -> float:
    """Largest relative difference of mean counts over the features that differ beyond noise."""
    if space == "anscombe":
        first, second = inverse_anscombe(first), inverse_anscombe(second)
    a, b = first.mean(axis=0), second.mean(axis=0)
    noise = np.sqrt(first.var(axis=0) / len(first) + second.var(axis=0) / len(second))
    real = np.abs(a - b) > 3.0 * np.maximum(noise, 1e-12)
    scale = np.maximum(np.abs(a) + np.abs(b), 1e-12) / 2.0
    relative = np.where(real, np.abs(a - b) / scale, 0.0)
    return float(relative.max()) if relative.size else 0.0


def split_phase(
    raw: np.ndarray, labels: np.ndarray, phase: int, test: SplitTest, settings: SplitSettings
) -> np.ndarray:
    """Boolean ``(y, x)`` mask of the pixels of ``phase`` that belong to its second composition."""
    raw = raw.astype(np.float64)
    region = labels == phase
    first, second = raw[test.groups == 1], raw[test.groups == 2]
    mean_first, mean_second = first.mean(axis=0), second.mean(axis=0)
    residuals = np.concatenate([first - mean_first, second - mean_second])
    n_features = raw.shape[-1]
    pooled = np.cov(residuals.T).reshape(n_features, n_features) + 1e-9 * np.eye(n_features)
    direction = np.linalg.solve(pooled, mean_first - mean_second)
    log_ratio = raw @ direction - direction @ (mean_first + mean_second) / 2.0
    log_ratio[~_interior(region, settings.boundary_margin)] = 0.0
    return region & ~two_label_cut(log_ratio, region, settings.boundary_cost)
