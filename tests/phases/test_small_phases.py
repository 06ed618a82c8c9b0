"""Small phases of their own composition are found grain by grain; a phase whose pixels only
scatter (counting noise, or more) is not split."""

from __future__ import annotations

import numpy as np
import pytest

from napari_sigma.phases.finding import PhaseFindingSettings
from napari_sigma.phases.small_phases import _small_splits, _with_inclusions, exact_p_value
from napari_sigma.phases.splitting import SplitSettings, composition_test
from sigma_testdata import disc_grains, trained_state

HOST = np.array([0.30, 0.20, 0.10, 0.05, 0.02])
# a few counts apart per pixel at 100 counts (window 3: 5 -> 8, window 1: 20 -> 16)
GRAIN = np.array([0.30, 0.16, 0.10, 0.08, 0.02])


def _counts(rng, profiles, dose=100.0, jitter=0.0):
    """Poisson window counts of every pixel from its ``(y, x, F)`` profile (each pixel's
    profile scattered by ``jitter``, relative, beyond counting noise) and the dose."""
    if jitter:
        profiles = profiles * rng.lognormal(0.0, jitter, profiles.shape)
    windows = rng.poisson(profiles * dose).astype(np.float32)
    total = windows.sum(axis=-1) + rng.poisson(dose * (1 - HOST.sum()), windows.shape[:2])
    return windows, total.astype(np.float32)


SHAPE = (96, 96)
CENTRES = [(15, 20), (40, 70), (70, 30), (80, 80), (20, 75)]


def test_a_small_phase_of_faint_contrast_is_found():
    """Five grains of r = 4 (1.7 % of the map) that no single pixel tells from their host."""
    rng = np.random.default_rng(0)
    truth = disc_grains(SHAPE, CENTRES, 4)
    profiles = np.where(truth[..., None], GRAIN, HOST)
    windows, dose = _counts(rng, profiles)
    labels = np.zeros(SHAPE, dtype=np.int64)  # the phase finder merged them into the host
    mask = np.ones(SHAPE, dtype=bool)
    state = trained_state(labels)
    found = _run(_with_inclusions(mask, state, (windows, dose), PhaseFindingSettings(), None))
    assert found[3] == 2
    new = found[0].reshape(SHAPE) == 1
    assert (new & truth).sum() >= 0.5 * truth.sum()
    assert (new & ~truth).sum() <= 0.1 * truth.sum()
    assert found[2].reshape(SHAPE)[new].min() == 1  # the training labels follow


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("jitter", [0.0, 0.1])
def test_a_uniform_phase_is_not_split(seed, jitter):
    """Counting noise alone, or each pixel's composition scattered by 10 % besides (the
    dispersion takes it), gives no new phase."""
    rng = np.random.default_rng(seed)
    profiles = np.broadcast_to(HOST, (*SHAPE, len(HOST)))
    windows, dose = _counts(rng, profiles, jitter=jitter)
    labels = np.zeros(SHAPE, dtype=np.int64)
    state = trained_state(labels)
    found = _run(_with_inclusions(np.ones(SHAPE, bool), state, (windows, dose),
                                  PhaseFindingSettings(), None))  # fmt: skip
    assert found[3] == 1
    np.testing.assert_array_equal(found[0], state[0])


def test_a_mix_of_two_known_phases_is_not_a_new_phase():
    """Grains blurred half into a neighbouring phase are a mix of known phases: no new one."""
    rng = np.random.default_rng(3)
    other = np.array([0.05, 0.05, 0.40, 0.05, 0.10])
    labels = np.zeros(SHAPE, dtype=np.int64)
    labels[:, 48:] = 1
    profiles = np.where((labels == 1)[..., None], other, HOST)
    strip = np.zeros(SHAPE, dtype=bool)
    strip[:, 45:51] = True  # a wide band of pixels that mix the two
    profiles = np.where(strip[..., None], 0.5 * (HOST + other), profiles)
    windows, dose = _counts(rng, profiles)
    found = _run(_with_inclusions(np.ones(SHAPE, bool), trained_state(labels), (windows, dose),
                                  PhaseFindingSettings(), None))  # fmt: skip
    assert found[3] == 2


def _features(rng, composition, difference):
    raw = rng.normal(0.0, 1.0, (*composition.shape, 3)) + 5.0
    raw[..., 0] += difference * (composition == 2)
    return raw


def test_a_small_phase_of_two_compositions_is_split():
    """A phase of ~150 interior pixels (under the split search's 200) of two compositions 2
    sd apart: tested with the exact small-sample p-value, and split."""
    rng = np.random.default_rng(1)
    labels = np.zeros((48, 48), dtype=np.int64)
    labels[4:20, 4:20] = 1  # the small phase: two blocks of its two compositions
    composition = np.where(labels == 1, 1, 0)
    composition[4:20, 12:20] = 2
    raw = _features(rng, composition, 2.0)
    settings = PhaseFindingSettings()
    state = trained_state(labels)
    found = _small_splits(raw, np.ones(labels.shape, bool), state, settings, None)
    assert found[3] == 3
    second = found[0].reshape(labels.shape) == 2
    assert (second == (composition == 2)).mean() > 0.95


def test_a_small_uniform_phase_is_not_split():
    for seed in range(4):
        rng = np.random.default_rng(seed)
        labels = np.zeros((48, 48), dtype=np.int64)
        labels[4:20, 4:20] = 1
        raw = _features(rng, labels, 0.0)
        found = _small_splits(raw, np.ones(labels.shape, bool), trained_state(labels),
                              PhaseFindingSettings(), None)  # fmt: skip
        assert found[3] == 2


def test_the_exact_p_value_is_the_t_distribution():
    """With many pixels it is the chi-square's; with few it is larger (more cautious)."""
    rng = np.random.default_rng(2)
    labels = np.ones((96, 96), dtype=int)
    raw = _features(rng, labels, 0.0)
    test = composition_test(raw, labels, 1)
    assert exact_p_value(test) == pytest.approx(test.p_value, rel=0.02)
    small = np.zeros((96, 96), dtype=int)
    small[10:24, 10:24] = 1
    test = composition_test(raw, small, 1, SplitSettings(min_pixels=1))
    assert exact_p_value(test) >= test.p_value


def _run(computation):
    from napari_sigma.compute.progress import run_to_completion

    return run_to_completion(computation)


def test_a_known_phase_diluted_with_its_host_takes_the_small_phase_pixels():
    """A phase learnt from pixels that mix the small phase with its host (a binder grain and
    the carbon around it) is that composition: the pure grains found elsewhere join it, no
    second phase of one composition is made."""
    rng = np.random.default_rng(4)
    truth = disc_grains(SHAPE, CENTRES, 4)
    mixed = disc_grains(SHAPE, [(88, 8)], 5)  # the known phase: a third grain, the rest host
    binder = np.array([0.30, 0.10, 0.10, 0.12, 0.02])  # a stronger contrast than GRAIN's
    profiles = np.where(truth[..., None], binder, HOST)
    profiles = np.where(mixed[..., None], (binder + 2 * HOST) / 3, profiles)
    windows, dose = _counts(rng, profiles)
    labels = np.where(mixed, 1, 0)
    found = _run(_with_inclusions(np.ones(SHAPE, bool), trained_state(labels), (windows, dose),
                                  PhaseFindingSettings(), None))  # fmt: skip
    assert found[3] == 2
    taken = found[0].reshape(SHAPE) == 1
    assert (taken & truth).sum() >= 0.5 * truth.sum()
