"""The safe, versioned file format of saved phase models and sessions (``.sigma``).

A ``.sigma`` file is a zip archive of two members:

- ``sigma.json``: ``{"format": "napari-sigma", "kind": "model" | "session", "version": N,
  "sha256": ..., "content": {...}}``; ``content`` holds everything that is not an array
  (settings, names, colours, ...) as plain JSON;
- ``arrays.npz``: the arrays, read back with ``numpy.load(..., allow_pickle=False)``, so loading
  a file never runs code (no pickle anywhere).

``sha256`` is a hash of the content and of every array (name, dtype, shape and bytes): a file
whose content was changed after saving, a truncated or damaged file, a file of another kind and a
file written by a newer format version all give a :class:`~napari_sigma.errors.SigmaFileError`
that names the file and the problem.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from napari_sigma.errors import SigmaFileError

FORMAT_NAME = "napari-sigma"
#: Version written; files of versions 1..FORMAT_VERSION are read.
FORMAT_VERSION = 1
HEADER_MEMBER = "sigma.json"
ARRAYS_MEMBER = "arrays.npz"


@dataclass
class Archive:
    """The content of a ``.sigma`` file.

    Parameters
    ----------
    kind : str
        ``"model"`` or ``"session"``.
    content : dict
        JSON-compatible values (str, int, float, bool, None, lists, dicts with str keys).
    arrays : dict of str to ndarray
        Numeric arrays (no object dtype).
    version : int
        Format version the file was written with.
    """

    kind: str
    content: dict[str, Any]
    arrays: dict[str, np.ndarray]
    version: int = FORMAT_VERSION


def content_hash(content: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> str:
    """SHA-256 (hex) of the JSON content and of every array's name, dtype, shape and bytes."""
    digest = hashlib.sha256()
    digest.update(json.dumps(content, sort_keys=True, separators=(",", ":")).encode())
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"\n{name}|{array.dtype.str}|{array.shape}\n".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def write_archive(path: str | Path, archive: Archive) -> Path:
    """Write ``archive`` to ``path`` (a zip of ``sigma.json`` and ``arrays.npz``).

    Raises
    ------
    ValueError
        When an array has the object dtype or the content is not plain JSON.
    """
    arrays = {name: np.asarray(value) for name, value in archive.arrays.items()}
    for name, array in arrays.items():
        if array.dtype.hasobject:
            raise ValueError(f"array {name!r} has the object dtype; only numeric arrays are saved")
    content = json.loads(json.dumps(archive.content, allow_nan=False))
    header = {
        "format": FORMAT_NAME,
        "kind": archive.kind,
        "version": FORMAT_VERSION,
        "sha256": content_hash(content, arrays),
        "content": content,
    }
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive_file:
        archive_file.writestr(HEADER_MEMBER, json.dumps(header, indent=1))
        archive_file.writestr(ARRAYS_MEMBER, buffer.getvalue(), compress_type=zipfile.ZIP_STORED)
    partial.replace(path)  # a crash while writing never leaves a half-written file at ``path``
    return path


def read_archive(path: str | Path, kind: str | None = None) -> Archive:
    """Read and verify a ``.sigma`` file.

    Parameters
    ----------
    path : str or Path
        The file.
    kind : str, optional
        The kind expected (``"model"`` or ``"session"``); another kind is an error.

    Raises
    ------
    SigmaFileError
        Missing, not a ``.sigma`` file, damaged, of another kind or version, or its content does
        not match its hash.
    """
    path = Path(path)
    if not path.is_file():
        raise SigmaFileError(path, "no such file")
    header, arrays = _read_members(path)
    if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
        raise SigmaFileError(path, "not a napari-sigma model or session file")
    version = header.get("version")
    if not isinstance(version, int) or version < 1:
        raise SigmaFileError(path, f"invalid format version {version!r}")
    if version > FORMAT_VERSION:
        raise SigmaFileError(
            path,
            f"written with format version {version}, this napari-sigma reads versions up to "
            f"{FORMAT_VERSION}: update napari-sigma",
        )
    found = header.get("kind")
    if kind is not None and found != kind:
        raise SigmaFileError(path, f"holds a {found}, not a {kind}")
    content = header.get("content")
    if not isinstance(content, dict):
        raise SigmaFileError(path, "the file has no content")
    if header.get("sha256") != content_hash(content, arrays):
        raise SigmaFileError(
            path, "its content does not match its checksum: the file was modified or damaged"
        )
    return Archive(kind=str(found), content=content, arrays=arrays, version=version)


def _read_members(path: Path) -> tuple[Any, dict[str, np.ndarray]]:
    try:
        with zipfile.ZipFile(path) as archive_file:
            names = set(archive_file.namelist())
            if HEADER_MEMBER not in names or ARRAYS_MEMBER not in names:
                raise SigmaFileError(path, "not a napari-sigma model or session file")
            header = json.loads(archive_file.read(HEADER_MEMBER))
            packed = archive_file.read(ARRAYS_MEMBER)
        with np.load(io.BytesIO(packed), allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except SigmaFileError:
        raise
    except zipfile.BadZipFile:
        raise SigmaFileError(path, "not a napari-sigma file, or a damaged one") from None
    except (OSError, EOFError, ValueError, KeyError, zlib.error, zipfile.LargeZipFile) as error:
        raise SigmaFileError(path, f"damaged file ({error})") from None
    return header, arrays
