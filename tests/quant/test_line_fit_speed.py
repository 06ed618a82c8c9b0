"""The line fit's faster paths give the same numbers, bit for bit, as the plain ones.

`_PeakColumns` (every template's Gaussians for many peak widths, what does not depend on the
width computed once) against `_peak_matrix` (one template at a time, as before, written out here); `_templates` (each line's
group found once) and `_poisson_refit` (the columns' largest values once) against the code they
replaced, written out here; `_fit_window` against its old loop.
"""

from itertools import product

import numpy as np
import pytest

from napari_sigma.energy import EnergyAxis
from napari_sigma.quant import line_fit as lf
from napari_sigma.quant.physics import Detector
from napari_sigma.xray.fitting import fit_columns
from napari_sigma.xray.lines import element_lines


def _peak_matrix(templates, energies, scale, detector, a, b):
    """The peak columns as the line fit made them before `_PeakColumns`: one template at a
    time, each width anew."""
    columns = []
    for _, _, _, line_energies, weights in templates:
        fwhm = lf.detector_fwhm(line_energies, detector.fwhm_mnka_kev) * a
        fwhm = fwhm * (line_energies / lf.MN_KA_KEV) ** b
        sigma = np.atleast_1d(fwhm) / lf.FWHM_PER_SIGMA
        x = (energies[:, None] - line_energies[None, :]) / sigma[None, :]
        gauss = np.exp(-0.5 * x**2) * scale / (sigma[None, :] * np.sqrt(2 * np.pi))
        columns.append(gauss @ weights)
    return np.stack(columns, axis=1) if columns else np.zeros((energies.size, 0))


def _random_templates(rng, n_templates):
    templates = []
    for t in range(n_templates):
        n_lines = int(rng.integers(1, 7))
        energies = np.sort(rng.uniform(0.1, 16.0, n_lines))
        if rng.random() < 0.2:  # lines close together, as a shell's families are
            energies = energies[0] + np.sort(rng.uniform(0, 0.05, n_lines))
        weights = rng.uniform(0.0, 1.0, n_lines)
        if rng.random() < 0.2:
            weights[rng.integers(n_lines)] = 0.0
        templates.append(("X", f"G{t}", (), energies, weights / max(weights.sum(), 1e-12)))
    return templates


@pytest.mark.parametrize("seed", range(6))
def test_peak_columns_equal_the_peak_matrix_bit_for_bit(seed):
    rng = np.random.default_rng(seed)
    compared = 0
    for _ in range(12):
        templates = _random_templates(rng, int(rng.integers(0, 14)))
        size = int(rng.choice([1, 2, 7, 333, 1471, 2048]))
        offset, scale = float(rng.uniform(-0.2, 0.3)), float(rng.choice([0.005, 0.01, 0.02]))
        energies = offset + scale * np.arange(size)
        detector = Detector(fwhm_mnka_kev=float(rng.uniform(0.06, 0.2)))
        columns = lf._PeakColumns(templates, energies, scale, detector)
        widths = list(product(lf.WIDTH_SCALES, lf.WIDTH_EXPONENTS))
        widths += [(float(rng.uniform(0.5, 2.0)), float(rng.uniform(-0.5, 0.5))) for _ in range(4)]
        widths += [(1.0, 0.0), (1, 0), (np.float64(1.08), np.float64(0.1))]
        for a, b in widths:
            expected = _peak_matrix(templates, energies, scale, detector, a, b)
            got = columns.columns(a, b)
            assert got.shape == expected.shape and got.dtype == expected.dtype
            assert got.tobytes() == expected.tobytes(), (seed, a, b)
            compared += 1
    assert compared == 12 * 31


def _templates_as_before(elements, axis, beam_kev, detector, folding=None):
    """`_templates` before: each line's group looked up once per group."""
    high = min(axis.max_energy, beam_kev)
    found = []
    for element in elements:
        in_range = [
            line
            for line in element_lines(element, lf.MIN_FIT_ENERGY_KEV, high, tied=True)
            if line.edge < beam_kev
        ]
        shells = {line.shell for line in in_range if not line.tied}
        in_range = [
            line
            for line in in_range
            if not line.tied or (line.shell == "L" and "K" in shells)
            or (line.shell == "M" and "L" in shells)
        ]  # fmt: skip
        for group in ("K", "La", "Lb", "Lg", "M", "Mz", "Mg"):
            lines = tuple(line for line in in_range if lf._group(line, in_range) == group)
            if not lines:
                continue
            energies = np.array([line.energy for line in lines])
            if any(line.tied for line in lines):
                weights = lf._folded_weights(lines, beam_kev, detector, folding or {})
            else:
                weights = np.array([lf._relative_intensity(line, beam_kev) for line in lines])
                weights = weights * detector.efficiency(energies)
            found.append((element, group, lines, energies, weights / weights.sum()))
    return found


ELEMENT_SETS = [
    ["O", "Si", "Al", "K", "Na", "Ca", "Fe", "Mg", "S"],
    ["C", "Ca", "Cl", "K", "Sc", "Ti"],
    ["Ba", "La", "Ce", "Nd", "W", "Pb", "U", "Au"],
    ["Cu", "Zn", "As", "Se", "Sr", "Zr", "Mo", "Ag", "Sn"],
    ["N", "F", "P", "Cr", "Mn", "Co", "Ni"],
]


