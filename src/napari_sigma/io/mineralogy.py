"""Files of the automated-mineralogy report: phase_quant.csv, modal_mineralogy.csv,
grain_sizes.csv, association.csv, particles.csv, deportment.csv and report.html.

:func:`write_mineral_report` quantifies and names the phases of the exported labels (reusing the
analysis's own results when the labels are the analysis's), computes the tables of
:mod:`napari_sigma.minerals.mineralogy` and writes them.
"""

from __future__ import annotations

import csv
import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from napari_sigma.minerals.mineralogy import Mineralogy, mineralogy

MINERAL_FILES = {
    "phase_quant": "phase_quant.csv",
    "modal": "modal_mineralogy.csv",
    "grains": "grain_sizes.csv",
    "association": "association.csv",
    "particles": "particles.csv",
    "deportment": "deportment.csv",
    "html": "report.html",
}
"""The files :func:`write_mineral_report` writes, by key."""


@dataclass
class CubeSums:
    """What the mineral report of ``labels`` reads of the cube (:func:`cube_sums`), made where
    the cube is: a process without the cube (the export's child when the cube is too large to
    send: 1024² x 2048, 4 GiB) makes the report from these, the same numbers.

    ``depth``: :func:`~napari_sigma.minerals.interiors.phase_depths` of ``labels``; ``cores``: their
    ``interior_labels``; ``core_sums``: the sum spectra of phases 1..K over ``cores``;
    ``map_sum``: the map's sum spectrum; ``deep_sums``: over the pixels at least
    :data:`BASIS_DEPTH` deep, None where :func:`abundance_basis` needs none; ``host``:
    ``host_corrected_spectra`` of ``core_sums`` (None where not needed); ``dispersion``:
    :func:`~napari_sigma.minerals.same_names.phase_line_dispersions` of ``cores`` over every
    element with a line (what a quantification may hold; empty when the phases are not
    identified)."""

    labels: np.ndarray
    depth: np.ndarray | None
    cores: np.ndarray
    core_sums: np.ndarray
    map_sum: np.ndarray
    deep_sums: np.ndarray | None = None
    host: tuple | None = None
    dispersion: dict = field(default_factory=dict)

    def of(self, labels: np.ndarray) -> bool:
        """Whether these are the sums of ``labels``."""
        return np.array_equal(self.labels, labels)


def cube_sums(
    image: Any, labels: np.ndarray, n_phases: int, dispersion_ids: Sequence[int] = (),
    label_sums: np.ndarray | None = None,
) -> CubeSums:  # fmt: skip
    """Every read of ``image.counts`` that :func:`write_mineral_report` and
    :func:`label_abundances` make for ``labels`` (phases 1..``n_phases``), with the calls they
    make: one distance transform, the core sums (which the identification's phase spectra and
    the abundances' basis share), the deep sums, the host correction (numpy, the GIL released
    in their long calls) and the line dispersions of ``dispersion_ids``' cores (what
    :func:`~napari_sigma.minerals.phases.identify_phases` reads to tell phases of one name
    apart). ``label_sums``: exact sum spectra over ``labels`` (integer counts summed in
    float64), when known: the map's sum is theirs when every pixel has a label (the same
    integers)."""
    from napari_sigma.minerals.host import host_corrected_spectra
    from napari_sigma.minerals.interiors import interior_labels, phase_depths
    from napari_sigma.minerals.same_names import phase_line_dispersions
    from napari_sigma.unmixing.nmf import phase_sum_spectra
    from napari_sigma.xray import lines as xray

    labels = np.asarray(labels)
    counts = image.counts
    depth = phase_depths(labels) if labels.ndim == 2 else None
    cores = interior_labels(labels, depth)
    core_sums = np.asarray(phase_sum_spectra(counts, cores, n_phases), np.float64)
    covered = label_sums is not None and labels.size and labels.min() >= 1
    if covered and len(label_sums) >= int(labels.max()):
        map_sum = np.asarray(label_sums, np.float64).sum(axis=0)
    else:
        map_sum = np.asarray(counts.sum(axis=(0, 1)), dtype=np.float64)
    sums = CubeSums(labels, depth, cores, core_sums, map_sum)
    core_pixels = np.bincount(cores.ravel(), minlength=n_phases + 1)[1 : n_phases + 1]
    if labels.ndim == 2 and np.any(core_pixels > 0):  # what abundance_basis reads
        deep = basis_labels(labels, depth)
        deep_pixels = np.bincount(deep.ravel(), minlength=n_phases + 1)[1 : n_phases + 1]
        if np.any(deep_pixels > core_pixels):
            sums.deep_sums = phase_sum_spectra(counts, deep, n_phases)
        energy = getattr(getattr(image, "energy", None), "energies", None)
        beam = getattr(image, "beam_energy", None)
        sums.host = host_corrected_spectra(
            counts, labels, core_sums, energy, float(beam) if beam else None, depth
        )
    if dispersion_ids and labels.ndim == 2:  # every element a quantification may hold
        every = {int(pid): list(xray.ELEMENTS) for pid in dispersion_ids}
        sums.dispersion = phase_line_dispersions(image, cores, every)
    return sums


