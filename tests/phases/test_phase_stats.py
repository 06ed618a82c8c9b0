"""Phase statistics: one-shot table against a naive loop, incremental updates against one-shot."""

from __future__ import annotations

import numpy as np
import pytest

from napari_sigma.compute.progress import run_to_completion
from napari_sigma.phases.colors import label_colormap, label_rgba, phase_colors
from napari_sigma.phases.statistics import (
    PhaseStatistics,
    main_elements,
    phase_display_name,
    phase_table,
    phase_table_steps,
    region_sizes,
)

LINES = ["Fe_Ka", "Si_Ka", "O_Ka"]
SHAPE = (45, 53)  # not a multiple of the block size: edge pixels outside whole blocks


@pytest.fixture(scope="module")
def cube():
    rng = np.random.default_rng(7)
    counts = rng.poisson(3.0, (*SHAPE, 64)).astype(np.uint16)
    intensities = rng.gamma(2.0, 1.0, (*SHAPE, len(LINES))).astype(np.float32)
    return counts, intensities


@pytest.fixture(scope="module")
def labels():
    """Smooth grains (whole 8x8 blocks occur) with scattered noise pixels and some zeros."""
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[: SHAPE[0], : SHAPE[1]]
    grains = (yy // 15) * 2 + (xx // 27) + 1  # labels 1..6
    noise = rng.random(SHAPE) < 0.03
    grains[noise] = rng.integers(0, 7, noise.sum())
    return grains.astype(np.int32)


def naive_table(labels, counts, intensities):
    """Per-phase pixel count, mean spectrum and mean intensity, one phase at a time."""
    out = {}
    for phase_id in range(1, labels.max() + 1):
        mask = labels == phase_id
        if mask.any():
            spectra = counts[mask].astype(np.float64)
            out[phase_id] = (mask.sum(), spectra.mean(axis=0), intensities[mask].mean(axis=0))
    return out


def assert_tables_equal(table, reference):
    np.testing.assert_array_equal(table.phase_ids, reference.phase_ids)
    np.testing.assert_array_equal(table.pixels, reference.pixels)
    np.testing.assert_allclose(table.mean_spectra, reference.mean_spectra, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(table.mean_intensities, reference.mean_intensities, rtol=1e-9)
    np.testing.assert_array_equal(table.n_regions, reference.n_regions)
    for sizes, expected in zip(table.region_sizes, reference.region_sizes, strict=True):
        np.testing.assert_array_equal(sizes, expected)
    assert table.names == reference.names


def test_phase_table_matches_naive_loop(cube, labels):
    counts, intensities = cube
    table = phase_table(labels, counts, intensities, LINES, pixel_size_um=0.25)
    naive = naive_table(labels, counts, intensities)
    np.testing.assert_array_equal(table.phase_ids, sorted(naive))
    for i, phase_id in enumerate(table.phase_ids):
        pixels, spectrum, intensity = naive[phase_id]
        assert table.pixels[i] == pixels
        np.testing.assert_allclose(table.mean_spectra[i], spectrum, rtol=1e-12)
        np.testing.assert_allclose(table.mean_intensities[i], intensity, rtol=1e-6)
    np.testing.assert_allclose(table.area_fraction, table.pixels / labels.size)
    np.testing.assert_allclose(table.area_um2, table.pixels * 0.0625)
    assert table.pixels.sum() == np.count_nonzero(labels)


def test_table_from_known_sum_spectra_equals_summing_the_cube(cube, labels):
    # an analysis result's phase sums stand for the export's pass over the cube: same table
    counts, intensities = cube
    sums = np.stack(
        [counts[labels == k].sum(axis=0, dtype=np.float64) for k in range(1, labels.max() + 1)]
    )
    summed = phase_table(labels, counts, intensities, LINES, pixel_size_um=0.25)
    known = run_to_completion(
        phase_table_steps(labels, counts, intensities, LINES, 0.25, sum_spectra=sums)
    )
    np.testing.assert_array_equal(known.mean_spectra, summed.mean_spectra)
    np.testing.assert_array_equal(known.mean_intensities, summed.mean_intensities)
    assert_tables_equal(known, summed)
    # the given sums are what the table reports (no second pass over the cube)
    doubled = run_to_completion(
        phase_table_steps(labels, counts, intensities, LINES, 0.25, sum_spectra=2 * sums)
    )
    np.testing.assert_array_equal(doubled.mean_spectra, 2 * summed.mean_spectra)
    with pytest.raises(ValueError, match="do not cover"):
        run_to_completion(
            phase_table_steps(labels, counts, intensities, LINES, sum_spectra=sums[:2])
        )


def test_uncalibrated_table_has_no_area(cube, labels):
    table = phase_table(labels, *cube, LINES)
    assert table.area_um2 is None
    assert table.to_rows()[0]["area_um2"] is None


def edits(labels):
    """Brush stroke, bucket fill, erase, a new label id, and an undo back to the start."""
    yy, xx = np.mgrid[: SHAPE[0], : SHAPE[1]]
    brush = labels.copy()
    brush[(yy - 20) ** 2 + (xx - 26) ** 2 <= 16] = 2
    fill = brush.copy()
    fill[labels == 3] = 5
    erase = fill.copy()
    erase[5:30, 10:35] = 0
    new_label = erase.copy()
    new_label[30:45, 0:40] = 9
    merged = np.where(new_label == 9, 2, new_label)  # a whole phase into another (sums moved)
    swapped = np.where(merged == 2, 5, np.where(merged == 5, 2, merged))  # two whole phases
    return [brush, fill, erase, new_label, merged, swapped, labels.copy()]


@pytest.mark.parametrize("block_size", [None, 4, 8])
def test_incremental_updates_equal_from_scratch(cube, labels, block_size):
    counts, intensities = cube
    names = ["matrix", "grain"]
    stats = PhaseStatistics(counts, intensities, LINES, 0.5, names, block_size=block_size)
    first = stats.update(labels)
    assert_tables_equal(first, phase_table(labels, counts, intensities, LINES, 0.5, names))
    for edited in edits(labels):
        table = stats.update(edited)
        reference = phase_table(edited, counts, intensities, LINES, 0.5, names)
        assert_tables_equal(table, reference)
        assert stats.table is table


def test_running_sums_over_the_updated_labels_are_the_exact_sums(cube, labels):
    counts, intensities = cube
    stats = PhaseStatistics(counts, intensities, LINES)
    assert stats.sums_over(labels) is None  # never updated
    for edited in edits(labels):
        stats.update(edited)
        n = int(edited.max())
        exact = np.stack(
            [counts[edited == k].sum(axis=0, dtype=np.float64) for k in range(1, n + 1)]
        )
        np.testing.assert_array_equal(stats.sums_over(edited), exact)
    other = labels.copy()
    other[0, 0] = 0 if other[0, 0] else 1
    assert stats.sums_over(other) is None  # not the labels last summed


def test_the_statistics_know_their_channels_energies_and_grouping(cube, labels):
    """A plot of the table's mean spectra needs the channels' energies and how many file
    channels each holds (a cube grouped to fit memory): the statistics carry both."""
    counts, intensities = cube
    plain = PhaseStatistics(counts, intensities, LINES)
    assert plain.energies is None and plain.channels_summed == 1
    energies = np.linspace(0.0, 10.0, counts.shape[2])
    grouped = PhaseStatistics(counts, intensities, LINES, energies=energies, channels_summed=4)
    grouped.update(labels)
    np.testing.assert_array_equal(grouped.energies, energies)
    per_channel = grouped.table.mean_spectra / grouped.channels_summed
    np.testing.assert_allclose(per_channel * 4, plain.update(labels).mean_spectra)


def test_update_of_array_edited_in_place(cube, labels):
    counts, intensities = cube
    layer_data = labels.copy()
    stats = PhaseStatistics(counts, intensities, LINES)
    stats.update(layer_data)
    layer_data[10:14, 10:14] = 4  # napari paints into the same array
    table = stats.update(layer_data)
    assert_tables_equal(table, phase_table(layer_data, counts, intensities, LINES))


def test_large_change_recomputes(cube, labels):
    counts, intensities = cube
    stats = PhaseStatistics(counts, intensities, LINES)
    stats.update(labels)
    shifted = np.where(labels > 0, labels % 6 + 1, 0)  # most pixels change
    assert_tables_equal(stats.update(shifted), phase_table(shifted, counts, intensities, LINES))


def test_new_label_gets_generated_name_and_emptied_named_phase_stays(cube, labels):
    counts, intensities = cube
    stats = PhaseStatistics(counts, intensities, LINES, names=["a", "b", "c", "d", "e", "f"])
    edited = labels.copy()
    edited[labels == 2] = 12
    table = stats.update(edited)
    row_2 = list(table.phase_ids).index(2)
    assert table.pixels[row_2] == 0 and table.names[row_2] == "b"
    np.testing.assert_array_equal(table.mean_spectra[row_2], 0.0)
    row_12 = list(table.phase_ids).index(12)
    expected = main_elements(table.mean_intensities[row_12], LINES)
    assert table.names[row_12] == phase_display_name(12, expected)
    assert table.names[row_12].startswith("P12 ")


def test_regions_deferred_until_requested(cube, labels):
    counts, intensities = cube
    stats = PhaseStatistics(counts, intensities, LINES)
    stats.update(labels)
    edited = labels.copy()
    edited[0:3, 0:3] = 5
    quick = stats.update(edited, regions=False)
    touched = set(np.unique(labels[0:3, 0:3]).tolist()) - {0} | {5}
    stale = {int(i) for i, n in zip(quick.phase_ids, quick.n_regions, strict=True) if n == -1}
    assert stale == touched
    full = stats.update(edited)
    assert_tables_equal(full, phase_table(edited, counts, intensities, LINES))


def test_n_regions_on_hand_made_image():
    labels = np.zeros((8, 10), dtype=np.int32)
    labels[0:2, 0:2] = 1  # region of 4
    labels[2, 2] = 1  # touches the first one at a corner: same region (8-connectivity)
    labels[6:8, 7:10] = 1  # region of 6
    labels[0, 9] = 1  # single pixel
    labels[4:6, 0:5] = 2  # one region of 10
    labels[3, 6] = 2  # separate region of 1
    counts = np.ones((8, 10, 4), dtype=np.uint16)
    table = phase_table(labels, counts, np.ones((8, 10, 1), np.float32), ["Si_Ka"])
    np.testing.assert_array_equal(table.n_regions, [3, 2])
    np.testing.assert_array_equal(table.region_sizes[0], [6, 5, 1])
    np.testing.assert_array_equal(table.region_sizes[1], [10, 1])
    np.testing.assert_array_equal(table.largest_region, [6, 10])
    np.testing.assert_array_equal(region_sizes(labels, 3), np.zeros(0))


def test_main_elements_and_display_name():
    lines = ["Si_Ka", "O_Ka", "Fe_Ka", "Fe_La", "Al_Ka"]
    row = np.array([5.0, 9.0, 1.0, 7.0, 0.0])
    assert main_elements(row, lines) == ["O", "Fe", "Si"]
    assert main_elements(row, lines, n=2) == ["O", "Fe"]
    assert main_elements(np.zeros(5), lines) == []
    assert phase_display_name(1, ["Si", "O"]) == "P1 Si-O"
    assert phase_display_name(3, []) == "P3"


def test_to_rows_columns(cube, labels):
    table = phase_table(labels, *cube, LINES, pixel_size_um=1.0)
    rows = table.to_rows()
    assert len(rows) == len(table.phase_ids)
    assert list(rows[0])[:8] == [
        "phase_id",
        "name",
        "pixels",
        "area_fraction",
        "area_um2",
        "n_regions",
        "largest_region_px",
        "main_elements",
    ]
    assert [k for k in rows[0] if k.startswith("mean_")] == [f"mean_{n}" for n in LINES]
    assert rows[0]["mean_Fe_Ka"] == pytest.approx(table.mean_intensities[0, 0])
    assert rows[0]["area_fraction_abundance"] is None  # no phase fractions given


def test_bad_labels_rejected(cube):
    stats = PhaseStatistics(*cube, LINES)
    with pytest.raises(ValueError, match="shape"):
        stats.update(np.zeros((3, 3), np.int32))
    with pytest.raises(ValueError, match=">= 0"):
        stats.update(np.full(SHAPE, -1, np.int32))


def test_phase_colors_are_stable_and_distinct():
    ten, thirty = phase_colors(10), phase_colors(30)
    np.testing.assert_array_equal(thirty[:10], ten)
    assert thirty.shape == (30, 4) and np.all(thirty[:, 3] == 1.0)
    assert len({tuple(np.round(c, 3)) for c in thirty}) == 30
    rgba = label_rgba(np.array([[0, 1], [2, 1]]))
    assert rgba[0, 0, 3] == 0.0
    np.testing.assert_array_equal(rgba[0, 1], ten[0])
    assert label_colormap(2)[0][3] == 0.0
