"""Line windows, background subtraction, binning, smoothing and normalisation."""

from __future__ import annotations

import numpy as np
import pytest

from napari_sigma.compute.progress import run_to_completion
from napari_sigma.energy import EnergyAxis
from napari_sigma.features.intensities import (
    FeatureSettings,
    bin_image,
    line_intensities,
    line_weights,
    neighbour_average,
    normalise,
    total_counts,
)
from napari_sigma.xray.lines import detector_fwhm, parse_line

AXIS = EnergyAxis(offset=-0.1, scale=0.01, size=1024)


def _peak(energy: float, area: float) -> np.ndarray:
    sigma = detector_fwhm(energy) / 2.3548
    e = AXIS.energies
    return (
        area
        * AXIS.scale
        * np.exp(-0.5 * ((e - energy) / sigma) ** 2)
        / (sigma * np.sqrt(2 * np.pi))
    )


def test_background_subtraction_recovers_peak_area_on_a_sloped_continuum():
    continuum = 50.0 + 20.0 * AXIS.energies  # counts per channel, linear
    spectrum = continuum + _peak(parse_line("Fe_Ka").energy, 1000.0)
    weights = line_weights(AXIS, ["Fe_Ka"], FeatureSettings(window_fwhm=1.5))
    # a +-1.5 FWHM window holds 99.96 % of a Gaussian peak; the linear continuum cancels exactly
    assert spectrum @ weights[:, 0] == pytest.approx(1000.0 * 0.9996, rel=0.01)
    assert continuum @ weights[:, 0] == pytest.approx(0.0, abs=1e-3)


def test_without_background_the_window_keeps_the_continuum():
    continuum = np.full(AXIS.size, 10.0)
    weights = line_weights(AXIS, ["Si_Ka"], FeatureSettings(background="none"))
    n_channels = np.count_nonzero(weights[:, 0])
    assert continuum @ weights[:, 0] == pytest.approx(10.0 * n_channels)
    assert n_channels == pytest.approx(2 * detector_fwhm(1.74) / AXIS.scale, abs=2)


def test_side_windows_avoid_neighbouring_analysed_lines():
    # Na Ka (1.04) and Mg Ka (1.25) are close: Na's right side window would sit on Mg's peak
    weights = line_weights(AXIS, ["Na_Ka", "Mg_Ka"], FeatureSettings())
    mg_peak = weights[:, 1] > 0
    assert not np.any(weights[mg_peak, 0] < 0)
    assert weights[:, 0].sum() == pytest.approx(
        0.0, abs=1e-4
    )  # still a zero-sum (flat-cancelling) filter


def test_line_intensities_in_chunks_equal_the_direct_product_and_report_progress():
    rng = np.random.default_rng(1)
    cube = rng.poisson(3.0, size=(37, 23, AXIS.size)).astype(np.uint16)
    lines = ["O_Ka", "Si_Ka", "Fe_Ka"]
    gen = line_intensities(cube, AXIS, lines, chunk_pixels=100)
    reports = []
    maps = run_to_completion(gen, reports.append)
    expected = cube.reshape(-1, AXIS.size).astype(np.float64) @ line_weights(AXIS, lines)
    np.testing.assert_allclose(maps.reshape(-1, 3), expected, rtol=1e-5, atol=1e-3)
    assert maps.shape == (37, 23, 3) and maps.dtype == np.float32
    assert len(reports) == reports[-1].total > 1 and reports[-1].stage == "features"


