"""The host correction: the share of a host phase removed from the core spectra of particles that
sit in it (particles seen through a foil or within the interaction volume of the phase around
them)."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from napari_sigma.minerals.interiors import _interior_from_depths, phase_depths, touching_phases

HOST_ENCLOSURE = 0.5
"""A phase is taken as particles in a host when at least this share of its boundary with other
phases is with one larger phase (see `host_corrected_spectra`)."""
HOST_SIGNIFICANCE = 3.0
"""The host's share is removed only when it is this many standard errors above zero."""


@dataclass
class HostCorrection:
    """The share of a host phase removed from a phase's core spectrum.

    Parameters
    ----------
    host : int
        The host phase id.
    share : float
        Removed host counts / the core spectrum's counts (0..1).
    sigma : float
        Its standard error.
    centre_pixels : int
        The core pixels the estimate rests on (the fit of the share against depth).
    hosts : dict of int to float
        The host phases and their shares of the removed spectrum (`particle_host_shares`);
        ``host`` is the largest.
    """

    host: int
    share: float
    sigma: float
    centre_pixels: int
    hosts: dict[int, float] = field(default_factory=dict)


def particle_hosts(labels: np.ndarray) -> dict[int, int]:
    """Phases that are particles in a host: ``{phase: host}`` (the larger phase it shares the
    most boundary with) for each phase of `particle_host_shares`."""
    return {
        pid: max(shares.items(), key=lambda item: item[1])[0]
        for pid, shares in particle_host_shares(labels).items()
    }


def particle_host_shares(labels: np.ndarray) -> dict[int, dict[int, float]]:
    """Phases that are particles in a host and their hosts' shares: ``{phase: {host: share}}``
    for each phase that shares at least ``HOST_ENCLOSURE`` of its boundary with other phases
    with phases of more pixels; the shares are those phases' boundary lengths (summing to 1).

    Small grains scattered through a rock sit in different larger phases (magnetite in quartz,
    albite and orthoclase): each of them holds its own surroundings, so the phase holds their
    mixture in the proportions of its boundaries, which no single host reaches half of."""
    labels = np.asarray(labels)
    sizes = np.bincount(np.clip(labels, 0, None).ravel())
    hosts = {}
    for pid, touching in touching_phases(labels).items():
        larger = {h: n for h, n in touching.items() if sizes[h] > sizes[pid]}
        total = sum(larger.values())
        if larger and total >= HOST_ENCLOSURE * sum(touching.values()):
            hosts[pid] = {h: n / total for h, n in sorted(larger.items())}
    return hosts


