"""A name whose composition the comparison rejects reads as the nearest entry with a "?"
(minerals.identify.fits_composition), in the identification and every name made from it."""

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
    # titanite CaTiSiO5 is Ca 20.4, Ti 24.4, Si 14.3, O 40.8 wt %: Ca 47 % high, Ti 18 % low
    wt = {"Ca": 30.0, "Ti": 20.0, "Si": 14.0, "O": 36.0}
    found = _identified(wt)
    assert found.name == f"titanite{OUTSIDE_TOLERANCE_MARK}" == "titanite?"
    assert found.mineral == "titanite" and not found.unknown  # the closest entry, kept
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
