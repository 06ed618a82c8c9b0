"""Phase spectra, their NMF decomposition, and per-pixel abundance maps.

- :func:`~napari_sigma.phases.spectra.phase_sum_spectra` (imported here, its home is
  :mod:`napari_sigma.phases.spectra`) sums the counts of every phase.
- :func:`nmf` factorises the (K, E) phase spectra into non-negative weights (K, C) and components
  (C, E). The torch backend runs HALS (hierarchical alternating least squares; in numpy on the
  CPU, in torch on another device) from an NNDSVD start, like SIGMA's scikit-learn ``NMF(init="nndsvd")``; ``backend="sklearn"`` is the reference.
  Components are normalised to **unit sum** (a component is a spectrum shape; its weight is then
  the number of counts it contributes), weights scaled so that ``weights @ components`` is
  unchanged.
- :func:`abundance_maps` solves a non-negative least-squares problem per pixel, batched over
  chunks of pixels: the unconstrained solution from the C x C Gram matrix, then for the pixels
  with a negative share the exact Lawson-Hanson active set (on the CPU row by row in compiled
  code, :mod:`napari_sigma.unmixing._active_set`). With unit-sum components an abundance is
  the number of counts of that component in the pixel.

On the CPU every array is a numpy array (a CPU run does not import torch); on another device
(CUDA) torch tensors: the same operations in the same order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from napari_sigma.compute.arrays import clamp_min, host, is_tensor, namespace, on_host
from napari_sigma.compute.blocks import block_projector, block_rows, read_blocks, threaded_map
from napari_sigma.compute.device import resolve_device
from napari_sigma.compute.progress import Computation, Progress
from napari_sigma.errors import AnalysisError
from napari_sigma.phases.spectra import phase_sum_spectra as phase_sum_spectra  # public here too

STAGE = "unmixing"
ABUNDANCE_CHUNK_VALUES = 1 << 24
# on the CPU a block of 2**24 values took 0.3-1.3 s: 4x smaller blocks keep Abort within a second
ABUNDANCE_CPU_CHUNK_VALUES = 1 << 22
#: Pixels whose non-negative least squares are solved together (the projections of several
#: blocks of the cube).
NNLS_ROWS = 1 << 15
EPS = 1e-12
DENSE_SET_TABLE_MAX = 10  # components up to which all 2**C restricted inverses fit one table
#: Pixels from which the CPU's active set runs in compiled code (:func:`_lawson_hanson_compiled`,
#: the same shares). numba's import and the load of its cached code cost ~0.55 s CPU once per
#: process; the compiled rows save ~2.4 us of CPU per pixel (1024² bench cube, 8 phases, 100
#: counts per pixel, both bases): they pay from ~230 000 pixels.
COMPILED_NNLS_PIXELS = 1 << 18
#: The thread of :func:`start_compiled_warm_up`, while one may be running.
_WARM_UPS: list[Any] = []


@dataclass
class UnmixingResult:
    """NMF of the phase spectra and the abundance maps of its components.

    Parameters
    ----------
    components : ndarray, shape (C, E)
        Unit-sum component spectra.
    phase_weights : ndarray, shape (K, C)
        Counts of every component in every phase's summed spectrum.
    abundances : ndarray, shape (y, x, C), float32
        Counts of every component in every pixel.
    """

    components: np.ndarray
    phase_weights: np.ndarray
    abundances: np.ndarray


# ----------------------------------------------------------------------------- NMF


def nmf(
    matrix: np.ndarray,
    n_components: int,
    seed: int = 0,
    device: str = "auto",
    backend: str = "torch",
    max_iter: int = 2000,
    tol: float = 1e-6,
    init: str = "nndsvd",
) -> tuple[np.ndarray, np.ndarray]:
    """Non-negative matrix factorisation ``matrix ≈ weights @ components`` (Frobenius loss).

    Parameters
    ----------
    matrix : ndarray, shape (K, E)
        Non-negative rows (phase spectra).
    n_components : int
        C, at most ``min(K, E)``.
    seed : int
        Random state of the sklearn backend (the NNDSVD start itself is deterministic).
    device : {"auto", "cpu", "cuda"}
        Device of the torch backend.
    backend : {"torch", "sklearn"}
        HALS in torch, or ``sklearn.decomposition.NMF(init="nndsvd")``.
    max_iter : int
        Iterations at most.
    tol : float
        Stop when the relative decrease of the residual norm is below this.
    init : {"nndsvd", "vertices"}
        Start of the torch backend. ``"vertices"``: the C rows at the corners of the rows'
        convex cone (:func:`vertex_rows`), so that rows which are mixtures of others are
        explained by them and, with C = K, the components are the rows themselves (the
        factorisation is not unique; this is its smallest simplex). ``"nndsvd"``: the
        non-negative double SVD, whose components mix the rows.

    Returns
    -------
    weights : ndarray, shape (K, C), float64
    components : ndarray, shape (C, E), float64
        Each row sums to 1 (an all-zero component stays zero).
    """
    matrix = np.asarray(matrix, np.float64)
    _check_nmf_input(matrix, n_components)
    if backend == "sklearn":
        weights, components = _nmf_sklearn(matrix, n_components, seed, max_iter, tol)
    elif backend == "torch":
        start = _start(matrix, n_components, init)
        weights, components = _nmf_torch(matrix, start, device, max_iter, tol)
    else:
        raise AnalysisError(f"unknown NMF backend {backend!r}: use 'torch' or 'sklearn'")
    return _unit_sum(weights, components)


def _check_nmf_input(matrix: np.ndarray, n_components: int) -> None:
    if matrix.ndim != 2:
        raise AnalysisError(f"NMF needs a 2-D matrix, not shape {matrix.shape}")
    if not np.isfinite(matrix).all() or (matrix < 0).any():
        raise AnalysisError("NMF needs finite, non-negative values")
    if not 1 <= n_components <= min(matrix.shape):
        raise AnalysisError(f"n_components={n_components} must lie in 1..{min(matrix.shape)}")


def _unit_sum(weights: np.ndarray, components: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    totals = components.sum(1)
    totals = np.where(totals > 0, totals, 1.0)
    return weights * totals[None, :], components / totals[:, None]


def _nmf_sklearn(
    matrix: np.ndarray, n_components: int, seed: int, max_iter: int, tol: float
) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.decomposition import NMF

    model = NMF(n_components, init="nndsvd", random_state=seed, max_iter=max_iter, tol=tol)
    weights = model.fit_transform(matrix)
    return weights, model.components_


def nndsvd(matrix: np.ndarray, n_components: int) -> tuple[np.ndarray, np.ndarray]:
    """Non-negative double SVD start (Boutsidis & Gallopoulos 2008), zeros kept as zeros."""
    u, s, vt = np.linalg.svd(matrix, full_matrices=False)
    weights = np.zeros((matrix.shape[0], n_components))
    components = np.zeros((n_components, matrix.shape[1]))
    weights[:, 0] = np.sqrt(s[0]) * np.abs(u[:, 0])
    components[0] = np.sqrt(s[0]) * np.abs(vt[0])
    for j in range(1, n_components):
        x, y = u[:, j], vt[j]
        xp, xn, yp, yn = np.maximum(x, 0), np.maximum(-x, 0), np.maximum(y, 0), np.maximum(-y, 0)
        norms = [np.linalg.norm(v) for v in (xp, xn, yp, yn)]
        positive, negative = norms[0] * norms[2], norms[1] * norms[3]
        if positive >= negative:
            left, right, size = xp / (norms[0] or 1), yp / (norms[2] or 1), positive
        else:
            left, right, size = xn / (norms[1] or 1), yn / (norms[3] or 1), negative
        scale = np.sqrt(s[j] * size)
        weights[:, j], components[j] = scale * left, scale * right
    weights[weights < EPS] = 0.0
    components[components < EPS] = 0.0
    return weights, components


def vertex_rows(matrix: np.ndarray, n_rows: int) -> np.ndarray:
    """Indices of ``n_rows`` rows at the corners of the rows' convex cone.

    The successive projection algorithm (Araújo et al. 2001; Gillis & Vavasis 2014) on rows
    scaled to unit sum: the row of largest norm, then repeatedly the row of largest norm
    after projecting out the rows already chosen.
    """
    totals = matrix.sum(axis=1, keepdims=True)
    residual = matrix / np.where(totals > 0, totals, 1.0)
    chosen: list[int] = []
    for _ in range(n_rows):
        norms = np.einsum("ij,ij->i", residual, residual)
        norms[chosen] = -1.0
        pick = int(np.argmax(norms))
        chosen.append(pick)
        direction = residual[pick] / max(np.sqrt(norms[pick]), EPS)
        residual = residual - np.outer(residual @ direction, direction)
    return np.array(chosen)


def _start(matrix: np.ndarray, n_components: int, init: str) -> tuple[np.ndarray, np.ndarray]:
    """Starting weights and components of the HALS iterations."""
    if init == "nndsvd":
        return nndsvd(matrix, n_components)
    if init != "vertices":
        raise AnalysisError(f"unknown NMF start {init!r}: use 'nndsvd' or 'vertices'")
    from scipy.optimize import nnls

    components = matrix[vertex_rows(matrix, n_components)]
    weights = np.stack([nnls(components.T, row)[0] for row in matrix])
    return weights, components


def _nmf_torch(
    matrix: np.ndarray, start: tuple[np.ndarray, np.ndarray], device: str, max_iter: int, tol: float
) -> tuple[np.ndarray, np.ndarray]:
    """HALS updates of H then W, in float64, from ``start`` = (weights, components)."""
    device = resolve_device(device)
    w0, h0 = start
    if device == "cpu":
        v, w, h = (np.array(a, dtype=np.float64) for a in (matrix, w0, h0))
        norm = np.linalg.norm
    else:
        import torch

        v = torch.as_tensor(matrix, device=device)
        w = torch.as_tensor(w0, device=device)
        h = torch.as_tensor(h0, device=device)
        norm = torch.linalg.norm
    norm_v = float(norm(v)) or 1.0
    previous = np.inf
    for iteration in range(max_iter):
        _hals_rows(h, w.T @ w, w.T @ v)
        _hals_rows(w.T, h @ h.T, h @ v.T)
        if iteration % 10 == 0:
            error = float(norm(v - w @ h)) / norm_v
            if previous - error < tol * max(previous, EPS) and iteration > 0:
                break
            previous = error
    return host(w), host(h)


def _hals_rows(factor, gram, cross) -> None:
    """In place: ``factor[c] = max(0, factor[c] + (cross[c] - gram[c] @ factor) / gram[c, c])``."""
    for c in range(factor.shape[0]):
        if gram[c, c] <= 0:
            continue
        update = factor[c] + (cross[c] - gram[c] @ factor) / gram[c, c]
        factor[c] = clamp_min(update, 0.0)


def resident_phase_sums(counts, labels: np.ndarray, n_phases: int) -> np.ndarray:
    """:func:`phase_sum_spectra` of a resident float32 ``(N, E)`` device tensor, ``(K, E)``.

    Sums in float64 on the device (exact for counts), labels outside 1..K left out.
    """
    import torch

    flat = torch.as_tensor(np.asarray(labels).reshape(-1).astype(np.int64), device=counts.device)
    if flat.numel() != counts.shape[0]:
        raise AnalysisError(f"{flat.numel()} labels for {counts.shape[0]} pixels")
    sums = torch.zeros((n_phases, counts.shape[1]), dtype=torch.float64, device=counts.device)
    step = max(1, ABUNDANCE_CHUNK_VALUES // max(counts.shape[1], 1))
    for start in range(0, counts.shape[0], step):
        phase = flat[start : start + step] - 1
        inside = (phase >= 0) & (phase < n_phases)
        block = counts[start : start + step][inside].to(torch.float64)
        sums.index_add_(0, phase[inside], block)
    return sums.cpu().numpy()


# ----------------------------------------------------------------------------- abundances


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
        Component spectra (e.g. from :func:`nmf`).
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
) -> Computation:
    """Non-negative least-squares coefficients of every pixel on several bases, in one pass.

    :func:`abundance_maps` of each ``(basis (C, E), mask_channels)`` pair, reading the counts
    once: each block is projected on all bases by one matrix product (its columns are the same
    projections to float32 rounding), then each basis's problem is solved on its columns.

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

    def batch(item: tuple[int, int, list[slice]]) -> int:
        # read, project and solve a batch: the batches are independent, each is computed by
        # the same calls whichever thread runs it, so any core may take one
        done, end, rows = item  # a lazy cube's rows of the batch read at once (each chunk once)
        projected = _joined([project(part) for part in read_blocks(counts, rows)])
        _solve_batch(solvers, outs, done, end, projected, max_iter, tol)
        return end

    batches = _batched_rows(block_rows(counts, pixels_per_block), n_pixels)
    workers = None if device == "cpu" else 1
    for end in threaded_map(batch, batches, workers):
        yield Progress(STAGE, end, n_pixels, f"abundances {end}/{n_pixels} pixels")
    return [out.reshape(*counts.shape[:-1], out.shape[1]) for out in outs]