def phase_minerals_for(
    result: Any, labels: np.ndarray, phase_ids: Sequence[int], sums: CubeSums | None = None
) -> list:
    """The analysis's phase minerals when ``labels`` are its labels, else computed anew
    (``sums``: :func:`cube_sums` of ``labels``, when made: the cube is not read here)."""
    from napari_sigma.compute.progress import run_to_completion
    from napari_sigma.minerals.library import load_library
    from napari_sigma.minerals.phases import elements_of_lines, identify_phases

    own = list(getattr(result, "phase_minerals", []) or [])
    described = getattr(result, "minerals_labels", None)  # a session reopened after edits
    if own and np.array_equal(labels, result.labels if described is None else described):
        return own
    settings = getattr(result, "settings", None)
    if settings is not None and not getattr(settings, "identify_minerals", True):
        return []
    library = load_library(getattr(settings, "minerals", None))
    elements = elements_of_lines(result.lines)
    automatic = settings is not None and not getattr(settings, "lines", None)
    automatic = automatic and not getattr(settings, "elements", None) and not result.image.elements
    from napari_sigma.pipeline.analysis import quant_settings

    given = {}
    if sums is not None and sums.of(labels) and phase_ids:
        n = int(max(phase_ids))
        given = dict(spectra=sums.core_sums[:n], depth=sums.depth, host=sums.host,
                     dispersion=sums.dispersion)  # fmt: skip
    computation = identify_phases(result.image, labels, elements, library,
                                  quant_settings(settings), phase_ids=phase_ids,
                                  detect_elements=automatic, **given)  # fmt: skip
    return run_to_completion(computation)


NEAR_IDENTICAL = 0.9995
"""Phases whose mean spectra have a cosine above this cannot be told apart by unmixing: their
abundance is shared in proportion to their label areas. So are minor twins
(:func:`~napari_sigma.phases.twins.twin_pairs`: one pixel tells them apart by less than one
standard deviation of counting noise, and their spectra differ by a minor element): the map's mean
spectrum, a sum of such pixels, fixes their shares no better (olivines Fo90/Fo89 of the
benchmark's ``minor_twin`` case: +-3.9 percentage points with their true spectra; unmixing onto
the cores' noisy mean spectra gave errors unrelated to the labels', up to 2.8 points)."""


BASIS_DEPTH = 2.0
"""Pixels at least this far (px, :func:`~napari_sigma.minerals.interiors.phase_depths`) from another
label make a phase's spectrum in the abundance solve (:func:`abundance_basis`)."""


