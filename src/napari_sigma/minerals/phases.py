"""Quantify and name every phase of a label image (the analysis's or an edited one).

Each phase's summed spectrum (of its interior, away from boundaries, where it is large enough)
is fitted and quantified (:mod:`napari_sigma.quant`) and matched
against the mineral library (:mod:`napari_sigma.minerals.identify`); the peak-width correction of
the detector is found once, on the summed spectrum of all labelled pixels.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from napari_sigma.compute.progress import Computation, Progress
from napari_sigma.minerals.identify import Identification, identify_quantified
from napari_sigma.minerals.library import MineralLibrary, load_library
from napari_sigma.quant.quantify import (
    Quantification,
    QuantSettings,
    foil_thickness_nm,
    quantify_spectrum,
)
from napari_sigma.spectrum_image import SpectrumImage

MIN_PHASE_COUNTS = 200.0
"""A phase with fewer counts in all is not quantified (its name stays elemental)."""


UNRESOLVED_MARK = "≈"
"""Marks a name the measurement does not resolve from other minerals (the Phases table, the
report): `PhaseMineral.not_resolved_from` names them."""
UNRESOLVED_NOTE = (
    "their compositions are within the accuracy of a standardless analysis (8 % relative, "
    "0.7 wt %) of the named one's: polymorphs, H2O, or a few wt % of O as magnetite Fe3O4 and "
    "hematite Fe2O3; EDS measures composition, not structure"
)
"""What `UNRESOLVED_MARK` means, in words (tooltips, report footnotes)."""


@dataclass
class PhaseMineral:
    """The quantification and the identification of one phase.

    Parameters
    ----------
    phase_id : int
        The label.
    quantification : Quantification or None
        None when the phase has too few counts or quantification failed (see ``note``).
    identification : Identification or None
        Likewise.
    note : str
        Why there is no result, if there is none.
    """

    phase_id: int
    quantification: Quantification | None
    identification: Identification | None
    note: str = ""
    qualifier: str = ""
    """What tells this phase from another of the same name (``"+ K 2.8 wt%"``, an element the
    mineral does not hold; ``"(Fe 46.6 wt%)"``, one it holds: :func:`distinguish_same_names`),
    or ``""``; part of its name (`mineral_phase_names`), not of its mineral."""
    dispersion: dict[str, float] = field(default_factory=dict)
    """Each quantified element's dispersion over the phase's core pixels
    (:func:`line_dispersion`: 1 for counting noise alone), or empty where not measured."""

    @property
    def err_wt_mean(self) -> dict[str, float]:
        """The 1-sigma uncertainty (wt %) of the phase's mean composition: the counting
        uncertainty of its summed spectrum (``quantification.err_wt``) times the square root of
        the element's dispersion over its pixels (at least 1): :func:`mean_uncertainty`. Empty
        where the dispersion was not measured."""
        if self.quantification is None or not self.dispersion:
            return {}
        return mean_uncertainty(self.quantification.err_wt, self.dispersion)

    @property
    def mineral(self) -> str:
        """The identified name, or ``""``."""
        return self.identification.name if self.identification else ""

    @property
    def score(self) -> float:
        """The identification score, or NaN."""
        return self.identification.score if self.identification else float("nan")

    @property
    def not_resolved_from(self) -> str:
        """The minerals the measurement does not tell the name apart from, with their scores
        (``"maghemite 0.64; magnetite 0.51"``: `Identification.unresolved`), or ``""``."""
        if not self.identification:
            return ""
        return "; ".join(f"{name} {score:.2f}" for name, score in self.identification.unresolved)


CORE_FRACTION = 0.25
"""Share of a phase's pixels, the deepest, that make its own spectrum (see `interior_labels`)."""
MIN_CORE_PIXELS = 8
"""A phase's core keeps at least this many pixels (all of a smaller phase)."""


def interior_labels(labels: np.ndarray, depth: np.ndarray | None = None) -> np.ndarray:
    """Each phase's core: its deepest pixels, farthest from any other label.

    Pixels near a boundary mix the spectra of two phases (beam spread, interaction volume,
    grains overlapping through a foil); quantifying the core gives the phase's own composition.
    The depth of a pixel is its Euclidean distance to the nearest pixel of another label (the
    map's edge is no boundary). A phase keeps its ``CORE_FRACTION`` deepest pixels, at least
    ``MIN_CORE_PIXELS`` (ties at the threshold depth included): the centres of small particles
    rather than their mixed rims. On the espm_dev cases (truth labels) this took the
    composition errors from median 11 % to 6 % and named M23C6, NbC and the Cr-spinel (all
    pixels of small phases were used before).

    ``depth``: :func:`phase_depths` of ``labels``, when already computed.
    """
    labels = np.asarray(labels)
    interior = np.zeros_like(labels)
    if labels.ndim != 2 or not np.any(labels > 0):
        return interior
    return _interior_from_depths(labels, phase_depths(labels) if depth is None else depth)