def host_corrected_spectra(
    counts, labels: np.ndarray, spectra: np.ndarray, energy: np.ndarray | None = None,
    beam_kev: float | None = None, depth: np.ndarray | None = None,
) -> tuple[np.ndarray, dict[int, HostCorrection]]:  # fmt: skip
    """Remove the host's share from the core spectra of particles that sit in a host.

    A particle seen through a foil (a projected sphere in a matrix) or within the interaction
    volume of the phase around it gives each of its pixels the spectrum
    ``(1 - s) P + s H`` (per count): its own ``P`` and the host's ``H`` in the shares of the
    column (or volume) each fills. The host's share ``s`` falls towards a particle's centre, so
    the core (`interior_labels`) of small particles still holds some of the host.

    Each core pixel's position on the line through the core's mean spectrum ``m`` and the
    host's ``H`` (its core spectrum per count; for a phase in several larger phases, their
    mixture in the shares of its boundary: `particle_host_shares`) is measured, ``tau_i`` (Poisson-weighted projection of the
    pixel's spectrum per count onto ``H - m``; 0 for a pixel like the core's mean). The share
    is a smooth function of the position in the particle, even about its centre, so near the
    centre it varies with the square of the distance from it: ``tau_i = a + b u_i^2`` with
    ``u_i`` the pixel's depth below its particle's greatest depth (`phase_depths`), fitted by
    least squares weighted by the pixels' counts (standard error from the residuals). ``a`` is
    the centres' position: the least host the data show, estimated from every core pixel. When
    ``a`` is ``HOST_SIGNIFICANCE`` standard errors below zero, the core spectrum is moved there,
    ``m + a (H - m)`` (its counts kept); a phase whose core is free of the host (large grains:
    no trend with depth) is left as it is. Beyond the centres (to zero host) the data cannot
    tell: the particle's spectrum is known only up to adding host along the line.

    Parameters
    ----------
    counts : array (y, x, E)
        The spectrum image's counts (numpy or dask).
    labels : ndarray (y, x) int
        The phases.
    spectra : ndarray (K, E)
        The summed spectra of the phases' cores (``interior_labels(labels)``), phases 1..K.
    energy : ndarray (E,), optional
        Channel energies (keV): channels below 0.15 keV (the noise peak) and above
        ``beam_kev`` are left out of the projection.
    beam_kev : float, optional
        The beam energy.
    depth : ndarray (y, x), optional
        :func:`phase_depths` of ``labels``, when already computed.

    Returns
    -------
    corrected : ndarray (K, E)
        ``spectra`` with the host share removed where one was found.
    corrections : dict of int to HostCorrection
        The phases corrected.
    """
    labels = np.asarray(labels)
    spectra = np.asarray(spectra, dtype=np.float64)
    corrected = spectra.copy()
    shares = {
        p: {h: w for h, w in hs.items() if h <= len(spectra) and spectra[h - 1].sum() > 0}
        for p, hs in particle_host_shares(labels).items()
        if p <= len(spectra) and spectra[p - 1].sum() > 0
    }
    shares = {p: hs for p, hs in shares.items() if hs}
    hosts = {p: max(hs.items(), key=lambda item: item[1])[0] for p, hs in shares.items()}
    if not hosts:
        return corrected, {}
    channels = np.ones(spectra.shape[1], dtype=bool)
    if energy is not None:
        channels &= np.asarray(energy) >= 0.15
        if beam_kev:
            channels &= np.asarray(energy) <= beam_kev
    depth = phase_depths(labels) if depth is None else np.asarray(depth)
    core = _interior_from_depths(labels, depth)
    below = _depth_below_centre(labels, list(hosts), depth)
    filters = {}
    for pid in hosts:
        mean = spectra[pid - 1] / spectra[pid - 1].sum()
        host_mean = sum(w * spectra[h - 1] / spectra[h - 1].sum() for h, w in shares[pid].items())
        direction = host_mean / sum(shares[pid].values()) - mean
        # Poisson weights of the core's mean (at least one count of the core per channel)
        variance = np.maximum(mean, 1.0 / spectra[pid - 1].sum())
        g = np.where(channels, direction / variance, 0.0)
        scale = float(direction[channels] @ g[channels])
        if scale > 0:
            filters[pid] = (g / scale, float(mean @ (g / scale)), mean, direction)
    projections = _core_projections(counts, core, {p: f[0] for p, f in filters.items()})
    corrections = {}
    for pid, (_, offset, mean, direction) in filters.items():
        projected, totals, where = projections[pid]
        keep = totals > 0
        if np.count_nonzero(keep) < 3:
            continue
        tau = projected[keep] / totals[keep] - offset
        u2 = below.ravel()[where][keep] ** 2
        a, sigma = _centre_position(tau, u2, totals[keep])
        if a < -HOST_SIGNIFICANCE * sigma:
            corrected[pid - 1] = spectra[pid - 1].sum() * (mean + a * direction)
            share = -a / (1.0 - a)
            corrections[pid] = HostCorrection(
                hosts[pid], share, sigma / (1.0 - a) ** 2, int(np.count_nonzero(keep)),
                shares[pid],
            )  # fmt: skip
    return corrected, corrections


def _host_names(fix: HostCorrection) -> str:
    """``P1`` for one host, ``P1 39 % + P3 35 % + P2 26 %`` for a mixture."""
    if len(fix.hosts) <= 1:
        return f"P{fix.host}"
    ordered = sorted(fix.hosts.items(), key=lambda item: -item[1])
    return " + ".join(f"P{h} {100 * w:.0f} %" for h, w in ordered)


def _depth_below_centre(labels: np.ndarray, phase_ids: Sequence[int], depth: np.ndarray):
    """Each pixel of the given phases: its particle's (connected region's) greatest depth minus
    its own depth (0 at a particle's centre); 0 elsewhere."""
    from scipy.ndimage import find_objects
    from scipy.ndimage import label as connected

    below = np.zeros(labels.shape, dtype=np.float64)
    boxes = find_objects(np.clip(labels, 0, None))
    for pid in phase_ids:
        box = boxes[pid - 1] if pid <= len(boxes) else None
        if box is None:
            continue
        mask = labels[box] == pid
        regions, n = connected(mask)
        deepest = np.zeros(n + 1)
        np.maximum.at(deepest, regions[mask], depth[box][mask])
        below[box][mask] = (deepest[regions] - depth[box])[mask]
    return below


