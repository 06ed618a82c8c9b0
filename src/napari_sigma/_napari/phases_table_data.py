"""What the Phases tab's table stands on, without Qt: the statistics of a result's phases built
and updated to a label image (in napari's main thread or a worker), the phases an edit moved
away from what the analysis identified, the running sums an export reuses, the edit record of
``run.json``, and the colours and line energies the table and its plot show.

Moved verbatim from :mod:`napari_sigma._napari.phases_widget` (which still exports every name).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from napari_sigma._napari import state
from napari_sigma._napari.phase_model import Phase, PhaseModel


def line_energies(lines: Any) -> dict[str, float]:
    """``{"Fe_Ka": 6.40, ...}`` for the analysed line names (unknown names are skipped)."""
    from napari_sigma.xray.lines import parse_line

    energies = {}
    for name in lines:
        try:
            energies[str(name)] = float(parse_line(str(name)).energy)
        except (ValueError, KeyError):
            continue
    return energies


def _build_statistics(result: Any, labels: np.ndarray | None) -> Any:
    """PhaseStatistics of a result on in-memory per-pixel spectra (first update on ``labels``)."""
    from napari_sigma.phases.pixel_cache import pixel_spectra
    from napari_sigma.phases.statistics import PhaseStatistics

    spectra = pixel_spectra(result.image.counts, result.image.energy)
    statistics = PhaseStatistics(
        spectra.counts,
        result.intensities,
        list(result.lines),
        pixel_size_um=result.image.pixel_size_um,
        regions=False,  # the table shows no region statistics; they cost ~10 ms a phase
        energies=spectra.energies,
        channels_summed=spectra.factor,
    )
    if labels is not None:
        statistics.update(labels)
    return statistics


def found_labels(result: Any) -> np.ndarray | None:
    """The labels the analysis identified its minerals on: its own, or a session's
    ``minerals_labels`` (saved after edits: the result's labels are the edited ones)."""
    labels = getattr(result, "minerals_labels", None)
    return getattr(result, "labels", None) if labels is None else labels


def edited_phases(found: np.ndarray | None, labels: np.ndarray) -> frozenset[int]:
    """The phases whose pixels in ``labels`` are not those they have in ``found``: the label a
    pixel had and the one it has, at every pixel where the two differ.

    Exact where a comparison of pixel counts is not: a stroke (or two) that gives a phase as
    many pixels as it takes moves them; undone, ``labels`` equal ``found`` again and no phase
    is edited. ``found`` None (no analysis labels) or of another shape: every phase counts as
    edited."""
    labels = np.asarray(labels)
    if found is None or np.shape(found) != labels.shape:
        return frozenset(int(k) for k in np.unique(labels))
    found = np.asarray(found)
    moved = found != labels
    if not moved.any():
        return frozenset()
    before = np.unique(found[moved])
    after = np.unique(labels[moved])
    return frozenset(int(k) for k in np.union1d(before, after))


def _update_with_edits(statistics: Any, found: np.ndarray | None, labels: np.ndarray):
    """The statistics updated to ``labels`` and the phases edited since the analysis."""
    return statistics.update(labels), edited_phases(found, labels)


def _build_with_edits(result: Any, labels: np.ndarray):
    """:func:`_build_statistics` on ``labels`` and the phases edited since the analysis."""
    return _build_statistics(result, labels), edited_phases(found_labels(result), labels)


@dataclass
class _Updates:
    """The statistics updates of one layer, made in workers one at a time (the latest labels
    not yet sent wait for the running one)."""

    sent: np.ndarray | None = None  # the labels of the last update started
    labels: np.ndarray | None = None  # the labels to update to next (None: nothing new)
    spectra: bool = False  # hand the phase spectra on after that update
    running: bool = False


class _LayerSnapshot:
    """What a session needs of a phases layer, copied in the main thread for a worker."""

    def __init__(self, layer: Any) -> None:
        self.name = layer.name
        self.data = np.array(layer.data, copy=True)
        data = dict(state.plugin_data(layer))
        data["phases"] = PhaseModel(Phase(p.id, p.name, p.color) for p in data["phases"])
        self.metadata = {state.KEY: data}


def _export(
    result: Any, out_dir: Any, labels: np.ndarray, names: list[str], sums: Any = None
) -> dict:
    """Export the edited labels; ``run.json`` also records the edits made in napari. ``sums``:
    the exact sum spectra of phases 1..K over ``labels`` when known (:func:`_running_sums`)."""
    import json

    from napari_sigma.io.results.export import export_result
    from napari_sigma.io.results.export_child import session_child

    # report.png drawn in a child process: matplotlib holds none of napari's GIL (same bytes);
    # one child kept for the session, warm for the next export (export_child)
    written = export_result(
        result, out_dir, labels=labels, names=names, sum_spectra=sums, kept=session_child()
    )
    run_path = Path(written["run"])
    info = json.loads(run_path.read_text())
    info.update(edit_record(result, labels, names))
    run_path.write_text(json.dumps(info, indent=2))
    return written


def _running_sums(statistics: Any, result: Any, labels: np.ndarray) -> np.ndarray | None:
    """The Phases tab's running sum spectra of phases 1..K (a copy) when they are the sums over
    ``labels`` of the result's own in-memory cube, every channel; else None.

    An export of edited labels then reads no cube for its phase statistics: a cube too large
    for the export's child (1024² x 2048, 4 GiB) was summed again in napari's process, in the
    export's worker. Integer counts make the running sums exact (float64 sums of integers, moved
    pixel by pixel as the user edits): the same table as a new pass, the same files (the export
    checks the counts are integers). Call it with no statistics update running
    (:meth:`PhasesWidget.pending_updates`): a worker changes these sums."""
    if statistics is None or statistics.counts is not result.image.counts:
        return None  # no statistics yet, or of a lazy cube's channel groups
    if getattr(statistics, "factor", 1) != 1:
        return None
    return statistics.sums_over(labels)


def edit_record(result: Any, labels: np.ndarray, names: list[str]) -> dict[str, Any]:
    """What changed in napari since the run: live phases with their current names, pixels moved."""
    counts = np.bincount(np.ravel(labels).astype(np.int64))
    live = [int(k) for k in np.flatnonzero(counts) if k > 0]
    original = list(result.phase_names)
    current = {k: names[k - 1] if k <= len(names) else f"phase {k}" for k in live}
    return {
        "phase_names": [current[k] for k in live],
        "phase_ids": live,
        "edits": {
            "pixels_relabelled": int(np.count_nonzero(np.asarray(labels) != result.labels)),
            "renamed": {
                str(k): [original[k - 1], current[k]]
                for k in live
                if k <= len(original) and original[k - 1] != current[k]
            },
            "removed_phases": [k for k in range(1, len(original) + 1) if k not in current],
            "added_phases": [k for k in live if k > len(original)],
        },
    }


def hex_color(rgba: Any) -> str:
    """``(r, g, b, a)`` floats -> ``"#rrggbb"``."""
    r, g, b = (round(255 * float(c)) for c in list(rgba)[:3])
    return f"#{r:02x}{g:02x}{b:02x}"
