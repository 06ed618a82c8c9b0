"""Boundary pixels to their majority phase, from the phase fractions where one pixel can tell.

The labels of :func:`~napari_sigma.phases.finding.find_phases` give a boundary pixel to the phase
whose mixture templates and neighbours fit it best. Two things bias that choice where phases
differ in count rate or grains are small:

- the mixture templates mix *normalised* features, i.e. count shares, while the majority phase is
  the one with the larger share of the pixel (of the foil's thickness in STEM, of the interaction
  volume in SEM). A pixel half carbon support (60 counts) and half Pt (197 counts) holds 77 % Pt
  counts and looked like Pt: every particle of the espm catalyst case grew by a rim of support
  pixels (255 of the 266 wrong pixels);
- the Potts prior shrinks small convex grains (a rim pixel has fewer neighbours inside).

The phase fractions (:func:`~napari_sigma.unmixing.fractions.phase_fractions`: a non-negative fit of
each pixel's whole spectrum by the phases' mean pixel spectra) are shares of the pixel, not of
its counts, and carry no spatial prior. One pixel's fractions are noisy, but the shares of
mixed pixels vary smoothly (projected grains, the beam's spread, blurred interfaces), so they
are averaged over a Gaussian before the largest is taken: the narrower, the further apart the
two phases in question are (``BLUR_SEPARATION / separation`` pixels, at most
``FRACTION_SIGMA``): well separated phases need no averaging, which would only move their
boundaries.

That majority decision is used only between phases that *one pixel's spectrum tells apart*:
the fraction of a pure pixel of phase i and of a pure pixel of phase j must lie at least
``min_separation`` standard deviations of counting noise apart (:func:`pair_separation`).
Phases closer than that (twins of a minor element, any pair at a very low dose) form a group
whose pixels keep their label: the labels separate them grain by grain, which single pixels'
fractions cannot. Measured on the five espm cases (independent simulator), against the
templates + Potts labels: oxide ARI 0.944 -> 0.947, steel 0.914 -> 0.924 (trace NbC IoU
0.58 -> 0.78), catalyst 0.910 -> 0.953, peridotite 0.789 and twin garnets 0.955 -> 0.956
(their close pairs, 1.4-5 and 1.9 standard deviations apart, are groups).
"""

from __future__ import annotations

import numpy as np

#: Phases whose pure pixels lie at least this many counting-noise standard deviations apart
#: (in the fraction of one pixel) are told apart by the fractions: after the widest average
#: (``FRACTION_SIGMA``) a 60/40 pixel's majority is then decided at 2 standard deviations
#: (``1 / (sqrt(pi) sigma separation) <= 0.1``: 5.6).
MIN_SEPARATION = 6.0
#: Widest Gaussian (pixels) over which the fractions of mixed pixels are averaged: the width
#: of the mixing itself (blurred interfaces, the beam's spread); a wider one moves boundaries.
FRACTION_SIGMA = 1.0
#: The fractions of a pair of phases ``s`` standard deviations apart are averaged over
#: ``BLUR_SEPARATION / s`` pixels (at most ``FRACTION_SIGMA``), the same noise for every pair:
#: no averaging where one pixel decides (the measured noise of the fractions of mixed pixels is
#: about twice the two-phase bound of :func:`pair_separation`: 0.17 against 0.07-0.09 on the
#: espm catalyst and oxide cases, hence twice the 5.6 above).
BLUR_SEPARATION = 10.0
#: Widths (pixels) the averaging is rounded to.
_SIGMA_STEPS = 0.25


def pair_separation(mean_spectra: np.ndarray, channels: np.ndarray | None = None) -> np.ndarray:
    """Separation ``(K, K)`` of every pair of phases in one pixel, in standard deviations.

    For a pixel mixing phases i and j, the fraction ``a`` of i has Fisher information
    ``sum_E (m_i - m_j)^2 / mu_E`` under Poisson noise (``m``: mean pixel spectra, ``mu``: the
    pixel's expected spectrum, taken at ``a = 1/2``), so its standard deviation is one over the
    square root, and a pure pixel of i and one of j (``a = 1`` and ``0``) lie the square root
    apart.

    Parameters
    ----------
    mean_spectra : ndarray, shape (K, E)
        Mean spectrum of one pixel of each phase (counts).
    channels : ndarray of bool, shape (E,), optional
        Channels to use (default: all).

    Returns
    -------
    ndarray, shape (K, K)
        Symmetric, ``inf`` on the diagonal; 0 for a phase without counts.
    """
    spectra = np.asarray(mean_spectra, np.float64)
    if channels is not None:
        spectra = spectra[:, channels]
    diff = spectra[:, None, :] - spectra[None, :, :]
    middle = 0.5 * (spectra[:, None, :] + spectra[None, :, :])
    information = (diff * diff / np.maximum(middle, 1e-12)).sum(axis=-1)
    separation = np.sqrt(information)
    np.fill_diagonal(separation, np.inf)
    return separation