#: Bytes of the float64 block each thread casts a phase's gathered core pixels into: within a
#: core's L2 cache, where the cast and the product that reads it back run at twice the speed of
#: 16 MiB blocks (s18, speed18b: 87 000 core pixels x 2048 channels, one BLAS thread, process
#: user 0.41-0.44 s at 16 MiB, 0.28 s at 4 MiB, 0.21-0.22 s at 1 MiB, the same bits).
SCRATCH_BYTES = 2**20


def _projection_rows(n_channels: int) -> int:
    """Core pixels projected at a time: 8192, halved until their float64 block fits
    :data:`SCRATCH_BYTES` (at least 64) where the BLAS runs on one thread.

    A power of two that divides 8192: each 8192-pixel block of the earlier form is cut into
    whole sub-blocks at multiples of 64 pixels (:func:`_sub_blocks`). On one BLAS thread (the
    analysis's, :func:`~napari_sigma.compute.device.torch_threads`) every pixel's product then
    goes through the same kernel path as in its 8192-pixel block: the same bits. On more
    threads the BLAS splits a product's pixels between them, and where the split falls changes
    the last bit of a few pixels' products: there the 8192-pixel blocks are kept."""
    rows = 8192
    if not _one_blas_thread():
        return rows
    while rows > 64 and rows * max(int(n_channels), 1) * 8 > SCRATCH_BYTES:
        rows //= 2
    return rows


def _one_blas_thread() -> bool:
    """Whether every BLAS library of the process runs on one thread now (threadpoolctl's look-up,
    ~1 ms; False where it cannot tell)."""
    try:
        from threadpoolctl import ThreadpoolController

        found = ThreadpoolController().select(user_api="blas").info()
    except Exception:  # no threadpoolctl, or a library it cannot read: as before
        return False
    return bool(found) and all(entry.get("num_threads") == 1 for entry in found)


def _sub_blocks(n_pixels: int, step: int) -> Iterator[tuple[int, int]]:
    """``(first, end)`` of consecutive sub-blocks of at most ``step`` pixels (``step + 1`` where
    a pixel would be left alone) within the 8192-pixel blocks of the earlier form.

    A lone pixel's product is a dot product (numpy's one-row matmul), whose sums go in
    another order than the matrix-vector product's: it stays with the sub-block before it, as
    it was in its 8192-pixel block (a block of one pixel, one in the earlier form too, stays
    alone)."""
    for start in range(0, n_pixels, 8192):
        end = min(start + 8192, n_pixels)
        lo = start
        while lo < end:
            hi = min(lo + step, end)
            if end - hi == 1:
                hi = end
            yield lo, hi
            lo = hi


