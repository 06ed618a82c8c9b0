"""An eager ``.hspy`` read with h5py alone: the signal dictionaries rosettasciio's ``hspy`` reader
gives, for the files whose layout this module knows, without importing rosettasciio, dask or
numba (the reading child of ``napari-sigma run`` on a 256² ``.hspy``: 0.81-0.89 -> 0.35-0.47 s
of CPU, before the first count of the map).

The layout (``file_format_version`` 3.0-3.3, the versions HyperSpy 1.6+ and rosettasciio
write) as HyperSpy documents it and rosettasciio 0.15's reader decodes it (read to match its
output; the code here is this project's own): a root attribute ``file_format_version``; a
group ``Experiments`` holding one group per signal with a ``data`` dataset, groups ``axis-0`` ...
``axis-{ndim-1}`` (the axes' parameters as attributes), ``metadata``, ``original_metadata`` and
``attributes``, whose nested groups are dictionaries. Names and values are encoded as HyperSpy
writes them: an attribute ``_None_`` is None, ``_list_empty_NAME`` / ``_tuple_empty_NAME`` an
empty list / tuple, ``_bs_NAME`` bytes; a dataset ``_list_NAME`` / ``_tuple_NAME`` a list /
tuple of its values; a group ``_list_N_NAME`` / ``_tuple_N_NAME`` a list / tuple of its members
in the order of their names, ``_hspy_AxesManager_NAME`` a list of axes; byte strings are
decoded. The dictionaries are built as rosettasciio builds them (same keys, same order, the
same Python and numpy types), except that ``data`` is the h5py dataset itself (the caller
decodes it: :mod:`napari_sigma.io.readers._hdf5_direct`).

Anything else gives None, and the caller reads the file with rosettasciio as before: older
(< 3.0) or newer format versions, models (``Analysis/models``), signals nested in metadata
(``_sig_``), ragged arrays, datasets in the metadata that rosettasciio hands over lazily, dates
of format 1.x, a cube whose energy axis is not the last, unchunked or compressed with a filter
other than gzip, lzf and shuffle (rosettasciio may load ``hdf5plugin`` for those), and any
failure while reading the layout (the rosettasciio read then gives the error).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

#: Format versions whose layout this module reads (HyperSpy >= 1.6, rosettasciio).
VERSIONS = ("3.0", "3.1", "3.2", "3.3")
#: HDF5 filters h5py decodes without plugins: gzip (deflate), shuffle, fletcher32, lzf.
_FILTERS = {1, 2, 3, 32000}


class _Unknown(Exception):
    """A layout this module does not read: the caller uses rosettasciio."""


def open_signals(path: str | Path) -> tuple[Any, list[dict[str, Any]]] | None:
    """``(h5py file, signal dictionaries)`` of an ``.hspy`` file this module reads (the caller
    closes the file once it has decoded ``data``), or None: read it with rosettasciio."""
    try:
        import h5py
    except ImportError:
        return None
    try:
        file = h5py.File(path, "r")
    except Exception:
        return None
    try:
        return file, _signals(file, h5py)
    except Exception:  # _Unknown, or a layout that fails here: rosettasciio's business
        file.close()
        return None


def _signals(file: Any, h5py: Any) -> list[dict[str, Any]]:
    version = file.attrs.get("file_format_version")
    if isinstance(version, bytes):
        version = version.decode()
    if isinstance(version, float):
        version = str(round(version, 2))
    if not isinstance(version, str) or version not in VERSIONS:
        raise _Unknown(f"format version {version!r}")
    if "Analysis/models" in file and len(file["Analysis/models"]):
        raise _Unknown("models")
    if "Experiments" not in file:
        raise _Unknown("no Experiments")
    reader = _Reader(h5py)
    experiments = file["Experiments"]
    signals = [
        reader.signal(experiments[name])
        for name in experiments
        if isinstance(experiments[name], h5py.Group) and "data" in experiments[name]
    ]
    if not signals:
        raise _Unknown("no signal")
    return signals


class _Reader:
    """The group-to-dictionary rules of the format (see the module)."""

    def __init__(self, h5py: Any) -> None:
        self.h5py = h5py

    def signal(self, group: Any) -> dict[str, Any]:
        data = group["data"]
        if "ragged_shapes" in group or "_ragged_shapes_data" in group:
            raise _Unknown("ragged data")
        if not isinstance(data, self.h5py.Dataset) or data.dtype.kind not in "biuf":
            raise _Unknown("data")
        signal = {
            "metadata": self.group(group["metadata"], lazy=True),
            "original_metadata": self.group(group["original_metadata"], lazy=True),
        }
        attributes = self.group(group["attributes"], lazy=True) if "attributes" in group else {}
        signal["attributes"] = attributes
        if "package" in group.attrs:
            signal["package"] = group.attrs["package"]
            signal["package_version"] = group.attrs["package_version"]
        else:
            signal["package"] = ""
            signal["package_version"] = ""
        attributes["_lazy"] = True
        signal["data"] = data
        signal["axes"] = [self.axis(group, i) for i in range(data.ndim)]
        for name in ("learning_results", "peak_learning_results"):
            if name in group.keys():
                attributes[name] = self.group(group[name], lazy=True)
        general = signal["metadata"].get("General")
        if isinstance(general, dict) and general.get("title") == "__unnamed__":
            general["title"] = ""
        signal["models"] = {}
        return signal

    def axis(self, group: Any, index: int) -> dict[str, Any]:
        name = f"axis-{index}"
        if name not in group:
            raise _Unknown("axes stored as a list")
        axis = self.group(group[name], lazy=False)
        for key, item in axis.items():
            if isinstance(item, np.bool_):
                axis[key] = bool(item)
            elif isinstance(item, bytes):
                axis[key] = _text(item)
        return axis

    def group(self, group: Any, lazy: bool, into: dict[str, Any] | None = None) -> dict[str, Any]:
        """A group as a dictionary: its attributes, then its members in h5py's order."""
        out: dict[str, Any] = {} if into is None else into
        for key, value in group.attrs.items():
            self.attribute(out, key, value)
        for key in group.keys():
            if key.startswith("_ragged_shapes_"):
                continue
            if key.startswith("_sig_"):
                raise _Unknown("a signal in the metadata")
            member = group[key]
            if isinstance(member, self.h5py.Dataset):
                self.dataset(out, key, member, group, lazy)
            elif key.startswith("_hspy_AxesManager_"):
                out[key] = _in_name_order(self.group(member, lazy))
            elif key.startswith("_list_"):
                out[key[7 + key[6:].find("_") :]] = _in_name_order(self.group(member, lazy))
            elif key.startswith("_tuple_"):
                out[key[8 + key[7:].find("_") :]] = tuple(_in_name_order(self.group(member, lazy)))
            else:
                out[key] = {}
                self.group(member, lazy, out[key])
        return out

    @staticmethod
    def attribute(out: dict[str, Any], key: str, value: Any) -> None:
        if isinstance(value, bytes):
            value = value.decode()
        if isinstance(value, np.bytes_ | str):
            if value == "_None_":
                value = None
        elif isinstance(value, np.bool_):
            value = bool(value)
        elif isinstance(value, np.ndarray) and value.dtype.char == "S":
            value = value.astype("U")
            if value.dtype.str.endswith("U1"):
                value = value.tolist()
        if key.startswith("_sig_"):
            return
        if key.startswith("_datetime_"):
            raise _Unknown("a date of format 1.x")
        if key.startswith("_list_empty_"):
            out[key[len("_list_empty_") :]] = []
        elif key.startswith("_tuple_empty_"):
            out[key[len("_tuple_empty_") :]] = ()
        elif key.startswith("_bs_"):
            out[key[len("_bs_") :]] = value.tobytes()
        else:
            out[key] = value

    def dataset(self, out: dict[str, Any], key: str, data: Any, group: Any, lazy: bool) -> None:
        if f"_ragged_shapes_{key}" in group or "ragged_shapes" in group:
            raise _Unknown("a ragged array")
        if key.startswith("_list_"):
            out[key[6:]] = self.values(data).tolist()
        elif key.startswith("_tuple_"):
            out[key[7:]] = tuple(self.values(data).tolist())
        elif data.dtype.char == "S":
            values = np.array(data)
            try:
                values = values.astype("U")
            except UnicodeDecodeError:
                pass  # bytes that are not text stay bytes
            out[key] = values
        elif lazy:
            raise _Unknown("an array in the metadata (a dask array for rosettasciio)")
        else:
            out[key] = np.array(data)

    def values(self, data: Any) -> np.ndarray:
        if self.h5py.check_string_dtype(data.dtype) and hasattr(data, "asstr"):
            return np.array(data.asstr()[:])
        return np.array(data)