def test_cpu_projection_in_cast_sub_blocks_equals_the_float64_product(monkeypatch):
    from napari_sigma.compute import blocks
    from napari_sigma.features import intensities as features

    rng = np.random.default_rng(2)
    cube = rng.integers(0, 65536, size=(11, 13, 40), dtype=np.uint16)
    weights = rng.normal(size=(40, 4)).astype(np.float32)
    weights[:3] = 0.0  # channels outside the used span are not read
    expected = cube.reshape(-1, 40).astype(np.float64) @ weights.astype(np.float64)
    monkeypatch.setattr(blocks, "CAST_VALUES", 6 * 37)  # 6 pixels of the 37 used channels
    found = run_to_completion(features.project_spectra(cube, weights, "cpu", chunk_pixels=50))
    assert found.shape == (11, 13, 4) and found.dtype == np.float32
    # float32 rounding bound: a few ulps of the sum of absolute terms (the weights cancel)
    magnitude = cube.reshape(-1, 40).astype(np.float64) @ np.abs(weights).astype(np.float64)
    assert (np.abs(found.reshape(-1, 4) - expected) <= 1e-6 * magnitude).all()


def test_binning_intensity_maps_equals_binning_the_cube_first():
    rng = np.random.default_rng(2)
    cube = rng.poisson(2.0, size=(10, 9, AXIS.size)).astype(np.uint16)
    lines = ["Al_Ka", "Ca_Ka"]
    binned_cube = bin_image(cube.astype(np.int64), 2)
    direct = run_to_completion(line_intensities(binned_cube, AXIS, lines))
    via_maps = bin_image(run_to_completion(line_intensities(cube, AXIS, lines)), 2)
    assert binned_cube.shape == (5, 4, AXIS.size)
    np.testing.assert_allclose(via_maps, direct, rtol=1e-5, atol=1e-3)
    np.testing.assert_array_equal(total_counts(cube)[:2, :2].sum(), cube[:2, :2].sum())


def test_neighbour_average_is_a_3x3_mean_inside():
    maps = np.arange(5 * 6 * 2, dtype=np.float32).reshape(5, 6, 2)
    smooth = neighbour_average(maps, 1)
    np.testing.assert_allclose(smooth[2, 3], maps[1:4, 2:5].mean(axis=(0, 1)))
    assert neighbour_average(maps, 0) is maps


def test_poisson_normalisation_equalises_counting_noise_across_lines():
    rng = np.random.default_rng(3)
    rates = np.array([5.0, 50.0, 400.0])
    maps = rng.poisson(rates, size=(200, 200, 3)).astype(np.float32)
    dose = np.full(maps.shape[:2], rates.sum())
    features = normalise(maps, dose, "poisson")
    # Anscombe: the standard deviation of sqrt(Poisson) is about 0.5 whatever the rate
    np.testing.assert_allclose(features.std(axis=0), 0.5, atol=0.03)


def test_poisson_normalisation_removes_the_dose_but_keeps_the_composition():
    composition = np.array([10.0, 30.0, 60.0], dtype=np.float32)
    maps = np.stack([composition, 3 * composition, 2 * composition[::-1]]).reshape(3, 1, 3)
    features = normalise(maps, maps.sum(axis=-1), "poisson")
    np.testing.assert_allclose(features[0], features[1], rtol=1e-6)  # same composition, 3x dose
    assert not np.allclose(features[0], features[2])


def test_sigma_normalisation_is_a_softmax_of_z_scores():
    rng = np.random.default_rng(4)
    maps = rng.poisson(20.0, size=(8, 8, 4)).astype(np.float32)
    features = normalise(maps, maps.sum(axis=-1) + 100, "sigma")
    np.testing.assert_allclose(features.sum(axis=1), 1.0, rtol=1e-5)
    assert np.all(features > 0)
    with pytest.raises(ValueError, match="normalisation"):
        normalise(maps, maps.sum(axis=-1), "bogus")


def test_the_cast_sub_blocks_hold_a_fixed_number_of_values():
    from napari_sigma.compute.blocks import CAST_VALUES, cast_pixels

    assert cast_pixels(2048) == CAST_VALUES // 2048 and cast_pixels(10**9) == 1


