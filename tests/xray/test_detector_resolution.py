"""The detector's resolution measured on a spectrum's own peaks (napari_sigma.xray.resolution):
against the resolution a spectrum was drawn with, espm's stated detector and the resolution
that real files' metadata state."""

from __future__ import annotations

import numpy as np
import pytest

from napari_sigma.energy import EnergyAxis
from napari_sigma.spectrum_image import Spectrum
from napari_sigma.xray import lines as xray
from napari_sigma.xray.elements import RARE_ELEMENTS
from napari_sigma.xray.resolution import (
    calibrate,
    combine_peaks,
    fwhm_at_mnka,
    measure_resolution,
)
from sigma_testdata import SHARED_EDS_DIR

REAL = pytest.mark.skipif(
    not SHARED_EDS_DIR.is_dir(), reason=f"real EDS files not found at {SHARED_EDS_DIR}"
)
ESPM_DEV = SHARED_EDS_DIR.parent / "espm_dev"
AXIS = EnergyAxis(offset=-0.2, scale=0.01, size=2048)
ROCK = {  # (element, shell): counts in the shell's strongest line
    ("O", "K"): 4e5, ("Mg", "K"): 1e5, ("Al", "K"): 1.5e5, ("Si", "K"): 4e5,
    ("K", "K"): 5e4, ("Ca", "K"): 8e4, ("Fe", "K"): 1.2e5,
}  # fmt: skip


def drawn_spectrum(fwhm_mnka_kev: float, seed: int = 0, shift: float = 0.0) -> Spectrum:
    """A Poisson spectrum of ``ROCK``'s lines (the line table's weights, Gaussians of the Fano
    model at ``fwhm_mnka_kev``, positions ``shift`` keV off) on a Kramers-like continuum."""
    energies = AXIS.energies
    e = np.clip(energies, 0.05, None)
    expected = 3000.0 * np.clip(20.0 - e, 0, None) / e * np.exp(-((0.6 / e) ** 3)) * AXIS.scale
    for (element, shell), counts in ROCK.items():
        for line in xray.element_lines(element, max_energy=20.0):
            if line.shell != shell:
                continue
            sigma = xray.detector_fwhm(line.energy, fwhm_mnka_kev) / xray.FWHM_PER_SIGMA
            profile = np.exp(-0.5 * ((energies - line.energy - shift) / sigma) ** 2)
            expected += counts * line.weight * profile * AXIS.scale / (sigma * np.sqrt(2 * np.pi))
    counts_drawn = np.random.default_rng(seed).poisson(expected).astype(np.float64)
    return Spectrum(counts_drawn, AXIS, beam_energy=20.0)


def measured(spectrum: Spectrum):
    beam = float(spectrum.beam_energy or 20.0)
    return measure_resolution(spectrum, beam, set(RARE_ELEMENTS), 8.0)


def test_fwhm_at_mnka_inverts_the_fano_model():
    for energy in (0.28, 1.74, 5.8987, 8.04):
        assert fwhm_at_mnka(xray.detector_fwhm(energy, 0.137), energy) == pytest.approx(0.137)


@pytest.mark.parametrize("fwhm", [0.110, 0.130, 0.160])
def test_the_resolution_a_spectrum_was_drawn_with_is_measured(fwhm):
    result = measured(drawn_spectrum(fwhm, seed=1))
    assert result is not None
    # Ca Ka has K Kb 0.1 keV below it (and Al Ka Mg Kb at 160 eV): not isolated
    assert {p.line for p in result.peaks} >= {"Si_Ka", "K_Ka", "Fe_Ka"}
    assert result.fwhm_mnka == pytest.approx(fwhm, abs=0.002)
    assert result.shift == pytest.approx(0.0, abs=0.002)


def test_a_shifted_energy_scale_is_measured_and_the_suggestion_fits_it():
    spectrum = drawn_spectrum(0.130, seed=2, shift=0.008)
    result = measured(spectrum)
    assert result.fwhm_mnka == pytest.approx(0.130, abs=0.002)
    assert result.shift == pytest.approx(0.008, abs=0.002)
    fwhm, correction = calibrate(spectrum, 20.0, set(RARE_ELEMENTS), 8.0)
    assert fwhm == result.fwhm_mnka
    # the suggestion's shift is added to the channels' energies: peaks 8 eV high need -8 eV
    assert correction == pytest.approx(-0.008, abs=0.0041)  # its 4 eV grid


def test_no_peak_no_measurement():
    assert combine_peaks([]) is None
    flat = Spectrum(np.random.default_rng(0).poisson(50.0, AXIS.size) * 1.0, AXIS, 20.0)
    assert measured(flat) is None


@pytest.mark.skipif(not ESPM_DEV.is_dir(), reason="espm_dev cases not found")
@pytest.mark.parametrize("case", ["peridotite_n15", "twin_garnets_n300", "steel_carbides_n40"])
def test_espms_stated_detector_is_measured(case):
    # espm's detector (shared/data/espm_dev/make_dev_cases.py): FWHM(E) = 0.012 E + 0.058 keV,
    # 128.8 eV at Mn Ka; its own line physics and widths (linear in E, not the Fano model)
    from napari_sigma.io.readers.reading import read_any

    result = measured(read_any(ESPM_DEV / case / "cube.hspy").sum_spectrum())
    assert result.fwhm_mnka == pytest.approx(0.1288, abs=0.003)
    assert result.shift == pytest.approx(0.0, abs=0.003)


def _bruker_stated_fwhm(path) -> float:
    """The resolution at Mn Ka a Bruker file states: its spectrum header's peak-width
    calibration, sigma^2 = SigmaAbs + SigmaLin * E (keV)."""
    from rsciio.bruker import file_reader

    header = file_reader(str(path), select_type="spectrum_image")[-1]["original_metadata"]
    spectrum = header["Spectrum"]
    sigma2 = float(spectrum["SigmaAbs"]) + float(spectrum["SigmaLin"]) * xray.MN_KA_KEV
    return xray.FWHM_PER_SIGMA * np.sqrt(sigma2)


@REAL
@pytest.mark.slow
@pytest.mark.parametrize(
    "name",
    [
        "P45_the_default_job.bcf",
        "30x30_instructively_packed_16bit_compressed.bcf",  # was calibrated at 150 eV
        "Hitachi_TM3030Plus.bcf",  # 140 eV
        "over16bit.bcf",  # 170 eV
        "test_TEM.bcf",
    ],
)
def test_bruker_files_measure_the_resolution_their_headers_state(name):
    from napari_sigma.io.readers.reading import read_any

    path = SHARED_EDS_DIR / "bruker" / name
    result = measured(read_any(path).sum_spectrum())
    assert result.fwhm_mnka == pytest.approx(_bruker_stated_fwhm(path), abs=0.005)


@REAL
@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "stated"),
    [("phenom/Elid2Version4.elid", 0.1260), ("exspy/EDS_TEM_FePt_nanoparticles.hspy", 0.1333)],
)
def test_files_measure_the_resolution_their_metadata_state(name, stated):
    from napari_sigma.io.readers.reading import read_any

    data = read_any(SHARED_EDS_DIR / name)
    spectrum = data.sum_spectrum() if hasattr(data, "sum_spectrum") else data
    assert measured(spectrum).fwhm_mnka == pytest.approx(stated, abs=0.005)