def distinct_groups(separation: np.ndarray, min_separation: float = MIN_SEPARATION) -> np.ndarray:
    """Group ``(K,)`` of every phase: phases linked by pairs closer than ``min_separation``.

    Connected components of the graph of close pairs; phases of different groups are told
    apart pixel by pixel.
    """
    from scipy.sparse.csgraph import connected_components

    close = separation < min_separation
    np.fill_diagonal(close, False)
    return connected_components(close, directed=False)[1]


def majority_labels(
    labels: np.ndarray,
    fractions: np.ndarray,
    mean_spectra: np.ndarray,
    channels: np.ndarray | None = None,
    sigma: float = FRACTION_SIGMA,
    min_separation: float = MIN_SEPARATION,
    blur_separation: float = BLUR_SEPARATION,
) -> np.ndarray:
    """Labels with every pixel in the group of phases that has the larger share of it.

    Parameters
    ----------
    labels : ndarray of int, shape (y, x)
        Phase 1..K of every pixel (0: unassigned, kept).
    fractions : ndarray, shape (y, x, K)
        Share of every phase in every pixel
        (:func:`~napari_sigma.unmixing.fractions.phase_fractions`).
    mean_spectra : ndarray, shape (K, E)
        Mean pixel spectrum of each phase (the spectra the fractions were fitted with).
    channels : ndarray of bool, shape (E,), optional
        Channels the fractions were fitted on.
    sigma : float
        Widest Gaussian (pixels) averaging the fractions; 0: none.
    min_separation : float
        See :func:`distinct_groups`.
    blur_separation : float
        A pixel's fractions are averaged over ``blur_separation / s`` pixels (at most
        ``sigma``), ``s`` the separation of its label and the other group's phase with the
        largest share.

    Returns
    -------
    ndarray of int32, shape (y, x)
        A pixel whose label lies in the group with the largest averaged share keeps it; any
        other gets the phase of that group with the largest averaged share.
    """
    labels = np.asarray(labels)
    n_phases = fractions.shape[-1]
    separation = pair_separation(mean_spectra, channels)
    groups = distinct_groups(separation, min_separation)
    if n_phases < 2 or groups.max() == 0:
        return labels.astype(np.int32)
    shares = _averaged_shares(
        np.asarray(fractions, np.float32), labels, separation, groups, sigma, blur_separation
    )
    n_groups = int(groups.max()) + 1
    member = np.eye(n_groups, dtype=np.float32)[groups]  # (K, G)
    best = (shares @ member).argmax(axis=-1)  # the group with the largest share (one product)
    out = np.empty(labels.shape, np.int32)

    def band(rows: slice) -> None:  # per pixel: any band of rows gives the same labels
        part, top = shares[rows], best[rows]
        within = np.where(groups[None, None, :] == top[..., None], part, -1.0).argmax(axis=-1)
        own = labels[rows]
        assigned = (own >= 1) & (own <= n_phases)
        keep = groups[np.clip(own - 1, 0, n_phases - 1)] == top
        out[rows] = np.where(assigned & ~keep, within + 1, own)

    _in_row_bands(band, labels.shape[0])
    return out


#: Rows per band of the majority decision's per-pixel steps (bands on every core).
BAND_ROWS = 64


def _in_row_bands(function, height: int) -> None:
    """``function(rows)`` for bands of :data:`BAND_ROWS` rows, on every core (numpy releases
    the GIL in these element-wise and per-pixel steps)."""
    from napari_sigma.compute.blocks import threaded_map

    for _ in threaded_map(function, [slice(r, r + BAND_ROWS) for r in range(0, height, BAND_ROWS)]):
        pass


def _averaged_shares(
    fractions: np.ndarray,
    labels: np.ndarray,
    separation: np.ndarray,
    groups: np.ndarray,
    sigma: float,
    blur_separation: float,
) -> np.ndarray:
    """Fractions averaged over a Gaussian whose width follows each pixel's pair of phases."""
    from napari_sigma.phases._filters import gaussian_blur

    if sigma <= 0:
        return fractions
    n_phases = fractions.shape[-1]
    widest = gaussian_blur(fractions, sigma)
    steps = np.empty(labels.shape, int)
    shares = np.empty(np.broadcast_shapes(fractions.shape, widest.shape), widest.dtype)

    def band(rows: slice) -> None:  # per pixel: any band of rows gives the same numbers
        own = np.clip(labels[rows] - 1, 0, n_phases - 1)
        outside = groups[None, None, :] != groups[own][..., None]
        rival = np.where(outside, widest[rows], -1.0).argmax(axis=-1)
        wanted = np.minimum(blur_separation / np.maximum(separation[own, rival], 1e-12), sigma)
        steps[rows] = np.round(wanted / _SIGMA_STEPS).astype(int)
        shares[rows] = np.where((steps[rows] == 0)[..., None], fractions[rows], widest[rows])

    _in_row_bands(band, labels.shape[0])
    for step in np.unique(steps):
        width = step * _SIGMA_STEPS
        if 0 < step and width < sigma:
            chosen = steps == step
            shares[chosen] = gaussian_blur(fractions, width, where=chosen)[chosen]
    return shares