def test_the_torch_branch_of_the_projector_gives_the_numpy_product():
    """The GPU code path, run on a torch device named other than "cpu" ("cpu:0")."""
    from napari_sigma.compute.blocks import block_projector

    rng = np.random.default_rng(4)
    pixels = rng.integers(0, 65536, size=(50, 30), dtype=np.uint16)
    weights = rng.normal(size=(30, 3))
    on_torch = block_projector(weights, "cpu:0")(pixels)
    on_numpy = block_projector(weights, "cpu")(pixels)
    assert not isinstance(on_torch, np.ndarray) and isinstance(on_numpy, np.ndarray)
    np.testing.assert_allclose(on_torch.numpy(), on_numpy, rtol=1e-5, atol=1e-2)


def test_total_counts_are_exact_for_full_range_counts_of_any_type():
    rng = np.random.default_rng(5)
    for dtype in (np.uint8, np.uint16, np.int16, np.uint32, np.float32):
        high = min(np.iinfo(dtype).max if np.dtype(dtype).kind in "iu" else 2**20, 2**31)
        cube = rng.integers(high // 2, high, size=(3, 4, 2048)).astype(dtype)
        expected = cube.astype(np.int64).sum(-1).astype(np.float64)
        totals = total_counts(cube)
        assert totals.dtype == np.float64
        np.testing.assert_array_equal(totals, expected)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32, np.float32, np.float64])
def test_totals_summed_in_the_feature_pass_are_total_counts_bit_for_bit(dtype):
    from napari_sigma.features.intensities import LineFeatures, line_features
    from napari_sigma.spectrum_image import SpectrumImage

    rng = np.random.default_rng(6)
    cube = (rng.poisson(2.5, size=(29, 17, AXIS.size)) * rng.random((29, 17, 1)) * 3).astype(dtype)
    image = SpectrumImage(counts=cube, energy=AXIS, beam_energy=15.0)
    lines = ["O_Ka", "Si_Ka", "Fe_Ka"]
    plain = run_to_completion(line_features(image, lines, FeatureSettings()))
    with_totals = run_to_completion(line_features(image, lines, FeatureSettings(), totals=True))
    assert isinstance(with_totals, LineFeatures) and plain.totals is None
    assert with_totals.totals.dtype == np.float64 and with_totals.totals.shape == (29, 17)
    np.testing.assert_array_equal(with_totals.totals, total_counts(cube))
    # the whole spectra are read for the sums: the features are the same bit for bit
    for name in ("intensities", "sigma", "features"):
        np.testing.assert_array_equal(getattr(with_totals, name), getattr(plain, name))


def test_totals_of_the_projection_pass_in_any_chunks_and_without_weights():
    from napari_sigma.features.intensities import projection_chunks

    rng = np.random.default_rng(7)
    cube = rng.integers(0, 65536, size=(13, 11, 300), dtype=np.uint16)
    weights = np.zeros((300, 2), np.float32)
    for chunk_pixels, weights_used in ((11, True), (1000, True), (30, False)):
        if weights_used:
            weights[50:90, 0], weights[120:140, 1] = 1.0, -0.5
        totals = np.full(13 * 11, np.nan)
        out, chunks = projection_chunks(cube, weights if weights_used else 0 * weights,
                                        "cpu", chunk_pixels, totals)  # fmt: skip
        assert [end for *_, end in chunks][-1] == 13 * 11
        np.testing.assert_array_equal(totals.reshape(13, 11), total_counts(cube))
        plain, rest = projection_chunks(cube, weights if weights_used else 0 * weights)
        list(rest)
        np.testing.assert_array_equal(out, plain)
    with pytest.raises(ValueError, match="totals of shape"):
        projection_chunks(cube, weights, "cpu", 100, np.zeros(5))


