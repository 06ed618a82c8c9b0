"""Sessions: save -> load gives identical labels, names, colours, settings; clear errors."""

from __future__ import annotations

import csv
import json
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from napari_sigma.errors import SigmaFileError
from napari_sigma.io.results.writing import write_hspy
from napari_sigma.latent.embedding import LatentSettings
from napari_sigma.pipeline.analysis import AnalysisSettings, run_analysis
from napari_sigma.pipeline.session import load_session, save_session
from napari_sigma.pipeline.settings import settings_from_json
from napari_sigma.synthetic.generator import make_synthetic

FAST = AnalysisSettings(
    latent=LatentSettings(hidden=(16,), epochs=1, train_pixels=2000, device="cpu"),
    device="cpu",
    seed=3,
)


@pytest.fixture(scope="module")
def field(tmp_path_factory):
    sample = make_synthetic(seed=1, shape=(48, 48), phases=("quartz", "albite", "magnetite"))
    path = write_hspy(tmp_path_factory.mktemp("src") / "field.hspy", sample.image)
    from napari_sigma.io.readers.reading import read_spectrum_image

    image = read_spectrum_image(path)
    return image, run_analysis(image, replace(FAST, lines=tuple(sample.lines)))


def test_session_round_trip_keeps_the_edits(field, tmp_path):
    image, result = field
    edited = result.labels.copy()
    edited[:5, :5] = 7  # a painted new phase
    phases = [(k, f"mineral {k}", (k / 10, 0.5, 0.25, 1.0)) for k in range(1, result.n_phases + 1)]
    phases.append((7, "painted", (1.0, 0.0, 0.0, 0.8)))
    path = save_session(tmp_path / "work.sigma", result, edited, phases, gui={"tab": "phases"})
    session = load_session(path)
    np.testing.assert_array_equal(session.labels, edited)
    assert session.phase_names == [name for _, name, _ in phases]
    assert session.phase_colors == [tuple(float(c) for c in color) for _, _, color in phases]
    assert session.settings == result.settings
    assert session.gui == {"tab": "phases"}
    assert session.source == image.source.resolve() and len(session.source_sha256) == 64
    np.testing.assert_array_equal(session.latent, result.latent)
    reopened = session.result()  # reads the source back, verified against its hash
    np.testing.assert_array_equal(reopened.image.counts, image.counts)
    np.testing.assert_array_equal(reopened.labels, edited)
    np.testing.assert_allclose(reopened.abundances, result.abundances)
    np.testing.assert_array_equal(reopened.intensity_sigma, result.intensity_sigma)
    assert reopened.lines == result.lines and reopened.phase_names == session.phase_names


def test_a_session_without_a_source_embeds_the_counts(field, tmp_path):
    image, result = field
    result = replace(result, image=replace(image, source=None))
    session = load_session(save_session(tmp_path / "s.sigma", result))
    np.testing.assert_array_equal(session.read_image().counts, image.counts)
    assert session.phase_names == result.phase_names


