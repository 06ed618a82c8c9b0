"""The inclusion search's work made ahead on a second core (the profiles beside the stacked
counts, the next radius's screen beside this one's): the same phases, bit for bit, as on one
core, and no thread left running when a phase is found at the first radius."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from napari_sigma.compute import blocks
from napari_sigma.compute.blocks import worker_threads
from napari_sigma.compute.progress import run_to_completion
from napari_sigma.phases.finding import PhaseFindingSettings
from napari_sigma.phases.small_phases import _with_inclusions

HOST = np.array([0.30, 0.20, 0.10, 0.05, 0.02])
GRAIN = np.array([0.30, 0.16, 0.10, 0.08, 0.02])
SHAPE = (96, 96)
CENTRES = [(15, 20), (40, 70), (70, 30), (80, 80), (20, 75)]


def _case(seed: int, with_grains: bool):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: SHAPE[0], : SHAPE[1]]
    truth = np.zeros(SHAPE, dtype=bool)
    for cy, cx in CENTRES if with_grains else ():
        truth |= (yy - cy) ** 2 + (xx - cx) ** 2 <= 16
    profiles = np.where(truth[..., None], GRAIN, HOST)
    windows = rng.poisson(profiles * 100.0).astype(np.float32)
    dose = windows.sum(axis=-1) + rng.poisson(100.0 * (1 - HOST.sum()), SHAPE)
    flat = np.zeros(SHAPE[0] * SHAPE[1], dtype=np.int64)
    state = (flat.copy(), np.ones((flat.size, 1), np.float32), flat.copy(), 1)
    return state, (windows, dose.astype(np.float32))


def _found(state, counts):
    mask = np.ones(SHAPE, dtype=bool)
    return run_to_completion(_with_inclusions(mask, state, counts, PhaseFindingSettings(), None))


@pytest.mark.parametrize("with_grains", [True, False])
def test_two_cores_find_what_one_core_finds(monkeypatch, with_grains):
    state, counts = _case(1, with_grains)
    with worker_threads(1):
        alone = _found(state, counts)
    monkeypatch.setattr(blocks, "usable_cores", lambda: 2)
    ahead = _found(state, counts)
    assert alone[3] == ahead[3] == (2 if with_grains else 1)
    for one, two in zip(alone, ahead, strict=True):
        if isinstance(one, np.ndarray):
            assert one.dtype == two.dtype
            assert one.tobytes() == two.tobytes()
    left = [t for t in threading.enumerate() if t.name == "napari-sigma ahead"]
    assert not left  # the screen made ahead is stopped and joined once a phase is found
