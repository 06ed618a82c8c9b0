"""Absorption of the generated X-rays on their way out of the sample.

- Bulk samples: the XPP phi(rho z) of J.-L. Pouchou and F. Pichoir (1991, in *Electron Probe
  Quantitation*, Plenum, pp. 31-75: eq. 8-10 and 13 for the area F, eq. 28-29 and appendices 1,
  2 and 4 for the shape), the default; or the Philibert-Duncumb-Heinrich f(chi) with
  Heinrich's sigma, K. F. J. Heinrich, *Electron Beam X-ray Microanalysis*, Van Nostrand (1981),
  eq. 10.29-10.31.
- Thin foils: the exponential escape average of Z. Horita, T. Sano and M. Nemoto,
  *Ultramicroscopy* 21, 271 (1987), eq. 2 (also Williams & Carter, *Transmission Electron
  Microscopy*, eq. 35.13).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from napari_sigma.quant.atomic import Composition, atomic_number, atomic_weight, edge_energy
from napari_sigma.quant.attenuation import mass_attenuation
from napari_sigma.quant.generation import (
    _pap_m_j,
    backscatter_coefficient,
    backscatter_factor,
    by_composition,
)


def lenard_sigma(beam_kev: float, edge_kev) -> np.ndarray | float:
    """Heinrich's Lenard coefficient ``4.5e5 / (E0^1.65 - Ec^1.65)`` (Heinrich 1981, eq. 10.30)."""
    edge = np.minimum(np.asarray(edge_kev, dtype=np.float64), 0.95 * beam_kev)
    return 4.5e5 / (beam_kev**1.65 - edge**1.65)


ABSORPTION_MODELS = ("xpp", "pdh")
"""The bulk absorption corrections: XPP phi(rho z) (default) or PDH f(chi)."""


def bulk_absorption(model: str, *args: Any) -> np.ndarray | float:
    """f(chi) of an element's shell lines in a bulk sample, by ``model``.

    ``args``: ``composition, element, shell, line_kev, beam_kev, takeoff_deg``, those of
    `xpp_absorption_factor` (``"xpp"``); ``"pdh"``: `absorption_factor` at the shell's edge.
    """
    if model == "xpp":
        return xpp_absorption_factor(*args)
    if model == "pdh":
        composition, element, shell, line_kev, beam_kev, takeoff_deg = args
        edge = edge_energy(element, shell)
        return absorption_factor(composition, line_kev, edge, beam_kev, takeoff_deg)
    raise ValueError(f"unknown absorption model {model!r} (one of {', '.join(ABSORPTION_MODELS)})")


def bulk_absorption_lines(
    model: str, composition: Composition, lines: tuple, beam_kev: float, takeoff_deg: float
) -> np.ndarray:
    """`bulk_absorption` of each of ``lines`` (of any elements and shells, each with its own
    shell's depth distribution) in array operations over the lines.

    XPP: `xpp_distribution` once per shell, then ``F(chi) / F`` of every line at once (the
    same expression as `XppDistribution.emitted`, element-wise on the same operands; chi of
    every line from one `mass_attenuation`, element-wise too): each value is the same double
    as `xpp_absorption_factor` of its shell's lines. PDH: `absorption_factor` of each shell's
    lines at its edge.
    """
    shells = _line_shells(lines)
    if model == "xpp":
        found = [xpp_distribution(composition, el, shell, beam_kev) for el, shell in shells.shells]
        area, phi0, b, big_a, big_b, eps = (
            np.array([getattr(d, name) for d in found])[shells.index]
            for name in ("area", "phi0", "b", "big_a", "big_b", "epsilon")
        )
        chi = np.asarray(mass_attenuation(composition, shells.energies)) / np.sin(
            np.radians(takeoff_deg)
        )
        emitted = (phi0 + big_b / (b + chi) - big_a * b * eps / (b * (1.0 + eps) + chi)) / (b + chi)
        return emitted / area
    if model == "pdh":  # one call per shell (its edge a scalar: the same Lenard sigma)
        f = np.empty(len(lines))
        for i, edge in enumerate(shells.edges.tolist()):
            mine = shells.index == i
            f[mine] = absorption_factor(composition, shells.energies[mine], edge, beam_kev,
                                        takeoff_deg)  # fmt: skip
        return f
    raise ValueError(f"unknown absorption model {model!r} (one of {', '.join(ABSORPTION_MODELS)})")


@dataclass(frozen=True)
class _LineShells:
    """The distinct ``shells`` (element, shell) of a set of lines and their ``edges``; each
    line's shell ``index`` and the lines' ``energies`` (read-only arrays)."""

    shells: tuple
    edges: np.ndarray
    index: np.ndarray
    energies: np.ndarray


