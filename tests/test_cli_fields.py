"""Many fields from the command line: one shared model (same id for the same mineral), apply."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from napari_sigma.cli import main
from napari_sigma.io.results.export import read_labels_tiff
from napari_sigma.io.results.writing import write_hspy
from napari_sigma.pipeline.model import load_model
from napari_sigma.synthetic.generator import make_synthetic

pytestmark = pytest.mark.slow  # the acceptance of the shared model: ~15 s of CPU

MINERALS = ("quartz", "albite", "diopside", "magnetite", "pyrite")


def write_fields(folder, seeds, shape=(64, 64)):
    """Fields of one sample (same minerals, different layouts) as .hspy files, with their truth.

    Two folders hold files of the same names, as a microscope's export of two areas would.
    """
    paths, truths = [], []
    for i, seed in enumerate(seeds):
        sample = make_synthetic(seed=seed, shape=shape, phases=MINERALS, grain_size=14)
        where = folder / ("area_a" if i % 2 == 0 else "area_b")
        where.mkdir(parents=True, exist_ok=True)
        paths.append(write_hspy(where / f"field{i // 2}.hspy", sample.image, compression=None))
        truths.append(sample.labels)
    return paths, truths


def id_to_truth(labels, truths):
    """The one id -> true mineral mapping that explains the most pixels over all fields."""
    table = np.zeros((32, 32), np.int64)
    for found, truth in zip(labels, truths, strict=True):
        np.add.at(table, (found.ravel(), truth.ravel()), 1)
    return table.argmax(axis=1)


@pytest.fixture(scope="module")
def shared_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("fields")
    paths, truths = write_fields(root / "in", seeds=(11, 12, 13, 14, 15))
    out = root / "out"
    argv = ["run", *map(str, paths[:4]), "--out", str(out), "--shared-model", "--device", "cpu"]
    assert main(argv) == 0
    return root, paths, truths, out


def test_shared_model_gives_each_mineral_one_id_in_every_field(shared_run):
    _, _, truths, out = shared_run
    folders = ["area_a_field0", "area_b_field0", "area_a_field1", "area_b_field1"]
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == sorted(folders)
    labels = [read_labels_tiff(out / name / "phases.tif")[0] for name in folders]
    mapping = id_to_truth(labels, truths[:4])
    used = np.unique(np.concatenate([np.unique(found) for found in labels]))
    assert len(set(mapping[used])) == len(used) == len(MINERALS)  # one id per mineral
    for found, truth in zip(labels, truths[:4], strict=True):
        assert (mapping[found] == truth).mean() >= 0.95
    # every field's run.json and stats use the model's names
    model = load_model(out / "model.sigma")
    for name in folders:
        assert json.loads((out / name / "run.json").read_text())["phase_names"] == model.phase_names
    with (out / "pooled_stats.csv").open() as handle:
        pooled = list(csv.DictReader(handle))
    assert [int(r["phase_id"]) for r in pooled] == model.phase_ids.tolist()
    assert sum(int(r["pixels"]) for r in pooled) == 4 * 64 * 64
    assert all(int(r["fields"]) == 4 for r in pooled)


def test_apply_on_a_fifth_field_gives_the_same_ids(shared_run):
    root, paths, truths, out = shared_run
    folders = ["area_a_field0", "area_b_field0", "area_a_field1", "area_b_field1"]
    mapping = id_to_truth(
        [read_labels_tiff(out / n / "phases.tif")[0] for n in folders], truths[:4]
    )
    assert main(["apply", str(out / "model.sigma"), str(paths[4]), "--out", str(root / "o5")]) == 0
    fifth = read_labels_tiff(root / "o5" / "field2" / "phases.tif")[0]
    assert (mapping[fifth] == truths[4]).mean() >= 0.95
    stats = list(csv.DictReader((root / "o5" / "field2" / "phase_stats.csv").open()))
    model = load_model(out / "model.sigma")
    names = dict(zip(model.phase_ids.tolist(), model.phase_names, strict=True))
    assert all(row["name"] == names[int(row["phase_id"])] for row in stats)


def test_apply_with_a_damaged_model_says_which_file(shared_run, tmp_path, capsys):
    _, paths, _, out = shared_run
    bad = tmp_path / "model.sigma"
    bad.write_bytes((out / "model.sigma").read_bytes()[:-100])
    assert main(["apply", str(bad), str(paths[4]), "--out", str(tmp_path / "o")]) == 1
    assert str(bad) in capsys.readouterr().err


def test_apply_takes_a_session_saved_in_napari_as_the_user_left_it(shared_run, tmp_path, capsys):
    """napari's *Save session* writes no model file: ``apply`` makes the model from the session's
    edited labels (a merge, a rename) and classifies with those phases, ids and names."""
    from dataclasses import replace

    from napari_sigma.io.readers.reading import read_spectrum_image
    from napari_sigma.latent.embedding import LatentSettings
    from napari_sigma.pipeline.analysis import AnalysisSettings, run_analysis
    from napari_sigma.pipeline.session import save_session

    _, paths, _, _ = shared_run
    fast = AnalysisSettings(
        latent=LatentSettings(hidden=(16,), epochs=1, train_pixels=2000, device="cpu"),
        device="cpu",
        seed=3,
    )
    image = read_spectrum_image(paths[4])
    result = run_analysis(image, replace(fast, lines=("Si_Ka", "Al_Ka", "Na_Ka", "Ca_Ka", "Mg_Ka",
                                                      "Fe_Ka", "S_Ka", "O_Ka")))  # fmt: skip
    assert result.n_phases >= 3
    edited = np.where(result.labels == 2, 1, result.labels)  # phase 2 merged into phase 1
    phases = [(k, result.phase_names[k - 1], (0.1 * k, 0.5, 0.5, 1.0))
              for k in range(1, result.n_phases + 1) if k != 2]  # fmt: skip
    phases[0] = (1, "my mineral", phases[0][2])  # renamed
    session = save_session(tmp_path / "work.sigma", result, edited, phases)
    capsys.readouterr()

    assert main(["apply", str(session), str(paths[4]), "--out", str(tmp_path / "o")]) == 0
    said = capsys.readouterr().out
    kept = len(phases)
    assert f"model: {kept} phases (my mineral, " in said and "from the session work.sigma" in said
    assert "phase 2" not in said and f"{kept} phases (my mineral, " in said.splitlines()[1]
    labels = read_labels_tiff(tmp_path / "o" / "field2" / "phases.tif")[0]
    assert 2 not in labels and (labels == edited).mean() >= 0.9  # the same file: the same map
    stats = list(csv.DictReader((tmp_path / "o" / "field2" / "phase_stats.csv").open()))
    names = {int(row["phase_id"]): row["name"] for row in stats}
    assert names[1] == "my mineral" and set(names) <= {k for k, _, _ in phases}


def test_apply_with_a_file_that_is_no_archive_says_which_file(shared_run, tmp_path, capsys):
    _, paths, _, _ = shared_run
    not_sigma = tmp_path / "notes.sigma"
    not_sigma.write_text("not an archive")
    assert main(["apply", str(not_sigma), str(paths[4]), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert str(not_sigma) in err and len(err.strip().splitlines()) == 1


def test_a_field_s_time_is_what_the_user_waited_for_it(shared_run, tmp_path, capsys, monkeypatch):
    # `run --shared-model` / `apply` said "in 0.0 s" for a small field: the classification's
    # stages only, not the reading and writing of its files (qa22's walk). Now the field's
    # whole wall time: here its export made a third of a second slower.
    import re
    import time

    from napari_sigma.io.results import export

    real = export.export_result

    def slow_export(*args, **kwargs):
        time.sleep(0.35)
        return real(*args, **kwargs)

    monkeypatch.setattr(export, "export_result", slow_export)
    _, paths, _, out = shared_run
    capsys.readouterr()
    assert main(["apply", str(out / "model.sigma"), str(paths[4]), "--out", str(tmp_path)]) == 0
    line = next(row for row in capsys.readouterr().out.splitlines() if "phases (" in row)
    seconds = float(re.search(r" in ([0-9.]+) s on ", line).group(1))
    timings = json.loads((tmp_path / "field2" / "run.json").read_text())["timings_s"]
    assert seconds >= sum(timings.values()) + 0.3  # the sleep is outside the stages


def test_apply_warns_of_a_field_of_another_sample_in_one_line_and_exits_0(
    shared_run, tmp_path, capsys
):
    """#13: the model names every field with its minerals; a field it does not describe gets
    one warning line (pixels that fit no phase, elements it does not analyse), its mask and the
    check in run.json and fields.csv; the field of its own sample none."""
    _, paths, _, out = shared_run
    other = make_synthetic(seed=31, shape=(64, 64), grain_size=14,
                           phases=("calcite", "barite", "chalcopyrite", "sphalerite"))  # fmt: skip
    foreign = write_hspy(tmp_path / "other_sample.hspy", other.image, compression=None)
    capsys.readouterr()
    argv = ["apply", str(out / "model.sigma"), str(paths[4]), str(foreign), "--out", str(tmp_path)]
    assert main(argv) == 0
    said = capsys.readouterr()
    warnings = [line for line in said.err.splitlines() if "warning" in line]
    assert len(warnings) == 1 and str(foreign) in warnings[0], said.err
    assert "% of pixels fit no phase of the model" in warnings[0] and "Ba" in warnings[0]
    assert str(tmp_path / "other_sample" / "not_fitted.tif") in warnings[0]
    named = [line for line in said.out.splitlines() if line.startswith(f"{foreign}: ")]
    assert len(named) == 1 and " phase" in named[0]  # still named with the model's phases
    mask = read_labels_tiff(tmp_path / "other_sample" / "not_fitted.tif")[0]
    record = json.loads((tmp_path / "other_sample" / "run.json").read_text())["model_check"]
    assert mask.sum() == record["not_fitted"]["pixels"] > 0.5 * mask.size
    assert "Ba" in record["foreign_elements"] and record["model_beam_energy_kV"] == 15.0
    own = json.loads((tmp_path / "field2" / "run.json").read_text())["model_check"]
    assert own["warning"] == "" and own["not_fitted"]["fraction"] < 0.01
    assert not (tmp_path / "field2" / "not_fitted.tif").exists()
    rows = {row["folder"]: row for row in csv.DictReader((tmp_path / "fields.csv").open())}
    assert rows["field2"]["warning"] == "" and rows["field2"]["foreign_elements"] == ""
    assert rows["other_sample"]["warning"] in warnings[0]
    assert float(rows["other_sample"]["not_fitted_fraction"]) > 0.5


def test_apply_of_test_tem_s_model_to_the_velox_file_names_beam_and_elements(
    SHARED_EDS, tmp_path, capsys
):
    """qa24's walk: test_TEM's model (200 kV, Si/Ti/O/N) applied to the Velox map (300 kV, a
    carbon film) named it "quartz + osbornite" without a word; its own file passes."""
    tem = SHARED_EDS / "bruker" / "test_TEM.bcf"
    velox = SHARED_EDS / "emd" / "Test_SI_16x16_215_kx.emd"
    argv = ["run", str(tem), "--out", str(tmp_path / "m"), "--shared-model", "--device", "cpu"]
    assert main(argv) == 0
    capsys.readouterr()
    argv = ["apply", str(tmp_path / "m" / "model.sigma"), str(velox), str(tem), "--out",
            str(tmp_path / "o")]  # fmt: skip
    assert main(argv) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert len(warnings) == 1 and str(velox) in warnings[0]
    assert "beam 300 kV, the model's 200 kV" in warnings[0]
    assert "elements the model does not analyse: C" in warnings[0]
