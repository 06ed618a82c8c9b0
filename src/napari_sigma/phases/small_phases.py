"""Small phases of their own composition, after the split search (automatic number of phases).

A phase of a few grains (2 % of a map: millerite NiS beside pentlandite (Fe,Ni)9S8; a sigma
phase with ~8 at % more Cr and ~3 at % more Mo than the ferrite it grows in) has too few
homogeneous pixels for the mixture, too faint a contrast per pixel for the trace search (a pixel
at 70-100 counts misses a few counts of a line), and too few pixels for the split search
(:mod:`~napari_sigma.phases.splitting`: ``min_pixels`` interior pixels, each group
``min_share`` of the phase). Over its grains' pixels the difference is many standard
deviations. Two tests look for it, both deciding on pixels whose counts chose nothing:

1. **Small phases of two compositions.** A phase with fewer interior pixels than the split
   search's ``min_pixels`` (but enough for both groups' covariances: ``4 (F + 1)``) gets the
   split search's own test (checkerboard grouping, the odd pixels' squared t along the even
   pixels' discriminant), its p-value from the exact small-sample distribution,
   ``z^2 ~ F(1, n - 2)``, instead of the chi-square the large phases use; the same
   ``p_value``, ``min_share`` and ``min_relative_difference``.
2. **Inclusions of another composition.** Within every phase, windows of ``(2r+1)^2`` pixels
   (``r`` in :data:`POOL_RADII`) pool the line-window counts of the EVEN pixels of a
   checkerboard. Under one phase a window's counts are Poisson with the phase's profile
   (:func:`~napari_sigma.phases.trace._robust_profiles`) times its dose, so their Pearson
   chi-square is about chi-square with ``F - 1`` degrees of freedom; each phase's windows are
   divided by its dispersion (the median chi-square of its interior windows over the
   chi-square median, at least 1: quasi-Poisson), so a phase whose composition varies flags
   only what lies far outside its own variation. Windows that neither their phase nor a mix of
   two phases explains at :data:`SCREEN_P` are screened; connected groups of at least
   ``trace_min_pixels`` are candidates. Each candidate is then tested on its ODD pixels alone
   (independent of the screening): their summed counts against the best non-negative mix of
   every known phase (weighted least squares; the dispersion), chi-square with ``F - 1``
   degrees of freedom, at the split search's ``p_value`` divided by the number of candidates
   (Bonferroni). The strongest candidate confirmed alone (else the union, when only it is
   confirmed: the union of an oxide's grains and a metal's is neither) gives, from its odd
   pixels, the new phase's profile;
   the other confirmed candidates that it and the known phases explain join it. Their pixels
   are then labelled by the exact minimum of a Potts energy
   (:func:`~napari_sigma.phases.graph_cut.two_label_cut`, the split search's
   ``boundary_cost``) whose data term is each pixel's Poisson log-likelihood ratio of the new
   profile over its phase's. A new phase's other grains, which the omnibus screen missed, are
   then found with its known composition (:mod:`~napari_sigma.phases.grain_growth`). The
   search is repeated while it adds a phase (at most ``trace_passes`` passes, as the trace
   search; the first always), on the map with the last phase of inclusions among the known phases: a slag's
   copper prills beside its magnetite. A phase of a pass after the first must have an inside
   (pixels whose 8 neighbours are all of it) that no mix of the known phases explains at the
   split search's ``p_value`` (:func:`_has_own_inside`): without it a second pass made a
   phase of pixels along the contacts of five phases on the 30x30 Bruker map. Last, each
   added phase's rims go to the phase with the larger share of them, as the mixture's phases'
   boundaries do (:mod:`~napari_sigma.phases.inclusion_rims`).

A phase found either way rests on grains, not on pixels: the support test that follows
(:func:`~napari_sigma.phases.support._without_unsupported_phases`) still asks a thin one
whether its pixels need it.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from napari_sigma.compute.blocks import Ahead
from napari_sigma.compute.progress import Computation, Progress
from napari_sigma.phases.grain_growth import grown_grains
from napari_sigma.phases.splitting import (
    _bounds,
    _checkerboard,
    _interior,
    composition_test,
)

if TYPE_CHECKING:
    from napari_sigma.phases.finding import PhaseFindingSettings

#: Half-widths of the pooling windows of the inclusion test, smallest first (3x3, 5x5).
POOL_RADII: tuple[int, ...] = (1, 2)
#: Per-window p-value below which a window is screened as a candidate's (not a decision: the
#: candidates are decided on their odd pixels).
SCREEN_P = 1e-3
#: Fewest interior windows of a phase that give it its own dispersion (else the map's).
MIN_DISPERSION_WINDOWS = 30


def small_phase_steps(
    raw: np.ndarray,
    mask: np.ndarray,
    state: tuple[np.ndarray, np.ndarray, np.ndarray, int],
    counts: tuple[np.ndarray, np.ndarray] | None,
    settings: PhaseFindingSettings,
    valid: np.ndarray | None = None,
) -> Computation[tuple[np.ndarray, np.ndarray, np.ndarray, int]]:
    """``state`` (flat labels 0..K-1, probabilities (N, K), training labels, K) with the small
    phases of two compositions split and one phase of inclusions added (see the module)."""
    split = settings.split
    if split is None:
        return state
    yield Progress("clustering", 0, 1, "testing small phases")
    state = _small_splits(raw, mask, state, settings, valid)
    if counts is None:
        return state
    known = state[3]
    for inclusion_pass in range(max(settings.trace_passes, 1)):
        # the first pass as it always was; a further one only after a pass added a phase,
        # and guarded (see the module)
        before = state[3]
        state = yield from _with_inclusions(mask, state, counts, settings, valid,
                                            inside=inclusion_pass > 0)  # fmt: skip
        if state[3] == before:
            break
    return _with_majority_rims(mask, state, counts, settings, valid, range(known, state[3]))


def _with_majority_rims(mask, state, counts, settings, valid, added):
    """``state`` with the rims of the ``added`` phases decided by the larger share
    (:mod:`~napari_sigma.phases.inclusion_rims`)."""
    from napari_sigma.phases.inclusion_rims import majority_rims
    from napari_sigma.phases.trace import _robust_profiles, chi_square_threshold

    if len(added) == 0:
        return state
    windows, dose = counts
    shape = dose.shape
    flat_counts = windows.reshape(-1, windows.shape[-1])
    flat_dose = dose.reshape(-1)
    grid = state[0].reshape(shape)
    if valid is not None:
        grid = np.where(valid, grid, -1)
    threshold = chi_square_threshold(flat_counts.shape[1], settings.trace_false_alarm)
    profiles, _ = _robust_profiles(flat_counts.astype(np.float64), flat_dose.astype(np.float64),
                                   state[0].reshape(shape), state[3], threshold)  # fmt: skip
    rims = [majority_rims(flat_counts, flat_dose, grid, profiles, phase,
                          settings.mix_fractions, max(POOL_RADII)) for phase in added]  # fmt: skip
    for phase, rim in zip(added, rims, strict=True):
        if rim.any():
            state = _with_phase(state, mask, rim, phase)
    return state


# ----------------------------------------------------------------------------- 1. small splits


def exact_p_value(test, box_shape=None) -> float:
    """p-value of a :class:`~napari_sigma.phases.splitting.SplitTest`'s ``z_squared`` under
    ``F(1, n - 2)``, ``n`` the odd pixels of its two groups."""
    from scipy.special import fdtrc

    groups = test.groups
    odd = _checkerboard(groups.shape, (slice(0, groups.shape[0]), slice(0, groups.shape[1])), 1)
    n = int(((groups > 0) & odd).sum())
    if n <= 2:
        return 1.0
    return float(fdtrc(1, n - 2, test.z_squared))


def _small_splits(raw, mask, state, settings, valid):
    """``state`` with every phase too small for the split search but large enough for the
    covariances split where its two compositions pass the split test's criteria."""
    from napari_sigma.phases.searches import _with_split

    labels, n_phases = state[0], state[3]
    split = settings.split
    grid = labels.reshape(raw.shape[:2]) + 1
    if valid is not None:
        grid = np.where(valid, grid, 0)
    floor = 4 * (raw.shape[-1] + 1)
    small = replace(split, min_pixels=floor)
    for phase in range(n_phases):
        region = grid == phase + 1
        if not region.any():
            continue
        box = _bounds(region, split.erode + 1)
        if _interior(region[box], split.erode).sum() >= split.min_pixels:
            continue  # the split search's own
        test = composition_test(raw, grid, phase + 1, small, settings.mix_space)
        if test is None:
            continue
        exact = replace(test, p_value=exact_p_value(test))
        if exact.is_split(split):
            state = _with_split(raw, grid, mask, state, phase, exact, split)
    return state


