"""An incomplete copy of a file opens with one line naming it and what is wrong (qa24's sweep of
broken copies of every format through napari): empty files, truncated HDF5 containers (.emd,
.hspy, .h5oina), a .rpl without its whole .raw."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from napari_sigma.errors import SpectrumImageError
from napari_sigma.io.readers.containers import hdf5_end_of_file
from napari_sigma.io.readers.reading import read_any, read_spectrum_image
from sigma_testdata import rsciio_signal, write_h5oina


def _cube(shape=(6, 7, 64)) -> np.ndarray:
    return np.random.default_rng(0).poisson(3.0, shape).astype(np.uint16)


def _signal(data: np.ndarray) -> dict:
    axes = [
        {"name": "y", "size": data.shape[0], "scale": 0.5, "offset": 0.0, "units": "µm"},
        {"name": "x", "size": data.shape[1], "scale": 0.5, "offset": 0.0, "units": "µm"},
        {"name": "E", "size": data.shape[2], "scale": 0.02, "offset": -0.1, "units": "keV"},
    ]
    for axis, navigate in zip(axes, (True, True, False), strict=True):
        axis["navigate"] = navigate
    metadata = {
        "General": {"title": "cube"},
        "Signal": {"signal_type": "EDS_SEM"},
        "Acquisition_instrument": {"SEM": {"beam_energy": 15.0}},
    }
    return rsciio_signal(data, axes, metadata)


def _hspy(path: Path) -> Path:
    from rsciio.hspy import file_writer

    file_writer(str(path), _signal(_cube()))
    return path


def _cut(source: Path, path: Path, fraction: float) -> int:
    content = source.read_bytes()
    path.write_bytes(content[: int(len(content) * fraction)])
    return len(content)


@pytest.mark.parametrize("fraction", [0.02, 0.5, 0.999])
@pytest.mark.parametrize("kind", ["emd", "hspy", "h5oina"])
def test_a_truncated_hdf5_container_says_how_much_of_it_is_there(
    SHARED_EDS: Path, tmp_path: Path, kind: str, fraction: float
) -> None:
    # HDF5's own refusal: "truncated file: eof = 40464, sblock->base_addr = 0, stored_eof = ..."
    source = {
        "emd": SHARED_EDS / "emd" / "Test_SI_16x16_215_kx.emd",
        "hspy": _hspy(tmp_path / "whole.hspy"),
        "h5oina": write_h5oina(tmp_path / "whole.h5oina", _cube()),
    }[kind]
    path = tmp_path / f"cut.{kind}"
    whole = _cut(source, path, fraction)
    with pytest.raises(SpectrumImageError) as info:
        read_any(path)
    message = str(info.value)
    size = path.stat().st_size
    assert message.endswith(
        f"cut.{kind}: the file is truncated: {size} bytes of the {whole} its header announces"
    ), message
    assert "\n" not in message


@pytest.mark.parametrize("libver", ["earliest", "latest"])
@pytest.mark.parametrize("userblock", [0, 512])
def test_the_end_of_file_is_read_from_each_superblock_version(
    tmp_path: Path, libver: str, userblock: int
) -> None:
    # h5py writes superblock version 0 by default and version 3 with libver="latest"; a user
    # block puts the signature at 512 bytes
    path = tmp_path / "map.hspy"
    with h5py.File(path, "w", libver=libver, userblock_size=userblock) as h5:
        h5["data"] = _cube()
    size = path.stat().st_size
    assert hdf5_end_of_file(path) == size
    _cut(path, tmp_path / "cut.hspy", 0.8)
    assert hdf5_end_of_file(tmp_path / "cut.hspy") == size


@pytest.mark.parametrize("suffix", [".bcf", ".emd", ".elid", ".pts", ".hspy", ".h5oina", ".spd"])
def test_an_empty_file_is_called_empty(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"empty{suffix}"
    path.write_bytes(b"")
    with pytest.raises(SpectrumImageError, match=r"empty\.\w+: the file is empty \(0 bytes\)"):
        read_any(path)


def test_not_an_hdf5_file_names_the_format_its_extension_promised(tmp_path: Path) -> None:
    path = tmp_path / "noise.h5oina"
    path.write_bytes(np.random.default_rng(1).bytes(4096))
    with pytest.raises(SpectrumImageError) as info:
        read_any(path)
    assert str(info.value).endswith(
        "noise.h5oina: not an HDF5 file (no HDF5 signature): not an Oxford Instruments AZtec "
        "H5OINA file, or corrupt"
    )


def _ripple(folder: Path) -> tuple[Path, np.ndarray]:
    from rsciio.ripple import file_writer

    folder.mkdir()
    cube = _cube()
    file_writer(str(folder / "map.rpl"), _signal(cube))
    return folder / "map.rpl", cube


def test_a_ripple_header_without_its_raw_names_the_missing_file(tmp_path: Path) -> None:
    # rosettasciio: 'RAW file "" does not exists'
    rpl, _ = _ripple(tmp_path / "copy")
    rpl.with_suffix(".raw").unlink()
    with pytest.raises(SpectrumImageError) as info:
        read_any(rpl)
    assert str(info.value).endswith(
        "map.rpl: its data file map.raw is missing (a .rpl is the header of the .raw beside it: "
        "copy both)"
    )


def test_a_short_raw_is_called_truncated_and_a_whole_one_reads(tmp_path: Path) -> None:
    # rosettasciio: "mmap length is greater than file size"
    rpl, cube = _ripple(tmp_path / "copy")
    np.testing.assert_array_equal(np.asarray(read_spectrum_image(rpl).counts), cube)
    raw = rpl.with_suffix(".raw")
    whole = _cut(raw, raw, 0.6)
    with pytest.raises(SpectrumImageError) as info:
        read_any(rpl)
    size = raw.stat().st_size
    assert str(info.value).endswith(
        f"map.rpl: its data file map.raw is truncated: {size} bytes of the {whole} the header "
        "describes"
    )