def basis_labels(labels: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """``labels`` where a pixel is at least :data:`BASIS_DEPTH` deep (``depth``:
    :func:`~napari_sigma.minerals.interiors.phase_depths` of ``labels``), 0 elsewhere: the pixels
    whose sums make the abundance basis (:func:`abundance_basis`)."""
    return np.where(depth >= BASIS_DEPTH, labels, 0)


def abundance_fractions(
    image: Any, labels: np.ndarray, n_phases: int, known: tuple | None = None,
    deep_sums: np.ndarray | None = None, depth: np.ndarray | None = None,
    host: tuple | None = None,
) -> np.ndarray:  # fmt: skip
    """Mean area fraction of phases 1..K over the map, from its summed spectrum.

    The map's mean spectrum is unmixed (Poisson-weighted non-negative least squares) onto the
    phases' own mean spectra (counts per pixel of the pure phase, :func:`abundance_basis`): by
    linearity the result is the mean of the pixels' mixing fractions, mixed boundary pixels
    shared, without the bias of per-pixel non-negative fits at low counts. Near-identical
    phases share their abundance by label area, and so do minor twins (:data:`NEAR_IDENTICAL`).

    ``known``: ``(core labels, their sum spectra, the map's sum spectrum or None)`` already
    made for these labels (:func:`known_sums`), the same numbers as computed here from the
    counts. ``deep_sums``: the sum spectra of each label's pixels at least :data:`BASIS_DEPTH`
    deep, when already summed (:func:`abundance_basis` sums them otherwise: one pass over the
    cube, 0.2 s CPU for 512x512x2048). ``depth``: :func:`~napari_sigma.minerals.interiors.
    phase_depths` of ``labels`` when already computed (the analysis' ``core_depth``).
    ``host``: the host correction of the core sums of ``known`` when already computed (the
    analysis' ``host_spectra``; see :func:`abundance_basis`).
    """
    from scipy.optimize import nnls

    from napari_sigma.minerals.interiors import interior_labels, phase_depths
    from napari_sigma.unmixing.nmf import phase_sum_spectra

    labels = np.asarray(labels)
    if known is None:
        if depth is None and labels.ndim == 2:
            depth = phase_depths(labels)  # cores and basis: one EDT
        cores = interior_labels(labels, depth)
        sums = phase_sum_spectra(image.counts, cores, n_phases)
        map_sum = None
    else:
        cores, sums, map_sum = known
        sums = np.asarray(sums, np.float64)[:n_phases]
    if map_sum is None:
        map_sum = np.asarray(image.counts.sum(axis=(0, 1)), dtype=np.float64)
    core_pixels = np.bincount(cores.ravel(), minlength=n_phases + 1)[1 : n_phases + 1]
    label_pixels = np.bincount(labels.ravel(), minlength=n_phases + 1)[1 : n_phases + 1]
    means = sums / np.maximum(core_pixels, 1)[:, None]
    total = map_sum / labels.size
    groups = _similar_groups(means, core_pixels > 0, sums, core_pixels)
    own = abundance_basis(image, labels, sums, core_pixels, map_sum, deep_sums, depth, host)
    basis = np.array([
        (own[g] * label_pixels[g, None]).sum(axis=0) / max(label_pixels[g].sum(), 1)
        for g in groups
    ])  # fmt: skip
    weight = 1.0 / np.sqrt(np.maximum(total, 1.0 / labels.size))
    shares, _ = nnls((basis * weight).T, total * weight)
    fractions = np.zeros(n_phases)
    for group, share in zip(groups, shares, strict=True):
        fractions[group] = share * label_pixels[group] / max(label_pixels[group].sum(), 1)
    return fractions


def abundance_basis(
    image: Any, labels: np.ndarray, core_sums: np.ndarray, core_pixels: np.ndarray,
    map_sum: np.ndarray, deep_sums: np.ndarray | None = None, depth: np.ndarray | None = None,
    host: tuple | None = None,
) -> np.ndarray:  # fmt: skip
    """Each phase's mean spectrum per pixel of the pure phase, ``(K, E)``, for the abundance
    solve of :func:`abundance_fractions`.

    A phase's core (its deepest quarter, ``core_sums`` over ``core_pixels``) is nearly pure but
    few pixels: at 50 counts per pixel its noise alone moved the abundances by up to 0.6
    percentage points (the map's own noise is shared with the pixels a basis is made of, the
    rest of the core's is not). So the basis is made of every pixel at least
    :data:`BASIS_DEPTH` from another label, with what mixing it still holds measured and
    removed (:func:`_moved_to_core_level`): where boundaries are sharp it is the mean of those
    pixels, where mixing reaches deeper (wider interaction volume, grains overlapping through
    a foil) it is moved back along the line to its neighbours' spectra to the core's level.
    Particles in a host whose core still holds host (projected spheres through a foil:
    :func:`~napari_sigma.minerals.host.host_corrected_spectra`) keep their host-corrected core
    instead. Phases without pixels that deep keep their core. ``depth``:
    :func:`~napari_sigma.minerals.interiors.phase_depths` of ``labels``, when already computed.
    ``host``: what ``host_corrected_spectra`` gives for these ``labels``, ``core_sums`` (all K
    phases), the image's channel and beam energies and ``depth``, when already computed (the
    analysis' ``host_spectra``).
    """
    from napari_sigma.minerals.host import host_corrected_spectra
    from napari_sigma.minerals.interiors import phase_depths
    from napari_sigma.unmixing.nmf import phase_sum_spectra

    labels = np.asarray(labels)
    core_sums = np.asarray(core_sums, np.float64)
    n_phases = len(core_sums)
    core_pixels = np.asarray(core_pixels)
    basis = core_sums / np.maximum(core_pixels, 1)[:, None]
    if labels.ndim != 2 or not np.any(core_pixels > 0):
        return basis
    depth = phase_depths(labels) if depth is None else np.asarray(depth)
    deep = basis_labels(labels, depth)
    deep_pixels = np.bincount(deep.ravel(), minlength=n_phases + 1)[1 : n_phases + 1]
    if np.any(deep_pixels > core_pixels):
        if deep_sums is None or len(deep_sums) < n_phases:
            deep_sums = phase_sum_spectra(image.counts, deep, n_phases)
        deep_sums = np.asarray(deep_sums, np.float64)[:n_phases]
        moved = _moved_to_core_level(labels, core_sums, core_pixels, deep_sums, deep_pixels,
                                     map_sum)  # fmt: skip
        wider = deep_pixels > core_pixels
        basis[wider] = moved[wider]
    energy = getattr(getattr(image, "energy", None), "energies", None)
    beam = getattr(image, "beam_energy", None)
    if host is not None and beam and len(host[0]) == n_phases:
        corrected, corrections = host
    else:
        corrected, corrections = host_corrected_spectra(
            image.counts, labels, core_sums, energy, float(beam) if beam else None, depth
        )
    for pid in corrections:
        basis[pid - 1] = corrected[pid - 1] / max(core_pixels[pid - 1], 1)
    return basis


def _moved_to_core_level(
    labels: np.ndarray, core_sums: np.ndarray, core_pixels: np.ndarray, deep_sums: np.ndarray,
    deep_pixels: np.ndarray, map_sum: np.ndarray,
) -> np.ndarray:  # fmt: skip
    """Each phase's deep pixels' mean spectrum (per pixel) with the mixing it holds beyond its
    core's removed, ``(K, E)``.

    The deep set's mean ``D`` and the core's ``C`` lie on the line towards the mean ``H`` of
    the touching phases' cores (weighted by boundary length): ``D - C = c (H - C)``. ``c`` is
    measured by a Poisson-weighted projection (weights the map's mean spectrum: independent of
    the phase's own noise), less the expected share of the core's own noise in the product
    (``C`` is in both factors; the core's pixels are among the deep ones), and it is shrunk
    by ``max(0, 1 - se^2 / c^2)`` (``se`` its counting error): a ``c`` within the noise moves
    the basis by noise. Returns ``D - c (H - C)``; ``D`` where a phase touches no other.
    """
    from napari_sigma.minerals.interiors import touching_phases

    size = labels.size
    variance = np.maximum(np.asarray(map_sum, np.float64) / size, 1.0 / size)
    touching = touching_phases(labels)
    moved = deep_sums / np.maximum(deep_pixels, 1)[:, None]
    for k in np.flatnonzero((deep_pixels > 0) & (core_pixels > 0)).tolist():
        neighbours = {
            q: length for q, length in touching.get(k + 1, {}).items()
            if q <= len(core_sums) and core_pixels[q - 1] > 0
        }  # fmt: skip
        if not neighbours:
            continue
        length = float(sum(neighbours.values()))
        host = sum(w * core_sums[q - 1] / core_pixels[q - 1] for q, w in neighbours.items())
        core = core_sums[k] / core_pixels[k]
        direction = host / length - core
        g = direction / variance
        scale = float(direction @ g)
        if not np.isfinite(scale) or scale <= 0:
            continue
        core_noise = core_sums[k] / core_pixels[k] ** 2 - core_sums[k] / (
            core_pixels[k] * deep_pixels[k]
        )
        c = (float((moved[k] - core) @ g) - float(core_noise @ (1.0 / variance))) / scale
        noise = deep_sums[k] / deep_pixels[k] ** 2 + core_sums[k] / core_pixels[k] ** 2
        se2 = float(noise @ g**2) / scale**2
        if c != 0.0 and np.isfinite(c):
            moved[k] = moved[k] - c * max(0.0, 1.0 - se2 / c**2) * direction
    return moved


def known_sums(result: Any, labels: np.ndarray, n_phases: int) -> tuple | None:
    """What an analysis already summed for its own ``labels``: ``(core labels, core sum
    spectra, the map's sum spectrum or None)`` for :func:`abundance_fractions`, or None (other
    labels, e.g. edited ones; or sums that would not be exact).

    The map's sum spectrum is the sum of the phase spectra when every pixel has a phase
    (integer counts: exact, the numbers ``counts.sum(axis=(0, 1))`` gives).
    """
    cores = getattr(result, "core_labels", None)
    core_sums = getattr(result, "core_spectra", None)
    spectra = getattr(result, "phase_spectra", None)
    counts = getattr(getattr(result, "image", None), "counts", None)
    if cores is None or core_sums is None or counts is None:
        return None
    if np.dtype(counts.dtype).kind not in "biu" or len(core_sums) < n_phases:
        return None
    if not np.array_equal(labels, getattr(result, "labels", None)):
        return None
    map_sum = None
    if spectra is not None and len(spectra) >= int(labels.max(initial=0)) and labels.min() >= 1:
        map_sum = np.asarray(spectra, np.float64).sum(axis=0)
    return cores, core_sums, map_sum


def _similar_groups(
    means: np.ndarray, present: np.ndarray, sums: np.ndarray, pixels: np.ndarray
) -> list[list[int]]:
    from napari_sigma.phases.twins import twin_pairs

    unit = means / np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-30)
    twins = {
        frozenset((a - 1, b - 1))
        for a, b, _ in twin_pairs(sums, np.where(present, pixels, 0), disjoint=False)
    }
    groups: list[list[int]] = []
    for k in np.flatnonzero(present):
        for group in groups:
            close = unit[group[0]] @ unit[k] > NEAR_IDENTICAL or any(
                frozenset((g, int(k))) in twins for g in group
            )
            if close:
                group.append(int(k))
                break
        else:
            groups.append([int(k)])
    return groups


