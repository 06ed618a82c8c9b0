"""A particle's own composition by its host's marker elements (minerals.markers)."""

import numpy as np
import pytest

from napari_sigma.compute.progress import run_to_completion
from napari_sigma.energy import EnergyAxis
from napari_sigma.minerals.markers import marker_share, trace_elements
from napari_sigma.minerals.phases import identify_phases
from napari_sigma.quant.simulate import line_spectrum
from napari_sigma.spectrum_image import SpectrumImage
from napari_sigma.synthetic.generator import weight_fractions

AXIS = EnergyAxis(-0.1, 0.01, 1024)
MNS = weight_fractions("MnS")
STEEL = {"Fe": 0.84, "Cr": 0.16}


def _grains_on_a_host(grain=MNS, host=STEEL, share=0.1, dose=3000, seed=0):
    """Square grains that lie on the host through the whole foil: each grain pixel is
    ``1 - share`` grain and ``share`` host, the same at its centre as at its boundary (no
    depth profile: the host correction has nothing to fit)."""
    own = line_spectrum(grain, AXIS, 15.0)
    around = line_spectrum(host, AXIS, 15.0)
    own, around = own / own.sum(), around / around.sum()
    labels = np.ones((48, 48), dtype=np.int32)
    for y in (4, 20, 36):
        for x in (4, 20, 36):
            labels[y : y + 9, x : x + 9] = 2
    inside = (labels == 2)[..., None]
    means = np.where(inside, (1 - share) * own + share * around, around)
    counts = np.random.default_rng(seed).poisson(means * dose).astype(np.float32)
    return SpectrumImage(counts, AXIS, 15.0), labels


def test_the_hosts_elements_in_a_grain_are_read_as_the_hosts_and_removed():
    image, labels = _grains_on_a_host()
    found = run_to_completion(identify_phases(image, labels, ["S", "Cr", "Mn", "Fe"]))
    grain = found[1]
    wt = grain.quantification.wt
    # 10 % of the steel's counts bring ~8 wt % Fe and 1.5 wt % Cr; what is left is MnS
    assert wt["Fe"] < 1.0 and wt["Cr"] < 0.5
    for element, truth in MNS.items():
        assert wt[element] == pytest.approx(100 * truth, rel=0.05)
    assert grain.identification.name == "alabandite"
    first = grain.identification.trace[0]
    assert first.startswith("Fe ") and "P1" in first and "removed" in first
    assert any(n.startswith("neighbour share") for n in grain.quantification.notes)
    share = next(n for n in grain.quantification.notes if n.startswith("neighbour share"))
    assert float(share.split()[2]) == pytest.approx(10.0, abs=2.0)
    # the host is left as it was
    assert found[0].quantification.wt["Fe"] > 80.0
    assert not any("neighbour share" in n for n in found[0].quantification.notes)


def test_an_element_the_host_lacks_stays_the_grains_own():
    # a grain holding 3 wt % Cu (not the mineral's, not the host's) on a Cu-free steel: its
    # Fe and Cr are the steel's, its Cu its own
    grain = {**{el: v * 0.97 for el, v in MNS.items()}, "Cu": 0.03}
    image, labels = _grains_on_a_host(grain)
    found = run_to_completion(identify_phases(image, labels, ["S", "Cr", "Mn", "Fe", "Cu"]))
    wt = found[1].quantification.wt
    assert wt["Fe"] < 1.0
    assert wt["Cu"] == pytest.approx(3.0, abs=0.8)
    assert any(entry.startswith("Cu ") for entry in found[1].identification.trace)


def test_a_grain_holding_the_hosts_elements_as_its_own_is_left_alone():
    # a chromium carbide (Cr, Fe, C) on the steel: Fe and Cr are the carbide's own elements,
    # no marker measures the steel's share, nothing is removed by markers
    carbide = {"Cr": 0.77, "Fe": 0.17, "C": 0.06}
    image, labels = _grains_on_a_host(carbide, share=0.0)
    found = run_to_completion(identify_phases(image, labels, ["C", "Cr", "Fe"]))
    assert not any("neighbour share" in n for n in found[1].quantification.notes)


def test_marker_share_is_the_weighted_least_squares_through_zero():
    counts = {"Fe": (400.0, 20.0), "Cr": (75.0, 10.0), "Mn": (9000.0, 95.0)}
    rates = {"Fe": 0.5, "Cr": 0.1}
    share, sigma, used = marker_share(counts, rates, ["Fe", "Cr", "Mn"], 20000.0)
    weights = {"Fe": 0.5**2 / 20**2, "Cr": 0.1**2 / 10**2}
    expected = (400 * 0.5 / 20**2 + 75 * 0.1 / 10**2) / sum(weights.values())
    assert used == ["Fe", "Cr"]  # Mn: the host holds none
    assert share == pytest.approx(expected)
    assert sigma == pytest.approx(1 / np.sqrt(sum(weights.values())))
    assert marker_share(counts, {}, ["Fe"], 20000.0) == (0.0, float("inf"), [])


def test_a_marker_the_host_cannot_bring_or_that_disagrees_is_the_phases_own():
    # Mn: 9000 of 20000 counts, the host's Mn rate 0.01 per count: even the whole core as host
    # would bring 200 counts; it does not measure the share
    counts = {"Fe": (400.0, 20.0), "Mn": (9000.0, 95.0)}
    share, _, used = marker_share(counts, {"Fe": 0.5, "Mn": 0.01}, ["Fe", "Mn"], 20000.0)
    assert used == ["Fe"] and share == pytest.approx(800.0)
    # Cr: the host could bring it, but at Fe's share it would hold 80 counts, not 900
    counts = {"Fe": (400.0, 20.0), "Cr": (900.0, 30.0)}
    share, _, used = marker_share(counts, {"Fe": 0.5, "Cr": 0.1}, ["Fe", "Cr"], 20000.0)
    assert used == ["Fe"] and share == pytest.approx(800.0)


def test_markers_that_disagree_give_the_least_share_they_allow():
    # Fe says 800 counts of the host, Mg 100: the host is there at most at Mg's share, and the
    # rest of the Fe is the phase's own
    counts = {"Fe": (400.0, 20.0), "Mg": (20.0, 5.0), "Mn": (9000.0, 95.0)}
    rates = {"Fe": 0.5, "Mg": 0.2}
    share, _, used = marker_share(counts, rates, ["Fe", "Mg"], 20000.0)
    assert used == ["Mg"] and share == pytest.approx(100.0)


def test_no_share_where_the_host_would_take_more_of_a_line_than_the_phase_holds():
    # Fe (the only marker) says 800 counts of the host; its Mg would then be 160 counts where
    # the phase has 20 (+- 5): not this host, nothing removed
    counts = {"Fe": (400.0, 20.0), "Mg": (20.0, 5.0), "Mn": (9000.0, 95.0)}
    rates = {"Fe": 0.5, "Mg": 0.2}
    assert marker_share(counts, rates, ["Fe"], 20000.0) == (0.0, float("inf"), [])
    # an element of the phase's own (Mn) that the host holds a little of stays above zero
    share, _, used = marker_share(counts, {"Fe": 0.5, "Mn": 0.01}, ["Fe"], 20000.0)
    assert used == ["Fe"] and share == pytest.approx(800.0)


def test_trace_elements_reads_the_element_entries_only():
    trace = ["Si 5.1 wt%", "40 % of P3 fayalite", "Fe 3.6 wt%: P1 iron's (4 % of the counts)"]
    assert trace_elements(trace) == ["Si"]
