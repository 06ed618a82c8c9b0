"""report.png's figure: its panels, each inside the figure and apart from the others (titles, tick
labels, legends and the footnote included), the log axes labelled without mathtext. Not pinned to
pixels: the figure is laid out by hand (io.results.report._lay_out), these are its promises."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import pytest
from test_export import fake_result

from napari_sigma.io.results.report import report_figure

LONG = "ferro-magnesio-hornblende-like silicate"


def _mineralogy() -> SimpleNamespace:
    modal = [
        {"mineral": "quartz", "area_percent": 40.0, "wt_percent": 35.0,
         "not_resolved_from": "cristobalite 0.98; fused silica 0.98; opal 0.97"},
        {"mineral": LONG, "area_percent": 55.0, "wt_percent": 62.0, "not_resolved_from": ""},
        {"mineral": "unassigned", "area_percent": 5.0, "wt_percent": 3.0, "not_resolved_from": ""},
    ]  # fmt: skip
    sizes = {"quartz": [0.4, 1.5, 4.0, 12.0, 30.0], LONG: [2.0, 3.0, 55.0]}
    grains = [{"mineral": name, "ecd_um": s} for name, values in sizes.items() for s in values]
    return SimpleNamespace(modal=modal, grains=grains)


def _drawn_boxes(figure):
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    boxes = {ax.get_title(): ax.get_tightbbox(renderer) for ax in figure.axes}
    for ax in figure.axes:  # the footnote below the modal bars, whatever tightbbox keeps of it
        for number, text in enumerate(ax.texts):
            boxes[f"{ax.get_title()} text {number}"] = text.get_window_extent(renderer)
    boxes["suptitle"] = figure.texts[0].get_window_extent(renderer)
    return boxes


@pytest.mark.parametrize("with_mineralogy", [True, False])
def test_the_report_has_its_panels_inside_the_figure_and_none_overlapping(with_mineralogy):
    result = fake_result()
    result.phase_names = ["P1 " + LONG, "P2 Fe", "P3 O"]
    mineralogy = _mineralogy() if with_mineralogy else None
    figure = report_figure(result, mineralogy=mineralogy)
    titles = [ax.get_title() for ax in figure.axes]
    expected = ["Phase map", "Phase mean spectra"]
    assert titles == expected + (["Modal mineralogy", "Grain sizes"] if with_mineralogy else [])
    legend = [t.get_text() for t in figure.axes[0].get_legend().get_texts()]
    assert [label.split(" (")[0] for label in legend] == ["P1 " + LONG, "P2 Fe", "P3 O"]
    assert figure.axes[1].get_legend() is None and len(figure.axes[1].lines) >= 3

    boxes = _drawn_boxes(figure)
    inside = figure.bbox.padded(0.5)
    for name, box in boxes.items():
        within = inside.x0 <= box.x0 and box.x1 <= inside.x1 and inside.y0 <= box.y0
        assert within and box.y1 <= inside.y1, f"{name} leaves the figure: {box} in {inside}"
    panels = {name: box for name, box in boxes.items() if " text " not in name}
    footnotes = {name: box for name, box in boxes.items() if name.startswith("Modal")}
    for (a, box_a), (b, box_b) in itertools.combinations(panels.items(), 2):
        assert not box_a.overlaps(box_b), f"{a} overlaps {b}"
    for name, box in footnotes.items():
        others = [other for other in panels if not other.startswith("Modal")]
        assert not any(box.overlaps(panels[other]) for other in others), name
    if with_mineralogy:
        assert any("not resolved from" in t.get_text() for t in figure.axes[2].texts)


def test_the_log_axes_are_labelled_with_plain_numbers():
    figure = report_figure(fake_result(), mineralogy=_mineralogy())
    figure.canvas.draw()
    spectra, grains = figure.axes[1].yaxis, figure.axes[3].xaxis
    for axis in (spectra, grains):
        labels = [t.get_text() for t in axis.get_ticklabels(which="both") if t.get_text()]
        assert labels, axis
        assert not any("$" in label for label in labels), labels
        assert all(float(label) > 0 for label in labels), labels
