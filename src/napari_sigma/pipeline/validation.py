"""Checking settings dataclasses: types from their annotations, ranges and choices from tables.

Strict on types: a string is never a number and a bool never an int (an int is a valid float;
lists become tuples). Every failure is a :class:`~napari_sigma.errors.SettingsError` naming the
field by its dotted path (``latent.epochs``). The limits of every numeric setting of an analysis
are in :data:`LIMITS`, the allowed words of its free-text settings in :data:`CHOICES`.
"""

from __future__ import annotations

import dataclasses
import numbers
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, Literal

from napari_sigma.errors import SettingsError
from napari_sigma.phases.mixture import CRITERIA

AUTO = "auto"


# ------------------------------------------------------------------------------ limits


def _at_least(low: float) -> Callable[[Any], str | None]:
    return lambda v: None if v >= low else f"must be at least {low:g}, got {v!r}"


def _above(low: float) -> Callable[[Any], str | None]:
    return lambda v: None if v > low else f"must be above {low:g}, got {v!r}"


def _within(low: float, high: float) -> Callable[[Any], str | None]:
    return lambda v: None if low <= v <= high else f"must lie in [{low:g}, {high:g}], got {v!r}"


LIMITS: dict[str, Callable[[Any], str | None]] = {
    "bin_factor": _at_least(1),
    "n_components": _at_least(1),
    "seed": _at_least(0),
    "cpu_threads": _at_least(1),
    "features.window_fwhm": _above(0),
    "features.fwhm_mnka_kev": _above(0),
    "features.neighbour_radius": _at_least(0),
    "features.low_energy_cutoff_kev": _at_least(0),
    "latent.dim": _at_least(1),
    "latent.hidden": _at_least(1),
    "latent.epochs": _at_least(1),
    "latent.batch_size": _at_least(1),
    "latent.learning_rate": _above(0),
    "latent.train_pixels": _at_least(1),
    "clustering.n_phases": _at_least(1),
    "clustering.max_phases": _at_least(1),
    "clustering.min_phases": _at_least(1),
    "clustering.knee_fraction": _at_least(0),
    "clustering.merge_threshold": _at_least(0),
    "clustering.min_probability": _within(0, 1),
    "clustering.fit_points": _at_least(1),
    "clustering.n_init": _at_least(1),
    "clustering.restarts": _at_least(0),
    "clustering.restart_points": _at_least(2),
    "clustering.max_iter": _at_least(1),
    "clustering.tol": _above(0),
    "phase_finding.homogeneity": _above(0),
    "phase_finding.noise_quantile": _within(0, 1),
    "phase_finding.spatial_weight": _at_least(0),
    "phase_finding.iterations": _at_least(0),
    "phase_finding.mix_fractions": _within(0, 1),
    "phase_finding.merge_distance": _at_least(0),
    "phase_finding.trace_false_alarm": _within(0, 1),
    "phase_finding.trace_min_pixels": _at_least(1),
    "phase_finding.trace_passes": _at_least(0),
    "phase_finding.min_separation": _at_least(0),
    "phase_finding.split.radius": _at_least(1),
    "phase_finding.split.erode": _at_least(0),
    "phase_finding.split.p_value": _within(0, 1),
    "phase_finding.split.min_share": _within(0, 1),
    "phase_finding.split.min_relative_difference": _at_least(0),
    "phase_finding.split.min_pixels": _at_least(1),
    "phase_finding.split.boundary_cost": _at_least(0),
    "phase_finding.split.boundary_margin": _at_least(0),
    "phase_finding.twins.max_separation": _at_least(0),
    "phase_finding.twins.max_contrast": _at_least(0),
    "phase_finding.twins.boundary_cost": _at_least(0),
    "phase_finding.twins.boundary_margin": _at_least(0),
    "phase_finding.twins.iterations": _at_least(1),
    "phase_finding.twins.continuum_splines": _at_least(4),
    "phase_finding.twins.min_pixels": _at_least(1),
    "phase_finding.twins.window": _at_least(1),
    "phase_finding.twins.significance": _at_least(0),
}
"""Range of each numeric field (dotted path; applied to every item of a tuple)."""

CHOICES: dict[str, tuple[str, ...]] = {
    "device": ("auto", "cpu", "cuda"),
    "nmf_init": ("vertices", "nndsvd"),
    "latent.method": ("ae", "pca", "umap"),
    "latent.output": ("linear", "softmax"),
    "clustering.n_phases": (AUTO,),
    "clustering.covariance": ("full", "diag"),
    "clustering.criterion": CRITERIA,
    "clustering.backend": ("torch", "sklearn"),
    "coating": ("C",),
}
"""Allowed values of each string field that is not a ``Literal``."""