def start_compiled_warm_up(counts: Any, device: str = "auto") -> Any:
    """Load the compiled active set ahead of an abundance pass over ``counts`` that will take
    it (:func:`nnls_maps` on the CPU, numpy or dask counts of at least
    :data:`COMPILED_NNLS_PIXELS` pixels): numba's import and its cached machine code, ~0.55 s
    of CPU once per process, in a background thread started now (returned; None where the
    pass will not use it). :func:`nnls_maps` waits for it before its threads start, so call
    this where the caller's thread imports nothing until then (two threads importing at once
    may see each other's partly initialised modules). Only in the main thread (the CLI, a
    script): in napari's worker the viewer's thread may be importing meanwhile. Loading code
    changes no number.
    """
    import threading

    from napari_sigma.compute.background import start_thread

    if threading.current_thread() is not threading.main_thread():
        return None
    if is_tensor(counts):  # resident: the batched form
        return None
    if resolve_device(device) != "cpu" or int(np.prod(counts.shape[:-1])) < COMPILED_NNLS_PIXELS:
        return None

    def load() -> None:
        try:
            from napari_sigma.unmixing._active_set import warm_up
        except ImportError:  # numba missing: the pass raises it where it belongs
            return
        warm_up()  # the argument types of _lawson_hanson_compiled's call: the same machine code

    thread = start_thread(load, "napari-sigma numba load")  # the exit waits for it
    _WARM_UPS.append(thread)
    return thread