def _write_rows(path: Path, rows: list[dict], columns: Sequence[str]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _cell(row.get(k, "")) for k in columns})
    return path


def _cell(value: Any) -> Any:
    if isinstance(value, float | np.floating):
        return "" if not np.isfinite(value) else f"{float(value):.6g}"
    return value


ERR_WT_NOTE = (
    "err_wt_<El>: 1-sigma counting uncertainty of the phase's summed spectrum (wt %); "
    "err_wt_mean_<El>: 1-sigma uncertainty of the phase's mean composition, counting widened "
    "by the scatter of the element's line counts over the phase's core pixels "
    "(err_wt x sqrt(dispersion)): the uncertainty to compare compositions with"
)
"""What the two uncertainty columns of phase_quant.csv are (the report says it)."""


def phase_quant_rows(ids, names, minerals) -> tuple[list[dict], list[str]]:
    """Rows of phase_quant.csv and its columns (``wt_<El>``, ``at_<El>``, ``err_wt_<El>``,
    ``err_wt_mean_<El>``...: :data:`ERR_WT_NOTE`)."""
    by_id = {m.phase_id: m for m in minerals}
    elements: list[str] = []
    for m in minerals:
        if m.quantification:
            elements += [el for el in m.quantification.wt if el not in elements]
    rows = []
    for pid, name in zip(ids, names, strict=True):
        m = by_id.get(pid)
        q, ident = (m.quantification, m.identification) if m else (None, None)
        row: dict[str, Any] = {"phase_id": pid, "name": name,
                               "mineral": ident.name if ident else "",
                               "mineral_score": ident.score if ident else float("nan")}  # fmt: skip
        if q is not None:
            mean_err = m.err_wt_mean
            for el in elements:
                row[f"wt_{el}"] = q.wt.get(el, 0.0)
                row[f"at_{el}"] = q.at.get(el, 0.0)
                row[f"err_wt_{el}"] = q.err_wt.get(el, 0.0)
                # blank where the scatter was not measured (too few pixels)
                unmeasured = float("nan") if el in q.wt or not mean_err else 0.0
                row[f"err_wt_mean_{el}"] = mean_err.get(el, unmeasured)
            row.update(analytical_total=q.analytical_total, mode=q.mode,
                       takeoff_deg=q.takeoff_deg, notes="; ".join(q.notes))  # fmt: skip
        if ident is not None:
            row.update(alternatives="; ".join(f"{n} {s:.2f}" for n, s in ident.alternatives),
                       not_resolved_from=m.not_resolved_from,
                       trace="; ".join(ident.trace), formula=ident.formula)  # fmt: skip
        elif m is not None:
            row["notes"] = m.note
        rows.append(row)
    columns = ["phase_id", "name", "mineral", "mineral_score"]
    for prefix in ("wt_", "at_", "err_wt_", "err_wt_mean_"):
        columns += [f"{prefix}{el}" for el in elements]
    columns += [
        "analytical_total",
        "mode",
        "takeoff_deg",
        "formula",
        "alternatives",
        "not_resolved_from",
        "trace",
        "notes",
    ]
    return rows, columns


