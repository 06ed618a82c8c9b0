"""Kept line fits (quant/kept_fits): an exact repeat within a scope is not fitted again, and
the kept path gives what the fitting gives."""

import numpy as np
import pytest

import napari_sigma.minerals.phases as phases
import napari_sigma.quant.quantify as quantify
from napari_sigma.energy import EnergyAxis
from napari_sigma.minerals.identify import identify_quantified
from napari_sigma.minerals.library import composition_of, load_library
from napari_sigma.quant.kept_fits import exact_key, kept_fit, kept_fits
from napari_sigma.quant.line_fit import fit_lines
from napari_sigma.quant.quantify import QuantSettings, quantify_spectrum
from napari_sigma.spectrum_image import SpectrumImage
from sigma_testdata import measured_spectrum

AXIS = EnergyAxis(-0.1, 0.01, 2048)


def _spectrum(formula, beam=20.0, seed=0):
    return measured_spectrum(composition_of(formula), AXIS, beam, 1e5, seed, 6)[0]


def _same_fit(a, b):
    assert type(a) is type(b)
    assert a.analysed == b.analysed and a.others == b.others and a.width == b.width
    assert repr(a.reduced_chi2) == repr(b.reduced_chi2)
    for x, y in ((a.model, b.model), (a.background, b.background)):
        assert x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes()


def _counting(monkeypatch):
    calls = []

    def counted(*args, **kwargs):
        calls.append(1)
        return fit_lines(*args, **kwargs)

    monkeypatch.setattr(quantify, "fit_lines", counted)
    return calls


def test_a_kept_fit_is_the_fit_and_a_repeat_is_not_fitted_again():
    spectrum = _spectrum("MgCO3")
    args = (spectrum, AXIS, ["Mg", "O"], 20.0, None, None, 35.0, False, (1.0, 0.0))
    fresh = fit_lines(*args)
    calls = []

    def counted(*a, **k):
        calls.append(1)
        return fit_lines(*a, **k)

    with kept_fits():
        first = kept_fit(counted, *args)
        first.model[:] = -1.0  # a caller writing into its result changes no other's
        first.analysed.clear()
        again = kept_fit(counted, *args)
        third = kept_fit(counted, *args)
    assert len(calls) == 1
    _same_fit(again, fresh)
    _same_fit(third, fresh)
    assert again is not third and again.model is not third.model
    # outside a scope every call fits
    _same_fit(kept_fit(counted, *args), fresh)
    assert len(calls) == 2


@pytest.mark.parametrize(
    "changed",
    [
        lambda a: (a[0] + np.eye(1, a[0].size, 5)[0], *a[1:]),  # one count one more
        lambda a: (a[0], a[1], a[2], np.float64(a[3]), *a[4:]),  # a numpy double: its type
        lambda a: (*a[:6], 35.0 + 2**-40, *a[7:]),  # the last bit of a float
        lambda a: (a[0], EnergyAxis(-0.1, 0.01 + 2**-52, 2048), *a[2:]),  # a frozen field
        lambda a: (a[0], a[1], ["O", "Mg"], *a[3:]),  # the order of the elements
        lambda a: (*a[:8], (1.0, -0.0)),  # -0.0 is not 0.0
        lambda a: (a[0].astype(np.float32), *a[1:]),  # the dtype
    ],
)
def test_only_an_exact_repeat_is_kept(changed):
    spectrum = _spectrum("MgCO3")
    args = (spectrum, AXIS, ["Mg", "O"], 20.0, None, None, 35.0, False, (1.0, 0.0))
    other = changed(args)
    assert exact_key(other) != exact_key(args)
    calls = []

    def counted(*a, **k):
        calls.append(1)
        return fit_lines(*a, **k)

    with kept_fits():
        kept_fit(counted, *args)
        result = kept_fit(counted, *other)
    assert len(calls) == 2
    _same_fit(result, fit_lines(*other))


def test_unkeyable_arguments_are_fitted_each_time():
    calls = []
    with kept_fits():
        for _ in range(2):
            kept_fit(lambda x: calls.append(x) or len(calls), object())
    assert len(calls) == 2


def test_the_carbon_requantifications_with_kept_fits_equal_those_without(monkeypatch):
    # a carbonate analysed without C: its identification quantifies it again with each
    # hypothesis's C held fixed, and each requantification's first fit is the phase's own
    library = load_library()
    results, counts = [], []
    for scope in (False, True):
        calls = _counting(monkeypatch)
        spectrum = _spectrum("MgCO3")

        def requantify(fixed, spectrum=spectrum):
            held = QuantSettings(fixed=fixed)
            return quantify_spectrum(spectrum, AXIS, ["Mg", "O"], 20.0, held, width=(1.0, 0.0))

        def identified(spectrum=spectrum, requantify=requantify):
            measured = quantify_spectrum(spectrum, AXIS, ["Mg", "O"], 20.0, width=(1.0, 0.0))
            found = identify_quantified(measured, spectrum, AXIS, library, requantify=requantify)
            return measured, found

        if scope:
            with kept_fits():
                measured, found = identified()
        else:
            measured, found = identified()
        results.append(repr((measured, found)))
        counts.append(len(calls))
    assert results[0] == results[1]
    assert "magnesite" in results[0]
    assert counts[1] < counts[0]  # the repeats were not fitted


def test_a_phase_is_identified_within_one_scope(monkeypatch):
    spectrum = _spectrum("MgCO3")
    image = SpectrumImage(spectrum[None, None, :], AXIS, beam_energy=20.0)
    library = load_library()
    settings = QuantSettings()
    found, counts = [], []
    for scope in (True, False):
        calls = _counting(monkeypatch)
        if not scope:
            monkeypatch.setattr(phases, "kept_fits", _no_scope)
        found.append(
            repr(phases._one_phase(1, spectrum, image, ["Mg", "O"], library, settings, None))
        )
        counts.append(len(calls))
    assert found[0] == found[1] and "magnesite" in found[0]
    assert counts[0] < counts[1]


class _no_scope:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False