def _in_name_order(members: dict[str, Any]) -> list[Any]:
    return [value for _, value in sorted(members.items())]


def _text(value: bytes) -> str:
    try:
        return value.decode("utf8")
    except UnicodeDecodeError:
        return value.decode("latin-1", errors="ignore")


def decodable_cube(dataset: Any) -> bool:
    """Whether the cube is one whose read this module leaves to the caller's HDF5 decoding as
    rosettasciio's lazy read would (chunked, filters h5py decodes without plugins)."""
    if dataset.chunks is None or 0 in dataset.shape:
        return False
    plist = dataset.id.get_create_plist()
    filters = {plist.get_filter(i)[0] for i in range(plist.get_nfilters())}
    return filters <= _FILTERS


def probe(dataset: Any) -> dict[str, Any]:
    """What :func:`napari_sigma.io.readers.reading.probe_spectrum_image` reports of a cube read
    lazily in the dataset's chunks: shape, dtype, bytes, the largest chunk's bytes."""
    shape = tuple(int(n) for n in dataset.shape)
    itemsize = np.dtype(dataset.dtype).itemsize
    block = int(np.prod([min(int(c), n) for c, n in zip(dataset.chunks, shape, strict=True)]))
    return {
        "shape": shape,
        "dtype": str(np.dtype(dataset.dtype)),
        "nbytes": int(np.prod(shape)) * itemsize,
        "block_bytes": block * itemsize,
    }


def n_chunks(dataset: Any) -> int:
    """The chunks a lazy read of the dataset is made of (dask's partitions)."""
    return int(
        np.prod([-(-n // int(c)) for c, n in zip(dataset.chunks, dataset.shape, strict=True)])
    )
