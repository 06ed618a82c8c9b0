"""Line fits kept within one scope, so that an exact repeat is not fitted again.

A phase's identification quantifies its spectrum again with a carbonate's C held fixed
(:func:`~napari_sigma.minerals.identify.with_unmeasured_carbon`); the first line fit of each
such requantification is the phase's own first fit, with the same arguments. Inside a
``with kept_fits():`` scope (one phase, :func:`napari_sigma.minerals.phases._one_phase`),
:func:`kept_fit` returns a copy of the fit made for the same arguments instead of fitting
again. Outside a scope (and in another thread, which starts with no scope) every call fits.

The keys are exact: arrays by dtype, shape, strides and bytes, floats by their type and
``float.hex`` (``0.0`` and ``-0.0`` differ), mappings in their order, frozen dataclasses by
their fields, and the fitting function itself; an argument of any other type is not kept
(the call fits). The fit is the same function of the same arguments, so the kept result holds
the same numbers; a copy (its containers and arrays) is returned each time, so that a caller
that changes its result changes no other's.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar

import numpy as np

MAX_KEPT = 4
"""Fits kept in one scope (a phase asks again for its first fit only)."""

_kept: ContextVar[dict | None] = ContextVar("napari_sigma_kept_fits", default=None)


class _NotKeyable(Exception):
    pass


@contextmanager
def kept_fits() -> Iterator[None]:
    """A scope in which :func:`kept_fit` keeps its fits (dropped at its end)."""
    token = _kept.set({})
    try:
        yield
    finally:
        _kept.reset(token)


def exact_key(value) -> tuple:
    """A hashable key equal for two values only when they are the same inputs bit for bit
    (raises ``_NotKeyable`` for a value of another type)."""
    if value is None or isinstance(value, (bool, str)):
        return (type(value), value)
    if isinstance(value, float):  # Python and numpy doubles: the type is part of the key
        return (type(value), float(value).hex())
    if isinstance(value, (int, np.integer)):
        return (type(value), int(value))
    if isinstance(value, np.ndarray):
        if value.dtype.hasobject:
            raise _NotKeyable(value.dtype)
        return (np.ndarray, value.dtype.str, value.shape, value.strides, value.tobytes())
    if isinstance(value, (tuple, list)):
        return (type(value), tuple(exact_key(v) for v in value))
    if isinstance(value, Mapping):
        return (type(value), tuple((exact_key(k), exact_key(v)) for k, v in value.items()))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        if not type(value).__dataclass_params__.frozen:
            raise _NotKeyable(type(value))
        fields = dataclasses.fields(value)
        return (type(value), tuple(exact_key(getattr(value, f.name)) for f in fields))
    raise _NotKeyable(type(value))


def _copied(fit):
    """``fit`` with its own containers and arrays (frozen values are shared)."""
    if not dataclasses.is_dataclass(fit):
        return copy.deepcopy(fit)
    changes = {}
    for f in dataclasses.fields(fit):
        value = getattr(fit, f.name)
        if isinstance(value, np.ndarray):
            changes[f.name] = value.copy()
        elif isinstance(value, dict):
            changes[f.name] = dict(value)
        elif isinstance(value, list):
            changes[f.name] = list(value)
    return dataclasses.replace(fit, **changes)


def kept_fit(fit: Callable, *args, **kwargs):
    """``fit(*args, **kwargs)``, or inside a :func:`kept_fits` scope a copy of the result of
    an earlier call with the same function and arguments."""
    kept = _kept.get()
    if kept is None:
        return fit(*args, **kwargs)
    try:
        key = (fit, exact_key(args), exact_key(dict(sorted(kwargs.items()))))
    except _NotKeyable:
        return fit(*args, **kwargs)
    if key in kept:
        return _copied(kept[key])
    result = fit(*args, **kwargs)
    if len(kept) < MAX_KEPT:
        kept[key] = _copied(result)
    return result
