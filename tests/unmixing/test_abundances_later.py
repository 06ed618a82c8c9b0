"""nnls_maps' ``later`` bases: solved after the pass by a thread of their own (a large cube on
two cores), the same numbers as solved in the pass; solved in the pass where it does not pay;
stopped after its batch under way when it is cancelled (an analysis closed before its result)."""

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


class _Gated:
    """``_solve_batch`` whose calls from a later solve's thread wait at a gate: the first waits
    until ``release`` is set (``entered`` set meanwhile); counts those calls."""

    def __init__(self, solve):
        import threading

        self.solve, self.calls = solve, 0
        self.entered, self.release = threading.Event(), threading.Event()

    def __call__(self, *args, **kwargs):
        import threading

        if threading.current_thread().name == "napari-sigma ahead":
            self.calls += 1
            self.entered.set()
            assert self.release.wait(30)
        return self.solve(*args, **kwargs)


def _release_when_stopped(gate, ahead):
    """A thread that opens ``gate`` once ``ahead``'s stop event is set (by its cancel)."""
    import threading

    def watch():
        ahead._call[2]["stop"].wait(30)
        gate.release.set()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_a_cancelled_later_solve_stops_after_its_batch_and_lets_its_memory_go(monkeypatch):
    counts, bases = _case()
    monkeypatch.setattr(abundances_module, "COMPILED_NNLS_PIXELS", 256)
    monkeypatch.setattr(abundances_module, "NNLS_ROWS", 300)  # 7 batches
    monkeypatch.setattr(abundances_module, "ABUNDANCE_CPU_CHUNK_VALUES", 64 * 100)
    monkeypatch.setattr(blocks, "usable_cores", lambda: 2)
    gate = _Gated(abundances_module._solve_batch)
    monkeypatch.setattr(abundances_module, "_solve_batch", gate)
    maps = run_to_completion(nnls_maps(counts, bases, "cpu", later=(0,)))
    part = maps[0]
    assert gate.entered.wait(30)  # the later solve is in its first batch
    deferred = part.made._call[1][0]
    assert len(deferred.spans) > 2 and deferred.kept is not None
    watcher = _release_when_stopped(gate, part.made)
    part.cancel()  # returns once the thread has ended
    watcher.join(30)
    assert not part.made._thread.is_alive()
    assert gate.calls == 1  # no batch after the one under way
    assert deferred.kept is None  # the kept projections let go
    assert isinstance(maps[1], np.ndarray)  # the basis solved in the pass is whole


def test_closing_the_analysis_during_the_minerals_stops_the_later_solve(monkeypatch):
    """An analysis closed during its minerals stage (napari's Abort) stops the solve (its
    thread ends after the batch under way and lets the kept projections go) instead of
    solving every batch for a result nobody reads."""
    from dataclasses import replace

    from napari_sigma.pipeline.analysis import AnalysisSettings, analyse
    from napari_sigma.synthetic.generator import make_synthetic

    sample = make_synthetic(seed=2, shape=(40, 40), counts_per_pixel=100, n_channels=512)
    settings = AnalysisSettings.preset("default", lines=tuple(sample.lines))
    settings = replace(settings, device="cpu")
    monkeypatch.setattr(abundances_module, "COMPILED_NNLS_PIXELS", 256)  # a "large" cube
    monkeypatch.setattr(abundances_module, "NNLS_ROWS", 400)  # several batches
    monkeypatch.setattr(abundances_module, "ABUNDANCE_CPU_CHUNK_VALUES", 512 * 200)
    monkeypatch.setattr(blocks, "usable_cores", lambda: 2)
    made = []

    class Recorded(blocks.Ahead):
        def __init__(self, function, *args, **kwargs):
            super().__init__(function, *args, **kwargs)
            made.append((function.__name__, self))

    monkeypatch.setattr(blocks, "Ahead", Recorded)
    gate = _Gated(abundances_module._solve_batch)
    monkeypatch.setattr(abundances_module, "_solve_batch", gate)
    analysis = analyse(sample.image, settings, embed=False)
    for report in analysis:
        if report.stage == "minerals":
            break
    else:
        raise AssertionError("no minerals stage")
    later = [ahead for name, ahead in made if name == "_solved_later"]
    assert len(later) == 1
    ahead = later[0]
    assert gate.entered.wait(30)  # the solve is in its first batch
    deferred = ahead._call[1][0]
    assert len(deferred.spans) > 2
    watcher = _release_when_stopped(gate, ahead)
    analysis.close()  # napari's Abort
    watcher.join(30)
    assert ahead._call[2]["stop"].is_set()
    assert not ahead._thread.is_alive()
    assert gate.calls == 1
    assert deferred.kept is None
