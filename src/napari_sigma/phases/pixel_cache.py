"""Per-pixel spectra small enough to keep in memory, for phase statistics that follow every edit.

A label edit must update the phase spectra from the pixels it changed, without a pass over the
cube. That needs the pixels' spectra in memory: an in-memory cube is used as it is; a lazy (dask)
cube is read once and its channels are summed in groups (``factor`` channels per entry, at most
``max_bytes`` in all, uint16), e.g. 512 x 512 x 4096 -> 512 x 512 x 512 (256 MiB, 80 eV channels).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

MAX_BYTES = 256 * 2**20


@dataclass(frozen=True)
class PixelSpectra:
    """Spectra of every pixel, in memory.

    Attributes
    ----------
    counts : ndarray, shape (y, x, E')
        Counts per pixel, ``factor`` file channels summed per entry.
    energies : ndarray, shape (E',)
        Energy (keV) of the first file channel of each entry.
    factor : int
        File channels per entry (1: the file's own channels, ``counts`` is the cube itself).
    """

    counts: np.ndarray
    energies: np.ndarray
    factor: int


def pixel_spectra(counts: Any, energy: Any, max_bytes: int = MAX_BYTES) -> PixelSpectra:
    """The per-pixel spectra of a cube, in memory.

    Parameters
    ----------
    counts : ndarray or dask array, shape (y, x, E)
        The cube. A numpy cube is returned as it is (no copy).
    energy : EnergyAxis
        Its energy calibration.
    max_bytes : int
        Memory for the spectra of a lazy cube (its channels are summed in groups to fit).

    Returns
    -------
    PixelSpectra
    """
    energies = np.asarray(energy.energies, dtype=np.float64)
    if isinstance(counts, np.ndarray):
        return PixelSpectra(counts, energies, 1)
    ny, nx, n_channels = (int(n) for n in counts.shape)
    itemsize = 2
    budget = max(max_bytes // (ny * nx * itemsize), 1)
    factor = int(np.ceil(n_channels / budget))
    n_out = n_channels // factor
    return PixelSpectra(
        _sum_channel_groups(counts[..., : n_out * factor], factor),
        energies[::factor][:n_out],
        factor,
    )


def _sum_channel_groups(counts: Any, factor: int) -> np.ndarray:
    """Sum ``factor`` adjacent channels of a dask cube into uint16 (clipped), chunk by chunk."""
    import dask.array as da

    if factor == 1:
        summed = counts
    else:
        counts = counts.rechunk({2: max(factor, (counts.chunksize[2] // factor) * factor)})
        summed = da.coarsen(np.sum, counts, {2: factor})
    clipped = summed.map_blocks(
        lambda block: np.minimum(block, np.iinfo(np.uint16).max).astype(np.uint16),
        dtype=np.uint16,
    )
    return np.asarray(clipped.compute())
