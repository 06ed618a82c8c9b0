"""The ZAF terms of many lines in array operations give the same doubles as one line at a time.

`fluorescence_ratios`, `emissions_per_electron_lines`, `bulk_absorption_lines` (XPP and PDH),
`mixture_mu_energies` and the line table's attenuation coefficients (`_line_table_mu`) against
the scalar functions they gather, on random compositions of every kind the callers pass (Python
and numpy floats, ints, zeros, negatives) and every line of their elements; `detected_lines`
and `line_intensities` of a bulk sample against their terms taken one line at a time.
"""

import numpy as np
import pytest

from napari_sigma.quant import attenuation, physics
from napari_sigma.quant.simulate import line_intensities
from napari_sigma.xray.lines import ELEMENTS as TABLE_ELEMENTS
from napari_sigma.xray.lines import element_lines

ELEMENTS = ["C", "O", "Na", "Mg", "Al", "Si", "S", "K", "Ca", "Ti", "Fe", "Cu", "Zn", "Ba", "Pb"]
BEAMS = (10.0, 15, 20.0, 30.0)


def _compositions(seed, n):
    rng = np.random.default_rng(seed)
    found = []
    for _ in range(n):
        chosen = rng.choice(ELEMENTS, int(rng.integers(1, 8)), replace=False)
        fractions = rng.dirichlet(np.ones(chosen.size))
        composition = {}
        for i, (el, c) in enumerate(zip(chosen.tolist(), fractions.tolist(), strict=True)):
            kind = rng.integers(6)
            if kind == 0:
                c = np.float64(c)
            elif kind == 1 and i > 0:  # the first element keeps a mass
                c = 0.0
            elif kind == 2 and i > 0:
                c = -0.01
            composition[el] = c
        found.append((composition, BEAMS[int(rng.integers(len(BEAMS)))]))
    found += [({"Si": 1}, 20.0), ({"Fe": 0.7, "Ni": 0.3}, 15.0), ({"Pb": 0.87, "S": 0.13}, 20)]
    return found


def _lines(composition, beam):
    return tuple(
        line
        for el in composition
        for line in element_lines(el, 0.1, beam, tied=True)
        if line.edge < beam
    )


@pytest.mark.parametrize("seed", [0, 1])
def test_fluorescence_and_generation_of_many_lines_as_of_one(seed):
    for composition, beam in _compositions(seed, 40):
        lines = _lines(composition, beam)
        ratios = physics.fluorescence_ratios(composition, lines, beam, 35.0)
        generated = physics.emissions_per_electron_lines(composition, lines, beam)
        for i, line in enumerate(lines):
            assert ratios[i] == physics.fluorescence_ratio(composition, line, beam, 35.0)
            one = physics.emissions_per_electron(composition, line.element, line.shell, beam,
                                                 line=line)  # fmt: skip
            assert generated[i] == one


@pytest.mark.parametrize("model", ["xpp", "pdh"])
def test_absorption_of_many_shells_as_of_each_shell(model):
    for composition, beam in _compositions(2, 40):
        lines = _lines(composition, beam)
        escape = physics.bulk_absorption_lines(model, composition, lines, beam, 35.0)
        for shell in dict.fromkeys((line.element, line.shell) for line in lines):
            mine = [i for i, line in enumerate(lines) if (line.element, line.shell) == shell]
            energies = np.array([lines[i].energy for i in mine])
            one = physics.bulk_absorption(model, composition, *shell, energies, beam, 35.0)
            np.testing.assert_array_equal(escape[mine], np.atleast_1d(one))


def test_absorption_below_the_edge_raises_as_the_shell_does():
    with pytest.raises(ValueError, match="below the edge"):
        physics.bulk_absorption_lines(
            "xpp", {"Cu": 1.0}, tuple(element_lines("Cu", 0.1, 10.0)), 8.0, 35.0
        )


def test_mixture_at_many_energies_as_at_each():
    for composition, beam in _compositions(3, 40):
        items = tuple(composition.items())
        lines = _lines(composition, beam) + _lines({"Ba": 1, "Pb": 1}, 30.0)
        keys = tuple(round(float(line.energy), 6) for line in lines)
        found = attenuation.mixture_mu_energies(items, keys)
        assert found.tolist() == [attenuation.mixture_mu_items(items, e) for e in keys]


def test_line_table_coefficients_are_the_single_energy_ones():
    energies = attenuation._line_table_energies()
    picked = energies[:: max(len(energies) // 60, 1)]
    for element in ("C", "O", "Si", "Fe", "Au", "U"):
        table = attenuation._line_table_mu(element)
        for energy in picked:
            assert table[energy] == float(
                attenuation._element_mu.__wrapped__(element, (energy,))[0]
            )
    # the array path rounds with numpy, the scalar path with Python: the same keys for every line
    all_energies = [line.energy for el in TABLE_ELEMENTS for line in element_lines(el, 0.0, None, tied=True)]  # fmt: skip
    rounded = np.round(np.array(all_energies), 6).tolist()
    assert rounded == [round(float(e), 6) for e in all_energies]


def test_detected_lines_is_the_product_of_each_lines_terms():
    detector = physics.Detector()
    for composition, beam in _compositions(4, 30):
        for element in composition:
            lines = [line for line in _lines({element: 1}, beam)]
            for shell in dict.fromkeys(line.shell for line in lines):
                of_shell = tuple(line for line in lines if line.shell == shell)
                found = physics.detected_lines(of_shell, composition, beam, 35.0, detector)
                energies = np.array([line.energy for line in of_shell])
                escape = np.atleast_1d(physics.bulk_absorption(
                    "xpp", composition, element, shell, energies, beam, 35.0))  # fmt: skip
                for i, line in enumerate(of_shell):
                    ratio = physics.fluorescence_ratio(composition, line, beam, 35.0)
                    generated = physics.emissions_per_electron(composition, element, shell,
                                                               beam, line=line)  # fmt: skip
                    eff = physics.detector_efficiency(detector, line.energy)
                    assert found[i] == generated * escape[i] * (1.0 + ratio) * eff


def test_detected_lines_takes_given_fluorescence_ratios():
    lines = tuple(line for line in element_lines("Fe", 0.1, 20.0) if line.shell == "K")
    composition = {"Fe": 0.5, "Ni": 0.5}
    ratios = {lines[0]: 0.25}
    found = physics.detected_lines(lines, composition, 20.0, 35.0, physics.Detector(),
                                   fluorescence=ratios)  # fmt: skip
    plain = physics.detected_lines(lines, composition, 20.0, 35.0, physics.Detector())
    own = physics.fluorescence_ratio(composition, lines[0], 20.0, 35.0)
    assert own > 0
    assert found[0] == pytest.approx(plain[0] * 1.25 / (1.0 + own), rel=1e-14)
    assert found[1:].tolist() == plain[1:].tolist()


@pytest.mark.parametrize("model", ["xpp", "pdh"])
def test_line_intensities_as_one_line_at_a_time(model):
    detector = physics.Detector()
    for composition, beam in _compositions(5, 25):
        found = line_intensities(composition, beam, detector, 35.0, absorption=model)
        for line, area in found:
            element, shell = line.element, line.shell
            generated = physics.emissions_per_electron(composition, element, shell, beam,
                                                       line=line)  # fmt: skip
            escape = physics.bulk_absorption(model, composition, element, shell, line.energy,
                                             beam, 35.0)  # fmt: skip
            escape *= 1.0 + physics.fluorescence_ratio(composition, line, beam, 35.0)
            eff = physics.detector_efficiency(detector, line.energy)
            assert area == float(composition[element] * generated * escape * eff)
