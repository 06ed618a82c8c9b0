"""The abundance pass: non-negative least-squares coefficients of every pixel on one or several
bases (:func:`abundance_maps`, :func:`nnls_maps`), the cube read in blocks, projected on the bases,
and solved batch by batch (:func:`~napari_sigma.unmixing.block_nnls._nnls_block`) on the CPU's
threads or on the device; and the early load of the compiled active set
(:func:`start_compiled_warm_up`).
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from napari_sigma.compute.arrays import host, is_tensor, on_host
from napari_sigma.compute.blocks import block_projector, block_rows, read_blocks, threaded_map
from napari_sigma.compute.device import resolve_device
from napari_sigma.compute.progress import Computation, Progress
from napari_sigma.errors import AnalysisError
from napari_sigma.unmixing.block_nnls import _nnls_block
from napari_sigma.unmixing.restricted_inverses import (
    _compiled_rows,
    _pinv,
    _set_solver,
    _whole_table,
)

STAGE = "unmixing"
ABUNDANCE_CHUNK_VALUES = 1 << 24
# on the CPU a block of 2**24 values took 0.3-1.3 s: 4x smaller blocks keep Abort within a second
ABUNDANCE_CPU_CHUNK_VALUES = 1 << 22
#: Pixels whose non-negative least squares are solved together (the projections of several
#: blocks of the cube).
NNLS_ROWS = 1 << 15
#: Pixels from which the CPU's active set runs in compiled code
#: (:func:`~napari_sigma.unmixing.block_nnls._lawson_hanson_compiled`, the same shares). numba's
#: import and the load of its cached code cost ~0.55 s CPU once per process; the compiled rows
#: save ~2.4 us of CPU per pixel (1024² bench cube, 8 phases, 100 counts per pixel, both bases):
#: they pay from ~230 000 pixels.
COMPILED_NNLS_PIXELS = 1 << 18
#: The thread of :func:`start_compiled_warm_up`, while one may be running.
_WARM_UPS: list[Any] = []
#: Set once a thread of :func:`start_compiled_warm_up` has loaded the phase sums' kernel (numba
#: imported, its code loaded): the phase sums start then, while the thread goes on loading the
#: active set.
_SUMS_KERNEL_LOADED = threading.Event()


def abundance_maps(
    counts: Any,
    components: np.ndarray,
    device: str = "auto",
    mask_channels: np.ndarray | None = None,
    max_iter: int = 200,
    tol: float = 1e-7,
) -> Computation:
    """Non-negative least-squares abundance of every component in every pixel.

    Parameters
    ----------
    counts : array, shape (y, x, E) or (N, E)
        Counts (numpy or dask; read in chunks of rows), or a float32 ``(N, E)`` torch tensor
        already on ``device`` (:func:`~napari_sigma.compute.device.resident_counts`).
    components : ndarray, shape (C, E)
        Component spectra (e.g. from :func:`~napari_sigma.unmixing.nmf.nmf`).
    device : {"auto", "cpu", "cuda"}
        Where to solve.
    mask_channels : ndarray of bool, shape (E,), optional
        Channels to leave out of the fit (True = left out), e.g. the zero peak.
    max_iter : int
        Coordinate-descent sweeps at most per chunk.
    tol : float
        Stop a chunk when no abundance changes by more than ``tol`` times the largest one.

    Yields
    ------
    Progress
        ``stage="unmixing"``, one per chunk of pixels.

    Returns
    -------
    ndarray, shape (y, x, C) (or (N, C)), float32
        Non-negative abundances.
    """
    (maps,) = yield from nnls_maps(counts, [(components, mask_channels)], device, max_iter, tol)
    return maps


def nnls_maps(
    counts: Any,
    bases: list[tuple[np.ndarray, np.ndarray | None]],
    device: str = "auto",
    max_iter: int = 200,
    tol: float = 1e-7,
    later: tuple[int, ...] = (),
) -> Computation:
    """Non-negative least-squares coefficients of every pixel on several bases, in one pass.

    :func:`abundance_maps` of each ``(basis (C, E), mask_channels)`` pair, reading the counts
    once: each block is projected on all bases by one matrix product (its columns are the same
    projections to float32 rounding), then each basis's problem is solved on its columns.

    ``later``: the indices of bases whose problems may be solved after the pass, by a thread of
    their own while the caller goes on (:func:`_solved_later`: on the CPU, for a cube whose
    solves take the compiled rows, with a second core): their entries of the returned list are
    then :class:`~napari_sigma.compute.blocks.Ahead` objects whose ``result()`` is the array.
    The same batches, projections and calls: the same numbers.

    Returns
    -------
    list of ndarray, shape (y, x, C) (or (N, C)), float32
        One per basis, in order.
    """
    device = resolve_device(device)
    n_channels = counts.shape[-1]
    solvers, columns, first = [], [], 0
    resident = is_tensor(counts)  # counts on the device (a GPU): torch tensors throughout
    for components, mask_channels in bases:
        used = _used_channels(components.shape[1], n_channels, mask_channels)
        basis = np.asarray(components, np.float64)[:, used]
        if device != "cpu" or resident:
            import torch

            basis = torch.as_tensor(basis, device=device)
        gram = basis @ basis.T
        # masked channels get zero weight instead of being cut out of every block (a
        # fancy-index copy of each block cost 4x the product itself)
        full = np.zeros((n_channels, len(basis)), np.float32)
        full[used] = host(basis.T)
        columns.append(full)
        # restricted Gram inverses, shared by the blocks
        solvers.append((gram, _pinv(gram), slice(first, first + len(basis)), {}))
        first += len(basis)
    project = block_projector(np.concatenate(columns, axis=1), device)
    n_pixels = int(np.prod(counts.shape[:-1]))
    outs = [
        np.zeros((n_pixels, solver[2].stop - solver[2].start), np.float32) for solver in solvers
    ]
    chunk_values = ABUNDANCE_CPU_CHUNK_VALUES if device == "cpu" else ABUNDANCE_CHUNK_VALUES
    pixels_per_block = max(chunk_values // n_channels, 1)
    if resident:  # on the device: block after block (its kernels run asynchronously)
        batches = _projected_batches(_tensor_blocks(counts, pixels_per_block), project, n_pixels)
        for done, end, projected in batches:
            _solve_batch(solvers, outs, done, end, projected, max_iter, tol)
            yield Progress(STAGE, end, n_pixels, f"abundances {end}/{n_pixels} pixels")
        return [out.reshape(*counts.shape[:-1], out.shape[1]) for out in outs]
    _join_warm_up()  # numba's code loaded ahead (no thread imports it while these do)
    for solver in solvers:  # the set inverses' table exists before the threads share it
        _set_solver(solver[0], solver[3])
        if n_pixels >= COMPILED_NNLS_PIXELS and _compiled_rows(solver[0]):
            _whole_table(solver[0], solver[3])  # whole: the compiled rows look every set up
            solver[3]["compiled"] = True

    deferred = _Deferred(solvers, outs, later, n_pixels, device)

    def batch(item: tuple[int, int, list[slice]]) -> int:
        # read, project and solve a batch: the batches are independent, each is computed by
        # the same calls whichever thread runs it, so any core may take one
        done, end, rows = item  # a lazy cube's rows of the batch read at once (each chunk once)
        parts = [project(part) for part in read_blocks(counts, rows)]
        deferred.keep(done, end, parts)
        projected = _joined(parts)
        whole = not deferred.later  # else the bases solved now take their own columns
        _solve_batch(deferred.now, deferred.now_outs, done, end, projected, max_iter, tol, whole)
        return end

    batches = _batched_rows(block_rows(counts, pixels_per_block), n_pixels)
    workers = None if device == "cpu" else 1
    for end in threaded_map(batch, batches, workers):
        yield Progress(STAGE, end, n_pixels, f"abundances {end}/{n_pixels} pixels")
    shape = counts.shape[:-1]
    maps: list[Any] = [out.reshape(*shape, out.shape[1]) for out in outs]
    return deferred.solved_later(maps, shape, max_iter, tol)


class _Deferred:
    """The bases of :func:`nnls_maps` solved in the pass (``now``, ``now_outs``) and those
    solved after it (``later``, where it pays: :func:`_solved_later`), with the float32
    projections of every batch kept for them."""

    def __init__(self, solvers, outs, later, n_pixels: int, device: str) -> None:
        from napari_sigma.compute.blocks import usable_cores

        pays = (
            device == "cpu" and n_pixels >= COMPILED_NNLS_PIXELS and usable_cores() > 1
        )  # the pass's own solves take the compiled rows (their tables exist before threads)
        self.later = [i for i in later if pays and 0 <= i < len(solvers)]
        if len(self.later) == len(solvers):
            self.later = self.later[1:]  # one basis at least solved in the pass
        self.now = [s for i, s in enumerate(solvers) if i not in self.later]
        self.now_outs = [o for i, o in enumerate(outs) if i not in self.later]
        self.solvers, self.outs = solvers, outs
        self.spans: list[tuple[int, int]] = []
        self.kept = None
        if self.later:
            columns = solvers[-1][2].stop
            self.kept = np.empty((n_pixels, columns), np.float32)

    def keep(self, done: int, end: int, parts: list) -> None:
        """The batch's float32 projections kept for the later solves."""
        if self.kept is None:
            return
        self.kept[done:end] = parts[0] if len(parts) == 1 else np.concatenate(parts)
        self.spans.append((done, end))

    def solved_later(self, maps: list, shape, max_iter: int, tol: float) -> list:
        """``maps`` with the later bases' entries made :class:`Ahead` solves (see
        :func:`_solved_later`)."""
        if not self.later:
            return maps
        from napari_sigma.compute.blocks import Ahead

        solvers = [self.solvers[i] for i in self.later]
        outs = [self.outs[i] for i in self.later]
        made = Ahead(_solved_later, self, solvers, outs, max_iter, tol, stoppable=True)
        for position, index in enumerate(self.later):
            maps[index] = _Part(made, position, shape)
        return maps


