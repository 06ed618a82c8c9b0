"""The host correction of particles quantified in their host (minerals.host)."""

import numpy as np
import pytest

from napari_sigma.compute.progress import run_to_completion
from napari_sigma.energy import EnergyAxis
from napari_sigma.minerals.host import host_corrected_spectra, particle_hosts
from napari_sigma.minerals.interiors import interior_labels
from napari_sigma.minerals.phases import identify_phases
from napari_sigma.quant.quantify import QuantSettings
from napari_sigma.quant.simulate import line_spectrum
from napari_sigma.spectrum_image import SpectrumImage
from napari_sigma.synthetic.generator import weight_fractions

AXIS = EnergyAxis(-0.1, 0.01, 1024)
MNS = weight_fractions("MnS")
IRON = {"Fe": 0.84, "Cr": 0.16}


def _particles_in_host(composition=MNS, radius=5.0, dose=4000, seed=0):
    """Spheres (MnS) through a Cr steel foil: a pixel at distance r from a particle's centre is
    a column of sqrt(1 - (r/R)^2) particle and the rest steel; labels where it fills half."""
    particle = line_spectrum(composition, AXIS, 15.0)
    host = line_spectrum(IRON, AXIS, 15.0)
    particle, host = particle / particle.sum(), host / host.sum()
    yy, xx = np.mgrid[:48, :48]
    share = np.zeros((48, 48))
    for cy in (8, 24, 40):
        for cx in (8, 24, 40):
            r = np.hypot(yy - cy, xx - cx) / radius
            share = np.maximum(share, np.sqrt(np.clip(1 - r**2, 0, None)))
    means = share[..., None] * particle + (1 - share[..., None]) * host
    counts = np.random.default_rng(seed).poisson(means * dose).astype(np.float32)
    labels = np.where(share >= 0.5, 2, 1).astype(np.int32)
    return SpectrumImage(counts, AXIS, 15.0), labels


def test_particles_in_a_host_are_quantified_without_the_host():
    image, labels = _particles_in_host()
    assert particle_hosts(labels) == {2: 1}
    elements = ["S", "Cr", "Mn", "Fe"]
    plain = run_to_completion(identify_phases(
        image, labels, elements, settings=QuantSettings(host_correction=False)))  # fmt: skip
    fixed = run_to_completion(identify_phases(image, labels, elements))
    before, after = plain[1].quantification.wt, fixed[1].quantification.wt
    # the particles' cores hold ~10 % of the steel; the centres about 1 %
    assert before["Fe"] > 5.0
    assert after["Fe"] < 0.5 * before["Fe"]
    for element, truth in MNS.items():
        assert abs(after[element] - 100 * truth) < abs(before[element] - 100 * truth)
        assert after[element] == pytest.approx(100 * truth, rel=0.05)
    assert any(note.startswith("host correction") for note in fixed[1].quantification.notes)
    # the host itself is not corrected
    assert fixed[0].quantification.wt == pytest.approx(plain[0].quantification.wt)


def test_a_phase_whose_core_is_free_of_its_neighbour_is_left_alone():
    # a large grain with sharp boundaries (no mixing): centres and core agree, nothing removed
    particle = line_spectrum(MNS, AXIS, 15.0)
    host = line_spectrum(IRON, AXIS, 15.0)
    labels = np.ones((48, 48), dtype=np.int32)
    labels[12:36, 12:36] = 2
    means = np.where((labels == 2)[..., None], particle / particle.sum(), host / host.sum())
    counts = np.random.default_rng(1).poisson(means * 2000).astype(np.float32)
    spectra = np.stack([counts[interior_labels(labels) == k].sum(axis=0) for k in (1, 2)])
    corrected, corrections = host_corrected_spectra(counts, labels, spectra, AXIS.energies, 15.0)
    assert corrections == {}
    np.testing.assert_array_equal(corrected, spectra)


