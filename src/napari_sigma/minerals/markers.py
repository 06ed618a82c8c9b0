"""A particle's own spectrum, measured by its host's marker elements: the share of the host that
its core still holds, counted by the lines of elements the particle's mineral lacks.

A particle's core (`interior_labels`: its deepest pixels) still holds some of the phases around
it: beam spread and the interaction volume at its boundaries, a grain lying partly on another
in a foil. :func:`~napari_sigma.minerals.host.host_corrected_spectra` removes the share that the
particle's depth profile shows (more host towards its boundary), when that profile is
significant. What it leaves reads as the mineral's own minor elements: a stannite's Si, an MnS
inclusion's Fe from the steel around it, a scheelite's Si and Fe from its garnet. A
mineralogist reads them as the host's when the host holds them and the mineral does not.

:func:`marker_share` measures that share directly. The elements of the phase's trace list (its
detected elements that the named mineral does not hold; heavier than F: the K lines of C, N, O
and F are the least reliable of a standardless analysis, and coatings and contamination bring
C and O) that the host holds are its markers. Each marker's fitted counts in the phase's core
against the host's counts of that line per count (the hosts' core spectra in the proportions of
their boundaries with the particle, as `host_corrected_spectra` mixes them) give one estimate
of the host counts the core holds; their least-squares combination (weighted by the markers'
counting variances) is the share. It is removed (the host's spectrum per count times the share
subtracted from the core's sum) when it is ``MARKER_SIGMAS`` standard errors above zero and at
most ``MAX_NEIGHBOUR_SHARE`` of the core's counts, and the phase is quantified and named again
from what is left; the result is kept only where it names the same mineral (or series): the
markers tell how much of the host a core holds, not what the particle is.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

MARKER_MIN_Z = 10
"""Markers are elements heavier than F (Z >= 10; see the module docstring)."""
MARKER_SIGMAS = 3.0
"""The host's share is removed only when it is this many standard errors above zero (as
`~napari_sigma.minerals.host.HOST_SIGNIFICANCE`)."""


@dataclass
class MarkerCorrection:
    """The share of a particle's hosts removed from its core spectrum by their markers.

    Parameters
    ----------
    hosts : dict of int to float
        The host phases and their shares of the removed spectrum (their boundaries').
    share : float
        Removed counts / the core spectrum's counts.
    sigma : float
        Its standard error.
    markers : dict of str to float
        The marker elements and their wt % in the phase before the removal.
    """

    hosts: dict[int, float]
    share: float
    sigma: float
    markers: dict[str, float]


def trace_elements(trace: Sequence[str]) -> list[str]:
    """The elements of an identification's trace list (``"Si 5.1 wt%"`` -> ``"Si"``; other
    entries, such as ``"40 % of P3 fayalite"``, are left out)."""
    found = []
    for entry in trace:
        parts = entry.split()
        if len(parts) == 3 and parts[2] == "wt%" and parts[0].isalpha():
            found.append(parts[0])
    return found


def marker_share(
    counts: Mapping[str, tuple[float, float]],
    host_rates: Mapping[str, float],
    markers: Sequence[str],
    total: float,
) -> tuple[float, float, list[str]]:
    """The host counts a core of ``total`` counts holds, from its markers: ``(share counts,
    standard error, the markers used)``.

    ``counts``: each element's fitted counts in the core and their 1-sigma counting
    uncertainty; ``host_rates``: the host's counts of that element's analysed line per count of
    its spectrum. A marker takes part where the host could bring all of it: its rate is above
    the core's own per count (a share of at most the whole core). Weighted least squares
    through zero, ``share = sum(c r / s^2) / sum(r^2 / s^2)`` with standard error ``1 /
    sqrt(sum(r^2 / s^2))``; a marker that this share leaves more than ``MARKER_SIGMAS``
    standard errors from its counts is the phase's own, not the host's (an ilmenite's Mn beside
    a titanite holding a little), and is left out, the worst first, until the rest agree.
    ``(0, inf, [])`` where no marker takes part.
    """
    used = [
        el for el in markers
        if counts.get(el, (0.0, 0.0))[1] > 0
        and float(host_rates.get(el, 0.0)) * total > counts[el][0] > 0
    ]  # fmt: skip
    while used:
        rates = np.array([float(host_rates[el]) for el in used])
        values = np.array([counts[el][0] for el in used])
        sigmas = np.array([counts[el][1] for el in used])
        denominator = float(np.sum(rates**2 / sigmas**2))
        share = float(np.sum(values * rates / sigmas**2)) / denominator
        excess = (values - share * rates) / sigmas
        worst = int(np.argmax(excess))
        if excess[worst] <= MARKER_SIGMAS:
            break
        used = used[:worst] + used[worst + 1 :]
    else:
        return 0.0, float("inf"), []
    if _leaves_a_deficit(counts, host_rates, share):
        return 0.0, float("inf"), []
    return share, 1.0 / np.sqrt(denominator), used


def _leaves_a_deficit(counts, host_rates, share: float) -> bool:
    """Whether removing ``share`` counts of the host takes more of an element's line than the
    phase holds (by more than ``MARKER_SIGMAS`` of its counting uncertainty): the host is not
    there at that share (a titanite's Fe and Al read as 33 % of a garnet whose Mg it lacks)."""
    for element, (value, sigma) in counts.items():
        rate = float(host_rates.get(element, 0.0))
        if rate > 0 and sigma > 0 and value - share * rate < -MARKER_SIGMAS * sigma:
            return True
    return False


def remove_host_markers(
    found: list,
    spectra: np.ndarray,
    labels: np.ndarray,
    again: Callable[[int, np.ndarray, Sequence[str]], object],
) -> dict[int, MarkerCorrection]:
    """Each named particle's core spectrum less the share of its hosts that its markers
    measure (see the module docstring), named again; ``found`` (the phases' `PhaseMineral`, in
    place) keeps a phase's new result only where it names the same mineral or series.

    ``spectra``: the cores' summed spectra (phases 1..K, host-corrected where the host
    correction applied); ``again(pid, spectrum, elements)``: the phase quantified and named
    from ``spectrum`` with ``elements``. Returns the corrections made, by phase id.
    """
    from napari_sigma.minerals.host import particle_host_shares
    from napari_sigma.quant.atomic import atomic_number

    labels = np.asarray(labels)
    if labels.ndim != 2:
        return {}
    by_id = {m.phase_id: m for m in found}
    candidates = {
        m.phase_id: [
            el for el in trace_elements(m.identification.trace)
            if atomic_number(el) >= MARKER_MIN_Z
        ]
        for m in found
        if _named(m) and m.phase_id <= len(spectra)
    }  # fmt: skip
    candidates = {pid: markers for pid, markers in candidates.items() if markers}
    if not candidates:  # no foreign element to measure a host by: the map is left as it is
        return {}
    done = {}
    for pid, hosts in particle_host_shares(labels).items():
        hosts = {h: w for h, w in hosts.items() if _quantified(by_id.get(h)) and h <= len(spectra)}
        if pid in candidates and hosts:
            total = sum(hosts.values())
            hosts = {h: w / total for h, w in hosts.items()}
            fix = _one_particle(by_id, pid, spectra, hosts, candidates[pid], again)
            if fix is not None:
                done[pid] = fix
    return done


def _one_particle(by_id, pid: int, spectra, hosts, markers, again) -> MarkerCorrection | None:
    """One particle's host share by its ``markers``, removed and the particle named again
    (``by_id[pid]`` replaced in place where it names the same mineral); the correction or
    None."""
    from napari_sigma.minerals.identify import MAX_NEIGHBOUR_SHARE

    mineral = by_id[pid]
    fit = mineral.quantification.fit
    host_spectrum, rates = _host_rates(by_id, spectra, hosts, list(fit.analysed))
    counts = {el: (s.counts, s.sigma) for el, s in fit.analysed.items()}
    own_total = float(np.sum(spectra[pid - 1]))
    if own_total <= 0:
        return None
    share, sigma, used = marker_share(counts, rates, markers, own_total)
    if not used or share <= MARKER_SIGMAS * sigma or share > MAX_NEIGHBOUR_SHARE * own_total:
        return None
    renamed = again(pid, spectra[pid - 1] - share * host_spectrum, list(mineral.quantification.wt))
    if not _same_mineral(mineral, renamed):
        return None
    wt = mineral.quantification.wt
    fix = MarkerCorrection(hosts, share / own_total, sigma / own_total,
                           {el: float(wt.get(el, 0.0)) for el in used})  # fmt: skip
    _describe(renamed, fix, by_id)
    renamed.quantification.notes[:0] = [
        n for n in mineral.quantification.notes if n.startswith("host correction")
    ]
    mineral.quantification, mineral.identification = (
        renamed.quantification, renamed.identification,
    )  # fmt: skip
    return fix


def _named(mineral) -> bool:
    ident = getattr(mineral, "identification", None)
    return bool(
        ident is not None and mineral.quantification is not None
        and mineral.quantification.fit is not None and not ident.unknown
        and not ident.components
    )  # fmt: skip


def _quantified(mineral) -> bool:
    return mineral is not None and mineral.quantification is not None


def _host_rates(by_id, spectra, hosts: Mapping[int, float], elements: Sequence[str]):
    """The hosts' mixed spectrum per count and each element's analysed-line counts per count of
    it (a host that did not analyse the element holds none of it)."""
    spectrum = np.zeros(spectra.shape[1])
    rates = dict.fromkeys(elements, 0.0)
    for h, weight in hosts.items():
        total = float(np.sum(spectra[h - 1]))
        if total <= 0:
            continue
        spectrum += weight * spectra[h - 1] / total
        fit = by_id[h].quantification.fit
        analysed = fit.analysed if fit is not None else {}
        for el in elements:
            if el in analysed:
                rates[el] += weight * max(float(analysed[el].counts), 0.0) / total
    return spectrum, rates


def _same_mineral(before, after) -> bool:
    """Whether ``after`` names the same library mineral or series as ``before`` (not unknown,
    no intergrowth)."""
    a, b = before.identification, getattr(after, "identification", None)
    if b is None or b.unknown or b.components or after.quantification is None:
        return False
    if a.series and b.series:
        return a.series == b.series
    return a.mineral == b.mineral


def _describe(mineral, fix: MarkerCorrection, by_id) -> None:
    """The removal in the phase's notes and, first in its trace list, what it explained (the
    hosts of at least a tenth of the removed spectrum named)."""
    shown = [h for h, w in sorted(fix.hosts.items(), key=lambda item: -item[1]) if w >= 0.1]
    hosts = " + ".join(
        f"P{h} {by_id[h].identification.name}" if by_id[h].identification else f"P{h}"
        for h in shown
    )
    elements = ", ".join(f"{el} {v:.1f} wt%" for el, v in fix.markers.items())
    mineral.identification.trace = [
        f"{elements}: {hosts}'s ({100 * fix.share:.0f} % of the counts, removed)",
        *mineral.identification.trace,
    ]
    mineral.quantification.notes.append(
        f"neighbour share: {100 * fix.share:.1f} % (+- {100 * fix.sigma:.1f}) of the core's "
        f"counts removed as {hosts}'s spectrum, measured by {elements} (elements the mineral "
        "lacks and its host holds)"
    )
