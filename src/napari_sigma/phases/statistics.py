"""Statistics of a label image over a spectrum image, with fast incremental updates.

A label image is int ``(y, x)``: 0 = unassigned, phases 1..K. It may come from the analysis or be
painted by hand; a user may paint a new label id at any time. For every phase the table holds the
pixel count, the area (fraction and µm² when calibrated), the mean spectrum, the mean line
intensities and the connected regions.

Regions are **8-connected**: pixels touching at an edge or at a corner belong to the same region
(``scipy.ndimage.label`` with a 3x3 structure), which matches how a grain looks on screen.

:class:`PhaseStatistics` keeps running sums per phase and, on :meth:`PhaseStatistics.update`,
moves only the changed pixels between phases (a brush stroke touches a few hundred pixels of a
multi-GiB cube). To make large edits (bucket fills) cheap too, it keeps the sum spectrum of every
``block_size x block_size`` block of the image: a block whose pixels all made the same change is
moved with one block spectrum instead of ``block_size**2`` pixel spectra. Sums are exact for integer
counts (float64 accumulators, integer partial sums).

This module holds :class:`PhaseStatistics` and the one-shot :func:`phase_table`; the rest lives by
domain: :mod:`~napari_sigma.phases.tables` (``PhaseTable``, ``main_elements``,
``phase_display_name``), :mod:`~napari_sigma.phases.group_sums` (``GroupSums``: the sums of
groups of pixels, whole blocks at once, that the statistics add and subtract) and
:mod:`~napari_sigma.phases.pixel_sums` (``sum_pixels``, ``add_pixels``, ``block_sums``,
``region_sizes``). Their names are importable from here as before;
change them in their own modules, patch them in the module that reads them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from napari_sigma.compute.progress import Computation, Progress, run_to_completion
from napari_sigma.phases.group_sums import GroupSums

# moved by domain (eighteenth session): importable from here as before; a patch takes effect in
# the module that reads the name
from napari_sigma.phases.pixel_sums import (  # noqa: F401
    _CHUNK_ROWS,
    _accumulator,
    _groups,
    _is_lazy,
    add_pixels,
    block_sums,
    region_sizes,
    sum_pixels,
)
from napari_sigma.phases.tables import PhaseTable, main_elements, phase_display_name

FULL_RECOMPUTE_FRACTION = 0.25
"""An update that changes more than this fraction of the pixels recomputes everything."""


def phase_table(labels: np.ndarray, *args: Any, **kwargs: Any) -> PhaseTable:
    """Statistics of a label image in one go (no block sums, no state kept).

    ``phase_table(labels, counts, intensities, line_names, pixel_size_um=None, names=None,
    regions=True)``: ``labels`` (y, x) int (0 = unassigned, phases 1..K), the other arguments
    those of `PhaseStatistics` (``block_size`` is None here).

    Returns
    -------
    PhaseTable
    """
    return run_to_completion(phase_table_steps(labels, *args, **kwargs))


def phase_table_steps(
    labels: np.ndarray,
    *args: Any,
    stage: str = "statistics",
    sum_spectra: np.ndarray | None = None,
    **kwargs: Any,
) -> Computation[PhaseTable]:
    """:func:`phase_table`, yielding a :class:`~napari_sigma.compute.progress.Progress` (stage
    ``stage``) at least every ``2**25`` counts summed and between the phases' region counts,
    so that a caller can cancel it (``close()``) within a fraction of a second; same table.

    ``sum_spectra`` (K, E) float64, optional: the exact sum spectra of phases 1..K over
    ``labels`` (an analysis result's ``phase_spectra`` for its own labels). Given, the cube is
    not read again; the table is the one summing the cube gives.
    """
    stats = PhaseStatistics(*args, **kwargs, block_size=None)
    if sum_spectra is not None:
        stats._start_from_sums(stats._checked(labels), sum_spectra)
    return (yield from stats.update_steps(labels, stage=stage))


class PhaseStatistics:
    """Running statistics of a label image that is edited: :meth:`update` costs only the change.

    Parameters
    ----------
    counts : ndarray (y, x, E)
        Spectrum image counts (integer counts give exact sums). A dask array is loaded into memory.
    intensities : ndarray (y, x, L)
        Line intensities.
    line_names : sequence of str
        Names of the ``L`` lines (``"Fe_Ka"``).
    pixel_size_um : float or None
        Pixel size in µm (None = uncalibrated).
    names : sequence of str or None
        Names of phases 1..len(names); these phases stay in the table even when emptied.
    regions : bool
        Keep connected-region statistics (only the phases an edit touches are relabelled,
        about 10 ms per touched phase on 1024x1024). False leaves ``n_regions`` at -1.
    block_size : int or None
        Side of the blocks whose sum spectra are cached (None = no block cache). Costs
        ``4 / (block_size**2 * itemsize)`` of the cube's memory (about 3 % for uint16 and 8).
    energies : ndarray (E,) or None
        Energies (keV) of the channels of ``counts``, for whoever plots the table's spectra.
    channels_summed : int
        File channels summed in each channel of ``counts`` (a cube grouped to fit memory:
        :func:`~napari_sigma.phases.pixel_cache.pixel_spectra`); a table's mean spectrum divided
        by it is in counts per file channel.

    Notes
    -----
    The previous label image is copied, so a caller may pass the same array edited in place
    (as a napari Labels layer does).
    """

    def __init__(
        self,
        counts: np.ndarray,
        intensities: np.ndarray,
        line_names: Sequence[str],
        pixel_size_um: float | None = None,
        names: Sequence[str] | None = None,
        regions: bool = True,
        block_size: int | None = 8,
        energies: np.ndarray | None = None,
        channels_summed: int = 1,
    ) -> None:
        # a lazy (dask) cube stays lazy: the first table sums it in row bands (_recompute)
        self.counts = counts if _is_lazy(counts) else np.asarray(counts)
        self.intensities = np.asarray(intensities)
        if self.counts.ndim != 3 or self.intensities.ndim != 3:
            raise ValueError("counts and intensities must be (y, x, channels) arrays")
        if self.counts.shape[:2] != self.intensities.shape[:2]:
            raise ValueError(
                f"counts {self.counts.shape[:2]} and intensities "
                f"{self.intensities.shape[:2]} differ in shape"
            )
        if len(line_names) != self.intensities.shape[2]:
            raise ValueError(f"{len(line_names)} line names for {self.intensities.shape[2]} maps")
        self.line_names = tuple(str(n) for n in line_names)
        self.pixel_size_um = pixel_size_um
        self.names = list(names or [])
        self.regions = regions
        self.block_size = block_size if block_size and block_size > 1 else None
        self.energies = None if energies is None else np.asarray(energies)
        self.channels_summed = int(channels_summed)
        self.table: PhaseTable | None = None
        self._labels: np.ndarray | None = None
        self._group_sums = GroupSums(self.counts, self.intensities, self.block_size)
        self._region_cache: dict[int, np.ndarray] = {}
        self._stale_regions: set[int] = set()
        self._allocate(1)

    @property
    def shape(self) -> tuple[int, int]:
        """Spatial shape ``(y, x)``."""
        return (int(self.counts.shape[0]), int(self.counts.shape[1]))

    def sums_over(self, labels: np.ndarray) -> np.ndarray | None:
        """The running sum spectra of phases 1..K (a float64 copy, K = ``labels.max()``) when
        the statistics were last brought up to date with exactly ``labels``; else None.

        Of integer counts they are exact (float64 sums of integers, moved pixel by pixel): the
        same numbers as a new pass over the cube. Not while an update is running."""
        n = int(labels.max(initial=0))
        if self._labels is None or self._sums.shape[0] < n + 1:
            return None
        if not np.array_equal(self._labels, labels):
            return None
        return np.array(self._sums[1 : n + 1], dtype=np.float64)

    def update(self, labels: np.ndarray, regions: bool | None = None) -> PhaseTable:
        """Bring the statistics up to date with ``labels`` and return the new table.

        Only pixels that differ from the previous call are re-summed; the first call, or one
        changing more than :data:`FULL_RECOMPUTE_FRACTION` of the pixels, recomputes everything.

        Parameters
        ----------
        labels : ndarray (y, x) int
            The label image (0 = unassigned, phases >= 1).
        regions : bool or None
            Relabel the connected regions of the phases changed since they were last counted
            (None = the ``regions`` given at construction). With False, those phases show
            ``n_regions == -1`` until an update with regions; the others keep their counts.
            A GUI can update without regions while the user paints and with them when idle.

        Returns
        -------
        PhaseTable
        """
        return run_to_completion(self.update_steps(labels, regions))

    def update_steps(
        self, labels: np.ndarray, regions: bool | None = None, stage: str = "statistics"
    ) -> Computation[PhaseTable]:
        """:meth:`update`, yielding a Progress at least every ``2**25`` counts summed (a full
        recompute) and between the phases' region counts; the same table."""
        labels = self._checked(labels)
        regions = self.regions if regions is None else regions
        if self._labels is None:
            yield from self._recompute_steps(labels, stage)
        else:
            changed = np.flatnonzero(labels.ravel() != self._labels.ravel())
            if changed.size > FULL_RECOMPUTE_FRACTION * labels.size:
                yield from self._recompute_steps(labels, stage)
            elif changed.size:
                self._move_pixels(changed, labels.ravel()[changed])
            elif self.table is not None and not (regions and self._stale_regions):
                return self.table
        if regions and self._stale_regions:
            yield from self._update_regions_steps(stage)
        self.table = self._make_table()
        return self.table

    # -- state -------------------------------------------------------------------------------

    def _checked(self, labels: np.ndarray) -> np.ndarray:
        labels = np.asarray(labels)
        if labels.shape != self.shape:
            raise ValueError(f"labels of shape {labels.shape} for an image of {self.shape}")
        if labels.dtype.kind not in "iub":
            raise ValueError(f"labels must be integers, got {labels.dtype}")
        if labels.size and labels.min() < 0:
            raise ValueError("labels must be >= 0")
        return labels

    def _allocate(self, capacity: int) -> None:
        self._sums = np.zeros((capacity, self.counts.shape[2]), dtype=np.float64)
        self._intensity_sums = np.zeros((capacity, self.intensities.shape[2]), dtype=np.float64)
        self._pixels = np.zeros(capacity, dtype=np.int64)

    def _grow(self, capacity: int) -> None:
        """Make room for label ids below ``capacity`` (row 0 tracks the unassigned pixels)."""
        old = self._pixels.size
        if capacity <= old:
            return
        sums, intensity_sums, pixels = self._sums, self._intensity_sums, self._pixels
        self._allocate(max(capacity, 2 * old))
        self._sums[:old], self._intensity_sums[:old], self._pixels[:old] = (
            sums,
            intensity_sums,
            pixels,
        )

    def _recompute_steps(self, labels: np.ndarray, stage: str) -> Computation[None]:
        flat = labels.ravel().astype(np.int64)
        self._allocate(int(flat.max(initial=0)) + 1)
        self._group_sums.cache_blocks()
        yield Progress(stage, 0, 1, "summing the phases' spectra")
        if _is_lazy(self.counts):
            ids, sums, intensity_sums = yield from self._group_sums.in_bands_steps(flat, stage)
        else:
            ids, sums, intensity_sums = yield from self._group_sums.by_code_steps(
                np.arange(flat.size), flat, stage
            )
        self._sums[ids] = sums
        self._intensity_sums[ids] = intensity_sums
        self._keep_labels(labels, flat)

    def _start_from_sums(self, labels: np.ndarray, sum_spectra: np.ndarray) -> None:
        """State of :meth:`_recompute_steps` from known sum spectra of phases 1..K over
        ``labels``: no pass over the cube. The unassigned pixels' sum (row 0) stays unknown
        (zero); it is in no table."""
        sum_spectra = np.asarray(sum_spectra)
        flat = labels.ravel().astype(np.int64)
        n_ids = int(flat.max(initial=0))
        if (
            sum_spectra.dtype != np.float64
            or sum_spectra.ndim != 2
            or sum_spectra.shape[0] < n_ids
            or sum_spectra.shape[1] != self.counts.shape[2]
        ):
            raise ValueError(
                f"sum spectra {sum_spectra.shape} {sum_spectra.dtype} do not cover labels "
                f"1..{n_ids} of {self.counts.shape[2]} channels in float64"
            )
        self._allocate(n_ids + 1)
        self._sums[1:] = sum_spectra[:n_ids]
        ids, intensity_sums = self._group_sums.intensities_by_code(np.arange(flat.size), flat)
        self._intensity_sums[ids] = intensity_sums
        self._keep_labels(labels, flat)

    def _keep_labels(self, labels: np.ndarray, flat: np.ndarray) -> None:
        """After a pass over every pixel: the pixels of each label (``flat``: ``labels``
        raveled), a copy of ``labels``, and every phase's regions to count again."""
        self._pixels[:] = np.bincount(flat, minlength=self._pixels.size)
        self._labels = labels.astype(np.int32, copy=True)
        self._region_cache = {}
        self._stale_regions = set(np.flatnonzero(self._pixels[1:]) + 1)

    def _move_pixels(self, changed: np.ndarray, new: np.ndarray) -> None:
        """Move the pixels ``changed`` (flat indices) from their old phases to ``new``.

        A phase whose every pixel goes to one other label (a merge, a phase marked unassigned)
        moves its running sums whole: no pass over its pixels' spectra.
        """
        new = new.astype(np.int64)
        old = self._labels.ravel()[changed].astype(np.int64)
        self._grow(int(new.max()) + 1)
        capacity = self._pixels.size
        codes, sums, intensity_sums = self._sums_of_moves(changed, old * capacity + new, capacity)
        for target, sign in ((codes // capacity, -1.0), (codes % capacity, 1.0)):
            np.add.at(self._sums, target, sign * sums)
            np.add.at(self._intensity_sums, target, sign * intensity_sums)
        self._pixels -= np.bincount(old, minlength=capacity)
        self._pixels += np.bincount(new, minlength=capacity)
        self._labels.ravel()[changed] = new
        touched = np.union1d(np.unique(old), np.unique(new))
        self._stale_regions.update(int(i) for i in touched[touched > 0])

    def _sums_of_moves(self, changed: np.ndarray, codes: np.ndarray, capacity: int):
        """:meth:`~napari_sigma.phases.group_sums.GroupSums.by_code` of moves
        ``old * capacity + new``; whole phases from their sums."""
        distinct, counts = np.unique(codes, return_counts=True)
        whole = distinct[counts == self._pixels[distinct // capacity]]
        if whole.size == 0:
            return self._group_sums.by_code(changed, codes)
        rest = ~np.isin(codes, whole)
        parts = [
            (whole, self._sums[whole // capacity].copy(),
             self._intensity_sums[whole // capacity].copy()),
        ]  # fmt: skip
        if rest.any():
            parts.append(self._group_sums.by_code(changed[rest], codes[rest]))
        return tuple(np.concatenate(arrays) for arrays in zip(*parts, strict=True))

    # -- regions and table -------------------------------------------------------------------

    def _update_regions(self) -> None:
        run_to_completion(self._update_regions_steps("statistics"))

    def _update_regions_steps(self, stage: str) -> Computation[None]:
        for phase_id in sorted(self._stale_regions):
            yield Progress(stage, 0, 1, f"connected regions of phase {phase_id}")
            self._region_cache[phase_id] = region_sizes(self._labels, phase_id)
        self._stale_regions = set()

    def _make_table(self) -> PhaseTable:
        present = np.flatnonzero(self._pixels[1:]) + 1
        ids = np.union1d(present, np.arange(1, len(self.names) + 1)).astype(np.int64)
        self._grow(int(ids.max(initial=0)) + 1)
        pixels = self._pixels[ids].copy()
        divisor = np.maximum(pixels, 1)[:, None]
        mean_intensities = self._intensity_sums[ids] / divisor
        total = int(np.prod(self.shape))
        area = None if self.pixel_size_um is None else pixels * float(self.pixel_size_um) ** 2
        unknown = np.zeros(0, np.int64)
        known = [int(i) not in self._stale_regions for i in ids]
        sizes = [
            self._region_cache.get(int(i), unknown) if k else unknown
            for i, k in zip(ids, known, strict=True)
        ]
        n_regions = np.array(
            [s.size if k else -1 for s, k in zip(sizes, known, strict=True)], dtype=np.int64
        )
        return PhaseTable(
            phase_ids=ids,
            pixels=pixels,
            area_fraction=pixels / total,
            area_um2=area,
            mean_spectra=self._sums[ids] / divisor,
            mean_intensities=mean_intensities,
            n_regions=n_regions,
            region_sizes=sizes,
            names=[self._name(int(i), row) for i, row in zip(ids, mean_intensities, strict=True)],
            line_names=self.line_names,
        )

    def _name(self, phase_id: int, mean_intensities: np.ndarray) -> str:
        if phase_id <= len(self.names):
            return self.names[phase_id - 1]
        return phase_display_name(phase_id, main_elements(mean_intensities, self.line_names))
