"""Tests of phase sum spectra, NMF and abundance maps against constructed ground truth."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from napari_sigma.compute import blocks
from napari_sigma.compute.progress import Progress, run_to_completion
from napari_sigma.errors import AnalysisError
from napari_sigma.unmixing import abundances, block_nnls, restricted_inverses
from napari_sigma.unmixing.abundances import abundance_maps
from napari_sigma.unmixing.nmf import nmf
from napari_sigma.unmixing.nmf_start import vertex_rows

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def peak_spectra(n_channels: int = 300) -> np.ndarray:
    """Three unit-sum spectra made of overlapping Gaussian peaks on a small background."""
    channel = np.arange(n_channels)
    centres = [(40, 120), (110, 200), (60, 250)]
    spectra = np.array(
        [sum(np.exp(-0.5 * ((channel - c) / 6.0) ** 2) for c in pair) + 0.01 for pair in centres]
    )
    return spectra / spectra.sum(1, keepdims=True)


def cosine_after_matching(found: np.ndarray, truth: np.ndarray) -> np.ndarray:
    unit_found = found / np.linalg.norm(found, axis=1, keepdims=True)
    unit_truth = truth / np.linalg.norm(truth, axis=1, keepdims=True)
    similarity = unit_truth @ unit_found.T
    rows, cols = linear_sum_assignment(-similarity)
    return similarity[rows, cols]


def test_nmf_recovers_known_components():
    truth = peak_spectra()
    rng = np.random.default_rng(1)
    weights = np.vstack([np.eye(3) * 500, rng.uniform(0, 400, (5, 3))])
    weights_found, components = nmf(weights @ truth, 3, device="cpu")
    assert (components >= 0).all() and (weights_found >= 0).all()
    np.testing.assert_allclose(components.sum(1), 1.0)
    assert cosine_after_matching(components, truth).min() > 0.99
    np.testing.assert_allclose(weights_found @ components, weights @ truth, rtol=1e-3, atol=1e-3)


def test_nmf_torch_and_sklearn_reconstruct_alike():
    rng = np.random.default_rng(2)
    matrix = rng.uniform(0, 1, (8, 3)) @ rng.uniform(0, 1, (3, 200)) + rng.uniform(0, 0.2, (8, 200))
    errors = {}
    for backend in ("torch", "sklearn"):
        weights, components = nmf(matrix, 3, backend=backend, device="cpu")
        errors[backend] = np.linalg.norm(matrix - weights @ components) / np.linalg.norm(matrix)
    assert errors["torch"] <= errors["sklearn"] * 1.03


def test_vertex_start_keeps_pure_rows_and_explains_mixed_ones():
    truth = peak_spectra()
    rng = np.random.default_rng(3)
    mixtures = rng.dirichlet(np.ones(3), 5)  # rows inside the cone of the three pure ones
    weights = np.vstack([mixtures[:2], np.diag([300.0, 800.0, 50.0]), mixtures[2:]]) * 100
    matrix = weights @ truth
    assert sorted(vertex_rows(matrix, 3)) == [2, 3, 4]
    weights_found, components = nmf(matrix, 3, device="cpu", init="vertices")
    assert cosine_after_matching(components, truth).min() > 0.9999
    np.testing.assert_allclose(weights_found @ components, matrix, rtol=1e-6, atol=1e-6)


def test_vertex_start_with_one_component_per_row_returns_the_rows():
    rng = np.random.default_rng(4)
    matrix = rng.uniform(0, 1, (3, 3)) @ peak_spectra() * 1000  # phases sharing peaks
    rows = matrix / matrix.sum(axis=1, keepdims=True)
    _, square = nmf(matrix, 3, device="cpu", init="vertices")
    assert cosine_after_matching(square, rows).min() > 0.99999  # the smallest simplex
    _, rotated = nmf(matrix, 3, device="cpu", init="nndsvd")
    assert cosine_after_matching(rotated, rows).min() < 0.999  # NNDSVD mixes the rows


def test_nmf_refuses_impossible_rank():
    with pytest.raises(AnalysisError):
        nmf(np.ones((3, 10)), 4)
    with pytest.raises(AnalysisError):
        nmf(-np.ones((3, 10)), 2)


def test_abundance_maps_recover_known_abundances():
    truth = peak_spectra()
    rng = np.random.default_rng(3)
    abundances = rng.uniform(0, 300, (16, 12, 3))
    abundances[rng.uniform(size=(16, 12, 3)) < 0.3] = 0.0
    counts = abundances @ truth
    reports = []
    found = run_to_completion(abundance_maps(counts, truth, device="cpu"), reports.append)
    assert found.shape == (16, 12, 3) and found.dtype == np.float32
    assert (found >= 0).all()
    assert np.abs(found - abundances).max() < 1e-3 * abundances.max()
    assert reports and all(isinstance(r, Progress) and r.stage == "unmixing" for r in reports)


def test_abundance_maps_are_the_nnls_optimum_for_noisy_counts(monkeypatch):
    from scipy.optimize import nnls

    truth = peak_spectra()
    rng = np.random.default_rng(4)
    counts = rng.poisson(rng.uniform(0, 50, (10, 10, 3)) @ truth * 3).astype(np.uint16)
    monkeypatch.setattr(abundances, "ABUNDANCE_CHUNK_VALUES", 300 * 30)
    found = run_to_completion(abundance_maps(counts, truth, device="cpu"))
    for pixel in range(0, 100, 7):
        expected, _ = nnls(truth.T, counts.reshape(100, -1)[pixel].astype(float))
        np.testing.assert_allclose(found.reshape(100, 3)[pixel], expected, atol=1e-2)


def test_abundances_do_not_depend_on_the_cast_sub_blocks(monkeypatch):
    truth = peak_spectra()
    rng = np.random.default_rng(9)
    counts = rng.poisson(rng.uniform(0, 50, (12, 9, 3)) @ truth * 3).astype(np.uint16)
    whole = run_to_completion(abundance_maps(counts, truth, device="cpu"))
    monkeypatch.setattr(blocks, "CAST_VALUES", 5 * 300)  # 5 pixels of 300 channels
    monkeypatch.setattr(abundances, "ABUNDANCE_CHUNK_VALUES", 300 * 23)
    split = run_to_completion(abundance_maps(counts, truth, device="cpu"))
    np.testing.assert_allclose(split, whole, rtol=1e-5, atol=1e-4)


def test_masked_channels_are_ignored():
    truth = peak_spectra()
    counts = np.array([[[100.0, 50.0, 0.0]]]) @ truth
    counts[..., :5] += 1000.0
    mask = np.zeros(truth.shape[1], bool)
    mask[:5] = True
    found = run_to_completion(abundance_maps(counts, truth, device="cpu", mask_channels=mask))
    np.testing.assert_allclose(found[0, 0], [100.0, 50.0, 0.0], atol=1e-2)


def test_abundances_of_nearly_pure_pixels_equal_scipy_nnls():
    from scipy.optimize import nnls

    rng = np.random.default_rng(9)
    components = rng.dirichlet(np.ones(60), 5)  # five overlapping spectra
    shares = np.zeros((400, 5))
    shares[np.arange(400), rng.integers(0, 5, 400)] = 200.0  # pure pixels ...
    shares[:100] += rng.uniform(0, 60, (100, 5))  # ... and mixed ones
    counts = rng.poisson(shares @ components * 50).astype(np.uint16)  # noise: negative shares
    found = run_to_completion(abundance_maps(counts, components, device="cpu"))
    expected = np.stack([nnls(components.T, row.astype(float))[0] for row in counts])
    np.testing.assert_allclose(found, expected, rtol=1e-4, atol=1e-3 * expected.max())
    assert (found == 0).mean() > 0.3  # many shares are exactly zero, as NNLS gives


def test_low_dose_many_components_are_solved_exactly_without_coordinate_descent(monkeypatch):
    """8 overlapping components at ~10 counts per pixel: almost every pixel has negative
    unconstrained shares; the batched Lawson-Hanson solve gives scipy's optimum on its own."""
    from scipy.optimize import nnls

    def no_descent(*args, **kwargs):
        raise AssertionError("coordinate descent should not be needed")

    monkeypatch.setattr(block_nnls, "_coordinate_descent", no_descent)
    monkeypatch.setattr(abundances, "ABUNDANCE_CHUNK_VALUES", 80 * 256)
    rng = np.random.default_rng(2)
    components = rng.dirichlet(np.full(80, 0.3), 8)
    shares = rng.dirichlet(np.full(8, 0.2), 1500) * 10.0
    counts = rng.poisson(shares @ components).astype(np.uint16)
    found = run_to_completion(abundance_maps(counts, components, device="cpu"))
    expected = np.stack([nnls(components.T, row.astype(float))[0] for row in counts])
    np.testing.assert_allclose(found, expected, rtol=1e-4, atol=1e-4)


