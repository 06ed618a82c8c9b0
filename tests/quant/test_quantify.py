"""Quantification of simulated spectra: round trips, options and uncertainties."""

import numpy as np
import pytest

from napari_sigma.energy import EnergyAxis
from napari_sigma.quant import physics
from napari_sigma.quant.quantify import QuantSettings, oxide_name, quantify_spectrum
from napari_sigma.quant.simulate import line_spectrum
from napari_sigma.synthetic.generator import weight_fractions
from sigma_testdata import foil_spectrum

AXIS = EnergyAxis(-0.1, 0.01, 2048)
FANO = (1.0, 0.0)  # the simulated peaks have the Fano width: no width search needed


def _spectrum(formula, beam=15.0, counts=2e6, thin=False, seed=0, extra=None):
    """A Poisson spectrum: the physics' lines plus an absorbed Kramers continuum (~25 %)."""
    composition = weight_fractions(formula) if isinstance(formula, str) else dict(formula)
    if extra:
        composition = {el: c * (1 - sum(extra.values())) for el, c in composition.items()}
        composition.update(extra)
    lines = line_spectrum(composition, AXIS, beam, thin=thin)
    e = np.clip(AXIS.energies, 0.05, None)
    continuum = np.clip(beam - e, 0, None) / e * physics.Detector().efficiency(e)
    if not thin:
        continuum *= physics.absorption_factor(composition, e, e, beam, 35.0)
    continuum[AXIS.energies < 0.1] = 0
    continuum *= 0.33 * lines.sum() / continuum.sum()
    expected = (lines + continuum) * counts / (lines + continuum).sum()
    return np.random.default_rng(seed).poisson(expected).astype(float), composition


@pytest.mark.parametrize("formula", ["Mg2SiO4", "NaAlSi3O8", "FeS2", "CaCO3", "Fe3O4"])
def test_bulk_round_trip_recovers_the_composition(formula):
    counts, truth = _spectrum(formula)
    result = quantify_spectrum(counts, AXIS, list(truth), 15.0)
    assert result.mode == "bulk" and result.converged
    for element, fraction in truth.items():
        assert result.wt[element] == pytest.approx(100 * fraction, rel=0.03), element
    assert sum(result.wt.values()) == pytest.approx(100.0)


def test_thin_foil_round_trip_and_auto_mode():
    counts, truth = _spectrum("Mg1.8Fe0.2SiO4", beam=200.0, thin=True)
    result = quantify_spectrum(counts, AXIS, list(truth), 200.0, signal_type="EDS_TEM", width=FANO)
    assert result.mode == "thin"
    for element, fraction in truth.items():
        assert result.wt[element] == pytest.approx(100 * fraction, rel=0.03), element


def test_uncertainties_shrink_with_the_square_root_of_the_counts():
    low, truth = _spectrum("NaAlSi3O8", counts=1e5)
    high, _ = _spectrum("NaAlSi3O8", counts=1e7)
    err_low = quantify_spectrum(low, AXIS, list(truth), 15.0, width=FANO).err_wt["Na"]
    err_high = quantify_spectrum(high, AXIS, list(truth), 15.0, width=FANO).err_wt["Na"]
    assert err_low / err_high == pytest.approx(10.0, rel=0.3)
    assert 0 < err_high < 0.5


def test_oxygen_by_stoichiometry_oxides_and_formula():
    counts, truth = _spectrum("NaAlSi3O8")
    settings = QuantSettings(oxygen_by_stoichiometry=True, n_oxygens=8)
    result = quantify_spectrum(counts, AXIS, list(truth), 15.0, settings, width=FANO)
    assert result.wt["O"] == pytest.approx(100 * truth["O"], rel=0.03)
    assert set(result.oxide_wt) == {"Na2O", "Al2O3", "SiO2"}
    assert result.oxide_wt["SiO2"] == pytest.approx(68.7, rel=0.03)  # albite: 68.7 % SiO2
    assert sum(result.oxide_wt.values()) == pytest.approx(100.0, rel=0.01)
    assert result.formula["Si"] == pytest.approx(3.0, rel=0.03)
    assert result.formula["Na"] == pytest.approx(1.0, rel=0.05)
    assert result.err_wt["O"] > 0


def test_unnormalised_result_reports_the_analytical_total():
    counts, _ = _spectrum("SiO2")
    settings = QuantSettings(oxygen_by_stoichiometry=True, normalise=False, valences={"Si": 3})
    result = quantify_spectrum(counts, AXIS, ["Si", "O"], 15.0, settings, width=FANO)
    # Si measured as 100 %, O from a (wrong) valence of 3 added on top
    assert result.analytical_total == pytest.approx(100 + 100 * 1.5 * 15.999 / 28.086, rel=0.01)
    assert sum(result.wt.values()) == pytest.approx(result.analytical_total)


