"""Oxford Instruments ``.h5oina`` files written by the tests from the public specification."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from napari_sigma.errors import NotASpectrumImageError, SpectrumImageError
from napari_sigma.io.readers.reading import is_supported, read_any, read_spectrum_image
from sigma_testdata import write_h5oina


def _cube(shape=(6, 8, 64), seed=0) -> np.ndarray:
    return np.random.default_rng(seed).poisson(3.0, size=shape).astype(np.int32)


def test_spectrum_image_calibration_and_images(tmp_path: Path) -> None:
    cube = _cube()
    path = write_h5oina(tmp_path / "Map Data 1.h5oina", cube, pixel_um=0.25, beam_kv=20.0)
    assert is_supported(path) and is_supported("A.H5OINA")
    image = read_spectrum_image(path)
    np.testing.assert_array_equal(image.counts, cube)
    assert image.counts.dtype == np.int32
    assert (image.energy.offset, image.energy.scale) == pytest.approx((-0.100, 0.010))
    assert image.energy.size == 64
    assert (image.pixel_size, image.pixel_unit) == (pytest.approx(0.25), "µm")
    assert image.beam_energy == pytest.approx(20.0)
    assert image.metadata["format"] == "Oxford Instruments AZtec H5OINA"
    assert image.metadata["reader"] == "napari_sigma.io.h5oina"
    # the 2x finer BSE image is averaged onto the map's pixels
    np.testing.assert_allclose(image.images["BSE"], cube.sum(axis=-1))
    np.testing.assert_allclose(image.images["EDS live time (s)"], 0.01)
    np.testing.assert_allclose(image.images["Total window integral (cps)"], cube.sum(-1) / 0.01)


def test_lazy_read_and_y_fastest_rows(tmp_path: Path) -> None:
    cube = _cube((5, 7, 32), seed=1)
    path = write_h5oina(tmp_path / "m.h5oina", cube, y_fastest=True, electron_factor=3)
    image = read_spectrum_image(path, lazy=True)
    assert hasattr(image.counts, "chunks")
    np.testing.assert_array_equal(image.counts.compute(), cube)
    np.testing.assert_allclose(image.images["BSE"], cube.sum(axis=-1))
    np.testing.assert_array_equal(read_spectrum_image(path).counts, cube)


def test_multidetector_file_uses_the_first_detector(tmp_path: Path) -> None:
    path = write_h5oina(tmp_path / "unity.h5oina", _cube(), detectors=("EDS1", "EDS2"))
    image = read_spectrum_image(path)
    assert image.metadata["signal_title"] == "Map Data 1"
    assert "2 spectrum images" in image.metadata["notes"][0]


def test_missing_beam_voltage_and_line_scan(tmp_path: Path) -> None:
    cube = _cube((1, 12, 16))
    image = read_spectrum_image(write_h5oina(tmp_path / "line.h5oina", cube, beam_kv=None))
    assert image.shape == (1, 12) and image.beam_energy is None


def test_a_file_without_spectra_is_not_a_spectrum_image(tmp_path: Path) -> None:
    path = write_h5oina(tmp_path / "maps only.h5oina", _cube(), with_spectra=False)
    with pytest.raises(NotASpectrumImageError, match=r"maps only\.h5oina.*unprocessed spectrum"):
        read_any(path)


@pytest.mark.parametrize(
    ("content", "cause"),
    [
        (b"not hdf5 at all" * 20, "not an HDF5 file"),
        ("hdf5", "not an H5OINA file"),
        ("cells", "the header announces 9 x 6 pixels"),
        ("calibration", "invalid energy calibration"),
    ],
)
def test_bad_files_fail_with_one_clear_line(tmp_path: Path, content, cause: str) -> None:
    path = tmp_path / "bad.h5oina"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content == "hdf5":
        with h5py.File(path, "w") as h5:
            h5["something"] = 1
    else:
        write_h5oina(path, _cube())
        with h5py.File(path, "a") as h5:
            name = "X Cells" if content == "cells" else "Channel Width"
            value = 9 if content == "cells" else 0.0
            h5[f"1/EDS/Header/{name}"][...] = value
    with pytest.raises(SpectrumImageError, match=cause) as info:
        read_spectrum_image(path)
    assert "bad.h5oina" in str(info.value) and "\n" not in str(info.value)


# ----------------------------------------------------------------------------- as users reach it


@pytest.fixture(scope="module")
def synthetic_h5oina(tmp_path_factory) -> tuple[Path, object]:
    from napari_sigma.synthetic.generator import make_synthetic

    sample = make_synthetic(
        seed=3,
        shape=(40, 48),
        phases=("quartz", "albite", "magnetite"),
        n_channels=1024,
        grain_size=14.0,
    )
    counts = np.asarray(sample.image.counts, dtype=np.int32)
    path = tmp_path_factory.mktemp("oxford") / "Site 1 Map Data 2.h5oina"
    return write_h5oina(path, counts, pixel_um=0.5, channel_ev=10.0, start_ev=-100.0), sample


def test_cli_runs_on_an_h5oina_file(synthetic_h5oina, tmp_path: Path) -> None:
    from napari_sigma.cli import main
    from napari_sigma.io.results.export import read_labels_tiff
    from napari_sigma.metrics import adjusted_rand_index

    path, sample = synthetic_h5oina
    argv = ["run", str(path), "--out", str(tmp_path), "--elements", "auto", "--latent", "pca"]
    assert main(argv) == 0
    labels, pixel_size = read_labels_tiff(tmp_path / path.stem / "phases.tif")
    assert labels.shape == (40, 48) and pixel_size == pytest.approx(0.5)
    assert adjusted_rand_index(sample.labels, labels) > 0.9


@pytest.mark.gui
def test_napari_opens_an_h5oina_file(make_napari_viewer, npe2pm, synthetic_h5oina) -> None:
    from napari_sigma._napari import state

    path, sample = synthetic_h5oina
    with npe2pm.tmp_plugin(package="napari-sigma-eds"):
        viewer = make_napari_viewer()
        viewer.open(str(path), plugin="napari-sigma-eds")
    roles = {layer.name: state.role_of(layer) for layer in viewer.layers}
    (total,) = [layer for layer in viewer.layers if roles[layer.name] == "total"]
    (cube,) = [layer for layer in viewer.layers if roles[layer.name] == "cube"]
    assert cube.data.shape == (1024, 40, 48)
    assert total.scale[-1] == pytest.approx(0.5) and str(total.units[-1]) in {"µm", "micrometer"}
    np.testing.assert_allclose(total.data, np.asarray(sample.image.counts).sum(axis=-1))
    assert any(name.endswith("BSE") for name in roles)


def test_lispix_ripple_export_as_oxford_inca_writes_it(tmp_path: Path) -> None:
    """Oxford's older export: a Lispix ``.rpl`` header (tab-separated keys, the energy only as
    ``ev-per-chan``, no signal type) beside a raw ``.raw`` cube recorded by vector."""
    cube = _cube((6, 8, 64), seed=4).astype("<u2")
    (tmp_path / "inca.raw").write_bytes(cube.tobytes())
    header = {
        "key": "value",
        "width": 8,
        "height": 6,
        "depth": 64,
        "offset": 0,
        "data-length": 2,
        "data-type": "unsigned",
        "byte-order": "little-endian",
        "record-by": "vector",
        "ev-per-chan": 10,
    }
    text = "".join(f"{key}\t{value}\n" for key, value in header.items())
    (tmp_path / "inca.rpl").write_text(text, encoding="latin-1")
    image = read_spectrum_image(tmp_path / "inca.rpl")
    np.testing.assert_array_equal(image.counts, cube)
    assert image.energy.scale == pytest.approx(0.010) and image.energy.offset == 0.0
    assert image.pixel_unit == "px" and image.beam_energy is None
