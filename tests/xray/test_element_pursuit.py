"""The suggestion's greedy pursuit as a public seam (napari_sigma.xray.elements.ElementPursuit):
the detector calibration (napari_sigma.xray.resolution) makes its passes through it, and the
suggestion reuses the calibration's pass where it is the same one (the shift chosen is 0)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_sigma.energy import EnergyAxis
from napari_sigma.spectrum_image import Spectrum
from napari_sigma.xray import elements
from napari_sigma.xray import lines as xray
from napari_sigma.xray.elements import (
    RARE_ELEMENTS,
    ElementPursuit,
    pursue_elements,
    suggest_elements,
)
from napari_sigma.xray.resolution import calibrate, calibrate_detector

AXIS = EnergyAxis(offset=-0.2, scale=0.01, size=2048)
ROCK = {"O": 4e5, "Mg": 1e5, "Al": 1.5e5, "Si": 4e5, "K": 5e4, "Ca": 8e4, "Fe": 1.2e5}


def rock_spectrum(shift: float = 0.0, seed: int = 0) -> Spectrum:
    """Poisson counts of ``ROCK``'s K lines (130 eV detector, peaks ``shift`` keV off the
    table) on a Kramers-like continuum."""
    energies = AXIS.energies
    e = np.clip(energies, 0.05, None)
    expected = 3000.0 * np.clip(20.0 - e, 0, None) / e * np.exp(-((0.6 / e) ** 3)) * AXIS.scale
    for element, counts in ROCK.items():
        for line in xray.element_lines(element, max_energy=20.0):
            if line.shell != "K":
                continue
            sigma = xray.detector_fwhm(line.energy, 0.130) / xray.FWHM_PER_SIGMA
            profile = np.exp(-0.5 * ((energies - line.energy - shift) / sigma) ** 2)
            expected += counts * line.weight * profile * AXIS.scale / (sigma * np.sqrt(2 * np.pi))
    drawn = np.random.default_rng(seed).poisson(expected).astype(np.float64)
    return Spectrum(drawn, AXIS, beam_energy=20.0)


def counted_pursuits(monkeypatch) -> list[int]:
    """Count the greedy pursuits run (one entry per `_greedy_selection` call: its limit)."""
    limits: list[int] = []
    greedy = elements._greedy_selection

    def counting(problem, limit, min_significance):
        limits.append(limit)
        return greedy(problem, limit, min_significance)

    monkeypatch.setattr(elements, "_greedy_selection", counting)
    return limits


def pursuit_stub(greedy: tuple[str, ...], limit: int) -> ElementPursuit:
    return ElementPursuit(0.13, 0.0, limit, 8.0, greedy, greedy, {}, problem=None)


def test_a_pursuit_serves_the_same_setting_and_any_limit_it_stopped_before():
    stopped = pursuit_stub(("Si", "O", "Fe"), limit=16)  # stopped early: none gained enough
    assert stopped.serves(0.13, 0.0, 16, 8.0)
    assert stopped.serves(0.13, 0.0, 30, 8.0)  # a larger limit stops at the same three
    assert stopped.serves(0.13, 0.0, 3, 8.0)
    assert not stopped.serves(0.13, 0.0, 2, 8.0)  # a prefix: its drop round differs
    assert not stopped.serves(0.14, 0.0, 16, 8.0)
    assert not stopped.serves(0.13, 0.004, 16, 8.0)
    assert not stopped.serves(0.13, 0.0, 16, 5.0)
    full = pursuit_stub(tuple("ABCD"), limit=4)  # stopped by its limit
    assert full.serves(0.13, 0.0, 4, 8.0)
    assert not full.serves(0.13, 0.0, 5, 8.0)
    assert not full.serves(0.13, 0.0, 3, 8.0)


def test_a_pursuit_adds_the_same_elements_whatever_its_limit():
    # what lets the calibration take its four majors from its 12-element pass
    spectrum = rock_spectrum()
    exclude = set(RARE_ELEMENTS)
    long = pursue_elements(spectrum, 20.0, exclude, 0.130, 0.0, 12, 8.0)
    short = pursue_elements(spectrum, 20.0, exclude, 0.130, 0.0, 4, 8.0)
    assert len(long.greedy) > 4
    assert short.greedy == long.greedy[:4]


def test_the_suggestion_reuses_the_calibrations_pursuit_where_the_shift_is_zero(monkeypatch):
    spectrum = rock_spectrum()
    exclude = set(RARE_ELEMENTS)
    calibration = calibrate_detector(spectrum, 20.0, exclude, 8.0)
    assert calibration.shift_kev == 0.0
    assert calibration.pursuit.serves(calibration.fwhm_mnka_kev, 0.0, 16, 8.0)
    fresh = pursue_elements(spectrum, 20.0, exclude, calibration.fwhm_mnka_kev, 0.0, 16, 8.0)
    assert fresh.kept == calibration.pursuit.kept
    assert fresh.significance == calibration.pursuit.significance
    assert fresh.counts() == calibration.pursuit.counts()
    limits = counted_pursuits(monkeypatch)
    suggested = suggest_elements(spectrum)
    # the nominal 130 eV pass (peaks) and the measured-width pass (shift); none of its own
    assert limits == [12, 16]
    assert {s.element for s in suggested} == set(ROCK)
    ranked = elements._rank(fresh.counts(), fresh.significance, 20.0, 12, 0.05)
    assert suggested == ranked


def test_a_shifted_spectrum_gets_a_pursuit_of_its_own(monkeypatch):
    spectrum = rock_spectrum(shift=0.008, seed=2)
    calibration = calibrate_detector(spectrum, 20.0, set(RARE_ELEMENTS), 8.0)
    assert calibration.shift_kev == pytest.approx(-0.008, abs=0.0041)
    limits = counted_pursuits(monkeypatch)
    suggested = suggest_elements(spectrum)
    assert limits == [12, 16, 16]  # the suggestion's own, at the shift
    assert {s.element for s in suggested} == set(ROCK)


def test_calibrate_gives_the_detector_settings_of_calibrate_detector():
    spectrum = rock_spectrum(seed=3)
    calibration = calibrate_detector(spectrum, 20.0, set(RARE_ELEMENTS), 8.0)
    assert calibrate(spectrum, 20.0, set(RARE_ELEMENTS), 8.0) == (
        calibration.fwhm_mnka_kev,
        calibration.shift_kev,
    )


def test_a_spectrum_without_peaks_is_calibrated_on_its_majors_without_a_pursuit():
    flat = Spectrum(np.random.default_rng(0).poisson(50.0, AXIS.size) * 1.0, AXIS, 20.0)
    calibration = calibrate_detector(flat, 20.0, set(RARE_ELEMENTS), 8.0)
    assert calibration.pursuit is None
    assert (calibration.fwhm_mnka_kev, calibration.shift_kev) == (0.130, 0.0)
