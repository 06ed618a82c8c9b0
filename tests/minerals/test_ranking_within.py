"""`rank_candidates(within=...)` ranks the minerals and series of some elements only, each with
the very candidate the whole ranking gives it, in the same order (the carbon hypotheses of
`with_unmeasured_carbon` keep only C-bearing ones of the measured elements)."""

import pytest

from napari_sigma.minerals.library import load_library
from napari_sigma.minerals.ranking import rank_candidates

LIBRARY = load_library()
MEASUREMENTS = [
    ({"Mg": 27.0, "O": 56.0, "C": 14.0}, {"Mg": 0.3, "O": 0.8, "C": 1.0}),  # magnesite with C
    ({"Ca": 30.0, "Mg": 12.0, "O": 48.0, "C": 10.0}, {"Ca": 0.4, "O": 0.9}),  # dolomite-like
    ({"Fe": 45.0, "O": 40.0, "C": 9.0, "Mn": 2.0}, {}),  # siderite with Mn
    ({"Si": 46.7, "O": 53.3}, {"Si": 0.5, "O": 0.7}),  # quartz: no C-bearing candidate
]


def _holds(elements):
    def within(found):
        return "C" in found and elements <= found

    return within


@pytest.mark.parametrize(("wt", "err"), MEASUREMENTS)
def test_within_gives_the_whole_rankings_candidates_of_those_elements(wt, err):
    measured = {el for el, v in wt.items() if v >= 0.5 and el != "C"}
    whole = rank_candidates(wt, err, LIBRARY)
    part = rank_candidates(wt, err, LIBRARY, within=_holds(measured))

    def passes(c):  # as with_unmeasured_carbon keeps them
        held = {el for el, v in c.composition.items() if v > 0} - {"C"}
        return c.composition.get("C", 0.0) >= 1.0 and held == measured

    expected = [(c.name, c.score, c.chi2, c.composition) for c in whole if passes(c)]
    found = [(c.name, c.score, c.chi2, c.composition) for c in part if passes(c)]
    assert found == expected
    assert len(part) < len(whole)
    if wt.get("Mg", 0) > 20:
        assert "magnesite" in [name for name, *_ in found]


def test_within_accepting_everything_is_the_whole_ranking():
    wt, err = MEASUREMENTS[1]
    whole = rank_candidates(wt, err, LIBRARY)
    everything = rank_candidates(wt, err, LIBRARY, within=lambda found: True)
    assert [(c.name, c.score) for c in everything] == [(c.name, c.score) for c in whole]
