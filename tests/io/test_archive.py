"""The .sigma file format: round trip, and clear errors for damaged, tampered or foreign files."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from napari_sigma.errors import SigmaFileError
from napari_sigma.io.results.archive import (
    ARRAYS_MEMBER,
    FORMAT_VERSION,
    HEADER_MEMBER,
    Archive,
    read_archive,
    write_archive,
)


def _archive() -> Archive:
    arrays = {"a": np.arange(12, dtype=np.int32).reshape(3, 4), "b": np.linspace(0, 1, 5)}
    return Archive("model", {"names": ["quartz", "albite"], "x": 1.5}, arrays)


def _rewrite(path, header=None, arrays=None):
    """Rewrite a .sigma file with a changed header or arrays member (a tampered file)."""
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    if header is not None:
        members[HEADER_MEMBER] = json.dumps(header).encode()
    if arrays is not None:
        members[ARRAYS_MEMBER] = arrays
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def test_round_trip(tmp_path):
    path = write_archive(tmp_path / "m.sigma", _archive())
    back = read_archive(path, kind="model")
    assert back.content == {"names": ["quartz", "albite"], "x": 1.5}
    assert back.version == FORMAT_VERSION
    np.testing.assert_array_equal(back.arrays["a"], _archive().arrays["a"])
    assert back.arrays["a"].dtype == np.int32
    assert not (tmp_path / "m.sigma.partial").exists()


def test_tampered_content_is_refused(tmp_path):
    path = write_archive(tmp_path / "m.sigma", _archive())
    with zipfile.ZipFile(path) as archive:
        header = json.loads(archive.read(HEADER_MEMBER))
    header["content"]["names"][0] = "gold"
    _rewrite(path, header=header)
    with pytest.raises(SigmaFileError, match=r"m\.sigma: .*checksum"):
        read_archive(path)


def test_tampered_arrays_are_refused(tmp_path):
    import io

    path = write_archive(tmp_path / "m.sigma", _archive())
    buffer = io.BytesIO()
    np.savez(buffer, a=np.zeros((3, 4), np.int32), b=np.linspace(0, 1, 5))
    _rewrite(path, arrays=buffer.getvalue())
    with pytest.raises(SigmaFileError, match="checksum"):
        read_archive(path)


def test_pickled_arrays_are_never_loaded(tmp_path):
    import io

    path = write_archive(tmp_path / "m.sigma", _archive())
    buffer = io.BytesIO()
    np.savez(buffer, a=np.array([{"evil": 1}], dtype=object))
    _rewrite(path, arrays=buffer.getvalue())
    with pytest.raises(SigmaFileError, match=r"m\.sigma: damaged"):
        read_archive(path)


def test_newer_version_kind_and_garbage_give_clear_errors(tmp_path):
    path = write_archive(tmp_path / "m.sigma", _archive())
    with pytest.raises(SigmaFileError, match="holds a model, not a session"):
        read_archive(path, kind="session")
    with zipfile.ZipFile(path) as archive:
        header = json.loads(archive.read(HEADER_MEMBER))
    _rewrite(path, header={**header, "version": FORMAT_VERSION + 1})
    with pytest.raises(SigmaFileError, match="format version"):
        read_archive(path)
    garbage = tmp_path / "g.sigma"
    garbage.write_bytes(b"not a zip at all")
    with pytest.raises(SigmaFileError, match=r"g\.sigma: not a napari-sigma file"):
        read_archive(garbage)
    truncated = tmp_path / "t.sigma"
    truncated.write_bytes(path.read_bytes()[:200])
    with pytest.raises(SigmaFileError, match=r"t\.sigma"):
        read_archive(truncated)
    with pytest.raises(SigmaFileError, match="no such file"):
        read_archive(tmp_path / "missing.sigma")


def test_object_arrays_are_not_written(tmp_path):
    archive = Archive("model", {}, {"bad": np.array([None, 1], dtype=object)})
    with pytest.raises(ValueError, match="object dtype"):
        write_archive(tmp_path / "x.sigma", archive)