# ----------------------------------------------------------------------------- 2. inclusions


def _with_inclusions(mask, state, counts, settings, valid, inside: bool = False):
    """``state`` with one new phase of inclusions, where a candidate is confirmed; with
    ``inside`` (a pass after the first) only where the new pixels have an inside that is a
    composition of its own (:func:`_has_own_inside`)."""
    from napari_sigma.phases.trace import _robust_profiles, chi_square_threshold

    labels, n_phases = state[0], state[3]
    windows, dose = counts
    shape = dose.shape
    grid = labels.reshape(shape)
    if valid is not None:
        grid = np.where(valid, grid, -1)
    n_windows = windows.shape[-1]
    if n_windows < 2:
        return state
    flat_counts = windows.reshape(-1, n_windows).astype(np.float64)
    flat_dose = dose.reshape(-1).astype(np.float64)
    pixel_threshold = chi_square_threshold(n_windows, settings.trace_false_alarm)
    # the profiles as the support test learns them, made beside the stacking below (on two
    # cores where there are: the same calls, so the same numbers)
    profiles_made = Ahead(
        _robust_profiles, flat_counts, flat_dose, labels.reshape(shape), n_phases,
        pixel_threshold,
    )  # fmt: skip
    even = _checkerboard(shape, (slice(0, shape[0]), slice(0, shape[1])), 0).reshape(-1)
    odd_stacked = _stacked_where(flat_counts, flat_dose, ~even)
    even_stacked = _stacked_where(flat_counts, flat_dose, even).reshape(*shape, -1)
    profiles, _ = profiles_made.result()
    screens = _screens(even_stacked, grid, profiles, n_phases)  # the next radius's made ahead
    for radius in POOL_RADII:
        yield Progress("clustering", 0, 1, f"pooling {2 * radius + 1}x{2 * radius + 1} windows")
        dispersion, screened = next(screens)
        region, new = _confirmed(screened, odd_stacked, grid, profiles, dispersion, settings,
                                 radius)  # fmt: skip
        if region is not None:
            second = _assigned(region, flat_counts, flat_dose, grid, profiles, new, settings)
            if second.any():
                diluted = _diluted_phase(new, odd_stacked, grid, profiles, dispersion, settings)
                if diluted is None:  # its other grains, now that its composition is known
                    second = second | grown_grains(
                        flat_counts, flat_dose, grid, second, profiles, dispersion,
                        settings.trace_min_pixels, SCREEN_P, POOL_RADII,
                    )  # fmt: skip
                if inside and not _has_own_inside(second, odd_stacked, grid, profiles,
                                                  dispersion, settings):  # fmt: skip
                    return state
                return _with_phase(state, mask, second.reshape(-1), diluted)
    return state