def _join_warm_up() -> None:
    """Wait for the thread of :func:`start_compiled_warm_up`, if one was started."""
    while _WARM_UPS:
        _WARM_UPS.pop().join()


def _solve_batch(solvers, outs, done: int, end: int, projected, max_iter: int, tol: float):
    """Solve every basis's problem on a batch of projections; write pixels ``done:end``."""
    for out, (gram, gram_inverse, span, inverses) in zip(outs, solvers, strict=True):
        rhs = projected[:, span] if len(solvers) > 1 else projected
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


def _pinv(matrix):
    """Pseudo-inverse with torch's default cut-off (``max(m, n) * eps`` of the largest
    singular value), numpy's on the CPU."""
    if not on_host(matrix):
        import torch

        return torch.linalg.pinv(matrix)
    return np.linalg.pinv(matrix, rcond=max(matrix.shape) * np.finfo(matrix.dtype).eps)


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


def _nnls_block(gram, gram_inverse, rhs, max_iter: int, tol: float, inverses=None):
    """Solve ``min |H'a - s|`` with ``a >= 0`` for every row of ``rhs = s H'`` at once.

    Rows whose unconstrained solution is non-negative are already optimal. The others are
    solved exactly by the Lawson-Hanson active-set method, run on all rows of the block at once
    (:func:`_lawson_hanson`): every row carries its own set of free components, and the
    least-squares solution on a set is one small matrix product with the inverse of the Gram
    matrix restricted to that set, looked up by the set's bit code (``inverses`` caches them
    from block to block; there are at most ``2**C``). Rows still unsettled after the iteration
    cap (none in practice) are finished by projected coordinate descent.

    On the CPU (up to ``DENSE_SET_TABLE_MAX`` components, from ``COMPILED_NNLS_PIXELS``
    pixels: :func:`nnls_maps` sets ``inverses["compiled"]``) the active set runs row by row in
    compiled code (:func:`_lawson_hanson_compiled`: the same decisions and arithmetic, the same
    shares), elsewhere batched in torch: a few ``(n, C) x (C, C)`` products per block whatever
    the dose or the number of components. The grouped solve it replaces looped over the distinct sets of a
    block (hundreds at 100 counts per pixel with 8 phases), then ran up to ``max_iter``
    coordinate-descent sweeps on the rows that broke the optimality conditions.
    """
    inverses = {} if inverses is None else inverses
    unconstrained = rhs @ gram_inverse
    clipped = (unconstrained < 0).any(1)
    solution = clamp_min(unconstrained, 0.0)
    if bool(clipped.any()):
        rows = rhs[clipped]
        compiled = inverses.get("compiled", False)
        active_set = _lawson_hanson_compiled if compiled else _lawson_hanson
        refined, settled = active_set(gram, rows, unconstrained[clipped] >= 0, tol, inverses)
        unsettled = ~settled | _kkt_violations(gram, rows, refined, tol)
        if bool(unsettled.any()):
            refined[unsettled] = _coordinate_descent(
                gram, rows[unsettled], refined[unsettled], max_iter, tol
            )
        solution[clipped] = refined
    return solution


