"""The mixture-zone step abstains where one smoothed pixel has no power
(phases.end_members.mixture_zones): at a fraction of a count per pixel every candidate lies
within the distance of an empty pixel, so "a mix explains it" holds for any composition."""

from __future__ import annotations

import numpy as np

from napari_sigma.phases.end_members import mixture_zones


def _stripes() -> np.ndarray:
    grid = np.zeros((30, 90), dtype=int)
    grid[:, 30:60] = 1
    grid[:, 60:] = 2
    return grid


def _noise(counts: np.ndarray) -> np.ndarray:  # one smoothed pixel (9), at least 0.5 counts
    return np.maximum(counts, 0.5) / 9


def test_a_candidate_one_pixel_cannot_tell_from_nothing_is_not_taken_out():
    # counts per pixel (JEOL-like): the middle candidate, 0.6 counts in all, lies ~1.5 sd of
    # one smoothed pixel's noise from an empty pixel, and within 1 sd of the others' mix
    counts = np.array([[0.25, 0.05, 0.25], [0.2, 0.2, 0.2], [0.0, 0.35, 0.02]])
    assert mixture_zones(counts, _noise(counts), _stripes(), 3.0) == []


def test_a_mixture_zone_that_one_pixel_tells_from_nothing_is_still_taken_out():
    counts = np.array([[20.0, 1.0, 10.0], [11.0, 11.0, 6.0], [2.0, 21.0, 2.0]])
    assert mixture_zones(counts, _noise(counts), _stripes(), 3.0) == [(1, [0, 2])]


def test_a_faint_noise_copy_is_still_decided_by_the_regions_test():
    # two copies of one faint phase: the grain-wise test (``distinct``) has the power one
    # pixel lacks, so it, not the guard, decides
    counts = np.array([[0.25, 0.05, 0.25], [0.24, 0.06, 0.25], [0.0, 0.35, 0.02]])
    asked = []

    def distinct(k: int, partner: int) -> bool:
        asked.append((k, partner))
        return False

    explained = mixture_zones(counts, _noise(counts), _stripes(), 3.0, distinct)
    assert len(explained) == 1 and {explained[0][0], *explained[0][1]} == {0, 1}
    assert asked
    assert mixture_zones(counts, _noise(counts), _stripes(), 3.0, lambda k, p: True) == []
