"""Which elements go together over a phase's pixels: the map's test of an intergrowth's pairing.

An intergrowth name (:mod:`napari_sigma.minerals.intergrowth`), ``"quartz + osbornite (65:35)"``,
says which elements are bound together: osbornite's Ti and N in one mineral, quartz's Si and O in
the other. The summed spectrum cannot test that (any pairing of the same elements has the same
sum); the map can. Where the two minerals' shares vary over the phase's pixels, the elements of
one mineral that the other lacks vary together: their net line counts keep one ratio from place
to place (the ratio of their mass fractions times their detection), whatever the share.

:func:`pairing_contradiction` tiles the phase's core pixels into blocks, takes each element's
counts in its principal line's window less the phase's fitted continuum there (per count of the
block), and tests each pair of such elements of one mineral of the name for one common ratio over
the blocks (a chi-square of ``net_y - r net_x`` over its Poisson variance, ``r`` fitted; ``B - 1``
degrees of freedom) at ``identify.FIT_LEVEL``. A pair that does not keep its ratio contradicts the
name: test_TEM's one phase (Si 46, O 25, N 18, Ti 10 at %) is "quartz + osbornite" by its sum,
but over 16 blocks its N keeps its ratio to Si (p 0.39) and not to Ti (p 3e-6): N sits with Si
(a silicon nitride), not in TiN.

Only a mineral of fixed composition is tested (a series' own elements vary with its fractions: the
K and Na of an alkali feldspar Or54 + quartz need not keep a ratio), only on elements the other
component lacks, and only with enough net counts per block for the test to mean something
(``MIN_NET_PER_BLOCK``). A phase whose shares do not vary is never contradicted: its ratios are
constant whatever the pairing.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

MIN_NET_PER_BLOCK = 20.0
"""Mean net counts per block that an element needs to be tested: below it a block's count is
a handful of events and its continuum's share an estimate."""
MIN_BLOCKS = 4
"""Fewer blocks than this (a small phase) are no map to test a pairing on."""
BLOCK_COUNTS = 1500.0
"""The blocks are squares of pixels holding about this many counts each (at least 2 x 2
pixels): a few hundred counts per major element's line."""


@dataclass(frozen=True)
class BlockCounts:
    """A phase's pixels in blocks: each block's total counts and, per element, its counts in
    the element's line window and the continuum's expected share of them per count."""

    totals: np.ndarray
    windows: dict[str, np.ndarray]
    continuum_per_count: dict[str, float]

    def net(self, element: str) -> np.ndarray:
        """The element's net line counts per block (window less the continuum's share)."""
        return self.windows[element] - self.totals * self.continuum_per_count[element]


