"""How well each phase explains each pixel, when pixels on grain boundaries are mixtures.

A pixel on the boundary between two phases A and B records a mixture of their spectra. When a
third phase C lies between A and B in feature space (albite between quartz and anorthite, say), a
classifier that knows only pure phases gives the boundary pixel to C, and thin false rims of C
outline every A-B boundary. Here the log-likelihood of phase k for a pixel is the best of:

- the pure phase k, and
- a mixture in which k has the larger share (``fraction`` >= 0.5) and any other phase the rest,

under one covariance shared by all phases (counting noise: a phase's own spread would let a
broad phase claim the boundaries of a narrow one, and a prior on phase sizes would move every
boundary towards the smaller phase; both measured to cost 1-2 % of adjusted Rand index). A pixel
is thereby labelled with the phase that has the larger share of it, which is also how the ground
truth of the synthetic benchmarks labels mixed pixels.

Mixtures are linear in counts, not in the square-root (Anscombe) features of the ``poisson``
normalisation, so with ``space="anscombe"`` the templates are mixed in counts and transformed back.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from napari_sigma.features.intensities import inverse_anscombe

MixSpace = Literal["anscombe", "linear"]

#: Shares of the majority phase in the mixture templates.
MIX_FRACTIONS: tuple[float, ...] = (0.5, 0.6, 0.7, 0.8, 0.9)

_ANSCOMBE_MEAN_OFFSET = 0.125


def phase_templates(
    members: np.ndarray,
    hard: np.ndarray,
    n_phases: int,
    fractions: tuple[float, ...] = MIX_FRACTIONS,
    space: MixSpace = "linear",
) -> np.ndarray:
    """Expected features of every pure phase and of its majority mixtures with the others.

    Parameters
    ----------
    members : ndarray, shape (N, F)
        Features of the training pixels.
    hard : ndarray, shape (N,)
        Phase 0..K-1 of each training pixel.
    n_phases : int
        K.
    fractions : tuple of float
        Shares (0.5-1) of the majority phase in the mixtures; empty for pure phases only.
    space : {"linear", "anscombe"}
        ``"anscombe"`` when features are ``sqrt(counts + 3/8)``: mixtures are formed in counts.

    Returns
    -------
    ndarray, shape (K, 1 + (K-1) * len(fractions), F)
        Row 0 of phase k is its mean; the others its mixtures, phase by phase, share by share.
    """
    means = np.stack([members[hard == k].mean(axis=0) for k in range(n_phases)])
    if space == "anscombe":
        counts = np.stack(
            [inverse_anscombe(members[hard == k]).mean(axis=0) for k in range(n_phases)]
        )
    templates = np.empty((n_phases, 1 + (n_phases - 1) * len(fractions), means.shape[1]))
    for k in range(n_phases):
        rows = [means[k]]
        for other in (j for j in range(n_phases) if j != k):
            for share in fractions:
                if space == "anscombe":  # E[sqrt(x + 3/8)] = sqrt(rate + 1/8) to O(rate^-1.5)
                    mixed = share * counts[k] + (1.0 - share) * counts[other]
                    rows.append(np.sqrt(mixed + _ANSCOMBE_MEAN_OFFSET))
                else:
                    rows.append(share * means[k] + (1.0 - share) * means[other])
        templates[k] = np.stack(rows)
    return templates


def phase_log_likelihood(
    raw: np.ndarray,
    mask: np.ndarray,
    hard: np.ndarray,
    n_phases: int,
    fractions: tuple[float, ...] = MIX_FRACTIONS,
    space: MixSpace = "linear",
    chunk_pixels: int = 4096,
) -> np.ndarray:
    """Log-likelihood ``(y, x, K)`` of every pixel under each phase, mixtures included.

    Parameters
    ----------
    raw : ndarray, shape (y, x, F)
        Features of every pixel.
    mask : ndarray of bool, shape (y, x)
        Training pixels.
    hard : ndarray, shape (mask.sum(),)
        Phase 0..K-1 of each training pixel.
    n_phases : int
        K.
    fractions, space
        See :func:`phase_templates`.
    chunk_pixels : int
        Pixels per block (bounds the memory to ``chunk_pixels * templates`` floats).

    Returns
    -------
    ndarray, shape (y, x, K)
        ``-d^2 / 2`` to the nearest template of each phase (Mahalanobis, shared covariance);
        ``-inf`` for a phase without training pixels.
    """
    members = raw[mask].astype(np.float64)
    present = np.flatnonzero(np.bincount(hard, minlength=n_phases) > 0)  # a phase may be empty
    compact = np.searchsorted(present, hard)
    templates = phase_templates(members, compact, len(present), fractions, space)
    means = templates[:, 0]
    n_features = members.shape[1]
    pooled = np.cov((members - means[compact]).T).reshape(n_features, n_features)
    chol = np.linalg.cholesky(pooled + 1e-3 * np.eye(n_features))
    white = np.linalg.solve(chol, templates.reshape(-1, n_features).T).T
    white_norm = np.einsum("ij,ij->i", white, white)
    flat = raw.reshape(-1, n_features)
    out = np.full((flat.shape[0], n_phases), -np.inf)
    per_phase = templates.shape[1]
    for start in range(0, flat.shape[0], chunk_pixels):
        block = np.linalg.solve(chol, flat[start : start + chunk_pixels].astype(np.float64).T).T
        # |b|^2 - 2 b.w + |w|^2, in place (the same roundings as written out in one expression)
        distance = block @ white.T
        distance *= -2.0
        distance += np.einsum("ij,ij->i", block, block)[:, None]
        distance += white_norm
        nearest = distance.reshape(len(block), len(present), per_phase).min(axis=2)
        out[start : start + len(block), present] = -0.5 * nearest
    return out.reshape(*raw.shape[:2], n_phases)
