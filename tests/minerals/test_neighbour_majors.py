"""The neighbour step explains a phase's minor elements, not a major one
(`identify.identify_with_neighbour`'s ``majors_from_neighbour``; `phases.core_on_boundary`):
the fifth held-out set's solder, whose Ag3Sn plates were "silver" with 38 % of the tin around
them and whose Cu6Sn5 was "cassiterite" with 32 % of its copper pad."""

from types import SimpleNamespace

import numpy as np
import pytest

from napari_sigma.minerals.identify import identify_composition, identify_with_neighbour
from napari_sigma.minerals.library import MineralLibrary, load_library
from napari_sigma.minerals.phases import (
    PhaseMineral,
    _explain_by_neighbours,
    core_on_boundary,
)

# the cores' compositions (wt %) and counting errors of `napari-sigma run` on main a0c985d
AG_SN = {"Ag": 62.45, "Sn": 37.55}  # heldout5 solder_h80, its Ag3Sn plates
AG_SN_ERR = {"Ag": 1.52, "Sn": 1.29}
SN_CU = {"Sn": 71.94, "Cu": 27.68, "Ag": 0.38}  # heldout5_s1, its Cu6Sn5 (no O line)
SN_CU_ERR = {"Sn": 1.24, "Cu": 0.59, "Ag": 0.36}
TIN = {"Sn": 100.0}
PAD = {"Sn": 13.21, "Cu": 86.21, "Ag": 0.59}  # the s1 copper pad beside it ("bronze")


def _library() -> MineralLibrary:
    """The packaged library without its intermetallic compounds (which hold Ag3Sn and Cu6Sn5):
    the rule, not the library, is tested here."""
    library = load_library()
    minerals = {n: m for n, m in library.minerals.items() if m.group != "alloy: intermetallic"}
    return MineralLibrary(minerals, library.series)


LIBRARY = _library()


def _phase(pid, wt, err):
    found = identify_composition(wt, err, LIBRARY)
    return PhaseMineral(pid, SimpleNamespace(wt=wt, err_wt=err), found)


def _grain(size: int) -> np.ndarray:
    """A ``size`` x ``size`` grain (phase 2) in a 16 x 16 map of phase 1."""
    labels = np.ones((16, 16), dtype=int)
    labels[4 : 4 + size, 4 : 4 + size] = 2
    return labels


def test_why_the_own_elements_rule_did_not_reject_silver():
    """Nothing fits the Ag-Sn phase (best score below MIN_SCORE), so the first identification is
    an unknown without an own-elements verdict; the neighbour step then named it."""
    alone = identify_composition(AG_SN, AG_SN_ERR, LIBRARY)
    assert alone.unknown and not alone.ruled_out
    old = identify_with_neighbour(
        AG_SN, AG_SN_ERR, TIN, "P1 tin", LIBRARY, majors_from_neighbour=True
    )
    assert old.name == "silver" and old.trace[0] == "38 % of P1 tin"


@pytest.mark.parametrize(
    ("wt", "err", "neighbour"), [(AG_SN, AG_SN_ERR, TIN), (SN_CU, SN_CU_ERR, PAD)]
)
def test_a_neighbour_does_not_bring_a_major_element(wt, err, neighbour):
    found = identify_with_neighbour(wt, err, neighbour, "P1", LIBRARY)
    assert found is None or found.unknown, found.name


def test_a_phase_without_an_o_line_is_not_an_oxide_with_its_neighbour():
    """The Cu6Sn5 with its pad's Cu allowed as a neighbour's: tin wins over cassiterite, whose O
    was not measured (the ranking's UNMEASURED_LIGHT_PENALTY); before, library order picked
    cassiterite (0.84, a tie)."""
    found = identify_with_neighbour(
        SN_CU, SN_CU_ERR, PAD, "P3", LIBRARY, majors_from_neighbour=True
    )
    assert found.name != "cassiterite", found.name
    scores = dict(found.alternatives)
    assert scores.get("cassiterite", 0.0) < found.score