@lru_cache(maxsize=1024)
def _line_shells(lines: tuple) -> _LineShells:
    shells = list(dict.fromkeys((line.element, line.shell) for line in lines))
    found = _LineShells(
        tuple(shells),
        np.array([edge_energy(el, shell) for el, shell in shells]),
        np.array([shells.index((line.element, line.shell)) for line in lines]),
        np.array([line.energy for line in lines], dtype=np.float64),
    )
    for array in (found.edges, found.index, found.energies):
        array.setflags(write=False)
    return found


def absorption_factor(
    composition: Composition, line_kev, edge_kev, beam_kev: float, takeoff_deg: float
) -> np.ndarray | float:
    """f(chi): the fraction of the generated X-rays that leave a bulk sample.

    Philibert-Duncumb-Heinrich (Heinrich 1981, eq. 10.29-10.31):
    ``f = 1 / ((1 + chi/sigma) (1 + h/(1+h) chi/sigma))`` with ``chi = mu/rho csc(psi)``,
    Heinrich's sigma (`lenard_sigma`) and ``h = 1.2 sum C A / Z^2``.
    """
    mu = mass_attenuation(composition, line_kev)
    chi = np.asarray(mu) / np.sin(np.radians(takeoff_deg))
    h = 1.2 * sum(c * atomic_weight(el) / atomic_number(el) ** 2 for el, c in composition.items())
    ratio = chi / lenard_sigma(beam_kev, edge_kev)
    f = 1.0 / ((1.0 + ratio) * (1.0 + h / (1.0 + h) * ratio))
    return float(f) if np.ndim(f) == 0 else f


@lru_cache(maxsize=4096)
def _pap_m(element: str, shell: str) -> float:
    """Exponent m of PAP's ionisation cross-section ``Q = ln U / (U^m Ec^2)`` (Pouchou & Pichoir
    1991, eq. 10): ``0.86 + 0.12 exp(-(Z/5)^2)`` for K, 0.82 for L, 0.78 for M (cached)."""
    if shell == "K":
        return 0.86 + 0.12 * np.exp(-((atomic_number(element) / 5.0) ** 2))
    return 0.82 if shell == "L" else 0.78


@dataclass(frozen=True)
class XppDistribution:
    """The XPP depth distribution of ionisations of one shell in a matrix (Pouchou & Pichoir 1991).

    ``phi(rho z) = A exp(-a rho z) + (B rho z + phi0 - A) exp(-b rho z)`` (appendix 4), with area
    ``F`` (g/cm^2), surface ionisation ``phi0`` and mean depth ``r_bar`` (g/cm^2).
    """

    area: float
    phi0: float
    r_bar: float
    a: float
    b: float
    big_a: float
    big_b: float
    epsilon: float

    def phi(self, rho_z) -> np.ndarray:
        """phi(rho z) at mass depths ``rho_z`` (g/cm^2)."""
        z = np.asarray(rho_z, dtype=np.float64)
        return self.big_a * np.exp(-self.a * z) + (self.big_b * z + self.phi0 - self.big_a) * (
            np.exp(-self.b * z)
        )

    def emitted(self, chi) -> np.ndarray | float:
        """``F(chi) = integral phi(rho z) exp(-chi rho z)``: the emerging intensity (appendix 4)."""
        chi = np.asarray(chi, dtype=np.float64)
        b, eps = self.b, self.epsilon
        f = (
            self.phi0 + self.big_b / (b + chi) - self.big_a * b * eps / (b * (1.0 + eps) + chi)
        ) / (b + chi)
        return float(f) if f.ndim == 0 else f


