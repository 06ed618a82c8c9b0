"""Minor twins (two olivines 1 wt % Fe apart): found, and their pixels assigned by whole spectra."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from napari_sigma.compute.progress import run_to_completion
from napari_sigma.energy import EnergyAxis
from napari_sigma.phases.twins import (
    TWIN_SEPARATION,
    TwinModel,
    TwinSettings,
    margin_log_ratios,
    neighbour_phases,
    pixel_separation,
    refine_twins_steps,
    twin_pairs,
)
from napari_sigma.synthetic.generator import (
    DETECTOR_OFFSET_KEV,
    DETECTOR_SCALE_KEV,
    mineral,
    mixing_fractions,
    phase_spectra,
    sample_counts,
)

BEAM = 15.0
ELEMENTS = ("O", "Mg", "Si", "Fe")
AXIS = EnergyAxis(DETECTOR_OFFSET_KEV, DETECTOR_SCALE_KEV, 2048)


def _pure(counts_per_pixel: float = 200.0) -> np.ndarray:
    """Expected counts of one pixel of Fo90, of the same with 1 wt % Fe for Mg, of magnetite."""
    olivine = mineral("olivine_fo90")
    specs = [olivine, olivine.shifted("Mg", "Fe", 0.01, "fo89"), mineral("magnetite")]
    lines, background = phase_spectra(specs, AXIS, BEAM)
    pure = lines + background
    return pure * counts_per_pixel / pure[:2].sum(axis=1).mean()


@pytest.fixture(scope="module")
def scene():
    """A Fo90 half, a Fo89 half with a Fo89 island in the Fo90 half, a magnetite band, and a
    Fo89 grain zoned with a Fo90 core: phase map 0/1/2 (Fo90, Fo89, magnetite), counts."""
    phase_map = np.zeros((96, 96), dtype=np.int64)
    phase_map[:, 48:] = 1
    phase_map[12:34, 12:34] = 1  # 484 px of Fo89 inside Fo90
    phase_map[:, 44:48] = 2  # magnetite between the halves
    yy, xx = np.mgrid[:96, :96]
    rim = (yy - 66) ** 2 + (xx - 20) ** 2 <= 20**2
    core = (yy - 66) ** 2 + (xx - 20) ** 2 <= 10**2
    phase_map[rim] = 1
    phase_map[core] = 0  # a Fo90 core (~317 px) in a Fo89 grain
    fractions = mixing_fractions(phase_map, 3, 0.7)
    counts = sample_counts(fractions, _pure(), np.random.default_rng(3))
    return phase_map, core, counts


def _refine(counts, labels, settings: TwinSettings | None = None):
    settings = settings or TwinSettings()
    return run_to_completion(refine_twins_steps(counts, labels, AXIS, ELEMENTS, BEAM, settings))


def test_pixel_separation_is_the_fisher_distance_without_its_noise():
    pure = _pure()
    used = pure[:2].mean(axis=0) > 0
    truth = np.sqrt(np.sum((pure[0] - pure[1])[used] ** 2 / pure[:2].mean(axis=0)[used]))
    assert 0.3 < truth < 0.7  # the twins: half a standard deviation per pixel
    rng = np.random.default_rng(0)
    n = 2000
    sums = [rng.poisson(p * n).astype(float) for p in pure]
    assert pixel_separation(sums[0], n, sums[1], n) == pytest.approx(truth, rel=0.2)
    # noise alone is not a difference: most draws give 0 (a single draw exceeds 0.2 for 5-11 of
    # 30 seeds, up to 0.4: one draw is not a test of the rule)
    same = [
        pixel_separation(sums[0], n, rng.poisson(pure[0] * n).astype(float), n) for _ in range(9)
    ]
    assert np.median(same) < 0.1
    assert pixel_separation(sums[0], n, sums[2], n) > 10 * TWIN_SEPARATION


def test_twins_differ_by_a_minor_element_at_any_dose():
    """Olivines 1 wt % apart are twins; olivine and magnetite are not, even at a dose where one
    pixel tells them apart by less than one standard deviation."""
    rng = np.random.default_rng(1)
    n = 2000
    for dose, twins in ((200.0, [(1, 2)]), (0.5, [])):
        pure = _pure(dose)
        sums = np.stack([rng.poisson(p * n).astype(float) for p in pure])
        found = twin_pairs(sums[[0, 1]] if twins else sums[[0, 2]], np.array([n, n]))
        assert [(a, b) for a, b, _ in found] == twins
    pure = _pure(0.5)
    sums = [rng.poisson(p * n).astype(float) for p in pure]
    assert pixel_separation(sums[0], n, sums[2], n) < TWIN_SEPARATION  # yet no twins


# The significance rule (TwinSettings.significance > 0) keeps right labels exactly; the default
# (the cut's labels) lets boundaries move by their location noise (3.9 % of this scene's pixels
# from its true labels), see phases/twins.py step 4.
PROTECTED = TwinSettings(significance=3.0)


def test_a_grain_labelled_as_the_other_twin_gets_its_own_label(scene):
    phase_map, _, counts = scene
    labels = phase_map + 1
    labels[12:34, 12:34] = 1  # the Fo89 island labelled Fo90 (a whole grain wrong)
    refined, _, models = _refine(counts, labels, PROTECTED)
    assert [m.phases for m in models] == [(1, 2)]
    island = np.zeros(labels.shape, dtype=bool)
    island[12:34, 12:34] = True
    # half a standard deviation per pixel places a boundary to a pixel or two: 85 % of the
    # island (a 22 x 22 square) changes twin, its outline wanders by about that much
    assert np.mean(refined[island] == 2) > 0.75
    elsewhere = ~island
    assert np.mean(refined[elsewhere] == (phase_map + 1)[elsewhere]) > 0.985
    assert np.array_equal(refined == 3, labels == 3)  # the third phase is not touched


def test_zoned_grains_keep_their_zones_and_right_labels_stay(scene):
    phase_map, core, counts = scene
    labels = phase_map + 1
    refined, _, _ = _refine(counts, labels, PROTECTED)
    assert np.mean(refined[core] == 1) > 0.9
    assert np.mean(refined == labels) > 0.985


def test_distinct_phases_are_no_twins(scene):
    phase_map, _, counts = scene
    labels = np.where(phase_map == 1, 1, phase_map + 1)  # Fo90 and Fo89 one label, magnetite
    refined, _, models = _refine(counts, labels)
    assert refined is labels and models == []


def test_twin_abundances_are_shared_by_label_area(scene):
    """The map's mean spectrum cannot fix the twins' shares; their labels can."""
    from types import SimpleNamespace

    from napari_sigma.io.mineral_report.mineralogy import abundance_fractions

    phase_map, _, counts = scene
    labels = phase_map + 1
    fractions = abundance_fractions(SimpleNamespace(counts=counts), labels, 3)
    areas = np.bincount(labels.ravel(), minlength=4)[1:] / labels.size
    pair = fractions[0] + fractions[1]
    np.testing.assert_allclose(fractions[:2], pair * areas[:2] / areas[:2].sum(), rtol=1e-9)
    truth = np.bincount(phase_map.ravel(), minlength=3) / labels.size
    assert np.max(np.abs(fractions - truth)) < 0.005


def test_three_olivines_share_their_abundance_by_label_area():
    """Every pair of twins joins the group, not only the closest pair."""
    from napari_sigma.io.mineral_report.mineralogy import _similar_groups

    olivine = mineral("olivine_fo90")
    specs = [olivine, olivine.shifted("Mg", "Fe", 0.01, "fo89"),
             olivine.shifted("Mg", "Fe", 0.02, "fo88"), mineral("magnetite")]  # fmt: skip
    lines, background = phase_spectra(specs, AXIS, BEAM)
    pure = (lines + background) * 200.0 / (lines + background)[0].sum()
    rng = np.random.default_rng(2)
    n = np.array([1500, 1500, 1500, 1500])
    sums = np.stack([rng.poisson(p * k).astype(float) for p, k in zip(pure, n, strict=True)])
    groups = _similar_groups(sums / n[:, None], n > 0, sums, n)
    assert sorted(map(sorted, groups)) == [[0, 1, 2], [3]]


def test_pixels_mixed_with_a_third_phase_tell_the_twins_apart_without_its_bias():
    """Pixels of 70 % twin and 30 % magnetite: the interior pixels' ratio calls them the
    iron-richer twin whatever they are, by far more than the twins differ (why such pixels
    carried no evidence); the mixture's own ratio (magnetite's share measured in each pixel)
    tells the twins apart and is centred near zero."""
    pure = _pure()[:, 25:1400]  # channels with counts (15 kV)
    channels = slice(0, pure.shape[1])
    spectra = pure[:2]
    weights = np.log(spectra[0] / spectra[1])
    midpoint = float(spectra.mean(axis=0) @ weights)
    model = TwinModel((1, 2), channels, spectra, 0.5, midpoint)
    labels = np.ones((1500, 3), dtype=np.int64)
    labels[:, 0] = 3  # magnetite along one edge
    margin = np.zeros(labels.shape, dtype=bool)
    margin[:, 1] = True
    neighbours = neighbour_phases(labels, (1, 2), 1)
    assert np.all(neighbours[:, :2] == 3) and np.all(neighbours[:, 2] == 0)
    rng = np.random.default_rng(4)
    share = 0.7
    means, truths, interiors = [], [], []
    for twin in (0, 1):
        mixed = share * pure[twin] + (1 - share) * pure[2]
        counts = rng.poisson(np.broadcast_to(mixed, (*labels.shape, mixed.size))).astype(np.int32)
        ratios = margin_log_ratios(counts, margin, neighbours, model, pure, midpoint, 1.0)
        assert np.all(ratios[~margin] == 0)
        means.append(ratios[margin].mean())
        mix_a = share * spectra[0] + (1 - share) * pure[2]
        mix_b = share * spectra[1] + (1 - share) * pure[2]
        truths.append(mixed @ np.log(mix_a / mix_b) - np.sum(mix_a - mix_b))
        interiors.append((counts[margin] @ weights - midpoint).mean())
    assert truths[0] > 0.02 and truths[1] < -0.02  # Poisson log-likelihood ratio, share known
    assert means[0] - means[1] > 0.02  # measured 0.037 of the 0.084 with the share known
    assert abs(means[0] + means[1]) / 2 < truths[0]
    assert max(interiors) < -20 * truths[0]  # -3.8: magnetite's Fe


def test_a_lazy_cube_gives_the_labels_of_numpy_each_chunk_read_once_per_pass(scene, joins):
    """A dask cube (a JEOL map is one) is read in its own row chunks: no band assembled from
    several chunks (dask's concatenate copied 256 MiB per 64-row band of the JEOL map while
    napari waited), and the same labels, core sums and models as the numpy cube."""
    from napari_sigma.io.readers.events import EventCube
    from napari_sigma.minerals.interiors import interior_labels
    from napari_sigma.phases.spectra import phase_sum_spectra
    from sigma_testdata import lazy_cube

    phase_map, _, counts = scene
    labels = phase_map + 1
    labels[12:34, 12:34] = 1
    counts = counts.astype(np.uint16)
    core_sums = phase_sum_spectra(counts, interior_labels(labels), 3)
    settings = TwinSettings(significance=3.0)
    expected = run_to_completion(
        refine_twins_steps(counts, labels, AXIS, ELEMENTS, BEAM, settings, core_sums)
    )
    assert not np.array_equal(expected[0], labels)  # the island moved: every read is made
    cube, source = lazy_cube(counts, 7)
    events = EventCube(np.nonzero(counts), counts[np.nonzero(counts)], shape=counts.shape)
    for lazy in (cube, events.to_dask(chunk_bytes=7 * counts[0].nbytes)):
        refined, sums, models = run_to_completion(
            refine_twins_steps(lazy, labels, AXIS, ELEMENTS, BEAM, settings, core_sums)
        )
        assert np.array_equal(refined, expected[0])
        assert np.array_equal(sums, expected[1])
        assert [m.phases for m in models] == [m.phases for m in expected[2]]
    assert max(joins, default=1) == 1
    # the passes (evidence, scores, margins per round; the moved cores) each go down the cube
    chunks = -(-counts.shape[0] // 7)
    starts = [low for low, _ in source.reads]
    passes = 1 + sum(b <= a for a, b in itertools.pairwise(starts))
    assert len(source.reads) <= passes * chunks


def test_evidence_sums_of_a_lazy_cube_are_numpy_s_bit_for_bit():
    """Integer counts summed chunk by chunk (exact), float counts band by band (their rounding)."""
    from napari_sigma.phases.twins import _evidence_sums
    from sigma_testdata import lazy_cube

    rng = np.random.default_rng(4)
    labels = rng.integers(1, 4, (40, 9))
    evidence = rng.random((40, 9)) < 0.7
    for data in (
        rng.poisson(40.0, (40, 9, 13)).astype(np.uint16),
        (rng.random((40, 9, 13)) * 1e3).astype(np.float32),  # sums depend on their order
    ):
        expected = _evidence_sums(data, labels, evidence, (1, 3), rows=16)
        cube, _ = lazy_cube(data, 6)
        sums, pixels = _evidence_sums(cube, labels, evidence, (1, 3), rows=16)
        assert pixels == expected[1]
        assert np.array_equal(sums, expected[0])
