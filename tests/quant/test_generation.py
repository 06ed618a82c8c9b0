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
