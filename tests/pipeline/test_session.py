"""Sessions: save -> load gives identical labels, names, colours, settings; clear errors."""

from __future__ import annotations

import json
import zipfile
from dataclasses import replace

import numpy as np
import pytest

from napari_sigma.errors import SigmaFileError
from napari_sigma.io.writing import write_hspy
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
    from napari_sigma.io.reading import read_spectrum_image

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
    from napari_sigma.io.export import to_jsonable

    settings = AnalysisSettings.preset("sigma", lines=("Fe_Ka", "O_Ka"), seed=5)
    settings = replace(settings, phase_finding=replace(settings.phase_finding, split=None))
    back = settings_from_json(json.loads(json.dumps(to_jsonable(settings))))
    assert back == settings
