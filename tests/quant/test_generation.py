"""quant.generation: PAP stopping power and backscatter against published values."""

from __future__ import annotations

import pytest

from napari_sigma.quant import generation


@pytest.mark.parametrize(("element", "j_ev"), [("Al", 166.0), ("Cu", 322.0), ("Au", 790.0)])
def test_mean_ionisation_potential_matches_icru37(element, j_ev):
    # ICRU Report 37 (Berger & Seltzer) mean excitation energies
    assert generation.mean_ionisation_potential(element) * 1000 == pytest.approx(j_ev, rel=0.05)


@pytest.mark.parametrize(
    ("element", "eta"), [("C", 0.06), ("Al", 0.15), ("Cu", 0.30), ("Au", 0.50)]
)
def test_backscatter_coefficients_match_heinrichs_measurements(element, eta):
    # Heinrich (1966), 20 keV electrons at normal incidence
    assert generation.backscatter_coefficient({element: 1.0}) == pytest.approx(eta, abs=0.03)


def test_backscatter_factor_is_one_at_threshold_and_smaller_for_heavy_matrices():
    assert generation.backscatter_factor({"Cu": 1.0}, 1.0) == 1.0
    light = generation.backscatter_factor({"Al": 1.0}, 3.0)
    heavy = generation.backscatter_factor({"Au": 1.0}, 3.0)
    assert 0.6 < heavy < light < 1.0


def test_emissions_per_electron_is_the_trapezoid_integral_bit_for_bit():
    """The integration grid and its steps are kept per element, shell, beam and line: the
    same numbers as np.trapezoid over the grid, bit for bit."""
    import numpy as np

    from napari_sigma.quant.cross_sections import line_level
    from napari_sigma.quant.generation import (
        _cross_section_grid,
        backscatter_factor,
        emissions_per_electron,
        stopping_power,
    )
    from napari_sigma.quant.physics import atomic_weight, edge_energy
    from napari_sigma.xray.lines import element_lines

    def written_out(composition, element, shell, beam_kev, line=None):
        ec = edge_energy(element, shell if line is None else line_level(line))
        if beam_kev <= ec:
            return 0.0
        energies, sigma = _cross_section_grid(element, shell, float(beam_kev), 96, line)
        integral = float(np.trapezoid(sigma / stopping_power(composition, energies), energies))
        return backscatter_factor(composition, beam_kev / ec) * integral / atomic_weight(element)

    compared = 0
    for composition in (
        {"Fe": 0.7, "Ni": 0.3},
        {"O": 0.46, "Si": 0.3, "Al": 0.1, "K": 0.14},
        {"Pb": 0.87, "S": 0.13},
    ):
        for beam in (5.0, 15.0, np.float64(20.0)):
            for element in composition:
                for line in element_lines(element, 0.0, tied=True):
                    got = emissions_per_electron(composition, element, line.shell, beam, line=line)
                    assert got == written_out(composition, element, line.shell, beam, line)
                    compared += 1
                shell = "K" if element != "Pb" else "M"
                got = emissions_per_electron(composition, element, shell, beam)
                assert got == written_out(composition, element, shell, beam)
    assert compared > 30
