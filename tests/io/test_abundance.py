"""Abundance areas of the mineralogy report (io.mineralogy.abundance_fractions)."""

from types import SimpleNamespace

import numpy as np


def _core_only_basis(
    image, labels, core_sums, core_pixels, map_sum, deep_sums=None, depth=None, host=None
):
    """The basis before: each phase's core mean (deepest quarter) alone."""
    return np.asarray(core_sums) / np.maximum(core_pixels, 1)[:, None]


def _both(image, labels, n, monkeypatch):
    import napari_sigma.minerals.map_abundances as map_abundances

    new = map_abundances.abundance_fractions(image, labels, n)
    with monkeypatch.context() as patch:
        patch.setattr(map_abundances, "abundance_basis", _core_only_basis)
        old = map_abundances.abundance_fractions(image, labels, n)
    return new, old


def test_low_dose_abundances_are_not_moved_by_the_cores_counting_noise(monkeypatch):
    # 50 counts per pixel, true labels: each phase's core quarter (~700 px) was its basis,
    # its noise moved the abundances by 0.34-0.54 percentage points (max of 6 phases, seeds
    # 0-3); every pixel >= 2 px deep: 0.09-0.14
    from napari_sigma.synthetic import benchmark_case

    for seed in range(4):
        sample = benchmark_case("low_dose", seed=seed)
        truth = sample.fractions.reshape(-1, 6).mean(axis=0)
        new, old = _both(sample.image, sample.labels, 6, monkeypatch)
        assert np.abs(new - truth).max() < 0.0025
        assert np.abs(old - truth).max() > 0.003  # what the test guards against
        np.testing.assert_allclose(new.sum(), 1.0, atol=0.01)


def _spheres_in_a_host(seed: int):
    """Projected spheres (column share sqrt(1 - d^2/r^2)) of P in a host H, 20 counts/px."""
    rng = np.random.default_rng(seed)
    channel = np.arange(200)
    line = lambda centre: np.exp(-0.5 * ((channel - centre) / 3.0) ** 2)  # noqa: E731
    host = 2.0 * line(50) + 0.3
    particle = 2.0 * line(120) + 0.5 * line(50) + 0.3
    yy, xx = np.mgrid[:96, :96]
    share = np.zeros((96, 96))
    for _ in range(14):
        radius, (cy, cx) = rng.uniform(4, 8), rng.uniform(8, 88, 2)
        inside = 1.0 - ((yy - cy) ** 2 + (xx - cx) ** 2) / radius**2
        share = np.maximum(share, np.sqrt(np.clip(inside, 0.0, None)))
    mean = 20.0 * (share[..., None] * particle + (1.0 - share[..., None]) * host)
    counts = rng.poisson(mean).astype(np.uint16)
    labels = np.where(share > 0.5, 2, 1).astype(np.int32)
    return SimpleNamespace(counts=counts), labels, np.array([1.0 - share.mean(), share.mean()])


def test_particles_through_a_foil_get_their_abundance_with_the_host_removed(monkeypatch):
    # every pixel of a projected sphere holds some host, its centre too: the core-only basis
    # counted that host as particle (0.62-0.72 points off, the label areas 1.3-1.4); the
    # particles' host-corrected cores: 0.21-0.41
    for seed in range(3):
        image, labels, truth = _spheres_in_a_host(seed)
        new, old = _both(image, labels, 2, monkeypatch)
        assert np.abs(new - truth).max() < 0.005
        assert np.abs(old - truth).max() > 0.006


def test_a_lone_phase_and_tiny_phases_have_a_basis():
    from napari_sigma.io.mineral_report.mineralogy import abundance_fractions

    rng = np.random.default_rng(0)
    counts = rng.poisson(5.0, (12, 12, 16)).astype(np.uint16)
    labels = np.ones((12, 12), np.int32)
    np.testing.assert_allclose(abundance_fractions(SimpleNamespace(counts=counts), labels, 1),
                               [1.0], atol=0.05)  # fmt: skip
    labels[3, 3], labels[8, 8] = 2, 3  # one-pixel phases: no pixel 2 px deep, their core is all
    found = abundance_fractions(SimpleNamespace(counts=counts), labels, 3)
    assert np.all(np.isfinite(found)) and abs(found.sum() - 1.0) < 0.2


def test_given_deep_sums_and_a_lazy_cube_give_the_same_abundances():
    # deep sums handed over (e.g. summed in the analysis's own pass) are the numbers summed
    # here; a lazy (dask) cube gives the same abundances as numpy
    import dask.array as da

    from napari_sigma.io.mineral_report.mineralogy import BASIS_DEPTH, abundance_fractions
    from napari_sigma.minerals.interiors import phase_depths
    from napari_sigma.phases.spectra import phase_sum_spectra

    image, labels, _ = _spheres_in_a_host(0)
    labels[:20, :30] = 3  # a third phase, grains touching the map's edge
    whole = abundance_fractions(image, labels, 3)
    deep = np.where(phase_depths(labels) >= BASIS_DEPTH, labels, 0)
    sums = phase_sum_spectra(image.counts, deep, 3)
    np.testing.assert_array_equal(abundance_fractions(image, labels, 3, deep_sums=sums), whole)
    lazy = SimpleNamespace(counts=da.from_array(image.counts, chunks=(32, 32, -1)))
    np.testing.assert_allclose(abundance_fractions(lazy, labels, 3), whole, rtol=1e-12)
