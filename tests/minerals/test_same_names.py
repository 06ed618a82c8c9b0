"""Phases of one name or series: told apart by their numbers, or flagged as one phase split in
two (minerals.same_names.distinguish_same_names)."""

import numpy as np
import pytest

from napari_sigma.compute.progress import run_to_completion
from napari_sigma.energy import EnergyAxis
from napari_sigma.minerals.identify import Identification
from napari_sigma.minerals.phases import PhaseMineral, identify_phases, mineral_phase_names
from napari_sigma.minerals.same_names import compare_compositions, distinguish_same_names
from napari_sigma.quant.quantify import Quantification
from napari_sigma.quant.simulate import line_spectrum
from napari_sigma.spectrum_image import SpectrumImage
from napari_sigma.synthetic.generator import weight_fractions

AXIS = EnergyAxis(-0.1, 0.01, 1024)
GARNET = weight_fractions("Fe2MgAl2Si3O12")
ORTHOCLASE = weight_fractions("KAlSi3O8")
ELEMENTS = ["O", "Mg", "Al", "Si", "K", "Fe"]


def _phase(pid, name, wt, err, series="garnet", trace=()):
    quant = Quantification(wt, {}, err, {}, {}, {}, {}, 100.0, "bulk", 35.0, 20.0, 1, True)
    ident = Identification(name, "almandine", 0.5, [], series, {}, "silicate: garnet", 4.2,
                           list(trace), "", False)  # fmt: skip
    return PhaseMineral(pid, quant, ident)


def test_same_names_get_the_element_that_tells_them_apart():
    # the 30x30 Bruker map's two "garnet Alm51Prp46" (main da4ee8e), rounded
    err = {"O": 0.11, "Mg": 0.07, "Al": 0.04, "Si": 0.04, "K": 0.014, "Ca": 0.012, "Fe": 0.07}
    p1 = _phase(1, "garnet Alm51Prp46", {"O": 42.7, "Mg": 7.1, "Al": 10.2, "Si": 15.1, "K": 0.53,
                                         "Ca": 0.81, "Fe": 17.5}, err,
                trace=["K 0.5 wt%"])  # fmt: skip
    p2 = _phase(2, "garnet Alm51Prp46", {"O": 39.9, "Mg": 6.7, "Al": 9.3, "Si": 17.4, "K": 2.79,
                                         "Ca": 0.21, "Fe": 16.9}, err,
                trace=["K 2.8 wt%"])  # fmt: skip
    p3 = _phase(3, "garnet Grs49Alm38Prp13", {"O": 40.8, "Mg": 1.0, "Al": 9.8, "Si": 19.9,
                                              "Ca": 15.3, "Fe": 12.1}, err)  # fmt: skip
    distinguish_same_names([p1, p2, p3])
    # K is not garnet's: an admixture, told as "+ K" where it is a minor constituent (>= 1
    # wt %); P1's 0.5 wt % is a trace, listed with its traces, not in its name
    assert (p1.qualifier, p2.qualifier, p3.qualifier) == ("", "+ K 2.8 wt%", "")
    names = mineral_phase_names(["P1", "P2", "P3"], [p1, p2, p3])
    assert names == ["P1 garnet Alm51Prp46", "P2 garnet Alm51Prp46 + K 2.8 wt%",
                     "P3 garnet Grs49Alm38Prp13"]  # fmt: skip
    assert p1.identification.trace == ["K 0.5 wt%"]
    assert p2.quantification.notes[0].startswith(
        "differs from P1 (garnet Alm51Prp46) beyond the uncertainties"
    )
    assert "K 2.79 vs 0.53 wt% (" in p2.quantification.notes[0]
    assert not p3.quantification.notes


def test_traces_alone_never_name_phases_apart():
    # two phases told apart best by a foreign element that is a trace in both (0.3 vs 0.8 wt
    # %): the name takes the next element that reads them apart, one the mineral holds
    err = {"Fe": 0.05, "S": 0.05, "Cu": 0.01}
    a = _phase(1, "pyrite", {"Fe": 46.6, "S": 53.1, "Cu": 0.3}, err, series=None)
    b = _phase(2, "pyrite", {"Fe": 46.0, "S": 53.2, "Cu": 0.8}, err, series=None,
               trace=["Cu 0.8 wt%"])  # fmt: skip
    distinguish_same_names([a, b])
    assert (a.qualifier, b.qualifier) == ("(Fe 46.6 wt%)", "(Fe 46.0 wt%)")


