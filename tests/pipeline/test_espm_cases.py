"""The issue-9 acceptance on the espm development cases (an independent simulator's data).

Each case is analysed as a user would (``cube.hspy``, default preset, automatic number of
phases) and scored with the data folder's own ``baselines.py``. Skipped when the data are absent.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from napari_sigma.latent.embedding import LatentSettings

# the latent (display only) does not change the phases: a short one keeps the tests fast
FAST_LATENT = LatentSettings(hidden=(32, 16), epochs=2, train_pixels=4000, device="cpu")

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_espm.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_espm", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    try:
        module.data = module.data_folder()
    except FileNotFoundError as error:
        pytest.skip(str(error))
    module.espm = module.scorer(module.data)
    return module


def _scores(bench, case: str) -> tuple[dict, dict]:
    case_dir = bench.data / case
    ours = bench.score_result(
        bench.analyse_case(case_dir, device="cpu", latent=FAST_LATENT), case_dir, bench.espm
    )
    return ours, bench.acceptance(ours, bench.baseline_scores(case_dir))


@pytest.mark.parametrize(
    "case",
    [
        "oxide_ceramic_n120",
        "steel_carbides_n40",
        "peridotite_n15",
        "twin_garnets_n300",
        "catalyst_n60",
    ],
)
def test_espm_case_meets_the_acceptance(bench, case, one_torch_thread):
    """True K, ARI >= best k-means baseline + 0.01, trace IoU >= 0.7, minor-pair F1 >= 0.9."""
    ours, checks = _scores(bench, case)
    assert all(checks.values()), (checks, ours)