def _has_own_inside(second, odd, grid, profiles, dispersion, settings) -> bool:
    """Whether the new pixels ``second`` (``(y, x)``) have an inside whose composition no mix
    of the known phases explains: their pixels whose 8 neighbours are all new pixels (the
    map's edge counts as new), their odd pixels' summed counts against the best non-negative
    mix of ``profiles`` (:func:`_region_test`: chi-square over the dispersion) below the split
    search's ``p_value``, the level that confirmed the first phase of inclusions.

    A pass after the first looks again at the pixels the last new phase left unexplained; at
    the contacts of three or more phases, or along a boundary the phases' profiles do not
    model, it also finds pixels that are no single composition: measured on the 30x30 Bruker
    map, a second pass made a 7th phase of 64 pixels in 6 pieces along the contacts of five
    phases, not one pixel of it away from the others; the slag's copper prills (r ~3 pixels)
    keep 12 inside pixels, its magnetite (seed + 1) 23. Such a zone is one or two pixels wide
    and has no inside, so no test to pass; a grain of its own composition fills its inside.
    The inside pixels are chosen by the cut and the growth, which saw both parities: the test
    is a guard on where the new phase lies, not an independent confirmation of it.
    """
    from scipy.ndimage import binary_erosion

    core = binary_erosion(second, np.ones((3, 3), dtype=bool), border_value=1)
    core_pixels = np.flatnonzero(core.reshape(-1) & (grid.reshape(-1) >= 0))
    if core_pixels.size == 0:
        return False
    p, _, _ = _region_test(core_pixels, odd, grid, profiles, dispersion)
    return p < settings.split.p_value


