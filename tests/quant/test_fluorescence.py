"""quant.fluorescence: Reed's characteristic fluorescence."""

from __future__ import annotations

from napari_sigma.quant import fluorescence
from napari_sigma.xray.lines import parse_line


def test_fluorescence_of_fe_by_ni_is_significant_and_not_the_reverse():
    alloy = {"Fe": 0.5, "Ni": 0.5}
    fe = fluorescence.fluorescence_ratio(alloy, parse_line("Fe_Ka"), 20.0, 40.0)
    ni = fluorescence.fluorescence_ratio(alloy, parse_line("Ni_Ka"), 20.0, 40.0)
    # Ni Ka (7.47 keV) excites the Fe K edge (7.11 keV): a few to ~15 % extra Fe Ka in Fe-Ni
    assert 0.03 < fe < 0.2
    assert ni == 0.0


# --------------------------------------------------------------------------- speed paths
# fluorescence_ratio keeps the factors of Reed's sum that do not depend on the composition per
# exciting line (fluorescence._exciters): the same numbers, bit for bit, as the sum written out.

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from napari_sigma.quant import atomic  # noqa: E402
from napari_sigma.quant.absorption import lenard_sigma  # noqa: E402
from napari_sigma.quant.attenuation import mass_attenuation  # noqa: E402
from napari_sigma.xray.lines import ELEMENTS, element_lines  # noqa: E402

COMPOSITIONS = [
    {"Fe": 0.5, "Ni": 0.3, "Cr": 0.2},
    {"O": 0.4, "Si": 0.25, "Mg": 0.2, "Fe": 0.1, "Ca": 0.05},
    {"K": 0.14, "Al": 0.1, "Si": 0.3, "O": 0.46},
    {"Fe": 0.3, "Cu": 0.35, "S": 0.35},
    {"Ba": 0.6, "S": 0.14, "O": 0.26},
    {"Pb": 0.87, "S": 0.13},
    {"C": 0.05, "Fe": np.float64(0.9), "Mn": 0.05, "Zz": 0.0},
    {"Ti": 0.6, "O": 0.4, "Na": 0.0},
]


def _reed_written_out(composition, line, beam_kev, takeoff_deg):
    """Reed (1965) eq. 10 as fluorescence_ratio summed it before its factors were cached."""
    element, shell = line.element, line.shell
    ec_a = atomic.edge_energy(element, shell)
    u_a = beam_kev / ec_a
    if u_a <= 1.0 or (shell not in ("K", "L")):
        return 0.0
    r = atomic.jump_ratio(element, shell)
    mu_line = float(mass_attenuation(composition, line.energy))
    chi_a = mu_line / np.sin(np.radians(takeoff_deg))
    sigma = float(lenard_sigma(beam_kev, ec_a))
    total = 0.0
    for other, c_b in composition.items():
        if other == element or c_b <= 0 or other not in ELEMENTS:
            continue
        for shell_b in ("K", "L"):
            p = fluorescence.FLUORESCENCE_PROBABILITY.get((shell_b, shell))
            if p is None:
                continue
            try:
                ec_b = atomic.edge_energy(other, shell_b)
            except ValueError:
                continue
            if beam_kev <= ec_b:
                continue
            omega_b = atomic.fluorescence_yield(other, shell_b)
            for line_b in atomic.shell_lines(other, shell_b):
                if line_b.energy <= ec_a:
                    continue
                mu_b = float(mass_attenuation(composition, line_b.energy))
                mu_ab = float(mass_attenuation(element, line_b.energy))
                u, v = chi_a / mu_b, sigma / mu_b
                total += (
                    0.5 * p * c_b * (r - 1) / r * omega_b * atomic.line_fraction(line_b)
                    * atomic.atomic_weight(element) / atomic.atomic_weight(other)
                    * ((beam_kev / ec_b - 1) / (u_a - 1)) ** 1.67 * mu_ab / mu_b
                    * (np.log1p(u) / u + np.log1p(v) / v)
                )  # fmt: skip
    return float(total)


@pytest.mark.parametrize("beam_kev", [15.0, 20.0, np.float64(10.0), 30])
def test_fluorescence_ratio_is_reeds_sum_bit_for_bit(beam_kev):
    compared = nonzero = 0
    for composition in COMPOSITIONS:
        for element in composition:
            if element not in ELEMENTS:
                continue
            for line in element_lines(element, 0.0, tied=True):
                for takeoff in (35.0, 40.0):
                    got = fluorescence.fluorescence_ratio(composition, line, beam_kev, takeoff)
                    want = _reed_written_out(composition, line, beam_kev, takeoff)
                    assert got == want, (composition, line, beam_kev, takeoff)
                    assert type(got) is float
                    compared += 1
                    nonzero += want != 0.0
    assert compared > 100 and nonzero > 10


def test_fluorescence_ratio_looks_up_the_exciting_lines_once(monkeypatch):
    """A ZAF iteration asks for one line in many compositions of the same elements: the
    exciting lines' atomic data are looked up once, not at every call."""
    calls = []
    original = fluorescence.fluorescence_yield
    monkeypatch.setattr(
        fluorescence, "fluorescence_yield", lambda *a: calls.append(a) or original(*a)
    )
    line = next(li for li in element_lines("Cr", 0.0, tied=True) if li.shell == "K")
    alloy = {"Cr": 0.2, "Fe": 0.5, "Ni": 0.3}
    first = fluorescence.fluorescence_ratio(alloy, line, 19.5, 37.5)
    looked_up = len(calls)
    for step in range(1, 6):  # the iteration's compositions
        changed = {"Cr": 0.2 + 0.01 * step, "Fe": 0.5 - 0.01 * step, "Ni": 0.3}
        assert fluorescence.fluorescence_ratio(changed, line, 19.5, 37.5) > 0.0
    assert len(calls) == looked_up
    assert first == _reed_written_out(alloy, line, 19.5, 37.5) > 0.0


@pytest.mark.parametrize("seed", range(3))
def test_fluorescence_ratio_on_random_compositions_bit_for_bit(seed):
    """The logarithms of Reed's terms taken in one call per line (numpy's log1p of an array)
    give each term's own: the sum equals the one written out, on random compositions."""
    rng = np.random.default_rng(seed)
    pool = ["O", "Na", "Mg", "Al", "Si", "S", "K", "Ca", "Ti", "Cr", "Fe", "Ni", "Cu", "Zn", "Ba"]
    compared = nonzero = 0
    for _ in range(6):
        chosen = rng.choice(pool, int(rng.integers(2, 9)), replace=False).tolist()
        composition = dict(zip(chosen, rng.dirichlet(np.ones(len(chosen))).tolist(), strict=True))
        for element in composition:
            for line in element_lines(element, 0.0, tied=True):
                for beam_kev in (15.0, 25.0):
                    got = fluorescence.fluorescence_ratio(composition, line, beam_kev, 35.0)
                    want = _reed_written_out(composition, line, beam_kev, 35.0)
                    assert got == want and type(got) is float
                    compared += 1
                    nonzero += want != 0.0
    assert compared > 100 and nonzero > 20