def test_excluded_coating_and_fixed_elements():
    counts, _ = _spectrum("CaCO3", extra={"Au": 0.05})
    settings = QuantSettings(excluded=("Au",))
    result = quantify_spectrum(counts, AXIS, ["Ca", "C", "O", "Au"], 15.0, settings, width=FANO)
    assert "Au" not in result.wt
    assert result.wt["Ca"] == pytest.approx(40.0, rel=0.04)
    fixed = quantify_spectrum(
        counts, AXIS, ["Ca", "C", "O", "Au"], 15.0, QuantSettings(fixed={"C": 0.12}), width=FANO
    )
    assert fixed.wt["C"] == pytest.approx(12.0)


def test_oxide_names():
    assert oxide_name("Si", 4) == "SiO2"
    assert oxide_name("Al", 3) == "Al2O3"
    assert oxide_name("Na", 1) == "Na2O"
    assert oxide_name("Fe", 2) == "FeO"


def test_no_beam_energy_is_a_clear_error():
    counts, _ = _spectrum("SiO2")
    with pytest.raises(ValueError, match="beam energy"):
        quantify_spectrum(counts, AXIS, ["Si", "O"], 0.0)


def test_pdh_absorption_is_still_available_and_differs_from_xpp_for_oxygen():
    composition = weight_fractions("NaAlSi3O8")
    lines = line_spectrum(composition, AXIS, 15.0, absorption="pdh")
    counts = np.random.default_rng(0).poisson(lines * 2e6 / lines.sum()).astype(float)
    pdh = quantify_spectrum(counts, AXIS, list(composition), 15.0,
                            QuantSettings(absorption="pdh"), width=FANO)  # fmt: skip
    xpp = quantify_spectrum(counts, AXIS, list(composition), 15.0, width=FANO)
    assert pdh.wt["O"] == pytest.approx(100 * composition["O"], rel=0.03)
    assert xpp.wt["O"] > pdh.wt["O"]  # XPP absorbs O Ka more: the same counts mean more O


def test_thin_foils_default_to_a_windowless_detector():
    settings = QuantSettings()
    assert settings.detector_for("thin") == physics.WINDOWLESS
    assert settings.detector_for("bulk") == physics.Detector()
    assert physics.WINDOWLESS.efficiency(0.525) > 0.9 > 0.7 > physics.Detector().efficiency(0.525)
    given = physics.Detector(window_polymer_um=1.0)
    assert QuantSettings(detector=given).detector_for("thin") == given


def test_the_file_s_detector_description_is_used():
    # a Bruker "slew AP3.3" window as its .bcf describes it: polymer layers (B, C, N, O, µm),
    # 35 nm Al, a 380 µm Si grid over 23 % of the window, 29 nm Si dead layer, 0.45 mm crystal
    described = {
        "eds_detector": {
            "window_layers": [[5, 0.013], [6, 0.145], [7, 0.045], [8, 0.085], [13, 0.035]],
            "grid": [14, 380.0, 0.23],
            "dead_layer_um": 0.029,
            "crystal_mm": 0.45,
        }
    }
    detector = QuantSettings().detector_for("bulk", described)
    assert detector.grid == ("Si", 380.0, 0.23) and detector.dead_layer_nm == pytest.approx(29.0)
    # the opaque grid leaves 77 % of the window open to soft lines; Beer-Lambert through the
    # film elsewhere (xraydb coefficients): at Fe Ka the film is transparent
    assert detector.efficiency(6.4) == pytest.approx(0.77, abs=0.01)
    assert detector.efficiency(0.525) < 0.77 * physics.Detector().efficiency(0.525)
    # a detector given in the settings wins; no description -> the instrument's default
    assert QuantSettings(detector=physics.WINDOWLESS).detector_for("bulk", described) == (
        physics.WINDOWLESS
    )
    assert QuantSettings().detector_for("bulk", {}) == physics.Detector()
    assert QuantSettings().detector_for("thin", None) == physics.WINDOWLESS