def xpp_distribution(
    composition: Composition, element: str, shell: str, beam_kev: float
) -> XppDistribution:
    """XPP phi(rho z) of ``element``'s ``shell`` in ``composition`` at ``beam_kev``.

    Pouchou & Pichoir (1991): area ``F = R (1/S) / Q(U0)`` with the deceleration factor 1/S of
    eq. 8 (PAP stopping power, `stopping_power`), ``Q`` of eq. 10 and the backscatter factor R
    (`backscatter_factor`); ``phi0 = 1 + 3.3 (1 - U0^-(2 - 2.3 eta)) eta^1.2`` (appendix 2);
    ``F / r_bar = 1 + X ln(1 + Y (1 - U0^-0.42)) / ln(1 + Y)`` with ``X = 1 + 1.3 ln Zb``,
    ``Y = 0.2 + Zb/200``, and ``r_bar = F / phi0`` when that is smaller (eq. 28); initial slope
    ``P = g h^4 F / r_bar^2`` with ``g = 0.22 ln(4 Zb) (1 - 2 exp(-Zb (U0-1)/15))``,
    ``h = 1 - 10 (1 - 1/(1 + U0/10)) / Zb^2``, ``g h^4`` at most ``0.9 b r_bar^2 (b - 2 phi0/F)``
    (eq. 29); then b, a, epsilon, A and B of appendix 4.
    """
    ec = edge_energy(element, shell)
    u0 = beam_kev / ec
    if u0 <= 1.0:
        raise ValueError(f"{element} {shell}: the beam ({beam_kev:g} kV) is below the edge")
    m_big, j = _pap_m_j(composition, positive=True)
    v0 = beam_kev / j
    m = _pap_m(element, shell)
    d = (6.6e-6, 1.12e-5 * (1.35 - 0.45 * j**2), 2.2e-6 / j)
    p = (0.78, 0.1, -(0.5 - 0.25 * j))
    log_u0 = np.log(u0)
    inv_s = 0.0
    for dk, pk in zip(d, p, strict=True):
        t = 1.0 + pk - m
        inv_s += dk * (v0 / u0) ** pk * (t * u0**t * log_u0 - u0**t + 1.0) / t**2
    inv_s *= u0 / (v0 * m_big)
    q0 = log_u0 / (u0**m * ec**2)
    area = backscatter_factor(composition, u0) * inv_s / q0
    zb, x, y, log_1_y, log_4_zb = _xpp_matrix_terms(composition)
    eta = backscatter_coefficient(composition)
    phi0 = 1.0 + 3.3 * (1.0 - u0 ** -(2.0 - 2.3 * eta)) * eta**1.2
    f_over_r = 1.0 + x * np.log(1.0 + y * (1.0 - u0**-0.42)) / log_1_y
    r_bar = area / max(f_over_r, phi0)
    g = 0.22 * log_4_zb * (1.0 - 2.0 * np.exp(-zb * (u0 - 1.0) / 15.0))
    h = 1.0 - 10.0 * (1.0 - 1.0 / (1.0 + u0 / 10.0)) / zb**2
    b = np.sqrt(2.0) * (1.0 + np.sqrt(max(1.0 - r_bar * phi0 / area, 0.0))) / r_bar
    gh4 = min(g * h**4, 0.9 * b * r_bar**2 * (b - 2.0 * phi0 / area))
    slope = gh4 * area / r_bar**2
    a = (slope + b * (2.0 * phi0 - b * area)) / (b * area * (2.0 - b * r_bar) - phi0)
    eps = (a - b) / b
    if abs(eps) < 1e-6:
        eps = 1e-6 if eps >= 0 else -1e-6
        a = b * (1.0 + eps)
    big_b = (b**2 * area * (1.0 + eps) - slope - phi0 * b * (2.0 + eps)) / eps
    big_a = (big_b / b + phi0 - b * area) * (1.0 + eps) / eps
    return XppDistribution(float(area), float(phi0), float(r_bar), float(a), float(b),
                           float(big_a), float(big_b), float(eps))  # fmt: skip


def _xpp_matrix_terms(composition: Composition) -> tuple:
    """The terms of `xpp_distribution` that depend only on the composition: ``Zb = (sum C
    Z^0.5)^2`` over its elements with C > 0, ``X = 1 + 1.3 ln Zb``, ``Y = 0.2 + Zb/200``,
    ``ln(1 + Y)`` and ``ln(4 Zb)``, each the same expression as written out there (cached per
    composition: every shell of a ZAF iteration asks for the same)."""
    return by_composition(_xpp_matrix_terms_cached, composition)


@lru_cache(maxsize=8192)
def _xpp_matrix_terms_cached(items: tuple) -> tuple:
    zb = sum(c * np.sqrt(atomic_number(el)) for el, c in items if c > 0) ** 2
    x = 1.0 + 1.3 * np.log(zb)
    y = 0.2 + zb / 200.0
    return zb, x, y, np.log(1.0 + y), np.log(4.0 * zb)


def xpp_absorption_factor(
    composition: Composition,
    element: str,
    shell: str,
    line_kev,
    beam_kev: float,
    takeoff_deg: float,
) -> np.ndarray | float:
    """f(chi) = F(chi) / F of the XPP distribution (Pouchou & Pichoir 1991, appendix 4):
    the fraction of a shell's X-rays of energy ``line_kev`` that leave a bulk sample, with
    ``chi = mu/rho(line) csc(psi)``."""
    dist = xpp_distribution(composition, element, shell, beam_kev)
    chi = np.asarray(mass_attenuation(composition, line_kev)) / np.sin(np.radians(takeoff_deg))
    f = np.asarray(dist.emitted(chi)) / dist.area
    return float(f) if f.ndim == 0 else f


def thin_film_absorption(
    composition: Composition, line_kev, mass_thickness_g_cm2: float, takeoff_deg: float
) -> np.ndarray | float:
    """Fraction of X-rays escaping a foil of mass thickness rho t, generated uniformly in depth.

    ``(1 - exp(-chi rho t)) / (chi rho t)`` with ``chi = mu/rho csc(alpha)`` (Horita et al. 1987,
    eq. 2).
    """
    chi = np.asarray(mass_attenuation(composition, line_kev)) / np.sin(np.radians(takeoff_deg))
    x = chi * max(mass_thickness_g_cm2, 0.0)
    f = np.where(x > 1e-9, -np.expm1(-x) / np.maximum(x, 1e-12), 1.0)
    return float(f) if np.ndim(f) == 0 else f
