"""Tests of element suggestion (napari_sigma.xray.elements) on synthetic and real spectra."""

from __future__ import annotations

import time

import numpy as np
import pytest

from napari_sigma.energy import EnergyAxis
from napari_sigma.spectrum_image import Spectrum
from napari_sigma.xray import lines as xray
from napari_sigma.xray.elements import ElementSuggestion, snip_background, suggest_elements
from sigma_testdata import SHARED_EDS_DIR

DATA = SHARED_EDS_DIR
REAL = pytest.mark.skipif(not DATA.is_dir(), reason=f"real EDS files not found at {DATA}")
AXIS = EnergyAxis(offset=-0.2, scale=0.01, size=2048)


def synthetic_spectrum(
    shells: dict[tuple[str, str], float],
    beam: float = 20.0,
    seed: int = 0,
    background: float = 3000.0,
) -> Spectrum:
    """Poisson spectrum: Kramers-like continuum plus Gaussian lines of the given shells.

    ``shells`` maps (element, shell) to the counts in that shell's strongest line.
    """
    energies = AXIS.energies
    e = np.clip(energies, 0.05, None)
    continuum = background * np.clip(beam - e, 0, None) / e * np.exp(-((0.6 / e) ** 3))
    expected = continuum * AXIS.scale
    for (element, shell), counts in shells.items():
        for line in xray.element_lines(element, max_energy=beam):
            if line.shell != shell or line.edge > beam:
                continue
            sigma = xray.detector_fwhm(line.energy) / 2.3548
            profile = np.exp(-0.5 * ((energies - line.energy) / sigma) ** 2)
            expected += counts * line.weight * profile * AXIS.scale / (sigma * np.sqrt(2 * np.pi))
    rng = np.random.default_rng(seed)
    return Spectrum(rng.poisson(expected).astype(np.float64), AXIS, beam_energy=beam)


def suggested(spectrum: Spectrum, **kwargs) -> set[str]:
    return {s.element for s in suggest_elements(spectrum, **kwargs)}


MAP_LIKE_MINERALS = {
    "FeTiO3": 0.25,
    "CaTiSiO5": 0.2,
    "Ca3Al2Si3O12": 0.2,
    "NaAlSi3O8": 0.15,
    "KMg3AlSi3O10(OH)2": 0.1,
    "Ca5(PO4)3F": 0.05,
    "Fe3O4": 0.05,
}


def detector_like_spectrum(nitrogen: float, seed: int, counts: float = 5e6) -> Spectrum:
    """A rock's spectrum (``MAP_LIKE_MINERALS`` by weight, `napari_sigma.synthetic`'s physics at
    20 kV), drawn with what a real detector adds at low energy (measured on the 30x30 Bruker map):

    - a low-energy tail: each line below 3 keV loses ``0.15 * 0.525 keV / E`` of its counts
      into an exponential two FWHM long below it (O K's own share: 15 %);
    - an energy scale that is not linear there: C K recorded 13 eV low, lines from 0.8 keV on
      9 eV high (linear in between);
    - a low-energy threshold: nothing below 0.195 keV.

    ``nitrogen``: weight fraction of N put in every mineral in place of as much O.
    """
    from napari_sigma.synthetic.generator import PhaseSpec, phase_spectra, weight_fractions

    axis = EnergyAxis(offset=-0.472, scale=0.01, size=2048)
    phases = []
    for formula in MAP_LIKE_MINERALS:
        composition = dict(weight_fractions(formula))
        if nitrogen:
            composition["O"] -= nitrogen
            composition["N"] = nitrogen
        phases.append(PhaseSpec(formula, composition))
    lines, continuum = phase_spectra(phases, axis, 20.0)
    share = counts * np.array(list(MAP_LIKE_MINERALS.values()))[:, None]
    lines, continuum = (lines * share).sum(axis=0), (continuum * share).sum(axis=0)
    energies = axis.energies
    tails = np.zeros_like(lines)
    for j in np.flatnonzero((lines > 0) & (energies > 0.1) & (energies < 3.0)):
        fraction = 0.15 * 0.525 / energies[j]
        below = (energies < energies[j]) & (energies > 0.05)
        kernel = np.exp((energies - energies[j]) / (2 * xray.detector_fwhm(energies[j]))) * below
        tails += fraction * lines[j] * kernel / kernel.sum()
        lines[j] *= 1.0 - fraction
    shift = np.interp(energies, [0.277, 0.8], [-0.013, 0.009])
    expected = np.interp(energies - shift, energies, lines + tails) + continuum
    expected[energies < 0.195] = 0.0
    counts_drawn = np.random.default_rng(seed).poisson(expected).astype(np.float64)
    return Spectrum(counts_drawn, axis, beam_energy=20.0)


