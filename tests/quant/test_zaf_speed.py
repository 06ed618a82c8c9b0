"""The ZAF's cached and Python-float paths give the same doubles as the code they replaced.

`xpp_distribution` (the composition's terms cached, ln U0 once), `backscatter_factor` (cached per
composition and overvoltage), `emissions_per_electron` (the stopping power on a shell's grid
cached) and `mass_attenuation` at a few energies (the mixture rule summed in Python floats)
against the old expressions written out here, on random compositions (fractions of every kind
the callers pass: Python and numpy floats, ints, zeros, negatives) and on every line of their
elements.
"""

import numpy as np
import pytest

from napari_sigma.quant import absorption, attenuation, generation
from napari_sigma.quant.atomic import atomic_number, edge_energy
from napari_sigma.quant.generation import _pap_m_j, backscatter_coefficient
from napari_sigma.xray.lines import element_lines

ELEMENTS = ["O", "Na", "Mg", "Al", "Si", "S", "K", "Ca", "Ti", "Fe", "Cu", "Zn", "Ba", "Pb", "U"]


def _compositions(rng, n):
    found = []
    for _ in range(n):
        chosen = rng.choice(ELEMENTS, int(rng.integers(1, 9)), replace=False)
        fractions = rng.dirichlet(np.ones(chosen.size))
        composition = {}
        for el, c in zip(chosen.tolist(), fractions.tolist(), strict=True):
            kind = rng.integers(6)
            if kind == 0:
                c = np.float64(c)
            elif kind == 1:
                c = 0.0
            elif kind == 2 and chosen.size > 1:
                c = -0.01
            composition[el] = c
        found.append(composition)
    found += [{"Si": 1}, {"Fe": 0.7, "Ni": 0.3}, {"Pb": np.float64(0.87), "S": 0.13}]
    return found


def _xpp_as_before(composition, element, shell, beam_kev):
    ec = edge_energy(element, shell)
    u0 = beam_kev / ec
    m_big, j = _pap_m_j(composition, positive=True)
    v0 = beam_kev / j
    m = absorption._pap_m.__wrapped__(element, shell)
    d = (6.6e-6, 1.12e-5 * (1.35 - 0.45 * j**2), 2.2e-6 / j)
    p = (0.78, 0.1, -(0.5 - 0.25 * j))
    inv_s = 0.0
    for dk, pk in zip(d, p, strict=True):
        t = 1.0 + pk - m
        inv_s += dk * (v0 / u0) ** pk * (t * u0**t * np.log(u0) - u0**t + 1.0) / t**2
    inv_s *= u0 / (v0 * m_big)
    q0 = np.log(u0) / (u0**m * ec**2)
    area = _backscatter_factor_as_before(composition, u0) * inv_s / q0
    zb = sum(c * np.sqrt(atomic_number(el)) for el, c in composition.items() if c > 0) ** 2
    eta = backscatter_coefficient(composition)
    phi0 = 1.0 + 3.3 * (1.0 - u0 ** -(2.0 - 2.3 * eta)) * eta**1.2
    x = 1.0 + 1.3 * np.log(zb)
    y = 0.2 + zb / 200.0
    f_over_r = 1.0 + x * np.log(1.0 + y * (1.0 - u0**-0.42)) / np.log(1.0 + y)
    r_bar = area / max(f_over_r, phi0)
    g = 0.22 * np.log(4.0 * zb) * (1.0 - 2.0 * np.exp(-zb * (u0 - 1.0) / 15.0))
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
    return absorption.XppDistribution(float(area), float(phi0), float(r_bar), float(a),
                                      float(b), float(big_a), float(big_b), float(eps))  # fmt: skip


def _backscatter_factor_as_before(composition, overvoltage):
    u0 = float(overvoltage)
    if u0 <= 1.0:
        return 1.0
    eta = backscatter_coefficient(composition)
    w = 0.595 + eta / 3.7 + eta**4.55
    q = (2 * w - 1) / (1 - w)
    ju = 1 + u0 * (np.log(u0) - 1)
    g = (u0 - 1 - (1 - u0 ** -(1 + q)) / (1 + q)) / ((2 + q) * ju)
    return float(1.0 - eta * w * (1.0 - g))


