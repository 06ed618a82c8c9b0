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
    from napari_sigma.io.reading import read_any

    found = {s.element for s in suggest_elements(read_any(DATA / name))}
    assert required <= found <= required | allowed