def _set_solver(gram, inverses: dict):
    """A function ``(rhs, free) -> least-squares solution on the free components`` (0 elsewhere).

    ``free`` is a boolean ``(n, C)`` mask. The inverse of the Gram matrix restricted to each
    distinct set (embedded in a C x C matrix of zeros) is computed once, when a row first needs
    it, and kept in ``inverses``: for ``C <= DENSE_SET_TABLE_MAX`` in one ``(2**C, C, C)`` table
    indexed by the set's bit code (no per-set Python work per block), else by code in the dict.

    The product of a row with its set's inverse is summed over the components in order from
    zero, without a fused multiply-add (torch's CPU ``bmm`` kernel; numpy arrays on the CPU).
    """
    if on_host(gram):
        return _set_solver_numpy(gram, inverses)
    import torch

    n_components = gram.shape[0]
    powers = 2 ** torch.arange(n_components, device=gram.device)
    if n_components <= DENSE_SET_TABLE_MAX:
        if "table" not in inverses:
            inverses["table"] = gram.new_zeros((2**n_components, n_components, n_components))
            inverses["known"] = torch.zeros(2**n_components, dtype=torch.bool, device=gram.device)
        table, known = inverses["table"], inverses["known"]

        def solve_dense(rhs, free):
            codes = (free.long() * powers).sum(1)
            missing = codes[~known[codes]]
            if len(missing):
                for code in torch.unique(missing).tolist():
                    table[code] = _restricted_inverse(gram, code, {})
                known[missing] = True
            return torch.bmm(rhs.unsqueeze(1), table.index_select(0, codes)).squeeze(1)

        return solve_dense

    def solve(rhs, free):
        codes = (free.long() * powers).sum(1)
        distinct, index = torch.unique(codes, return_inverse=True)
        table = torch.stack([_restricted_inverse(gram, c, inverses) for c in distinct.tolist()])
        return torch.bmm(rhs.unsqueeze(1), table[index]).squeeze(1)

    return solve