def _solved_later(
    deferred: _Deferred, solvers, outs, max_iter: int, tol: float, stop: Any = None
) -> list | None:
    """The later bases' solves: batch by batch as in the pass, each on the float64 of its
    kept float32 projections (what :func:`_joined` gives the pass: the same array), so the
    same numbers; the kept projections are let go at the end. ``stop`` (an event; set by
    :meth:`_Part.cancel`, an analysis that ends without its result): no further batch is
    solved, the kept projections are let go and None is returned."""
    for done, end in sorted(deferred.spans):
        if stop is not None and stop.is_set():
            deferred.kept = None
            return None
        projected = deferred.kept[done:end].astype(np.float64)
        _solve_batch(solvers, outs, done, end, projected, max_iter, tol, whole=False)
    deferred.kept = None
    return outs


class _Part:
    """One basis's maps of a later solve (:func:`_solved_later`): ``result()`` waits for it."""

    def __init__(self, made: Any, position: int, shape) -> None:
        self.made, self.position, self.shape = made, position, tuple(shape)

    def result(self) -> np.ndarray:
        out = self.made.result()[self.position]
        return out.reshape(*self.shape, out.shape[1])

    def cancel(self) -> None:
        """The solve's value is not wanted (an aborted analysis): stop it after the batch
        under way and wait for that, letting its memory go (every part of one solve)."""
        self.made.cancel()