def test_equal_compositions_are_flagged_not_told_apart():
    err = {"Fe": 0.3, "S": 0.3}
    a = _phase(1, "pyrite", {"Fe": 46.6, "S": 53.4}, err, series=None)
    b = _phase(2, "pyrite", {"Fe": 46.2, "S": 53.8}, err, series=None)
    test = compare_compositions(a.quantification, b.quantification)
    assert test.n == 2 and test.chi2 == pytest.approx(2 * (0.4 / np.hypot(0.3, 0.3)) ** 2)
    assert test.equal
    distinguish_same_names([a, b])
    assert a.qualifier == b.qualifier == ""
    assert b.quantification.notes[0].startswith("composition equal to P1's within the")
    # the same difference measured ten times better is a difference
    c = _phase(3, "pyrite", {"Fe": 46.6, "S": 53.4}, {"Fe": 0.03, "S": 0.03}, series=None)
    d = _phase(4, "pyrite", {"Fe": 46.2, "S": 53.8}, {"Fe": 0.03, "S": 0.03}, series=None)
    distinguish_same_names([c, d])
    assert (c.qualifier, d.qualifier) == ("(Fe 46.6 wt%)", "(Fe 46.2 wt%)")


def _three_stripes(dose=3000, seed=0):
    """Garnet (label 1), garnet with 6 % of its mass orthoclase (label 2), garnet again (3)."""
    garnet = line_spectrum(GARNET, AXIS, 20.0)
    mixed = {el: 0.94 * GARNET.get(el, 0.0) + 0.06 * ORTHOCLASE.get(el, 0.0)
             for el in {*GARNET, *ORTHOCLASE}}  # fmt: skip
    admixed = line_spectrum(mixed, AXIS, 20.0)
    labels = np.repeat(np.array([1, 2, 3]), 10)[None, :].repeat(12, axis=0).astype(np.int32)
    spectra = np.stack([garnet / garnet.sum(), admixed / admixed.sum(), garnet / garnet.sum()])
    counts = np.random.default_rng(seed).poisson(spectra[labels - 1] * dose)
    return SpectrumImage(counts.astype(np.float32), AXIS, 20.0), labels


def test_a_phase_split_in_two_is_flagged_and_an_admixed_one_is_not():
    image, labels = _three_stripes()
    found = run_to_completion(identify_phases(image, labels, ELEMENTS))
    assert {m.identification.series for m in found} == {"garnet"}
    notes = [" ".join(m.quantification.notes) for m in found]
    assert "composition equal to P1's" in notes[2]
    assert "composition equal" not in notes[1]
    names = mineral_phase_names(["P1", "P2", "P3"], found)
    # names of phases that differ beyond their uncertainties differ
    assert names[0] != names[1] and names[1] != names[2]


def test_line_dispersion_is_one_for_counting_noise_and_more_for_scatter():
    from napari_sigma.minerals.same_names import line_dispersion

    garnet = line_spectrum(GARNET, AXIS, 20.0)
    orthoclase = line_spectrum(ORTHOCLASE, AXIS, 20.0)
    garnet, orthoclase = garnet / garnet.sum(), orthoclase / orthoclase.sum()
    rng = np.random.default_rng(1)
    share = rng.uniform(0.0, 0.2, size=(20, 20, 1))  # 0-20 % orthoclase from pixel to pixel
    for spread in (0.0, 1.0):
        means = (1 - spread * share) * garnet + spread * share * orthoclase
        image = SpectrumImage(rng.poisson(means * 20000).astype(np.float32), AXIS, 20.0)
        phi = line_dispersion(image, np.ones((20, 20), bool), ["Fe", "Mg", "Si"])
        if spread:  # Mg and Fe are 0-20 % lower from pixel to pixel
            assert phi["Mg"] > 3 and phi["Fe"] > 3, phi
        else:
            assert all(0.7 < v < 1.3 for v in phi.values()), phi


def test_the_pixels_scatter_widens_the_uncertainty():
    # counting alone calls two halves of one scattered phase different; their scatter does not
    a = _phase(1, "pyrite", {"Fe": 46.6, "S": 53.4}, {"Fe": 0.03, "S": 0.03}, series=None)
    b = _phase(2, "pyrite", {"Fe": 46.2, "S": 53.8}, {"Fe": 0.03, "S": 0.03}, series=None)
    assert not compare_compositions(a.quantification, b.quantification).equal
    phi = {"Fe": 200.0, "S": 200.0}
    assert compare_compositions(a.quantification, b.quantification, phi, phi).equal
    distinguish_same_names([a, b], {1: phi, 2: phi})
    assert a.qualifier == b.qualifier == ""
    assert b.quantification.notes[0].startswith("composition equal to P1's")