def test_each_pixels_nnls_is_the_solve_on_its_final_set_whatever_its_batch():
    """A row's result depends only on its own right-hand side: the same bits in any batch (the
    active-set iterations keep the unfinished rows apart, in order), and they are the
    least-squares solve restricted to the row's final set of positive shares."""
    import torch

    rng = np.random.default_rng(5)
    components = torch.as_tensor(rng.dirichlet(np.full(80, 0.3), 8))
    shares = rng.dirichlet(np.full(8, 0.2), 3000) * 10.0
    counts = torch.as_tensor(rng.poisson(shares @ components.numpy()).astype(np.float64))
    gram = components @ components.T
    rhs = counts @ components.T
    inverses: dict = {}
    whole = block_nnls._nnls_block(gram, torch.linalg.pinv(gram), rhs, 200, 1e-7, inverses)
    assert (whole == 0).any(1).float().mean() > 0.5  # most rows take the active-set path
    for order in (
        torch.arange(2999, -1, -1),
        torch.randperm(3000, generator=torch.Generator().manual_seed(1)),
    ):
        for part in order.split(700):
            alone = block_nnls._nnls_block(
                gram, torch.linalg.pinv(gram), rhs[part], 200, 1e-7, inverses
            )
            assert torch.equal(alone, whole[part])
    restricted = torch.where(
        whole > 0, restricted_inverses._set_solver(gram, inverses)(rhs, whole > 0), 0.0
    )
    # rows positive on every component are the unconstrained solve, one matrix product of the
    # block (BLAS may round it apart from the per-row batched product in its last bit)
    everywhere = (whole > 0).all(1)
    assert torch.equal(whole[everywhere], (rhs @ torch.linalg.pinv(gram))[everywhere])
    torch.testing.assert_close(restricted[everywhere], whole[everywhere], rtol=1e-12, atol=1e-12)
    assert torch.equal(restricted[~everywhere], whole[~everywhere])