def start_compiled_warm_up(counts: Any, device: str = "auto") -> Any:
    """Load the compiled active set ahead of an abundance pass over ``counts`` that will take
    it (:func:`nnls_maps` on the CPU, numpy or dask counts of at least
    :data:`COMPILED_NNLS_PIXELS` pixels): numba's import and its cached machine code, ~0.55 s
    of CPU once per process, in a background thread started now (returned; None where the
    pass will not use it). :func:`nnls_maps` waits for it before its threads start, so call
    this where the caller's thread imports nothing until then (two threads importing at once
    may see each other's partly initialised modules). The thread also loads the phase sums'
    compiled kernel (:mod:`napari_sigma.phases._label_sums`), which the phase sums take once
    it is loaded (:func:`wait_for_sums_kernel`). Only in the main thread (the CLI, a
    script): in napari's worker the viewer's thread may be importing meanwhile. Loading code
    changes no number.
    """
    from napari_sigma.compute.background import start_thread

    if threading.current_thread() is not threading.main_thread():
        return None
    if is_tensor(counts):  # resident: the batched form
        return None
    if resolve_device(device) != "cpu" or int(np.prod(counts.shape[:-1])) < COMPILED_NNLS_PIXELS:
        return None
    thread = start_thread(load_compiled_code, "napari-sigma numba load")  # the exit waits for it
    _WARM_UPS.append(thread)
    return thread


