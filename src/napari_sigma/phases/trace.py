"""Trace phases: pixels that no phase, nor a boundary mix of two, explains.

A trace phase (< 1 % of a map, in grains a few pixels across) has no homogeneous pixels, so the
mixture fitted on grain interiors never sees it. Its pixels are found afterwards from their own
window counts: for every pair of known phases ``(i, j)`` the best mix ``a p_i + (1 - a) p_j`` of
their count profiles (``0 <= a <= 1``; ``a = 1`` is the pure phase) is fitted and its Poisson
chi-square computed. A pixel whose smallest chi-square exceeds the ``1 - false_alarm`` quantile
of the chi-square distribution is unexplained; connected groups of at least ``min_pixels`` such
pixels become trace-phase candidates. Measured on the seeded synthetic cases (false alarm 1e-9,
6 pixels): all 87 pixels of a 0.5 % zircon phase found (with 29 mixed pixels around its grains),
and no pixel flagged on the demo, eight-phase, easy, low-dose and particle cases.

At high counts (2 000 per pixel) two things used to pass for trace phases, and are now excluded:
profiles biased by mixed boundary pixels and by trace grains labelled with their host (the
profiles now come from interior pixels that the phase's median profile explains), and pixels
where three phases meet (a group whose summed counts a non-negative mix of known phases explains,
or whose pixels the new phase mostly fails to explain, is dropped).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from napari_sigma.compute.progress import Computation, Progress, run_to_completion
from napari_sigma.phases.end_members import same_as_neighbours

#: Pixels per phase (at least, up to twice) whose median profile sorts out outliers.
MEDIAN_PIXELS = 20_000


def phase_profiles(
    counts: np.ndarray, dose: np.ndarray, labels: np.ndarray, n_phases: int
) -> np.ndarray:
    """Fraction of a phase's counts in each window, ``(K, F)``, from labelled pixels.

    Parameters
    ----------
    counts : ndarray, shape (N, F)
        Window counts of every pixel.
    dose : ndarray, shape (N,)
        Total counts of every pixel.
    labels : ndarray, shape (N,)
        Phase 0..K-1 of every pixel (negative: not used).
    n_phases : int
        K.
    """
    used = labels >= 0
    groups, n_groups = labels, n_phases
    if not used.all():  # the unused pixels summed into one more group, dropped: bincount adds
        # each group's rows in row order, so the sums are those of the used rows alone (no
        # copy of the used rows of the (N, F) table)
        groups, n_groups = np.where(used, labels, n_phases), n_phases + 1
    window_sums = _group_sums(counts, groups, n_groups)[:n_phases]
    dose_sums = np.bincount(groups, weights=dose, minlength=n_groups)[:n_phases]
    return window_sums / np.maximum(dose_sums, 1.0)[:, None]


def _group_sums(values: np.ndarray, groups: np.ndarray, n_groups: int) -> np.ndarray:
    """Sums ``(n_groups, F)`` of the rows of ``values`` per group (in row order, float64).

    One ``bincount`` per column, the columns on every core (numpy releases the GIL; each
    column's sums are the same whichever thread makes them).
    """
    from napari_sigma.compute.blocks import threaded_map

    def column(f: int) -> np.ndarray:
        return np.bincount(groups, weights=values[:, f], minlength=n_groups)

    columns = list(threaded_map(column, range(values.shape[1])))
    return np.stack(columns, axis=1).reshape(n_groups, values.shape[1])


def mixture_chi_square(counts: np.ndarray, dose: np.ndarray, profiles: np.ndarray) -> np.ndarray:
    """Smallest Poisson chi-square of each pixel under one phase or a two-phase mix, ``(N,)``."""
    return run_to_completion(mixture_chi_square_steps(counts, dose, profiles))


def mixture_chi_square_steps(
    counts: np.ndarray, dose: np.ndarray, profiles: np.ndarray
) -> Computation[np.ndarray]:
    """:func:`mixture_chi_square`, yielding after the mixes of each phase (cancellable)."""
    rate = counts / np.maximum(dose, 1.0)[:, None]
    best = np.full(counts.shape[0], np.inf)
    for i in range(len(profiles)):
        yield Progress("clustering", i, len(profiles), "searching unexplained pixels")
        for j in range(i, len(profiles)):
            step = profiles[i] - profiles[j]
            norm = float(step @ step)
            if norm > 0:
                a = np.clip((rate - profiles[j]) @ step / norm, 0.0, 1.0)[:, None]
            else:
                a = np.ones((len(rate), 1))
            expected = dose[:, None] * (a * profiles[i] + (1.0 - a) * profiles[j])
            chi = ((counts - expected) ** 2 / np.maximum(expected, 0.5)).sum(axis=1)
            np.minimum(best, chi, out=best)
    return best


def unexplained_pixels(*args: Any, **kwargs: Any) -> np.ndarray:
    """:func:`unexplained_pixels_steps` run to its end (same arguments and result)."""
    return run_to_completion(unexplained_pixels_steps(*args, **kwargs))


def unexplained_pixels_steps(
    counts: np.ndarray,
    dose: np.ndarray,
    labels: np.ndarray,
    n_phases: int,
    false_alarm: float = 1e-9,
    min_pixels: int = 6,
    min_explained: float = 0.25,
) -> Computation[np.ndarray]:
    """Boolean ``(y, x)`` map of connected groups of pixels that no phase or mix explains.

    A group is kept only when at least ``min_explained`` of its pixels are explained by the
    new phase (the mean profile of the kept groups) or its mix with a known phase: a trace
    phase is a composition of its own, whereas pixels where three phases meet (detectable at
    high counts) are each a different mixture. Measured: 4-6 % of such junction pixels
    explained on the eight-phase case at 2 000 counts per pixel; 100 % and 41 % of the zircon
    group at 200 and 2 000 counts per pixel.

    Parameters
    ----------
    counts : ndarray, shape (y, x, F)
        Raw window counts of every pixel (Poisson: not background-subtracted, not smoothed).
    dose : ndarray, shape (y, x)
        Total counts of every pixel.
    labels : ndarray, shape (y, x)
        Current phase 0..K-1 of every pixel.
    n_phases : int
        K.
    false_alarm : float
        Probability that a pixel of a known phase is flagged by chance.
    min_pixels : int
        Smallest 8-connected group of flagged pixels that counts.
    min_explained : float
        Smallest share of a group's pixels the new phase must explain.
    """
    flat_counts = counts.reshape(-1, counts.shape[-1]).astype(np.float64)
    flat_dose = dose.reshape(-1).astype(np.float64)
    threshold = chi_square_threshold(counts.shape[-1], false_alarm)
    profiles, suspects = _robust_profiles(flat_counts, flat_dose, labels, n_phases, threshold)
    flagged = np.zeros(flat_dose.shape, dtype=bool)
    if suspects.size:
        chi = yield from mixture_chi_square_steps(
            flat_counts[suspects], flat_dose[suspects], profiles
        )
        flagged[suspects[chi > threshold]] = True
    yield Progress("clustering", 0, 1, "testing unexplained groups")
    return new_phase_groups(
        flat_counts,
        flat_dose,
        profiles,
        flagged.reshape(dose.shape),
        threshold,
        min_pixels,
        min_explained,
    )


def chi_square_threshold(n_windows: int, false_alarm: float) -> float:
    """The ``1 - false_alarm`` quantile of the chi-square of a pixel's ``n_windows`` counts."""
    from scipy.special import gammaincinv  # chi2.ppf without importing scipy.stats (~2 s)

    dof = max(n_windows - 1, 1)
    return float(2.0 * gammaincinv(dof / 2, 1.0 - false_alarm))


def new_phase_groups(
    counts: np.ndarray,
    dose: np.ndarray,
    profiles: np.ndarray,
    flagged: np.ndarray,
    threshold: float,
    min_pixels: int = 6,
    min_explained: float = 0.25,
) -> np.ndarray:
    """The connected groups of ``flagged`` pixels (``(y, x)``: unexplained by the phases of
    ``profiles``) that make a new phase: at least ``min_pixels`` pixels, their summed counts no
    mix of the known phases, and ``min_explained`` of their pixels explained by the groups'
    own mean profile (or its mix with a known phase). ``counts`` ``(N, F)`` and ``dose``
    ``(N,)`` are flat; returns a boolean ``(y, x)`` map.
    """
    from scipy.ndimage import label

    regions, n_regions = label(flagged, structure=np.ones((3, 3)))
    if n_regions == 0:
        return flagged
    keep = np.bincount(regions.reshape(-1)) >= min_pixels
    keep[0] = False
    keep &= ~_mixtures_of_known_phases(counts, dose, profiles, regions, threshold)
    for _ in range(2):  # the new phase's profile from the groups kept, then the check again
        keep &= _explained_share(counts, dose, profiles, regions, keep, threshold) >= (
            min_explained
        )
    return keep[regions]


def _mixtures_of_known_phases(
    counts: np.ndarray, dose: np.ndarray, profiles: np.ndarray, regions: np.ndarray, threshold
) -> np.ndarray:
    """Groups whose summed counts a non-negative mix of any known phases explains.

    Pixels where three phases meet are no pair's mix, but their sum is a mix of the three: a
    group that is one is not a new phase (chi-square of the weighted non-negative least-squares
    fit below the same threshold).
    """
    from scipy.optimize import nnls

    ids = regions.reshape(-1)
    n_groups = int(ids.max()) + 1
    sums = _group_sums(counts, ids, n_groups)
    doses = np.bincount(ids, weights=dose, minlength=n_groups)
    mixture = np.zeros(n_groups, dtype=bool)
    for group in range(1, n_groups):
        scale = 1.0 / np.sqrt(np.maximum(sums[group], 1.0))
        design = (doses[group] * profiles * scale).T
        _, residual = nnls(design, sums[group] * scale)
        mixture[group] = residual**2 <= threshold
    return mixture


def _explained_share(
    counts: np.ndarray,
    dose: np.ndarray,
    profiles: np.ndarray,
    regions: np.ndarray,
    keep: np.ndarray,
    threshold: float,
) -> np.ndarray:
    """Share of each group's pixels that the kept groups' mean profile (or a mix) explains."""
    share = np.zeros(len(keep))
    members = keep[regions].reshape(-1)
    if not members.any():
        return share
    new = counts[members].sum(axis=0) / max(dose[members].sum(), 1.0)
    flagged = regions.reshape(-1) > 0
    chi = mixture_chi_square(counts[flagged], dose[flagged], np.vstack([profiles, new]))
    ids = regions.reshape(-1)[flagged]
    explained = np.bincount(ids, weights=chi <= threshold, minlength=len(keep))
    return explained / np.maximum(np.bincount(ids, minlength=len(keep)), 1)


def mixture_chi_square_one(
    counts: np.ndarray,
    dose: np.ndarray,
    profiles: np.ndarray,
    labels: np.ndarray,
    block: int = 32768,
) -> np.ndarray:
    """Poisson chi-square of each pixel under its own phase's profile, ``(N,)``.

    In blocks of ``block`` pixels (the temporaries stay in cache; same values), on every core
    (:func:`~napari_sigma.compute.blocks.threaded_map`; numpy releases the GIL, and each
    pixel's number is made by the same element-wise and per-row calls whichever thread).
    """
    from napari_sigma.compute.blocks import threaded_map

    out = np.empty(len(counts))

    def chi_square(start: int) -> None:
        part = slice(start, start + block)
        expected = dose[part, None] * profiles[labels[part]]
        residual = counts[part] - expected
        residual *= residual
        residual /= np.maximum(expected, 0.5)
        out[part] = residual.sum(axis=1)

    for _ in threaded_map(chi_square, range(0, len(counts), block)):
        pass
    return out


def _robust_profiles(
    counts: np.ndarray, dose: np.ndarray, labels: np.ndarray, n_phases: int, threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """Phase profiles from interior pixels that their phase explains, and the suspect pixels.

    Pixels that the median profile of their phase does not explain (a trace grain labelled
    with its host, say) are left out of the mean profiles: at high counts the bias of a mean
    over them alone made every pixel of the host unexplained.
    """
    interior = _interior_labels(labels, n_phases)
    flat = labels.reshape(-1)
    profiles = _median_profiles(counts, dose, interior, n_phases)
    outliers = mixture_chi_square_one(counts, dose, profiles, flat) > threshold
    cleaned = np.where(outliers, -1, interior)
    kept = np.bincount(cleaned[cleaned >= 0], minlength=n_phases) > 0
    profiles = phase_profiles(counts, dose, np.where(kept[flat], cleaned, interior), n_phases)
    # a pixel its own phase explains needs no pair test (most pixels: grain interiors)
    suspects = np.flatnonzero(mixture_chi_square_one(counts, dose, profiles, flat) > threshold)
    return profiles, suspects


def _median_profiles(
    counts: np.ndarray,
    dose: np.ndarray,
    labels: np.ndarray,
    n_phases: int,
    max_pixels: int = MEDIAN_PIXELS,
) -> np.ndarray:
    """Per-window median of the count fractions of each phase's pixels (robust to outliers).

    A phase of more than ``2 * max_pixels`` pixels takes every n-th of them (raster order:
    spread over its grains): the median of 20 000 pixels lies within ~1 % of a pixel's
    noise of the median of all, and it only sorts out the outliers before the mean profiles.
    """
    profiles = []
    for k in range(n_phases):
        members = np.flatnonzero(labels == k)
        if members.size == 0:  # the mean profile (zero counts) of a phase without pixels
            profiles.append(phase_profiles(counts, dose, labels, n_phases)[k])
            continue
        members = members[:: max(1, members.size // max_pixels)]
        rates = counts[members] / np.maximum(dose[members], 1.0)[:, None]
        profiles.append(np.median(rates, axis=0))
    return np.stack(profiles)


def _interior_labels(labels: np.ndarray, n_phases: int) -> np.ndarray:
    """Flat labels of the pixels whose 8 neighbours share their phase (-1 elsewhere).

    Profiles from all of a phase's pixels include its boundary pixels, mixed with the
    neighbouring phases; at high counts their bias alone exceeds the chi-square threshold in
    pure pixels (measured: 2 000-3 800 pixels flagged per pass on the particle case at 2 000
    counts per pixel). A phase without interior pixels (a trace phase in tiny grains) keeps all
    of its pixels.
    """
    interior = np.where(same_as_neighbours(labels), labels, -1).reshape(-1)
    present = np.bincount(interior[interior >= 0], minlength=n_phases) > 0
    flat = labels.reshape(-1)
    return np.where(present[flat], interior, flat)
