"""A lazily opened cube decoded into an array the caller gives (:func:`_read_into_image`, the work
of :func:`~napari_sigma.io.readers.reading.read_into`): an HDF5 dataset's stored bytes placed directly
(:mod:`napari_sigma.io.readers._hdf5_direct`) or read in one HDF5 call (:func:`_plain_hdf5_dataset`),
other dask counts stored chunk by chunk (:func:`store_counts`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from napari_sigma.io.readers import _rsciio as rh
from napari_sigma.io.readers.events import event_cube_of
from napari_sigma.io.readers.validation import validate_spectrum_image
from napari_sigma.spectrum_image import SpectrumImage


def _read_into_image(
    path: Path, image: Any, allocate: Any, min_bytes: int, write: Any, arriving: Any = None
) -> SpectrumImage | None:
    """:func:`read_into` on the file's lazily opened image.

    ``arriving``: ``(announce, report)`` for a cube whose rows a caller reads while they are
    decoded (:func:`_arriving_read`); None: the image is returned once every row is decoded.
    """
    fmt = rh.FORMATS.get(path.suffix.lower())
    if fmt is None or not fmt.lazy or fmt.events or fmt.single_spectrum:
        return None
    counts = getattr(image, "counts", None)
    if not isinstance(image, SpectrumImage) or not hasattr(counts, "dask"):
        return None
    if counts.nbytes < min_bytes or counts.npartitions < 2 or event_cube_of(counts) is not None:
        return None
    out = allocate(tuple(counts.shape), counts.dtype)
    if out is None:
        return None
    return _decoded_into(image, counts, _plain_hdf5_dataset(counts), out, write, arriving)


def _decoded_into(
    image: SpectrumImage, counts: Any, dataset: Any, out: np.ndarray, write: Any, arriving: Any
) -> SpectrumImage:
    """The lazily opened ``image`` with its ``counts`` (``dataset``: the h5py dataset they
    are, or None) decoded into ``out`` and checked (see :func:`_read_into_image`)."""
    from dataclasses import replace

    metadata = {**image.metadata, "lazy_from_file": False, "validated": False}
    if arriving is not None and write is not None:
        placed = _arriving_read(counts.dtype, dataset, out, write, arriving)
        if placed is not None:
            return placed(replace(image, counts=out, metadata=metadata))
    if dataset is not None:
        _store_dataset(dataset, out, write)
    else:
        store_counts(counts, out, write)
    return validate_spectrum_image(replace(image, counts=out, metadata=metadata))


def _arriving_read(dtype: Any, dataset: Any, out: np.ndarray, write: Any, arriving: Any) -> Any:
    """The read of an image whose rows its reader may use as they come, or None where the cube
    is not decoded without HDF5 (:mod:`napari_sigma.io.readers._hdf5_direct`) or its values
    would be checked (only unsigned counts, whose check reads no value: the image is checked
    before its counts are decoded, with the same outcome).

    The returned function checks the image, hands it to ``announce(image)``, then decodes the
    cube (the sampled rows of :func:`napari_sigma.compute.arrival.sampled_rows` first),
    calling ``report(ranges)`` with the rows written after each step; it returns the image."""
    from napari_sigma.compute.arrival import sampled_rows
    from napari_sigma.io.readers import _hdf5_direct

    if np.dtype(dtype).kind != "u":
        return None
    plan = None if dataset is None else _hdf5_direct.plan(dataset)
    if plan is None:
        return None
    announce, report = arriving

    def read(image: SpectrumImage) -> SpectrumImage:
        image = validate_spectrum_image(image)
        announce(image)
        first = sampled_rows(int(out.shape[0]), int(out.shape[1]))
        place = lambda offset, data: write(out, offset, data)  # noqa: E731
        _hdf5_direct.decode_arriving(
            plan, out, place, report, first if first.step > 1 else range(0)
        )
        return image

    return read


def store_counts(counts: Any, out: np.ndarray, write: Any = None) -> None:
    """Decode dask counts into ``out``; an HDF5 dataset read as it is goes without dask: its
    stored bytes placed directly when they are plain or byte-shuffled
    (:mod:`napari_sigma.io.readers._hdf5_direct`; ``write``: see :func:`read_into`), else in one HDF5
    call."""
    dataset = _plain_hdf5_dataset(counts)
    if dataset is not None:
        _store_dataset(dataset, out, write)
        return
    import dask.array as da

    da.store(counts, out, lock=False, scheduler="synchronous")


def _store_dataset(dataset: Any, out: np.ndarray, write: Any = None) -> None:
    """An h5py dataset decoded into ``out``: its stored bytes placed directly when they are
    plain or byte-shuffled, else in one HDF5 call (see :func:`store_counts`)."""
    from napari_sigma.io.readers import _hdf5_direct

    plan = _hdf5_direct.plan(dataset)
    if plan is None:
        dataset.read_direct(out)
    else:
        place = None if write is None else (lambda offset, data: write(out, offset, data))
        _hdf5_direct.decode(plan, out, place)


def _plain_hdf5_dataset(counts: Any) -> Any:
    """The h5py dataset behind dask counts that are its chunks and nothing else, or None."""
    import sys

    h5py = sys.modules.get("h5py")
    if h5py is None or not hasattr(counts, "__dask_graph__"):
        return None
    graph = dict(counts.__dask_graph__())
    datasets = [v for v in graph.values() if isinstance(v, h5py.Dataset)]
    if len(datasets) != 1 or len(graph) != counts.npartitions + 1:
        return None  # a transpose, a type conversion ... on top of the dataset's chunks
    dataset = datasets[0]
    if dataset.shape != tuple(counts.shape) or dataset.dtype != counts.dtype:
        return None
    return dataset


def _hspy_read_into(
    path: Path,
    allocate: Any,
    min_bytes: int,
    write: Any,
    arriving: Any = None,
    map_index: int = 0,
    lazy_when: Any = None,
    planned_only: bool = False,
) -> tuple[SpectrumImage, dict[str, Any]] | None:
    """``(image, probe)``: an ``.hspy`` file's spectrum image decoded into ``allocate``'s array
    as :func:`_read_into_image` decodes its lazy read, with the signals read by
    :mod:`~napari_sigma.io.readers.hspy_direct` (h5py alone: no rosettasciio, dask or numba);
    the same image. None where that module does not read the file or the lazy read would not be
    decoded this way (then the caller reads it as before): a cube smaller than ``min_bytes`` or
    of one chunk, one that ``lazy_when(probe)`` keeps lazy, no spectrum image, no room, and
    with ``planned_only`` a cube that :mod:`~napari_sigma.io.readers._hdf5_direct` cannot
    place (``reading._read_direct``'s condition: such a file is read eagerly by rosettasciio).

    ``arriving``: ``(announce, report)`` with ``announce(image, probe)`` (see
    :func:`~napari_sigma.io.readers.reading.read_within_steps`)."""
    from napari_sigma.io.readers import hspy_direct
    from napari_sigma.io.readers.calibration import _energy_axis_index
    from napari_sigma.io.readers.signals import _build_image, _find_spectrum_image

    fmt = rh.FORMATS.get(path.suffix.lower())
    if fmt is None or fmt.module != "hspy" or fmt.package != "rsciio":
        return None
    opened = hspy_direct.open_signals(path)
    if opened is None:
        return None
    file, signals = opened
    try:
        index = _find_spectrum_image(signals, fmt, map_index, path)
        if index is None:
            return None
        dataset, axes = signals[index]["data"], signals[index]["axes"]
        if dataset.ndim != 3 or not hspy_direct.decodable_cube(dataset):
            return None
        if _energy_axis_index(axes) != 2:
            return None  # the lazy read moves the energy axis last (a transposed dask array)
        probe = hspy_direct.probe(dataset)
        if lazy_when is not None and lazy_when(probe):
            return None
        if probe["nbytes"] < min_bytes or hspy_direct.n_chunks(dataset) < 2:
            return None
        if planned_only:
            from napari_sigma.io.readers import _hdf5_direct

            if _hdf5_direct.plan(dataset) is None:
                return None
        image = validate_spectrum_image(_build_image(path, fmt, signals, index, True, dataset))
        out = allocate(probe["shape"], dataset.dtype)
        if out is None:
            return None
        hand = None
        if arriving is not None:
            announce, report = arriving
            hand = (lambda arrived: announce(arrived, probe), report)
        return _decoded_into(image, dataset, dataset, out, write, hand), probe
    finally:
        file.close()
