"""The starting point of the HALS iterations of :func:`~napari_sigma.unmixing.nmf.nmf`: the
non-negative double SVD (:func:`nndsvd`) or the rows at the corners of the rows' convex cone
(:func:`vertex_rows`)."""

from __future__ import annotations

import numpy as np

from napari_sigma.errors import AnalysisError

EPS = 1e-12


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