@pytest.mark.parametrize("seed", [0, 1])
def test_a_detectors_low_energy_response_beside_ti_l_and_o_k_suggests_no_n(seed):
    # With the resolution given 10 eV above the generator's (130 eV), the old significance
    # credited N K between C K and O K with 8.3-8.8 sigma (seeds 0-3) in this N-free rock: the
    # residual of the tail, threshold and shifted scale there. A local background level over
    # N's region takes that; the rock's elements stay.
    found = suggested(detector_like_spectrum(0.0, seed), fwhm_mnka_kev=0.140)
    assert "N" not in found
    assert {"O", "Si", "Ti", "Fe", "Ca", "Al"} <= found


def test_real_n_at_a_few_weight_percent_beside_ti_l_is_still_suggested():
    # The same rock and detector with 3 wt% N in every mineral: N K stands out of the level
    # (10.1 sigma; 13.4 with the old significance), beside Ti Ll at 0.395 keV.
    found = suggested(detector_like_spectrum(0.03, seed=0), fwhm_mnka_kev=0.140)
    assert "N" in found


def test_snip_background_follows_continuum_under_peaks():
    x = np.arange(1000, dtype=float)
    continuum = 200.0 * np.exp(-x / 400.0) + 20.0
    peaks = 3000.0 * np.exp(-0.5 * ((x - 300) / 5.0) ** 2)
    background = snip_background(continuum + peaks, window=25)
    assert np.all(background <= continuum + peaks + 1e-6)
    assert np.abs(background[250:350] - continuum[250:350]).max() < 0.05 * continuum[300]


def test_galena_gives_pb_and_s_not_mo():
    # PbS at 20 kV: Pb Ma + S Ka overlap at 2.3 keV; Pb La at 10.55 keV is weakly excited.
    spectrum = synthetic_spectrum({("Pb", "M"): 40000, ("Pb", "L"): 4000, ("S", "K"): 60000})
    result = suggest_elements(spectrum)
    assert {s.element for s in result} == {"Pb", "S"}
    assert {s.line for s in result} == {"Pb_Ma", "S_Ka"}


def test_molybdenite_gives_mo_and_s_not_pb():
    spectrum = synthetic_spectrum({("Mo", "L"): 50000, ("S", "K"): 70000})
    assert suggested(spectrum) == {"Mo", "S"}


def test_pyrite_gives_fe_and_s_only():
    spectrum = synthetic_spectrum({("Fe", "K"): 30000, ("Fe", "L"): 3000, ("S", "K"): 80000})
    assert suggested(spectrum) == {"Fe", "S"}


def test_tungsten_silicide_gives_w_and_si():
    # WSi2 at 20 kV: W Ma (1.775) overlaps Si Ka (1.740); W La at 8.4 keV identifies W.
    spectrum = synthetic_spectrum({("W", "M"): 50000, ("W", "L"): 15000, ("Si", "K"): 60000})
    result = suggest_elements(spectrum)
    assert {s.element for s in result} == {"W", "Si"}
    assert all(0 < s.score <= 1 and s.significance >= 8 for s in result)
    assert result[0].score == 1.0
    assert [s.score for s in result] == sorted((s.score for s in result), reverse=True)


def test_minor_element_is_found_and_scored_below_majors():
    spectrum = synthetic_spectrum({("Si", "K"): 50000, ("O", "K"): 30000, ("Ca", "K"): 3000})
    result = {s.element: s for s in suggest_elements(spectrum, min_score=0.02)}
    assert set(result) == {"Si", "O", "Ca"}
    assert result["Ca"].score < 0.2 < result["O"].score


def test_lines_above_the_beam_energy_are_not_used():
    # At 10 kV (overvoltage of Fe K 1.4) Fe is mapped with Fe La; the Pb L lines (edge 13 keV)
    # cannot be excited, so Pb is identified through its M lines alone.
    spectrum = synthetic_spectrum(
        {("Fe", "K"): 20000, ("Fe", "L"): 5000, ("Pb", "M"): 20000}, beam=10.0
    )
    result = {s.element: s for s in suggest_elements(spectrum)}
    assert set(result) == {"Fe", "Pb"}
    assert (result["Pb"].line, result["Fe"].line) == ("Pb_Ma", "Fe_La")


