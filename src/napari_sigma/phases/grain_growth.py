"""More grains of a small phase once its composition is known (after the inclusion search).

The inclusion search of :mod:`~napari_sigma.phases.small_phases` finds a small phase from
windows that NO known phase or mix explains: an omnibus chi-square over ``F`` line windows. A
phase a few counts apart from its host per pixel (a sigma phase in a duplex ferrite: ~8 at %
more Cr, ~3 at % more Mo) passes that screen in some of its grains only (measured on the fourth
held-out set's duplex steel: 2 of 6 grains never screened, 122 of 347 pixels found, so the
phase was still scored as merged into the ferrite).

Once the new phase exists, its profile ``q`` is known, and the question for every other grain
is no longer "is something unexplained here?" but "is this grain the new phase or its own
phase ``p``?": a one-direction test, far stronger than the omnibus one. Each pixel's Poisson
log-likelihood ratio of ``q`` over its own phase's profile ``p`` (counts ``c``, dose ``d``),

    l = sum_f c_f log(q_f / p_f) - d sum_f (q_f - p_f),

has under its own phase the mean ``d sum_f p_f log(q_f / p_f) - d sum_f (q_f - p_f)`` (minus a
Kullback-Leibler divergence: negative) and the variance ``d sum_f p_f log(q_f / p_f)^2`` (times
the phase's dispersion, quasi-Poisson). On a checkerboard, as every test of the step:

1. **Screen** (even pixels): windows of ``(2r+1)^2`` pixels (``r`` in
   :data:`~napari_sigma.phases.small_phases.POOL_RADII`) whose even pixels' summed ``l`` is
   positive, i.e. more likely the new phase than their own. Connected groups of at least
   ``trace_min_pixels`` such windows (outside the new phase) are candidate grains.
2. **Decision** (odd pixels, independent of the screen): a candidate joins the new phase when
   its odd pixels' summed ``l`` is positive (the grain as a whole is more likely the new phase:
   its maximum-likelihood label) and improbable under its own phase: the normal approximation
   of that sum's law gives a p-value below :data:`~napari_sigma.phases.small_phases.SCREEN_P`
   divided by the number of candidates (Bonferroni). Besides, the new phase with the known
   phases must explain those counts better than any non-negative mix of the known phases
   alone by more than its one added share costs (Akaike), so that a band of pixels mixing two
   known phases, which may move the ratio either way, never joins. The new phase is already
   confirmed at the split search's ``p_value``; this decides where it lies, as the screen's
   level decides which windows are looked at.

The pixels of a confirmed candidate (its screened windows' centres) whose own smallest window
(all its pixels, both parities) has a positive summed ``l`` join the new phase: a grain's edge is
placed within a pixel or two, without the halo of host pixels that a larger window reaches
(measured on five faint grains of 49 pixels, one of them known, seeds 0-5: 140-175 of the other
196 pixels found, 9-47 false; without this 160-182 and 28-112). The profile ``q`` is the summed
counts of all the new phase's pixels over their dose.
"""

from __future__ import annotations

import numpy as np

#: What one more share must save in a chi-square (-2 log-likelihood) to be worth it (Akaike).
AKAIKE_SHARE_COST = 2.0


def grown_grains(
    counts: np.ndarray,
    dose: np.ndarray,
    grid: np.ndarray,
    new_pixels: np.ndarray,
    profiles: np.ndarray,
    dispersion: np.ndarray,
    min_pixels: int,
    level: float,
    radii: tuple[int, ...],
) -> np.ndarray:
    """Boolean ``(y, x)``: the pixels outside ``new_pixels`` that join the new phase.

    Parameters
    ----------
    counts, dose : ndarray, shapes (N, F) and (N,)
        Window counts and total counts of every pixel (flat, float64).
    grid : ndarray of int, shape (y, x)
        Every pixel's phase 0..K-1 before the new phase (-1: no spectrum).
    new_pixels : ndarray of bool, shape (y, x)
        The new phase's pixels.
    profiles, dispersion : ndarray, shapes (K, F) and (K,)
        The known phases' count profiles and dispersions.
    min_pixels : int
        Fewest connected screened windows that make a candidate.
    level : float
        Family-wise p-value of the decision (divided by the number of candidates).
    radii : tuple of int
        Half-widths of the screening windows.
    """
    from napari_sigma.phases.splitting import _checkerboard

    shape = grid.shape
    taken = new_pixels.reshape(-1)
    total = counts[taken].sum(axis=0)
    new = total / max(float(dose[taken].sum()), 1.0)
    flat = grid.reshape(-1)
    asked = (flat >= 0) & ~taken & (dose > 0)
    ratio, mean, variance = _log_ratios(counts, dose, flat, asked, new, profiles, dispersion)
    even = _checkerboard(shape, (slice(0, shape[0]), slice(0, shape[1])), 0).reshape(-1)
    known = (counts, dose, flat, profiles, dispersion, new)
    grown = np.zeros(flat.shape, dtype=bool)
    for radius in radii:
        screened = _screened(ratio * even, shape, radius) & asked
        grown |= _decided(screened.reshape(shape), ~even, (ratio, mean, variance), known,
                          min_pixels, level)  # fmt: skip
    # the pixels: those whose smallest window (all its pixels) is more likely the new phase
    return (grown & _screened(ratio, shape, min(radii))).reshape(shape)


