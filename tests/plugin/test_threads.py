"""The plugin's workers compute on every core but one, so that napari's drawing keeps a core."""

from __future__ import annotations

import inspect
import os

import pytest
import torch
from threadpoolctl import threadpool_info

from napari_sigma._napari import threads
from napari_sigma._napari.threads import compute_threads, leave_a_core, leaving_a_core


def _blas_threads() -> list[int]:
    return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]


def _no_other_workers() -> None:
    """Wait for workers of earlier tests: the pools' sizes are process-wide, and a worker leaving
    a limit restores what it saw."""
    import gc

    from qtpy.QtCore import QThreadPool

    assert QThreadPool.globalInstance().waitForDone(60_000)
    gc.collect()  # an aborted run's generator is closed (leaving its limit) when collected
    assert threads._state["depth"] == 0, "a worker of an earlier test still holds the limit"


def _analysis_of_a_tiny_map(viewer, dock):
    """The Phase analysis dock over a 16x16 synthetic map's layers, set to run on the CPU."""
    from napari.layers import Layer

    from napari_sigma._napari.layers import spectrum_image_layers
    from napari_sigma.synthetic.generator import make_synthetic

    sample = make_synthetic(seed=0, shape=(16, 16), n_channels=256, title="tiny")
    for data, kwargs, kind in spectrum_image_layers(sample.image):
        viewer.add_layer(Layer.create(data, kwargs, kind))
    widget = dock(viewer, "Phase analysis")
    widget.form.elements.value, widget.form.device.value = "O,Si,Fe", "cpu"
    return widget


def test_workers_leave_a_core_and_give_the_pools_back():
    assert compute_threads() == max(1, len(os.sched_getaffinity(0)) - 1)
    _no_other_workers()
    torch_before, blas_before = torch.get_num_threads(), _blas_threads()
    with leave_a_core() as n:
        assert n == compute_threads()
        assert torch.get_num_threads() == n and set(_blas_threads()) <= {n}
        with leave_a_core():  # a second worker at the same time shares the limit
            assert torch.get_num_threads() == n
        assert torch.get_num_threads() == n and set(_blas_threads()) <= {n}  # still inside one
    assert torch.get_num_threads() == torch_before and _blas_threads() == blas_before


def test_limits_hold_in_every_worker_of_a_pool_that_stays_alive():
    # threadpoolctl lets one thread at a time set a pthreads OpenBLAS; napari's pool threads
    # stay alive after a task, so a second worker's limit was silently ignored
    from concurrent.futures import ThreadPoolExecutor

    _no_other_workers()
    before, n = _blas_threads(), compute_threads()

    def limited_blas() -> set[int]:
        with leave_a_core():
            return set(_blas_threads())

    with ThreadPoolExecutor(1) as first, ThreadPoolExecutor(1) as second:
        assert first.submit(limited_blas).result() <= {n}
        assert _blas_threads() == before
        assert second.submit(limited_blas).result() <= {n}  # first's thread is still alive
        assert _blas_threads() == before


def test_a_limited_generator_stays_a_generator_limited_while_it_runs():
    _no_other_workers()

    def steps():
        yield torch.get_num_threads()
        return "done"

    limited = leaving_a_core(steps)
    assert inspect.isgeneratorfunction(limited)  # napari's create_worker reports its progress
    before = torch.get_num_threads()
    run = limited()
    assert next(run) == compute_threads()
    with pytest.raises(StopIteration) as stop:
        next(run)
    assert stop.value.value == "done" and torch.get_num_threads() == before
    assert leaving_a_core(lambda x: x + 1)(1) == 2


@pytest.mark.gui
def test_the_analysis_runs_on_the_threads_left_to_it(plugin_viewer, dock, qtbot, monkeypatch):
    seen = {}

    def analyse(image, settings):  # what the worker hands the pipeline, then a clear stop
        seen.update(settings=settings.cpu_threads, torch=torch.get_num_threads())
        seen["blas"] = set(_blas_threads())
        yield from ()
        raise ValueError("stopped by the test")

    _no_other_workers()
    monkeypatch.setattr(threads, "compute_threads", lambda: 3)
    monkeypatch.setattr("napari_sigma.pipeline.analysis.analyse", analyse)
    widget = _analysis_of_a_tiny_map(plugin_viewer, dock)
    torch_before = torch.get_num_threads()
    widget.run()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=60_000)
    assert seen["settings"] == 3 and seen["torch"] == 3
    assert all(n <= 3 for n in seen["blas"])  # OpenBLAS never exceeds the cores it was built for
    assert "stopped by the test" in widget.progress_label.text()
    assert torch.get_num_threads() == torch_before


@pytest.mark.gui
def test_an_aborted_run_gives_its_threads_and_data_back(plugin_viewer, dock, qtbot, monkeypatch):
    from napari_sigma.compute.progress import Progress

    _no_other_workers()
    closed = []

    def analyse(image, settings):  # a long run that reports progress until it is aborted
        try:
            for step in range(10_000):
                yield Progress("latent", step, 10_000, "epoch")
        finally:
            closed.append(torch.get_num_threads())

    monkeypatch.setattr("napari_sigma.pipeline.analysis.analyse", analyse)
    widget = _analysis_of_a_tiny_map(plugin_viewer, dock)
    widget.run()
    qtbot.waitUntil(lambda: threads._state["depth"] == 1, timeout=60_000)
    widget.abort()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=60_000)
    qtbot.waitUntil(lambda: threads._state["depth"] == 0, timeout=10_000)  # without gc
    assert closed == [compute_threads()]  # closed inside the limit, which then ended
