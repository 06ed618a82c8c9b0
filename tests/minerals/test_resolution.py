"""Candidates the measurement does not resolve from the name (Identification.unresolved), and
where the user reads them: phase_quant.csv, modal_mineralogy.csv, report.html, report.png, a
saved session."""

import csv

import numpy as np
import pytest

from napari_sigma.minerals.identify import Geometry, identify_composition


def test_an_iron_oxide_lists_the_oxides_its_o_does_not_resolve():
    # the held-out granite's magnetite as the user's path quantifies it (espm's O K too strong):
    # hematite by a small margin; magnetite's 27.6 wt % O is one standard deviation away
    found = identify_composition({"O": 32.3, "Si": 0.89, "Fe": 66.7}, geometry=Geometry("thin"))
    assert found.name == "hematite"
    unresolved = [name for name, _ in found.unresolved]
    assert "magnetite" in unresolved and "maghemite" in unresolved  # a polymorph too
    # goethite's visible O is 6 wt % above hematite's, so their compositions are resolved; but
    # this O (32.3) lies between them and both fit it, scoring alike (0.53, 0.64): a close tie
    # (`unresolved_candidates` with the measurement), resolved at hematite's own O (below)
    assert "goethite" in unresolved
    at_hematite = identify_composition({"Fe": 69.9, "O": 30.1}, geometry=Geometry("thin"))
    assert at_hematite.name == "hematite"
    assert "goethite" not in [name for name, _ in at_hematite.unresolved]
    # an ideal magnetite is not resolved from hematite either (2.5 wt % O at 8 % + 0.7 wt %)
    ideal = identify_composition({"Fe": 72.4, "O": 27.6})
    assert ideal.name == "magnetite" and "hematite" in [n for n, _ in ideal.unresolved]


def test_resolved_compositions_are_not_listed():
    olivine = identify_composition({"Mg": 34.5, "Si": 20.0, "O": 45.5})
    assert olivine.name == "forsterite"
    assert "enstatite" not in [n for n, _ in olivine.unresolved]
    pyrite = identify_composition({"Fe": 46.5, "S": 53.5})
    assert [n for n, _ in pyrite.unresolved] == ["marcasite"]  # its polymorph only


def test_the_phase_table_says_what_is_not_resolved():
    from napari_sigma.io.mineral_report.mineralogy import phase_quant_rows
    from napari_sigma.minerals.phases import PhaseMineral

    found = identify_composition({"O": 32.3, "Si": 0.89, "Fe": 66.7}, geometry=Geometry("thin"))
    rows, columns = phase_quant_rows([1], ["P1"], [PhaseMineral(1, None, found)])
    assert "not_resolved_from" in columns
    assert "magnetite" in rows[0]["not_resolved_from"]


# --- where the user reads it: the report's files, report.png, a saved and reopened session ---


@pytest.fixture(scope="module")
def oxide_map(tmp_path_factory):
    """A quick analysis of a quartz / magnetite / albite map and its export (the CLI's files)."""
    from napari_sigma.compute.progress import run_to_completion
    from napari_sigma.io.results.export import export_result
    from napari_sigma.pipeline.analysis import analyse
    from napari_sigma.synthetic.generator import make_synthetic
    from sigma_testdata import quick_three_phase_settings

    sample = make_synthetic(
        seed=0, shape=(32, 32), n_channels=512, phases=("quartz", "magnetite", "albite"),
        grain_size=10.0, title="oxides",
    )  # fmt: skip
    result = run_to_completion(analyse(sample.image, quick_three_phase_settings()))
    out = tmp_path_factory.mktemp("export")
    return result, export_result(result, out), out


def _rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_the_modal_table_and_the_report_say_what_each_name_is_not_resolved_from(oxide_map):
    from napari_sigma.io.results.report import unresolved_lines

    result, _, out = oxide_map
    by_mineral = {m.mineral: m for m in result.phase_minerals}
    assert "magnetite" in by_mineral  # an ideal Fe3O4 is named magnetite...
    magnetite = by_mineral["magnetite"]
    assert "hematite" in magnetite.not_resolved_from  # ...and is not resolved from Fe2O3
    modal = {r["mineral"]: r for r in _rows(out / "modal_mineralogy.csv")}
    assert modal["magnetite"]["not_resolved_from"] == magnetite.not_resolved_from
    for name, m in by_mineral.items():  # every named mineral carries its own list, or none
        assert modal[name]["not_resolved_from"] == m.not_resolved_from
    assert modal["unassigned"]["not_resolved_from"] == "" if "unassigned" in modal else True
    quant = {r["mineral"]: r for r in _rows(out / "phase_quant.csv")}
    assert quant["magnetite"]["not_resolved_from"] == magnetite.not_resolved_from
    page = (out / "report.html").read_text()
    assert "not_resolved_from" in page and "EDS measures composition, not structure" in page
    footnote = " ".join(unresolved_lines(list(modal.values()), width=1000))
    assert "≈ magnetite: not resolved from" in footnote and "hematite" in footnote
    assert not any(line.startswith("≈ albite") for line in unresolved_lines(modal.values()))