def _log_ratios(counts, dose, flat, asked, new, profiles, dispersion):
    """Each asked pixel's log-likelihood ratio of ``new`` over its own phase's profile, with
    its mean and variance under its own phase (the variance times the phase's dispersion);
    zeros elsewhere."""
    floor = 1e-12
    index = np.flatnonzero(asked)
    own = profiles[flat[index]]
    weights = np.log(np.maximum(new, floor))[None, :] - np.log(np.maximum(own, floor))
    offset = dose[index] * (new.sum() - own.sum(axis=1))
    expected = dose[index, None] * own
    ratio, mean, variance = (np.zeros(flat.shape) for _ in range(3))
    ratio[index] = np.einsum("ij,ij->i", counts[index], weights) - offset
    mean[index] = np.einsum("ij,ij->i", expected, weights) - offset
    variance[index] = np.einsum("ij,ij->i", expected, weights**2) * dispersion[flat[index]]
    return ratio, mean, variance


def _screened(even_ratio: np.ndarray, shape: tuple[int, int], radius: int) -> np.ndarray:
    """Flat booleans: windows whose even pixels' summed log-likelihood ratio is positive."""
    from napari_sigma.phases._filters import box_sum

    sums = box_sum(even_ratio.reshape(*shape, 1), radius, mode="constant")
    return sums.reshape(-1) > 0


def _decided(screened, odd, sums, known, min_pixels: int, level: float) -> np.ndarray:
    """Flat booleans: the pixels of the candidate groups of ``screened`` (``(y, x)``) whose odd
    pixels' summed ratio is positive and below ``level`` over the number of candidates under
    their own phases (normal approximation), and whose odd pixels' summed counts no mix of the
    known phases explains as well (:func:`_not_a_known_mix`)."""
    from scipy.ndimage import label as connected
    from scipy.special import ndtr

    groups, n_groups = connected(screened, structure=np.ones((3, 3)))
    ids = groups.reshape(-1)
    sizes = np.bincount(ids, minlength=n_groups + 1)
    kept = (sizes >= min_pixels) & (np.arange(n_groups + 1) > 0)
    if not kept.any():
        return np.zeros(ids.shape, dtype=bool)
    odd_ids = np.where(odd, ids, 0)
    ratio, mean, variance = (np.bincount(odd_ids, weights=v, minlength=n_groups + 1)
                             for v in sums)  # fmt: skip
    spread = np.sqrt(np.maximum(variance, 1e-300))
    p = ndtr(-(ratio - mean) / spread)
    group_level = level / kept.sum()
    joined = kept & (ratio > 0) & (variance > 0) & (p < group_level)
    for group in np.flatnonzero(joined):
        joined[group] = _not_a_known_mix(np.flatnonzero(odd_ids == group), known)
    return joined[ids]


def _not_a_known_mix(pixels, known) -> bool:
    """Whether the new profile, added to the known phases, explains the summed counts of
    ``pixels`` better than a non-negative mix of the known phases alone by more than its one
    added share costs (Akaike: a drop of the chi-square, over the dispersion of the phase
    holding most of them, of more than 2). A band of pixels mixing two known phases is such a
    mix (measured: a drop of 0-0.4), whatever way it moves the ratio of the new phase over its
    host; a grain of the new phase is not (7-17 on the duplex steel's sigma grains)."""
    from napari_sigma.phases.small_phases import _unmixed_chi_square

    counts, dose, flat, profiles, dispersion, new = known
    total = np.r_[counts[pixels].sum(axis=0), dose[pixels].sum()]
    spread = dispersion[np.bincount(flat[pixels]).argmax()]
    without = _unmixed_chi_square(total, profiles)
    with_new = _unmixed_chi_square(total, np.vstack([profiles, new]))
    return (without - with_new) / spread > AKAIKE_SHARE_COST