def test_exclude_and_max_elements():
    spectrum = synthetic_spectrum({("Si", "K"): 50000, ("O", "K"): 30000, ("Al", "K"): 20000})
    assert suggested(spectrum) == {"Si", "O", "Al"}
    assert "O" not in suggested(spectrum, exclude=("O",))
    top = suggest_elements(spectrum, max_elements=1)
    assert [s.element for s in top] == ["Si"]


def test_pure_background_and_empty_spectra_suggest_nothing():
    assert suggest_elements(synthetic_spectrum({})) == []
    empty = Spectrum(np.zeros(AXIS.size), AXIS, beam_energy=20.0)
    assert suggest_elements(empty) == []


def test_suggestion_dataclass_fields():
    suggestion = ElementSuggestion("Fe", 0.5, "Fe_Ka", 6.4)
    assert (suggestion.element, suggestion.score, suggestion.line, suggestion.energy) == (
        "Fe",
        0.5,
        "Fe_Ka",
        6.4,
    )


def _bruker_sum_spectrum(name: str) -> Spectrum:
    from rsciio.bruker import file_reader

    signals = file_reader(str(DATA / "bruker" / name))
    cube = next(s for s in signals if s["data"].ndim >= 1 and "EDS" in _signal_type(s))
    return _to_spectrum(cube)


def _signal_type(signal: dict) -> str:
    return str(signal["metadata"].get("Signal", {}).get("signal_type", ""))


def _to_spectrum(signal: dict) -> Spectrum:
    data = np.asarray(signal["data"], dtype=np.float64)
    counts = data.reshape(-1, data.shape[-1]).sum(axis=0)
    axis = next(a for a in signal["axes"] if not a.get("navigate", False))
    energy = EnergyAxis(float(axis["offset"]), float(axis["scale"]), int(axis["size"]))
    beam = float(signal["metadata"]["Acquisition_instrument"]["SEM"]["beam_energy"])
    return Spectrum(counts, energy, beam_energy=beam)


@REAL
@pytest.mark.slow
def test_feldspar_bcf_suggests_o_na_al_si_k():
    spectrum = _bruker_sum_spectrum("P45_the_default_job.bcf")
    assert spectrum.counts.size == 2048 and spectrum.beam_energy == 20.0
    start = time.process_time()  # CPU: the wall clock is the machine's load
    result = suggest_elements(spectrum)
    elapsed = time.process_time() - start
    assert {s.element for s in result} == {"O", "Na", "Al", "Si", "K"}
    assert result[0].element == "Si"
    assert elapsed < 10.0
    # The spectrum also has real trace peaks (Fe Ka at 6.40 keV is a ~20 sigma peak, Ca Ka
    # at 3.69, Mg Ka at 1.25): below the default 5 % they are reported with a lower threshold.
    traces = {s.element for s in suggest_elements(spectrum, min_score=0.02)}
    assert traces == {"O", "Na", "Al", "Si", "K", "Mg", "Ca", "Fe"}


@REAL
@pytest.mark.slow
def test_bruker_spx_single_spectrum_fe_s_cu():
    spectrum = _bruker_sum_spectrum("bruker_nano.spx")
    result = suggest_elements(spectrum)
    assert {s.element for s in result} == {"S", "Cu", "Fe"}


@REAL
@pytest.mark.slow
def test_bam_tm002_reference_material():
    from rsciio.hspy import file_reader

    spectrum = _to_spectrum(file_reader(str(DATA / "exspy" / "EDS_SEM_TM002.hspy"))[0])
    found = {s.element for s in suggest_elements(spectrum)}
    # certified Al, C, Cu, Mn, Zr; O (oxide) and Si (substrate) allowed. At 10 kV Cu is seen
    # through Cu La (which coincides with Pr Ma) and a weak Cu Ka; Pt M / Zr L, Ni L / Cu L and
    # Cr Kb / Mn Ka are told apart by whole families and the misfit discount (no Pr, Pt, Cr, Ni).
    assert {"Al", "C", "Cu", "Mn", "Zr"} <= found <= {"Al", "C", "Cu", "Mn", "Zr", "O", "Si"}


@REAL
@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "required", "allowed"),
    [
        ("exspy/EDS_TEM_FePt_nanoparticles.hspy", {"Fe", "Pt"}, {"Cu", "C", "O"}),
        ("jeol/met03.EDS", {"C", "Fe", "S", "Cu"}, set()),
    ],
)
def test_reference_spectra_give_exactly_their_elements(name, required, allowed):
    from napari_sigma.io.readers.reading import read_any

    found = {s.element for s in suggest_elements(read_any(DATA / name))}
    assert required <= found <= required | allowed