def _stacked_where(counts: np.ndarray, dose: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """``(N, W + 1)``: each pixel's window ``counts`` and its ``dose`` side by side, times
    ``kept`` (1 or 0), written into one new array (the products of the stacked array by
    ``kept``, without the stacked array itself: at 1024^2 x 10 windows 84 MB less)."""
    stacked = np.empty((len(dose), counts.shape[1] + 1), dtype=np.result_type(counts, dose))
    np.multiply(counts, kept[:, None], out=stacked[:, :-1])
    np.multiply(dose, kept, out=stacked[:, -1])
    return stacked


def _diluted_phase(new, odd, grid, profiles, dispersion, settings) -> int | None:
    """The known phase that is the new composition mixed with others, or None.

    A phase learnt from a few pixels of a small phase and its host (a binder's grain and the
    carbon around it) has a profile that is their mix; the small phase's pure pixels elsewhere
    are no mix of the known profiles, and would become a second phase of the same
    composition. A known phase whose odd pixels' summed counts the new profile and the other
    phases explain (non-negative mix, the split search's ``p_value``, its dispersion) is that
    phase: the new pixels join it.
    """
    from scipy.special import chdtrc

    flat = grid.reshape(-1)
    best, best_p = None, settings.split.p_value
    for k in range(len(profiles)):
        total = odd[flat == k].sum(axis=0)
        if total[-1] <= 0:
            continue
        others = np.vstack([np.delete(profiles, k, axis=0), new])
        chi = _unmixed_chi_square(total, others) / dispersion[k]
        p = float(chdtrc(max(odd.shape[1] - 2, 1), chi))
        if p >= best_p:
            best, best_p = k, p
    return best


def _box_sums(values: np.ndarray, radius: int) -> np.ndarray:
    """Sums of ``values`` ``(y, x, C)`` over each pixel's ``(2r+1)^2`` window (cut at the edge):
    phase finding's own box sum (`napari_sigma.phases._filters.box_sum`) with zeros beyond the
    map, in float64 (integer counts are summed exactly).

    The rows are cut into a band per core, each summed by its own thread with ``r`` rows of
    its neighbours around it (numpy's additions release the GIL): a window of a band's row
    lies within its band and margins, and each sum adds the same terms in the same order as
    over the whole map, so the sums are the same numbers (at 1024^2 x 10 windows a pass over
    84 MB per radius, ~0.2-0.45 s on one core)."""
    from napari_sigma.compute.blocks import threaded_map, usable_cores
    from napari_sigma.phases._filters import box_sum

    values = np.asarray(values, np.float64)
    height = values.shape[0]
    edges = _band_edges(height, usable_cores(), min_rows=max(64, 4 * radius))
    if len(edges) <= 2:
        return box_sum(values, radius, mode="constant")

    def band(k: int) -> np.ndarray:
        top, bottom = edges[k], edges[k + 1]
        low, high = max(top - radius, 0), min(bottom + radius, height)
        return box_sum(values[low:high], radius, mode="constant")[top - low : bottom - low]

    return np.concatenate(list(threaded_map(band, range(len(edges) - 1))), axis=0)


def _band_edges(height: int, bands: int, min_rows: int) -> list[int]:
    """Row edges ``[0, ..., height]`` of at most ``bands`` bands of at least ``min_rows`` rows
    (one band, ``[0, height]``, for a small map or one core)."""
    bands = max(1, min(bands, height // max(min_rows, 1)))
    return [height * k // bands for k in range(bands + 1)]


def _interior_windows(grid: np.ndarray, radius: int) -> np.ndarray:
    """Pixels whose whole ``(2r+1)^2`` window (the edge repeated) carries their phase."""
    from scipy.ndimage import maximum_filter, minimum_filter

    from napari_sigma.compute.blocks import threaded_map

    size = 2 * radius + 1
    # the two filters on two threads (scipy's filters release the GIL): the same maps
    low, high = threaded_map(
        lambda rank: rank(grid, size=size, mode="nearest"), (minimum_filter, maximum_filter)
    )
    return (low == high) & (grid >= 0)


def _own_chi_square(sums, grid, profiles) -> np.ndarray:
    """Each window's Pearson chi-square under its phase's profile, ``(N,)`` (NaN where the
    pixel has no phase or the window no dose): made once, read by the dispersion and the
    screen."""
    from napari_sigma.phases.trace import mixture_chi_square_one

    flat = grid.reshape(-1)
    asked = (flat >= 0) & (sums[:, -1] > 0)
    if asked.all():  # every window (the usual map): the sums' own columns, no gathered copy;
        # each window's chi-square is made by the same calls on the same numbers
        return mixture_chi_square_one(sums[:, :-1], sums[:, -1], profiles, flat)
    asked = np.flatnonzero(asked)
    own = np.full(flat.shape, np.nan)
    own[asked] = mixture_chi_square_one(sums[asked, :-1], sums[asked, -1], profiles, flat[asked])
    return own


def _dispersions(sums, grid, own, n_phases: int, radius: int) -> np.ndarray:
    """Each phase's dispersion ``(K,)``: the median Pearson chi-square (``own``) of its
    interior windows under its profile over the chi-square median (at least 1); the map's
    where a phase has fewer than :data:`MIN_DISPERSION_WINDOWS` interior windows."""
    from scipy.special import chdtri

    flat = grid.reshape(-1)
    inside = np.flatnonzero(_interior_windows(grid, radius).reshape(-1) & (sums[:, -1] > 0))
    if inside.size == 0:
        return np.ones(n_phases)
    median = float(chdtri(max(sums.shape[-1] - 2, 1), 0.5))
    chi = own[inside]
    dispersion = np.full(n_phases, max(float(np.median(chi)) / median, 1.0))
    for k in range(n_phases):
        mine = chi[flat[inside] == k]
        if mine.size >= MIN_DISPERSION_WINDOWS:
            dispersion[k] = max(float(np.median(mine)) / median, 1.0)
    return dispersion


def _screened_windows(sums, grid, profiles, dispersion, own) -> np.ndarray:
    """Boolean ``(y, x)``: windows that neither their phase (``own``: their chi-square under
    it) nor a mix of two phases explains at :data:`SCREEN_P` (chi-square over their phase's
    dispersion)."""
    from scipy.special import chdtri

    from napari_sigma.phases.trace import mixture_chi_square

    flat = grid.reshape(-1)
    threshold = float(chdtri(max(sums.shape[-1] - 2, 1), SCREEN_P))
    asked = np.flatnonzero((flat >= 0) & (sums[:, -1] > 0))
    suspects = asked[own[asked] / dispersion[flat[asked]] > threshold]
    screened = np.zeros(flat.shape, dtype=bool)
    if suspects.size:
        chi = mixture_chi_square(sums[suspects, :-1], sums[suspects, -1], profiles)
        screened[suspects[chi / dispersion[flat[suspects]] > threshold]] = True
    return screened.reshape(grid.shape)


def _screens(even_stacked, grid, profiles, n_phases: int):
    """``(dispersion, screened windows)`` of each radius of :data:`POOL_RADII` in turn
    (:func:`_screen`): the next radius's made on another core while this one's is made and its
    candidates tested (each radius's screen reads only the even pixels' sums and the profiles:
    the same calls, so the same numbers). Closed early (a phase found, the generator dropped),
    the screen made ahead is stopped at its next step."""
    ahead = None
    try:
        for index, radius in enumerate(POOL_RADII):
            screen = None if ahead is None else ahead.result()
            ahead = None
            if index + 1 < len(POOL_RADII):
                following = POOL_RADII[index + 1]
                ahead = Ahead(_screen, even_stacked, grid, profiles, n_phases, following,
                              stoppable=True)  # fmt: skip
            if screen is None:
                screen = _screen(even_stacked, grid, profiles, n_phases, radius)
            yield screen
    finally:
        if ahead is not None:
            ahead.cancel()


def _screen(even_stacked, grid, profiles, n_phases: int, radius: int, stop=None):
    """``(dispersion, screened windows)`` of the windows of ``radius``: the even pixels' pooled
    counts, their chi-square under their phase, each phase's dispersion and the windows that
    neither their phase nor a mix of two explains (:func:`_screened_windows`); None where
    ``stop`` was set before the end."""
    sums = _box_sums(even_stacked, radius).reshape(-1, even_stacked.shape[-1])
    if stop is not None and stop.is_set():
        return None
    own = _own_chi_square(sums, grid, profiles)
    dispersion = _dispersions(sums, grid, own, n_phases, radius)
    if stop is not None and stop.is_set():
        return None
    return dispersion, _screened_windows(sums, grid, profiles, dispersion, own)


def _unmixed_chi_square(total: np.ndarray, profiles: np.ndarray) -> float:
    """Chi-square of summed counts ``(F + 1,)`` (the dose last) under the best non-negative
    mix of ``profiles`` (weighted least squares)."""
    from scipy.optimize import nnls

    counts, dose = total[:-1], total[-1]
    scale = 1.0 / np.sqrt(np.maximum(counts, 1.0))
    _, residual = nnls((dose * profiles * scale).T, counts * scale)
    return float(residual**2)


def _confirmed(screened, odd, grid, profiles, dispersion, settings, radius):
    """``(region, profile)``: the confirmed candidates' pixels (``(y, x)``) and the new phase's
    profile from their odd pixels, or ``(None, None)``.

    A candidate is a connected group of screened windows grown by ``radius`` (the pixels its
    windows pooled); the union of all candidates is one more candidate (the grains of one small
    phase, none strong enough alone). Pixels are handled as flat indices, each candidate grown
    in its own box.
    """
    from scipy.ndimage import label as connected

    groups, n_groups = connected(screened, structure=np.ones((3, 3)))
    sizes = np.bincount(groups.reshape(-1), minlength=n_groups + 1)
    kept = np.flatnonzero(sizes >= settings.trace_min_pixels)
    kept = kept[kept > 0]
    if kept.size == 0:
        return None, None
    centres, regions = _candidates(groups, kept, grid, radius)
    if len(centres) > 1:
        centres.append(np.unique(np.concatenate(centres)))
        regions.append(np.unique(np.concatenate(regions)))
    level = settings.split.p_value / len(regions)
    tested = [_region_test(region, odd, grid, profiles, dispersion) for region in regions]
    confirmed = [k for k, (p, _, _) in enumerate(tested) if p < level]
    if not confirmed:
        return None, None
    # a grain confirmed alone gives the profile; the union (last) only when none is: the union
    # of candidates of two compositions (oxide grains and metal grains) is neither
    alone = [k for k in confirmed if k < len(kept)] or confirmed
    best = min(alone, key=lambda k: (tested[k][0], -tested[k][1]))
    new = _profile(centres[best], odd)
    together = np.vstack([profiles, new])
    joined = [k for k in confirmed if k == best or
              _region_test(regions[k], odd, grid, together, dispersion)[0] >= level]  # fmt: skip
    region = np.zeros(grid.size, dtype=bool)
    region[np.concatenate([regions[k] for k in joined])] = True
    return region.reshape(grid.shape), _profile(
        np.unique(np.concatenate([centres[k] for k in joined])), odd
    )


def _candidates(groups, kept, grid, radius):
    """Flat indices of each kept group's pixels (with a phase) and of the group grown by
    ``radius`` (a square), each grown in its box."""
    from scipy.ndimage import binary_dilation, find_objects

    height, width = grid.shape
    footprint = np.ones((2 * radius + 1, 2 * radius + 1), dtype=bool)
    boxes = find_objects(groups)
    centres, regions = [], []
    for g in kept:
        rows, cols = boxes[g - 1]
        top, left = max(rows.start - radius, 0), max(cols.start - radius, 0)
        box = (slice(top, min(rows.stop + radius, height)),
               slice(left, min(cols.stop + radius, width)))  # fmt: skip
        own = groups[box] == g
        for part, out in ((own, centres), (binary_dilation(own, footprint), regions)):
            y, x = np.nonzero(part & (grid[box] >= 0))
            out.append((y + top) * width + (x + left))
    return centres, regions


def _profile(centre: np.ndarray, odd: np.ndarray) -> np.ndarray:
    """The count profile of the odd pixels of ``centre`` (flat indices: the screened windows'
    own pixels, whose counts chose nothing: the composition where the windows lie, without the
    halo of host pixels the windows reach into)."""
    total = odd[centre].sum(axis=0)
    return total[:-1] / max(total[-1], 1.0)


def _region_test(region, odd, grid, profiles, dispersion):
    """``(p, chi, total)``: the p-value of the ``region``'s (flat indices) odd pixels' summed
    counts under the best non-negative mix of ``profiles`` (chi-square, ``F - 1`` degrees of
    freedom, over the dispersion of the phase holding most of the region), the chi-square and
    the sums."""
    from scipy.special import chdtrc

    total = odd[region].sum(axis=0)
    hosts = grid.reshape(-1)[region]
    hosts = hosts[hosts >= 0]
    if total[-1] <= 0 or hosts.size == 0:
        return 1.0, 0.0, total
    spread = dispersion[np.bincount(hosts).argmax()]
    chi = _unmixed_chi_square(total, profiles) / spread
    return float(chdtrc(max(odd.shape[1] - 2, 1), chi)), chi, total


def _assigned(region, counts, dose, grid, profiles, new, settings) -> np.ndarray:
    """Boolean ``(y, x)``: the ``region`` pixels the new phase takes, by a minimum cut of the
    Poisson log-likelihood ratios of ``new`` over each pixel's phase."""
    from napari_sigma.phases.graph_cut import two_label_cut

    flat = grid.reshape(-1)
    inside = np.flatnonzero(region.reshape(-1) & (flat >= 0))
    host = profiles[flat[inside]]
    floor = 1e-12
    ratio = counts[inside] @ np.log(np.maximum(new, floor))[:, None]
    ratio = ratio[:, 0] - np.einsum("ij,ij->i", counts[inside], np.log(np.maximum(host, floor)))
    ratio -= dose[inside] * (new.sum() - host.sum(axis=1))
    log_ratio = np.zeros(grid.size)
    log_ratio[inside] = ratio
    asked = np.zeros(grid.size, dtype=bool)
    asked[inside] = True
    asked = asked.reshape(grid.shape)
    return asked & two_label_cut(log_ratio.reshape(grid.shape), asked,
                                 settings.split.boundary_cost)  # fmt: skip


def _with_phase(state, mask, second, existing: int | None = None):
    """``state`` with the flat ``second`` pixels as a new phase K (as the split search adds),
    or given to the ``existing`` phase."""
    labels, probabilities, hard, n_phases = state
    old = labels[second]
    target = n_phases if existing is None else existing
    labels = np.where(second, target, labels)
    if existing is None:
        moved = np.zeros((len(labels), 1), dtype=probabilities.dtype)
        moved[second, 0] = probabilities[second, old]
        probabilities = np.concatenate([probabilities, moved], axis=1)
    else:
        probabilities = probabilities.copy()
        probabilities[second, existing] = probabilities[second, old]
    probabilities[second, old] = np.where(old == target, probabilities[second, old], 0.0)
    hard = np.where(second[mask.reshape(-1)], target, hard)
    return labels, probabilities, hard, n_phases + (existing is None)