# ------------------------------------------------------------------------------ checking


def check_settings(settings: Any) -> dict[str, Any]:
    """The checked field values of a settings dataclass (lists made tuples), by field name.

    Raises
    ------
    SettingsError
        A value of the wrong type or out of range, naming the field.
    """
    return _check_fields(type(settings), vars(settings), "")


def _check_fields(cls: type, values: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {
        item.name: _check(values[item.name], hints[item.name], prefix + item.name)
        for item in dataclasses.fields(cls)
        if item.name in values
    }


def _check(value: Any, hint: Any, path: str) -> Any:
    value = _checked_type(value, hint, path)
    items = value if isinstance(value, tuple) else (value,)
    for item in items:
        if isinstance(item, str) and path in CHOICES and item not in CHOICES[path]:
            allowed = ", ".join(repr(c) for c in CHOICES[path])
            raise SettingsError(path, f"must be one of {allowed}, got {item!r}")
        if isinstance(item, numbers.Real) and not isinstance(item, bool) and path in LIMITS:
            problem = LIMITS[path](item)
            if problem:
                raise SettingsError(path, problem)
    return value


def _checked_type(value: Any, hint: Any, path: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return value
    if origin is types.UnionType or origin is typing.Union:
        errors = []
        for arm in args:
            try:
                return _checked_type(value, arm, path)
            except SettingsError as error:
                errors.append(error)
        deeper = [e for e in errors if e.field and e.field != path]  # the value's own fields
        if deeper:
            raise deeper[0]
        raise SettingsError(path, f"expected {_describe(hint)}, got {value!r}")
    if origin is Literal:
        if value in args and any(type(value) is type(a) for a in args):
            return value
        raise SettingsError(path, f"must be one of {', '.join(map(repr, args))}, got {value!r}")
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise SettingsError(path, f"expected a list, got {value!r}")
        arms = args[:1] * len(value) if len(args) == 2 and args[1] is Ellipsis else args
        if len(arms) != len(value):
            raise SettingsError(path, f"expected {len(arms)} items, got {len(value)}")
        return tuple(
            _checked_type(v, a, f"{path}[{i}]")
            for i, (v, a) in enumerate(zip(value, arms, strict=True))
        )
    if dataclasses.is_dataclass(hint):
        return check_dataclass(value, hint, path)
    if _is_a(value, hint):
        return float(value) if hint is float else int(value) if hint is int else value
    raise SettingsError(path, f"expected {_describe(hint)}, got {value!r}")


def check_dataclass(value: Any, cls: type, path: str = "") -> Any:
    """A checked instance of the settings dataclass ``cls`` from an instance or a JSON dict.

    Parameters
    ----------
    value : cls or mapping
        The settings, or their JSON form (keys that are not fields are refused; missing fields
        take their defaults).
    cls : type
        The dataclass.
    path : str
        Dotted path of ``value`` in the enclosing settings ("" at the top), for messages.
    """
    prefix = f"{path}." if path else ""
    if isinstance(value, cls):
        current = {f.name: getattr(value, f.name) for f in dataclasses.fields(cls)}
        checked = _check_fields(cls, current, prefix)
        changed = {k: v for k, v in checked.items() if v is not current[k] and v != current[k]}
        return replace(value, **changed) if changed else value
    if isinstance(value, Mapping):
        refuse_unknown(cls, value, prefix)
        return cls(**_check_fields(cls, value, prefix))
    raise SettingsError(path or None, f"expected {cls.__name__} settings, got {value!r}")


def _is_a(value: Any, hint: Any) -> bool:
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, numbers.Real) and not isinstance(value, bool)
    return isinstance(value, hint)


def _describe(hint: Any) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}
    if typing.get_origin(hint) in (types.UnionType, typing.Union):
        return " or ".join(_describe(a) for a in typing.get_args(hint))
    if hint is type(None):
        return "null"
    if typing.get_origin(hint) is tuple:
        return "a list"
    return names.get(hint, getattr(hint, "__name__", str(hint)))


def refuse_unknown(cls: type, data: Mapping[str, Any], prefix: str) -> None:
    """Raise SettingsError for the first key of ``data`` that is not a field of ``cls``."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(str(k) for k in data if k not in known)
    if unknown:
        raise SettingsError(prefix + unknown[0], "is not a setting")
