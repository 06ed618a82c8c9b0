"""The neighbour step names a phase after its best mixture with any of its longest touching
phases, not after the first that fits (`phases._explain_by_neighbours`): the fourth held-out
set's fe_oxide_h60, whose hematite-magnetite phase was named wustite with 41 % of its goethite
rim (the longest neighbour) to explain 3.8 wt % Si that 8 % of its quartz explains better."""

from types import SimpleNamespace

import numpy as np

from napari_sigma.minerals.identify import identify_composition, identify_with_neighbour
from napari_sigma.minerals.library import load_library
from napari_sigma.minerals.phases import PhaseMineral, _explain_by_neighbours

LIBRARY = load_library()
# the cores' compositions (wt %) and counting errors of `napari-sigma run` with the published K
# yields (names22a, held-out12 fe_oxide_h60)
QUARTZ = {"O": 54.1, "Si": 45.87}
OXIDE = {"O": 29.81, "Si": 3.8, "Fe": 66.39}  # its hematite and magnetite, one found phase
OXIDE_ERR = {"O": 0.35, "Si": 0.14, "Fe": 0.6}
RIM = {"O": 39.62, "Si": 9.35, "Fe": 51.03}  # its goethite rims, with quartz pixels


def _phase(pid, wt, err):
    return PhaseMineral(pid, SimpleNamespace(wt=wt, err_wt=err),
                        identify_composition(wt, err, LIBRARY))  # fmt: skip


def _grain_in_a_rim() -> np.ndarray:
    """Phase 2, a 6 x 6 grain in a 16 x 16 map of quartz (1), rimmed on three sides by phase 3:
    the rim is its longest neighbour."""
    labels = np.ones((16, 16), dtype=int)
    labels[4:12, 4:12] = 3
    labels[5:11, 5:12] = 2
    return labels


def test_each_neighbour_alone_fits_and_the_quartz_fits_better_with_less():
    assert identify_composition(OXIDE, OXIDE_ERR, LIBRARY).unknown
    rim = identify_with_neighbour(OXIDE, OXIDE_ERR, RIM, "P3", LIBRARY)
    quartz = identify_with_neighbour(OXIDE, OXIDE_ERR, QUARTZ, "P1 quartz", LIBRARY)
    assert rim.name == "wustite" and rim.neighbour_share > 0.35
    assert quartz.name == "magnetite" and quartz.neighbour_share < 0.12
    assert quartz.score > rim.score


def test_the_best_mixture_over_the_neighbours_names_the_phase():
    labels = _grain_in_a_rim()
    found = [_phase(1, QUARTZ, {"O": 0.18, "Si": 0.16}), _phase(2, OXIDE, OXIDE_ERR),
             _phase(3, RIM, {"O": 0.47, "Si": 0.24, "Fe": 0.63})]  # fmt: skip
    _explain_by_neighbours(found, labels, LIBRARY)
    named = found[1].identification
    assert named.name == "magnetite", (named.name, named.trace)
    assert named.trace[0].endswith("% of P1 quartz") and named.neighbour_share < 0.12