def _interior_from_depths(labels: np.ndarray, depth: np.ndarray) -> np.ndarray:
    interior = np.zeros_like(labels)
    for pid in np.unique(labels[labels > 0]).tolist():
        mask = labels == pid
        values = depth[mask]
        keep = min(values.size, max(MIN_CORE_PIXELS, int(np.ceil(CORE_FRACTION * values.size))))
        threshold = np.partition(values, values.size - keep)[values.size - keep]
        interior[mask & (depth >= threshold)] = pid
    return interior


def phase_depths(labels: np.ndarray) -> np.ndarray:
    """Each labelled pixel's Euclidean distance to the nearest pixel of another label (the map's
    edge is no boundary); 0 where the label is 0 or below; infinite for a phase that fills the
    map (every pixel equally deep: all of it is its core).

    One distance transform per phase, over its bounding box; the phases' transforms run on
    every core (:func:`~napari_sigma.compute.blocks.threaded_map`; scipy's transform releases
    the GIL) and each writes only its own pixels."""
    from scipy.ndimage import distance_transform_edt, find_objects

    from napari_sigma.compute.blocks import threaded_map

    labels = np.asarray(labels)
    depths = np.zeros(labels.shape, dtype=np.float64)
    height, width = labels.shape

    def phase(item: tuple[int, tuple[slice, slice]]) -> None:
        pid, box = item
        y0, y1 = max(box[0].start - 1, 0), min(box[0].stop + 1, height)
        x0, x1 = max(box[1].start - 1, 0), min(box[1].stop + 1, width)
        mask = labels[y0:y1, x0:x1] == pid
        pad = ((int(y0 == 0), int(y1 == height)), (int(x0 == 0), int(x1 == width)))
        padded = np.pad(mask, pad, mode="edge")
        if padded.all():  # the phase fills the map: no other label anywhere
            depths[y0:y1, x0:x1][mask] = np.inf
            return
        depth = distance_transform_edt(padded)
        depth = depth[
            pad[0][0] : depth.shape[0] - pad[0][1], pad[1][0] : depth.shape[1] - pad[1][1]
        ]
        depths[y0:y1, x0:x1][mask] = depth[mask]

    boxes = find_objects(np.clip(labels, 0, None))
    found = [(pid, box) for pid, box in enumerate(boxes, start=1) if box is not None]
    for _ in threaded_map(phase, found):
        pass
    return depths


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


def _core_projections(counts, core: np.ndarray, filters: Mapping[int, np.ndarray]) -> dict:
    """For each phase of ``filters``: its core pixels' spectra projected on the phase's filter,
    their counts, and their flat indices (the pixels gathered in blocks; a lazy cube read in
    blocks of whole rows within the memory limit, only the rows holding core pixels)."""
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

        def scratch_rows(n_rows: int, gathered: bool = False) -> np.ndarray:
            key = (threading.get_ident(), gathered)
            array = scratch.get(key)
            if array is None or len(array) < n_rows:
                dtype = flat.dtype if gathered else np.float64
                array = scratch[key] = np.empty((n_rows, flat.shape[1]), dtype)
            return array[:n_rows]

        def project(k: int) -> None:
            # the same products as a fresh float64 array per block (same rows, same layout),
            # cast into this thread's scratch array from the pixels gathered into another: a
            # new 134 MB array per block was faulted in page by page, most of the time taken,
            # and a new 32 MB gather per block most of what was left (1024^2: 1.7 s sys)
            idx = where[ids[k]]
            projected, totals, _ = out[ids[k]]
            for lo in range(0, idx.size, 8192):
                rows = idx[lo : lo + 8192]
                pixels = np.take(flat, rows, axis=0, out=scratch_rows(len(rows), gathered=True))
                block = scratch_rows(len(pixels))
                np.copyto(block, pixels, casting="unsafe")
                projected[lo : lo + 8192] = block @ matrix[:, k]
                # float64 sums of integers below 2**53 are exact: the integer sums
                totals[lo : lo + 8192] = (
                    pixels.sum(axis=1, dtype=np.int64) if exact else block.sum(axis=1)
                )

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


def elements_of_lines(lines: Sequence[str]) -> list[str]:
    """The distinct elements of line names such as ``"Fe_Ka"``, in order."""
    return list(dict.fromkeys(line.split("_")[0] for line in lines))