def test_a_particle_holding_the_hosts_elements_keeps_them():
    # a chromium carbide with 17 wt % Fe in a Cr steel: the host's elements are also the
    # particle's; the correction removes the steel's share, not the particle's Fe
    carbide = {"Cr": 0.77, "Fe": 0.17, "C": 0.06}
    image, labels = _particles_in_host(carbide)
    elements = ["C", "Cr", "Fe"]
    plain = run_to_completion(identify_phases(
        image, labels, elements, settings=QuantSettings(host_correction=False)))  # fmt: skip
    fixed = run_to_completion(identify_phases(image, labels, elements))
    before, after = plain[1].quantification.wt, fixed[1].quantification.wt
    assert before["Fe"] > 1.15 * 17.0  # the steel in the cores
    assert after["Fe"] == pytest.approx(17.0, rel=0.08)
    assert after["Cr"] == pytest.approx(77.0, rel=0.03)


def test_a_lazy_cube_gives_the_same_correction():
    import dask.array as da

    image, labels = _particles_in_host(dose=300)
    counts = np.asarray(image.counts)
    spectra = np.stack([counts[interior_labels(labels) == k].sum(axis=0) for k in (1, 2)])
    eager = host_corrected_spectra(counts, labels, spectra, AXIS.energies, 15.0)
    lazy = host_corrected_spectra(
        da.from_array(counts, chunks=(16, 48, 1024)), labels, spectra, AXIS.energies, 15.0
    )
    assert set(eager[1]) == set(lazy[1]) == {2}
    np.testing.assert_allclose(lazy[0], eager[0], rtol=1e-9)
    assert lazy[1][2].share == pytest.approx(eager[1][2].share, rel=1e-9)


