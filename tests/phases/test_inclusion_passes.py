"""The inclusion search is repeated while it adds a phase: inclusions of two compositions in
one host are two phases; a later pass's phase needs an inside that is a composition of its own,
so a band of contact pixels one or two pixels wide never becomes a phase."""

from __future__ import annotations

import numpy as np
import pytest

from napari_sigma.compute.progress import run_to_completion
from napari_sigma.phases.finding import PhaseFindingSettings
from napari_sigma.phases.small_phases import _with_inclusions, small_phase_steps
from sigma_testdata import disc_grains, trained_state

HOST = np.array([0.30, 0.20, 0.10, 0.05, 0.02])
OXIDE = np.array([0.30, 0.10, 0.10, 0.12, 0.02])  # the first kind of inclusion
METAL = np.array([0.15, 0.20, 0.05, 0.05, 0.20])  # the second kind
SHAPE = (96, 96)


def _counts(rng, profiles, dose=100.0):
    windows = rng.poisson(profiles * dose).astype(np.float32)
    total = windows.sum(axis=-1) + rng.poisson(dose * (1 - HOST.sum()), SHAPE)
    return windows, total.astype(np.float32)


def _steps(labels, windows, dose):
    raw = np.sqrt(windows + 0.375)  # the features of the small splits (none here)
    mask = np.ones(SHAPE, dtype=bool)
    return run_to_completion(small_phase_steps(raw, mask, trained_state(labels), (windows, dose),
                                               PhaseFindingSettings(), None))  # fmt: skip


OXIDE_GRAINS = disc_grains(SHAPE, [(15, 20), (40, 70), (70, 30), (80, 80), (20, 75)], 4)
METAL_GRAINS = disc_grains(SHAPE, [(50, 15), (85, 50), (12, 45), (60, 50)], 3)


@pytest.mark.parametrize("seed", range(3))
def test_inclusions_of_two_compositions_are_two_phases(seed):
    """Oxide grains (r = 4) and metal prills (r = 3) in one host that the mixture merged: the
    first pass finds one kind, the second the other (one pass found only one)."""
    rng = np.random.default_rng(seed)
    profiles = np.where(OXIDE_GRAINS[..., None], OXIDE, HOST)
    profiles = np.where(METAL_GRAINS[..., None], METAL, profiles)
    windows, dose = _counts(rng, profiles)
    found = _steps(np.zeros(SHAPE, dtype=np.int64), windows, dose)
    assert found[3] == 3
    labels = found[0].reshape(SHAPE)
    for truth in (OXIDE_GRAINS, METAL_GRAINS):
        phase = np.bincount(labels[truth]).argmax()
        assert phase > 0
        mine = labels == phase
        assert (mine & truth).sum() >= 0.6 * truth.sum()
        assert (mine & ~truth).sum() <= 0.2 * truth.sum()


def _contact_map(rng):
    """Host (left) and a second phase (right) with, along part of their contact, a band two
    pixels wide that mixes the two with more of the line the oxide is rich in (no mix of the
    known phases; the first pass gives part of it to the oxide); oxide grains in the host."""
    other = np.array([0.05, 0.05, 0.40, 0.05, 0.10])
    labels = np.zeros(SHAPE, dtype=np.int64)
    labels[:, 60:] = 1
    profiles = np.where((labels == 1)[..., None], other, HOST)
    band = np.zeros(SHAPE, dtype=bool)
    band[20:60, 59:61] = True
    profiles = np.where(band[..., None], 0.5 * (HOST + other) + [0, 0, 0, 0.10, 0], profiles)
    grains = disc_grains(SHAPE, [(15, 20), (40, 30), (70, 30), (85, 15), (25, 45)], 4)
    profiles = np.where(grains[..., None], OXIDE, profiles)
    windows, dose = _counts(rng, profiles)
    return labels, windows, dose, grains, band


@pytest.mark.parametrize("seed", range(3))
def test_a_band_of_contact_pixels_is_not_a_later_phase(seed):
    """The band is found by an unguarded second pass (checked), not by the guarded one: the
    oxide grains are the one new phase."""
    rng = np.random.default_rng(seed)
    labels, windows, dose, grains, band = _contact_map(rng)
    found = _steps(labels, windows, dose)
    assert found[3] == 3
    oxide = np.bincount(found[0].reshape(SHAPE)[grains]).argmax()
    assert oxide == 2
    # the same second pass without its guard makes the band a phase
    first = run_to_completion(_with_inclusions(np.ones(SHAPE, bool), trained_state(labels),
                                               (windows, dose), PhaseFindingSettings(), None))  # fmt: skip
    assert first[3] == 3
    unguarded = run_to_completion(_with_inclusions(np.ones(SHAPE, bool), first, (windows, dose),
                                                   PhaseFindingSettings(), None))  # fmt: skip
    assert unguarded[3] == 4
    assert (unguarded[0].reshape(SHAPE) == 3)[band].mean() > 0.5


def test_an_added_phase_takes_its_rims_where_it_has_the_larger_share():
    """Grains whose rims mix 80 % of the grain with 20 % of the host, labelled as a known
    phase whose composition is near that mix (the slag's magnetite rims read as olivine):
    the rims join the grains' phase; the host around them and the known phase's own pixels
    stay."""
    from napari_sigma.phases.small_phases import _with_majority_rims

    rng = np.random.default_rng(5)
    near_mix = 0.8 * OXIDE + 0.2 * HOST + [0.0, 0.0, 0.15, 0.0, 0.0]  # and a line of its own
    cores = disc_grains(SHAPE, [(20, 20), (20, 60), (60, 20)], 3)
    grains = disc_grains(SHAPE, [(20, 20), (20, 60), (60, 20)], 5)
    rims = grains & ~cores
    labels = np.zeros(SHAPE, dtype=np.int64)
    labels[70:, 60:] = 1  # the known phase's own region
    labels[rims] = 1  # the rims, as the classification without the new phase gave them
    labels[cores] = 2  # the phase of inclusions
    profiles = np.where((labels == 1)[..., None], near_mix, HOST)
    profiles = np.where(rims[..., None], 0.8 * OXIDE + 0.2 * HOST, profiles)
    profiles = np.where(cores[..., None], OXIDE, profiles)
    windows, dose = _counts(rng, profiles)
    state = trained_state(labels)
    found = _with_majority_rims(np.ones(SHAPE, bool), state, (windows, dose),
                                PhaseFindingSettings(), None, [2])  # fmt: skip
    after = found[0].reshape(SHAPE)
    # a pixel that the half-and-half mix explains best keeps its label (a tie); at 100
    # counts that is a quarter of these rims (measured 70 %, 0 % before)
    assert (after[rims] == 2).mean() > 0.6
    assert (after[labels == 0] == 0).mean() > 0.99
    assert (after[70:, 60:] == 1).all()
    assert found[3] == 3