def test_the_mean_uncertainty_is_the_uncertainty_of_a_phases_mean():
    """A phase whose pixels hold 0-20 % orthoclase in garnet (uniform, known): the uncertainty of
    its mean composition is known, counting of the summed spectrum and the share's scatter over
    400 pixels (wt % slope x sd(share) / sqrt(400)); err_wt_mean finds it, counting alone does
    not. (The analytic answer agrees with the spread of 200 simulated maps within 10 % for Mg,
    Al, Si, K and Fe: dev-notes s15/names15a.)"""
    from napari_sigma.minerals.same_names import line_dispersion, mean_uncertainty
    from napari_sigma.quant.quantify import quantify_spectrum

    garnet = line_spectrum(GARNET, AXIS, 20.0)
    orthoclase = line_spectrum(ORTHOCLASE, AXIS, 20.0)
    garnet, orthoclase = garnet / garnet.sum(), orthoclase / orthoclase.sum()

    def wt(share, dose):
        spectrum = ((1 - share) * garnet + share * orthoclase) * dose
        return quantify_spectrum(spectrum, AXIS, ELEMENTS, 20.0)

    up, down = wt(0.11, 1e9).wt, wt(0.09, 1e9).wt  # noise-free: the slope of wt in the share
    rng = np.random.default_rng(0)
    share = rng.uniform(0.0, 0.2, size=(20, 20, 1))
    counts = rng.poisson(((1 - share) * garnet + share * orthoclase) * 5000).astype(np.float32)
    found = quantify_spectrum(counts.sum(axis=(0, 1)).astype(float), AXIS, ELEMENTS, 20.0)
    phi = line_dispersion(SpectrumImage(counts, AXIS, 20.0), np.ones((20, 20), bool), ELEMENTS)
    mean_err = mean_uncertainty(found.err_wt, phi)
    for el in ("Si", "K", "Fe"):  # the elements the share moves most
        scatter = abs(up[el] - down[el]) / 0.02 * (0.2 / np.sqrt(12)) / 20
        truth = np.hypot(found.err_wt[el], scatter)
        assert 0.75 < mean_err[el] / truth < 1.33, (el, mean_err[el], truth)
        assert found.err_wt[el] < 0.6 * truth, (el, found.err_wt[el], truth)
    assert all(mean_err[el] >= found.err_wt[el] for el in mean_err)


def test_every_phase_reports_the_uncertainty_of_its_mean():
    from napari_sigma.io.mineral_report.mineralogy import phase_quant_rows

    image, labels = _three_stripes()
    found = run_to_completion(identify_phases(image, labels, ELEMENTS))
    for m in found:  # counting noise alone (the stripes' pixels share one spectrum): ~ counting
        assert set(m.dispersion) == set(m.quantification.wt)
        for el, err in m.err_wt_mean.items():
            counting = m.quantification.err_wt[el]
            assert counting <= err <= 1.5 * counting
    rows, columns = phase_quant_rows([1, 2, 3], ["P1", "P2", "P3"], found)
    assert columns.index("err_wt_K") < columns.index("err_wt_mean_O")
    assert rows[1]["err_wt_mean_K"] == found[1].err_wt_mean["K"]
    # given dispersions are used as they are (a process without the cube)
    given = {m.phase_id: {el: 100.0 for el in m.quantification.wt} for m in found}
    again = run_to_completion(identify_phases(image, labels, ELEMENTS, dispersion=given))
    assert again[0].err_wt_mean["Fe"] == pytest.approx(10 * again[0].quantification.err_wt["Fe"])


def test_the_qualifier_names_a_heavier_element_that_tells_them_apart_as_well():
    # held-out sulphide_ore_h80's two pyrites: the one with a quarter quartz differs in O and Si
    # by about the same sigma; the qualifier names the Si (quartz), not the O
    wt_a = {"O": 14.2, "Si": 11.6, "Fe": 30.5, "S": 41.2}
    wt_b = {"O": 2.2, "Si": 1.2, "Fe": 42.1, "S": 54.5}
    trace = ["O 14.2 wt%", "Si 11.6 wt%"]
    for err_o, named in ((0.3202, "Si"), (0.212, "O")):  # O at 26.5 sigma, then at 40 sigma
        err = {"O": err_o, "Si": 0.2828, "Fe": 0.586, "S": 0.94}  # Si 26 sigma
        a = _phase(1, "pyrite", wt_a, err, series=None, trace=trace)
        b = _phase(2, "pyrite", wt_b, err, series=None, trace=trace)
        distinguish_same_names([a, b])
        assert (a.qualifier, b.qualifier) == (
            f"+ {named} {wt_a[named]:.1f} wt%",
            f"+ {named} {wt_b[named]:.1f} wt%",
        )
