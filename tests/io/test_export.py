"""Export files: TIFF round trips with ImageJ calibration, CSV layout, run record, full export."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import tifffile

from napari_sigma.energy import EnergyAxis
from napari_sigma.io.results.export import (
    EXPORT_FILES,
    export_result,
    read_labels_tiff,
    to_jsonable,
    write_labels_tiff,
    write_maps_tiff,
    write_run_json,
    write_spectra_csv,
    write_stats_csv,
)
from napari_sigma.io.results.report import nice_scale_bar, render_report
from napari_sigma.phases.statistics import phase_table
from napari_sigma.spectrum_image import SpectrumImage

LINES = ("Si_Ka", "O_Ka", "Fe_Ka")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass
class FakeSettings:
    seed: int = 3
    bin_factor: int = 1
    device: str = "cpu"


def fake_result(pixel_unit: str = "µm") -> SimpleNamespace:
    """A small analysis result with the attributes of pipeline.AnalysisResult used by export."""
    rng = np.random.default_rng(5)
    shape, n_channels = (24, 30), 200
    axis = EnergyAxis(offset=-0.1, scale=0.05, size=n_channels)
    counts = rng.poisson(1.0, (*shape, n_channels)).astype(np.uint16)
    image = SpectrumImage(counts=counts, energy=axis, beam_energy=8.0, pixel_size=0.2,
                          pixel_unit=pixel_unit, title="fake", source=Path("fake.bcf"))  # fmt: skip
    labels = np.ones(shape, dtype=np.int32)
    labels[:, 15:] = 2
    labels[10:14, 3:8] = 3
    labels[0, 0] = 0
    abundances = rng.random((*shape, 2)).astype(np.float32)
    return SimpleNamespace(
        image=image,
        labels=labels,
        phase_names=["P1 Si-O", "P2 Fe", "P3 O"],
        components=rng.random((2, n_channels)),
        component_names=["C1", "C2"],
        abundances=abundances,
        intensities=rng.random((*shape, len(LINES))).astype(np.float32),
        lines=LINES,
        settings=FakeSettings(),
        timings={"features": 0.5, "latent": np.float64(2.0)},
        device="cpu",
        versions={"numpy": np.__version__},
    )


def test_labels_tiff_round_trip(tmp_path):
    labels = np.random.default_rng(0).integers(0, 300, (17, 23)).astype(np.int32)
    path = write_labels_tiff(tmp_path / "labels.tif", labels, 0.137)
    read, pixel_size = read_labels_tiff(path)
    np.testing.assert_array_equal(read, labels)
    assert read.dtype == np.int32
    assert pixel_size == pytest.approx(0.137, abs=1e-6)
    with tifffile.TiffFile(path) as tif:
        assert tif.is_imagej
        assert tif.imagej_metadata["unit"] == "um"
        assert tif.pages.first.dtype == np.uint16


def test_labels_tiff_uncalibrated_and_out_of_range(tmp_path):
    labels = np.arange(12, dtype=np.int32).reshape(3, 4)
    _, pixel_size = read_labels_tiff(write_labels_tiff(tmp_path / "a.tif", labels, None))
    assert pixel_size is None
    with pytest.raises(ValueError, match="65535"):
        write_labels_tiff(tmp_path / "b.tif", labels + 70000, 1.0)


def test_maps_tiff_shape_dtype_and_labels(tmp_path):
    maps = np.random.default_rng(1).random((3, 11, 13)).astype(np.float32)
    path = write_maps_tiff(tmp_path / "maps.tif", maps, 0.5, ["Fe", "Si", "O"])
    with tifffile.TiffFile(path) as tif:
        data = tif.asarray()
        assert tif.imagej_metadata["Labels"] == ["Fe", "Si", "O"]
        assert tif.imagej_metadata["unit"] == "um"
    assert data.shape == (3, 11, 13) and data.dtype == np.float32
    np.testing.assert_array_equal(data, maps)


def test_spectra_csv_header_and_energy_column(tmp_path):
    axis = EnergyAxis(offset=-0.2, scale=0.01, size=50)
    spectra = np.random.default_rng(2).random((2, 50))
    path = write_spectra_csv(tmp_path / "s.csv", axis, spectra, ["P1 Si-O", "P2, Fe"])
    with path.open() as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["energy_keV", "P1 Si-O", "P2, Fe"]
    table = np.array(rows[1:], dtype=float)
    np.testing.assert_allclose(table[:, 0], axis.energies, atol=1e-6)
    np.testing.assert_allclose(table[:, 1:].T, spectra, rtol=1e-7)


def test_stats_csv_rows(tmp_path):
    result = fake_result()
    table = phase_table(result.labels, result.image.counts, result.intensities, LINES, 0.2)
    path = write_stats_csv(tmp_path / "stats.csv", table)
    with path.open() as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0])[:8] == ["phase_id", "name", "pixels", "area_fraction", "area_um2",
                                 "n_regions", "largest_region_px", "main_elements"]  # fmt: skip
    assert [k for k in rows[0] if k.startswith("mean_")] == [f"mean_{n}" for n in LINES]
    assert [int(r["pixels"]) for r in rows] == [int((result.labels == k).sum()) for k in (1, 2, 3)]
    assert float(rows[2]["area_um2"]) == pytest.approx(20 * 0.04)
    assert rows[2]["n_regions"] == "1" and rows[2]["largest_region_px"] == "20"


def test_run_json_converts_numpy_and_dataclasses(tmp_path):
    info = {
        "settings": FakeSettings(),
        "shape": np.array([2, 3]),
        "value": np.float32(1.5),
        "criterion": {np.int64(2): 1.0, 3: float("nan")},
        "path": Path("x/y.bcf"),
    }
    loaded = json.loads(write_run_json(tmp_path / "run.json", info).read_text())
    assert loaded == {
        "settings": {"seed": 3, "bin_factor": 1, "device": "cpu"},
        "shape": [2, 3],
        "value": 1.5,
        "criterion": {"2": 1.0, "3": None},
        "path": str(Path("x/y.bcf")),
    }
    assert to_jsonable((1, {2})) == [1, [2]]


def test_export_result_writes_all_files(tmp_path):
    result = fake_result()
    paths = export_result(result, tmp_path / "out")
    assert set(paths) == set(EXPORT_FILES)
    for path in paths.values():
        assert path.is_file() and path.stat().st_size > 0
    labels, pixel_size = read_labels_tiff(paths["phases"])
    np.testing.assert_array_equal(labels, result.labels)
    assert pixel_size == pytest.approx(0.2, abs=1e-6)
    with tifffile.TiffFile(paths["abundances"]) as tif:
        abundances = tif.asarray()
    np.testing.assert_array_equal(abundances, np.moveaxis(result.abundances, -1, 0))
    with paths["phase_spectra"].open() as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["energy_keV", *result.phase_names]
    mean_p3 = result.image.counts[result.labels == 3].mean(axis=0)
    np.testing.assert_allclose(np.array(rows[1:], dtype=float)[:, 3], mean_p3, rtol=1e-7)
    run = json.loads(paths["run"].read_text())
    assert run["seed"] == 3 and run["n_phases"] == 3 and run["lines"] == list(LINES)
    assert run["shape"] == [24, 30, 200] and run["timings_s"]["latent"] == 2.0
    assert run["input"] == "fake.bcf" and run["device"] == "cpu"


def test_export_uses_the_results_phase_sums_and_writes_the_same_files(tmp_path):
    result = fake_result()
    counts = result.image.counts
    result.phase_spectra = np.stack(
        [counts[result.labels == k].sum(axis=0, dtype=np.float64) for k in (1, 2, 3)]
    )
    own = export_result(result, tmp_path / "own")  # the result's sums: no pass over the cube
    summed = export_result(result, tmp_path / "summed", labels=result.labels.copy())
    for key in ("phase_stats", "phase_spectra"):
        assert own[key].read_bytes() == summed[key].read_bytes()
    result.phase_spectra = result.phase_spectra.astype(np.float32)  # not exact: summed again
    again = export_result(result, tmp_path / "again")
    assert again["phase_spectra"].read_bytes() == summed["phase_spectra"].read_bytes()


def test_export_with_edited_labels_names_new_phase(tmp_path):
    result = fake_result()
    edited = result.labels.copy()
    edited[20:, :5] = 7
    paths = export_result(result, tmp_path, labels=edited)
    np.testing.assert_array_equal(read_labels_tiff(paths["phases"])[0], edited)
    with paths["phase_stats"].open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["phase_id"] for r in rows] == ["1", "2", "3", "7"]
    assert rows[3]["name"].startswith("P7") and rows[3]["pixels"] == "20"
    with paths["phase_spectra"].open() as handle:
        assert next(csv.reader(handle))[-1] == rows[3]["name"]


def test_export_after_a_merge_writes_only_live_phases(tmp_path):
    result = fake_result()
    merged = result.labels.copy()
    merged[merged == 3] = 1  # phase 3 merged into phase 1: no pixel left
    paths = export_result(result, tmp_path, labels=merged)
    with paths["phase_stats"].open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["phase_id"] for r in rows] == ["1", "2"]
    assert [r["name"] for r in rows] == result.phase_names[:2]
    with paths["phase_spectra"].open() as handle:
        assert next(csv.reader(handle)) == ["energy_keV", *result.phase_names[:2]]


def test_report_png_is_valid(tmp_path):
    result = fake_result()
    path = render_report(result, tmp_path / "report.png")
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert 1000 <= width <= 2500 and 400 <= height <= 1200
    uncalibrated = fake_result(pixel_unit="px")
    assert render_report(uncalibrated, tmp_path / "r2.png").read_bytes()[:8] == PNG_SIGNATURE


def test_nice_scale_bar():
    assert nice_scale_bar(6.0) == 1.0
    assert nice_scale_bar(100.0) == 20.0
    assert nice_scale_bar(0.3) == pytest.approx(0.05)


def test_phase_stats_abundance_is_the_maps_unmixed_sum_not_a_sum_of_pixel_fits(tmp_path):
    """At 30 counts per pixel a non-negative fit of every pixel gives every phase a positive
    share of it: summed, a 3.6 % phase read ~9.7 % (its former column). The column is now the
    solve of the mineralogy report (the map's sum spectrum unmixed onto the phases' spectra)."""
    from napari_sigma.compute.progress import run_to_completion
    from napari_sigma.io.mineral_report.mineralogy import abundance_fractions
    from napari_sigma.unmixing.fractions import phase_fractions

    rng = np.random.default_rng(0)
    result = fake_result()
    channels = np.arange(200)
    spectra = np.stack([0.2 + np.exp(-0.5 * ((channels - c) / 3.0) ** 2) for c in (40, 80, 60)])
    spectra /= spectra.sum(axis=1, keepdims=True)
    labels = np.ones((40, 50), np.int32)
    labels[:, 30:] = 2
    labels[5:11, 5:11] = 3
    labels[30:36, 40:46] = 3
    counts = rng.poisson(30 * spectra[labels - 1]).astype(np.uint16)
    result.image = SpectrumImage(counts=counts, energy=result.image.energy, beam_energy=8.0,
                                 pixel_size=0.2, title="low dose", source=Path("low.bcf"))  # fmt: skip
    result.labels, result.intensities = labels, np.ones((40, 50, len(LINES)), np.float32)
    result.abundances = np.ones((40, 50, 2), np.float32)
    sums = np.stack([counts[labels == k].sum(axis=0) for k in (1, 2, 3)]).astype(np.float64)
    pixels = np.bincount(labels.ravel())[1:]
    result.phase_fractions = run_to_completion(phase_fractions(counts, sums, pixels, device="cpu"))
    paths = export_result(result, tmp_path)
    with paths["phase_stats"].open() as handle:
        found = np.array([float(r["area_fraction_abundance"]) for r in csv.DictReader(handle)])
    np.testing.assert_allclose(found, abundance_fractions(result.image, labels, 3), rtol=1e-12)
    truth = pixels / labels.size  # pure pixels: the label areas are the truth
    assert np.abs(found - truth).max() < 0.01
    per_pixel = result.phase_fractions.reshape(-1, 3).mean(axis=0)
    assert np.abs(per_pixel - truth).max() > 0.05  # what the column held before


def test_report_and_minerals_made_in_a_child_process_give_the_same_files(tmp_path, monkeypatch):
    """The GUI's export draws report.png and makes the mineral report in a child process (their
    C calls hold no GIL of napari's): every exported file is byte-identical to the export made
    in this process."""
    import napari_sigma.io.mineral_report.mineralogy as mineralogy
    import napari_sigma.io.results.report as report
    from napari_sigma.io.results.child import ChildError, ChildProcess

    result = fake_result()
    result.settings = SimpleNamespace(**vars(result.settings))  # the child imports its class
    here = export_result(result, tmp_path / "here")
    assert "modal" in here  # the mineral report was made: its files are compared too

    def not_here(*args, **kwargs):
        raise AssertionError("made in this process")

    monkeypatch.setattr(report, "render_report", not_here)
    monkeypatch.setattr(mineralogy, "write_mineral_report", not_here)
    child = export_result(result, tmp_path / "child", draw_in_process=True)
    assert set(child) == set(here)
    for key, path in here.items():
        assert child[key].read_bytes() == path.read_bytes(), key

    process = ChildProcess()
    with pytest.raises(ChildError, match=r"render_report: FileNotFoundError"):
        process.call("render_report", result, tmp_path / "missing" / "report.png")
    with pytest.raises(ChildError, match=r"render_report: ModuleNotFoundError"):
        process.call("render_report", fake_result(), tmp_path / "r.png")  # a class of this test
    process.close()
    process = ChildProcess()  # given no call: stopped by close
    process.close()
    assert process._process.poll() is not None


def test_the_phase_statistics_of_edited_labels_are_made_in_the_child_with_the_same_files(
    tmp_path, monkeypatch
):
    """Edited labels (the GUI's export) need a pass over the cube for the phase statistics: with
    a child process it runs there (its numpy and dask calls held napari's GIL: a 190 ms freeze
    during a JEOL export), and every file is byte-identical to the export made here."""
    import napari_sigma.io.results.export as export

    result = fake_result()
    result.settings = SimpleNamespace(**vars(result.settings))
    labels = np.array(result.labels, copy=True)
    labels[:2, :3] = 2  # an edit: the result's phase sums no longer apply
    names = [f"edited {k}" for k in range(1, int(labels.max()) + 1)]
    here = export_result(result, tmp_path / "here", labels=labels, names=names)

    def not_here(*args, **kwargs):
        raise AssertionError("phase statistics made in this process")

    monkeypatch.setattr(export, "phase_table_steps", not_here)
    monkeypatch.setattr(export, "phase_table", not_here, raising=False)
    child = export_result(
        result, tmp_path / "child", labels=labels, names=names, draw_in_process=True
    )
    assert set(child) == set(here)
    for key, path in here.items():
        assert child[key].read_bytes() == path.read_bytes(), key


def test_the_mineral_report_child_gets_the_analysis_depth_map():
    """The child's mineral report reads the analysis' distance transform too (else it would
    compute it again: same numbers, slower)."""
    from napari_sigma.io.results.export import mineral_inputs

    result = SimpleNamespace(labels=np.ones((2, 2), np.int32), core_depth=np.zeros((2, 2)))
    assert mineral_inputs(result).core_depth is result.core_depth


@pytest.mark.parametrize("executable", ["/bin/false", "/nonexistent/python"])
def test_an_export_whose_child_process_dies_or_cannot_start_writes_the_same_files_here(
    tmp_path, monkeypatch, executable
):
    """A child that exits before answering (/bin/false) or cannot be started at all: the export
    makes report.png and the mineral report in this process instead, the same files."""
    import napari_sigma.io.results.child as child_module

    result = fake_result()
    result.settings = SimpleNamespace(**vars(result.settings))
    here = export_result(result, tmp_path / "here")
    monkeypatch.setattr(child_module.sys, "executable", executable)
    fallback = export_result(result, tmp_path / "fallback", draw_in_process=True)
    assert set(fallback) == set(here)
    for key, path in here.items():
        assert fallback[key].read_bytes() == path.read_bytes(), key


def _same_named_edit():
    """A synthetic map's result and an edit that splits quartz in two and moves some albite
    pixels into the new half: two phases of one name, told apart with their pixels' scatter
    (the line dispersions, read of the cube at their cores)."""
    from napari_sigma.synthetic.generator import make_synthetic

    sample = make_synthetic(seed=3, shape=(48, 48), phases=("quartz", "albite", "magnetite"),
                            counts_per_pixel=150, n_channels=1024)  # fmt: skip
    rng = np.random.default_rng(0)
    result = fake_result()
    result.image = sample.image
    result.labels = np.asarray(sample.labels, np.int32)
    result.lines = tuple(sample.lines)
    result.intensities = rng.random((48, 48, len(sample.lines))).astype(np.float32)
    result.abundances = rng.random((48, 48, 2)).astype(np.float32)
    result.components = rng.random((2, 1024))
    result.settings = SimpleNamespace(**vars(result.settings))
    labels = result.labels.copy()
    labels[(labels == 1) & (np.arange(48)[None, :] >= 24)] = 4
    ys, xs = np.nonzero(labels == 2)
    pick = rng.random(ys.size) < 0.15
    labels[ys[pick], xs[pick]] = 4
    return result, labels


def test_identify_phases_given_the_line_dispersions_names_and_notes_as_reading_the_cube():
    """``identify_phases(dispersion=...)`` given every element's dispersion of every phase
    (what the export measures where the cube is, for a child without it) gives the phases
    reading the cube gives; the values are used (all 1: another chi-square)."""
    from napari_sigma.compute.progress import run_to_completion
    from napari_sigma.minerals.interiors import interior_labels
    from napari_sigma.minerals.phases import elements_of_lines, identify_phases
    from napari_sigma.minerals.same_names import phase_line_dispersions
    from napari_sigma.xray.lines import ELEMENTS

    result, labels = _same_named_edit()
    ids, elements = [1, 2, 3, 4], elements_of_lines(result.lines)

    def identified(**given):
        computation = identify_phases(result.image, labels, elements, phase_ids=ids, **given)
        return [(m.mineral, m.qualifier, m.quantification.notes)
                for m in run_to_completion(computation)]  # fmt: skip

    every = {pid: list(ELEMENTS) for pid in ids}  # what the export's cube_sums measures
    measured = phase_line_dispersions(result.image, interior_labels(labels), every)
    reading = identified()
    assert reading[0][0] == reading[3][0] == "quartz"
    assert "composition equal to P1's" in reading[3][2][-1]  # the two were compared
    assert identified(dispersion=measured) == reading
    ones = {pid: dict.fromkeys(found, 1.0) for pid, found in measured.items()}
    assert identified(dispersion=ones) != reading


def test_a_cube_too_large_for_the_child_has_its_mineral_report_made_there_with_the_same_files(
    tmp_path, monkeypatch
):
    """A cube above CHILD_CUBE_BYTES (1024² x 2048: 4 GiB) cannot be sent to the export's child:
    the mineral report of edited labels (the identification and the tables: seconds of Python,
    which held napari's GIL in turns) is made there on the cube's sums made here
    (``cube_sums``: core and deep sums, the map's sum, the host correction, the line
    dispersions of two phases of one name); every file is byte-identical to the export made in
    this process, and neither the report nor the abundances run here."""
    import napari_sigma.io.mineral_report.mineralogy as mineralogy
    import napari_sigma.io.results.export as export

    result, labels = _same_named_edit()
    names = [f"edited {k}" for k in range(1, 5)]
    here = export_result(result, tmp_path / "here", labels=labels, names=names)
    quant = here["phase_quant"].read_text()
    assert "composition equal to P1's" in quant  # the same-name test ran, with dispersions

    def not_here(*args, **kwargs):
        raise AssertionError("made in this process")

    monkeypatch.setattr(export, "CHILD_CUBE_BYTES", 0)  # this cube counts as too large
    for name in ("write_mineral_report", "label_abundances", "abundance_fractions"):
        monkeypatch.setattr(mineralogy, name, not_here)
    child = export_result(
        result, tmp_path / "child", labels=labels, names=names, draw_in_process=True
    )
    assert set(child) == set(here)
    for key, path in here.items():
        assert child[key].read_bytes() == path.read_bytes(), key
