"""Decoding HDF5 datasets without HDF5's chunk buffers gives HDF5's own bytes, or declines."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import h5py
import numpy as np
import pytest

from napari_sigma.io.readers import _hdf5_direct


def _dataset(path: Path, data: np.ndarray, **options):
    with h5py.File(path, "w") as file:
        file.create_dataset("cube", data=data, **options)
    return h5py.File(path, "r")["cube"]


def _decoded(dataset, with_writer: bool) -> np.ndarray:
    plan = _hdf5_direct.plan(dataset)
    assert plan is not None
    out = np.full(dataset.shape, 7, dataset.dtype)
    if not with_writer:
        _hdf5_direct.decode(plan, out)
        return out
    flat = out.reshape(-1).view(np.uint8)
    spans = []

    def write(offset, data):
        spans.append((offset, len(data)))
        flat[offset : offset + len(data)] = np.frombuffer(data, np.uint8)

    _hdf5_direct.decode(plan, out, write)
    if not plan.tiles:
        assert spans == sorted(spans)  # row bands: the destination front to back
    ordered = sorted(spans)  # every byte of the destination written once
    assert [o for o, _ in ordered] == [0] + [o + n for o, n in ordered[:-1]]
    assert sum(n for _, n in spans) == out.nbytes
    return out


@pytest.mark.parametrize(
    ("dtype", "options"),
    [
        ("uint16", {"chunks": (5, 6, 40), "shuffle": True}),  # 23 rows: a partial edge chunk
        ("uint16", {"chunks": (8, 6, 40), "shuffle": False}),
        ("float32", {"chunks": (4, 6, 40), "shuffle": True}),
        ("uint8", {"chunks": (7, 6, 40), "shuffle": True}),
        ("int64", {"chunks": (23, 6, 40), "shuffle": True}),  # one chunk
        ("uint32", {}),  # contiguous
        ("uint16", {"chunks": (5, 4, 40), "shuffle": True}),  # tiles, partial at both edges
        ("uint16", {"chunks": (5, 3, 40), "shuffle": False}),  # tiles, unshuffled
        ("float32", {"chunks": (8, 5, 40), "shuffle": True}),
        ("uint8", {"chunks": (2, 2, 40), "shuffle": True}),
        ("int64", {"chunks": (23, 1, 40), "shuffle": True}),  # tiles one pixel wide
    ],
)
@pytest.mark.parametrize("with_writer", [False, True])
def test_direct_decoding_gives_hdf5_s_bytes(tmp_path, dtype, options, with_writer) -> None:
    rng = np.random.default_rng(0)
    data = rng.poisson(3.0, (23, 6, 40)).astype(dtype)
    if data.dtype.kind == "f":
        data += rng.random(data.shape, dtype=data.dtype)  # every byte of the float used
    dataset = _dataset(tmp_path / "c.h5", data, **options)
    np.testing.assert_array_equal(_decoded(dataset, with_writer), dataset[()])
    assert _decoded(dataset, with_writer).tobytes() == data.tobytes()


def test_a_block_boundary_inside_a_chunk(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(_hdf5_direct, "_BLOCK_ELEMENTS", 1000)  # chunks of 2400 elements
    data = np.random.default_rng(1).integers(0, 60000, (23, 6, 40)).astype(np.uint16)
    dataset = _dataset(tmp_path / "c.h5", data, chunks=(10, 6, 40), shuffle=True)
    np.testing.assert_array_equal(_decoded(dataset, True), data)


@pytest.mark.parametrize(
    "options",
    [
        {"chunks": (5, 3, 20), "shuffle": True},  # the energy axis split: HDF5's business
        {"chunks": (5, 3, 40), "compression": "gzip"},
        {"chunks": (5, 6, 40), "compression": "gzip"},
        {"chunks": (5, 6, 40), "shuffle": True, "fletcher32": True},
        {"chunks": (5, 6, 40), "shuffle": True, "dtype": ">u2"},  # not the machine's order
    ],
)
def test_layouts_that_need_hdf5_get_no_plan(tmp_path, options) -> None:
    data = np.arange(23 * 6 * 40, dtype=np.uint16).reshape(23, 6, 40)
    dataset = _dataset(tmp_path / "c.h5", data, **options)
    assert _hdf5_direct.plan(dataset) is None


def test_unwritten_chunks_get_no_plan(tmp_path) -> None:
    path = tmp_path / "c.h5"
    with h5py.File(path, "w") as file:
        cube = file.create_dataset("cube", shape=(23, 6, 40), dtype="u2", chunks=(5, 6, 40))
        cube[:5] = 1  # four chunks never written: the fill value is HDF5's business
    assert _hdf5_direct.plan(h5py.File(path, "r")["cube"]) is None


def test_a_file_truncated_after_planning_raises(tmp_path) -> None:
    data = np.ones((23, 6, 40), np.uint16)
    path = tmp_path / "c.h5"
    dataset = _dataset(path, data, chunks=(5, 6, 40), shuffle=True)
    plan = _hdf5_direct.plan(dataset)
    dataset.file.close()
    with open(path, "r+b") as file:
        file.truncate(plan.pieces[-1].file_offset + 10)
    with pytest.raises(OSError, match="truncated"):
        _hdf5_direct.decode(plan, np.empty(data.shape, data.dtype))


def test_a_truncated_file_gets_no_plan(tmp_path) -> None:
    data = np.ones((23, 6, 40), np.uint16)
    path = tmp_path / "c.h5"
    _dataset(path, data, chunks=(5, 6, 40), shuffle=True).file.close()
    plan = _hdf5_direct.plan(h5py.File(path, "r")["cube"])
    with open(path, "r+b") as file:
        file.truncate(plan.pieces[-1].file_offset + 10)
    try:
        dataset = h5py.File(path, "r")["cube"]
    except OSError:
        return  # HDF5 itself refuses the file
    assert _hdf5_direct.plan(dataset) is None


def test_the_chunk_index_is_walked_once_or_chunk_by_chunk(tmp_path) -> None:
    data = np.arange(23 * 6 * 40, dtype=np.uint16).reshape(23, 6, 40)
    dataset = _dataset(tmp_path / "c.h5", data, chunks=(5, 4, 40), shuffle=True)
    walked = _hdf5_direct._chunk_infos(dataset, 10)
    by_index = SimpleNamespace(id=SimpleNamespace(get_chunk_info=dataset.id.get_chunk_info))
    one_by_one = _hdf5_direct._chunk_infos(by_index, 10)  # an h5py without chunk_iter
    assert len(walked) == 10
    key = [(tuple(i.chunk_offset), i.byte_offset, i.size, i.filter_mask) for i in walked]
    assert sorted(key) == sorted(
        (tuple(i.chunk_offset), i.byte_offset, i.size, i.filter_mask) for i in one_by_one
    )


@pytest.mark.parametrize("chunks", [(4, 16, 256), (5, 3, 256)])  # row bands, tiles
def test_an_in_process_read_of_bands_or_tiles_equals_the_hdf5_read(tmp_path, monkeypatch, chunks):
    """read_spectrum_image(isolate=False) of a row-band or tiled .hspy decodes without HDF5: same
    counts, corrections, notes and metadata as rsciio's own eager read."""
    from napari_sigma.energy import EnergyAxis
    from napari_sigma.io.readers import reading
    from napari_sigma.io.results.writing import write_hspy
    from napari_sigma.spectrum_image import SpectrumImage

    rng = np.random.default_rng(2)
    counts = rng.poisson(0.5, (21, 16, 256)).astype(np.float32)
    counts[3, 4, :] = np.nan  # an eager-only correction: NaN pixels set to 0 with a note
    image = SpectrumImage(counts=counts, energy=EnergyAxis(0.0, 0.01, 256), beam_energy=20.0)
    path = write_hspy(tmp_path / "bands.hspy", image, chunks=chunks, compression=None)
    used = []
    real = _hdf5_direct.decode
    monkeypatch.setattr(_hdf5_direct, "decode", lambda *a: used.append(1) or real(*a))
    with pytest.warns(UserWarning, match="NaN"):
        direct = reading.read_spectrum_image(path, isolate=False)
    assert used == [1]  # the stored bytes placed without HDF5
    monkeypatch.setattr(reading, "_DIRECT_SUFFIXES", ())
    with pytest.warns(UserWarning, match="NaN"):
        usual = reading.read_spectrum_image(path, isolate=False)
    np.testing.assert_array_equal(direct.counts, usual.counts)
    assert direct.counts.dtype == usual.counts.dtype and direct.counts.flags.writeable
    assert direct.metadata["warnings"] == usual.metadata["warnings"]
    assert direct.metadata["lazy_from_file"] is usual.metadata["lazy_from_file"] is False
    assert (direct.energy, direct.beam_energy) == (usual.energy, usual.beam_energy)
    assert (direct.pixel_size, direct.pixel_unit) == (usual.pixel_size, usual.pixel_unit)
