"""A name whose composition the comparison rejects reads as the nearest entry with a "?"
(minerals.identify.fits_composition), in the identification and every name made from it."""

import pytest

from napari_sigma.minerals.identify import (
    OUTSIDE_TOLERANCE_MARK,
    fits_composition,
    identify_composition,
    plain_name,
)
from napari_sigma.minerals.phases import PhaseMineral, mineral_phase_names
from napari_sigma.minerals.ranking import rank_candidates

ERR = 0.5


def _identified(wt):
    return identify_composition(wt, {el: ERR for el in wt})


def test_a_composition_several_tolerances_from_its_best_entry_is_asked():
    # titanite CaTiSiO5 (Ca 20.4, Ti 24.4, Si 14.3, O 40.8 wt %) with 5 wt % of a foreign Fe:
    # rejected as a whole, its own elements are titanite's (a composition whose own elements
    # are not, Ca 47 % high, is unknown: tests/minerals/test_own_elements.py)
    wt = {"Ca": 19.4, "Ti": 23.2, "Si": 13.6, "O": 38.8, "Fe": 5.0}
    found = _identified(wt)
    assert found.name == f"titanite{OUTSIDE_TOLERANCE_MARK}" == "titanite?"
    assert found.mineral == "titanite" and not found.unknown  # the closest entry, kept
    assert found.trace == ["Fe 5.0 wt%"]
    assert 0.02 < found.score < 0.1  # above the library's "unknown", below a match
    best = rank_candidates(wt, {el: ERR for el in wt})[0]
    assert best.name == "titanite" and not fits_composition(best, wt)
    assert plain_name(found.name) == "titanite"
    named = mineral_phase_names(["P1"], [PhaseMineral(1, None, found)])
    assert named == ["P1 titanite?"]


def test_compositions_within_the_tolerance_keep_their_names():
    for wt, name in (
        ({"Si": 46.7, "O": 53.3}, "quartz"),
        ({"Ca": 25.0, "Ti": 25.0, "Si": 12.0, "O": 38.0}, "titanite"),  # 15 % Si low
        ({"Fe": 36.0, "S": 40.0, "Cu": 24.0}, "cubanite"),
    ):
        assert _identified(wt).name == name


def test_the_profile_chi2_of_a_line_weighs_counting_against_the_physics_factor():
    from math import log

    from napari_sigma.minerals.spectral import profile_chi2

    sigma = log(2.0)
    assert profile_chi2(1000.0, 30.0, 800.0, sigma) == 0.0  # more than predicted: a coat adds
    # many counts: the physics' factor alone, (ln(1/4) / ln 2)^2 = 4, within the counting's share
    assert profile_chi2(2.5e5, 500.0, 1e6, sigma) == pytest.approx(4.0, rel=0.01)
    # a line expected at 30 counts over a 100-count Poisson error: the counting cannot tell
    assert profile_chi2(0.0, 100.0, 30.0, sigma) < 0.1
    # none of 10^4 expected counts seen (+-100): far outside both
    assert profile_chi2(0.0, 100.0, 1e4, sigma) > 9.0


def _nylon_candidate(composition, counts, seed=1):
    """nylon (C6H11NO: C 63.7, N 12.4, O 14.1 wt %) as a candidate for a spectrum of
    ``composition`` at 15 kV quantified with C and O only (N not analysed), its spectral
    evidence taken (`minerals.spectral._rerank_by_spectrum`)."""
    from napari_sigma.energy import EnergyAxis
    from napari_sigma.minerals.spectral import _rerank_by_spectrum
    from napari_sigma.quant.quantify import quantify_spectrum
    from sigma_testdata import measured_spectrum

    axis = EnergyAxis(-0.1, 0.01, 2048)
    spectrum, _ = measured_spectrum(composition, axis, 15.0, counts, seed)
    measured = quantify_spectrum(spectrum, axis, ["C", "O"], 15.0, width=(1.0, 0.0))
    nylon = [c for c in rank_candidates(measured.wt, measured.err_wt) if c.name == "nylon"]
    _rerank_by_spectrum(nylon, spectrum, axis, measured, None)
    return nylon[0], measured.wt


@pytest.mark.parametrize("counts", [1e4, 1e5])
def test_a_name_whose_unanalysed_light_element_shows_no_line_is_asked(counts):
    # a C-O deposit (C 82, O 18 wt %: nylon's C and O ratio, JEOL rawdata's deposit) has no
    # N K line where nylon's 12 wt % N would put hundreds of counts: its composition over C and
    # O fits nylon, its spectrum does not
    candidate, wt = _nylon_candidate({"C": 0.82, "O": 0.18}, counts)
    assert candidate.chi2 < 1.0 and candidate.absent_tested == 1
    assert candidate.absent_chi2 > 15.0
    assert not fits_composition(candidate, wt)


@pytest.mark.parametrize("counts", [1e4, 1e5])
def test_a_name_whose_unanalysed_light_element_shows_its_line_keeps_it(counts):
    from napari_sigma.minerals.library import composition_of

    candidate, wt = _nylon_candidate(dict(composition_of("C6H11NO")), counts)
    assert candidate.absent_tested == 1 and candidate.absent_chi2 < 1.0
    assert fits_composition(candidate, wt)
