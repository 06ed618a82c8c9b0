"""Files of the automated-mineralogy report: phase_quant.csv, modal_mineralogy.csv,
grain_sizes.csv, association.csv, particles.csv, deportment.csv and report.html.

:func:`write_mineral_report` quantifies and names the phases of the exported labels (reusing the
analysis's own results when the labels are the analysis's), computes the tables of
:mod:`napari_sigma.minerals.mineralogy` and writes them.

This module holds the report itself (:func:`write_mineral_report`, :func:`compute_mineralogy`,
:func:`phase_minerals_for`, :func:`label_abundances`); the rest lives by domain:

- :mod:`~napari_sigma.minerals.map_abundances`: the phases' abundance area fractions
  (``abundance_fractions``, ``abundance_basis``, ``known_sums``, ``BASIS_DEPTH``);
- :mod:`~napari_sigma.io.mineral_report.report_sums`: what the report reads of the cube (``cube_sums``,
  ``CubeSums``);
- :mod:`~napari_sigma.io.mineral_report.mineral_tables`: the CSV rows and the HTML page (``phase_quant_rows``,
  ``write_html``).

Their names are importable from here as before; change them in their own modules, patch them
in the module that reads them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

# moved by domain (eighteenth session): importable from here as before; a patch takes effect in
# the module that reads the name
from napari_sigma.io.mineral_report.mineral_tables import (  # noqa: F401
    ERR_WT_NOTE,
    _write_rows,
    phase_quant_rows,
    write_html,
)
from napari_sigma.io.mineral_report.report_sums import CubeSums, cube_sums  # noqa: F401
from napari_sigma.minerals.map_abundances import (  # noqa: F401
    BASIS_DEPTH,
    NEAR_IDENTICAL,
    _similar_groups,
    abundance_basis,
    abundance_fractions,
    basis_labels,
    known_sums,
)
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