def test_low_count_spectra_are_fitted_without_the_data_weights_bias():
    """A small phase's spectrum (1100 counts: a Cr-spinel, STEM): over Poisson draws the mean
    composition is that of the noise-free spectrum. Weights from the data (Neyman's chi-square)
    gave Fe 22 %, Cr 16 % low and O 9 % high on average here; the model's Poisson variance
    (maximum likelihood) does not bias them."""
    formula, draws = "Mg0.8Fe0.2Al1.6Cr0.4O4", 24
    truth = weight_fractions(formula)
    expected, _ = _spectrum(formula, beam=200.0, counts=1e9, thin=True)
    found = []
    for seed in range(draws):
        counts = np.random.default_rng(seed).poisson(expected * 1100 / expected.sum())
        result = quantify_spectrum(counts, AXIS, list(truth), 200.0, width=FANO)
        found.append([result.wt[el] for el in ("Fe", "Cr", "O")])
    mean = np.mean(found, axis=0)
    for value, element in zip(mean, ("Fe", "Cr", "O"), strict=True):
        assert value == pytest.approx(100 * truth[element], rel=0.08), element


def test_channels_below_the_detector_threshold_are_left_out():
    """A detector that records nothing below 0.21 keV (a Bruker SDD's threshold, above the zero
    peak): the channels there must not pull the continuum under C Ka to zero (C of a 2 wt %
    coating came out 3.2 wt % with them in the fit)."""
    counts, truth = _spectrum("Mg2SiO4", beam=15.0, extra={"C": 0.02})
    cut = counts.copy()
    dead = (AXIS.energies > 0.1) & (AXIS.energies < 0.21)
    cut[dead] = np.random.default_rng(1).poisson(2.0, dead.sum())
    full = quantify_spectrum(counts, AXIS, list(truth), 15.0)
    result = quantify_spectrum(cut, AXIS, list(truth), 15.0)
    assert result.wt["C"] == pytest.approx(full.wt["C"], abs=0.1)
    assert result.wt["C"] == pytest.approx(2.0, abs=0.3)


def _foil_spectrum(formula, extra_elements=()):
    """A 100 nm foil at 200 kV (density 3, absorbed as the quantification does), Poisson
    (:func:`sigma_testdata.foil_spectrum`), and the elements to fit."""
    spectrum, composition = foil_spectrum(formula, AXIS, density=3.0, thickness_nm=100.0)
    return spectrum, composition, sorted({*composition, *extra_elements})


def test_calcium_l_lines_are_simulated_at_their_physical_ratio_to_the_k_lines():
    # Ca has no 3d electron: its L shell emits Ll (L3-M1) 0.302, Ln (L2-M1) 0.305 and Lb3,4
    # (L1-M2,3) 0.413 keV (xraydb), on top of C Ka (0.277 keV); per atom, with Casnati's
    # L cross-sections, Krause's Coster-Kronig transfers and xraydb's yields, ~0.2 of the K
    # production at 200 kV (L3 yield 3.3e-4 vs K 0.16)
    from napari_sigma.quant.simulate import line_intensities

    found = {line.name: area for line, area in line_intensities({"Ca": 1.0}, 200.0, thin=True)}
    assert {"Ca_Ll", "Ca_Ln", "Ca_Lb3", "Ca_Lb4"} <= set(found)
    ratio = sum(a for n, a in found.items() if "_L" in n) / (found["Ca_Ka"] + found["Ca_Kb"])
    assert 0.1 < ratio < 0.3  # detected through the windowless SDD (0.72 at C Ka)


@pytest.mark.parametrize(
    ("formula", "carbon_wt"), [("CaCO3", 12.0), ("CaSiO3", 0.0), ("Ca3Al2Si3O12", 0.0)]
)
def test_calcium_l_peak_is_not_read_as_carbon(formula, carbon_wt):
    # the Ca L peak is 25 eV from C Ka: fitted freely, or not at all, it is read as C (espm's
    # noise-free wollastonite: 13.2 wt % phantom C, grossular 11.0, calcite 24.9 vs 12.0); folded
    # into Ca's K template at its physical ratio (absorbed in the foil), C is right
    from napari_sigma.quant.simulate import line_intensities

    counts, truth, elements = _foil_spectrum(formula, extra_elements=("C",))
    assert any(line.name == "Ca_Ll" for line, _ in line_intensities(truth, 200.0, thin=True))
    settings = QuantSettings(thickness_nm=100.0)
    result = quantify_spectrum(counts, AXIS, elements, 200.0, settings, "EDS_TEM", width=FANO)
    assert result.wt["C"] == pytest.approx(carbon_wt, abs=0.4)
    assert result.wt["Ca"] == pytest.approx(100 * truth["Ca"], rel=0.02)
    ca = result.fit.analysed["Ca"]
    assert ca.shell == "K" and ca.folded and ca.principal.name == "Ca_Ka"
    assert {line.name for line in ca.lines} >= {"Ca_Ka", "Ca_Kb", "Ca_Ll", "Ca_Ln", "Ca_Lb3"}
    assert not [s for s in result.fit.others if s.element == "Ca"]  # no free Ca L template