def test_a_name_the_user_gives_carries_no_unresolved_list(oxide_map, tmp_path):
    from napari_sigma.io.results.export import export_result

    result, _, _ = oxide_map
    pid = next(m.phase_id for m in result.phase_minerals if m.mineral == "magnetite")
    names = list(result.phase_names)
    names[pid - 1] = "titanomagnetite"  # the user knows it from another measurement
    export_result(result, tmp_path, names=names)
    modal = {r["mineral"]: r for r in _rows(tmp_path / "modal_mineralogy.csv")}
    assert modal["titanomagnetite"]["not_resolved_from"] == ""


def test_the_report_png_draws_the_mark_and_its_footnote(oxide_map, tmp_path):
    from napari_sigma.io.results import report

    drawn = []
    original = report._draw_modal

    def spy(ax, mineralogy):
        original(ax, mineralogy)
        drawn.append(([t.get_text() for t in ax.get_yticklabels()],
                      [t.get_text() for t in ax.texts]))  # fmt: skip

    result, _, _ = oxide_map
    from napari_sigma.io.mineral_report.mineralogy import compute_mineralogy
    from napari_sigma.phases.statistics import phase_table

    table = phase_table(result.labels, result.image.counts, result.intensities, result.lines,
                        result.image.pixel_size_um, names=list(result.phase_names))  # fmt: skip
    tables = compute_mineralogy(result, result.labels, [int(i) for i in table.phase_ids],
                                list(table.names), result.phase_minerals)  # fmt: skip
    import unittest.mock

    with unittest.mock.patch.object(report, "_draw_modal", spy):
        path = report.render_report(result, tmp_path / "r.png", mineralogy=tables)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ((ticks, texts),) = drawn
    assert "magnetite ≈" in ticks and "albite" in ticks
    assert any("≈ magnetite: not resolved from" in t for t in texts)


def test_a_saved_session_keeps_the_identifications_and_what_they_are_not_resolved_from(
    oxide_map, tmp_path
):
    from napari_sigma.io.mineral_report.mineralogy import phase_minerals_for
    from napari_sigma.pipeline.session import load_session, save_session

    result, _, _ = oxide_map
    path = save_session(tmp_path / "work.sigma", result)  # labels as analysed
    reopened = load_session(path).result(result.image)
    assert reopened.minerals_labels is None
    for before, after in zip(result.phase_minerals, reopened.phase_minerals, strict=True):
        assert after.phase_id == before.phase_id and after.mineral == before.mineral
        assert after.score == before.score and after.not_resolved_from == before.not_resolved_from
        assert after.identification.alternatives == before.identification.alternatives
        assert after.identification.components == before.identification.components
        assert after.quantification.wt == before.quantification.wt
        assert after.quantification.err_wt == before.quantification.err_wt
        assert after.quantification.fit is None  # the line fits are not kept
    ids = sorted(m.phase_id for m in result.phase_minerals)
    assert phase_minerals_for(reopened, reopened.labels, ids) == reopened.phase_minerals
    # saved after an edit: the identifications still describe the analysed labels, and the
    # export of the edited labels quantifies them anew, as before the session was saved
    edited = result.labels.copy()
    edited[:4, :4] = 0  # unassigned
    path = save_session(tmp_path / "edited.sigma", result, labels=edited)
    reopened = load_session(path).result(result.image)
    np.testing.assert_array_equal(reopened.labels, edited)
    np.testing.assert_array_equal(reopened.minerals_labels, result.labels)
    assert [m.mineral for m in reopened.phase_minerals] == [
        m.mineral for m in result.phase_minerals
    ]
    assert phase_minerals_for(reopened, result.labels, ids) == reopened.phase_minerals