def _set_solver_numpy(gram: np.ndarray, inverses: dict):
    """:func:`_set_solver` of numpy arrays (the CPU)."""
    n_components = gram.shape[0]
    powers = 2 ** np.arange(n_components, dtype=np.int64)

    def product(rhs, table, codes):
        out = np.zeros(rhs.shape, dtype=rhs.dtype)
        for k in range(n_components):  # in component order from zero, each term rounded
            out += rhs[:, k : k + 1] * table[codes, k, :]
        return out

    if n_components <= DENSE_SET_TABLE_MAX:
        if "table" not in inverses:
            inverses["table"] = np.zeros((2**n_components, n_components, n_components))
            inverses["known"] = np.zeros(2**n_components, dtype=bool)
        table, known = inverses["table"], inverses["known"]

        def solve_dense(rhs, free):
            codes = (free.astype(np.int64) * powers).sum(1)
            missing = codes[~known[codes]]
            if len(missing):
                for code in np.unique(missing).tolist():
                    table[code] = _restricted_inverse(gram, code, {})
                known[missing] = True
            return product(rhs, table, codes)

        return solve_dense

    def solve(rhs, free):
        codes = (free.astype(np.int64) * powers).sum(1)
        distinct, index = np.unique(codes, return_inverse=True)
        table = np.stack([_restricted_inverse(gram, c, inverses) for c in distinct.tolist()])
        return product(rhs, table, index.reshape(-1))

    return solve


