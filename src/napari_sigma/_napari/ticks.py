"""Tick labels of the plugin's spectrum plots: whole numbers with k / M instead of an offset.

Counts of a bright map (over16bit.bcf: 2.5e6 counts per pixel at carbon's peak) made
matplotlib print its "1e6" multiplier above the axes, over the legend's first name. A small
module of its own: a figure is pickled to the drawing child, which imports only this to read it.
"""

from __future__ import annotations

from typing import Any

from matplotlib.ticker import Formatter

SUFFIXES = ((1e9, "G"), (1e6, "M"), (1e4, "k"))  # below 10 000: the number itself ("1500")


class CompactTicks(Formatter):
    """``2.5M``, ``500k``, ``1500``, ``0.5``: four significant digits, no offset text."""

    def __call__(self, x: float, pos: Any = None) -> str:
        for size, suffix in SUFFIXES:
            if abs(x) >= size:
                scaled = x / (1e3 if suffix == "k" else size)
                return f"{scaled:.4g}{suffix}"
        return f"{x:.4g}"