def user_mineral_name(phase_id: int, name: str) -> str | None:
    """A name the user gave a phase (anything but the automatic ``"P<id> ..."``), or None."""
    import re

    return None if re.match(rf"^P{phase_id}( |$)", name) else name


def label_abundances(
    result: Any, labels: np.ndarray, n_phases: int, sums: CubeSums | None = None
) -> np.ndarray:
    """:func:`abundance_fractions` of labels 1..K of an analysis ``result``, with the sums and
    the distance transform the analysis already made when ``labels`` are its own
    (:func:`known_sums`), or those of ``sums`` (:func:`cube_sums` of ``labels``: the cube is
    not read)."""
    if sums is not None and sums.of(labels) and len(sums.core_sums) >= n_phases:
        known = (sums.cores, sums.core_sums, sums.map_sum)
        return abundance_fractions(result.image, labels, n_phases, known, sums.deep_sums,
                                   sums.depth, sums.host)  # fmt: skip
    known = known_sums(result, labels, n_phases)
    deep = getattr(result, "deep_spectra", None) if known is not None else None
    depth = getattr(result, "core_depth", None) if known is not None else None
    host = getattr(result, "host_spectra", None) if known is not None else None
    return abundance_fractions(result.image, labels, n_phases, known, deep, depth, host)