def load_compiled_code() -> bool:
    """Import numba and load the compiled code of the phase sums
    (:mod:`napari_sigma.phases._label_sums`, first: they come before the abundances) and of the
    active set (:func:`~napari_sigma.unmixing._active_set.warm_up`), in the calling thread; False
    where numba is missing (the passes then raise or sum with numpy, as without this call).
    Called by :func:`start_compiled_warm_up`'s thread, or by ``napari-sigma run``'s import
    thread while the file is read (:mod:`napari_sigma.pipeline.preimport`; the warm-up's later
    call then finds everything loaded: a few ms); the caller makes sure no other thread imports
    meanwhile. Loading code changes no number."""
    try:
        from napari_sigma.phases import _label_sums
        from napari_sigma.unmixing._active_set import warm_up
    except ImportError:  # numba missing: the pass raises it where it belongs
        return False
    _label_sums.warm_up()
    _SUMS_KERNEL_LOADED.set()
    warm_up()  # the argument types of _lawson_hanson_compiled's call: the same machine code
    return True


def wait_for_sums_kernel() -> None:
    """Wait until the thread of :func:`start_compiled_warm_up` has loaded the phase sums'
    kernel (numba's import and its cached code, ~0.5 s of CPU once per process), or has ended
    (numba missing); at once where no such thread runs. The phase sums
    (:mod:`napari_sigma.phases.spectra`) then take the kernel for every block: summing the
    first blocks with numpy meanwhile cost more CPU than the wait (the import outlasted the
    whole numpy pass on 2 loaded cores: 17 of 128 blocks took the kernel)."""
    while not _SUMS_KERNEL_LOADED.is_set():
        if not any(thread.is_alive() for thread in list(_WARM_UPS)):
            return
        _SUMS_KERNEL_LOADED.wait(0.02)


def _join_warm_up() -> None:
    """Wait for the thread of :func:`start_compiled_warm_up`, if one was started."""
    while _WARM_UPS:
        _WARM_UPS.pop().join()


def _solve_batch(
    solvers, outs, done: int, end: int, projected, max_iter: int, tol: float, whole: bool = True
):
    """Solve every basis's problem on a batch of projections; write pixels ``done:end``
    (``whole``: ``solvers`` are all the bases projected, a single one taking every column)."""
    for out, (gram, gram_inverse, span, inverses) in zip(outs, solvers, strict=True):
        rhs = projected[:, span] if len(solvers) > 1 or not whole else projected
        solution = _nnls_block(gram, gram_inverse, rhs, max_iter, tol, inverses)
        out[done:end] = host(solution)


def _batched_rows(rows, n_pixels: int):
    """``(first pixel, end, [rows of each block])``: consecutive blocks of about
    ``NNLS_ROWS`` pixels in all (the active-set iterations are a few torch calls per batch
    whatever its size, so the projections of several blocks are solved together)."""
    pending: list[slice] = []
    done = 0
    for _, end, part in rows:
        pending.append(part)
        if end - done >= NNLS_ROWS or end == n_pixels:
            yield done, end, pending
            pending, done = [], end


def _projected_batches(blocks, project, n_pixels: int):
    """``(first pixel, end, projections (n, M) float64 tensor)`` of consecutive blocks, about
    ``NNLS_ROWS`` pixels at a time."""
    import torch

    pending: list = []
    done = 0
    for start, block in blocks:
        pending.append(torch.as_tensor(project(block)))
        end = start + len(block)
        if end - done >= NNLS_ROWS or end == n_pixels:
            yield done, end, _joined(pending)
            pending, done = [], end


def _joined(pending: list):
    """The projections of a batch's blocks as one float64 array (numpy) or tensor."""
    if all(on_host(part) for part in pending):
        return (pending[0] if len(pending) == 1 else np.concatenate(pending)).astype(np.float64)
    import torch

    pending = [torch.as_tensor(part) for part in pending]
    return (pending[0] if len(pending) == 1 else torch.cat(pending)).to(torch.float64)


def _tensor_blocks(counts, pixels_per_block: int):
    """``(first pixel, rows)`` of a resident ``(N, E)`` tensor, ``pixels_per_block`` at a time."""
    for start in range(0, counts.shape[0], max(pixels_per_block, 1)):
        yield start, counts[start : start + pixels_per_block]


def _used_channels(n_component_channels: int, n_channels: int, mask: Any) -> np.ndarray:
    if n_component_channels != n_channels:
        raise AnalysisError(f"components have {n_component_channels} channels, data {n_channels}")
    if mask is None:
        return np.arange(n_channels)
    mask = np.asarray(mask, bool)
    if mask.shape != (n_channels,):
        raise AnalysisError(f"mask_channels must have shape ({n_channels},)")
    return np.flatnonzero(~mask)
