"""Tests of spectrum fitting (napari_sigma.xray.fitting) and fitted element maps (image_fit)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_sigma.compute.progress import run_to_completion
from napari_sigma.energy import EnergyAxis
from napari_sigma.xray import lines as xray
from napari_sigma.xray.fitting import element_families, family_profile, fit_spectrum
from napari_sigma.xray.image_fit import fit_spectrum_image, nonnegative_gram_solve

AXIS = EnergyAxis(offset=-0.2, scale=0.01, size=1024)


def expected_spectrum(principal_counts: dict[str, float], beam: float = 15.0, level=2000.0):
    """Kramers-like continuum plus the families of ``{"Fe_Ka": counts in Fe Ka, ...}``."""
    energies = AXIS.energies
    e = np.clip(energies, 0.05, None)
    continuum = level * np.clip(beam - e, 0, None) / e * np.exp(-((0.6 / e) ** 3)) * AXIS.scale
    expected = continuum.copy()
    for name, counts in principal_counts.items():
        line = xray.parse_line(name)
        family = next(
            f
            for f in element_families(line.element, beam, (0.1, AXIS.max_energy))
            if f.shell == line.shell
        )
        expected += counts * family_profile(energies, AXIS.scale, family, 0.130)
    return expected, continuum


@pytest.mark.parametrize(
    ("truth", "absent"),
    [
        ({"S_Ka": 20000.0, "Pb_Ma": 8000.0}, "Mo_La"),  # S Ka / Pb Ma / Mo La within 15 eV
        ({"Si_Ka": 30000.0, "W_Ma": 6000.0}, "Sr_La"),  # Si Ka / W Ma / Sr La
        ({"Ti_Ka": 10000.0, "Ba_La": 10000.0}, None),  # Ti Ka 4.51 / Ba La 4.47
        ({"Mg_Ka": 10000.0, "Si_Ka": 10000.0, "Al_Ka": 1500.0}, None),  # Al between Mg and Si
        ({"Mn_Ka": 15000.0, "Cr_Ka": 3000.0}, None),  # Mn Ka / Cr Kb
        ({"Na_Ka": 4000.0, "Cu_La": 5000.0, "Cu_Ka": 2000.0}, "Zn_La"),  # Na Ka / Zn La / Cu La
    ],
)
def test_fit_resolves_overlaps_within_counting_error(truth, absent):
    expected, _ = expected_spectrum(truth)
    rng = np.random.default_rng(1)
    counts = rng.poisson(expected).astype(float)
    elements = [name.partition("_")[0] for name in truth]
    if absent:
        elements.append(absent.partition("_")[0])
    fit = fit_spectrum(counts, AXIS, elements, beam_energy=15.0)
    assert np.all(fit.intensities >= 0)
    for name, value in truth.items():
        assert fit.intensity(name) == pytest.approx(
            value, abs=4 * fit.sigma[fit.families.index(name)] + 0.03 * value
        )
    if absent:
        index = fit.families.index(absent)
        assert fit.intensities[index] < 4 * fit.sigma[index] + 0.02 * max(truth.values())


def test_fit_sigma_is_the_counting_error():
    truth = {"Fe_Ka": 3000.0, "O_Ka": 2000.0}
    expected, _ = expected_spectrum(truth)
    rng = np.random.default_rng(0)
    values, sigmas = [], []
    for _ in range(30):
        fit = fit_spectrum(rng.poisson(expected).astype(float), AXIS, ["Fe", "O"], 15.0)
        values.append(fit.intensity("Fe_Ka"))
        sigmas.append(fit.sigma[fit.families.index("Fe_Ka")])
    assert np.std(values) == pytest.approx(np.mean(sigmas), rel=0.4)
    assert np.mean(values) == pytest.approx(3000.0, rel=0.05)


def test_fit_of_an_absent_element_is_zero_or_small_never_negative():
    expected, continuum = expected_spectrum({})
    counts = np.random.default_rng(2).poisson(expected).astype(float)
    fit = fit_spectrum(counts, AXIS, ["Fe", "Al", "S"], 15.0)
    assert np.all(fit.intensities >= 0)
    assert np.all(fit.intensities < 4 * fit.sigma + 1.0)
    # above the continuum's steep low-energy edge (x 500 from 0.3 to 0.6 keV in this model)
    inside = (AXIS.energies > 0.6) & (AXIS.energies < 9.5)
    assert np.allclose(fit.background[inside], continuum[inside], rtol=0.1, atol=3.0)


def test_nonnegative_gram_solve_matches_scipy_nnls():
    from scipy.optimize import nnls

    rng = np.random.default_rng(0)
    a = np.abs(rng.normal(size=(60, 6))) + np.eye(60, 6)
    targets = rng.normal(size=(50, 60)) + a @ np.abs(rng.normal(size=6))
    solved = nonnegative_gram_solve(a.T @ a, targets @ a, tol=1e-8, max_sweeps=5000)
    for row, target in zip(solved, targets, strict=True):
        reference, _ = nnls(a, target)
        np.testing.assert_allclose(row, reference, atol=1e-3)


def test_fitted_maps_are_non_negative_and_unbiased_where_windows_go_negative():
    rng = np.random.default_rng(3)
    ny, nx = 12, 16
    mg, _ = expected_spectrum({"Mg_Ka": 40.0, "Si_Ka": 30.0}, level=0.5)
    al, _ = expected_spectrum({"Al_Ka": 30.0, "Si_Ka": 30.0}, level=0.5)
    truth = np.zeros((ny, nx), bool)
    truth[:, nx // 2 :] = True
    expected = np.where(truth[..., None], al, mg)
    counts = rng.poisson(expected).astype(np.uint16)
    fit = run_to_completion(fit_spectrum_image(counts, AXIS, ["Mg", "Al", "Si"], 15.0))
    maps, sigma = fit.maps_of(["Mg_Ka", "Al_Ka", "Si_Ka"])
    assert maps.shape == (ny, nx, 3) and np.all(maps >= 0) and np.all(sigma > 0)
    assert maps[truth, 1].mean() == pytest.approx(30.0, rel=0.15)
    assert maps[~truth, 1].mean() < 3.0
    assert maps[~truth, 0].mean() == pytest.approx(40.0, rel=0.15)
    assert maps[..., 2].mean() == pytest.approx(30.0, rel=0.15)


def test_the_fits_m_shell_bound_uses_the_quantifications_m_yield():
    # One source of fluorescence yields: the rough M intensity that bounds a heavy element's M
    # lines against its L lines is EADL's M5 yield (the quantification's) times the thick-target
    # generation; the old Z^4 law gave Ba 2.6x and Sb 4.3x that yield.
    from napari_sigma.quant import atomic
    from napari_sigma.xray.fitting import _shell_yield
    from napari_sigma.xray.yields import eadl_m_yields

    for element in ("Sb", "Ba", "Ce", "Nd", "Gd", "W", "Pb", "U"):
        edge = min(line.edge for line in xray.element_lines(element, 0.0) if line.shell == "M")
        u = 20.0 / edge
        generated = u * np.log(u) - u + 1.0
        omega = eadl_m_yields()[(atomic.atomic_number(element), "M5")]
        assert atomic.fluorescence_yield(element, "M") == omega
        assert _shell_yield(element, "M", 20.0) == pytest.approx(omega * generated, rel=1e-12)


def test_the_fits_k_and_l_bounds_use_xraydbs_yields():
    # The L/K bound of the element-map fit and of the suggestion takes the K and L3 yields of
    # xraydb (Elam et al. 2002), the quantification's; the Z^4 law put Ti's L3/K at 2.0x them
    # (Ti L lines allowed twice the intensity beside N K and O K), V's at 1.4x, Cu's at 0.73x.
    import xraydb

    from napari_sigma.xray.fitting import _shell_yield

    for element in ("Ti", "V", "Fe", "Cu", "Zr", "Ba", "Pb"):
        edges = xraydb.xray_edges(element)
        for shell, level in (("K", "K"), ("L", "L3")):
            edge = min(
                line.edge for line in xray.element_lines(element, 0.0) if line.shell == shell
            )
            u = max(200.0 / edge, 1.0 + 1e-3)
            generated = u * np.log(u) - u + 1.0
            expected = edges[level].fyield * generated
            assert _shell_yield(element, shell, 200.0) == pytest.approx(expected, rel=1e-12)
