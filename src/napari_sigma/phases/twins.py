"""Pixels of two phases that differ by a minor element: assigned by whole spectra and space.

Two olivines 1 wt % Fe apart differ by about half a standard deviation of counting noise in a
pixel of 200 counts: the phase finder splits them grain by grain
(:mod:`~napari_sigma.phases.splitting`), from a few line windows, and a whole grain of one twin
can end up labelled as the other when its window evidence is weak (seed 0 of the benchmark's
``minor_twin`` case: a 369-pixel Fo89 grain inside a Fo90 label, 2.5 % of the map). The whole
spectrum holds more of the difference than the windows (Fe L next to O K, the continuum; with
the true spectra of that case 0.23 nats of Fisher information per pixel against 0.15 in the
seven windows), and a Poisson likelihood reads it without the windows' overlaps. So, for every
pair of "minor twins":

1. **Twins.** Two phases are twins when one pixel's counts tell them apart by less than
   ``max_separation`` standard deviations of counting noise (:func:`pixel_separation`, from
   their core sums) and their spectra differ little whatever the dose (``max_contrast``): they
   differ by a minor element and cannot be told apart pixel by pixel, only by groups of
   pixels. Any other pair is left alone.
2. **A noise-free model of each twin** (:func:`twin_model`), learnt from every pixel of each
   twin's label away from third phases: their pooled mean spectrum fitted by line families and
   a smooth continuum (:func:`~napari_sigma.xray.fitting.fit_spectrum`), and the difference of
   their means fitted, by weighted least squares, with the line families of the analysed
   elements (each shell free, signed) and a smooth change of the continuum. No channel adds its
   own counting noise to the likelihood ratio (raw means would: 2 048 channels of noise
   against a difference in a few lines).
3. **Scores.** Every pixel of the pair gets ``counts @ log(mu_a / mu_b)``. Where its zero lies
   and how far apart the twins' scores are is measured on the map (:func:`measured_midpoint`:
   labels that put a grain in the wrong twin also bias any model learnt from them), and the
   score becomes a Gaussian log-likelihood ratio along that direction. Pixels within
   ``boundary_margin`` of another phase mix a twin with it (a few per cent of magnetite in an
   olivine pixel looks like the iron-richer twin): their ratio is that of the two mixtures,
   the third phase's share measured in each pixel (:func:`margin_log_ratios`).
4. **Assignment.** The pair's pixels are labelled by the exact minimum of a Potts energy
   (:func:`~napari_sigma.phases.graph_cut.two_label_cut`, ``boundary_cost`` per unit length of
   boundary, as in the split). With ``significance`` > 0 a group of pixels changes twin only
   when it is large and its evidence significant (:func:`significant_changes`): labels that
   are right then stay exactly, but the split's wrong ones stay too.

   The default takes the cut's labels (``significance`` 0) with the mixed pixels' evidence.
   On ``minor_twin`` seeds 0-11 (the report's twin abundance error, pp; before: significance
   3 without the mixed pixels): 0.25 / 0.26, 0.30 / 0.17, 0.12 / 0.22, 0.28 / 0.96,
   0.16 / 0.06, 0.39 / 0.45, 0.08 / 0.11, 0.31 / 0.27, 0.34 / 1.11, 0.30 / 0.38,
   0.79 / 0.53, 0.23 / 0.24; twin pixels right 96.7 % / 96.4 % on average, ARI 0.965 /
   0.963. Neither change alone does it (label areas: the significance rule with the mixed
   pixels leaves seeds 0, 1, 8, 10 at 0.52, 0.51, 0.57, 0.84 pp; the cut without them 8 of 12
   within 0.5). The cost: right labels are not protected, boundaries move by their location
   noise (a pixel or two: 3.9 % of a 96 x 96 scene started from its true labels moved).
5. Steps 2-4 run ``iterations`` times (the second model learns from the corrected labels).

Used after the majority step of the analysis (:mod:`napari_sigma.pipeline.analysis`); the
report's abundances of twins follow their labels
(:func:`napari_sigma.io.mineralogy.abundance_fractions`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from napari_sigma.compute.progress import Computation, Progress
from napari_sigma.energy import EnergyAxis

TWIN_SEPARATION = 1.0
"""Phases whose one-pixel separation (:func:`pixel_separation`) is below this, and whose
spectra differ little (:data:`TWIN_CONTRAST`), are minor twins."""
TWIN_CONTRAST = 0.01
"""Largest squared one-pixel separation per count of a pixel (``separation^2 / counts``: the
spectra's mean squared relative difference, independent of the dose) of minor twins. Olivines
1 wt % Fe apart: 0.0005-0.0012; garnets Prp60/Prp54 (espm): 0.006; different minerals 0.1-1 (at
6 counts per pixel, rutile and a Ti-O-Cu phase of test_TEM.bcf are less than one standard
deviation apart per pixel, but 0.16: not twins)."""


@dataclass(frozen=True)
class TwinSettings:
    """Parameters of the assignment between minor twins.

    Parameters
    ----------
    max_separation : float
        Phases whose one-pixel separation (:func:`pixel_separation`, standard deviations of
        counting noise) is below this are twins...
    max_contrast : float
        ... when their spectra differ by less than this (:data:`TWIN_CONTRAST`).
    boundary_cost : float
        Potts cost of a unit length of boundary between the twins (log-likelihood units; the
        split of :mod:`~napari_sigma.phases.splitting` uses the same).
    boundary_margin : int
        Pixels this close to a third phase (or an unassigned pixel) carry no evidence of the
        twins' own scores...
    mixed_margin : bool
        ... except, when True, through a model of their mixture with the third phase
        (:func:`margin_log_ratios`); pixels next to unassigned pixels only carry none.
    iterations : int
        Rounds of model fit and assignment.
    continuum_splines : int
        B-splines of the smooth change of the continuum between the twins.
    min_pixels : int
        Fewest pixels of each twin (away from third phases) to model it.
    window : int
        Half-width of the windows whose mean log-likelihood ratios place the twins' midpoint
        (:func:`measured_midpoint`).
    significance : float
        With a value > 0, a group of pixels changes twin only when it is large enough for its
        counts to tell the twins apart by this many standard deviations and its evidence is
        this many standard deviations beyond what it would show if it did not
        (:func:`significant_changes`: right labels stay, and so do wrong ones); 0 (the
        default, step 4 of the module) takes the cut's labels as they are.
    """

    max_separation: float = TWIN_SEPARATION
    max_contrast: float = TWIN_CONTRAST
    boundary_cost: float = 0.2
    boundary_margin: int = 1
    mixed_margin: bool = True
    iterations: int = 2
    continuum_splines: int = 6
    min_pixels: int = 50
    window: int = 6
    significance: float = 0.0


@dataclass(frozen=True)
class TwinModel:
    """Expected counts of one pixel of each twin, on the fitted channels.

    Attributes
    ----------
    phases : (int, int)
        The labels (a, b).
    channels : slice
        The fitted channels.
    spectra : ndarray, shape (2, C)
        Expected counts per pixel of a and b on ``channels``.
    separation : float
        ``sqrt(sum (mu_a - mu_b)^2 / mu)``: the one-pixel separation in standard deviations.
    midpoint : float
        ``w`` (:meth:`log_ratio_weights`) times the mean of the two phases' measured mean
        spectra: the log-likelihood ratio's zero halfway between the twins as their labels
        say (the assignment starts from it and measures it on the map,
        :func:`measured_midpoint`).
    """

    phases: tuple[int, int]
    channels: slice
    spectra: np.ndarray
    separation: float
    midpoint: float

    def log_ratio_weights(self) -> tuple[np.ndarray, float]:
        """``w`` and ``c`` with the pixel's log-likelihood ratio of a over b = ``counts @ w - c``.

        ``w = log(mu_a / mu_b)``; ``c`` is :attr:`midpoint`, not ``sum(mu_a - mu_b)``: a
        model that misses the height of a line by a few per cent in both twins moves that sum
        by as much as the twins' whole difference (a bias of every pixel towards one twin),
        while ``w`` itself only loses a little power.
        """
        a, b = self.spectra
        return np.log(a / b), self.midpoint


def twin_model(
    sum_a: np.ndarray,
    sum_b: np.ndarray,
    pixels: tuple[int, int],
    phases: tuple[int, int],
    energy: EnergyAxis,
    elements: Sequence[str],
    beam_energy: float | None,
    settings: TwinSettings = TwinSettings(),
) -> TwinModel | None:
    """The noise-free spectra of two phases from their sum spectra over ``pixels`` pixels each
    (step 2 of the module; the assignment sums every pixel of each twin away from third
    phases).

    None when a phase has fewer than ``settings.min_pixels`` pixels, no element is given or
    the pooled fit is not finite; expected counts are kept above a small floor.
    """
    from napari_sigma.xray.fitting import (
        background_columns,
        family_design,
        fit_range,
        fit_spectrum,
    )

    n_a, n_b = pixels
    if min(n_a, n_b) < settings.min_pixels or not elements:
        return None
    sum_a, sum_b = np.asarray(sum_a, np.float64), np.asarray(sum_b, np.float64)
    pooled = fit_spectrum(sum_a + sum_b, energy, list(elements), beam_energy)
    energy_range, channels = fit_range(energy, beam_energy)
    mean = pooled.model[channels] / (n_a + n_b)
    if not np.all(np.isfinite(mean)) or mean.size == 0:
        return None
    floor = 1e-3 * max(float(mean.mean()), 1e-12)
    mean = np.maximum(mean, floor)
    energies = energy.energies[channels]
    design = family_design(
        energies, energy.scale, list(elements), beam_energy, energy_range, couple_shells=False
    )
    continuum = background_columns(
        energies,
        reference=pooled.background[channels],
        n_splines=settings.continuum_splines,
    )
    basis = np.concatenate([design.columns, continuum], axis=1)
    difference = sum_a[channels] / n_a - sum_b[channels] / n_b
    weight = 1.0 / np.sqrt(mean * (1.0 / n_a + 1.0 / n_b))
    used = np.linalg.norm(basis, axis=0) > 0
    coefficients = np.linalg.lstsq(
        basis[:, used] * weight[:, None], difference * weight, rcond=None
    )[0]
    delta = basis[:, used] @ coefficients
    spectrum_a = mean + n_b / (n_a + n_b) * delta
    spectrum_b = mean - n_a / (n_a + n_b) * delta
    if np.any(spectrum_a <= 0) or np.any(spectrum_b <= 0):
        spectrum_a, spectrum_b = np.maximum(spectrum_a, floor), np.maximum(spectrum_b, floor)
    separation = float(np.sqrt(np.sum((spectrum_a - spectrum_b) ** 2 / mean)))
    measured = (sum_a[channels] / n_a + sum_b[channels] / n_b) / 2.0
    midpoint = float(measured @ np.log(spectrum_a / spectrum_b))
    return TwinModel(phases, channels, np.stack([spectrum_a, spectrum_b]), separation, midpoint)


def pixel_separation(
    sum_a: np.ndarray, pixels_a: int, sum_b: np.ndarray, pixels_b: int, min_counts: float = 10.0
) -> float:
    """How many standard deviations of counting noise one pixel's counts tell two phases apart.

    ``sqrt(sum_c (mu_a - mu_b)^2 / mu_c)`` (the Fisher distance of one pixel between two
    Poisson spectra), estimated from the two phases' sum spectra over ``pixels_a`` and
    ``pixels_b`` pixels without the bias of their own noise: each channel's squared difference
    of means less its expected counting variance ``mean_a / n_a + mean_b / n_b``. Channels with
    fewer than ``min_counts`` counts in both sums together are left out. 0 when the estimate is
    not positive (indistinguishable); NaN when a phase has no pixels.
    """
    if min(pixels_a, pixels_b) <= 0:
        return float("nan")
    sum_a, sum_b = np.asarray(sum_a, np.float64), np.asarray(sum_b, np.float64)
    used = (sum_a + sum_b) >= min_counts
    mean_a, mean_b = sum_a[used] / pixels_a, sum_b[used] / pixels_b
    pooled = (sum_a[used] + sum_b[used]) / (pixels_a + pixels_b)
    excess = (mean_a - mean_b) ** 2 - mean_a / pixels_a - mean_b / pixels_b
    return float(np.sqrt(max(float(np.sum(excess / pooled)), 0.0)))


def twin_pairs(
    core_sums: np.ndarray,
    core_pixels: np.ndarray,
    max_separation: float = TWIN_SEPARATION,
    max_contrast: float = TWIN_CONTRAST,
    disjoint: bool = True,
) -> list[tuple[int, int, float]]:
    """Pairs ``(a, b, separation)`` of labels 1..K closer than ``max_separation`` whose spectra
    differ by less than ``max_contrast`` (:data:`TWIN_CONTRAST`), closest first.

    With ``disjoint``, each phase is in one pair at most (the closest it belongs to; three
    olivines give one pair, the assignment works on two phases); otherwise every such pair.
    """
    present = [int(k) for k in np.flatnonzero(np.asarray(core_pixels) > 0)]
    found = []
    for i, a in enumerate(present):
        for b in present[i + 1 :]:
            separation = pixel_separation(
                core_sums[a], int(core_pixels[a]), core_sums[b], int(core_pixels[b])
            )
            counts = (core_sums[a].sum() + core_sums[b].sum()) / (core_pixels[a] + core_pixels[b])
            contrast = separation**2 / max(float(counts), 1e-12)
            if separation < max_separation and contrast < max_contrast:
                found.append((a + 1, b + 1, separation))
    found.sort(key=lambda pair: pair[2])
    if not disjoint:
        return found
    taken: set[int] = set()
    pairs = []
    for a, b, separation in found:
        if a not in taken and b not in taken:
            pairs.append((a, b, separation))
            taken |= {a, b}
    return pairs


def pixel_scores(
    counts, region: np.ndarray, model: TwinModel, rows_per_block: int = 64
) -> np.ndarray:
    """``counts @ w`` (:meth:`TwinModel.log_ratio_weights`) of every ``region`` pixel, 0 elsewhere.

    The counts are read in bands of ``rows_per_block`` rows, only the rows that hold region
    pixels, only the model's channels.
    """
    from napari_sigma.compute.blocks import RowChunks

    weights = model.log_ratio_weights()[0]
    out = np.zeros(region.shape, np.float64)
    reader = RowChunks(counts, model.channels)  # a lazy cube: each chunk read once, no band copy
    for low, high in _row_bands(region, rows_per_block):
        inside = region[low:high]
        out[low:high][inside] = reader.pixels(low, high, inside).astype(np.float64) @ weights
    return out


def _row_bands(mask: np.ndarray, rows_per_block: int):
    """``(low, high)`` of each band of ``rows_per_block`` rows that holds pixels of ``mask``,
    trimmed to its first and last such row (the rows whose counts are read)."""
    for top in range(0, mask.shape[0], rows_per_block):
        rows = np.flatnonzero(mask[top : top + rows_per_block].any(axis=1))
        if rows.size:
            yield top + int(rows[0]), top + int(rows[-1]) + 1


def measured_midpoint(
    scores: np.ndarray, evidence: np.ndarray, radius: int, start: float, gap: float
) -> tuple[float, float]:
    """The twins' mean scores as the map shows them: their midpoint and their distance.

    ``scores`` are the pixels' ``counts @ w``; they are averaged over the ``evidence`` pixels of
    each ``(2r+1)^2`` window (grains, not pixels), and a two-Gaussian mixture (shared variance)
    is fitted to the averages of windows at least half full, started at ``start -+ gap / 2``.
    Returns the midpoint of its two means and their distance (``start`` and ``gap`` when the
    mixture degenerates). The cores' means are not used: a grain of one twin inside the
    other's label sits in its core (seed 0 of ``minor_twin``: 18 % of the Fo90 core was Fo89)
    and moves the midpoint towards the grain's own twin, so that the grain's own pixels no
    longer tell; and cores chosen by the labels, which the same counts made, differ by more
    than the twins do (separation 0.55-0.62 against 0.48 with the true spectra).
    """
    from scipy.ndimage import uniform_filter

    size = 2 * radius + 1
    weight = uniform_filter(evidence.astype(np.float64), size, mode="constant")
    total = uniform_filter(np.where(evidence, scores, 0.0), size, mode="constant")
    full = evidence & (weight >= 0.5)
    if full.sum() < 20 or gap <= 0:
        return start, gap
    values = total[full] / weight[full]
    means = np.array([start - gap / 2.0, start + gap / 2.0])
    variance = max(float(values.var()) - gap**2 / 4.0, gap**2 / 100.0)
    shares = np.array([0.5, 0.5])
    for _ in range(100):
        log_p = -((values[:, None] - means) ** 2) / (2.0 * variance) + np.log(shares)
        log_p -= log_p.max(axis=1, keepdims=True)
        resp = np.exp(log_p)
        resp /= resp.sum(axis=1, keepdims=True)
        mass = resp.sum(axis=0)
        if np.any(mass < 1.0):
            return start, gap
        new = (resp * values[:, None]).sum(axis=0) / mass
        variance = float((resp * (values[:, None] - new) ** 2).sum() / len(values))
        shares = mass / len(values)
        converged = np.allclose(new, means, rtol=0, atol=1e-6 * gap)
        means = new
        if converged:
            break
    return float(means.mean()), float(abs(means[1] - means[0]))


def neighbour_phases(labels: np.ndarray, pair: tuple[int, int], margin: int) -> np.ndarray:
    """The most frequent label other than ``pair`` and 0 in each pixel's ``(2 margin + 1)^2``
    window (0 where there is none)."""
    from scipy.ndimage import uniform_filter

    size = 2 * max(int(margin), 1) + 1
    best = np.zeros(labels.shape, dtype=np.int64)
    best_share = np.zeros(labels.shape, dtype=np.float64)
    for phase in np.unique(labels).tolist():
        if phase <= 0 or phase in pair:
            continue
        share = uniform_filter((labels == phase).astype(np.float64), size, mode="constant")
        better = share > best_share + 1e-12
        best[better], best_share[better] = phase, share[better]
    return best


def margin_log_ratios(
    counts,
    margin: np.ndarray,
    neighbours: np.ndarray,
    model: TwinModel,
    phase_means: np.ndarray,
    midpoint: float,
    scale: float,
    rows_per_block: int = 64,
) -> np.ndarray:
    """Log-likelihood ratios of the twins at pixels that mix a twin with a third phase.

    A pixel next to a third phase ``o`` (``neighbours``, mean spectrum per pixel ``mu_o`` from
    ``phase_means``, on the model's channels) is modelled as ``f mu_t + (1 - f) mu_o``: ``mu_t``
    is ``mu_a`` or ``mu_b``, ``f`` the twin's share, estimated by weighted least squares along
    ``(mu_a + mu_b) / 2 - mu_o`` and clipped to [0, 1]. The ratio is the interior pixels' one
    (:meth:`TwinModel.log_ratio_weights`, the measured ``midpoint``, ``scale``) with the
    mixture's own weights ``w_f = log(m_a / m_b)``:
    ``(counts @ w_f - (m_a + m_b) / 2 @ w_f - f delta) scale``, ``delta`` the measured
    midpoint less the model's; at ``f = 1`` it is the interior pixels' ratio. Without the third
    phase in the model a few per cent of magnetite in an olivine pixel looks like the
    iron-richer twin; with it, these pixels (a quarter of the twins' pixels on ``minor_twin``)
    pin the twins' outlines along the other phases.

    Returns an array of ``margin``'s shape, 0 outside ``margin`` and where ``neighbours`` is 0.
    """
    from napari_sigma.compute.blocks import RowChunks

    spectrum_a, spectrum_b = model.spectra
    weights = np.log(spectrum_a / spectrum_b)
    twin = (spectrum_a + spectrum_b) / 2.0
    delta = midpoint - float(twin @ weights)
    floor = 1e-3 * max(float(twin.mean()), 1e-12)
    out = np.zeros(margin.shape, np.float64)
    used = margin & (neighbours > 0)
    reader = RowChunks(counts, model.channels)  # a lazy cube: each chunk read once, no band copy
    for low, high in _row_bands(used, rows_per_block):
        inside = used[low:high]
        block = reader.pixels(low, high, inside).astype(np.float64)
        others = neighbours[low:high][inside]
        values = np.zeros(len(block))
        for phase in np.unique(others).tolist():
            chosen = others == phase
            other = np.maximum(np.asarray(phase_means[phase - 1], np.float64), floor)
            direction = twin - other
            variance = np.maximum((twin + other) / 2.0, floor)
            norm = float(direction @ (direction / variance))
            if norm <= 0:
                continue
            x = block[chosen]
            share = np.clip(((x - other) @ (direction / variance)) / norm, 0.0, 1.0)[:, None]
            mix_a = np.maximum(share * spectrum_a + (1 - share) * other, floor)
            mix_b = np.maximum(share * spectrum_b + (1 - share) * other, floor)
            mixed = np.log(mix_a / mix_b)
            centre = np.sum((mix_a + mix_b) / 2.0 * mixed, axis=1)
            values[chosen] = (np.sum(x * mixed, axis=1) - centre - share[:, 0] * delta) * scale
        out[low:high][inside] = values
    return out


def significant_changes(
    before: np.ndarray,
    after: np.ndarray,
    log_ratio: np.ndarray,
    evidence: np.ndarray,
    pair: tuple[int, int],
    gap: float,
    z: float,
) -> np.ndarray:
    """``after`` where its changes from ``before`` are significant, ``before`` elsewhere.

    Each connected group of changed pixels, with ``n`` evidence pixels and a log-likelihood
    ratio ``L`` in favour of its new label, is kept when

    - it is large enough for its counts to tell the twins apart by ``z`` standard deviations:
      ``n gap >= z^2`` (``gap``: the expected log-likelihood ratio of one pixel between the
      twins; over the group the two hypotheses' means lie ``n gap`` apart, with standard
      deviation ``sqrt(n gap)``), and
    - ``L`` lies ``z`` standard deviations above what the group would show if ``before`` were
      right (mean ``-n gap / 2``).

    The minimum cut carves out exactly the pixels whose noise favours the other twin, so a
    small group's own ``L`` is biased: on ``minor_twin`` seeds 0-11 (olivines, ``gap`` ~0.14)
    the cut's groups of 1-42 pixels that reached 3-5 standard deviations were wrong but one
    (a boundary between two grains of different twins costs the Potts prior almost nothing to
    move, and a single pixel with a few Fe counts too many flips); the groups that were whole
    grains labelled as the other twin held 101-316 pixels at 3.9-7 standard deviations. The
    size rule also drops two right groups of 35 and 52 pixels (seeds 5 and 6).
    """
    from scipy.ndimage import label

    changed = after != before
    if z <= 0 or not changed.any():  # z 0: the cut's labels as they are
        return after
    groups, n_groups = label(changed, np.ones((3, 3), dtype=bool))
    towards = np.where(after == pair[0], log_ratio, -log_ratio)
    gain = np.bincount(groups.ravel(), np.where(evidence, towards, 0.0).ravel(), n_groups + 1)
    count = np.bincount(groups.ravel(), evidence.ravel(), n_groups + 1)
    spread = np.sqrt(np.maximum(count * gap, 1e-30))
    keep = (count * gap >= z**2) & (gain + count * gap / 2.0 >= z * spread)
    keep[0] = False
    return np.where(keep[groups], after, before)


def _evidence_sums(
    counts, labels: np.ndarray, evidence: np.ndarray, pair: tuple[int, int], rows: int = 64
) -> tuple[np.ndarray, tuple[int, int]]:
    """Sum spectra ``(2, E)`` of the ``evidence`` pixels of each label of ``pair``, and their
    numbers: every pixel of the twins away from other phases, not only the cores (the
    difference of two olivines is seen at 5-7 standard deviations in cores of ~1 000 pixels;
    its noise cost a quarter of the information of each pixel's ratio).

    A lazy cube is read in its own row chunks, each once, an event cube from its events
    (:class:`~napari_sigma.compute.blocks.RowChunks`, the same sums).
    """
    from napari_sigma.compute.blocks import RowChunks

    sums = np.zeros((2, int(counts.shape[-1])), np.float64)
    reader = RowChunks(counts)
    for top in range(0, labels.shape[0], rows):
        band = evidence[top : top + rows]
        if not band.any():
            continue
        chosen = [band & (labels[top : top + rows] == phase) for phase in pair]
        used = np.flatnonzero(np.logical_or(*chosen).any(axis=1))
        if used.size == 0:
            continue
        low, high = top + int(used[0]), top + int(used[-1]) + 1
        sums += reader.sums(low, high, [mask[low - top : high - top] for mask in chosen])
    pixels = tuple(int((evidence & (labels == phase)).sum()) for phase in pair)
    return sums, pixels


def _near_other(labels: np.ndarray, pair: tuple[int, int], margin: int) -> np.ndarray:
    """Pixels within ``margin`` (8-neighbourhood steps) of a label outside ``pair``."""
    from scipy.ndimage import binary_dilation

    other = ~np.isin(labels, pair)
    if margin <= 0 or not other.any():
        return np.zeros(labels.shape, dtype=bool)
    return binary_dilation(other, np.ones((3, 3), dtype=bool), iterations=margin)


def _reassigned_pair(counts, labels, pair, energy, elements, beam_energy, settings, phase_means):
    """``(labels, model)``: ``labels`` with the pixels of one pair of twins assigned again, round
    after round until nothing moves or no model is fitted, and the pair's last model (None
    where none was fitted)."""
    from napari_sigma.phases.graph_cut import two_label_cut

    result, model = labels, None
    for round_ in range(settings.iterations):
        yield Progress("unmixing", round_, settings.iterations, "assigning minor twins")
        region = np.isin(result, pair)
        evidence = region & ~_near_other(result, pair, settings.boundary_margin)
        sums, pixels = _evidence_sums(counts, result, evidence, pair)
        refit = twin_model(sums[0], sums[1], pixels, pair, energy, elements, beam_energy,
                           settings)  # fmt: skip
        if refit is None:
            break
        model = refit
        log_ratio, weighed, gap = _pair_log_ratios(
            counts, result, region, evidence, pair, model, settings, phase_means
        )
        first = two_label_cut(log_ratio, region, settings.boundary_cost)
        new = np.where(region, np.where(first, pair[0], pair[1]), result).astype(result.dtype)
        new = significant_changes(result, new, log_ratio, weighed, pair, gap,
                                  settings.significance)  # fmt: skip
        if np.array_equal(new, result):
            break
        result = new
    return result, model


def _pair_log_ratios(counts, labels, region, evidence, pair, model, settings, phase_means):
    """``(log_ratio, weighed, gap)`` of one round: each pixel's log-likelihood ratio between
    the twins (the evidence pixels' from their scores, the mixed margin's from the
    neighbours' mixtures), the pixels it weighs, and the expected ratio between the twins."""
    scores = pixel_scores(counts, region, model)
    weights, start = model.log_ratio_weights()
    gap = float((model.spectra[0] - model.spectra[1]) @ weights)
    midpoint, gap = measured_midpoint(scores, evidence, settings.window, start, gap)
    # Gaussian log-likelihood ratio along w: its scale from the measured distance of
    # the twins and the Poisson variance of one pixel's score
    variance = float(weights**2 @ model.spectra.mean(axis=0))
    log_ratio = np.where(evidence, (scores - midpoint) * gap / variance, 0.0)
    weighed = evidence
    if settings.mixed_margin and phase_means is not None:
        mixed = region & ~evidence
        neighbours = neighbour_phases(labels, pair, settings.boundary_margin)
        log_ratio += margin_log_ratios(counts, mixed, neighbours, model,
                                       phase_means[:, model.channels], midpoint,
                                       gap / variance)  # fmt: skip
        weighed = evidence | (mixed & (neighbours > 0))
    gap = gap**2 / variance  # the expected log-likelihood ratio between the twins
    return log_ratio, weighed, gap


def refine_twins_steps(
    counts,
    labels: np.ndarray,
    energy: EnergyAxis,
    elements: Sequence[str],
    beam_energy: float | None,
    settings: TwinSettings = TwinSettings(),
    core_sums: np.ndarray | None = None,
    label_sums: np.ndarray | None = None,
    core_labels: np.ndarray | None = None,
) -> Computation[tuple[np.ndarray, np.ndarray | None, list[TwinModel]]]:
    """Labels with the pixels of every pair of minor twins assigned again (see the module).

    Parameters
    ----------
    counts : array, shape (y, x, E)
        The spectrum image's counts (numpy, memory-mapped or dask).
    labels : ndarray of int, shape (y, x)
        Phases 1..K (0: unassigned).
    energy : EnergyAxis
        Calibration of the counts.
    elements : sequence of str
        Elements whose lines model the difference between twins.
    beam_energy : float or None
        Beam energy (kV).
    settings : TwinSettings
        Separation threshold, boundary cost, margin, rounds.
    core_sums : ndarray, shape (K, E), optional
        Sum spectra of the phases' cores (:func:`~napari_sigma.minerals.interiors.interior_labels`
        of ``labels``), when already summed.
    label_sums : ndarray, shape (K, E), optional
        Sum spectra of the phases' labels. Without ``core_sums``, the cores are summed (a pass
        over the cube) only when two phases' label means lie closer than twice
        ``max_separation`` (pixels mixed with third phases at the boundaries move the label
        means; twice the threshold leaves them room).
    core_labels : ndarray of int, shape (y, x), optional
        :func:`~napari_sigma.minerals.interiors.interior_labels` of ``labels``, when known.

    Yields
    ------
    Progress
        Stage ``"unmixing"``.

    Returns
    -------
    labels : ndarray, shape (y, x)
        ``labels`` itself when no pair of twins was found or nothing moved.
    core_sums : ndarray, shape (K, E) or None
        The core sum spectra of the returned labels (None when ``core_sums`` was not given
        and no pair was found).
    models : list of TwinModel
        The last models of the pairs found.
    """
    from napari_sigma.minerals.interiors import interior_labels
    from napari_sigma.phases.boundaries import moved_spectra
    from napari_sigma.phases.graph_cut import two_label_cut  # noqa: F401 (loaded first, as before)
    from napari_sigma.phases.spectra import phase_sum_spectra

    labels = np.asarray(labels)
    n_phases = int(labels.max(initial=0))
    if core_sums is not None:
        n_phases = max(n_phases, len(core_sums))
    if n_phases < 2:
        return labels, core_sums, []
    if core_sums is None and label_sums is not None:
        sizes = np.bincount(labels.ravel(), minlength=n_phases + 1)[1 : n_phases + 1]
        if not twin_pairs(np.asarray(label_sums), sizes, 2.0 * settings.max_separation, np.inf):
            return labels, core_sums, []
    cores = interior_labels(labels) if core_labels is None else core_labels
    if core_sums is None:
        core_sums = phase_sum_spectra(counts, cores, n_phases)
    core_sums = np.asarray(core_sums, np.float64)
    core_pixels = np.bincount(cores.ravel(), minlength=n_phases + 1)[1 : n_phases + 1]
    pairs = twin_pairs(core_sums, core_pixels, settings.max_separation, settings.max_contrast)
    if not pairs:
        return labels, core_sums, []
    result, final = labels, []
    phase_means = core_sums / np.maximum(core_pixels, 1)[:, None] if settings.mixed_margin else None
    for a, b, _ in pairs:
        result, model = yield from _reassigned_pair(
            counts, result, (a, b), energy, elements, beam_energy, settings, phase_means
        )
        if model is not None:
            final.append(model)
    if result is not labels:
        new_cores = interior_labels(result)
        core_sums = core_sums + moved_spectra(counts, cores, new_cores, n_phases)
    return result, core_sums, final
