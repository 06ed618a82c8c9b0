"""Close ties (minerals.identify): a composition that no entry fits is named after its nearest
entry only when one entry is nearest; two entries that both fit and score alike are shown as
not resolved from each other (the ≈ of the Phases table, ``not_resolved_from``)."""

from napari_sigma.minerals.identify import (
    HYDROUS_MARGIN,
    Candidate,
    _identification,
    close_rival,
    identify_composition,
    unresolved_candidates,
)

# a slag glass of the fifth held-out set (sem_cu_slag_h50, Si7Al2Fe3Ca1.5Mg0.5K0.5O22.25) as
# the published K yields read it (names23b's branch): an amphibole's composition, as near a
# garnet's; the comparison rejects both
SLAG = {"O": 42.53, "Mg": 1.64, "Al": 6.61, "Si": 22.12, "K": 2.18, "Ca": 6.6, "Fe": 18.3}
SLAG_ERR = {"O": 0.19, "Mg": 0.04, "Al": 0.07, "Si": 0.12, "K": 0.05, "Ca": 0.07, "Fe": 0.14}
WT = {"Si": 40.0, "O": 60.0}


def _candidate(name, score, chi2, composition=None):
    return Candidate(name, name, score, chi2, dict(composition or {"Si": 40.0, "O": 60.0}))


def test_a_composition_equally_near_two_entries_is_unknown_with_both_and_their_scores():
    found = identify_composition(SLAG, SLAG_ERR)
    assert found.unknown, found.name
    names = [name for name, _ in found.alternatives]
    assert names[0] == "ferro-hornblende" and names[1].startswith("garnet ")
    assert found.alternatives[0][1] < HYDROUS_MARGIN * found.alternatives[1][1]


def test_a_nearest_entry_that_stands_out_keeps_its_name_with_the_mark():
    far = [_candidate("nylon", 0.05, 90.0, {"C": 70.0, "O": 30.0}),
           _candidate("epoxy", 0.02, 140.0, {"C": 80.0, "O": 20.0})]  # fmt: skip
    assert close_rival(far) is None
    assert _identification(far, {"C": 60.0, "O": 40.0}, {}, 0.02).name == "nylon?"
    near = [far[0], _candidate("epoxy", 0.045, 95.0, {"C": 80.0, "O": 20.0})]
    assert close_rival(near).name == "epoxy"
    assert _identification(near, {"C": 60.0, "O": 40.0}, {}, 0.02).unknown


def test_two_entries_that_fit_and_score_alike_are_not_resolved_from_each_other():
    best = _candidate("alpha", 0.6, 0.5)  # not library rows: their compositions as given
    apart = {"Si": 25.0, "Fe": 15.0, "O": 60.0}
    other = _candidate("other", 0.5, 0.9, apart)
    assert ("other", 0.5) in unresolved_candidates([best, other], wt=WT)
    behind = _candidate("other", 0.6 / HYDROUS_MARGIN - 0.01, 0.9, apart)
    assert unresolved_candidates([best, behind], wt=WT) == []
    rejected = _candidate("other", 0.5, 400.0, apart)  # its misfit rejected
    assert unresolved_candidates([best, rejected], wt=WT) == []
    assert unresolved_candidates([best, other]) == []  # without the measurement: composition only