def moved_spectra(
    counts, before: np.ndarray, after: np.ndarray, n_phases: int, chunk_pixels: int = 4096
) -> np.ndarray:
    """Change ``(K, E)`` of the phases' sum spectra when labels go from ``before`` to ``after``.

    Only the pixels whose label changed are read (a few per cent of a map: grain boundaries).

    Parameters
    ----------
    counts : array, shape (y, x, E)
        numpy (in memory or memory-mapped), dask, or a float32 torch tensor ``(N, E)``
        (:func:`~napari_sigma.compute.device.resident_counts`).
    before, after : ndarray of int, shape (y, x)
        Labels 1..K (others ignored).
    n_phases : int
        K.
    """
    import threading

    from napari_sigma.compute.blocks import RowChunks, threaded_map
    from napari_sigma.compute.chunks import block_pixels

    before, after = before.reshape(-1), after.reshape(-1)
    moved = np.flatnonzero(before != after)
    n_channels = int(counts.shape[-1])
    change = np.zeros((n_phases, n_channels), np.float64)
    width = int(counts.shape[1]) if counts.ndim == 3 else 1
    # a chunk's counts, their float64 copy and a phase's selection of it, within the budget
    chunk_pixels = block_pixels(chunk_pixels, n_channels * 24)

    # a lazy cube: its row chunks read once each, top to bottom (the moved pixels are in flat
    # order, the chunks summed one after the other)
    reader = RowChunks(counts) if counts.ndim == 3 else None
    # integer counts in memory: each chunk's pixels gathered into this thread's buffer and
    # summed as integers (a fresh float64 copy per chunk and per phase was faulted in anew
    # every time: most of the time taken at 1024^2); integer sums are exact in float64 too, so
    # the terms, and their sums in any order, are the same numbers
    flat = _flat_integer_counts(counts)
    buffers: dict[int, np.ndarray] = {}  # a buffer per thread, freed on return

    def gathered(index: np.ndarray) -> np.ndarray:
        buffer = buffers.get(threading.get_ident())
        if buffer is None:
            buffer = np.empty((min(chunk_pixels, len(moved)), n_channels), flat.dtype)
            buffers[threading.get_ident()] = buffer
        return np.take(flat, index, axis=0, out=buffer[: len(index)])

    def chunk_sums(start: int) -> list[tuple[int, np.ndarray]]:
        index = moved[start : start + chunk_pixels]
        exact = flat is not None
        spectra = gathered(index) if exact else _pixel_spectra(counts, index, width, reader)
        terms = []
        for labels, sign in ((before[index], -1.0), (after[index], 1.0)):
            # a sum per phase (integer counts: exact in float64, in any order; np.add.at
            # added row by row at several times the cost)
            for label in np.unique(labels[(labels >= 1) & (labels <= n_phases)]).tolist():
                if exact:
                    total = spectra[labels == label].sum(axis=0, dtype=np.int64)
                    terms.append((label - 1, sign * total.astype(np.float64)))
                else:
                    terms.append((label - 1, sign * spectra[labels == label].sum(axis=0)))
        return terms

    # numpy counts: the chunks are read and summed on every core (numpy releases the GIL);
    # their terms are added here in the order of the one-thread loop (the same numbers)
    workers = None if isinstance(counts, np.ndarray) else 1
    for terms in threaded_map(chunk_sums, range(0, len(moved), chunk_pixels), workers):
        for phase, term in terms:
            change[phase] += term
    return change


def _flat_integer_counts(counts) -> np.ndarray | None:
    """A ``(N, E)`` view of numpy counts of integers of at most 32 bits (their int64 sums of a
    chunk's pixels cannot overflow), or None (other counts: read as float64)."""
    if not isinstance(counts, np.ndarray) or counts.dtype.kind not in "biu":
        return None
    if counts.dtype.itemsize > 4 or counts.ndim not in (2, 3) or not counts.flags.c_contiguous:
        return None
    return counts.reshape(-1, counts.shape[-1])


def _pixel_spectra(counts, index: np.ndarray, width: int, reader=None) -> np.ndarray:
    """Spectra ``(n, E)`` float64 of the flat pixels ``index`` (increasing; ``reader``: a
    :class:`~napari_sigma.compute.blocks.RowChunks` of 3-D ``counts``)."""
    if counts.ndim == 2:  # a torch tensor on a device, or (N, E) counts
        if hasattr(counts, "device") and hasattr(counts, "cpu"):
            import torch

            rows = counts[torch.as_tensor(index, device=counts.device)]
            return rows.cpu().numpy().astype(np.float64)
        return np.asarray(counts[index], np.float64)
    rows, cols = np.divmod(index, width)
    if reader is not None:  # dask: only the chunks that hold the pixels, each once
        return np.asarray(reader.points(rows, cols), np.float64)
    return np.asarray(counts[rows, cols], np.float64)