def compute_mineralogy(
    result: Any, labels: np.ndarray, ids, names, minerals, sums: CubeSums | None = None
) -> Mineralogy:
    """The report's tables for ``labels`` whose phases ``ids`` are called ``names`` (``sums``:
    :func:`cube_sums` of ``labels``, when made)."""
    from napari_sigma.minerals.library import load_library

    library = load_library(getattr(getattr(result, "settings", None), "minerals", None))
    by_id = {m.phase_id: m for m in minerals}
    mineral_of_label, densities, groups, compositions = {}, {}, {}, {}
    unresolved: dict[str, list[str]] = {}
    for pid, name in zip(ids, names, strict=True):
        m = by_id.get(pid)
        ident = m.identification if m else None
        user = user_mineral_name(pid, name)
        mineral = user or (ident.name if ident else name)
        mineral_of_label[pid] = mineral
        if ident and not user:  # a name the user gave is the user's call
            found = unresolved.setdefault(mineral, [])
            found += [entry for entry in m.not_resolved_from.split("; ") if entry not in found]
        if ident and not ident.unknown:
            densities[mineral] = ident.density
            groups[mineral] = ident.group or (
                library[ident.mineral].group if ident.mineral in library else ""
            )
        if m and m.quantification:
            compositions.setdefault(mineral, {el: v / 100 for el, v in m.quantification.wt.items()})
    n = int(max(ids, default=0))
    fractions = label_abundances(result, labels, n, sums) if n else None
    unresolved_text = {name: "; ".join(e for e in found if e) for name, found in unresolved.items()}
    return mineralogy(labels, mineral_of_label, result.image.pixel_size_um, densities, groups,
                      fractions, compositions, unresolved_text)  # fmt: skip


