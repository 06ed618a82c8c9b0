"""An .hspy read with h5py alone gives rosettasciio's signals and the same image, or declines."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest

from napari_sigma.io.readers import _rsciio as rh
from napari_sigma.io.readers import hspy_direct, reading

rsciio_hspy = pytest.importorskip("rsciio.hspy")


def _axis(name: str, size: int, scale: float, units: str, navigate: bool) -> dict:
    return {
        "name": name,
        "size": size,
        "scale": scale,
        "offset": 0.0,
        "units": units,
        "navigate": navigate,
    }


def _write(path: Path, metadata: dict | None = None, original: dict | None = None, **options):
    """A 24 x 20 x 64 EDS cube (uint16) written by rosettasciio's own writer, with metadata
    of every kind the format encodes."""
    counts = np.random.default_rng(3).poisson(4.0, (24, 20, 64)).astype(np.uint16)
    energy = _axis("Energy", 64, 0.02, "keV", False)
    energy["offset"] = -0.1
    signal = {
        "data": counts,
        "axes": [_axis("y", 24, 0.5, "µm", True), _axis("x", 20, 0.5, "µm", True), energy],
        "metadata": metadata
        or {
            "General": {"title": "a map", "original_filename": "a map.bcf", "notes": None},
            "Signal": {"signal_type": "EDS_SEM", "quantity": "X-rays (Counts)"},
            "Sample": {
                "elements": ["Fe", "O", "Si"],
                "xray_lines": ["Fe_Ka", "O_Ka"],
                "thickness": 100.0,
                "tags": [],
                "pair": ("Fe", 2),
            },
            "Acquisition_instrument": {
                "SEM": {
                    "beam_energy": 15.0,
                    "tilt_stage": 0.0,
                    "Detector": {
                        "EDS": {
                            "azimuth_angle": 45.0,
                            "elevation_angle": 35.0,
                            "live_time": 1.5,
                            "energy_resolution_MnKa": 130.0,
                            "shadowed": False,
                        }
                    },
                },
            },
        },
        "original_metadata": original
        or {
            "Header": {
                "Operator": "ü",
                "Layers": [{"Z": 6, "t": 0.01}, {"Z": 13, "t": 0.02}],
                "Flags": [True, False],
                "Raw": b"\x00\x01",
            }
        },
        "tmp_parameters": {},
        "attributes": {"_lazy": False},
        "package_info": {"name": "napari-sigma", "version": "0"},
        "learning_results": {},
        "models": {},
    }
    options.setdefault("compression", None)
    rsciio_hspy.file_writer(str(path), signal, show_progressbar=False, **options)
    return counts


def _same(ours, theirs, where="") -> list[str]:
    if type(ours) is not type(theirs):
        return [f"{where}: {type(ours).__name__} vs {type(theirs).__name__}"]
    if isinstance(ours, dict):
        if list(ours) != list(theirs):
            return [f"{where}: keys {list(ours)} vs {list(theirs)}"]
        return [m for k in ours for m in _same(ours[k], theirs[k], f"{where}.{k}")]
    if isinstance(ours, list | tuple):
        if len(ours) != len(theirs):
            return [f"{where}: {len(ours)} vs {len(theirs)} items"]
        return [
            m
            for i, pair in enumerate(zip(ours, theirs, strict=True))
            for m in _same(*pair, f"{where}[{i}]")
        ]
    if isinstance(ours, np.ndarray):
        same = ours.dtype == theirs.dtype and np.array_equal(ours, theirs)
        return [] if same else [f"{where}: {ours!r} vs {theirs!r}"]
    return [] if ours == theirs else [f"{where}: {ours!r} vs {theirs!r}"]


@pytest.mark.parametrize("chunks", [None, (5, 20, 64), (24, 20, 8)])
def test_the_signals_are_rosettasciio_s_with_the_dataset_as_data(tmp_path, chunks) -> None:
    path = tmp_path / "map.hspy"
    counts = _write(path, **({} if chunks is None else {"chunks": chunks}))
    opened = hspy_direct.open_signals(path)
    assert opened is not None
    file, ours = opened
    theirs = rsciio_hspy.file_reader(str(path), lazy=True)
    try:
        assert len(ours) == len(theirs) == 1
        ours_data, theirs_data = ours[0].pop("data"), theirs[0].pop("data")
        assert isinstance(ours_data, h5py.Dataset)
        np.testing.assert_array_equal(ours_data[()], counts)
        assert ours_data.dtype == theirs_data.dtype and ours_data.shape == theirs_data.shape
        assert hspy_direct.n_chunks(ours_data) == theirs_data.npartitions
        assert _same(ours[0], theirs[0]) == []
        assert ours[0]["original_metadata"]["Header"]["Raw"] == b"\x00\x01"  # read as written
    finally:
        file.close()


def test_the_read_gives_the_image_of_the_rosettasciio_read(tmp_path, monkeypatch) -> None:
    path = tmp_path / "map.hspy"
    counts = _write(path, chunks=(5, 20, 64))
    own = reading.read_spectrum_image(path, isolate=False)
    with monkeypatch.context() as patched:
        patched.setattr(hspy_direct, "open_signals", lambda path: None)
        usual = reading.read_spectrum_image(path, isolate=False)
    np.testing.assert_array_equal(own.counts, counts)
    assert own.counts.dtype == usual.counts.dtype == np.uint16
    np.testing.assert_array_equal(own.counts, usual.counts)
    fields = ("energy", "beam_energy", "pixel_size", "pixel_unit", "elements", "xray_lines")
    assert [getattr(own, f) for f in fields] == [getattr(usual, f) for f in fields]
    assert own.title == usual.title and own.images.keys() == usual.images.keys()
    assert _same(own.metadata, usual.metadata) == []
    assert own.metadata["rsciio_metadata"]["Acquisition_instrument"]["SEM"]["beam_energy"] == 15.0


def test_rosettasciio_is_not_called_for_a_file_read_with_h5py(tmp_path, monkeypatch) -> None:
    path = tmp_path / "map.hspy"
    _write(path, chunks=(5, 20, 64))

    def refused(*args, **kwargs):
        raise AssertionError("rosettasciio was called")

    monkeypatch.setattr(rh, "call_reader", refused)
    image = reading.read_spectrum_image(path, isolate=False)
    assert image.counts.shape == (24, 20, 64)


@pytest.mark.parametrize(
    "case",
    ["array in the metadata", "newer format", "models", "one chunk"],
)
def test_layouts_it_does_not_know_are_read_by_rosettasciio(tmp_path, monkeypatch, case) -> None:
    path = tmp_path / "map.hspy"
    original = {"Spectrum": {"values": np.arange(5.0)}} if case == "array in the metadata" else None
    counts = _write(path, original=original, chunks=None if case == "one chunk" else (5, 20, 64))
    if case == "newer format":
        with h5py.File(path, "a") as file:
            file.attrs["file_format_version"] = "3.9"
    if case == "models":
        with h5py.File(path, "a") as file:
            file.require_group("Analysis/models/a model")
    calls = []
    real = rh.call_reader
    monkeypatch.setattr(rh, "call_reader", lambda *a: calls.append(1) or real(*a))
    if case != "one chunk":
        assert hspy_direct.open_signals(path) is None
    image = reading.read_spectrum_image(path, isolate=False)
    assert calls  # rosettasciio read it
    np.testing.assert_array_equal(image.counts, counts)


def test_a_single_spectrum_file_is_still_refused_as_before(tmp_path) -> None:
    path = tmp_path / "spectrum.hspy"
    signal = {
        "data": np.arange(64, dtype=np.uint16),
        "axes": [_axis("Energy", 64, 0.02, "keV", False)],
        "metadata": {"General": {"title": "s"}, "Signal": {"signal_type": "EDS_SEM"}},
        "original_metadata": {},
        "tmp_parameters": {},
        "attributes": {"_lazy": False},
        "package_info": {"name": "napari-sigma", "version": "0"},
        "learning_results": {},
        "models": {},
    }
    rsciio_hspy.file_writer(str(path), signal, show_progressbar=False)
    with pytest.raises(reading.NotASpectrumImageError, match="single spectrum"):
        reading.read_spectrum_image(path, isolate=False)


def test_the_reading_child_s_read_imports_neither_rosettasciio_nor_dask(tmp_path) -> None:
    """What the reading child of ``napari-sigma run`` does for an ``.hspy``, in a fresh
    interpreter: the cube decoded into shared memory with none of those imports."""
    path = tmp_path / "map.hspy"
    counts = _write(path, chunks=(5, 20, 64))
    np.save(tmp_path / "counts.npy", counts)
    script = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        import numpy as np
        from napari_sigma.io.readers import reading
        from napari_sigma.io.reading_process import shared_arrays as sa
        image, probe = reading.read_within_steps(
            Path({str(path)!r}), 2**40, 2**40, sa._shared_array, sa._write_shared, 0)
        expected = np.load({str(tmp_path / "counts.npy")!r})
        assert np.array_equal(image.counts, expected), "counts"
        assert probe["shape"] == (24, 20, 64), probe
        print(sorted(m for m in ("rsciio", "dask", "numba", "scipy") if m in sys.modules))
    """)
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("compression", [None, "gzip"])
def test_an_in_process_read_keeps_the_notes_of_the_read_it_replaces(
    tmp_path, monkeypatch, compression
) -> None:
    """A map without a beam energy (a note at the door): the in-process eager read gives the
    notes and metadata of the read it replaces (a gzip cube, which the direct decoder cannot
    place, is still read by rosettasciio's eager read)."""
    path = tmp_path / "map.hspy"
    metadata = {"General": {"title": "no beam"}, "Signal": {"signal_type": "EDS_SEM"}}
    counts = _write(path, metadata=metadata, chunks=(5, 20, 64), compression=compression)
    own = reading.read_spectrum_image(path, isolate=False)
    with monkeypatch.context() as patched:
        patched.setattr(hspy_direct, "open_signals", lambda path: None)
        usual = reading.read_spectrum_image(path, isolate=False)
    assert any("beam energy missing" in note for note in own.metadata["warnings"])
    assert own.metadata["warnings"] == usual.metadata["warnings"]
    assert _same(own.metadata, usual.metadata) == []
    np.testing.assert_array_equal(own.counts, counts)


def test_a_note_at_the_door_is_recorded_once_by_a_decoded_read(tmp_path) -> None:
    """The image is checked when the file is opened and again once its cube is decoded: the
    beam energy's note (a correction that leaves the field unknown) was recorded twice and
    printed twice by ``napari-sigma run``."""
    path = tmp_path / "map.hspy"
    metadata = {"General": {"title": "no beam"}, "Signal": {"signal_type": "EDS_SEM"}}
    _write(path, metadata=metadata, chunks=(5, 20, 64))
    with pytest.warns(UserWarning, match="beam energy missing"):
        image = reading.read_spectrum_image(path, isolate=False)
    notes = [note for note in image.metadata["warnings"] if "beam energy missing" in note]
    assert len(notes) == 1
