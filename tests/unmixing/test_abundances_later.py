"""nnls_maps' ``later`` bases: solved after the pass by a thread of their own (a large cube on
two cores), the same numbers as solved in the pass; solved in the pass where it does not pay."""

import numpy as np
import pytest

from napari_sigma.compute import blocks
from napari_sigma.compute.progress import run_to_completion
from napari_sigma.pipeline.unmixing_stage import with_abundances
from napari_sigma.unmixing import abundances as abundances_module
from napari_sigma.unmixing.abundances import nnls_maps


def _case():
    rng = np.random.default_rng(0)
    n_channels, n_components = 64, 4
    components = rng.random((n_components, n_channels)) ** 4
    shares = rng.dirichlet(np.ones(n_components), size=(48, 40))
    counts = rng.poisson(shares @ components * 3).astype(np.uint16)
    mask = np.zeros(n_channels, bool)
    mask[:5] = True
    return counts, [(components, None), (components[::-1] + 0.01, mask)]


@pytest.mark.parametrize("later", [(0,), (1,)])
def test_bases_solved_later_give_the_numbers_of_the_pass(monkeypatch, later):
    counts, bases = _case()
    monkeypatch.setattr(abundances_module, "COMPILED_NNLS_PIXELS", 256)  # a "large" cube
    monkeypatch.setattr(abundances_module, "NNLS_ROWS", 300)  # several batches
    monkeypatch.setattr(abundances_module, "ABUNDANCE_CPU_CHUNK_VALUES", 64 * 100)
    monkeypatch.setattr(blocks, "usable_cores", lambda: 2)
    in_pass = run_to_completion(nnls_maps(counts, bases, "cpu"))
    deferred = run_to_completion(nnls_maps(counts, bases, "cpu", later=later))
    for index, (one, two) in enumerate(zip(in_pass, deferred, strict=True)):
        assert hasattr(two, "result") == (index in later)
        two = two.result() if hasattr(two, "result") else two
        assert two.shape == one.shape == (48, 40, 4)
        assert two.dtype == one.dtype
        assert two.tobytes() == one.tobytes()


def test_a_small_cube_or_one_core_solves_every_basis_in_the_pass(monkeypatch):
    counts, bases = _case()
    monkeypatch.setattr(blocks, "usable_cores", lambda: 2)
    small = run_to_completion(nnls_maps(counts, bases, "cpu", later=(0,)))
    assert all(isinstance(m, np.ndarray) for m in small)  # below COMPILED_NNLS_PIXELS
    monkeypatch.setattr(abundances_module, "COMPILED_NNLS_PIXELS", 256)
    monkeypatch.setattr(blocks, "usable_cores", lambda: 1)
    one_core = run_to_completion(nnls_maps(counts, bases, "cpu", later=(0,)))
    assert all(isinstance(m, np.ndarray) for m in one_core)


def test_the_unmixing_tuple_gets_its_abundances_solved():
    class Later:
        def result(self):
            return np.ones((2, 2, 1), np.float32)

    unmixed = (*range(4), Later(), *range(5, 10))
    solved = with_abundances(unmixed)
    assert isinstance(solved[4], np.ndarray) and solved[:4] == unmixed[:4]
    assert solved[5:] == unmixed[5:]
    assert with_abundances(solved) is solved