def _compiled_rows(gram) -> bool:
    """Whether :func:`_lawson_hanson_compiled` solves the rows of this Gram matrix."""
    on_cpu = on_host(gram) or gram.device.type == "cpu"
    return on_cpu and gram.shape[0] <= DENSE_SET_TABLE_MAX


def _whole_table(gram, inverses: dict):
    """The ``(2**C, C, C)`` table of :func:`_set_solver` with every set's restricted inverse
    (each made by the same call as when a row first needs it)."""
    _set_solver(gram, inverses)
    table, known = inverses["table"], inverses["known"]
    if not bool(known.all()):
        missing = np.flatnonzero(host(~known)).tolist()
        for code in missing:
            table[code] = _restricted_inverse(gram, code, {})
        known[:] = True
    return table


def _lawson_hanson_compiled(gram, rhs, free, tol: float, inverses: dict, drops: int = 4):
    """:func:`_lawson_hanson` of CPU tensors row by row in compiled code (numba, no GIL).

    The same steps on each row as the batched form and the same arithmetic, but for the
    gradient (a sum in component order instead of torch's matrix product), which only decides
    the path: the shares are those of the batched form (:mod:`._active_set`). The whole
    :func:`_nnls_block` on 131 072 pixels of the 1024² bench cube, both bases: 0.42-0.44 ->
    0.12-0.13 s CPU (s12 dev note; numba's cached code costs ~0.5 s CPU once per process).
    """
    from napari_sigma.compute._jit import wait_for_warm_up

    wait_for_warm_up()  # napari's warm-up child compiling these kernels: load them, not again
    from napari_sigma.unmixing._active_set import lawson_hanson_rows

    table = _whole_table(gram, inverses)
    solution, settled = lawson_hanson_rows(
        host(gram), np.ascontiguousarray(host(rhs)), np.ascontiguousarray(host(free)),
        float(tol), host(table), drops,
    )  # fmt: skip
    if on_host(rhs):
        return solution, settled
    import torch

    return torch.from_numpy(solution), torch.from_numpy(settled)


