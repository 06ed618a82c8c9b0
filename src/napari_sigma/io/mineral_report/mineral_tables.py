"""The mineral report's tables as files: CSV rows (:func:`_write_rows`; phase_quant.csv's,
:func:`phase_quant_rows`) and the HTML page (:func:`write_html`) of
:mod:`napari_sigma.io.mineral_report.mineralogy`."""

from __future__ import annotations

import csv
import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from napari_sigma.minerals.mineralogy import Mineralogy


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