def _mass_attenuation_as_before(composition, energy_kev):
    energies = np.atleast_1d(np.asarray(energy_kev, dtype=np.float64))
    key = tuple(np.round(energies, 6).tolist())
    mu = sum(c * attenuation._element_mu(el, key) for el, c in composition.items() if c > 0)
    return np.asarray(mu, dtype=np.float64) * np.ones_like(energies)


def _same(a, b):
    assert type(a) is type(b) and np.asarray(a).tobytes() == np.asarray(b).tobytes(), (a, b)


@pytest.mark.parametrize("seed", range(3))
def test_xpp_and_backscatter_equal_the_old_expressions(seed):
    rng = np.random.default_rng(seed)
    compared = 0
    for composition in _compositions(rng, 12):
        if not any(c > 0 for c in composition.values()):
            continue
        for beam in (5.0, 15.0, 20.0, np.float64(25.0)):
            for element in composition:
                for shell in ("K", "L", "M"):
                    try:
                        if beam / edge_energy(element, shell) <= 1.0:
                            continue
                    except (ValueError, KeyError):
                        continue
                    got = absorption.xpp_distribution(composition, element, shell, beam)
                    assert got == _xpp_as_before(composition, element, shell, beam)
                    for field in ("area", "phi0", "r_bar", "a", "b", "big_a", "big_b", "epsilon"):
                        _same(getattr(got, field), getattr(_xpp_as_before(composition, element,
                                                                          shell, beam), field))  # fmt: skip
                    u0 = beam / edge_energy(element, shell)
                    _same(generation.backscatter_factor(composition, u0),
                          _backscatter_factor_as_before(composition, u0))  # fmt: skip
                    compared += 1
    assert compared > 100
    _same(generation.backscatter_factor({"Cu": 1.0}, 1.0), 1.0)


def test_emissions_per_electron_with_the_grid_s_stopping_power_kept():
    rng = np.random.default_rng(7)
    compared = 0
    for composition in _compositions(rng, 10):
        if not any(c > 0 for c in composition.values()):
            continue
        for beam in (10.0, np.float64(20.0)):
            for element in composition:
                for line in element_lines(element):
                    try:
                        ec, grid = generation._generation_grid.__wrapped__(element, line.shell,
                                                                           beam, 96, line)  # fmt: skip
                    except (ValueError, KeyError):
                        continue
                    got = generation.emissions_per_electron(composition, element, line.shell,
                                                            beam, line=line)  # fmt: skip
                    if grid is None:
                        assert got == 0.0
                        continue
                    energies, sigma, steps = grid
                    y = sigma / generation.stopping_power(composition, energies)
                    integral = float((steps * (y[1:] + y[:-1]) / 2.0).sum(-1))
                    expected = (
                        _backscatter_factor_as_before(composition, beam / ec)
                        * integral
                        / generation.atomic_weight(element)
                    )
                    _same(got, expected)
                    compared += 1
    assert compared > 100
    # the kept stopping power cannot be changed by a caller
    cached = generation._grid_stopping_power({"Si": 0.5, "O": 0.5}, np.geomspace(1.0, 10.0, 96))
    assert not cached.flags.writeable


@pytest.mark.parametrize("seed", range(3))
def test_mass_attenuation_at_few_energies_equals_the_array_sum(seed):
    rng = np.random.default_rng(20 + seed)
    compared = 0
    for composition in _compositions(rng, 15):
        for n in (1, 2, 3, 5, 16, 17):
            energies = np.sort(rng.uniform(0.1, 20.0, n))
            for arg in (energies, list(energies), energies.astype(np.float32)):
                got = attenuation.mass_attenuation(composition, arg)
                expected = _mass_attenuation_as_before(composition, arg)
                assert got.shape == expected.shape and got.dtype == expected.dtype
                assert got.tobytes() == expected.tobytes()
                compared += 1
    assert compared == 3 * (15 + 3) * 6


def test_mass_attenuation_of_fractions_not_python_or_numpy_floats():
    """Other fraction types (numpy float32, bool, a 0-d array) keep the array path."""
    energies = np.array([1.0, 6.4])
    for composition in (
        {"Si": np.float32(0.5), "O": 0.5},
        {"Si": True},
        {"Si": np.array(0.4), "O": 0.6},
    ):
        got = attenuation.mass_attenuation(composition, energies)
        expected = _mass_attenuation_as_before(composition, energies)
        assert got.tobytes() == expected.tobytes()