def _restricted_inverse(gram, code: int, inverses: dict):
    """Inverse of ``gram`` restricted to the components of bit ``code``, zeros elsewhere."""
    if code not in inverses and on_host(gram):
        kept = [c for c in range(gram.shape[0]) if code >> c & 1]
        inverse = np.zeros_like(gram)
        if kept:
            index = np.array(kept, dtype=np.int64)
            inverse[np.ix_(index, index)] = _pinv(gram[np.ix_(index, index)])
        inverses[code] = inverse
    if code not in inverses:
        import torch

        kept = [c for c in range(gram.shape[0]) if code >> c & 1]
        inverse = torch.zeros_like(gram)
        if kept:
            index = torch.tensor(kept, dtype=torch.long, device=gram.device)
            block = torch.linalg.pinv(gram[index][:, index])
            inverse[index.unsqueeze(1), index.unsqueeze(0)] = block
        inverses[code] = inverse
    return inverses[code]


def _lawson_hanson(gram, rhs, free, tol: float, inverses: dict, drops: int = 4):
    """Exact NNLS of every row of ``rhs``: ``(solution, settled)``.

    Starts from ``free`` (the components with a non-negative unconstrained share) and drops
    the negative components for up to ``drops`` sweeps; rows whose solution is then positive
    on their free set start from it, the others from zero. Then the Lawson-Hanson iterations
    (Lawson & Hanson 1974, ch. 23) on all unfinished rows together: solve on the free set;
    where that solution is positive, take it and free the zero component of largest gradient
    (a row with none is optimal); where it is not, move from the current feasible point towards
    it until a component reaches zero, and fix that component at zero.

    numpy arrays (the CPU) or torch tensors (another device): one function, by the arrays'
    type (:mod:`~napari_sigma.compute.arrays`).
    """
    xp = namespace(rhs)
    solve = _set_solver(gram, inverses)
    # a row's solution depends on its own free set only: after the first sweep only the rows
    # whose set changed are solved again (the others keep theirs); the rows still changing are
    # kept apart (no gather from the whole block per sweep). Every product below sees the same
    # rows in the same order as one over the whole block's rows would: the same bits.
    free = xp.copy(free)
    trial = solve(rhs, free)
    rows, part_rhs, part_free, part_trial = None, rhs, free, trial
    for _ in range(drops):
        negative = part_free & (part_trial <= 0)
        changed = xp.any(negative, axis=1)
        if not bool(changed.any()):
            break
        keep = xp.flatnonzero(changed)
        part_rhs = part_rhs[keep]
        part_free = part_free[keep] & ~negative[keep]
        part_trial = solve(part_rhs, part_free)
        rows = keep if rows is None else rows[keep]
        free[rows], trial[rows] = part_free, part_trial
    free = free & ~xp.any(free & (trial <= 0), axis=1, keepdims=True)
    x = xp.where(free, trial, xp.zeros_like(trial))
    slack = max(tol, 1e-9) * clamp_min(xp.max(xp.abs(rhs), axis=1), 1e-30)
    settled = xp.zeros(len(rhs), dtype=bool, like=rhs)
    todo = xp.arange(len(rhs), like=rhs)
    # the unfinished rows (ids ``todo``) with their right-hand sides, free sets and points; at
    # first the solution on every row's free set is known (not solved again)
    b, f, xt, z = rhs, free, xp.copy(x), x
    for step in range(3 * gram.shape[0] + 10):
        if step:
            z = solve(b, f)
        positive = ~xp.any(f & (z <= 0), axis=1)
        xt = xp.where(positive[:, None], z, xt)
        gradient = xp.where(f, xp.zeros_like(xt), b - xt @ gram)
        best = xp.argmax(gradient, axis=1)
        rising = xp.take_along_axis(gradient, best[:, None], 1)[:, 0] > slack
        done, grow, back = positive & ~rising, positive & rising, ~positive
        f[grow, best[grow]] = True
        if bool(back.any()):
            xt[back], f[back] = _step_back(xt[back], z[back], f[back])
        finished = todo[done]
        x[finished], settled[finished] = xt[done], True
        keep = xp.flatnonzero(~done)
        todo, b, f, xt, slack = todo[keep], b[keep], f[keep], xt[keep], slack[keep]
        if len(todo) == 0:
            break
    x[todo] = xt  # rows still unsettled (the caller finishes them)
    return clamp_min(x, 0.0), settled


