"""The searches of phase finding after the spatial classification
(:mod:`~napari_sigma.phases.finding`): trace phases, whose pixels no phase or boundary mix
explains (:mod:`~napari_sigma.phases.trace`), and phases of two compositions too close to tell
apart pixel by pixel but not grain by grain (:mod:`~napari_sigma.phases.splitting`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from napari_sigma.compute.blocks import threaded_map
from napari_sigma.compute.progress import Computation, Progress
from napari_sigma.phases.splitting import composition_test, split_phase

if TYPE_CHECKING:
    from napari_sigma.phases.finding import PhaseFindingSettings


def _unexplained(
    labels: np.ndarray,
    n_phases: int,
    counts: tuple[np.ndarray, np.ndarray],
    settings: PhaseFindingSettings,
) -> Computation[np.ndarray | None]:
    """Mask of the pixels no phase or boundary mix explains, or None when there are none."""
    from napari_sigma.phases.trace import unexplained_pixels_steps

    windows, dose = counts
    yield Progress("clustering", 0, 1, "searching unexplained pixels")
    flagged = yield from unexplained_pixels_steps(
        windows,
        dose,
        labels.reshape(dose.shape),
        n_phases,
        settings.trace_false_alarm,
        settings.trace_min_pixels,
    )
    n_flagged = int(flagged.sum())
    yield Progress("clustering", 0, 1, f"{n_flagged} unexplained pixels")
    return flagged if n_flagged else None


def _split_compositions(
    raw: np.ndarray,
    mask: np.ndarray,
    state: tuple[np.ndarray, np.ndarray, np.ndarray, int],
    target: int | None,
    settings: PhaseFindingSettings,
    valid: np.ndarray | None = None,
) -> Computation[tuple[np.ndarray, np.ndarray, np.ndarray, int]]:
    """Split phases of two compositions: every one that passes the test (automatic number of
    phases), or the most significant ones up to a given K.

    ``state`` is (flat labels 0..K-1, probabilities (N, K), training labels, K). Pixels that
    are not ``valid`` (empty) belong to no phase here: tested with a phase, the empty
    background of Hitachi_TM3030Plus.bcf was its "second composition", and the sample's
    pixels with the fewest counts became a phase of 1 115 specks.
    """
    labels, probabilities, hard, n_phases = state
    grid = labels.reshape(raw.shape[:2]) + 1
    if valid is not None:
        grid = np.where(valid, grid, 0)
    tests = {}

    def tested(phase: int):
        return composition_test(raw, grid, phase + 1, settings.split, settings.mix_space)

    yield Progress("clustering", 0, n_phases, "testing phases for two compositions")
    # the phases' tests are independent numpy work: on every core, taken in order
    for phase, test in enumerate(threaded_map(tested, range(n_phases))):
        yield Progress("clustering", phase + 1, n_phases, "testing phases for two compositions")
        if test is not None and test.p_value < settings.split.p_value:
            tests[phase] = test
    if target is None:
        chosen = [phase for phase, test in tests.items() if test.is_split(settings.split)]
    else:
        chosen = sorted(tests, key=lambda phase: -tests[phase].t_squared)
        chosen = chosen[: max(0, target - n_phases)]
    state = (labels, probabilities, hard, n_phases)
    for phase in chosen:
        yield Progress("clustering", phase, n_phases, "splitting a phase of two compositions")
        state = _with_split(raw, grid, mask, state, phase, tests[phase], settings.split)
    return state


def _with_split(raw, grid, mask, state, phase: int, test, split):
    """``state`` with the second composition of ``phase`` (its :class:`SplitTest` ``test``;
    ``grid`` holds the phases 1..K of the test) as a new phase K."""
    labels, probabilities, hard, n_phases = state
    second = split_phase(raw, grid, phase + 1, test, split).reshape(-1)
    labels = np.where(second, n_phases, labels)
    moved = np.zeros((len(labels), 1), dtype=probabilities.dtype)
    moved[second, 0] = probabilities[second, phase]
    probabilities = np.concatenate([probabilities, moved], axis=1)
    probabilities[second, phase] = 0.0
    hard = np.where(second[mask.reshape(-1)] & (hard == phase), n_phases, hard)
    return labels, probabilities, hard, n_phases + 1


def _with_trace(
    mask: np.ndarray, hard: np.ndarray, n_phases: int, flagged: np.ndarray
) -> tuple[np.ndarray, np.ndarray, int]:
    """Training pixels with the unexplained pixels added as one new phase, number K."""
    training = np.full(mask.shape, -1)
    training[mask] = hard
    training[flagged] = n_phases
    used = training >= 0
    return used, training[used], n_phases + 1
