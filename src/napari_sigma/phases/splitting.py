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
2. **Test on independent pixels.** The odd pixels of the two groups are compared along the
   direction that tells the even pixels' two groups apart (their linear discriminant, made
   from the even pixels alone): the odd pixels' noise is independent of the even pixels that
   made the groups and the direction, so for a uniform phase the squared t statistic of the
   projected odd pixels follows a chi-square with one degree of freedom, whatever the grouping
   and the direction. The phase is two phases when that p-value is below ``p_value``, each
   group holds at least ``min_share`` of it, and some feature's mean counts differ by at least
   ``min_relative_difference`` between the groups (counting statistics alone would call any
   real gradient in a large map significant). The groups of window means are impure where a
   window straddles two grains or another phase's traces (``minor_twin``'s olivines: up to
   28 % of a group in the other twin, whole grains at 35-67 %), which dilutes their difference
   in proportion; where that diluted difference alone would keep a significant phase whole, it
   is measured again between the compositions as the split labels them (step 3's cut, from
   the even pixels' evidence, read on the odd pixels): 0.53-1.0 of the twins' true difference
   on 40 draws, where the groups gave as little as 0.20 (with the published K yields they
   merged the twins on draws 0, 24 and 35: ``benchmarks/bench_twin_rate.py``). Hotelling's T^2
   of the odd pixels (F degrees of freedom) is kept as the ranking of phases to split towards
   a given K. The one-degree test
   is the more powerful where two compositions differ along one direction (hematite and
   magnetite: O/Fe): T^2 = 30.1 over F = 3 features is p 1.3e-6, the projection's 29.3 is
   p 6.2e-8, on the same pixels.
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
        Smallest relative difference of mean counts, in some feature, between the two
        compositions (see :attr:`SplitTest.relative_difference`).
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
        Hotelling's T^2 of the odd pixels of the two groups (F degrees of freedom).
    p_value : float
        The chi-square p-value (one degree of freedom) of the odd pixels' squared t statistic
        along the even pixels' discriminant (``z_squared``).
    share : float
        Share of the smaller group.
    relative_difference : float
        Largest relative difference of mean counts between the groups, over the features
        that differ beyond 3 standard errors (odd pixels); where that keeps a significant test
        from a split, the same between the compositions as the split labels them
        (:func:`_labelled_difference`).
    groups : ndarray of int, shape (y, x)
        1 and 2 on the tested pixels (the two groups), 0 elsewhere.
    """

    t_squared: float
    p_value: float
    share: float
    relative_difference: float
    groups: np.ndarray
    z_squared: float = 0.0
    """The odd pixels' squared t statistic along the even pixels' discriminant."""

    def is_split(self, settings: SplitSettings) -> bool:
        """Whether the phase is two compositions by the criteria of ``settings``."""
        return (
            self.p_value < settings.p_value
            and self.share >= settings.min_share
            and self.relative_difference >= settings.min_relative_difference
        )


#: Rows of the summed-area table of :func:`_windowed_mean` made at a time (a band of ~6 MB for a
#: 1024-pixel-wide map of 10 features: reused, where the whole table was ~90 MB of new memory
#: per call).
WINDOW_BAND_ROWS = 64


def _windowed_mean(
    features: np.ndarray,
    mask: np.ndarray,
    radius: int,
    at: np.ndarray,
    band_rows: int = WINDOW_BAND_ROWS,
) -> tuple[np.ndarray, np.ndarray]:
    """Mean of ``features`` over the ``mask`` pixels of the window of each ``at`` pixel, and how
    many there were (windows are cut at the map's edge); rows in the order of ``features[at]``.

    From a float64 summed-area table, read at the ``at`` pixels only (the window sums of a
    whole map for every feature were most of the test's time). The table is made ``band_rows``
    rows at a time in one reused band (running sums down the rows carried from band to band,
    then running sums along each row): the same additions in the same order as the whole
    table, so the same bits. A window's top corners lie in a band at or above its bottom ones.
    """
    height, width = mask.shape
    n_features = features.shape[-1]
    rows, cols = np.nonzero(at)  # in row order: ``top`` and ``bottom`` ascend with ``rows``
    top, bottom = np.maximum(rows - radius, 0), np.minimum(rows + radius + 1, height)
    left, right = np.maximum(cols - radius, 0), np.minimum(cols + radius + 1, width)
    band_rows = max(1, min(band_rows, height + 1))
    band = np.zeros((band_rows, width + 1, n_features + 1))  # table rows t0..t0+band_rows
    flat = band.reshape(-1, n_features + 1)  # rows gathered by one flat index (2x faster)
    above = np.zeros((width, n_features + 1))  # the running sum down to the band's first row
    top_right = np.empty((len(rows), n_features + 1))
    top_left = np.empty_like(top_right)
    sums = np.empty_like(top_right)
    starts = np.arange(0, height + 1, band_rows)
    top_cut = np.append(np.searchsorted(top, starts), len(rows))  # the pixels of each band
    bottom_cut = np.append(np.searchsorted(bottom, starts), len(rows))
    for number, first in enumerate(starts):
        last = min(first + band_rows, height + 1)  # table rows first..last-1
        inner = band[: last - first, 1:]  # column 0 (and table row 0) stay zero
        low = max(first, 1)
        part = inner[low - first :]  # table rows low..last-1 = map rows low-1..last-2
        np.multiply(features[low - 1 : last - 1], mask[low - 1 : last - 1, :, None],
                    out=part[..., :n_features])  # fmt: skip
        part[..., n_features] = mask[low - 1 : last - 1]
        for row in range(len(part)):  # running sums down the rows: one add per row, in cache
            if row:
                np.add(part[row], part[row - 1], out=part[row])
            elif low > 1:  # the map's first row is its own sum
                np.add(part[row], above, out=part[row])
        if len(part):
            above[...] = part[-1]
        np.cumsum(inner, axis=1, out=inner)

        def corner(span: slice, row: np.ndarray, col: np.ndarray, first=first) -> np.ndarray:
            return np.take(flat, (row[span] - first) * (width + 1) + col[span], axis=0)

        tops = slice(top_cut[number], top_cut[number + 1])
        top_right[tops] = corner(tops, top, right)
        top_left[tops] = corner(tops, top, left)
        bottoms = slice(bottom_cut[number], bottom_cut[number + 1])
        sums[bottoms] = (
            corner(bottoms, bottom, right)
            - top_right[bottoms]
            - corner(bottoms, bottom, left)
            + top_left[bottoms]
        )
    count = np.rint(sums[:, -1])
    return sums[:, :-1] / np.maximum(count, 1e-9)[:, None], count


def _two_means(points: np.ndarray, iterations: int = 50, max_points: int = 50_000) -> np.ndarray:
    """Boolean 2-means assignment, started by the sign along the first principal axis.

    The centres are fitted on at most ``max_points`` evenly strided points, then every point
    goes to the nearer one (``|x - a|^2 < |x - b|^2``, i.e. ``x.(a - b) > (|a|^2 - |b|^2) / 2``).
    """
    sample = points[:: max(1, len(points) // max_points)]
    centred = sample - sample.mean(axis=0)
    axis = np.linalg.eigh(centred.T @ centred)[1][:, -1]
    first = centred @ axis > 0
    total = sample.sum(axis=0)

    def nearer_first(x: np.ndarray, chosen: np.ndarray) -> np.ndarray:
        n_first = int(chosen.sum())
        sum_first = chosen.astype(np.float64) @ sample
        a, b = sum_first / n_first, (total - sum_first) / (len(sample) - n_first)
        return x @ (a - b) > (a @ a - b @ b) / 2.0

    for _ in range(iterations):
        if first.all() or not first.any():
            break
        new = nearer_first(sample, first)
        if np.array_equal(new, first):
            break
        first = new
    if first.all() or not first.any():
        return np.ones(len(points), dtype=bool)
    return nearer_first(points, first)


def _interior(region: np.ndarray, erode: int) -> np.ndarray:
    """Pixels of ``region`` farther than ``erode`` from other phases (the image edge is not one).

    The ``(2e+1)^2`` window of each pixel is all ``region`` (the edge pixels repeat beyond the
    map): ``erode`` 3x3 erosions, as exact integer window sums (numpy; host arrays on every
    device).
    """
    if erode <= 0:
        return region
    height, width = region.shape
    padded = np.pad(region.astype(np.int16), erode, mode="edge")
    rows = padded[:height].copy()
    for shift in range(1, 2 * erode + 1):
        rows += padded[shift : shift + height]
    inside = rows[:, :width].copy()
    for shift in range(1, 2 * erode + 1):
        inside += rows[:, shift : shift + width]
    return inside == (2 * erode + 1) ** 2


def _bounds(region: np.ndarray, margin: int) -> tuple[slice, slice]:
    """Rows and columns of the box around ``region``, grown by ``margin`` inside the map."""
    rows, cols = np.flatnonzero(region.any(axis=1)), np.flatnonzero(region.any(axis=0))
    if rows.size == 0:
        return slice(0, 0), slice(0, 0)
    height, width = region.shape
    return (
        slice(max(rows[0] - margin, 0), min(rows[-1] + margin + 1, height)),
        slice(max(cols[0] - margin, 0), min(cols[-1] + margin + 1, width)),
    )


def _checkerboard(shape: tuple[int, int], box: tuple[slice, slice], parity: int) -> np.ndarray:
    """Pixels of the box whose map coordinates ``(y + x) % 2 == parity``."""
    rows = (np.arange(box[0].start, box[0].start + shape[0]) % 2).astype(np.int8)
    cols = (np.arange(box[1].start, box[1].start + shape[1]) % 2).astype(np.int8)
    return (rows[:, None] ^ cols[None, :]) == parity


def _grouping(
    raw: np.ndarray, interior: np.ndarray, radius: int, box: tuple[slice, slice] | None = None
) -> np.ndarray:
    """Groups 1/2 of the interior pixels from window means of the even checkerboard pixels.

    ``raw`` and ``interior`` may be the crop ``box`` of the map (parity in map coordinates).
    """
    box = box or (slice(0, interior.shape[0]), slice(0, interior.shape[1]))
    even = interior & _checkerboard(interior.shape, box, 0)
    values = raw[even].astype(np.float64)
    mean = values.mean(axis=0)
    covariance = np.cov(values.T).reshape(raw.shape[-1], raw.shape[-1])
    chol = np.linalg.cholesky(covariance + 1e-9 * np.eye(raw.shape[-1]))
    window_mean, count = _windowed_mean(raw, even, radius, interior)
    scaled = np.linalg.solve(chol, (window_mean - mean).T).T
    scaled *= np.sqrt(np.maximum(count, 1.0))[:, None]
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

    region = labels == phase
    if not region.any():
        return None
    # everything the test reads lies in the phase's box (+ the erosion's reach)
    box = _bounds(region, settings.erode + 1)
    interior = _interior(region[box], settings.erode)
    if interior.sum() < settings.min_pixels:
        return None
    crop = raw[box]
    groups = np.zeros(labels.shape, dtype=np.int8)
    groups[box] = _grouping(crop, interior, settings.radius, box)
    odd = _checkerboard(interior.shape, box, 1)
    first = crop[odd & (groups[box] == 1)].astype(np.float64)
    second = crop[odd & (groups[box] == 2)].astype(np.float64)
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
    even = interior & ~odd
    z_squared = _projected_t_squared(
        crop[even & (groups[box] == 1)].astype(np.float64),
        crop[even & (groups[box] == 2)].astype(np.float64),
        first,
        second,
    )
    p_value = float(chdtrc(1, z_squared))
    relative = _relative_difference(first, second, space)
    if _needs_labelled_difference(p_value, share, relative, settings):
        relative = _labelled_difference(crop, region[box], interior, groups[box], odd,
                                        settings, space)  # fmt: skip
    return SplitTest(
        t_squared=t_squared,
        p_value=p_value,
        share=share,
        relative_difference=relative,
        groups=groups,
        z_squared=z_squared,
    )


def _needs_labelled_difference(
    p_value: float, share: float, relative: float, settings: SplitSettings
) -> bool:
    """Whether the relative difference of the 2-means groups alone keeps a significant test
    (``p_value``, ``share``) from a split: then it is measured again between the compositions
    as the split labels them (:func:`_labelled_difference`, a graph cut: measured only where it
    can change the outcome)."""
    return (
        p_value < settings.p_value
        and share >= settings.min_share
        and relative < settings.min_relative_difference
    )


def _labelled_difference(
    crop: np.ndarray,
    region: np.ndarray,
    interior: np.ndarray,
    groups: np.ndarray,
    odd: np.ndarray,
    settings: SplitSettings,
    space: str,
) -> float:
    """The relative difference of the two compositions as the split labels them, measured on
    pixels whose noise made neither the labels nor the direction.

    The 2-means groups of window means are impure where a window straddles the boundary of
    two grains (measured on ``minor_twin``: up to 28 % of a group is the other twin), which
    dilutes the difference between the groups in proportion. The split labels by whole grains
    (:func:`split_phase`'s cut); done here from the even pixels' evidence alone (the odd
    pixels carry none and take their neighbours' labels), the odd interior pixels of its two
    sides measure the difference without the selection of their own noise.
    """
    even = interior & ~odd
    first, second = crop[even & (groups == 1)], crop[even & (groups == 2)]
    n_features = crop.shape[-1]
    if min(len(first), len(second)) <= n_features:
        return 0.0
    first, second = first.astype(np.float64), second.astype(np.float64)
    residuals = np.concatenate([first - first.mean(axis=0), second - second.mean(axis=0)])
    pooled = np.cov(residuals.T).reshape(n_features, n_features) + 1e-9 * np.eye(n_features)
    middle = (first.mean(axis=0) + second.mean(axis=0)) / 2.0
    direction = np.linalg.solve(pooled, first.mean(axis=0) - second.mean(axis=0))
    log_ratio = np.where(even, (crop.astype(np.float64) - middle) @ direction, 0.0)
    side = two_label_cut(log_ratio, region, settings.boundary_cost / 2.0)
    a, b = crop[odd & interior & side], crop[odd & interior & ~side]
    if min(len(a), len(b)) <= n_features:
        return 0.0
    return _relative_difference(a.astype(np.float64), b.astype(np.float64), space)


def _projected_t_squared(
    even_first: np.ndarray, even_second: np.ndarray, first: np.ndarray, second: np.ndarray
) -> float:
    """Squared two-sample t statistic of ``first`` and ``second`` (the odd pixels) projected on
    the linear discriminant of ``even_first`` and ``even_second`` (the even pixels).

    The direction is made from pixels whose noise is independent of the tested ones, so under
    one composition the statistic is a squared t of one degree of freedom (chi-square 1 for the
    thousands of pixels of a tested phase). 0 when a group has too few even pixels.
    """
    n_features = first.shape[-1]
    if min(len(even_first), len(even_second)) <= n_features:
        return 0.0
    residuals = np.concatenate([even_first - even_first.mean(axis=0),
                                even_second - even_second.mean(axis=0)])  # fmt: skip
    pooled = np.cov(residuals.T).reshape(n_features, n_features) + 1e-9 * np.eye(n_features)
    direction = np.linalg.solve(pooled, even_first.mean(axis=0) - even_second.mean(axis=0))
    a, b = first @ direction, second @ direction
    spread = float(((a - a.mean()) ** 2).sum() + ((b - b.mean()) ** 2).sum())
    variance = spread / (len(a) + len(b) - 2)
    if variance <= 0.0:
        return 0.0
    return float((a.mean() - b.mean()) ** 2 / (variance * (1.0 / len(a) + 1.0 / len(b))))


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
