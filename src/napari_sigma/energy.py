"""The calibrated energy axis of a spectrum (keV)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class EnergyAxis:
    """A linear energy axis: channel ``i`` is centred at ``offset + i * scale`` keV.

    Parameters
    ----------
    offset : float
        Energy of channel 0 in keV (often negative).
    scale : float
        Channel width in keV (> 0).
    size : int
        Number of channels.
    """

    offset: float
    scale: float
    size: int

    def __post_init__(self) -> None:
        if not (np.isfinite(self.scale) and self.scale > 0):
            raise ValueError(f"energy scale must be positive, got {self.scale}")
        if self.size < 1:
            raise ValueError(f"energy axis needs at least one channel, got {self.size}")

    @property
    def energies(self) -> np.ndarray:
        """Channel centres in keV, float64, shape ``(size,)``."""
        return self.offset + self.scale * np.arange(self.size, dtype=np.float64)

    @property
    def max_energy(self) -> float:
        """Energy of the last channel in keV."""
        return self.offset + self.scale * (self.size - 1)

    def channel(self, energy: float) -> int:
        """Nearest channel index of ``energy`` (keV), clipped to the axis."""
        index = round((energy - self.offset) / self.scale)
        return min(max(index, 0), self.size - 1)

    def channel_range(self, low: float, high: float) -> slice:
        """Channels whose centres lie in ``[low, high]`` keV, as a slice (may be empty)."""
        first = np.clip(np.ceil((low - self.offset) / self.scale - 1e-9), 0, self.size)
        last = np.clip(np.floor((high - self.offset) / self.scale + 1e-9) + 1, 0, self.size)
        start = int(first)
        return slice(start, max(int(last), start))