def signal_type(image: SpectrumImage) -> str:
    """The file's signal type (``"EDS_TEM"``, ``"EDS_SEM"``) from its metadata, or ``""``."""
    from napari_sigma.io._rsciio import get_item

    return str(get_item(_metadata(image), "Signal.signal_type", "") or "")


def _metadata(image: SpectrumImage) -> Mapping:
    return image.metadata.get("rsciio_metadata", image.metadata) if image.metadata else {}


def identify_phases(
    image: SpectrumImage,
    labels: np.ndarray,
    elements: Sequence[str],
    library: MineralLibrary | None = None,
    settings: QuantSettings | None = None,
    phase_ids: Sequence[int] | None = None,
    spectra: np.ndarray | None = None,
    detect_elements: bool = False,
    depth: np.ndarray | None = None,
    host: tuple[np.ndarray, dict[int, HostCorrection]] | None = None,
    dispersion: Mapping[int, Mapping[str, float]] | None = None,
) -> Computation[list[PhaseMineral]]:
    """Quantify and identify the phases of ``labels`` (a generator yielding Progress).

    Parameters
    ----------
    image : SpectrumImage
        The spectrum image (its beam energy is required).
    labels : ndarray (y, x) int
        Phase ids, 0 = unassigned.
    elements : sequence of str
        The elements to quantify (e.g. those of the analysis lines).
    library : MineralLibrary, optional
        Default: the packaged library.
    settings : QuantSettings, optional
        Quantification options.
    phase_ids : sequence of int, optional
        The phases to do (default every id present in ``labels``).
    spectra : ndarray (K, E), optional
        The summed spectra to quantify, of phases 1..K (default: those of
        ``interior_labels(labels)``, computed here). With ``settings.host_correction``, the
        share of a host is removed from particles' spectra (:func:`host_corrected_spectra`).
    detect_elements : bool
        Also quantify the elements that each phase's own spectrum shows
        (:func:`phase_elements`): for automatic element lists, where the map's sum spectrum
        misses the minor elements of small phases (P45: Ca of a plagioclase, Mg and Fe of a
        biotite).
    depth : ndarray (y, x), optional
        :func:`phase_depths` of ``labels`` when already computed (the analysis has it).
    host : (ndarray (K, E), dict), optional
        What :func:`host_corrected_spectra` gives for these ``labels``, ``spectra``, the
        image's channel energies and beam energy and ``depth``, when already computed (the
        analysis keeps it for the mineral report, which needs it too).
    dispersion : dict of int to dict of str to float, optional
        Each phase's elements' dispersion over its core pixels (:func:`line_dispersion`, by
        phase id), when already measured (a process without the cube); the phases not given
        are measured here (:func:`phase_line_dispersions`). They give each phase's
        ``dispersion`` (the uncertainty of its mean composition: ``PhaseMineral.err_wt_mean``)
        and the test of phases of one name (:func:`distinguish_same_names`).

    Returns
    -------
    list of PhaseMineral
        One per phase id, in order.
    """
    from napari_sigma.unmixing.nmf import phase_sum_spectra

    library = library or load_library()
    settings = settings or QuantSettings()
    labels = np.asarray(labels)
    ids = sorted(set(np.unique(labels).tolist()) - {0}) if phase_ids is None else list(phase_ids)
    if not ids:
        return []
    yield Progress("minerals", 0, len(ids) + 1, "phase spectra")
    if spectra is None or len(spectra) < max(ids):
        spectra = phase_sum_spectra(image.counts, interior_labels(labels, depth), max(ids))
    spectra = np.asarray(spectra, dtype=np.float64)
    if not image.beam_energy:
        note = "no beam energy in the file: phases not quantified"
        return [PhaseMineral(pid, None, None, note) for pid in ids]
    width = _detector_width(spectra[[i - 1 for i in ids]].sum(axis=0), image, elements, settings)
    corrections: dict[int, HostCorrection] = {}
    if settings.host_correction and labels.ndim == 2:
        if host is None:
            energies, beam = image.energy.energies, float(image.beam_energy)
            host = host_corrected_spectra(image.counts, labels, spectra, energies, beam, depth)
        spectra, corrections = host
    found = []
    for step, pid in enumerate(ids, start=1):
        yield Progress("minerals", step, len(ids) + 1, f"phase {pid}")
        own = phase_elements(spectra[pid - 1], image, elements) if detect_elements else elements
        found.append(_one_phase(pid, spectra[pid - 1], image, own, library, settings, width))
        fix = corrections.get(pid)
        if fix is not None and found[-1].quantification is not None:
            found[-1].quantification.notes.append(
                f"host correction: {100 * fix.share:.1f} % (+- {100 * fix.sigma:.1f}) of the "
                f"counts removed as {_host_names(fix)}'s spectrum (fitted on "
                f"{fix.centre_pixels} core pixels)"
            )
    _explain_by_neighbours(found, labels, library)
    if labels.ndim == 2:
        given = dict(dispersion or {})
        asked = {
            m.phase_id: list(m.quantification.wt)
            for m in found
            if m.quantification is not None and m.phase_id not in given
        }
        if asked:
            yield Progress("minerals", len(ids), len(ids) + 1, "the pixels' scatter")
            given.update(phase_line_dispersions(image, interior_labels(labels, depth), asked))
        for m in found:
            if m.quantification is not None and m.phase_id in given:
                m.dispersion = {
                    el: float(v) for el, v in given[m.phase_id].items() if el in m.quantification.wt
                }
        if same_mineral_groups(found):
            distinguish_same_names(found, {m.phase_id: m.dispersion for m in found})
    return found