@pytest.mark.parametrize(
    ("n_components", "dose", "alpha", "twin"),
    [(8, 10.0, 0.2, False), (8, 100.0, 0.5, False), (3, 5.0, 0.3, False), (10, 30.0, 0.2, True)],
)
def test_the_compiled_active_set_gives_the_batched_ones_shares_bit_for_bit(
    n_components, dose, alpha, twin
):
    """The CPU's row-by-row active set (numba) takes the batched torch form's steps with the
    same arithmetic: every share and every settled flag equal, bit for bit, on rows that
    drop components, grow them back and step back (and empty pixels; with ``twin`` two
    components nearly alike, a nearly singular Gram matrix)."""
    import torch

    rng = np.random.default_rng(n_components)
    components = rng.dirichlet(np.full(120, 0.3), n_components)
    if twin:
        components[1] = 0.999 * components[0] + 0.001 * components[1]
    shares = rng.dirichlet(np.full(n_components, alpha), 4000) * dose
    counts = rng.poisson(shares @ components).astype(np.float64)
    counts[:7] = 0.0
    basis = torch.as_tensor(components)
    gram = basis @ basis.T
    rhs = torch.as_tensor(counts) @ basis.T
    start = rhs @ torch.linalg.pinv(gram) >= 0
    assert (~start).any(1).float().mean() > 0.3  # most rows begin with a negative share
    batched = block_nnls._lawson_hanson(gram, rhs, start, 1e-7, {})
    compiled = block_nnls._lawson_hanson_compiled(gram, rhs, start, 1e-7, {})
    assert torch.equal(compiled[0], batched[0])
    assert torch.equal(compiled[1], batched[1])
    assert (compiled[0] == 0).any(1).float().mean() > 0.3


def test_cpu_abundances_take_the_compiled_active_set(monkeypatch):
    """On the CPU, from ``COMPILED_NNLS_PIXELS`` pixels, the abundances never run the batched
    torch active set (its torch calls per step cost ~3x the compiled block solve's CPU on the
    1024² bench cube); below, where numba's start would cost more than it saves, they do; the
    same shares either way."""

    def batched(*args, **kwargs):
        raise AssertionError("the batched active set ran on the CPU")

    rng = np.random.default_rng(3)
    components = rng.dirichlet(np.full(80, 0.3), 8)
    counts = rng.poisson(rng.dirichlet(np.full(8, 0.2), (20, 30)) @ components * 10.0)
    counts = counts.astype(np.uint16)
    small = run_to_completion(abundance_maps(counts, components, device="cpu"))  # torch's
    monkeypatch.setattr(block_nnls, "_lawson_hanson", batched)
    with pytest.raises(AssertionError, match="batched active set ran"):
        run_to_completion(abundance_maps(counts, components, device="cpu"))
    monkeypatch.setattr(abundances, "COMPILED_NNLS_PIXELS", 600)  # the cube's 20 x 30 pixels
    found = run_to_completion(abundance_maps(counts, components, device="cpu"))
    assert np.array_equal(found, small) and (found == 0).any(-1).mean() > 0.5


