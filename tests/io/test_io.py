"""Reading real vendor EDS files and synthetic ones written with rosettasciio's writers."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from napari_sigma.errors import NotASpectrumImageError, SpectrumImageError
from napari_sigma.io.readers import _rsciio as rh
from napari_sigma.io.readers.reading import (
    SUPPORTED_EXTENSIONS,
    is_supported,
    read_any,
    read_spectrum,
    read_spectrum_image,
)
from napari_sigma.spectrum_image import Spectrum, SpectrumImage
from sigma_testdata import rsciio_signal


@functools.cache
def _read_image(path: Path, lazy: bool = False) -> SpectrumImage:
    """Read once per test session: some rsciio readers are slow (Phenom, JEOL lazy)."""
    return read_spectrum_image(path, lazy=lazy)


@dataclass(frozen=True)
class Expected:
    """Ground truth from ../shared/data/eds/README.md (scale/offset rounded there)."""

    kind: str  # "image", "spectrum" or "error"
    shape: tuple[int, ...] = ()
    dtype: str = ""
    scale: float = 0.0
    offset: float = 0.0
    kv: float | None = None
    counts_per_pixel: float | None = None  # None: not checked (too costly or not documented)
    error: str = ""  # expected words of the error's cause
    lazy: bool = False  # read lazily (the 2 GiB JEOL cube)


def _image(shape, dtype, scale, offset, kv, cpp=None, lazy=False) -> Expected:
    return Expected("image", shape, dtype, scale, offset, kv, cpp, lazy=lazy)


def _spectrum(shape, dtype, scale, offset, kv) -> Expected:
    return Expected("spectrum", shape, dtype, scale, offset, kv)


def _error(words: str) -> Expected:
    return Expected("error", error=words)


JEOL_VIEW = "jeol/Sample/00_View000/View000_000000"
REAL_FILES: dict[str, Expected] = {
    "bruker/30x30_instructively_packed_16bit_compressed.bcf": _image(
        (30, 30, 2048), "uint16", 0.0100, -0.472, 20, 20690
    ),
    "bruker/P45_the_default_job.bcf": _image((75, 100, 2048), "uint8", 0.0100, -0.472, 20, 22),
    "bruker/Hitachi_TM3030Plus.bcf": _image((240, 320, 2048), "uint8", 0.0100, -0.475, 15, 2.2),
    "bruker/16x16_12bit_packed_8bit.bcf": _image((16, 16, 2048), "uint8", 0.0100, -0.471, 20, 79),
    "bruker/over16bit.bcf": _image((3, 4, 4096), "uint32", 0.0200, -1.901, 10),
    "bruker/test_TEM.bcf": _image((64, 64, 2048), "uint8", 0.0100, -0.475, 200, 6.3),
    "bruker/bruker_nano.spx": _spectrum((4096,), "uint64", 0.0025, -0.239, 15),
    "emd/Test_SI_16x16_215_kx.emd": _image((16, 16, 4096), "uint16", 0.0100, -0.250, 300, 164),
    "emd/Test_SI_16x16_ReducedData_215_kx.emd": _error("no spectrum image in this file"),
    "emd/SI_empty_selection.emd": _image(
        (16, 20, 4096), "uint16", 0.0050, -0.250, 80, 72 / (16 * 20)
    ),
    "jeol/rawdata.ASW": _image((512, 512, 4096), "uint16", 0.0100, -0.961, 200, lazy=True),
    f"{JEOL_VIEW}6.pts": _image((512, 512, 4096), "uint16", 0.0100, -0.961, 200, lazy=True),
    f"{JEOL_VIEW}0.img": _error("unsupported file type '.img'"),
    **{f"{JEOL_VIEW}{i}.map": _error("unsupported file type '.map'") for i in range(1, 6)},
    "jeol/met03.EDS": _spectrum((2048,), "int32", 0.0100, -0.002, 200),
    "phenom/Elid2Version4.elid": _image((16, 16, 2048), "uint32", 0.0099, -0.036, 15),
    "exspy/EDS_SEM_TM002.hspy": _spectrum((1024,), "int32", 0.0100, -0.100, 10),
    "exspy/EDS_TEM_FePt_nanoparticles.hspy": _spectrum((992,), "uint32", 0.0200, 0.169, 200),
}


def _check_calibration(data: SpectrumImage | Spectrum, expected: Expected) -> None:
    assert data.counts.shape == expected.shape
    assert data.counts.dtype == np.dtype(expected.dtype)
    assert data.energy.size == expected.shape[-1]
    assert data.energy.scale == pytest.approx(expected.scale, abs=5e-5)
    assert data.energy.offset == pytest.approx(expected.offset, abs=1e-3)
    assert data.beam_energy == pytest.approx(expected.kv)


def test_every_shared_file_has_an_expectation(SHARED_EDS: Path) -> None:
    on_disk = {
        p.relative_to(SHARED_EDS).as_posix()
        for p in SHARED_EDS.rglob("*")
        if p.is_file() and p.name != "README.md"
    }
    assert on_disk == set(REAL_FILES)


@pytest.mark.parametrize("name", list(REAL_FILES))
def test_real_file(SHARED_EDS: Path, name: str) -> None:
    expected, path = REAL_FILES[name], SHARED_EDS / name
    if expected.kind == "error":
        with pytest.raises(SpectrumImageError) as info:
            read_spectrum_image(path)
        assert expected.error in str(info.value)
        assert path.name in str(info.value)
    elif expected.kind == "spectrum":
        with pytest.raises(NotASpectrumImageError, match="single spectrum"):
            read_spectrum_image(path)
        spectrum = read_any(path)
        assert isinstance(spectrum, Spectrum)
        _check_calibration(spectrum, expected)
    else:
        image = _read_image(path, lazy=expected.lazy)
        _check_calibration(image, expected)
        assert isinstance(image.counts, np.ndarray) != expected.lazy
        if expected.counts_per_pixel is not None:
            mean = image.total_counts().mean()
            assert mean == pytest.approx(expected.counts_per_pixel, rel=0.05)


def test_reduced_velox_file_still_opens_as_a_spectrum(SHARED_EDS: Path) -> None:
    spectrum = read_spectrum(SHARED_EDS / "emd/Test_SI_16x16_ReducedData_215_kx.emd")
    assert spectrum.counts.shape == (4096,)
    assert spectrum.beam_energy == pytest.approx(300)
    assert spectrum.counts.sum() > 0


def test_velox_beam_energy_and_elements_come_from_the_mapping(SHARED_EDS: Path) -> None:
    image = _read_image(SHARED_EDS / "emd/Test_SI_16x16_215_kx.emd")
    # plain rsciio metadata has no instrument section: the mapping supplies the 300 kV
    assert image.beam_energy == pytest.approx(300.0)
    assert set(image.elements) == {"C", "O", "Ca", "Cu"}
    assert image.pixel_unit == "nm"
    assert image.pixel_size == pytest.approx(3.599, abs=1e-3)
    assert set(image.images) == {"HAADF", "C", "Ca", "O", "Cu"}


def test_bruker_p45_has_bse_and_se_images(SHARED_EDS: Path) -> None:
    image = _read_image(SHARED_EDS / "bruker/P45_the_default_job.bcf")
    assert set(image.images) == {"BSE", "SE"}
    assert all(im.shape == (75, 100) for im in image.images.values())
    assert image.elements == ()
    assert image.pixel_unit == "µm"
    assert image.pixel_size == pytest.approx(8.737, abs=1e-3)


def test_bruker_30x30_elements_and_lines_from_metadata(SHARED_EDS: Path) -> None:
    image = _read_image(SHARED_EDS / "bruker/30x30_instructively_packed_16bit_compressed.bcf")
    assert len(image.elements) == 16
    assert {"Th", "Ce", "Si", "O", "Fe"} <= set(image.elements)
    assert "Th_Ma" in image.xray_lines and "Ce_La" in image.xray_lines
    assert image.pixel_size_um == pytest.approx(1.667, abs=1e-3)


def test_tem_pixel_size_in_nm_and_uncalibrated_map_in_px(SHARED_EDS: Path) -> None:
    tem = _read_image(SHARED_EDS / "bruker/test_TEM.bcf")
    assert tem.pixel_unit == "nm" and tem.pixel_size == pytest.approx(0.771, abs=1e-3)
    hitachi = _read_image(SHARED_EDS / "bruker/Hitachi_TM3030Plus.bcf")
    assert (hitachi.pixel_size, hitachi.pixel_unit) == (1.0, "px")
    assert hitachi.pixel_size_um is None


def test_over16bit_keeps_uint32_counts(SHARED_EDS: Path) -> None:
    image = _read_image(SHARED_EDS / "bruker/over16bit.bcf")
    assert image.counts.dtype == np.uint32
    assert image.counts.max() > np.iinfo(np.uint16).max


def test_nearly_empty_velox_map_has_72_counts(SHARED_EDS: Path) -> None:
    image = _read_image(SHARED_EDS / "emd/SI_empty_selection.emd")
    assert int(image.counts.sum()) == 72


def test_phenom_takes_the_first_map_and_says_so(SHARED_EDS: Path) -> None:
    # its reader cannot load lazily: the counts are read, then wrapped in dask
    image = _read_image(SHARED_EDS / "phenom/Elid2Version4.elid", lazy=True)
    assert hasattr(image.counts, "compute")
    assert image.metadata["lazy_from_file"] is False
    assert image.metadata["signal_title"] == "Image 1, Map 3"
    assert "3 spectrum images" in image.metadata["notes"][0]
    assert image.images == {}  # its SEM images have another shape than the map
    assert image.metadata["skipped_images"]["Image 1"] == (16, 20)


def test_jeol_project_images(SHARED_EDS: Path) -> None:
    image = _read_image(SHARED_EDS / "jeol/rawdata.ASW", lazy=True)
    assert set(image.images) == {"IMG1", "C K", "O K", "S K", "Fe K", "Cu K"}
    assert image.pixel_unit == "nm" and image.pixel_size == pytest.approx(8.691, abs=1e-3)


@pytest.mark.parametrize(
    "name", ["bruker/16x16_12bit_packed_8bit.bcf", "emd/Test_SI_16x16_215_kx.emd"]
)
def test_lazy_counts_equal_eager_counts(SHARED_EDS: Path, name: str) -> None:
    eager = _read_image(SHARED_EDS / name)
    lazy = read_spectrum_image(SHARED_EDS / name, lazy=True)
    assert hasattr(lazy.counts, "compute") and not isinstance(lazy.counts, np.ndarray)
    assert lazy.counts.dtype == eager.counts.dtype
    assert int(lazy.counts.sum().compute()) == int(eager.counts.sum())
    np.testing.assert_array_equal(lazy.counts[3:5].compute(), eager.counts[3:5])


def test_read_spectrum_of_a_map_is_its_sum_spectrum(SHARED_EDS: Path) -> None:
    path = SHARED_EDS / "bruker/16x16_12bit_packed_8bit.bcf"
    spectrum = read_spectrum(path)
    counts = _read_image(path).counts
    np.testing.assert_array_equal(spectrum.counts, counts.sum(axis=(0, 1)))
    assert spectrum.beam_energy == pytest.approx(20)


def test_single_spectrum_metadata(SHARED_EDS: Path) -> None:
    spectrum = read_spectrum(SHARED_EDS / "bruker/bruker_nano.spx")
    assert spectrum.elements == ("Fe", "S", "Cu")
    assert spectrum.title == "bruker_nano"


# ----------------------------------------------------------------------------- errors


def test_unknown_extension_lists_the_supported_ones(tmp_path: Path) -> None:
    path = tmp_path / "map.xyz"
    path.write_bytes(b"not a map")
    with pytest.raises(SpectrumImageError, match=r"unsupported file type '\.xyz'.*\.bcf") as info:
        read_any(path)
    assert info.value.path == path


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SpectrumImageError, match="file not found"):
        read_spectrum_image(tmp_path / "absent.bcf")
    with pytest.raises(SpectrumImageError, match="file not found"):
        read_spectrum(tmp_path / "absent.msa")


def test_a_folder_is_not_a_file(tmp_path: Path) -> None:
    folder = tmp_path / "folder.hspy"
    folder.mkdir()
    with pytest.raises(SpectrumImageError, match="not a file"):
        read_any(folder)


@pytest.mark.parametrize(
    ("name", "fraction"),
    [
        ("bruker/P45_the_default_job.bcf", 0.5),  # crashes rsciio's decoder unless checked
        ("bruker/30x30_instructively_packed_16bit_compressed.bcf", 0.9),
        ("bruker/16x16_12bit_packed_8bit.bcf", 0.001),
        ("exspy/EDS_SEM_TM002.hspy", 0.5),
        ("emd/Test_SI_16x16_215_kx.emd", 0.95),
        ("phenom/Elid2Version4.elid", 0.5),  # makes rsciio loop forever unless checked
        ("jeol/met03.EDS", 0.5),
    ],
)
def test_truncated_file_gives_a_clear_error(
    SHARED_EDS: Path, tmp_path: Path, name: str, fraction: float
) -> None:
    content = (SHARED_EDS / name).read_bytes()
    path = tmp_path / Path(name).name
    path.write_bytes(content[: int(len(content) * fraction)])
    with pytest.raises(SpectrumImageError, match="truncated") as info:
        read_any(path)
    assert path.name in str(info.value)


def test_garbage_file_gives_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "noise.emd"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(
        SpectrumImageError,
        match=r"noise\.emd: not an HDF5 file .*not a Thermo Fisher Velox EMD file",
    ):
        read_spectrum_image(path)


def test_missing_optional_package_is_named(tmp_path: Path, monkeypatch) -> None:
    def no_module(name: str):
        raise ModuleNotFoundError(f"No module named {name!r}", name="zarr")

    monkeypatch.setattr(rh, "import_module", no_module)
    path = tmp_path / "map.zspy"
    path.write_bytes(b"not read")  # (an empty file is refused as empty before any reader)
    # in-process: the monkeypatch cannot reach the isolated reader's child process
    with pytest.raises(SpectrumImageError, match="needs the Python package 'zarr'"):
        read_spectrum_image(path, isolate=False)
    with pytest.raises(SpectrumImageError, match=r"map\.zspy"):
        read_spectrum_image(path)  # isolated: the child names what it really misses


# ----------------------------------------------------------------------------- synthetic files


def _signal(data: np.ndarray, axes: list[dict], metadata: dict) -> dict:
    return rsciio_signal(data, axes, metadata)


def _axis(name: str, size: int, scale: float, offset: float, units: str, navigate: bool) -> dict:
    return dict(name=name, size=size, scale=scale, offset=offset, units=units, navigate=navigate)


def _cube(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).poisson(2.0, size=(4, 5, 64)).astype(np.uint16)


def _metadata(kv: float | str = 15.0, signal_type: str = "EDS_SEM") -> dict:
    return {
        "General": {"title": "synthetic"},
        "Signal": {"signal_type": signal_type},
        "Acquisition_instrument": {"SEM": {"beam_energy": kv}},
        "Sample": {"elements": ["Fe", "O"], "xray_lines": ["Fe_Ka", "O_Ka"]},
    }


def _spatial_axes(units: str = "um") -> list[dict]:
    return [_axis("y", 4, 0.25, 0, units, True), _axis("x", 5, 0.25, 0, units, True)]


def test_ripple_file_in_ev_is_converted_to_kev(tmp_path: Path) -> None:
    from rsciio.ripple import file_writer

    cube = _cube()
    axes = [*_spatial_axes("um"), _axis("Energy", 64, 10.0, -200.0, "eV", False)]
    file_writer(str(tmp_path / "map.rpl"), _signal(cube, axes, _metadata()))
    image = read_spectrum_image(tmp_path / "map.rpl")
    np.testing.assert_array_equal(image.counts, cube)
    assert image.counts.dtype == np.uint16
    assert not isinstance(image.counts, np.memmap) and image.counts.flags.writeable
    assert (image.energy.scale, image.energy.offset) == pytest.approx((0.010, -0.200))
    assert (image.pixel_size, image.pixel_unit) == (0.25, "µm")
    assert image.beam_energy == pytest.approx(15.0)


def test_hspy_cube_with_energy_first_is_transposed(tmp_path: Path) -> None:
    from rsciio.hspy import file_writer

    cube = _cube(1)
    energy_first = np.ascontiguousarray(np.moveaxis(cube, -1, 0))
    axes = [_axis("Energy", 64, 0.02, -0.1, "keV", False), *_spatial_axes("nm")]
    file_writer(str(tmp_path / "map.hspy"), _signal(energy_first, axes, _metadata("20")))
    image = read_spectrum_image(tmp_path / "map.hspy")
    np.testing.assert_array_equal(image.counts, cube)
    assert image.beam_energy == pytest.approx(20.0)  # written as a string
    assert image.elements == ("Fe", "O") and image.xray_lines == ("Fe_Ka", "O_Ka")
    assert (image.pixel_size, image.pixel_unit) == (0.25, "nm")


@pytest.mark.parametrize(
    ("energy_axis", "cause"),
    [
        (_axis("Energy", 64, 0.0, 0.0, "keV", False), "invalid energy calibration"),
        (_axis("Energy", 64, -0.01, 0.0, "keV", False), "invalid energy calibration"),
        (_axis("Energy", 64, 1.0, 0.0, "", False), "no energy calibration"),
    ],
)
def test_bad_energy_calibration(tmp_path: Path, energy_axis: dict, cause: str) -> None:
    from rsciio.hspy import file_writer

    path = tmp_path / "bad.hspy"
    file_writer(str(path), _signal(_cube(), [*_spatial_axes(), energy_axis], _metadata()))
    with pytest.raises(SpectrumImageError, match=cause):
        read_spectrum_image(path)


def test_non_eds_cube_is_not_a_spectrum_image(tmp_path: Path) -> None:
    from rsciio.hspy import file_writer

    path = tmp_path / "eels.hspy"
    axes = [*_spatial_axes(), _axis("Energy loss", 64, 0.5, 100.0, "eV", False)]
    file_writer(str(path), _signal(_cube(), axes, _metadata(signal_type="EELS")))
    with pytest.raises(NotASpectrumImageError, match="no spectrum image in this file"):
        read_spectrum_image(path)


def test_msa_spectrum_round_trip(tmp_path: Path) -> None:
    from rsciio.msa import file_writer

    counts = _cube()[0, 0].astype(np.float64)
    axes = [_axis("Energy", 64, 0.01, -0.05, "keV", False)]
    file_writer(str(tmp_path / "spot.msa"), _signal(counts, axes, _metadata(kv=0)))
    spectrum = read_spectrum(tmp_path / "spot.msa")
    np.testing.assert_array_equal(spectrum.counts, counts)
    assert (spectrum.energy.scale, spectrum.energy.offset) == pytest.approx((0.01, -0.05))
    assert spectrum.beam_energy is None  # 0 kV means unknown
    with pytest.raises(NotASpectrumImageError, match="single spectrum"):
        read_spectrum_image(tmp_path / "spot.msa")


# ----------------------------------------------------------------------------- helpers


def test_supported_extensions() -> None:
    assert {".bcf", ".emd", ".spd", ".pts", ".asw", ".elid", ".rpl", ".hspy", ".msa"} <= set(
        SUPPORTED_EXTENSIONS
    )
    assert is_supported("a/b/Map.BCF") and is_supported("rawdata.ASW") and is_supported("x.EDS")
    assert not is_supported("x.raw") and not is_supported("x.tif") and not is_supported("bcf")


def test_apply_mapping_converts_and_skips_failures() -> None:
    original = {
        "Optics": {"AccelerationVoltage": "300000"},
        "Quant": {"abc": {"elementSelection": [26, 8]}},
        "Broken": "x",
    }
    mapping = {
        "Optics.AccelerationVoltage": (
            "Acquisition_instrument.TEM.beam_energy",
            lambda v: float(v) / 1e3,
        ),
        # written like rsciio's Velox element list: needs keys() to be indexable
        "Quant": ("Sample.elements", lambda d: d[d.keys()[0]]["elementSelection"]),
        "Broken": ("General.fails", float),
        "Absent.path": ("General.absent", None),
    }
    metadata = {"General": {"title": "t"}}
    result = rh.apply_mapping(metadata, original, mapping)
    assert result["Acquisition_instrument"]["TEM"]["beam_energy"] == pytest.approx(300.0)
    assert result["Sample"]["elements"] == [26, 8]
    assert result["General"] == {"title": "t"}
    assert metadata == {"General": {"title": "t"}}  # the input is not modified


@pytest.mark.parametrize(
    ("value", "kv"),
    [(20, 20.0), ("200", 200.0), (0, None), ("", None), (15000.0, 15.0), (-5, None)],
)
def test_beam_energy_parsing(value, kv) -> None:
    assert rh.beam_energy_kv({"Acquisition_instrument": {"SEM": {"beam_energy": value}}}) == kv


def test_a_bruker_file_s_detector_description_is_kept(SHARED_EDS: Path) -> None:
    image = _read_image(SHARED_EDS / "bruker" / "P45_the_default_job.bcf")
    described = image.metadata["rsciio_metadata"]["eds_detector"]
    assert described["window_type"] == "slew AP3.3"
    assert described["grid"] == [14, 380.0, 0.23]
    assert [z for z, _ in described["window_layers"]] == [5, 6, 7, 8, 13]
    assert described["dead_layer_um"] == pytest.approx(0.029)
