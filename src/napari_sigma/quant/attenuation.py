"""Mass attenuation coefficients: W. T. Elam, B. D. Ravel and J. R. Sieber, *Radiat. Phys.
Chem.* 63, 121 (2002), photo-absorption plus coherent and incoherent scattering as xraydb
tabulates them, evaluated on a whole energy axis at once; the mixture rule for a composition.
Energies in keV, mu/rho in cm^2/g.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from napari_sigma.quant.atomic import Composition


@lru_cache(maxsize=512)
def _element_mu(element: str, energies: tuple[float, ...]) -> np.ndarray:
    energies_ev = np.clip(np.asarray(energies, dtype=np.float64), 0.1, None) * 1000.0
    tables = _elam_tables(element)
    mu = None if tables is None else _elam_total(tables, energies_ev)
    if mu is None:
        import xraydb

        mu = xraydb.mu_elam(element, energies_ev)
    return np.atleast_1d(np.asarray(mu, dtype=np.float64))


# Elam, Ravel & Sieber (2002) tables as xraydb stores them: ln E (eV), ln sigma and the second
# derivatives of a cubic spline through (ln E, ln sigma) for photo-absorption, coherent and
# incoherent scattering. xraydb.mu_elam evaluates the spline one energy at a time (a search of
# the table per energy: ~20 ms for a 2048-channel axis); here the same arithmetic runs on the
# whole axis at once, with the bracketing nodes found by binary search, and gives the same
# float64 numbers (tests/quant/test_elam_mu.py compares them bit for bit).
_ELAM_KINDS = (
    ("photoabsorption", "log_photoabsorption"),
    ("scattering", "log_coherent_scatter"),
    ("scattering", "log_incoherent_scatter"),
)


@lru_cache(maxsize=128)
def _elam_tables(element: str) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], ...] | None:
    """The three tables of an element, or None (then xraydb.mu_elam is called)."""
    import json

    from napari_sigma.xray import xraydb_direct as xraydb

    try:
        db = xraydb.get_xraydb()
        symbol = db.symbol(element)
        tables = []
        for table, column in _ELAM_KINDS:
            row = db.get_cache(table, column="element", value=symbol)[0]
            log_energy = np.array(json.loads(row.log_energy))
            values = np.array(json.loads(getattr(row, column)))
            spline = np.array(json.loads(getattr(row, column + "_spline")))
            if not (log_energy.ndim == 1 and log_energy.shape == values.shape == spline.shape):
                return None
            if log_energy.size < 2 or np.any(np.diff(log_energy) < 0):
                return None  # the binary search needs ordered nodes
            tables.append((log_energy, values, spline))
    except (AttributeError, IndexError, KeyError, TypeError, ValueError):
        return None
    return tuple(tables)


def _elam_total(tables, energies_ev: np.ndarray) -> np.ndarray | None:
    """Photo-absorption + coherent + incoherent cross-sections (cm^2/g) at these energies, or
    None where xraydb itself would raise or warn (outside 100 eV - 800 keV, unordered nodes)."""
    energies = np.array(energies_ev, dtype=np.float64, ndmin=1)
    if energies.min() < 100.0 or energies.max() > 8.0e5:
        return None  # xraydb warns and clips: let it
    log_e = np.log(energies)
    total = None
    for nodes, values, spline in tables:
        below = np.searchsorted(nodes, log_e, side="left") - 1  # last node < E, else 0
        below[below < 0] = 0
        above = np.searchsorted(nodes, log_e, side="right")  # first node > E, else the last
        above[above >= nodes.size] = nodes.size - 1
        width = nodes[above] - nodes[below]
        if np.any(width <= 0):
            return None
        a = (nodes[above] - log_e) / width
        b = (log_e - nodes[below]) / width
        log_sigma = (
            a * values[below]
            + b * values[above]
            + (width * width / 6)
            * ((a * a - 1) * a * spline[below] + (b * b - 1) * b * spline[above])
        )
        sigma = np.exp(log_sigma)
        if total is None:
            total = sigma
        else:
            total += sigma
    return total


@lru_cache(maxsize=65536)
def _element_mu_at(element: str, energy_kev: float) -> float:
    found = _line_table_mu(element).get(energy_kev)
    return float(_element_mu(element, (energy_kev,))[0]) if found is None else found


def _element_mu_lines(element: str, energies: tuple[float, ...]) -> np.ndarray:
    """`_element_mu` at ``energies`` (keV, rounded to 1e-6): looked up in the element's
    coefficients at every line energy of the line table (`_line_table_mu`) when they are all
    line energies, else computed. `_elam_total` is element-wise, so either way each value is
    the same double."""
    table = _line_table_mu(element)
    try:
        return np.array([table[energy] for energy in energies], dtype=np.float64)
    except KeyError:
        return _element_mu(element, energies)


@lru_cache(maxsize=128)
def _line_table_mu(element: str) -> dict[float, float]:
    """An element's mu/rho at every line energy of the line table (rounded to 1e-6 keV), made
    in one evaluation per element: the quantification asks for them at its lines' energies and
    those of the lines exciting them, composition after composition."""
    energies = _line_table_energies()
    return dict(zip(energies, _element_mu.__wrapped__(element, energies).tolist(), strict=True))


@lru_cache(maxsize=1)
def _line_table_energies() -> tuple[float, ...]:
    from napari_sigma.xray.lines import ELEMENTS, element_lines

    energies = {
        round(float(line.energy), 6)
        for element in ELEMENTS
        for line in element_lines(element, 0.0, None, tied=True)
    }
    return tuple(sorted(energies))


def _mixture_mu(items, energy: float):
    return sum(c * _element_mu_at(el, energy) for el, c in items if c > 0)


@lru_cache(maxsize=65536)
def _mixture_mu_at(items: tuple, energy: float):
    """The mixture rule at one energy for a composition's ``(element, fraction)`` items, in
    their order (the same sum as uncached, so the same number): a ZAF iteration asks for the
    same composition at the same line energy many times (absorption, fluorescence of each line
    by each other line; 93 % repeats in the minerals stage of a 256^2 map)."""
    return _mixture_mu(items, energy)


_SCALAR_TYPES = frozenset((float, int, np.float64))
"""Energy types of the scalar path known without ``np.ndim`` (the ZAF iteration's calls)."""


def mixture_mu_items(items: tuple, energy_kev) -> float:
    """:func:`mass_attenuation` at one energy of a composition given as its ``items()`` tuple
    (``((element, fraction), ...)``, in the composition's order): the same cached mixture rule
    and the same number, without building the tuple again (a ZAF step asks for one composition
    at many line energies)."""
    energy = round(float(energy_kev), 6)
    try:
        return _mixture_mu_at(items, energy)
    except TypeError:  # a fraction that cannot be a key (an array): not cached
        return _mixture_mu(items, energy)


def mass_attenuation(absorber: str | Composition, energy_kev) -> np.ndarray | float:
    """Mass attenuation coefficient mu/rho (cm^2/g) of an element or a composition.

    Elam et al. (2002) photo-absorption plus scattering; for a composition the weight-fraction
    average of the elements' coefficients (the mixture rule).
    """
    if type(energy_kev) in _SCALAR_TYPES or np.ndim(energy_kev) == 0:
        # the scalar path of the ZAF iteration, cached
        if isinstance(absorber, str):
            return mixture_mu_items(((absorber, 1.0),), energy_kev)
        return mixture_mu_items(tuple(absorber.items()), energy_kev)
    composition = {absorber: 1.0} if isinstance(absorber, str) else absorber
    energies = np.atleast_1d(np.asarray(energy_kev, dtype=np.float64))
    key = tuple(np.round(energies, 6).tolist())
    if energies.ndim == 1 and len(key) <= FEW_ENERGIES:
        fractions = [(c, el) for el, c in composition.items() if type(c) in _SCALAR_TYPES]
        if len(fractions) == len(composition):
            return _few_energies(fractions, key)
    mu = sum(c * _element_mu(el, key) for el, c in composition.items() if c > 0)
    return np.asarray(mu, dtype=np.float64) * np.ones_like(energies)


FEW_ENERGIES = 16
"""`mass_attenuation` of a composition at up to this many energies (a shell's lines) sums in
Python floats (`_few_energies`)."""


def _few_energies(fractions: list, key: tuple) -> np.ndarray:
    """The mixture rule of `mass_attenuation`'s array path at each energy of ``key``, in Python
    floats: ``sum(c * mu_el)`` over the elements with ``c > 0`` in the composition's order,
    starting from 0, each product and sum the same IEEE operation as the arrays' element (so the
    same double), without an array operation per element."""
    columns = [(c, _element_mu_lines(el, key).tolist()) for c, el in fractions if c > 0]
    values = []
    for i in range(len(key)):
        total = 0
        for c, mu in columns:
            total = total + c * mu[i]
        values.append(total)
    return np.array(values, dtype=np.float64)


def mixture_mu_energies(items: tuple, energies: tuple) -> np.ndarray:
    """`mixture_mu_items` at each energy of ``energies`` (keV, already rounded to 1e-6 as it
    rounds them), in array operations: each element's coefficients at all the energies at
    once (`_element_mu` is element-wise), the products added in the composition's order from
    0 as there: the same double at each energy. ``items``' fractions must be numbers."""
    total = 0
    for element, fraction in items:
        if fraction > 0:
            total = total + fraction * _element_mu_lines(element, energies)
    return np.zeros(len(energies)) if np.ndim(total) == 0 else total