def _core_projections(counts, core: np.ndarray, filters: Mapping[int, np.ndarray]) -> dict:
    """For each phase of ``filters``: its core pixels' spectra projected on the phase's filter,
    their counts, and their flat indices (the pixels gathered in blocks of
    :func:`_projection_rows`; a lazy cube read in blocks of whole rows within the memory limit,
    only the rows holding core pixels)."""
    if not filters:
        return {}
    from napari_sigma.compute.blocks import block_rows, read_block

    ids = list(filters)
    matrix = np.stack([filters[p] for p in ids], axis=1)  # (E, P)
    flat_core = core.ravel()
    where = {p: np.flatnonzero(flat_core == p) for p in ids}
    out = {p: (np.empty(where[p].size), np.empty(where[p].size), where[p]) for p in ids}
    if isinstance(counts, np.ndarray):
        from napari_sigma.compute.blocks import threaded_map

        flat = counts.reshape(-1, counts.shape[-1])
        exact = flat.dtype.kind in "biu"  # integer counts: their sums are exact integers
        # a float64 block and a block of gathered counts per thread, freed on return
        scratch: dict[tuple[int, bool], np.ndarray] = {}
        step = _projection_rows(flat.shape[1])
        longest = min(step + 1, max(index.size for index in where.values()))  # a sub-block

        def scratch_rows(n_rows: int, gathered: bool = False) -> np.ndarray:
            key = (threading.get_ident(), gathered)
            array = scratch.get(key)
            if array is None or len(array) < n_rows:
                dtype = flat.dtype if gathered else np.float64
                size = max(n_rows, longest)  # made once per thread
                array = scratch[key] = np.empty((size, flat.shape[1]), dtype)
            return array[:n_rows]

        gather = _compiled_gather(flat)

        def project(k: int) -> None:
            # the same products as a fresh float64 array per block (same rows, same layout),
            # cast into this thread's scratch array from the pixels gathered into another: a
            # new 134 MB array per block was faulted in page by page, most of the time taken,
            # and a new 32 MB gather per block most of what was left (1024^2: 1.7 s sys); the
            # scratch of 8192 pixels was still 134 + 34 MB of new memory per thread, 1.8-3.7 s
            # of system time at 1024^2 x 2048 (s17): now a block of `step` pixels (1 MiB)
            idx = where[ids[k]]
            projected, totals, _ = out[ids[k]]
            for lo, hi in _sub_blocks(idx.size, step):
                rows = idx[lo:hi]
                if gather is not None:  # gathered, cast and summed in one read of each pixel
                    block = scratch_rows(len(rows))
                    gather.gather_rows(flat, rows, block, totals[lo:hi])
                    projected[lo:hi] = block @ matrix[:, k]
                    continue
                pixels = np.take(flat, rows, axis=0, out=scratch_rows(len(rows), gathered=True))
                block = scratch_rows(len(pixels))
                np.copyto(block, pixels, casting="unsafe")
                projected[lo:hi] = block @ matrix[:, k]
                # float64 sums of integers below 2**53 are exact: the integer sums
                totals[lo:hi] = pixels.sum(axis=1, dtype=np.int64) if exact else block.sum(axis=1)

        for _ in threaded_map(project, range(len(ids))):  # phases on every core (GIL released)
            pass
        return out
    for start, end, rows in block_rows(counts, 8192):
        spans = {p: np.searchsorted(where[p], (start, end)) for p in ids}
        if all(hi == lo for lo, hi in spans.values()):
            continue
        block = read_block(counts, rows)
        for k, p in enumerate(ids):
            lo, hi = spans[p]
            if hi > lo:
                pixels = np.asarray(block[where[p][lo:hi] - start], dtype=np.float64)
                out[p][0][lo:hi] = pixels @ matrix[:, k]
                out[p][1][lo:hi] = pixels.sum(axis=1)
    return out


#: Pixels from which a cube's integer counts are gathered by the compiled kernel
#: (:mod:`napari_sigma.minerals._gather`): numba is loaded for the abundance pass from the same
#: size (:data:`~napari_sigma.unmixing.abundances.COMPILED_NNLS_PIXELS`).
COMPILED_GATHER_PIXELS = 1 << 18
#: The count types the compiled gather takes (the signatures ``_gather.warm_up`` compiles).
GATHER_TYPES = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.uint32))


def _compiled_gather(flat: np.ndarray):
    """The compiled gather's module for ``flat`` (N, E) counts, or None (numpy gathers):
    C-contiguous counts of a kernel type (uint8/16/32), at least :data:`COMPILED_GATHER_PIXELS`
    pixels, numba present, and napari's warm-up child not compiling (nothing compiled in
    napari's process meanwhile). Imported here, in the calling thread, before the phases'
    threads call it. The same values either way (exact casts and integer sums)."""
    if flat.shape[0] < COMPILED_GATHER_PIXELS or not flat.flags.c_contiguous:
        return None
    if flat.dtype not in GATHER_TYPES:
        return None
    from napari_sigma.compute._jit import warm_up_running

    if warm_up_running():
        return None
    try:
        from napari_sigma.minerals import _gather
    except ImportError:  # numba missing
        return None
    return _gather


def _centre_position(tau: np.ndarray, u2: np.ndarray, weights: np.ndarray):
    """Weighted least squares ``tau ~ a + b u2``: ``a`` and its standard error (from the
    residuals; infinite when the depths do not vary)."""
    design = np.stack([np.ones_like(u2), u2], axis=1)
    w = np.asarray(weights, dtype=np.float64)
    normal = design.T @ (w[:, None] * design)
    if np.linalg.cond(normal) > 1e12 or tau.size < 3:
        return 0.0, float("inf")
    inverse = np.linalg.inv(normal)
    beta = inverse @ (design.T @ (w * tau))
    residual = tau - design @ beta
    dispersion = float(np.sum(w * residual**2)) / (tau.size - 2)
    return float(beta[0]), float(np.sqrt(dispersion * inverse[0, 0]))
