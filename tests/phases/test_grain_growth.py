"""A small phase found in some of its grains takes its other grains once its composition is
known; a host without such grains, and a boundary that mixes two known phases, give none."""

from __future__ import annotations

import numpy as np
import pytest
from test_small_phases import CENTRES, GRAIN, HOST, SHAPE, _counts, _run

from napari_sigma.phases.finding import PhaseFindingSettings
from napari_sigma.phases.grain_growth import grown_grains
from napari_sigma.phases.small_phases import (
    POOL_RADII,
    SCREEN_P,
    _with_inclusions,
)
from sigma_testdata import disc_grains, trained_state

FIRST = CENTRES[:1]


def _grown(windows, dose, labels, first, profiles, dispersion=None):
    n_windows = windows.shape[-1]
    dispersion = np.ones(len(profiles)) if dispersion is None else dispersion
    return grown_grains(
        windows.reshape(-1, n_windows).astype(np.float64),
        dose.reshape(-1).astype(np.float64),
        labels,
        first,
        profiles,
        dispersion,
        PhaseFindingSettings().trace_min_pixels,
        SCREEN_P,
        POOL_RADII,
    )


@pytest.mark.parametrize("seed", range(3))
def test_the_other_grains_of_a_known_small_phase_are_found(seed):
    """One grain of five is the new phase; the four others (a few counts apart from the host
    per pixel) are found grain by grain, their edges within a pixel or so."""
    rng = np.random.default_rng(seed)
    truth = disc_grains(SHAPE, CENTRES, 4)
    windows, dose = _counts(rng, np.where(truth[..., None], GRAIN, HOST))
    first = disc_grains(SHAPE, FIRST, 4)
    grown = _grown(windows, dose, np.zeros(SHAPE, np.int64), first, HOST[None])
    assert not (grown & first).any()  # only pixels outside the new phase are asked
    for centre in CENTRES[1:]:
        grain = disc_grains(SHAPE, [centre], 4)
        assert (grown & grain).sum() >= 0.5 * grain.sum()
    assert (grown & ~truth).sum() <= 0.25 * (truth & ~first).sum()


@pytest.mark.parametrize("seed", range(4))
def test_a_host_without_more_grains_gives_none(seed):
    """Only the known grain is of the new composition: nothing else joins it."""
    rng = np.random.default_rng(10 + seed)
    first = disc_grains(SHAPE, FIRST, 4)
    windows, dose = _counts(rng, np.where(first[..., None], GRAIN, HOST))
    grown = _grown(windows, dose, np.zeros(SHAPE, np.int64), first, HOST[None])
    assert not grown.any()


def test_a_mixed_boundary_of_two_known_phases_does_not_join():
    """A blurred band between the host and another phase is no grain of the new phase."""
    rng = np.random.default_rng(5)
    other = np.array([0.05, 0.05, 0.40, 0.05, 0.10])
    labels = np.zeros(SHAPE, dtype=np.int64)
    labels[:, 60:] = 1
    band = np.zeros(SHAPE, dtype=bool)
    band[:, 56:64] = True
    profiles = np.where((labels == 1)[..., None], other, HOST)
    profiles = np.where(band[..., None], 0.5 * (HOST + other), profiles)
    first = disc_grains(SHAPE, FIRST, 4)
    profiles = np.where(first[..., None], GRAIN, profiles)
    windows, dose = _counts(rng, profiles)
    grown = _grown(windows, dose, labels, first, np.stack([HOST, other]))
    assert not (grown & band).any()


def test_the_inclusion_search_finds_more_grains_than_it_screens():
    """End to end: on a map where the omnibus screen confirms only some grains, most pixels
    of the five grains end in the new phase."""
    rng = np.random.default_rng(1)
    truth = disc_grains(SHAPE, CENTRES, 4)
    windows, dose = _counts(rng, np.where(truth[..., None], GRAIN, HOST))
    state = trained_state(np.zeros(SHAPE, dtype=np.int64))
    found = _run(_with_inclusions(np.ones(SHAPE, bool), state, (windows, dose),
                                  PhaseFindingSettings(), None))  # fmt: skip
    assert found[3] == 2
    new = found[0].reshape(SHAPE) == 1
    assert (new & truth).sum() >= 0.6 * truth.sum()
    assert (new & ~truth).sum() <= 0.1 * truth.sum()


def test_grains_of_two_compositions_give_a_pure_phase():
    """Oxide-like grains and metal-like grains in one host (a slag's magnetite and copper):
    the new phase's profile comes from a grain confirmed alone, not from the union of both
    kinds, so the phase holds one kind, not a mix of both."""
    rng = np.random.default_rng(2)
    oxide = np.array([0.30, 0.12, 0.10, 0.10, 0.02])
    metal = np.array([0.02, 0.02, 0.02, 0.02, 0.50])
    first = disc_grains(SHAPE, [(15, 20), (40, 70), (70, 30)], 4)
    second = disc_grains(SHAPE, [(80, 80), (20, 75)], 4)
    profiles = np.where(first[..., None], oxide, HOST)
    profiles = np.where(second[..., None], metal, profiles)
    windows, dose = _counts(rng, profiles)
    state = trained_state(np.zeros(SHAPE, dtype=np.int64))
    found = _run(_with_inclusions(np.ones(SHAPE, bool), state, (windows, dose),
                                  PhaseFindingSettings(), None))  # fmt: skip
    assert found[3] == 2
    new = found[0].reshape(SHAPE) == 1
    kind = first if (new & first).sum() > (new & second).sum() else second
    assert (new & kind).sum() >= 0.7 * kind.sum()
    assert kind[new].mean() >= 0.9  # one kind: neither the other nor the host