def write_mineral_report(
    result: Any, labels: np.ndarray, table: Any, out_dir: str | Path,
    report_png: str = "report.png", sums: CubeSums | None = None,
) -> tuple[dict[str, Path], Mineralogy | None, list]:  # fmt: skip
    """Write the mineralogy files for ``labels`` (see :data:`MINERAL_FILES`).

    ``sums``: :func:`cube_sums` of ``labels``, when made where the cube is: nothing is read of
    ``result.image.counts`` then (the same files).

    Returns the written paths, the tables (None when minerals are not identified) and the
    phase minerals (one per phase of ``table``).
    """
    out = Path(out_dir)
    ids, names = [int(i) for i in table.phase_ids], list(table.names)
    minerals = phase_minerals_for(result, np.asarray(labels), ids, sums)
    if not minerals:
        return {}, None, []
    paths = {key: out / name for key, name in MINERAL_FILES.items()}
    rows, columns = phase_quant_rows(ids, names, minerals)
    _write_rows(paths["phase_quant"], rows, columns)
    tables = compute_mineralogy(result, np.asarray(labels), ids, names, minerals, sums)
    _write_rows(paths["modal"], tables.modal, ["mineral", "pixels", "area_percent",
                "abundance_area_percent", "wt_percent", "density", "grains",
                "not_resolved_from"])  # fmt: skip
    _write_rows(paths["grains"], tables.grains, ["grain_id", "mineral", "area_px", "area_um2",
                "ecd_um", "perimeter_um", "touches_border"])  # fmt: skip
    _write_rows(paths["association"], tables.association, ["mineral_a", "mineral_b",
                "boundary_px", "boundary_um", "share_of_a_percent", "share_of_b_percent"])  # fmt: skip
    _write_rows(paths["particles"], tables.particles, ["particle_id", "area_px", "area_um2",
                "ecd_um", "main_mineral", "main_mineral_percent", "liberation", "minerals",
                "touches_border"])  # fmt: skip
    _write_rows(paths["deportment"], tables.deportment, ["element", "mineral",
                "element_mass_percent", "sample_wt_percent"])  # fmt: skip
    write_html(paths["html"], result, rows, tables, report_png)
    return paths, tables, minerals


def _html_table(rows: list[dict], columns: Sequence[str], limit: int = 200) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = []
    for row in rows[:limit]:
        cells = []
        for c in columns:
            value = _cell(row.get(c, ""))
            cells.append(f"<td>{html.escape(str(value))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    more = f"<p>{len(rows) - limit} more rows in the CSV.</p>" if len(rows) > limit else ""
    return f"<table><tr>{head}</tr>{''.join(body)}</table>{more}"


def write_html(path: Path, result: Any, quant_rows, tables: Mineralogy, report_png: str) -> Path:
    """A self-describing HTML page: the report image and every table."""
    from napari_sigma.minerals.phases import UNRESOLVED_NOTE

    image = result.image
    title = html.escape(image.title or "napari-sigma")
    major = [c for c in ("phase_id", "name", "mineral", "mineral_score", "formula",
                         "not_resolved_from", "alternatives", "trace")
             if any(c in r for r in quant_rows)]  # fmt: skip
    wt_columns = sorted({k for r in quant_rows for k in r if k.startswith("wt_")})
    sections = [
        f"<h1>napari-sigma report: {title}</h1>",
        f"<p>Beam {image.beam_energy} kV; pixel {image.pixel_size_um} µm; "
        f"lines {', '.join(result.lines)}.</p>",
        f'<img src="{html.escape(report_png)}" alt="phase map and spectra" style="max-width:100%">',
        "<h2>Phases: identification</h2>", _html_table(quant_rows, major),
        "<h2>Phases: composition (wt %)</h2>", _html_table(quant_rows, ["name", *wt_columns]),
        f"<p>phase_quant.csv: {html.escape(ERR_WT_NOTE)}.</p>",
        "<h2>Modal mineralogy</h2>",
        _html_table(tables.modal, ["mineral", "pixels", "area_percent", "abundance_area_percent",
                                   "wt_percent", "grains", "not_resolved_from"]),
        f"<p>not_resolved_from: {html.escape(UNRESOLVED_NOTE)}.</p>",
        "<h2>Associations (shared boundary)</h2>",
        _html_table(sorted(tables.association, key=lambda r: -r["boundary_px"]),
                    ["mineral_a", "mineral_b", "boundary_um", "share_of_a_percent"], 50),
        "<h2>Element deportment</h2>",
        _html_table(tables.deportment, ["element", "mineral", "element_mass_percent"]),
    ]  # fmt: skip
    if tables.particles:
        sections += ["<h2>Particles</h2>", _html_table(tables.particles, ["particle_id", "area_um2",
                     "ecd_um", "main_mineral", "main_mineral_percent", "liberation", "minerals"], 100)]  # fmt: skip
    sections += ["<h2>Grains</h2>", _html_table(tables.grains, ["grain_id", "mineral", "area_um2",
                 "ecd_um", "perimeter_um", "touches_border"], 100)]  # fmt: skip
    style = ("<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;"
             "font-size:12px}td,th{border:1px solid #ccc;padding:2px 6px}</style>")  # fmt: skip
    page = f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title>{style}"
    path.write_text(page + "</head><body>" + "\n".join(sections) + "</body></html>\n", "utf-8")
    return path
