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

This module holds the NMF itself (and :class:`UnmixingResult`); the rest lives by domain:

- :mod:`~napari_sigma.unmixing.nmf_start`: the NMF's start (``nndsvd``, ``vertex_rows``);
- :mod:`~napari_sigma.unmixing.abundances`: the abundance pass (``abundance_maps``,
  ``nnls_maps``, ``start_compiled_warm_up``, the blocks and batches);
- :mod:`~napari_sigma.unmixing.block_nnls`: the non-negative least squares of a block of pixels
  (the active set);
- :mod:`~napari_sigma.unmixing.restricted_inverses`: the Gram matrix's restricted inverses;
- :mod:`~napari_sigma.unmixing.fractions`: the phase fractions (``phase_fractions``).

Their public names (and the private ones tests use) are importable from here as before; patch or
change them in their own modules.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from napari_sigma.compute.arrays import clamp_min, host
from napari_sigma.compute.device import resolve_device
from napari_sigma.errors import AnalysisError
from napari_sigma.phases.spectra import phase_sum_spectra as phase_sum_spectra  # public here too

# moved by domain (seventeenth session): importable from here as before; patch them there
from napari_sigma.unmixing.abundances import (  # noqa: F401
    _WARM_UPS,
    ABUNDANCE_CHUNK_VALUES,
    ABUNDANCE_CPU_CHUNK_VALUES,
    COMPILED_NNLS_PIXELS,
    NNLS_ROWS,
    STAGE,
    _join_warm_up,
    _used_channels,
    abundance_maps,
    nnls_maps,
    start_compiled_warm_up,
)
from napari_sigma.unmixing.block_nnls import (  # noqa: F401
    _coordinate_descent,
    _kkt_violations,
    _lawson_hanson,
    _lawson_hanson_compiled,
    _nnls_block,
    _step_back,
)
from napari_sigma.unmixing.fractions import (  # noqa: F401
    fractions_of_shares,
    mean_phase_spectra,
    phase_fractions,
)
from napari_sigma.unmixing.nmf_start import EPS, _start, nndsvd, vertex_rows  # noqa: F401
from napari_sigma.unmixing.restricted_inverses import (  # noqa: F401
    DENSE_SET_TABLE_MAX,
    _pinv,
    _restricted_inverse,
    _set_solver,
    _whole_table,
)


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
        convex cone (:func:`~napari_sigma.unmixing.nmf_start.vertex_rows`), so that rows
        which are mixtures of others are explained by them and, with C = K, the components are
        the rows themselves (the factorisation is not unique; this is its smallest simplex).
        ``"nndsvd"``: the non-negative double SVD, whose components mix the rows.

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