@pytest.mark.parametrize("beam", [5.0, 15.0, 20.0, 30.0])
def test_templates_equal_the_old_grouping(beam):
    axis = EnergyAxis(-0.1, 0.01, 2048)
    detector = Detector()
    for elements in ELEMENT_SETS:
        folding = {"composition": {el: 1.0 / len(elements) for el in elements},
                   "takeoff_deg": 35.0, "thin": False, "mass_thickness": 0.0, "absorption": "xpp"}  # fmt: skip
        old = _templates_as_before(elements, axis, beam, detector, folding)
        for _ in range(2):  # computed, then the kept weights
            new = lf._templates(elements, axis, beam, detector, folding)
            assert len(new) == len(old) > 0
            for a, b in zip(new, old, strict=True):
                assert a[:3] == b[:3]
                assert a[3].tobytes() == b[3].tobytes() and a[4].tobytes() == b[4].tobytes()
                assert a[4].dtype == b[4].dtype == np.float64


def _poisson_refit_as_before(fit, data):
    lines, continuum = fit.matrix[:, : fit.n_lines], fit.matrix[:, fit.n_lines :]
    for _ in range(lf.POISSON_ITERATIONS):
        weight = 1.0 / np.sqrt(np.maximum(fit.model, lf.MIN_MODEL_COUNTS))
        refit = fit_columns(lines, continuum, data, weight)
        step = np.max(np.abs(refit.coefficients - fit.coefficients) * np.abs(fit.matrix).max(0))
        scale = max(float(np.max(np.abs(refit.coefficients) * np.abs(fit.matrix).max(0))), 1e-30)
        fit = refit
        if step <= lf.POISSON_TOLERANCE * scale:
            break
    return fit


def _same_fit(a, b):
    assert a.n_lines == b.n_lines and a.chi2 == b.chi2
    for x, y in ((a.matrix, b.matrix), (a.weights, b.weights), (a.coefficients, b.coefficients)):
        assert x.shape == y.shape and x.tobytes() == y.tobytes()


@pytest.mark.parametrize("seed", range(4))
def test_fit_window_equals_its_old_loop(seed):
    """The width search and the Poisson refit with `_PeakColumns` and the columns' largest
    values kept, against the loop with `_peak_matrix` and the old refit, on random spectra of
    random lines (counts from a few to 1e5 per channel)."""
    rng = np.random.default_rng(100 + seed)
    axis = EnergyAxis(float(rng.uniform(-0.2, 0.0)), 0.01, int(rng.choice([1024, 2048])))
    detector = Detector(fwhm_mnka_kev=float(rng.uniform(0.11, 0.16)))
    elements = list(rng.choice(ELEMENT_SETS[0] + ELEMENT_SETS[3], 6, replace=False))
    beam = 15.0
    composition = {el: 1.0 / len(elements) for el in elements}
    folding = {"composition": composition, "takeoff_deg": 35.0, "thin": False,
               "mass_thickness": 0.0, "absorption": "xpp"}  # fmt: skip
    templates = lf._templates(elements, axis, beam, detector, folding)
    high = min(axis.max_energy, beam * 0.99)
    window = axis.channel_range(lf.MIN_FIT_ENERGY_KEV, high)
    energies = axis.energies[window]
    truth = _peak_matrix(templates, energies, axis.scale, detector, 1.08, 0.1)
    dose = 10.0 ** rng.uniform(0, 5)
    expected = truth @ rng.uniform(0, 1, truth.shape[1]) * dose + dose * 0.05 * (energies < 9)
    data = rng.poisson(expected).astype(float)
    for width in (None, (1.0, 0.0)):
        fit, chosen = lf._fit_window(energies, data, templates, axis.scale, detector, composition,
                                     beam, 35.0, False, width, high)  # fmt: skip
        # the old loop
        hats = lf._hat_matrix(energies, energies[0], high)
        hats = hats * lf._continuum_shape(energies, composition, beam, detector, 35.0)[:, None]
        weight = 1.0 / np.sqrt(np.maximum(data, 1.0))
        best = None
        for a, b in [width] if width else product(lf.WIDTH_SCALES, lf.WIDTH_EXPONENTS):
            peaks = _peak_matrix(templates, energies, axis.scale, detector, a, b)
            one = fit_columns(peaks, hats, data, weight)
            if best is None or one.chi2 < best[0].chi2:
                best = (one, (a, b))
        assert chosen == best[1]
        _same_fit(fit, _poisson_refit_as_before(best[0], data))


def test_kept_hats_efficiencies_and_weights_equal_fresh_ones_and_are_read_only():
    rng = np.random.default_rng(3)
    detector = Detector(fwhm_mnka_kev=0.125, window_polymer_um=0.2)
    for _ in range(5):
        energies = np.sort(rng.uniform(0.1, 20.0, int(rng.integers(2, 2000))))
        low, high = float(energies[0]), float(rng.uniform(energies[-1], 25.0))
        for _ in range(2):
            hats = lf._window_hats(energies, energies[0], high)
            assert hats.tobytes() == lf._hat_matrix(energies, energies[0], high).tobytes()
            assert hats.shape == lf._hat_matrix(energies, low, high).shape
            efficiency = lf._efficiency_on(detector, energies)
            assert efficiency.tobytes() == np.asarray(detector.efficiency(energies)).tobytes()
            assert not hats.flags.writeable and not efficiency.flags.writeable
    lines = tuple(element_lines("Ba", 0.15, 15.0))
    weights = lf._line_weights(lines, 15.0, detector)
    assert weights.tobytes() == lf._line_weights_of(lines, 15.0, detector).tobytes()
    assert not weights.flags.writeable