def _step_back(x, z, free):
    """Move from feasible ``x`` towards ``z`` until a free component reaches zero; fix it."""
    xp = namespace(x)
    blocking = free & (z <= 0)
    ratio = xp.where(blocking, x / clamp_min(x - z, 1e-300), xp.full_like(x, 2.0))
    first = xp.argmin(ratio, axis=1)
    alpha = xp.clip(xp.take_along_axis(ratio, first[:, None], 1), 0.0, 1.0)
    moved = x + alpha * (z - x)
    free = free & (moved > 0)
    free[xp.arange(len(free), like=free), first] = False
    return xp.where(free, moved, xp.zeros_like(moved)), free


def _kkt_violations(gram, rhs, solution, tol: float):
    """Rows where a zero coefficient could still lower the residual (not yet optimal)."""
    xp = namespace(rhs)
    gradient = rhs - solution @ gram  # minus half the gradient of the squared residual
    slack = max(tol, 1e-9) * clamp_min(xp.max(xp.abs(rhs), axis=1, keepdims=True), 1e-30)
    rising = (solution <= 0) & (gradient > slack)  # a zero share that should grow
    unsteady = (solution > 0) & (abs(gradient) > slack)  # a share not at its optimum
    return (rising | unsteady).any(1)


def _coordinate_descent(gram, rhs, solution, max_iter: int, tol: float):
    diagonal = gram.diagonal()
    for _ in range(max_iter):
        largest_change = 0.0
        for c in range(len(gram)):
            if diagonal[c] <= 0:
                continue
            updated = clamp_min(solution[:, c] + (rhs[:, c] - solution @ gram[c]) / diagonal[c], 0)
            largest_change = max(largest_change, float(abs(updated - solution[:, c]).max()))
            solution[:, c] = updated
        if largest_change <= tol * (float(abs(solution).max()) or 1.0):
            break
    return solution


def phase_fractions(
    counts: Any,
    phase_spectra: np.ndarray,
    pixels: np.ndarray,
    device: str = "auto",
    mask_channels: np.ndarray | None = None,
) -> Computation:
    """Share of every phase in every pixel: non-negative least squares on pure-pixel spectra.

    Each phase is represented by its mean spectrum per pixel (sum spectrum / pixel count), so
    a pixel of pure phase ``k`` has coefficient 1 for ``k``, and a boundary pixel half of two
    phases 0.5 for each, whatever the two phases' count rates (unlike the NMF abundances,
    which are counts). The coefficients are divided by their sum: the fractions of a pixel
    sum to 1 (0 where no phase fits, e.g. a pixel without counts).

    Parameters
    ----------
    counts : array, shape (y, x, E)
        Counts.
    phase_spectra : ndarray, shape (K, E)
        Sum spectrum of each phase.
    pixels : ndarray, shape (K,)
        Pixels of each phase.
    device, mask_channels
        See :func:`abundance_maps`.

    Yields
    ------
    Progress

    Returns
    -------
    ndarray, shape (y, x, K), float32
    """
    shares = yield from abundance_maps(
        counts,
        mean_phase_spectra(phase_spectra, pixels),
        device=device,
        mask_channels=mask_channels,
    )
    return fractions_of_shares(shares)


def mean_phase_spectra(phase_spectra: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """Mean spectrum per pixel of each phase (the basis of :func:`phase_fractions`)."""
    return np.asarray(phase_spectra, np.float64) / np.maximum(pixels, 1)[:, None]


def fractions_of_shares(shares: np.ndarray) -> np.ndarray:
    """Phase fractions from the non-negative shares of the mean phase spectra (sum 1, or 0)."""
    total = shares.sum(axis=-1, keepdims=True)
    return np.divide(shares, total, out=np.zeros_like(shares), where=total > 0)