def test_the_step_leaves_a_core_away_from_its_boundary_unknown():
    labels = _grain(7)
    assert core_on_boundary(labels) == set()
    found = [_phase(1, TIN, {"Sn": 0.33}), _phase(2, AG_SN, AG_SN_ERR)]
    _explain_by_neighbours(found, labels, LIBRARY)
    named = found[1].identification
    assert named.unknown and named.name == "unknown (Ag1.83Sn1.00)", named.name
    assert "silver" in [name for name, _ in named.alternatives]


def test_a_core_on_its_boundary_may_hold_a_neighbour_s_major_element():
    """A 2 x 2 grain's core is its boundary: its spectrum is partly its neighbour's."""
    labels = _grain(2)
    assert core_on_boundary(labels) == {2}
    found = [_phase(1, TIN, {"Sn": 0.33}), _phase(2, AG_SN, AG_SN_ERR)]
    _explain_by_neighbours(found, labels, LIBRARY)
    assert found[1].identification.name == "silver"


def test_a_map_that_is_not_2d_has_every_core_on_its_boundary():
    assert core_on_boundary(np.array([1, 1, 2, 2, 3])) == {1, 2, 3}


def test_a_neighbour_may_bring_major_elements_when_the_rest_is_tested():
    """The fifth set's tin vein: a stannite core holding 31 % of its quartz matrix (projected
    spheres in a foil), Si and O major elements; what is left, Cu, Fe, Sn and S, is stannite's
    in its proportions: stannite with some of P1 quartz, though its core is away from the
    boundary."""
    labels = _grain(7)
    quartz = {"Si": 46.74, "O": 53.26}
    grain = {"O": 15.12, "Si": 14.28, "Fe": 8.76, "Cu": 20.2, "S": 18.57, "Sn": 23.03}
    found = [_phase(1, quartz, {"Si": 0.3, "O": 0.3}), _phase(2, grain, {el: 0.3 for el in grain})]
    _explain_by_neighbours(found, labels, LIBRARY)
    named = found[1].identification
    assert named.name == "stannite" and named.trace[0].endswith("% of P1 quartz"), named.name


def test_minor_elements_of_a_neighbour_are_still_explained():
    """The MnS stringer with 9 wt % Fe of its ferrite (a minor element) in a core away from
    its boundary: alabandite with some of its neighbour, as before."""
    labels = _grain(7)
    host = {"Fe": 83.5, "Cr": 16.2, "Mn": 0.3}
    grain = {"Mn": 57.2, "S": 32.6, "Fe": 8.8, "Cr": 1.3}
    found = [_phase(1, host, {}), _phase(2, grain, {})]
    _explain_by_neighbours(found, labels, LIBRARY)
    assert found[1].identification.name == "alabandite"


def test_a_series_with_a_foreign_major_element_is_ruled_out():
    """The series path: an olivine-like phase holding 15 wt % Cu is no olivine Fo-Fa mixture
    (it is an intergrowth of olivine and cuprite, or unknown)."""
    from napari_sigma.minerals.own_elements import ruled_out_by_own_elements
    from napari_sigma.minerals.ranking import rank_candidates

    olivine = {"Mg": 17.3, "Fe": 27.4, "Si": 16.6, "O": 38.7}
    wt = {el: 0.85 * v for el, v in olivine.items()} | {"Cu": 15.0}
    err = {el: 0.3 for el in wt}
    series = next(c for c in rank_candidates(wt, err, LIBRARY) if c.series is not None)
    assert series.name.startswith("olivine Fo"), series.name
    assert ruled_out_by_own_elements(series, wt, err).startswith("Cu 15.0 wt%, a major element")
    found = identify_composition(wt, err, LIBRARY)
    assert found.unknown or found.components, found.name  # never "olivine Fo53(?)"
