"""The rims of a phase of inclusions: its boundary pixels go to the phase with the larger share.

Every phase the mixture finds has its boundary pixels decided with the mixed-pixel templates
(:mod:`~napari_sigma.phases.mixed_pixels`): a pixel that mixes two phases goes to the one with
the larger share, not to a third phase whose spectrum looks like the mix. A phase the
inclusion search adds afterwards (:mod:`~napari_sigma.phases.small_phases`) was never among
those templates: its grains' rims keep the label the classification gave them without it,
and where the mix of the new phase and its surroundings looks like another known phase, the
rims are that phase. Measured on the fifth held-out set's copper slag (seed 0): magnetite
grains (r 3-5 pixels) in a silicate glass; 168 of the magnetite's 322 pixels (magnetite 53-81
% of them, the rest glass, no olivine) were labelled olivine (Fe2SiO4 is near magnetite +
glass), so the magnetite phase held fewer of its pixels than the olivine did.

So each added phase's rims get the same decision: a pixel of another phase within
:data:`~napari_sigma.phases.small_phases.POOL_RADII`'s largest radius of it (the pixels the
search's windows reached) joins it when the best of its mixes with any other phase in which it
has the larger share (the finding's ``mix_fractions``, and the pure phase) explains the
pixel's window counts better (Poisson likelihood, the phases' count profiles times the pixel's
dose) than every mix in which it has the smaller share or no share. A tie (the half-and-half
mix) keeps the label. On the slag: magnetite 151 -> 255 of 322 pixels (9 glass pixels
taken); seed + 1 127 -> 171 of 210 (16 others).
"""

from __future__ import annotations

import numpy as np

#: Profiles are floored here before their logarithm (a window a phase has no counts in).
PROFILE_FLOOR = 1e-12


def majority_rims(
    counts: np.ndarray,
    dose: np.ndarray,
    grid: np.ndarray,
    profiles: np.ndarray,
    phase: int,
    fractions: tuple[float, ...],
    reach: int,
) -> np.ndarray:
    """Flat booleans: the pixels of other phases within ``reach`` pixels of ``phase`` whose
    best mix with ``phase`` as the larger share beats every mix with it as the smaller share
    or without it (see the module).

    Parameters
    ----------
    counts, dose : ndarray, shapes (N, F) and (N,)
        Window counts and total counts of every pixel (flat).
    grid : ndarray of int, shape (y, x)
        Every pixel's phase 0..K-1 (-1: no spectrum).
    profiles : ndarray, shape (K, F)
        Every phase's counts per unit dose.
    phase : int
        The phase of inclusions.
    fractions : tuple of float
        The larger share of the two-phase mixes (the pure phase is always added).
    reach : int
        Pixels (8-neighbourhood steps) from the phase's pixels that are asked.
    """
    from scipy.ndimage import binary_dilation

    region = grid == phase
    near = binary_dilation(region, np.ones((3, 3), dtype=bool), iterations=reach)
    asked = np.flatnonzero((near & ~region & (grid >= 0)).reshape(-1))
    chosen = np.zeros(grid.size, dtype=bool)
    if asked.size == 0:
        return chosen
    shares = sorted(set(fractions) | {1.0})
    values, totals = counts[asked].astype(np.float64), dose[asked].astype(np.float64)
    others = [k for k in range(len(profiles)) if k != phase]
    best_major = np.full(asked.size, -np.inf)
    best_minor = np.full(asked.size, -np.inf)
    for share in shares:
        for k in others:
            best_major = np.maximum(best_major, _log_likelihood(
                values, totals, share * profiles[phase] + (1 - share) * profiles[k]))  # fmt: skip
            best_minor = np.maximum(best_minor, _log_likelihood(
                values, totals, share * profiles[k] + (1 - share) * profiles[phase]))  # fmt: skip
            for j in others:
                if j != k:
                    best_minor = np.maximum(best_minor, _log_likelihood(
                        values, totals, share * profiles[k] + (1 - share) * profiles[j]))  # fmt: skip
        if share == 1.0:
            best_major = np.maximum(best_major, _log_likelihood(values, totals, profiles[phase]))
    chosen[asked[best_major > best_minor]] = True
    return chosen


def _log_likelihood(counts: np.ndarray, dose: np.ndarray, profile: np.ndarray) -> np.ndarray:
    """Each pixel's Poisson log-likelihood of its window counts under ``profile`` times its
    dose, without the terms that do not depend on the profile."""
    return counts @ np.log(np.maximum(profile, PROFILE_FLOOR)) - dose * profile.sum()