def test_corrupted_or_changed_sessions_give_clear_errors(field, tmp_path):
    image, result = field
    path = save_session(tmp_path / "work.sigma", result)
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    header = json.loads(members["sigma.json"])
    header["content"]["phases"][0]["name"] = "tampered"
    members["sigma.json"] = json.dumps(header).encode()
    bad = tmp_path / "bad.sigma"
    with zipfile.ZipFile(bad, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    with pytest.raises(SigmaFileError, match=r"bad\.sigma: .*checksum"):
        load_session(bad)
    cut = tmp_path / "cut.sigma"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(SigmaFileError, match=r"cut\.sigma"):
        load_session(cut)
    # the source changed after saving: the session says so instead of showing wrong data
    source = tmp_path / "moved.hspy"
    write_hspy(source, image)
    session_path = save_session(
        tmp_path / "m.sigma", replace(result, image=replace(image, source=source))
    )
    write_hspy(source, replace(image, counts=image.counts + 1))
    with pytest.raises(SigmaFileError, match=r"m\.sigma: its source file .* changed"):
        load_session(session_path).read_image()


def test_settings_survive_json_including_nested_and_none():
    from napari_sigma.io.results.export import to_jsonable

    settings = AnalysisSettings.preset("sigma", lines=("Fe_Ka", "O_Ka"), seed=5)
    settings = replace(settings, phase_finding=replace(settings.phase_finding, split=None))
    back = settings_from_json(json.loads(json.dumps(to_jsonable(settings))))
    assert back == settings


SAVED_BY_MAIN = Path(__file__).parent / "data" / "session_saved_by_bfe6c4c.sigma"
"""A session that main at bfe6c4c (before sessions kept the phase minerals) saved: a 16 x 16
synthetic quartz / magnetite / albite map (counts embedded), its labels edited (the top-left 3 x 3
unassigned), the Phases tab open."""


def test_a_session_saved_before_the_minerals_were_kept_opens_and_names_its_phases_anew(tmp_path):
    from napari_sigma.io.results.export import export_result

    session = load_session(SAVED_BY_MAIN)
    assert session.phase_minerals == [] and session.minerals_labels is None
    assert session.gui == {"tab": "phases"} and (session.labels[:3, :3] == 0).all()
    result = session.result()
    assert result.phase_minerals == [] and result.minerals_labels is None
    out = export_result(result, tmp_path)  # as main did: the phases are quantified anew
    assert out
    with open(tmp_path / "modal_mineralogy.csv", newline="") as handle:
        modal = {row["mineral"]: row for row in csv.DictReader(handle)}
    assert {"quartz", "albite"} <= set(modal)
    # the Fe oxide: magnetite, maghemite or hematite, whichever the standardless O puts first,
    # and the other two among what it is not resolved from (Fe3O4 / Fe2O3: a few wt % O)
    iron_oxides = {"magnetite", "maghemite", "hematite"}
    (named,) = iron_oxides & set(modal)
    assert all(other in modal[named]["not_resolved_from"] for other in iron_oxides - {named})
    assert "cristobalite" in modal["quartz"]["not_resolved_from"]  # polymorphs
    assert modal["albite"]["not_resolved_from"] == ""


def _rewritten(path: Path, out: Path, change) -> Path:
    """``path`` with its content changed by ``change`` and its checksum made to match (a file
    another program wrote wrongly, not a damaged one)."""
    from napari_sigma.io.results.archive import content_hash, read_archive

    archive = read_archive(path)
    with zipfile.ZipFile(path) as source:
        members = {name: source.read(name) for name in source.namelist()}
    header = json.loads(members["sigma.json"])
    change(header["content"])
    header["sha256"] = content_hash(header["content"], archive.arrays)
    members["sigma.json"] = json.dumps(header).encode()
    with zipfile.ZipFile(out, "w") as target:
        for name, data in members.items():
            target.writestr(name, data)
    return out


@pytest.mark.parametrize(
    "change",
    [
        lambda c: c["minerals"][0].update(identification="hematite"),
        lambda c: c["minerals"][0]["quantification"].update(wt=[1, 2]),
        lambda c: c["minerals"][0]["identification"].pop("score"),
        lambda c: c.update(minerals={"phase_id": 1}),
        lambda c: c["minerals"].append(None),
    ],
    ids=["identification-a-string", "wt-a-list", "no-score", "not-a-list", "a-null-row"],
)
def test_a_session_with_invalid_minerals_gives_a_clear_error(field, tmp_path, change):
    _, result = field
    path = save_session(tmp_path / "work.sigma", result)
    assert load_session(path).phase_minerals  # the analysis identified its phases
    bad = _rewritten(path, tmp_path / "bad.sigma", change)
    with pytest.raises(SigmaFileError, match=r"bad\.sigma: incomplete or invalid session"):
        load_session(bad)
