"""Sum spectra and line-intensity sums of groups of pixels of one spectrum image
(:class:`GroupSums`), exact for integer counts: what
:class:`~napari_sigma.phases.statistics.PhaseStatistics` adds and subtracts as labels change.

A group is the pixels of one code (a phase, or a move ``old * capacity + new`` between two
phases). Pixels are summed in cache-sized chunks (:func:`~napari_sigma.phases.pixel_sums.add_pixels`);
a ``block_size x block_size`` block whose pixels all belong to one group is taken whole from the
cache of block sums (:func:`~napari_sigma.phases.pixel_sums.block_sums`); a lazy (dask) cube is
summed in row bands."""

from __future__ import annotations

from typing import Any

import numpy as np

from napari_sigma.compute.progress import Computation, Progress, run_to_completion
from napari_sigma.phases.pixel_sums import _CHUNK_ROWS, _groups, add_pixels, block_sums

_STEP_VALUES = 2**25  # counts summed between two yields of the *_steps generators (~0.05 s)


class GroupSums:
    """Sums over groups of pixels of ``counts`` (y, x, E) and ``intensities`` (y, x, L).

    ``block_size``: side of the blocks whose sum spectra are cached (None: no cache), made by
    :meth:`cache_blocks`.
    """

    def __init__(self, counts: Any, intensities: np.ndarray, block_size: int | None) -> None:
        self.counts = counts
        self.intensities = intensities
        self.block_size = block_size
        self.blocks: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, int]:
        """Spatial shape ``(y, x)``."""
        return (int(self.counts.shape[0]), int(self.counts.shape[1]))

    def cache_blocks(self) -> None:
        """Sum the blocks once (nothing without a block size)."""
        if self.block_size and self.blocks is None:
            self.blocks = block_sums(self.counts, self.block_size)

    def in_bands_steps(self, flat: np.ndarray, stage: str):
        """Sum spectra and intensity sums of every label of a lazy cube, in one pass of row bands."""
        from napari_sigma.phases.spectra import phase_sum_steps

        ids = np.arange(1, int(flat.max(initial=0)) + 1)
        sums = yield from phase_sum_steps(self.counts, flat, ids.size, stage)
        values = self.intensities.reshape(-1, self.intensities.shape[2])
        intensity_sums = np.stack(
            [np.bincount(flat, weights=values[:, i], minlength=ids.size + 1)[1:]
             for i in range(values.shape[1])], axis=1,
        ).reshape(ids.size, values.shape[1])  # fmt: skip
        return ids, sums, intensity_sums

    def by_code(self, flat_index: np.ndarray, codes: np.ndarray):
        """Sum spectra and intensities of the pixels ``flat_index`` grouped by ``codes``.

        Returns the distinct codes (G,), their sum spectra (G, E) and intensity sums (G, L), in
        float64. Blocks of the block cache whose pixels all have one code are taken whole.
        """
        return run_to_completion(self.by_code_steps(flat_index, codes, "statistics"))

    def by_code_steps(
        self, flat_index: np.ndarray, codes: np.ndarray, stage: str
    ) -> Computation[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """:meth:`by_code`, yielding every ``_STEP_VALUES`` counts (same sums, same order)."""
        distinct, group, order, bounds = _groups(codes)
        values = self.intensities.reshape(-1, self.intensities.shape[2])[flat_index[order]]
        intensity_sums = np.add.reduceat(values, bounds[:-1], axis=0, dtype=np.float64)
        sums = np.zeros((distinct.size, self.counts.shape[2]), dtype=np.float64)
        ys, xs = np.divmod(flat_index, self.shape[1])
        per_pixel = np.ones(flat_index.size, dtype=bool)
        if self.blocks is not None:
            per_pixel = self._add_whole_blocks(ys, xs, group, sums)
        step = (
            max(1, _STEP_VALUES // max(int(self.counts.shape[2]), 1) // _CHUNK_ROWS) * _CHUNK_ROWS
        )
        for g in range(distinct.size):
            part = order[bounds[g] : bounds[g + 1]]
            part = part[per_pixel[part]]
            if not part.size:
                continue
            total = np.zeros(sums.shape[1])
            for start in range(0, part.size, step):
                piece = part[start : start + step]
                add_pixels(total, self.counts, ys[piece], xs[piece])
                if part.size > step:
                    yield Progress(stage, 0, 1, "summing the phases' spectra")
            sums[g] += total
        return distinct, sums, intensity_sums

    def intensities_by_code(self, flat_index: np.ndarray, codes: np.ndarray):
        """The distinct codes and the intensity sums of :meth:`by_code` (same order of
        additions, so the same float64 sums), without the spectra."""
        distinct, _, order, bounds = _groups(codes)
        values = self.intensities.reshape(-1, self.intensities.shape[2])[flat_index[order]]
        return distinct, np.add.reduceat(values, bounds[:-1], axis=0, dtype=np.float64)

    def _add_whole_blocks(self, ys, xs, group, sums) -> np.ndarray:
        """Add the sums of whole blocks into ``sums``; return the mask of pixels still to sum."""
        size = self.block_size
        n_by, n_bx = self.blocks.shape[:2]
        inside = np.flatnonzero((ys < n_by * size) & (xs < n_bx * size))
        block = (ys[inside] // size) * n_bx + xs[inside] // size
        filled = np.bincount(block, minlength=n_by * n_bx) == size * size
        if group.size and group.max() == 0:
            whole = np.flatnonzero(filled)
            whole_group = np.zeros(whole.size, dtype=np.intp)
        else:
            low = np.full(n_by * n_bx, group.size)
            high = np.full(n_by * n_bx, -1)
            np.minimum.at(low, block, group[inside])
            np.maximum.at(high, block, group[inside])
            whole = np.flatnonzero(filled & (low == high))
            whole_group = low[whole]
        per_pixel = np.ones(ys.size, dtype=bool)
        if whole.size == 0:
            return per_pixel
        per_pixel[inside[np.isin(block, whole)]] = False
        flat_blocks = self.blocks.reshape(n_by * n_bx, -1)
        for g in np.unique(whole_group):
            chosen = whole[whole_group == g]
            for start in range(0, chosen.size, _CHUNK_ROWS):
                part = flat_blocks[chosen[start : start + _CHUNK_ROWS]]
                sums[g] += part.sum(axis=0, dtype=np.float64)
        return per_pixel
