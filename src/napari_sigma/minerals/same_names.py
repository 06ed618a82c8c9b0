"""Phases of one name: whether their compositions differ beyond their uncertainties (counting and
the dispersion of the phase's pixels, measured on its principal lines' windows), and the qualifier
that tells apart those that differ (``"+ K 2.8 wt%"``, ``"(Fe 46.6 wt%)"``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from napari_sigma.quant.quantify import Quantification
from napari_sigma.spectrum_image import SpectrumImage

if TYPE_CHECKING:
    from napari_sigma.minerals.phases import PhaseMineral

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
    # scipy.stats.chi2.sf(x, df) is chdtrc(df, x), without importing scipy.stats (0.2-0.3 s)
    from scipy.special import chdtrc

    z = {}
    for el in dict.fromkeys([*a.wt, *b.wt]):
        phi_a = max(1.0, (dispersion_a or {}).get(el, 1.0))
        phi_b = max(1.0, (dispersion_b or {}).get(el, 1.0))
        variance = a.err_wt.get(el, 0.0) ** 2 * phi_a + b.err_wt.get(el, 0.0) ** 2 * phi_b
        if variance > 0 and np.isfinite(variance):
            z[el] = (b.wt.get(el, 0.0) - a.wt.get(el, 0.0)) / float(np.sqrt(variance))
    chi2 = float(sum(v * v for v in z.values()))
    p = float(chdtrc(len(z), chi2)) if z else 1.0
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
        if flat.dtype.kind not in "biu":
            return {pid: sums(flat[where]) for pid, where in samples.items()}
        return _gathered_in_blocks(flat, samples, sums)
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


GATHER_PIXELS = 256
"""Sampled pixels of an integer cube gathered at a time (:func:`_gathered_in_blocks`)."""


def _gathered_in_blocks(flat: np.ndarray, samples: Mapping[int, np.ndarray], sums):
    """``sums(flat[where])`` of each phase of ``samples``, its pixels gathered
    :data:`GATHER_PIXELS` at a time (integer counts: every sum is exact, so the same numbers).

    The whole gather is a new array of up to 4096 x 2048 counts per phase (16 MB): on this
    project's VM, which faults fresh memory in slowly, ~0.15 s of system time each (~0.3 s of
    a 256² run); a block is 1 MB, which the C library hands out again for the next.
    """
    found = {}
    for pid, where in samples.items():
        parts = [sums(flat[where[low : low + GATHER_PIXELS]])
                 for low in range(0, len(where), GATHER_PIXELS)]  # fmt: skip
        found[pid] = (np.concatenate([t for t, _ in parts]), np.concatenate([c for _, c in parts]))
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
        foreign = {
            entry.split(" ")[0] for m in members for entry in m.identification.trace if entry
        }
        elements = _telling_elements(members, differing, foreign)
        for m in members:
            m.qualifier = _qualifier(m.quantification.wt, elements, foreign)
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


MINOR_MIN_WT = 1.0
"""wt %: an element the mineral does not hold reads in a phase's name (``"+ K 2.7 wt%"``) only
from this mass fraction up; below it, it is a trace (listed in the identification's ``trace``,
the trace column and the tooltip), not part of the name. The convention of microanalysis: major
above 10 wt %, minor 1-10 wt %, trace below 1 wt % (Goldstein et al., *Scanning Electron
Microscopy and X-Ray Microanalysis*, 4th ed., Springer 2018, ch. 19)."""


def _qualifier(wt: Mapping[str, float], elements, foreign) -> str:
    """A phase's qualifier from the telling ``elements`` (``(element, decimals)``): an element
    it holds ``"(Fe 46.6 wt%)"``; one of ``foreign`` (elements the mineral does not hold)
    ``"+ K 2.7 wt%"`` where it is at least a minor constituent (``MINOR_MIN_WT``), nothing where
    it is a trace."""
    added = [
        f"+ {el} {wt.get(el, 0.0):.{d}f} wt%"
        for el, d in elements
        if el in foreign and wt.get(el, 0.0) >= MINOR_MIN_WT
    ]
    held = [f"{el} {wt.get(el, 0.0):.{d}f} wt%" for el, d in elements if el not in foreign]
    return " ".join(added + ([f"({'; '.join(held)})"] if held else []))


def _telling_elements(group, differing, foreign=frozenset()) -> list[tuple[str, int]]:
    """The shortest list of elements (by ``|z|``), with their wt % decimals, whose qualifiers
    (:func:`_qualifier`: a ``foreign`` element's trace does not read) tell every differing pair
    apart."""
    strength: dict[str, float] = {}
    for _, _, test in differing:
        for el, z in test.z.items():
            strength[el] = max(strength.get(el, 0.0), abs(z))
    order = sorted(strength, key=lambda el: -_telling_rank(el, strength[el]))

    def reads_apart(elements, decimals):
        def text(m):
            return _qualifier(m.quantification.wt, [(el, decimals) for el in elements], foreign)

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
