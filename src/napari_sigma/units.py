"""Lengths in any unit a file or a napari layer gives, converted with pint.

napari keeps layer units as pint units (of pint's application registry, which this module uses
too), and the vendor files name theirs in many spellings (``"µm"``, ``"um"``, ``"micron"``,
``"nm"``, ``"Å"``). Pixel-like names (``"px"``, ``"points"``, which pint would read as printing
lengths) mean "uncalibrated".
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

UNCALIBRATED_UNITS = frozenset(
    {"", "px", "pix", "pixel", "pixels", "points", "<undefined>", "none"}
)
"""Unit names (lower case) that mean the axis is in pixels, not in a length."""


def is_uncalibrated(unit: Any) -> bool:
    """Whether ``unit`` (a name, a pint unit or None) means pixels."""
    return unit is None or str(unit).strip().lower() in UNCALIBRATED_UNITS


def microns_per_unit(unit: Any) -> float | None:
    """Micrometres in one ``unit`` (a name or a pint unit); None for pixels or a non-length.

    ``microns_per_unit("nm") == 1e-3``; ``microns_per_unit("micron") == 1.0``;
    ``microns_per_unit("px") is None``; ``microns_per_unit("keV") is None``.
    """
    if is_uncalibrated(unit):
        return None
    return _microns_per_unit(str(unit).strip())


_COMMON_LENGTHS = {
    **dict.fromkeys(("nm", "nanometer", "nanometre"), 1e-3),
    **dict.fromkeys(
        ("\u00b5m", "\u03bcm", "um", "micron", "microns", "micrometer", "micrometre"), 1.0
    ),
    **dict.fromkeys(("mm", "millimeter", "millimetre"), 1e3),
    **dict.fromkeys(("\u00c5", "angstrom"), 1e-4),
}
"""Micrometres per unit of the spellings vendor files use most, as pint converts them (a test
checks every entry against pint): pint's registry takes ~2 s to build, once per process."""


@lru_cache(maxsize=64)
def _microns_per_unit(name: str) -> float | None:
    if name in _COMMON_LENGTHS:
        return _COMMON_LENGTHS[name]
    import pint

    registry = pint.get_application_registry()
    for spelling in (name, name.lower()):
        try:
            return float(registry.Quantity(1.0, spelling).to("micrometer").magnitude)
        except (pint.errors.PintError, AttributeError, TypeError, ValueError, AssertionError):
            continue
    return None
