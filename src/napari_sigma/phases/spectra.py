"""Sum and mean spectra of sets of pixels: every phase of a label image, a mask, a neighbourhood.

The one place where spectra are summed per phase: the pipeline's phase spectra and phase names,
the NMF input and the spectrum widget's phase spectrum all call :func:`phase_sum_spectra`.
(:class:`~napari_sigma.phases.statistics.PhaseStatistics` keeps its own running sums, which move
only the pixels a brush stroke changed.)

:func:`phase_sum_spectra` reads the counts in blocks of whole rows and sums each block with a
one-hot matrix product. Counts are converted in sub-blocks of ``CAST_PIXELS`` pixels, which stay
in the CPU cache (measured 3-7x faster on 256 x 256 x 2048 than converting multi-megabyte
blocks); integer counts of at most 16 bits are summed exactly in float32 (a sub-block's sum stays
below 2**24). Integer counts whose labels come in runs along the rows (phases, grains) are summed
run by run instead (``np.add.reduceat`` in int64, exact: the same sums at a fraction of the
cost). Integer counts of a large cube (:data:`COMPILED_SUM_PIXELS`) are summed by a compiled
kernel once numba is loaded (:mod:`napari_sigma.phases._label_sums`: each pixel read once for
every label image, summed in integers): exact, so every path gives the same sums, block by block.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from napari_sigma.compute.blocks import banded_blocks, threaded_map
from napari_sigma.compute.progress import Computation, Progress, run_to_completion
from napari_sigma.errors import AnalysisError

SUM_CHUNK_VALUES = 1 << 22
# 256 pixels of at most 65535 counts sum to less than 2**24: exact in float32
CAST_PIXELS = 256
#: Pixels from which integer counts are summed by the compiled kernel
#: (:mod:`napari_sigma.phases._label_sums`): the abundance pass loads numba from the same size
#: (:data:`~napari_sigma.unmixing.abundances.COMPILED_NNLS_PIXELS`), so the sums pay no import.
COMPILED_SUM_PIXELS = 1 << 18
KERNEL_MODULE = "napari_sigma.phases._label_sums"
#: The count types the kernel takes and the integers each is summed in: 8- and 16-bit counts in
#: uint32 (a block of at most :data:`UINT32_PIXELS` pixels sums below 2**32), 32-bit counts in
#: int64 (the signatures ``_label_sums.warm_up`` compiles); numpy sums any other type.
ACCUMULATORS = {np.dtype(np.uint8): np.uint32, np.dtype(np.uint16): np.uint32}
WIDE_ACCUMULATORS = {np.dtype(np.uint32): np.int64}
UINT32_PIXELS = 1 << 16


def phase_sum_spectra(counts: Any, labels: np.ndarray, n_phases: int) -> np.ndarray:
    """Sum the spectra of the pixels of every phase (:func:`phase_sum_steps` run to its end)."""
    return run_to_completion(phase_sum_steps(counts, labels, n_phases))


def phase_sum_steps(
    counts: Any, labels: np.ndarray, n_phases: int, stage: str = "unmixing"
) -> Computation[np.ndarray]:
    """Sum the spectra of the pixels of every phase, yielding after every block of pixels.

    Parameters
    ----------
    counts : array, shape (N, E) or (y, x, E)
        Counts (any numeric dtype; numpy or dask, read chunk by chunk), or any per-pixel
        values such as line intensities ``(y, x, L)``.
    labels : ndarray, shape (N,) or (y, x)
        Phase 1..K per pixel; 0 (and any label outside 1..K) is ignored. A boolean mask is
        phase 1.
    n_phases : int
        K.

    stage : str
        The stage named in the progress reports.

    Yields
    ------
    Progress
        One per block of ``SUM_CHUNK_VALUES`` values (a few ms each).

    Returns
    -------
    ndarray, shape (K, E), float64
        Row k-1 is the summed spectrum of phase k.
    """
    (sums,) = yield from phase_sums_steps(counts, [labels], n_phases, stage)
    return sums


def phase_sums_steps(
    counts: Any, label_sets: Sequence[np.ndarray], n_phases: int, stage: str = "unmixing"
) -> Computation[list[np.ndarray]]:
    """:func:`phase_sum_steps` of several label images in one pass over the counts.

    The phase spectra and the phases' interior spectra, say, read the cube once instead of
    twice. Every sum is exact and the same as :func:`phase_sum_steps` of each label image
    (integer counts summed in float32 sub-blocks that stay below 2**24).

    Returns
    -------
    list of ndarray, shape (K, E), float64
        One per label image, in order.
    """
    n_channels = counts.shape[-1]
    n_pixels = int(np.prod(counts.shape[:-1]))
    flat_sets = [np.asarray(labels).reshape(-1) for labels in label_sets]
    for flat_labels in flat_sets:
        if flat_labels.size != n_pixels:
            raise AnalysisError(f"{flat_labels.size} labels for {n_pixels} pixels")
    n_sets = len(flat_sets)
    sums = np.zeros((n_sets * n_phases, n_channels), np.float64)
    dtype = _exact_sum_dtype(counts.dtype)
    integer = np.dtype(counts.dtype).kind in "biu"
    kernel = _label_kernel(counts.dtype, n_pixels) if integer else _no_kernel

    def add_block(sums: np.ndarray, start: int, block: np.ndarray) -> np.ndarray:
        if integer:
            parts = [flat[start : start + len(block)] for flat in flat_sets]
            if _add_compiled(kernel(), sums, block, parts, n_phases):
                return sums
            if _add_label_runs(sums, block, parts, n_phases):
                return sums
        for first in range(0, len(block), CAST_PIXELS):
            part = block[first : first + CAST_PIXELS]
            one_hot = np.zeros((n_sets * n_phases, len(part)), dtype)
            for index, flat_labels in enumerate(flat_sets):
                part_labels = flat_labels[start + first : start + first + len(part)]
                part_labels = part_labels.astype(np.int64)
                inside = (part_labels >= 1) & (part_labels <= n_phases)
                rows = index * n_phases + part_labels[inside] - 1
                one_hot[rows, np.flatnonzero(inside)] = 1.0
            if not one_hot.any():
                continue
            sums += one_hot @ part.astype(dtype)
        return sums

    # a lazy cube under a memory limit: read a band of stored chunks at a time
    blocks = banded_blocks(counts, SUM_CHUNK_VALUES // max(n_channels, 1))
    if integer:
        # integer counts sum exactly (integers in float64), in any order: the blocks are
        # summed on every core and their sums added here
        def block_sums(item: tuple[int, np.ndarray]) -> tuple[int, np.ndarray]:
            start, block = item
            return start + len(block), add_block(np.zeros_like(sums), start, block)

        for end, partial in threaded_map(block_sums, blocks):
            sums += partial
            yield Progress(stage, end, n_pixels, "phase spectra")
    else:  # float counts: added block after block, in one order (the same rounding)
        for start, block in blocks:
            add_block(sums, start, block)
            yield Progress(stage, start + len(block), n_pixels, "phase spectra")
    return [sums[index * n_phases : (index + 1) * n_phases] for index in range(n_sets)]


def _no_kernel() -> None:
    return None


def _label_kernel(dtype: Any, n_pixels: int) -> Callable[[], Any]:
    """A function giving the compiled kernel's module for the next block, or None while it is
    not there (numpy sums the block: the same sums).

    Integer counts of a kernel type, at least :data:`COMPILED_SUM_PIXELS` pixels. Where the
    CLI's thread loads numba (:func:`~napari_sigma.unmixing.abundances.start_compiled_warm_up`,
    this kernel first) the pass waits until it has loaded the kernel
    (:func:`~napari_sigma.unmixing.abundances.wait_for_sums_kernel`: no second thread imports
    numba meanwhile). While napari's warm-up child compiles (:mod:`napari_sigma.compute._jit`)
    the blocks are summed by numpy, the kernel taken once the child is done if this process
    has its module (nothing is compiled here meanwhile: napari's GIL). Otherwise the module is
    imported here, in the calling thread, before the pass's threads call it. Never where
    numba is missing."""
    dtype = np.dtype(dtype)
    if n_pixels < COMPILED_SUM_PIXELS or (
        dtype not in ACCUMULATORS and dtype not in WIDE_ACCUMULATORS
    ):
        return _no_kernel
    from napari_sigma.compute._jit import warm_up_running
    from napari_sigma.unmixing.abundances import wait_for_sums_kernel

    if warm_up_running():

        def loaded() -> Any:
            return None if warm_up_running() else sys.modules.get(KERNEL_MODULE)

        return loaded
    wait_for_sums_kernel()
    try:
        from napari_sigma.phases import _label_sums
    except ImportError:  # numba missing: numpy sums every block
        return _no_kernel
    return lambda: _label_sums


def _add_compiled(
    kernel: Any,
    sums: np.ndarray,
    block: np.ndarray,
    label_parts: Sequence[np.ndarray],
    n_phases: int,
) -> bool:
    """Add a block of integer counts to ``sums`` with the compiled kernel (exact integers, each
    pixel read once for every label image); False, adding nothing, without a kernel or for a
    block it does not take (another layout or type: numpy sums it)."""
    if kernel is None or not block.flags.c_contiguous or block.ndim != 2:
        return False
    total_type = _accumulator(block.dtype, len(block))
    if total_type is None:
        return False
    labels = np.empty((len(label_parts), len(block)), np.int64)
    for index, part in enumerate(label_parts):
        labels[index] = part
    out = np.zeros(sums.shape, total_type)
    kernel.add_label_sums(block, labels, n_phases, out)
    sums += out
    return True


def _accumulator(dtype: Any, n_pixels: int) -> Any:
    """The integer type the kernel sums a block of ``n_pixels`` pixels of ``dtype`` counts in, or
    None where it does not take them."""
    dtype = np.dtype(dtype)
    if dtype in ACCUMULATORS and n_pixels <= UINT32_PIXELS:
        return ACCUMULATORS[dtype]
    return WIDE_ACCUMULATORS.get(dtype)


# a block is summed run by run when its label images have at most this share of runs per pixel
MAX_RUN_SHARE = 0.125


def _add_label_runs(
    sums: np.ndarray, block: np.ndarray, label_parts: Sequence[np.ndarray], n_phases: int
) -> bool:
    """Add a block of integer counts to ``sums`` run by run of equal labels (exact integers).

    A phase's pixels come in runs along the rows: each run is summed on its own (one addition
    per value, against ``2 K`` multiply-adds per value of the one-hot product). Returns False,
    adding nothing, when the labels are too fragmented for it to pay.
    """
    runs = []
    for labels in label_parts:
        labels = labels.astype(np.int64, copy=False)
        starts = np.flatnonzero(labels[1:] != labels[:-1]) + 1
        if len(starts) + 1 > MAX_RUN_SHARE * len(labels):
            return False
        runs.append((np.concatenate(([0], starts)), np.concatenate((starts, [len(labels)]))))
    # a run of at most 65536 pixels of 16-bit counts sums below 2**32
    small = block.dtype.kind in "bu" and block.dtype.itemsize <= 2 and len(block) <= 1 << 16
    total_type = np.uint32 if small else np.int64
    for index, ((firsts, ends), labels) in enumerate(zip(runs, label_parts, strict=True)):
        for first, end, label in zip(
            firsts.tolist(), ends.tolist(), labels[firsts].tolist(), strict=True
        ):
            if 1 <= label <= n_phases:
                sums[index * n_phases + label - 1] += block[first:end].sum(0, dtype=total_type)
    return True


def phase_mean_spectra(counts: Any, labels: np.ndarray, n_phases: int) -> np.ndarray:
    """Mean spectrum of every phase 1..K, ``(K, E)`` float64 (zeros for a phase with no pixel).

    Same arguments as :func:`phase_sum_spectra`.
    """
    flat_labels = np.asarray(labels).reshape(-1).astype(np.int64)
    inside = (flat_labels >= 1) & (flat_labels <= n_phases)
    pixels = np.bincount(flat_labels[inside], minlength=n_phases + 1)[1:]
    return phase_sum_spectra(counts, labels, n_phases) / np.maximum(pixels, 1)[:, None]


def masked_mean(counts: Any, mask: np.ndarray) -> np.ndarray:
    """Mean spectrum ``(E,)`` of the pixels where ``mask`` (y, x) is True (numpy or dask counts)."""
    return phase_mean_spectra(counts, np.asarray(mask, dtype=bool), 1)[0]


def neighbourhood_mean(counts: Any, row: int, col: int, radius: int = 1) -> np.ndarray:
    """Mean spectrum of the ``(2r+1)^2`` pixels around ``(row, col)``, clipped at the edges."""
    ny, nx = int(counts.shape[0]), int(counts.shape[1])
    block = counts[
        max(row - radius, 0) : min(row + radius + 1, ny),
        max(col - radius, 0) : min(col + radius + 1, nx),
    ]
    return np.asarray(block, dtype=np.float64).mean(axis=(0, 1))


def _exact_sum_dtype(dtype: Any) -> type:
    """float32 where a ``CAST_PIXELS`` sub-block sums exactly in it (integers of <= 16 bits)."""
    dtype = np.dtype(dtype)
    small_integer = dtype.kind in "biu" and dtype.itemsize <= 2
    return np.float32 if small_integer else np.float64
