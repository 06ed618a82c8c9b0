"""The napari-sigma command line on real files and on the embedded example."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from napari_sigma.cli import main
from napari_sigma.io.results.export import read_labels_tiff

OUTPUTS = {
    "phases.tif",
    "abundances.tif",
    "phase_spectra.csv",
    "unmixed_spectra.csv",
    "phase_stats.csv",
    "report.png",
    "run.json",
}


def _header(path):
    with open(path, newline="") as handle:
        return next(csv.reader(handle))


@pytest.mark.parametrize(
    ("name", "shape", "pixel_um"),
    [
        ("30x30_instructively_packed_16bit_compressed.bcf", (30, 30), 1.6672),
        ("P45_the_default_job.bcf", (75, 100), 8.7367),
    ],
)
def test_run_with_auto_elements_writes_every_output(SHARED_EDS, tmp_path, name, shape, pixel_um):
    source = SHARED_EDS / "bruker" / name
    code = main(["run", str(source), "--out", str(tmp_path), "--elements", "auto", "--epochs", "3"])
    assert code == 0
    out = tmp_path / source.stem
    assert {p.name for p in out.iterdir()} >= OUTPUTS
    labels, pixel_size = read_labels_tiff(out / "phases.tif")
    assert labels.shape == shape and labels.min() >= 1
    assert pixel_size == pytest.approx(pixel_um, rel=1e-3)
    run = json.loads((out / "run.json").read_text())
    assert run["n_phases"] == labels.max() and run["lines"]
    header = _header(out / "phase_spectra.csv")
    assert header[0] == "energy_keV" and len(header) == labels.max() + 1


def test_binned_run_keeps_the_full_pixel_size(SHARED_EDS, tmp_path):
    source = SHARED_EDS / "bruker" / "30x30_instructively_packed_16bit_compressed.bcf"
    argv = ["run", str(source), "--out", str(tmp_path), "--bin", "2", "--epochs", "2"]
    assert main([*argv, "--elements", "O,Si,Al,Fe,Ca"]) == 0
    labels, pixel_size = read_labels_tiff(tmp_path / source.stem / "phases.tif")
    assert labels.shape == (30, 30) and pixel_size == pytest.approx(1.6672, rel=1e-3)
    run = json.loads((tmp_path / source.stem / "run.json").read_text())
    assert run["settings"]["bin_factor"] == 2


def test_a_bad_input_fails_alone_with_a_one_line_error(SHARED_EDS, tmp_path, capsys):
    broken = tmp_path / "broken.bcf"
    broken.write_bytes(b"not a bruker file at all")
    good = SHARED_EDS / "bruker" / "30x30_instructively_packed_16bit_compressed.bcf"
    code = main(["run", str(broken), str(good), "--out", str(tmp_path / "out"), "--epochs", "2"])
    assert code != 0
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(errors) == 1 and "broken.bcf" in errors[0]
    assert (tmp_path / "out" / good.stem / "phases.tif").exists()


def test_elements_command_suggests_the_feldspar_elements(SHARED_EDS, capsys):
    assert main(["elements", str(SHARED_EDS / "bruker" / "P45_the_default_job.bcf")]) == 0
    printed = {line.split()[0] for line in capsys.readouterr().out.splitlines() if line.strip()}
    assert printed == {"O", "Na", "Al", "Si", "K"}


def test_elements_command_says_what_a_run_analyses_and_when_nothing_stands_out(SHARED_EDS, capsys):
    # the Velox map lists C, O, Ca, Cu and nothing reaches the suggestion's evidence: the
    # command printed nothing at all (qa23); test_TEM lists Cu, O, Pd, Ti and a run adds Si, N
    import warnings

    from napari_sigma.io.readers.reading import read_spectrum_image
    from napari_sigma.pipeline.analysis import AnalysisSettings, choose_lines

    assert main(["elements", str(SHARED_EDS / "emd" / "Test_SI_16x16_215_kx.emd")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("no element stands out of the sum spectrum (")
    assert out[1:] == [
        "the file lists: C, O, Ca, Cu (its spectrum does not show O, Ca, Cu)",
        "a run analyses: C, O, Ca, Cu",
    ]
    tem = SHARED_EDS / "bruker" / "test_TEM.bcf"
    assert main(["elements", str(tem)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-2] == "the file lists: Cu, O, Pd, Ti (its spectrum does not show Cu, Pd)"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lines = choose_lines(read_spectrum_image(tem, lazy=True), AnalysisSettings())
    analysed = dict.fromkeys(name.partition("_")[0] for name in lines)
    assert out[-1] == f"a run analyses: {', '.join(analysed)}"


def test_demo_prints_its_accuracy_and_writes_the_results(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--epochs", "2"]) == 0
    out = capsys.readouterr().out
    assert "phases found: 6 (truth 6)" in out
    ari = float(next(line for line in out.splitlines() if line.startswith("ari:")).split()[1])
    assert ari >= 0.9
    assert {p.name for p in tmp_path.iterdir()} >= OUTPUTS
    labels, _ = read_labels_tiff(tmp_path / "phases.tif")
    assert labels.shape == (160, 160) and set(np.unique(labels)) == set(range(1, 7))


def test_usage_errors_exit_with_argparse_code(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["run", "x.bcf", "--out", "o", "--phases", "zero"])
    assert stop.value.code == 2
    assert "--phases" in capsys.readouterr().err


def test_the_composition_split_can_be_turned_off():
    from napari_sigma.cli import build_settings, make_parser

    parser = make_parser()
    on = build_settings(parser.parse_args(["demo", "--out", "x"]))
    off = build_settings(parser.parse_args(["demo", "--out", "x", "--no-split"]))
    assert on.phase_finding.split is not None
    assert off.phase_finding.split is None


# ----------------------------------------------------------------------------- batch isolation


def _small_field(tmp_path, name="good.hspy", **changes):
    from dataclasses import replace

    from napari_sigma.io.results.writing import write_hspy
    from napari_sigma.synthetic.generator import make_synthetic

    image = make_synthetic(seed=0, shape=(20, 20), counts_per_pixel=150, n_channels=1024).image
    return write_hspy(tmp_path / name, replace(image, **changes))


def test_batch_with_broken_degenerate_and_good_files(tmp_path, capsys):
    broken = tmp_path / "broken.bcf"
    broken.write_bytes(b"AAMVHFSS" + bytes(1000))
    good = _small_field(tmp_path)
    empty = _small_field(tmp_path, "empty.hspy", counts=np.zeros((20, 20, 1024), np.uint16))
    argv = ["run", str(broken), str(empty), str(good), "--out", str(tmp_path / "out")]
    code = main([*argv, "--latent", "pca", "--elements", "Si,Al,Fe,Mg,Ca,K,Na,S,O"])
    assert code == 1
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if "error:" in line]
    assert len(errors) == 2
    assert "broken.bcf" in errors[0] and "empty.hspy: the map holds no counts" in errors[1]
    assert (tmp_path / "out" / "good" / "phases.tif").exists()
    summary = captured.out[captured.out.index("summary:") :].splitlines()
    assert summary[0] == "summary: 3 inputs, 1 ok, 2 failed"
    assert [row.split()[:2] for row in summary[1:]] == [
        ["failed", "broken.bcf"],
        ["failed", "empty.hspy"],
        ["ok", "good.hspy"],
    ]


def test_the_command_ends_without_teardown_and_its_output_is_whole(tmp_path):
    """The command line process ends with os._exit (cli.end_process): its piped (block-buffered)
    output is complete and its exit code is the command's."""
    import subprocess
    import sys

    broken = tmp_path / "broken.bcf"
    broken.write_bytes(b"AAMVHFSS" + bytes(1000))
    good = _small_field(tmp_path)
    argv = ["run", str(broken), str(good), "--out", str(tmp_path / "out"), "--latent", "pca"]
    done = subprocess.run(
        [sys.executable, "-m", "napari_sigma.cli", *argv, "--elements", "Si,Al,Fe,Mg,Ca,K,O"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert lines[-3] == "summary: 2 inputs, 1 ok, 1 failed"
    assert [row.split()[:2] for row in lines[-2:]] == [
        ["failed", "broken.bcf"],
        ["ok", "good.hspy"],
    ]
    assert [line for line in done.stderr.splitlines() if "error:" in line and "broken.bcf" in line]
    assert (tmp_path / "out" / "good" / "run.json").exists()


@pytest.mark.parametrize(
    ("changes", "argv", "message"),
    [
        ({"counts": np.ones((1, 1, 1024), np.uint16) * 5}, [], "a 1 x 1 map has 1 pixel"),
        ({}, ["--bin", "64"], "binning by 64 is larger than the 20 x 20 map"),
    ],
)
def test_degenerate_input_is_one_line_naming_the_file(tmp_path, capsys, changes, argv, message):
    path = _small_field(tmp_path, "field.hspy", **changes)
    code = main(["run", str(path), "--out", str(tmp_path / "out"), "--latent", "pca", *argv])
    assert code == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(errors) == 1 and "field.hspy" in errors[0] and message in errors[0]


def test_nan_pixels_give_a_result_with_a_warning(tmp_path, capsys):
    from dataclasses import replace

    from napari_sigma.io.results.writing import write_hspy
    from napari_sigma.synthetic.generator import make_synthetic

    image = make_synthetic(seed=0, shape=(20, 20), counts_per_pixel=150, n_channels=1024).image
    counts = image.counts.astype(np.float32)
    counts[3, 4, :] = np.nan
    path = write_hspy(tmp_path / "nan.hspy", replace(image, counts=counts))
    argv = ["run", str(path), "--out", str(tmp_path / "out"), "--latent", "pca"]
    assert main([*argv, "--elements", "Si,Al,Fe,Mg,Ca,K,Na,S,O"]) == 0
    err = capsys.readouterr().err
    assert "napari-sigma: warning:" in err and "nan.hspy: NaN or infinite counts in 1 pixels" in err
    assert (tmp_path / "out" / "nan" / "phases.tif").exists()


def test_ev_axis_and_missing_beam_energy_give_a_result_with_warnings(tmp_path, capsys):
    from dataclasses import replace

    from napari_sigma.energy import EnergyAxis
    from napari_sigma.io.results.writing import write_hspy
    from napari_sigma.synthetic.generator import make_synthetic

    image = make_synthetic(seed=0, shape=(20, 20), counts_per_pixel=150, n_channels=1024).image
    in_ev = EnergyAxis(image.energy.offset * 1e3, image.energy.scale * 1e3, image.energy.size)
    path = write_hspy(tmp_path / "ev.hspy", replace(image, energy=in_ev, beam_energy=None))
    argv = ["run", str(path), "--out", str(tmp_path / "out"), "--latent", "pca"]
    assert main([*argv, "--elements", "Si,Al,Fe,Mg,Ca,K,Na,S,O"]) == 0
    warned = [line for line in capsys.readouterr().err.splitlines() if "warning:" in line]
    assert any("ev.hspy: the energy axis was in eV" in line for line in warned)
    assert any("ev.hspy: beam energy missing: assumed 20 kV" in line for line in warned)
    labels, _ = read_labels_tiff(tmp_path / "out" / "ev" / "phases.tif")
    assert labels.shape == (20, 20) and labels.max() >= 2


def test_a_cpu_run_imports_torch_only_for_the_autoencoder(tmp_path):
    """On the CPU the phases, the NMF and the abundances are computed in numpy: `napari-sigma
    run` without the autoencoder never imports torch (about 1 s of CPU); the sigma preset's
    autoencoder latent space does."""
    import re
    import subprocess
    import sys

    good = _small_field(tmp_path)
    imported = {}
    for name, options in (("default", []), ("sigma", ["--preset", "sigma", "--epochs", "1"])):
        done = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "napari_sigma.cli", "run", str(good),
             "--out", str(tmp_path / name), "--device", "cpu", "--no-minerals", *options],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
        imported[name] = bool(re.search(r"\|\s+torch$", done.stderr, re.MULTILINE))
        assert (tmp_path / name / "good" / "run.json").exists()
    assert imported == {"default": False, "sigma": True}


def test_the_summary_counts_one_phase_in_the_singular(tmp_path):
    """velox and test_TEM end with one phase: "1 phase (rutile)", not "1 phases"."""
    from types import SimpleNamespace

    from napari_sigma.cli import _summary

    def result(names):
        return SimpleNamespace(
            timings={"phases": 1.0},
            phase_names=names,
            n_phases=len(names),
            device="cpu",
            phase_choice=lambda: "fixed",
            alternatives=[],
            unassigned={},
            labels=np.zeros((2, 2)),
        )

    assert _summary(result(["rutile"]), tmp_path).startswith("1 phase (rutile) in ")
    assert _summary(result(["a", "b"]), tmp_path).startswith("2 phases (a, b) in ")


def test_the_phase_choice_counts_one_phase_in_the_singular():
    from types import SimpleNamespace

    from napari_sigma.pipeline.analysis import AnalysisResult

    def choice(n, alternatives):
        settings = SimpleNamespace(clustering=SimpleNamespace(n_phases="auto"))
        run = SimpleNamespace(settings=settings, n_phases=n, alternatives=alternatives)
        return AnalysisResult.phase_choice(run)

    assert choice(1, [2, 3]) == "auto: 1 phase; next 2, 3"
    assert choice(4, []) == "auto: 4 phases"


def test_the_export_runs_without_garbage_collections(monkeypatch, tmp_path):
    import gc

    from napari_sigma import cli
    from napari_sigma.io.results import export
    from napari_sigma.pipeline import analysis

    def analyse(image, settings, embed=True):
        if False:
            yield
        return "result"

    seen = []

    def export_result(result, out_dir):
        seen.append((result, gc.isenabled()))
        return {}

    monkeypatch.setattr(analysis, "analyse", analyse)
    monkeypatch.setattr(export, "export_result", export_result)
    assert gc.isenabled()
    assert cli._analyse_and_export("image", None, tmp_path) == ("result", {})
    assert seen == [("result", False)]  # paused while the export draws and writes
    assert gc.isenabled()  # and on again afterwards
    gc.disable()
    try:
        with cli.collections_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # a collector the caller disabled stays disabled
    finally:
        gc.enable()