def test_a_resident_cube_gives_the_same_sums_and_abundances():
    """The GPU path (cube uploaded once as float32 (N, E)), run here on a CPU tensor."""
    import torch

    from napari_sigma.phases.spectra import phase_sum_spectra
    from napari_sigma.unmixing.nmf import resident_phase_sums

    truth = peak_spectra()
    rng = np.random.default_rng(5)
    counts = rng.poisson(rng.uniform(0, 50, (9, 11, 3)) @ truth * 3).astype(np.uint16)
    labels = rng.integers(0, 4, (9, 11))  # 0 = unassigned, left out
    resident = torch.from_numpy(counts.reshape(-1, counts.shape[-1]).astype(np.float32))
    np.testing.assert_array_equal(
        resident_phase_sums(resident, labels, 3), phase_sum_spectra(counts, labels, 3)
    )
    streamed = run_to_completion(abundance_maps(counts, truth, device="cpu"))
    on_device = run_to_completion(abundance_maps(resident, truth, device="cpu"))
    np.testing.assert_allclose(on_device.reshape(streamed.shape), streamed, rtol=1e-5, atol=1e-4)


def test_nnls_maps_solve_several_bases_in_one_pass_like_separate_maps(monkeypatch):
    from napari_sigma.unmixing.abundances import nnls_maps
    from napari_sigma.unmixing.fractions import fractions_of_shares, phase_fractions

    truth = peak_spectra()
    rng = np.random.default_rng(11)
    counts = rng.poisson(rng.uniform(0, 50, (12, 9, 3)) @ truth * 3).astype(np.uint16)
    monkeypatch.setattr(abundances, "ABUNDANCE_CPU_CHUNK_VALUES", 300 * 23)  # several blocks
    mask = np.zeros(truth.shape[1], bool)
    mask[:5] = True
    phases = truth[::-1] * 7.0
    pixels = np.array([10, 20, 30])
    both = run_to_completion(
        nnls_maps(counts, [(truth, None), (phases / pixels[:, None], mask)], device="cpu")
    )
    alone = run_to_completion(abundance_maps(counts, truth, device="cpu"))
    fractions = run_to_completion(phase_fractions(counts, phases, pixels, "cpu", mask))
    assert both[0].shape == (12, 9, 3) and both[1].shape == (12, 9, 3)
    np.testing.assert_allclose(both[0], alone, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(fractions_of_shares(both[1]), fractions, rtol=1e-5, atol=1e-5)


def test_the_compiled_warm_up_loads_the_machine_code_the_abundance_pass_calls(monkeypatch):
    """``start_compiled_warm_up`` loads the compiled active set in a thread for a CPU pass that
    will take it, with the argument types of the pass' own call (one machine code, no second
    specialisation compiled); ``nnls_maps`` waits for it; the shares are those of a pass
    without it. Nothing starts for a pass below ``COMPILED_NNLS_PIXELS``."""
    from napari_sigma.unmixing._active_set import lawson_hanson_rows

    rng = np.random.default_rng(5)
    components = rng.dirichlet(np.full(60, 0.3), 6)
    counts = rng.poisson(rng.dirichlet(np.full(6, 0.2), (24, 25)) @ components * 10.0)
    counts = counts.astype(np.uint16)
    monkeypatch.setattr(abundances, "COMPILED_NNLS_PIXELS", 601)
    assert abundances.start_compiled_warm_up(counts, "cpu") is None  # 600 pixels
    monkeypatch.setattr(abundances, "COMPILED_NNLS_PIXELS", 600)
    plain = run_to_completion(abundance_maps(counts, components, device="cpu"))
    signatures = list(lawson_hanson_rows.signatures)
    assert len(signatures) == 1
    thread = abundances.start_compiled_warm_up(counts, "cpu")
    assert thread is not None and abundances._WARM_UPS == [thread]
    warmed = run_to_completion(abundance_maps(counts, components, device="cpu"))
    assert abundances._WARM_UPS == [] and not thread.is_alive()
    assert list(lawson_hanson_rows.signatures) == signatures
    np.testing.assert_array_equal(warmed, plain)
    # the phase sums' kernel was loaded first, by the same thread
    from napari_sigma.phases import _label_sums

    assert abundances._SUMS_KERNEL_LOADED.is_set()
    abundances.wait_for_sums_kernel()  # at once
    assert len(_label_sums.add_label_sums.signatures) >= 3


def test_abundances_of_a_lazy_cube_read_by_batch_are_the_in_memory_ones(monkeypatch):
    """A lazy cube's batches are read as bands (:func:`~napari_sigma.compute.blocks.
    read_blocks`): the same projections and shares bit for bit as the numpy cube's."""
    from napari_sigma.compute.chunks import memory_budget
    from sigma_testdata import lazy_cube

    rng = np.random.default_rng(8)
    components = rng.dirichlet(np.full(70, 0.3), 5)
    counts = rng.poisson(rng.dirichlet(np.full(5, 0.3), (31, 7)) @ components * 20.0)
    counts = counts.astype(np.uint16)
    monkeypatch.setattr(abundances, "ABUNDANCE_CPU_CHUNK_VALUES", 70 * 14)  # blocks of 2 rows
    monkeypatch.setattr(abundances, "NNLS_ROWS", 40)  # batches of 3 blocks
    plain = run_to_completion(abundance_maps(counts, components, device="cpu"))
    cube, source = lazy_cube(counts, 4)
    with memory_budget(10**9):  # the CLI's (napari: no limit, block by block)
        lazy = run_to_completion(abundance_maps(cube, components, device="cpu"))
    np.testing.assert_array_equal(lazy, plain)
    assert len(source.reads) < 2 * 8  # 8 chunks; block by block: 16 blocks over them


@pytest.mark.parametrize(("n_components", "dose", "twin"), [(8, 10.0, False), (10, 30.0, True)])
def test_the_numpy_active_set_is_the_compiled_one_and_close_to_torchs(n_components, dose, twin):
    """On the CPU the batched active set runs in numpy (below ``COMPILED_NNLS_PIXELS``) and
    the compiled rows above: the same shares and settled flags bit for bit (the same sums in
    the same order); torch's batched form (kept for CUDA) within its matrix products' last
    bits (the rounding of the Gram inverses: cond(G) times eps)."""
    import torch

    rng = np.random.default_rng(n_components + 1)
    components = rng.dirichlet(np.full(120, 0.3), n_components)
    if twin:
        components[1] = 0.999 * components[0] + 0.001 * components[1]
    shares = rng.dirichlet(np.full(n_components, 0.2), 3000) * dose
    counts = rng.poisson(shares @ components).astype(np.float64)
    counts[:5] = 0.0
    gram = components @ components.T
    rhs = counts @ components.T
    start = rhs @ np.linalg.pinv(gram) >= 0
    assert (~start).any(1).mean() > 0.3
    batched = block_nnls._lawson_hanson(gram, rhs, start, 1e-7, {})
    compiled = block_nnls._lawson_hanson_compiled(gram, rhs, start, 1e-7, {})
    assert isinstance(batched[0], np.ndarray) and isinstance(compiled[0], np.ndarray)
    assert np.array_equal(batched[0], compiled[0]) and np.array_equal(batched[1], compiled[1])
    with_torch = block_nnls._lawson_hanson(
        torch.as_tensor(gram), torch.as_tensor(rhs), torch.as_tensor(start), 1e-7, {}
    )
    torch_shares = with_torch[0].numpy()
    assert np.array_equal(batched[0] > 0, torch_shares > 0)  # the same final sets
    # the solves on them differ by the rounding of the Gram inverses: cond(G) * eps
    bound = 100 * np.linalg.cond(gram) * np.finfo(float).eps * np.abs(torch_shares).max()
    np.testing.assert_allclose(batched[0], torch_shares, rtol=0, atol=bound)


def test_cpu_abundances_and_nmf_do_not_import_torch():
    """The CPU's NMF, abundances and phase fractions run in numpy: a fresh interpreter
    computes them without importing torch."""
    import subprocess
    import sys

    script = (
        "import sys, numpy as np\n"
        "from napari_sigma.compute.progress import run_to_completion\n"
        "from napari_sigma.unmixing.abundances import abundance_maps\n"
        "from napari_sigma.unmixing.nmf import nmf\n"
        "rng = np.random.default_rng(0)\n"
        "components = rng.dirichlet(np.full(60, 0.3), 4)\n"
        "counts = rng.poisson(rng.dirichlet(np.full(4, 0.3), (12, 10)) @ components * 20)\n"
        "weights, found = nmf(counts.reshape(-1, 60)[:20].astype(float), 4, device='cpu')\n"
        "maps = run_to_completion(abundance_maps(counts.astype(np.uint16), found, device='cpu'))\n"
        "assert maps.shape == (12, 10, 4) and (maps >= 0).all()\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
