"""Tests of the synthetic EDS spectrum-image generator (napari_sigma.synthetic.generator)."""

from __future__ import annotations

import time
import tracemalloc

import numpy as np
import pytest
from scipy import ndimage

from napari_sigma.synthetic import generator as synthetic
from napari_sigma.synthetic.generator import (
    BENCHMARK_CASES,
    PhaseSpec,
    benchmark_case,
    demo_sample,
    make_synthetic,
    mineral,
    weight_fractions,
)


@pytest.fixture(scope="module")
def demo():
    return demo_sample(seed=0)


def _peak_energies(spectrum: np.ndarray, energies: np.ndarray, n: int) -> list[float]:
    """Energies of the ``n`` highest local maxima of a spectrum."""
    interior = (spectrum[1:-1] > spectrum[:-2]) & (spectrum[1:-1] >= spectrum[2:])
    peaks = np.flatnonzero(interior) + 1
    top = peaks[np.argsort(spectrum[peaks])[::-1][:n]]
    return sorted(float(energies[i]) for i in top)


def test_same_seed_gives_identical_sample_and_other_seed_differs():
    first = make_synthetic(seed=3, shape=(40, 48))
    again = make_synthetic(seed=3, shape=(40, 48))
    other = make_synthetic(seed=4, shape=(40, 48))
    assert np.array_equal(first.image.counts, again.image.counts)
    assert np.array_equal(first.labels, again.labels)
    assert np.array_equal(first.fractions, again.fractions)
    assert not np.array_equal(first.image.counts, other.image.counts)
    assert not np.array_equal(first.labels, other.labels)


def test_demo_shape_dtype_and_calibration(demo):
    image = demo.image
    assert image.counts.shape == (160, 160, 2048)
    assert image.counts.dtype == np.uint16
    assert image.energy.offset == pytest.approx(-0.1)
    assert image.energy.scale == pytest.approx(0.01)
    assert image.beam_energy == 15.0
    assert image.pixel_size_um == pytest.approx(0.5)
    assert demo.labels.shape == (160, 160) and demo.labels.dtype == np.int32
    assert demo.fractions.shape == (160, 160, 6) and demo.fractions.dtype == np.float32
    assert demo.pure_spectra.shape == (6, 2048)
    assert len(set(demo.phase_names)) == 6
    assert image.elements == demo.elements
    assert demo.elements == ("O", "Na", "Mg", "Al", "Si", "S", "K", "Ca", "Fe")
    assert demo.lines == tuple(f"{el}_Ka" for el in demo.elements)


def test_labels_cover_all_phases_and_match_fractions(demo):
    assert set(np.unique(demo.labels)) == set(range(1, demo.n_phases + 1))
    np.testing.assert_allclose(demo.fractions.sum(axis=-1), 1.0, atol=1e-5)
    assert np.all(demo.fractions >= 0)
    assert np.array_equal(demo.labels, np.argmax(demo.fractions, axis=-1) + 1)


