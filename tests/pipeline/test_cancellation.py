"""Cancellation everywhere: every stage yields often enough that Abort stops within a second.

A caller cancels a computation by not asking for its next step (``generator.close()``), so the
longest time between two yields is the longest wait for Abort. Measured here per stage on a
96 x 96 x 1024 map (after a warm-up run that pays the imports): the analysis (data check,
features, latent, clustering with its likelihoods, spatial prior, trace search and composition
tests, unmixing), and the export. Reading is tested in tests/io/test_isolation.py.
"""

from __future__ import annotations

import os
import time
from dataclasses import replace

import numpy as np
import pytest

from napari_sigma.io.export import export_steps
from napari_sigma.pipeline.analysis import AnalysisSettings, analyse
from napari_sigma.synthetic.generator import make_synthetic

MAX_GAP_S = 1.0


def _allowed_gap() -> float:
    """1 s on an idle machine; times the load per core when other processes share the CPUs.

    (Measured on the shared 2-core development machine at a load average of 16: gaps of up to
    2.6 s; the same code on an idle machine stays well under 1 s.)
    """
    load = os.getloadavg()[0] / (os.cpu_count() or 1)
    return MAX_GAP_S * max(1.0, load)


def _settings(sample) -> AnalysisSettings:
    settings = AnalysisSettings.preset("default", lines=tuple(sample.lines))
    return replace(settings, latent=replace(settings.latent, epochs=3), device="cpu")


def _gaps(computation):
    """(seconds since the previous yield, stage, message) of every step, and the result."""
    gaps, last = [], time.perf_counter()
    while True:
        try:
            report = next(computation)
        except StopIteration as stop:
            gaps.append((time.perf_counter() - last, "end", ""))
            return gaps, stop.value
        now = time.perf_counter()
        gaps.append((now - last, report.stage, report.message))
        last = now


@pytest.fixture(scope="module")
def sample(one_torch_thread):
    warm = make_synthetic(seed=1, shape=(16, 16), counts_per_pixel=100, n_channels=1024)
    _gaps(analyse(warm.image, _settings(warm)))  # imports and first-call costs
    return make_synthetic(seed=2, shape=(96, 96), counts_per_pixel=200, n_channels=1024)


@pytest.fixture(scope="module")
def analysed(sample):
    return _gaps(analyse(sample.image, _settings(sample)))


def test_every_analysis_stage_yields_within_a_second(analysed) -> None:
    gaps, result = analysed
    assert result.n_phases >= 2
    stages = {stage for _, stage, _ in gaps}
    assert {"features", "latent", "clustering", "unmixing"} <= stages
    slowest = max(gaps)
    limit = _allowed_gap()
    assert slowest[0] < limit, f"{slowest[0]:.2f} s before {slowest[1]}: {slowest[2]}"


def test_abort_stops_the_analysis_at_once(sample) -> None:
    for stop_at in ("latent", "clustering", "unmixing"):
        computation = analyse(sample.image, _settings(sample))
        for report in computation:
            if report.stage == stop_at:
                break
        start = time.perf_counter()
        computation.close()
        assert time.perf_counter() - start < _allowed_gap()
        with pytest.raises(StopIteration):
            next(computation)


def test_export_yields_between_files(analysed, tmp_path) -> None:
    _, result = analysed
    gaps, paths = _gaps(export_steps(result, tmp_path))
    assert len(gaps) >= 8 and all(p.exists() for p in paths.values())
    slowest = max(gaps)
    limit = _allowed_gap()
    assert slowest[0] < limit, f"{slowest[0]:.2f} s before {slowest[1]}: {slowest[2]}"
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
    slowest = max(gaps)
    assert slowest[0] < _allowed_gap(), f"{slowest[0]:.2f} s before {slowest[2]}"
    reference = phase_table(labels, counts, intensities, lines)
    np.testing.assert_array_equal(table.mean_spectra, reference.mean_spectra)
    np.testing.assert_array_equal(table.n_regions, reference.n_regions)
    steps = phase_table_steps(labels, counts, intensities, lines)
    next(steps)
    next(steps)
    start = time.perf_counter()
    steps.close()
    assert time.perf_counter() - start < _allowed_gap()


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
    slowest = max(gaps)
    assert slowest[0] < _allowed_gap(), f"{slowest[0]:.2f} s before {slowest[2]}"
