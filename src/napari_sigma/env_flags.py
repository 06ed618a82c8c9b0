"""Switches read from the environment (``NAPARI_SIGMA_...``), parsed one way everywhere."""

from __future__ import annotations

import os

OFF = frozenset({"0", "no", "false"})


def env_flag(name: str, default: bool = True) -> bool:
    """Whether the switch ``name`` is on: off when the variable is ``0``/``no``/``false`` (any
    case, spaces around ignored), on for any other value; ``default`` when it is not set."""
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() not in OFF
