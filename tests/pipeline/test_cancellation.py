"""Cancellation everywhere: every stage yields often enough that Abort stops within a second.

A caller cancels a computation by not asking for its next step (``generator.close()``), so the
longest time between two yields is the longest wait for Abort. Measured here per stage on a
96 x 96 x 1024 map (after a warm-up run that pays the imports): the analysis (data check,
features, latent, clustering with its likelihoods, spatial prior, trace search and composition
tests, unmixing), and the export. Reading is tested in tests/io/test_isolation.py.

What is measured between two yields is the work done: the CPU time (user) of every thread of
this process (the calling thread, the computation's pools and drawing thread), not the wall
clock. On a machine with the cores to itself the wall time between yields is at most that
(threads running in parallel make it less), so the bound is the one a user meets; under load the
wall clock also counts the time other programs hold the cores (a run at 4 % of a core: 24.6 s
between two yields), which no code of ours decides. Measured at load 10-11 on 2 cores: the
longest work between two yields of the analysis 0.23-0.26 s of CPU (wall 0.8-3.5 s).
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import pytest

from napari_sigma.io.results.export import export_steps
from napari_sigma.pipeline.analysis import AnalysisSettings, analyse
from napari_sigma.synthetic.generator import make_synthetic

MAX_GAP_S = 1.0
"""The longest work between two yields (CPU seconds, user, of this process's threads)."""


def _work_clock() -> float:
    """CPU seconds (user) of every thread of this process: the computation's work, wherever it
    runs (its pools, its drawing thread); time spent waiting for a core is not in it, nor the
    kernel's (sys: on a VM that faults fresh memory in slowly, seconds at random)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_utime


def _settings(sample) -> AnalysisSettings:
    settings = AnalysisSettings.preset("default", lines=tuple(sample.lines))
    return replace(settings, latent=replace(settings.latent, epochs=3), device="cpu")


def _gaps(computation):
    """(CPU seconds of work since the previous yield, stage, message, wall seconds) of every
    step (:func:`_work_clock`), and the result."""
    clock = _work_clock
    gaps, last, last_wall = [], clock(), time.perf_counter()
    while True:
        try:
            report = next(computation)
        except StopIteration as stop:
            gaps.append((clock() - last, "end", "", time.perf_counter() - last_wall))
            return gaps, stop.value
        now, wall = clock(), time.perf_counter()
        gaps.append((now - last, report.stage, report.message, wall - last_wall))
        last, last_wall = now, wall


def _slowest(gaps) -> str:
    work, stage, message, wall = max(gaps)
    return f"{work:.2f} s of CPU ({wall:.2f} s wall) before {stage}: {message}"


@pytest.fixture(scope="module")
def sample(one_torch_thread):
    warm = make_synthetic(seed=1, shape=(16, 16), counts_per_pixel=100, n_channels=1024)
    _gaps(analyse(warm.image, _settings(warm)))  # imports and first-call costs
    return make_synthetic(seed=2, shape=(96, 96), counts_per_pixel=200, n_channels=1024)


@pytest.fixture(scope="module")
def analysed(sample):
    return _gaps(analyse(sample.image, _settings(sample)))


def test_the_work_clock_counts_every_threads_work_and_no_waiting() -> None:
    """The measure between yields: CPU seconds of the calling thread and of the threads it
    starts (a pool's), not the time spent waiting (for a core, or asleep)."""
    import threading

    def busy(seconds: float) -> None:
        start, a = time.thread_time(), np.ones(4096)
        while time.thread_time() - start < seconds:
            a = np.sqrt(a + 1.0)  # no BLAS: no thread of its own

    start = _work_clock()
    time.sleep(0.3)
    asleep = _work_clock() - start
    pool = threading.Thread(target=busy, args=(0.3,))
    pool.start()
    pool.join()
    busy(0.2)
    assert asleep < 0.05
    assert 0.4 <= _work_clock() - start - asleep < 0.7


def test_every_analysis_stage_yields_within_a_second(analysed) -> None:
    gaps, result = analysed
    assert result.n_phases >= 2
    stages = {gap[1] for gap in gaps}
    assert {"features", "latent", "clustering", "unmixing"} <= stages
    assert max(gaps)[0] < MAX_GAP_S, _slowest(gaps)


def test_abort_stops_the_analysis_at_once(sample) -> None:
    for stop_at in ("latent", "clustering", "unmixing"):
        computation = analyse(sample.image, _settings(sample))
        for report in computation:
            if report.stage == stop_at:
                break
        start = _work_clock()
        computation.close()
        assert _work_clock() - start < MAX_GAP_S
        with pytest.raises(StopIteration):
            next(computation)


def test_export_yields_between_files(analysed, tmp_path) -> None:
    _, result = analysed
    gaps, paths = _gaps(export_steps(result, tmp_path))
    assert len(gaps) >= 8 and all(p.exists() for p in paths.values())
    assert max(gaps)[0] < MAX_GAP_S, _slowest(gaps)
    np.testing.assert_array_equal(np.unique(result.labels), np.arange(1, result.n_phases + 1))


def test_phase_table_yields_inside_its_pass_over_the_cube() -> None:
    """Export's phase statistics (one pass over the cube) yield every 2**25 counts summed and
    between the phases' region counts; cancelling stops at once; same table as phase_table."""
    from napari_sigma.phases.statistics import phase_table, phase_table_steps

    rng = np.random.default_rng(0)
    counts = rng.integers(0, 2, (256, 256, 1024), dtype=np.uint16)  # 2**26 counts
    labels = np.repeat(np.repeat(rng.integers(0, 4, (16, 16)), 16, 0), 16, 1)
    labels[:160] = 1  # one phase holding more than 2**25 counts
    intensities = rng.random((256, 256, 3)).astype(np.float32)
    lines = ("Fe_Ka", "Si_Ka", "O_Ka")
    gaps, table = _gaps(phase_table_steps(labels, counts, intensities, lines, stage="export"))
    assert len(gaps) >= 6  # start, >= 2 blocks of the large phase, one per phase's regions
    assert max(gaps)[0] < MAX_GAP_S, _slowest(gaps)
    reference = phase_table(labels, counts, intensities, lines)
    np.testing.assert_array_equal(table.mean_spectra, reference.mean_spectra)
    np.testing.assert_array_equal(table.n_regions, reference.n_regions)
    steps = phase_table_steps(labels, counts, intensities, lines)
    next(steps)
    next(steps)
    start = _work_clock()
    steps.close()
    assert _work_clock() - start < MAX_GAP_S


def test_feature_fit_yields_inside_the_per_pixel_solve() -> None:
    """The per-pixel line-family fit of the features pass yields every SOLVE_BLOCK pixels."""
    from napari_sigma.xray.image_fit import SOLVE_BLOCK, fit_spectrum_image

    sample = make_synthetic(seed=4, shape=(256, 256), counts_per_pixel=50, n_channels=512)
    image = sample.image
    assert 256 * 256 >= 2 * SOLVE_BLOCK
    gaps, fit = _gaps(
        fit_spectrum_image(image.counts, image.energy, sample.lines, image.beam_energy)
    )
    solving = [gap for gap in gaps if gap[2] == "fitting line families per pixel"]
    assert len(solving) >= 2
    assert fit.intensities.shape[:2] == (256, 256)
    assert max(gaps)[0] < MAX_GAP_S, _slowest(gaps)