def test_neighbour_average_and_normalise_on_threads_are_the_whole_stack_numbers(monkeypatch):
    """Each map is filtered alone and the Poisson normalisation made in blocks of pixels, on
    every core: the numbers of the filter over the stack and of the whole-table formula."""
    from scipy.ndimage import uniform_filter

    from napari_sigma.compute.blocks import worker_threads
    from napari_sigma.features import intensities

    monkeypatch.setattr(intensities, "NORMALISE_ROWS", 100)  # 11 blocks and a short one
    rng = np.random.default_rng(9)
    maps = (rng.random((31, 35, 5)) * 40).astype(np.float32)
    dose = rng.poisson(60.0, (31, 35)).astype(np.float64)
    stack = uniform_filter(maps, size=(5, 5, 1), mode="nearest")
    flat = maps.reshape(-1, 5).astype(np.float64)  # the whole-table formula, written out
    flat *= (dose.mean() / np.maximum(dose.reshape(-1), 1.0))[:, None]
    np.clip(flat, 0.0, None, out=flat)
    flat += intensities.ANSCOMBE_OFFSET
    expected = np.sqrt(flat).astype(np.float32)
    for threads in (1, 2):
        with worker_threads(threads):
            assert np.array_equal(intensities.neighbour_average(maps, 2), stack)
            assert np.array_equal(intensities.normalise(maps, dose, "poisson"), expected)


@pytest.mark.parametrize("dtype", [np.uint16, np.float32])
def test_projection_chunks_on_several_threads_are_the_one_thread_numbers(dtype):
    """The chunks read and projected on 1-3 threads: every output and total bit for bit those
    of the one-thread pass (non-integer float counts too, whose products depend on their
    order), the chunks reported in order."""
    from napari_sigma.features.intensities import projection_chunks

    rng = np.random.default_rng(11)
    cube = rng.gamma(0.7, 40.0, size=(23, 9, 257)) * (1 if dtype == np.uint16 else 1.37)
    cube = cube.astype(dtype)
    weights = rng.normal(size=(257, 5)).astype(np.float32)
    weights[:30] = 0.0
    results = []
    for workers in (1, 2, 3):
        totals = np.full(23 * 9, np.nan)
        out, chunks = projection_chunks(cube, weights, "cpu", 20, totals, workers)
        reports = list(chunks)
        assert [step for step, *_ in reports] == list(range(1, len(reports) + 1))
        ends = [end for *_, end in reports]
        assert ends == sorted(ends) and ends[-1] == 23 * 9 and len(reports) == 12
        results.append((out, totals))
    for out, totals in results[1:]:
        np.testing.assert_array_equal(out, results[0][0])
        np.testing.assert_array_equal(totals, results[0][1])


def test_fitted_features_of_numpy_counts_are_projected_on_every_core(monkeypatch):
    """``line_features`` reads and projects the chunks of a numpy cube on the usable cores
    (dask counts: one chunk at a time); the features are the same either way."""
    import dask.array as da

    from napari_sigma.features import intensities
    from napari_sigma.features.intensities import line_features
    from napari_sigma.spectrum_image import SpectrumImage

    calls: list = []
    original = intensities.threaded_map

    def recorded(function, items, workers=None):
        calls.append(workers)
        return original(function, items, workers)

    monkeypatch.setattr(intensities, "threaded_map", recorded)
    rng = np.random.default_rng(3)
    lines = ("Si_Ka", "Fe_Ka", "O_Ka")
    spectrum = sum(_peak(parse_line(n).energy, 30.0) for n in lines) + 0.05
    cube = rng.poisson(np.broadcast_to(spectrum, (21, 13, AXIS.size))).astype(np.uint16)
    found = {}
    for name, counts in (("numpy", cube), ("dask", da.from_array(cube, chunks=(4, 13, -1)))):
        image = SpectrumImage(counts, AXIS, 15.0)
        found[name] = run_to_completion(line_features(image, lines, FeatureSettings(), totals=True))
    assert calls == [None, 1]
    for field in ("intensities", "sigma", "features", "totals"):
        np.testing.assert_array_equal(getattr(found["numpy"], field), getattr(found["dask"], field))
    # the plain projection (line windows) takes the same threads
    weights = line_weights(AXIS, lines)
    for counts in (cube, da.from_array(cube, chunks=(4, 13, -1))):
        maps = run_to_completion(intensities.project_spectra(counts, weights, chunk_pixels=40))
        np.testing.assert_array_equal(maps, cube.astype(np.float32) @ weights)
    assert calls == [None, 1, None, 1]