SAME_COMPOSITION_P = 0.01
"""Two phases of one name whose compositions differ by less than a chi-square test at this level
(with their uncertainties: :func:`compare_compositions`) finds are "equal within their
uncertainties"."""
QUALIFIER_DECIMALS = (1, 2)
"""wt % decimals tried, in order, for a qualifier that must tell phases apart."""
DISPERSION_PIXELS = 4096
"""At most this many of a phase's core pixels (every k-th) measure its pixels' scatter."""


@dataclass(frozen=True)
class CompositionTest:
    """The chi-square test of two quantified compositions (:func:`compare_compositions`).

    ``chi2 = sum(z^2)`` over the ``n`` elements with an uncertainty; ``p`` its upper tail with
    ``n`` degrees of freedom; ``z``: each element's ``(wt_b - wt_a) / sigma``.
    """

    chi2: float
    n: int
    p: float
    z: dict[str, float]

    @property
    def equal(self) -> bool:
        """Equal within the uncertainties (``p >= SAME_COMPOSITION_P``)."""
        return self.p >= SAME_COMPOSITION_P


def compare_compositions(
    a: Quantification,
    b: Quantification,
    dispersion_a: Mapping[str, float] | None = None,
    dispersion_b: Mapping[str, float] | None = None,
) -> CompositionTest:
    """Whether two phases' compositions (wt %) differ beyond their uncertainties: a chi-square
    test of the differences over every element either quantified, ``sigma^2 = err_a^2 phi_a +
    err_b^2 phi_b``.

    ``err`` is the 1-sigma counting uncertainty of each phase's summed spectrum; ``phi`` (at
    least 1; 1 where not given) the element's dispersion over the phase's pixels
    (:func:`line_dispersion`): a phase's pixels differ among themselves beyond counting
    (zoning, inclusions, mixed pixels), so the mean of a phase's pixels is uncertain by their
    scatter, not by counting alone. On the 30x30 Bruker map, random halves of one phase's core
    differed beyond counting alone in 14 of 18 draws (p < 0.01).
    """
    from scipy.stats import chi2 as chi2_distribution

    z = {}
    for el in dict.fromkeys([*a.wt, *b.wt]):
        phi_a = max(1.0, (dispersion_a or {}).get(el, 1.0))
        phi_b = max(1.0, (dispersion_b or {}).get(el, 1.0))
        variance = a.err_wt.get(el, 0.0) ** 2 * phi_a + b.err_wt.get(el, 0.0) ** 2 * phi_b
        if variance > 0 and np.isfinite(variance):
            z[el] = (b.wt.get(el, 0.0) - a.wt.get(el, 0.0)) / float(np.sqrt(variance))
    chi2 = float(sum(v * v for v in z.values()))
    p = float(chi2_distribution.sf(chi2, len(z))) if z else 1.0
    return CompositionTest(chi2, len(z), p, z)


def mean_uncertainty(
    err_wt: Mapping[str, float], dispersion: Mapping[str, float]
) -> dict[str, float]:
    """The 1-sigma uncertainty of a phase's mean composition, per element with a dispersion:
    ``err_wt * sqrt(max(phi, 1))``.

    ``err_wt`` is the counting uncertainty of the phase's summed spectrum; ``phi`` the element's
    dispersion over the phase's pixels (:func:`line_dispersion`). The phase's composition is the
    mean of its pixels; when the element's share varies from pixel to pixel (zoning, inclusions,
    mixed pixels), that mean is uncertain by the pixels' scatter: for a window's counts the
    variance of the pixels' mean is the counting variance times ``phi``. Pure counting noise
    gives ``phi`` about 1 (an estimate below 1 is taken as 1: counting is the least). The
    quantities of a phase's composition are then within their uncertainty of the phase's
    expected composition, as a second sample of the same phase would measure it."""
    return {
        el: float(err) * float(np.sqrt(max(1.0, dispersion[el])))
        for el, err in err_wt.items()
        if el in dispersion and np.isfinite(dispersion[el])
    }


