"""Mappings as cache keys: the items in order, each value with its type.

``lru_cache(typed=True)`` tells ``1`` from ``1.0`` only in its direct arguments; a composition
(``{"Fe": 1, "O": 1.0}``) passed inside a tuple keeps that distinction only when each value
carries its type. Used by the kept fits and spectra of :mod:`napari_sigma.quant.line_fit` and
:mod:`napari_sigma.quant.simulate`.
"""

from __future__ import annotations

from collections.abc import Mapping


def typed_items(mapping: Mapping) -> tuple:
    """A mapping's items in order, each value with its type (a key that tells 1 from 1.0)."""
    return tuple((k, type(v), v) for k, v in mapping.items())


def from_typed_items(items: tuple) -> dict:
    """The mapping of :func:`typed_items` again (the same values, in order)."""
    return {k: v for k, _, v in items}
