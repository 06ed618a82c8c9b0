"""Bounded memory: a memory limit, the block sizes it allows, and reading a cube lazily under it.

``napari-sigma run --memory-limit 2GB`` reads a cube larger than half the limit lazily (dask, in
the file's chunks) and makes every pass over the cube (features, sums, phase spectra, abundances,
statistics) read it in row bands of at most a quarter of the limit (:func:`block_pixels`, used by
:func:`~napari_sigma.compute.blocks.pixel_blocks` and the feature projections). What remains in
memory is per pixel, not per channel: features, labels, probabilities and abundances.

The limit is a context (:func:`memory_budget`), so that library calls keep their own block sizes
unless a caller asks for a bound.
"""

from __future__ import annotations

import contextvars
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

#: Share of the memory limit a block of the cube (and its float copy) may take.
BLOCK_SHARE = 0.25
#: A cube larger than this share of the limit is read lazily.
LAZY_SHARE = 0.5
#: Share of the available memory used when no limit is given. An in-memory run peaks at about
#: the cube + 1.4 GB (4 GiB cube: 5.71 GB), so a cube up to ``LAZY_SHARE * DEFAULT_SHARE`` = 0.4
#: of the available memory is read whole with room to spare; at 0.5 a 4 GiB cube on a 23 GB
#: machine went lazy whenever less than 17.2 GB was available, and ran 355 s instead of ~55 s.
DEFAULT_SHARE = 0.8

_UNITS = {"": 1, "b": 1, "k": 1e3, "kb": 1e3, "m": 1e6, "mb": 1e6, "g": 1e9, "gb": 1e9,
          "t": 1e12, "tb": 1e12, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}  # fmt: skip

_BUDGET: contextvars.ContextVar[int | None] = contextvars.ContextVar("memory_budget", default=None)


def parse_size(text: str | int) -> int:
    """Bytes of a size such as ``"2GB"``, ``"512 MiB"``, ``"1.5g"`` or ``1000000``.

    Raises
    ------
    ValueError
        When the text is not a positive size.
    """
    if isinstance(text, int):
        value, unit = float(text), ""
    else:
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", str(text))
        if not match or match.group(2).lower() not in _UNITS:
            raise ValueError(f"not a size: {text!r} (use e.g. 2GB, 512MiB, 800M)")
        value, unit = float(match.group(1)), match.group(2).lower()
    size = int(value * _UNITS[unit])
    if size <= 0:
        raise ValueError(f"a memory limit must be positive, not {text!r}")
    return size


def available_memory() -> int | None:
    """Bytes of memory available now (Linux ``MemAvailable``; None when unknown)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def default_memory_limit() -> int | None:
    """``DEFAULT_SHARE`` (0.8) of the available memory, or None when it is unknown."""
    available = available_memory()
    return None if available is None else int(available * DEFAULT_SHARE)


@contextmanager
def memory_budget(limit: int | None) -> Iterator[None]:
    """Within this context, passes over a cube read blocks of at most ``BLOCK_SHARE * limit``."""
    token = _BUDGET.set(None if limit is None else int(limit))
    try:
        yield
    finally:
        _BUDGET.reset(token)


def current_budget() -> int | None:
    """The memory limit of the current context (None: no bound)."""
    return _BUDGET.get()


def block_pixels(default: int, bytes_per_pixel: float) -> int:
    """Pixels per block: ``default``, or fewer when the current limit asks for it (at least 1).

    Parameters
    ----------
    default : int
        The caller's own block size.
    bytes_per_pixel : float
        Memory one pixel of a block takes (its counts and any copy made of them).
    """
    limit = _BUDGET.get()
    if limit is None:
        return default
    return max(1, min(default, int(limit * BLOCK_SHARE / max(bytes_per_pixel, 1.0))))


def cube_bytes(counts) -> int:
    """Bytes of a cube (numpy or dask) once in memory."""
    import numpy as np

    return int(np.prod(counts.shape)) * int(np.dtype(counts.dtype).itemsize)


def largest_chunk_bytes(counts) -> int:
    """Bytes of the largest block a lazy cube is stored in (the whole cube for numpy)."""
    import numpy as np

    chunks = getattr(counts, "chunks", None)
    if chunks is None:
        return cube_bytes(counts)
    return int(np.prod([max(c) for c in chunks])) * int(np.dtype(counts.dtype).itemsize)


def read_within(path: str | Path, limit: int | None, arriving: bool = False, map_index: int = 0):
    """Read a spectrum image, lazily when its cube exceeds ``LAZY_SHARE`` of ``limit``.

    A file stored as blocks larger than a band of the limit (Bruker ``.bcf`` and Velox ``.emd``
    read as one block) cannot be read in parts: it is read whole, with a warning that names the
    file and suggests ``napari-sigma convert`` to a chunked ``.hspy``. The choice is made on the
    file opened lazily, in the same request as the read
    (:func:`~napari_sigma.io.readers.reading.read_spectrum_image_within`), so the file is opened and
    decoded once. ``arriving``: a cube in memory may come back while its rows are still read
    (:func:`~napari_sigma.io.readers.reading.read_spectrum_image_within`; with a limit only).
    """
    import warnings

    from napari_sigma.io.readers.reading import read_spectrum_image, read_spectrum_image_within

    if limit is None:
        return read_spectrum_image(path, map_index=map_index)
    image, probe = read_spectrum_image_within(
        path, LAZY_SHARE * limit, BLOCK_SHARE * limit, arriving=arriving, map_index=map_index
    )
    size, block = probe["nbytes"], probe["block_bytes"]
    if size > LAZY_SHARE * limit and block > BLOCK_SHARE * limit:
        warnings.warn(
            f"{path}: stored in blocks of {block / 1e6:.0f} MB, too large to read in parts "
            f"under the memory limit of {limit / 1e6:.0f} MB: read whole ({size / 1e6:.0f} MB); "
            "convert it once with 'napari-sigma convert' to stay within the limit",
            stacklevel=2,
        )
    return image
