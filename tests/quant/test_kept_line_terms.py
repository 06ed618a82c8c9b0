"""What the line fit and the simulation keep per arguments (the phases of a map fit the same
equal-fraction templates first and compare the same library minerals' spectra): the same
numbers as made anew, read-only where shared, a new object for every caller."""

import numpy as np
import pytest

from napari_sigma.energy import EnergyAxis
from napari_sigma.quant import line_fit as lf
from napari_sigma.quant import simulate
from napari_sigma.quant.physics import Detector

AXIS = EnergyAxis(-0.2, 0.01, 1500)
ELEMENTS = ["O", "Mg", "Al", "Si", "Ca", "Fe"]
COMPOSITION = {"O": 0.44, "Mg": 0.05, "Al": 0.08, "Si": 0.25, "Ca": 0.1, "Fe": 0.08}
FOLDING = {"composition": COMPOSITION, "takeoff_deg": 35.0, "thin": False,
           "mass_thickness": 0.0, "absorption": "xpp"}  # fmt: skip


def _same_templates(kept, fresh):
    assert len(kept) == len(fresh)
    for a, b in zip(kept, fresh, strict=True):
        assert a[:3] == b[:3]
        np.testing.assert_array_equal(a[3], b[3], strict=True)
        np.testing.assert_array_equal(a[4], b[4], strict=True)


def test_templates_kept_are_those_made_anew():
    fresh = lf._templates_of(ELEMENTS, AXIS, 20.0, Detector(), FOLDING)
    first = lf._templates(ELEMENTS, AXIS, 20.0, Detector(), FOLDING)
    again = lf._templates(ELEMENTS, AXIS, 20.0, Detector(), dict(FOLDING))
    _same_templates(first, fresh)
    _same_templates(again, fresh)
    assert first is not again  # a new list for each caller
    assert any(t[1] == "K" and len(t[2]) > 1 for t in first)
    assert all(not t[4].flags.writeable for t in again)


def test_templates_kept_per_composition_and_type():
    other = {**FOLDING, "composition": {**COMPOSITION, "Ca": 0.2}}
    _same_templates(lf._templates(ELEMENTS, AXIS, 20.0, Detector(), other),
                    lf._templates_of(ELEMENTS, AXIS, 20.0, Detector(), other))  # fmt: skip
    key = lf._folding_key(FOLDING)
    assert lf._unkeyed(key) == FOLDING
    assert list(lf._unkeyed(key)["composition"]) == list(COMPOSITION)
    as_ints = {**FOLDING, "takeoff_deg": 35}
    assert lf._folding_key(as_ints) != key  # 35 and 35.0 are kept apart


def test_continuum_shape_kept_is_made_anew():
    energies = AXIS.energies[20:900]
    args = (COMPOSITION, 15.0, Detector(), 35.0, False)
    kept = lf._continuum_shape(energies, *args)
    np.testing.assert_array_equal(kept, lf._continuum_shape_of(energies, *args), strict=True)
    assert lf._continuum_shape(energies.copy(), *args) is kept
    assert not kept.flags.writeable
    low = energies.astype(np.float32)  # other channels' type: not kept, made as before
    np.testing.assert_array_equal(lf._continuum_shape(low, *args),
                                  lf._continuum_shape_of(low, *args), strict=True)  # fmt: skip


def test_line_spectrum_kept_is_a_new_array_each_call():
    args = (AXIS, 20.0, Detector(), 35.0)
    first = simulate.line_spectrum(COMPOSITION, *args)
    np.testing.assert_array_equal(
        first, simulate._line_spectrum_of(COMPOSITION, *args, False, 0.0, "xpp"), strict=True
    )
    first[:] = -1.0  # the caller's own array
    again = simulate.line_spectrum(dict(COMPOSITION), *args)
    assert again.flags.writeable and again.max() > 0
    thin = simulate.line_spectrum(COMPOSITION, *args, thin=True)
    assert not np.array_equal(thin, again)


@pytest.mark.parametrize("width", [None, (1.0, 0.0)])
def test_fit_lines_kept_per_spectrum(width):
    rng = np.random.default_rng(3)
    model = simulate.line_spectrum(COMPOSITION, AXIS, 20.0, Detector(), 35.0)
    counts = rng.poisson(2e5 * model / model.sum() + 20.0).astype(np.float64)
    fresh = lf._fit_lines_of(counts, AXIS, ELEMENTS, 20.0, Detector(), None, 35.0, False,
                             width, 0.0, "xpp")  # fmt: skip
    first = lf.fit_lines(counts, AXIS, ELEMENTS, 20.0, Detector(), width=width)
    again = lf.fit_lines(counts.copy(), AXIS, ELEMENTS, 20.0, Detector(), width=width)
    for fit in (first, again):
        assert fit.analysed == fresh.analysed and fit.others == fresh.others
        np.testing.assert_array_equal(fit.model, fresh.model, strict=True)
        np.testing.assert_array_equal(fit.background, fresh.background, strict=True)
        assert (fit.reduced_chi2, fit.width) == (fresh.reduced_chi2, fresh.width)
    assert first is not again and first.model is not again.model
    assert first.analysed is not again.analysed
    first.model[:] = 0.0  # a caller's own arrays
    assert lf.fit_lines(counts, AXIS, ELEMENTS, 20.0, Detector(), width=width).model.max() > 0
    other = counts.copy()
    other[600] += 500.0
    changed = lf.fit_lines(other, AXIS, ELEMENTS, 20.0, Detector(), width=width)
    assert not np.array_equal(changed.model, fresh.model)


def test_quantify_limits_blas_to_one_thread_with_one_controller(monkeypatch):
    from threadpoolctl import threadpool_info

    from napari_sigma.quant import quantify

    def blas_threads():
        return {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}

    seen = []
    monkeypatch.setattr(quantify, "_quantify_spectrum", lambda *args: seen.append(blas_threads()))
    before = blas_threads()
    for _ in range(2):
        quantify.quantify_spectrum(np.ones(AXIS.size), AXIS, ELEMENTS, 20.0)
    assert seen == [{1}, {1}] and blas_threads() == before
    assert quantify.blas_controller() is quantify.blas_controller()