def test_mixed_pixels_lie_at_grain_boundaries_only(demo):
    labels = demo.labels
    mixed = demo.fractions.max(axis=-1) < 1.0
    edge = np.zeros(labels.shape, dtype=bool)
    edge[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    edge[:, :-1] |= labels[:, 1:] != labels[:, :-1]
    edge[1:, :] |= labels[1:, :] != labels[:-1, :]
    edge[:-1, :] |= labels[1:, :] != labels[:-1, :]
    near_boundary = ndimage.binary_dilation(edge, iterations=4)
    assert mixed.any()
    assert not np.any(mixed & ~near_boundary)
    assert mixed[edge].mean() > 0.95
    assert (~mixed).mean() > 0.5


def test_mean_counts_per_pixel_match_the_request(demo):
    assert demo.image.counts.sum(axis=-1).mean() == pytest.approx(200.0, rel=0.05)
    low = benchmark_case("low_dose", shape=(64, 64))
    assert low.image.counts.sum(axis=-1).mean() == pytest.approx(50.0, rel=0.05)
    expected = demo.fractions.mean(axis=(0, 1)) @ demo.pure_spectra.sum(axis=1)
    assert expected == pytest.approx(200.0, rel=1e-6)


def test_quartz_weight_fractions_from_formula():
    quartz = mineral("quartz")
    assert quartz.composition["Si"] == pytest.approx(0.4674, abs=0.001)
    assert quartz.composition["O"] == pytest.approx(0.5326, abs=0.001)
    apatite = weight_fractions("Ca5(PO4)3F")
    assert apatite["Ca"] == pytest.approx(0.3974, abs=0.001)
    assert apatite["F"] == pytest.approx(0.0377, abs=0.001)
    dolomite = synthetic.formula_atoms("CaMg(CO3)2")
    assert dolomite == {"Ca": 1.0, "Mg": 1.0, "C": 2.0, "O": 6.0}
    for spec in synthetic.MINERALS.values():
        assert sum(spec.composition.values()) == pytest.approx(1.0, abs=1e-9)


def test_pure_spectra_have_the_expected_main_peaks():
    sample = make_synthetic(seed=1, shape=(24, 24), phases=("quartz", "magnetite"))
    energies = sample.image.energy.energies
    quartz, magnetite = sample.pure_spectra
    si_ka, o_ka = _peak_energies(quartz, energies, 2)[::-1]
    assert si_ka == pytest.approx(1.74, abs=0.015)
    assert o_ka == pytest.approx(0.525, abs=0.015)
    # magnetite at 15 kV: O Ka, Fe La and Fe Ka are the three highest peaks
    o_ka, fe_la, fe_ka = _peak_energies(magnetite, energies, 3)
    assert o_ka == pytest.approx(0.525, abs=0.015)
    assert fe_ka == pytest.approx(6.40, abs=0.015)
    assert fe_la == pytest.approx(0.705, abs=0.015)


def test_background_is_a_realistic_share_and_vanishes_above_beam_energy(demo):
    background = demo.pure_spectra - demo.pure_line_spectra
    share = background.sum(axis=1) / demo.pure_spectra.sum(axis=1)
    assert np.all(share > 0.15) and np.all(share < 0.45)
    quartz = demo.phase_names.index("quartz")
    assert 0.2 < share[quartz] < 0.35
    above_beam = demo.image.energy.energies >= 15.0
    assert np.all(demo.pure_spectra[:, above_beam] == 0)
    assert np.all(demo.image.counts[..., above_beam] == 0)


def test_heavier_phases_are_mildly_brighter(demo):
    totals = dict(zip(demo.phase_names, demo.pure_spectra.sum(axis=1), strict=True))
    assert totals["magnetite"] > totals["quartz"]
    assert totals["magnetite"] / totals["quartz"] < 1.5


def test_grain_interior_matches_pure_spectrum_within_poisson_error(demo):
    counts = demo.image.counts
    for k, name in enumerate(demo.phase_names):
        interior = ndimage.binary_erosion(demo.fractions[..., k] == 1.0, iterations=2)
        n_pixels = int(interior.sum())
        assert n_pixels > 100, name
        observed = counts[interior].sum(axis=0, dtype=np.float64)
        expected = n_pixels * demo.pure_spectra[k]
        used = expected > 5
        chi2 = np.sum((observed[used] - expected[used]) ** 2 / expected[used])
        dof = int(used.sum())
        assert abs(chi2 / dof - 1.0) < 5 * np.sqrt(2.0 / dof), name


def test_counts_are_poisson_distributed(demo):
    quartz = demo.phase_names.index("quartz") + 1
    interior = ndimage.binary_erosion(demo.fractions[..., quartz - 1] == 1.0, iterations=2)
    si_window = demo.image.energy.channel_range(1.68, 1.80)
    counts = demo.image.counts[interior][:, si_window].sum(axis=1).astype(np.float64)
    dispersion = counts.var(ddof=1) / counts.mean()
    assert dispersion == pytest.approx(1.0, abs=5 * np.sqrt(2.0 / counts.size))


def test_trace_case_has_a_phase_below_one_percent():
    sample = benchmark_case("trace")
    areas = np.bincount(sample.labels.ravel(), minlength=6)[1:] / sample.labels.size
    assert np.all(areas > 0)
    assert np.any(areas < 0.01)
    assert sample.phase_names[int(np.argmin(areas))] == "zircon"


def test_particles_sit_on_a_substrate_phase():
    sample = benchmark_case("particles")
    assert sample.phase_names[-1] == "carbon"
    areas = np.bincount(sample.labels.ravel())[1:] / sample.labels.size
    assert areas.size == 5 and np.all(areas > 0)
    assert areas[-1] > 0.5
    _, n_particles = ndimage.label(sample.labels != sample.n_phases)
    assert n_particles >= 4


def test_minor_twin_phases_differ_by_one_weight_percent_of_iron():
    sample = benchmark_case("minor_twin", shape=(48, 48))
    first, second = sample.phases[:2]
    assert second.composition["Fe"] - first.composition["Fe"] == pytest.approx(0.01, abs=1e-9)
    assert first.composition["Mg"] - second.composition["Mg"] == pytest.approx(0.01, abs=1e-9)
    assert set(np.unique(sample.labels)) == set(range(1, 6))


@pytest.mark.parametrize("name", BENCHMARK_CASES)
def test_every_benchmark_case_has_all_its_phases(name):
    sample = benchmark_case(name, shape=(64, 64))
    assert set(np.unique(sample.labels)) == set(range(1, sample.n_phases + 1))
    assert sample.image.counts.shape == (64, 64, 2048)


def test_invalid_inputs_raise():
    with pytest.raises(ValueError, match="sum"):
        PhaseSpec("bad", {"Si": 0.5, "O": 0.3})
    with pytest.raises(ValueError, match="unknown mineral"):
        make_synthetic(phases=("quartz", "unobtainium"))
    with pytest.raises(ValueError, match="unknown benchmark"):
        benchmark_case("nope")
    with pytest.raises(ValueError, match="layout"):
        make_synthetic(shape=(16, 16), layout="stripes")
    with pytest.raises(ValueError, match="area_fractions"):
        make_synthetic(shape=(16, 16), phases=("quartz", "albite"), area_fractions=(1.0,))


@pytest.mark.slow
def test_memory_and_time_of_a_512_square_cube():
    tracemalloc.start()
    start = time.perf_counter()
    sample = make_synthetic(seed=0, shape=(512, 512), counts_per_pixel=100.0)
    elapsed = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    cube_bytes = sample.image.counts.nbytes
    print(f"512x512x2048 uint16: {elapsed:.1f} s, peak {peak / 2**20:.0f} MiB")
    assert peak < 1.5 * cube_bytes
    assert sample.image.counts.sum(axis=-1, dtype=np.float64).mean() == pytest.approx(100, rel=0.05)


def test_counts_beyond_the_dtype_range_are_clipped():
    sample = make_synthetic(
        seed=0, shape=(8, 8), phases=("quartz", "magnetite"), counts_per_pixel=20000, dtype=np.uint8
    )
    counts = sample.image.counts
    assert counts.dtype == np.uint8
    assert counts.max() == 255
    assert sample.pure_spectra.max() > 255


def test_small_fields_still_hold_every_phase_or_refuse():
    sample = make_synthetic(seed=2, shape=(16, 16))
    assert set(np.unique(sample.labels)) == set(range(1, 7))
    with pytest.raises(ValueError, match="no pixel"):
        make_synthetic(shape=(2, 2))  # 4 pixels cannot hold 6 phases