def block_counts(
    counts: np.ndarray,
    mask: np.ndarray,
    windows: Mapping[str, slice],
    background: np.ndarray,
    block: int | None = None,
) -> BlockCounts:
    """The counts of the pixels of ``mask`` in square blocks (side ``block`` pixels; default:
    about ``BLOCK_COUNTS`` counts each), per element window; ``background``: the fitted
    continuum of the phase's summed spectrum (the same pixels), which gives each window's
    continuum per count. Blocks with fewer than half their pixels in the mask are left out.

    Integer counts are summed per block all at once (``np.bincount`` over the pixels' block
    numbers; a loop over the blocks took ~70 µs a block: ~4 000 at 256², ~65 000 at 1024²);
    their sums are integers, exact in float64 in any order, so the blocks' numbers are those of
    the loop, which other counts (floats, whose sums depend on their order) still go through
    (:func:`_block_counts_by_block`)."""
    counts = np.asarray(counts)
    mask = np.asarray(mask, dtype=bool)
    if not np.issubdtype(counts.dtype, np.integer):
        return _block_counts_by_block(counts, mask, windows, background, block)
    ys, xs = np.nonzero(mask)  # the phase's pixels, row by row
    pixel_totals = counts.sum(axis=-1, dtype=np.int64)[ys, xs]
    total = float(pixel_totals.sum())
    block = _block_side(total, mask, block)
    share = _continuum_shares(background, windows, total)
    ny, nx = mask.shape
    across = -(-nx // block)
    number = (ys // block) * across + xs // block  # the pixel's block, in the loop's order
    sides_y = np.minimum(block, ny - block * np.arange(-(-ny // block)))
    sides_x = np.minimum(block, nx - block * np.arange(across))
    size = np.outer(sides_y, sides_x).ravel()
    kept = np.bincount(number, minlength=size.size) * 2 >= size
    chosen, taken = np.flatnonzero(kept), kept[number]
    number, ys, xs = number[taken], ys[taken], xs[taken]

    def per_block(values: np.ndarray) -> np.ndarray:  # integers: exact sums in float64
        return np.bincount(number, weights=values, minlength=size.size)[chosen]

    totals = per_block(pixel_totals[taken])
    inside = {el: per_block(counts[ys, xs, w].sum(axis=-1, dtype=np.int64))
              for el, w in windows.items()}  # fmt: skip
    return BlockCounts(totals, inside, share)


def _block_side(total: float, mask: np.ndarray, block: int | None) -> int:
    if block is not None:
        return block
    per_pixel = total / max(int(mask.sum()), 1)
    return max(2, int(np.ceil(np.sqrt(BLOCK_COUNTS / max(per_pixel, 1e-9)))))


def _continuum_shares(background: np.ndarray, windows: Mapping[str, slice], total: float) -> dict:
    background = np.asarray(background, dtype=np.float64)
    return {el: float(background[w].sum() / total) if total > 0 else 0.0
            for el, w in windows.items()}  # fmt: skip


def _block_counts_by_block(
    counts: np.ndarray,
    mask: np.ndarray,
    windows: Mapping[str, slice],
    background: np.ndarray,
    block: int | None = None,
) -> BlockCounts:
    """:func:`block_counts` one block at a time (counts that are not integers)."""
    counts = np.asarray(counts)
    mask = np.asarray(mask, dtype=bool)
    pixel_totals = np.where(mask, counts.sum(axis=-1, dtype=np.float64), 0.0)
    total = float(pixel_totals.sum())
    block = _block_side(total, mask, block)
    share = _continuum_shares(background, windows, total)
    totals, inside = [], {el: [] for el in windows}
    ny, nx = mask.shape
    for y in range(0, ny, block):
        for x in range(0, nx, block):
            where = mask[y : y + block, x : x + block]
            if where.sum() * 2 < where.size:
                continue
            pixels = counts[y : y + block, x : x + block][where]
            totals.append(float(pixels.sum(dtype=np.float64)))
            for el, w in windows.items():
                inside[el].append(float(pixels[:, w].sum(dtype=np.float64)))
    return BlockCounts(np.array(totals), {el: np.array(v) for el, v in inside.items()}, share)


def ratio_test(blocks: BlockCounts, x: str, y: str) -> tuple[float, int, float]:
    """``(chi2, degrees of freedom, p)`` of the hypothesis that ``y``'s and ``x``'s net counts
    keep one ratio over the blocks (each block's variance its window counts' Poisson variance)."""
    from scipy.special import chdtrc

    nx_, ny_ = blocks.net(x), blocks.net(y)
    vx = np.maximum(blocks.windows[x], 1.0)
    vy = np.maximum(blocks.windows[y], 1.0)
    r = float(ny_.sum() / nx_.sum()) if nx_.sum() > 0 else 0.0
    for _ in range(8):  # the weighted ratio (its weights depend on it)
        w = 1.0 / (vy + r * r * vx)
        r = float((w * nx_ * ny_).sum() / max((w * nx_ * nx_).sum(), 1e-30))
    chi2 = float(((ny_ - r * nx_) ** 2 / (vy + r * r * vx)).sum())
    dof = len(nx_) - 1
    return chi2, dof, float(chdtrc(dof, chi2)) if dof > 0 else 1.0


def pairing_contradiction(
    components: Sequence[tuple[str, Sequence[str], bool]], blocks: BlockCounts, level: float
) -> str:
    """Why the map contradicts an intergrowth's pairing, or ``""``: ``components`` are the
    name's components, ``(name, elements (visible, analysed), fixed composition)``; each
    fixed-composition one is tested on the pairs of its elements that no other component holds
    and that have enough net counts (see the module docstring); the first pair whose ratio
    varies (p < ``level``) is the reason, with the element of the pair that keeps its ratio to
    another element, if one does."""
    if len(blocks.totals) < MIN_BLOCKS:
        return ""
    testable = {el for el in blocks.windows if blocks.net(el).mean() >= MIN_NET_PER_BLOCK}
    for name, elements, fixed in components:
        if not fixed:
            continue
        others = set().union(*(set(e) for n, e, _ in components if n != name))
        own = sorted(el for el in elements if el in testable and el not in others)
        for x, y in itertools.combinations(own, 2):
            chi2, dof, p = ratio_test(blocks, x, y)
            if p >= level:
                continue
            reason = (f"{name}'s {x} and {y} do not keep one ratio over the phase's pixels "
                      f"(chi2 {chi2:.0f} for {dof} degrees of freedom, {len(blocks.totals)} "
                      f"blocks)")  # fmt: skip
            partner = _keeps_ratio_with(blocks, (x, y), testable, level)
            return f"{reason}; {partner}" if partner else reason
    return ""


def _keeps_ratio_with(blocks: BlockCounts, pair, testable, level: float) -> str:
    """``"N keeps its ratio to Si (p 0.39)"`` for the element of ``pair`` that keeps its ratio
    best to an element outside the pair, or ``""``."""
    best = None
    for el in pair:
        for other in sorted(testable - set(pair)):
            p = ratio_test(blocks, other, el)[2]
            if p >= level and (best is None or p > best[0]):
                best = (p, el, other)
    if best is None:
        return ""
    p, el, other = best
    return f"{el} keeps its ratio to {other} (p {p:.2g})"