def test_particles_spread_over_several_hosts_are_corrected_with_their_mixture():
    # MnS spheres in three steels (one column of particles in each): no host holds half of the
    # particles' boundary, so a single-host rule left their cores uncorrected
    from napari_sigma.minerals.interiors import touching_phases

    hosts = [{"Fe": 0.84, "Cr": 0.16}, {"Ni": 0.8, "Cr": 0.2}, {"Fe": 0.7, "Ni": 0.3}]
    particle = line_spectrum(MNS, AXIS, 15.0)
    particle = particle / particle.sum()
    yy, xx = np.mgrid[:48, :48]
    share = np.zeros((48, 48))
    for cy in (8, 24, 40):
        for cx in (8, 24, 40):
            r = np.hypot(yy - cy, xx - cx) / 5.0
            share = np.maximum(share, np.sqrt(np.clip(1 - r**2, 0, None)))
    band = np.minimum(xx // 16, 2)
    host = np.stack([line_spectrum(h, AXIS, 15.0) for h in hosts])
    host = (host / host.sum(axis=1, keepdims=True))[band]
    means = share[..., None] * particle + (1 - share[..., None]) * host
    counts = np.random.default_rng(0).poisson(means * 4000).astype(np.float32)
    labels = np.where(share >= 0.5, 4, band + 1).astype(np.int32)
    boundary = touching_phases(labels)[4]
    assert max(boundary.values()) < 0.5 * sum(boundary.values())
    image = SpectrumImage(counts, AXIS, 15.0)
    elements = ["S", "Cr", "Mn", "Fe", "Ni"]
    plain = run_to_completion(identify_phases(
        image, labels, elements, settings=QuantSettings(host_correction=False)))  # fmt: skip
    fixed = run_to_completion(identify_phases(image, labels, elements))
    before, after = plain[3].quantification.wt, fixed[3].quantification.wt
    foreign = ("Cr", "Fe", "Ni")
    assert sum(before[el] for el in foreign) > 5.0
    assert sum(after[el] for el in foreign) < 0.5 * sum(before[el] for el in foreign)
    for element, truth in MNS.items():
        assert after[element] == pytest.approx(100 * truth, rel=0.05)
    assert any("host correction" in note for note in fixed[3].quantification.notes)


@pytest.mark.parametrize("dtype", [np.uint16, np.float32])
@pytest.mark.parametrize("threads", [1, 2])
def test_core_projections_are_those_of_a_fresh_float64_block(dtype, threads):
    """The in-memory cube's core pixels, cast into a reused scratch block (on every core), give
    the products and counts a fresh float64 array of each 8192-pixel block gives, bit for bit
    (phases of more than one block, and a last block of odd size)."""
    from napari_sigma.compute.blocks import worker_threads
    from napari_sigma.minerals.host import _core_projections

    rng = np.random.default_rng(3)
    counts = rng.poisson(0.4, (100, 190, 64)).astype(dtype)
    if dtype == np.float32:
        counts *= np.float32(1.37)  # not integers: summed as floats
    core = rng.integers(0, 4, counts.shape[:2]).astype(np.int32)
    core[:47] = np.where(core[:47] > 0, 3, 0)  # phase 3: 8192 + some pixels (two blocks)
    filters = {p: rng.standard_normal(64) for p in (1, 2, 3)}
    with worker_threads(threads):
        found = _core_projections(counts, core, filters)
    flat = counts.reshape(-1, 64)
    for k, p in enumerate(filters):
        matrix = np.stack(list(filters.values()), axis=1)
        where = np.flatnonzero(core.ravel() == p)
        projected, totals = np.empty(where.size), np.empty(where.size)
        for lo in range(0, where.size, 8192):
            block = np.asarray(flat[where[lo : lo + 8192]], dtype=np.float64)
            projected[lo : lo + 8192] = block @ matrix[:, k]
            totals[lo : lo + 8192] = block.sum(axis=1)
        assert (core == 3).sum() > 8192
        np.testing.assert_array_equal(found[p][2], where)
        np.testing.assert_array_equal(found[p][0], projected)
        np.testing.assert_array_equal(found[p][1], totals)


def _fresh_block_projections(counts, core, filters):
    """The products and counts of each phase's core pixels as fresh float64 8192-pixel blocks."""
    flat = counts.reshape(-1, counts.shape[-1])
    matrix = np.stack(list(filters.values()), axis=1)
    expected = {}
    for k, p in enumerate(filters):
        where = np.flatnonzero(core.ravel() == p)
        projected, totals = np.empty(where.size), np.empty(where.size)
        for lo in range(0, where.size, 8192):
            block = np.asarray(flat[where[lo : lo + 8192]], dtype=np.float64)
            projected[lo : lo + 8192] = block @ matrix[:, k]
            totals[lo : lo + 8192] = block.sum(axis=1)
        expected[p] = (projected, totals, where)
    return expected


@pytest.mark.parametrize("dtype", [np.uint16, np.float32])
def test_core_projections_on_one_blas_thread_use_a_small_block_and_keep_every_bit(
    dtype, monkeypatch
):
    """On one BLAS thread (the analysis's) a phase's core pixels are projected a small block at
    a time (:data:`SCRATCH_BYTES`), with the same bits as the fresh 8192-pixel blocks: phases of
    8192 + 1 pixels (a lone last pixel, a dot product in numpy), 8192 + 257 (a lone pixel after
    a whole sub-block), a single pixel and an odd size; the call's traced peak stays far below
    one 8192-pixel float64 block."""
    import tracemalloc

    from threadpoolctl import threadpool_limits

    from napari_sigma.compute.blocks import worker_threads
    from napari_sigma.minerals import host

    rng = np.random.default_rng(5)
    counts = rng.poisson(0.6, (130, 200, 64)).astype(dtype)
    if dtype == np.float32:
        counts *= np.float32(1.37)
    core = np.zeros(counts.shape[:2], np.int32).ravel()
    order = rng.permutation(core.size)
    sizes = {1: 8193, 2: 8192 + 257, 3: 1, 4: 3001}
    first = 0
    for phase, size in sizes.items():
        core[order[first : first + size]] = phase
        first += size
    core = core.reshape(counts.shape[:2])
    filters = {p: rng.standard_normal(64) * 10.0 ** (p - 2) for p in sizes}
    monkeypatch.setattr(host, "SCRATCH_BYTES", 256 * 64 * 8)
    with threadpool_limits(limits=1, user_api="blas"):
        assert host._projection_rows(64) == 256
        expected = _fresh_block_projections(counts, core, filters)
        for threads in (1, 2):
            tracemalloc.start()
            with worker_threads(threads):
                found = host._core_projections(counts, core, filters)
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            for p in sizes:
                for got, want in zip(found[p], expected[p], strict=True):
                    np.testing.assert_array_equal(got, want)
            outputs = sum(a.nbytes for triple in found.values() for a in triple)
            assert peak < outputs + 2**20  # an 8192 x 64 float64 block alone is 4 MiB


def test_core_projections_keep_whole_blocks_on_several_blas_threads():
    """Where the BLAS splits a product between threads (the split moves the last bit of a few
    products) the 8192-pixel blocks are kept; one thread: 1 MiB blocks (within L2), at least
    64 pixels."""
    from threadpoolctl import threadpool_limits

    from napari_sigma.minerals import host

    with threadpool_limits(limits=2, user_api="blas"):
        assert host._projection_rows(2048) == 8192
    with threadpool_limits(limits=1, user_api="blas"):
        assert host._projection_rows(2048) == 64
        assert host._projection_rows(4096) == 64
        assert host._projection_rows(64) == 2048
        assert host._projection_rows(16) == 8192
        assert host._projection_rows(10**6) == 64
    # a lone pixel joins the sub-block before it, unless it was alone in its 8192 block
    assert list(host._sub_blocks(8192 + 4097, 4096)) == [(0, 4096), (4096, 8192), (8192, 12289)]
    assert list(host._sub_blocks(16385, 8192)) == [(0, 8192), (8192, 16384), (16384, 16385)]
    assert list(host._sub_blocks(1, 64)) == [(0, 1)]


def test_the_compiled_gather_gives_the_core_projections_of_numpy_bit_for_bit(monkeypatch):
    """From ``COMPILED_GATHER_PIXELS`` pixels, integer counts (uint8/16/32, C-contiguous) are
    gathered, cast and summed by the compiled kernel in one read of each pixel, the product
    left to BLAS: the projections and totals of the numpy gather, bit for bit; float32 counts
    and a strided cube go to numpy."""
    from threadpoolctl import threadpool_limits

    from napari_sigma.minerals import _gather, host

    calls = []
    real = _gather.gather_rows
    monkeypatch.setattr(_gather, "gather_rows", lambda *a: calls.append(a[0].dtype) or real(*a))
    monkeypatch.setattr(host, "SCRATCH_BYTES", 64 * 48 * 8)  # blocks of 64 pixels
    rng = np.random.default_rng(9)
    core = rng.integers(0, 4, size=(40, 50)).astype(np.int32)
    filters = {p: rng.standard_normal(48) * 10.0 ** (p - 2) for p in (1, 2, 3)}
    with threadpool_limits(limits=1, user_api="blas"):
        for dtype, high in ((np.uint8, 256), (np.uint16, 65536), (np.uint32, 2**32)):
            counts = rng.integers(0, high, size=(40, 50, 48), dtype=np.uint64).astype(dtype)
            monkeypatch.setattr(host, "COMPILED_GATHER_PIXELS", 1 << 40)
            expected = host._core_projections(counts, core, filters)
            monkeypatch.setattr(host, "COMPILED_GATHER_PIXELS", 1)
            del calls[:]
            found = host._core_projections(counts, core, filters)
            assert calls and set(calls) == {np.dtype(dtype)}
            for p in filters:
                for got, want in zip(found[p], expected[p], strict=True):
                    assert got.tobytes() == want.tobytes()
        del calls[:]
        host._core_projections(counts.astype(np.float32), core, filters)
        host._core_projections(counts[:, :, ::-1], core, filters)
        assert calls == []