def line_dispersion(
    image: SpectrumImage, mask: np.ndarray, elements: Sequence[str]
) -> dict[str, float]:
    """Per element, Pearson's dispersion of its principal line's counts over the pixels of
    ``mask`` (at most ``DISPERSION_PIXELS``, every k-th): ``phi = sum((c_i - T_i f)^2 /
    (T_i f)) / (N - 1)``, with ``c_i`` the counts within one FWHM of the line, ``T_i`` the
    pixel's total and ``f = sum(c) / sum(T)``. 1 for counts that only Poisson noise spreads;
    an element whose share varies from pixel to pixel has more; 0 where no pixel has a count in
    the window. Empty where there are fewer than 2 pixels. (:func:`phase_line_dispersions`: every phase of a label image at once.)"""
    labels = np.asarray(mask, dtype=bool).astype(np.int32)
    return phase_line_dispersions(image, labels, {1: elements}).get(1, {})


def phase_line_dispersions(
    image: SpectrumImage, labels: np.ndarray, elements: Mapping[int, Sequence[str]]
) -> dict[int, dict[str, float]]:
    """:func:`line_dispersion` of each phase ``p`` of ``elements`` over the pixels of ``labels
    == p`` (the phases' cores, for the phases' compositions), for its elements: one read of the
    cube for all phases (numpy counts: the sampled pixels gathered; a lazy cube: only the blocks
    of rows holding sampled pixels, each read once)."""
    if not image.beam_energy or labels.ndim != 2:
        return {}
    flat_labels = np.asarray(labels).ravel()
    samples = {}
    for pid in elements:
        where = np.flatnonzero(flat_labels == pid)
        if where.size >= 2:
            step = max(1, -(-where.size // DISPERSION_PIXELS))
            samples[pid] = where[::step]
    if not samples:
        return {}
    windows = _line_windows(image, {el for p in samples for el in elements[p]})
    sums = _sampled_window_sums(image.counts, samples, list(windows.values()))
    found = {}
    for pid, (totals, counts) in sums.items():
        phi = {}
        for el in elements[pid]:
            if el not in windows:
                continue
            c = counts[:, list(windows).index(el)]
            share = c.sum() / max(totals.sum(), 1.0)
            expected = totals * share
            keep = expected > 0
            if not c.any():  # no counts in any pixel: nothing scatters
                phi[el] = 0.0
            elif keep.sum() >= 2:
                phi[el] = float(
                    np.sum((c[keep] - expected[keep]) ** 2 / expected[keep]) / (keep.sum() - 1)
                )
        found[pid] = phi
    return found


def _line_windows(image: SpectrumImage, elements) -> dict[str, slice]:
    """Each element's principal line's channels (+- one FWHM of the detector), by element, for
    the elements with a line at the image's beam energy and channels within the spectrum."""
    from napari_sigma.xray import lines as xray

    energies = np.asarray(image.energy.energies)
    windows = {}
    for el in sorted(elements):
        try:
            line = xray.default_line(el, float(image.beam_energy))
        except ValueError:
            continue
        half = xray.detector_fwhm(line.energy)
        inside = np.flatnonzero((energies >= line.energy - half) & (energies <= line.energy + half))
        # channel energies increase: the window is one run of channels
        windows[el] = slice(int(inside[0]), int(inside[-1]) + 1) if inside.size else slice(0, 0)
    return windows


def _sampled_window_sums(counts, samples: Mapping[int, np.ndarray], windows: Sequence[slice]):
    """For each phase of ``samples`` (flat pixel indices, increasing): its pixels' totals and
    their counts in each window, float64 ``(N,)`` and ``(N, W)`` (integer counts summed
    exactly)."""
    from napari_sigma.compute.blocks import RowChunks

    def sums(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if pixels.dtype.kind not in "biu":
            pixels = np.asarray(pixels, dtype=np.float64)
        kind = np.int64 if pixels.dtype.kind in "biu" else np.float64
        totals = pixels.sum(axis=1, dtype=kind).astype(np.float64)
        inside = np.zeros((len(pixels), len(windows)))
        for k, window in enumerate(windows):
            inside[:, k] = pixels[:, window].sum(axis=1, dtype=kind)
        return totals, inside

    if isinstance(counts, np.ndarray):
        flat = counts.reshape(-1, counts.shape[-1])
        return {pid: sums(flat[where]) for pid, where in samples.items()}
    # a lazy cube: down the rows holding sampled pixels, each stored chunk read once (an event
    # cube's pixels filled from their rows' events), only the sampled pixels copied out
    every = np.unique(np.concatenate(list(samples.values())))
    totals = np.empty(every.size)
    inside = np.empty((every.size, len(windows)))
    width = int(counts.shape[1])
    reader = RowChunks(counts)
    band = 4  # rows: the sampled pixels of a few rows held at a time (a memory limit's bands)
    for low in range(0, int(counts.shape[0]), band):
        lo, hi = np.searchsorted(every, (low * width, (low + band) * width))
        if hi > lo:
            rows, columns = np.divmod(every[lo:hi], width)
            high = int(rows[-1]) + 1
            mask = np.zeros((high - low, width), dtype=bool)
            mask[rows - low, columns] = True
            totals[lo:hi], inside[lo:hi] = sums(reader.pixels(low, high, mask))
    found = {}
    for pid, where in samples.items():
        at = np.searchsorted(every, where)
        found[pid] = (totals[at], inside[at])
    return found


def same_mineral_groups(found: Sequence[PhaseMineral]) -> list[list[PhaseMineral]]:
    """Quantified phases identified as one mineral or series (unknowns: one formula), in groups
    of two or more."""
    groups: dict[str, list[PhaseMineral]] = {}
    for m in found:
        ident = m.identification
        if ident is not None and m.quantification is not None:
            key = ident.name if ident.unknown else (ident.series or ident.mineral)
            groups.setdefault(key, []).append(m)
    return [group for group in groups.values() if len(group) > 1]


def distinguish_same_names(
    found: Sequence[PhaseMineral], dispersion: Mapping[int, Mapping[str, float]] | None = None
) -> None:
    """Phases of one name (two "garnet Alm51Prp46") or of one mineral or series, in place.

    Each pair of phases of one mineral or series is tested (:func:`compare_compositions`, with
    each phase's ``dispersion`` by id: :func:`line_dispersion`). A phase whose composition
    equals another's within their uncertainties gets a note saying so: one phase split in two
    (whether the rounding gave them one name, or "garnet Alm67Prp33" and "garnet Alm66Prp34").
    Phases of one name whose compositions differ beyond their uncertainties each get a
    ``qualifier`` and a note of the difference: their mass fraction of the element(s) that tell
    them apart best (the largest ``|z|`` of the pairs that differ, first; a light element, C, N,
    O, after a heavier one that tells them apart as well: :func:`_telling_rank`), as many as needed
    (and one more decimal if needed) for every such pair to read differently. An element the
    mineral does not hold (one of the identification's ``trace``: an admixture, fine-grained or
    in mixed pixels) reads ``"+ K 2.8 wt%"``, one it holds ``"(Fe 46.6 wt%)"``.
    """
    dispersion = dispersion or {}
    for group in same_mineral_groups(found):
        differing = []
        for i, a in enumerate(group):
            for b in group[i + 1 :]:
                test = compare_compositions(
                    a.quantification, b.quantification,
                    dispersion.get(a.phase_id), dispersion.get(b.phase_id),
                )  # fmt: skip
                if test.equal:
                    b.quantification.notes.append(
                        f"composition equal to P{a.phase_id}'s within the uncertainties "
                        f"(counting and the pixels' scatter; chi2 {test.chi2:.1f} for "
                        f"{test.n} elements, "
                        f"p = {test.p:.2f}): one phase split in two?"
                    )
                elif a.identification.name == b.identification.name:
                    differing.append((a, b, test))
        if not differing:
            continue
        names = {a.identification.name for a, _, _ in differing}
        members = [m for m in group if m.identification.name in names]
        elements = _telling_elements(members, differing)
        foreign = {
            entry.split(" ")[0] for m in members for entry in m.identification.trace if entry
        }
        for m in members:
            wt = m.quantification.wt
            added = [f"+ {el} {wt.get(el, 0.0):.{d}f} wt%" for el, d in elements if el in foreign]
            held = [f"{el} {wt.get(el, 0.0):.{d}f} wt%" for el, d in elements if el not in foreign]
            m.qualifier = " ".join(added + ([f"({'; '.join(held)})"] if held else []))
        for a, b, test in differing:
            shown = sorted(test.z, key=lambda el: -abs(test.z[el]))[:3]
            for one, other in ((a, b), (b, a)):
                one.quantification.notes.append(
                    f"differs from P{other.phase_id} ({other.identification.name}) beyond the "
                    f"uncertainties (counting and the pixels' scatter; chi2 {test.chi2:.0f} for "
                    f"{test.n} elements): "
                    + ", ".join(
                        f"{el} {one.quantification.wt.get(el, 0.0):.2f} vs "
                        f"{other.quantification.wt.get(el, 0.0):.2f} wt% "
                        f"({abs(test.z[el]):.0f} sigma)"
                        for el in shown
                    )
                )


def _telling_elements(group, differing) -> list[tuple[str, int]]:
    """The shortest list of elements (by ``|z|``), with their wt % decimals, whose values tell
    every differing pair apart."""
    strength: dict[str, float] = {}
    for _, _, test in differing:
        for el, z in test.z.items():
            strength[el] = max(strength.get(el, 0.0), abs(z))
    order = sorted(strength, key=lambda el: -_telling_rank(el, strength[el]))

    def reads_apart(elements, decimals):
        def text(m):
            return tuple(f"{m.quantification.wt.get(el, 0.0):.{decimals}f}" for el in elements)

        return all(text(a) != text(b) for a, b, _ in differing)

    for count in range(1, len(order) + 1):
        for decimals in QUALIFIER_DECIMALS:
            if reads_apart(order[:count], decimals):
                return [(el, decimals) for el in order[:count]]
    return [(el, QUALIFIER_DECIMALS[-1]) for el in order]


LIGHT_ELEMENTS_Z = 9
"""Elements up to fluorine (Z <= 9: K lines below 0.7 keV, absorbed most by the sample, the
detector's window and a carbon coat or contamination) are the least reliable numbers of a
standardless analysis; the qualifier of phases of one name names a heavier element instead where
it tells them apart as well (:func:`_telling_rank`)."""


def _telling_rank(element: str, z: float) -> float:
    """How well an element tells phases of one name apart, for the qualifier's choice: its
    ``|z|``, less the noise of a difference of two ``|z|`` for a light element (Z <=
    ``LIGHT_ELEMENTS_Z``). Each ``z`` is a difference over its standard error, with unit
    variance, so two ``|z|`` closer than ``1.96 sqrt(2)`` (the two-sided 95 % bound of their
    difference) tell the phases apart equally well: then the heavier element, the one a
    mineralogist names (sulphide ore's two pyrites: O and Si both 26 sigma, the admixture is
    quartz: "+ Si 11.6 wt%")."""
    from statistics import NormalDist

    from napari_sigma.quant.atomic import atomic_number

    if atomic_number(element) <= LIGHT_ELEMENTS_Z:
        return abs(z) - NormalDist().inv_cdf(0.975) * np.sqrt(2.0)
    return abs(z)


def touching_phases(labels: np.ndarray) -> dict[int, dict[int, int]]:
    """For each phase id, the phases it touches and the length of their shared boundary (pixel
    edges between 4-neighbours)."""
    labels = np.asarray(labels)
    pairs = []
    for a, b in ((labels[:-1, :], labels[1:, :]), (labels[:, :-1], labels[:, 1:])):
        edge = (a != b) & (a > 0) & (b > 0)
        pairs.append(np.stack([a[edge], b[edge]], axis=1))
    both = np.concatenate(pairs)
    both = np.concatenate([both, both[:, ::-1]])
    touching: dict[int, dict[int, int]] = {}
    if both.size:
        # one int64 key per pair: sorting rows (np.unique(axis=0)) compares a void dtype and
        # holds the GIL for the whole sort (napari's main thread waited 0.2 s at 1024²)
        base = int(both.max()) + 1
        keys, counts = np.unique(
            both[:, 0].astype(np.int64) * base + both[:, 1], return_counts=True
        )
        for key, n in zip(keys.tolist(), counts.tolist(), strict=True):
            p, q = divmod(key, base)
            touching.setdefault(int(p), {})[int(q)] = int(n)
    return touching


NEIGHBOURS_TRIED = 2
"""An unknown phase is tried as a mineral mixed with each of its this many longest neighbours."""


def _explain_by_neighbours(found: list[PhaseMineral], labels, library) -> None:
    """Unknown phases, and intergrowths one of whose two minerals is a touching phase's: a
    library mineral plus some of a touching phase
    (:func:`~napari_sigma.minerals.identify.identify_with_neighbour`), in place. A grain whose
    core holds a fifth of its neighbour (a WC grain in its Co binder) is that grain with some of
    its neighbour, not an intergrowth of the two."""
    from napari_sigma.minerals.identify import identify_with_neighbour
    from napari_sigma.minerals.intergrowth import is_component

    by_id = {m.phase_id: m for m in found}
    touching = None
    for m in found:
        ident = m.identification
        if ident is None or not (ident.unknown or ident.components):
            continue
        touching = touching if touching is not None else touching_phases(labels)
        neighbours = sorted(touching.get(m.phase_id, {}).items(), key=lambda item: -item[1])
        for q, _ in neighbours[:NEIGHBOURS_TRIED]:
            other = by_id.get(q)
            if other is None or other.quantification is None:
                continue
            if ident.components and not (
                other.identification is not None
                and any(is_component(other.identification.name, c, library)
                        for c, _ in ident.components)
            ):  # fmt: skip
                continue  # an intergrowth's minerals are not this neighbour
            name = f"P{q} {other.mineral}" if other.mineral else f"P{q}"
            better = identify_with_neighbour(
                m.quantification.wt, m.quantification.err_wt, other.quantification.wt, name,
                library,
            )  # fmt: skip
            if better is not None:
                better.alternatives = (
                    [(ident.name, ident.score), *ident.alternatives[:1]]
                    if ident.components
                    else ident.alternatives
                )
                m.identification = better
                break


def phase_elements(
    spectrum: np.ndarray, image: SpectrumImage, elements: Sequence[str]
) -> list[str]:
    """``elements`` plus those the phase's summed spectrum shows
    (:func:`napari_sigma.xray.elements.suggest_elements`, its default significance)."""
    from napari_sigma.spectrum_image import Spectrum
    from napari_sigma.xray.elements import suggest_elements

    if np.sum(spectrum) < MIN_PHASE_COUNTS:
        return list(elements)
    found = suggest_elements(Spectrum(np.asarray(spectrum, float), image.energy,
                                      float(image.beam_energy)))  # fmt: skip
    return list(elements) + [s.element for s in found if s.element not in elements]


def _detector_width(total, image, elements, settings):
    from napari_sigma.quant.line_fit import fit_lines

    if total.sum() < MIN_PHASE_COUNTS:
        return None
    try:
        fit = fit_lines(total, image.energy, elements, float(image.beam_energy),
                        settings.detector_for("bulk", _metadata(image)))  # fmt: skip
    except (ValueError, np.linalg.LinAlgError):
        return None
    return fit.width


def _one_phase(pid, spectrum, image, elements, library, settings, width) -> PhaseMineral:
    if spectrum.sum() < MIN_PHASE_COUNTS:
        return PhaseMineral(pid, None, None, f"fewer than {MIN_PHASE_COUNTS:g} counts")
    try:
        quantification = quantify_spectrum(
            spectrum, image.energy, elements, float(image.beam_energy), settings,
            signal_type(image), _metadata(image), width,
        )  # fmt: skip
        identification = identify_quantified(
            quantification, spectrum, image.energy, library,
            settings.detector_for(quantification.mode, _metadata(image)),
            requantify=_requantify(spectrum, image, elements, settings, width),
            foil_nm=settings.thickness_nm or foil_thickness_nm(_metadata(image)),
            coating=settings.coating,
        )  # fmt: skip
    except (ValueError, np.linalg.LinAlgError) as error:
        return PhaseMineral(pid, None, None, f"not quantified: {error}")
    return PhaseMineral(pid, quantification, identification)


def _requantify(spectrum, image, elements, settings, width):
    """``fixed -> Quantification`` of the same spectrum with some mass fractions held fixed
    (:func:`~napari_sigma.minerals.identify.with_unmeasured_carbon`)."""
    from dataclasses import replace

    def again(fixed: Mapping[str, float]) -> Quantification:
        held = replace(settings, fixed={**settings.fixed, **fixed})
        return quantify_spectrum(spectrum, image.energy, elements, float(image.beam_energy),
                                 held, signal_type(image), _metadata(image), width)  # fmt: skip

    return again


def mineral_phase_names(
    names: Sequence[str], minerals: Sequence[PhaseMineral], phase_ids: Sequence[int] | None = None
) -> list[str]:
    """``"P3 quartz"`` for identified phases, with the qualifier that tells it from another phase
    of the same name (``"P2 garnet Alm51Prp46 + K 2.8 wt%"``: :func:`distinguish_same_names`);
    the given name for the others."""
    ids = list(phase_ids) if phase_ids is not None else list(range(1, len(names) + 1))
    by_id = {m.phase_id: m for m in minerals}
    named = []
    for pid, name in zip(ids, names, strict=True):
        found = by_id.get(pid)
        if found and found.mineral:
            extra = f" {found.qualifier}" if found.qualifier else ""
            named.append(f"P{pid} {found.mineral}{extra}")
        else:
            named.append(name)
    return named
