"""Phase edits on label arrays, latent <-> pixel mapping, and the evented PhaseModel.

``make_fake_result`` builds a small, fully known stand-in for an AnalysisResult; the GUI tests of
the Phases and Latent widgets import it from here.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from napari_sigma._napari import editing
from napari_sigma._napari.phase_model import Phase, PhaseModel
from napari_sigma.energy import EnergyAxis
from napari_sigma.spectrum_image import SpectrumImage

LINES = ("O_Ka", "Si_Ka", "Fe_Ka")
PEAKS = (20, 70, 250)  # channel of each line (10 eV channels)
# latent centre of each phase; phase 1 has two sub-clusters (left / right half of its stripe)
CENTRES = {1: ((0.0, 0.0), (0.0, -6.0)), 2: ((6.0, 0.0),), 3: ((0.0, 6.0),)}


def stripe_labels(shape: tuple[int, int]) -> np.ndarray:
    """Three vertical stripes: phases 1, 2, 3 from left to right."""
    labels = np.ones(shape, dtype=np.int32)
    labels[:, shape[1] // 3 :] = 2
    labels[:, 2 * shape[1] // 3 :] = 3
    return labels


def make_fake_result(shape=(12, 18), bin_factor=1, n_channels=300, seed=0) -> SimpleNamespace:
    """A small AnalysisResult stand-in with known labels, spectra and a separable latent."""
    rng = np.random.default_rng(seed)
    labels = stripe_labels(shape)
    spectra = np.full((3, n_channels), 0.2)
    for k, channel in enumerate(PEAKS):
        spectra[k, channel - 2 : channel + 3] += 8.0
    counts = rng.poisson(spectra[labels - 1]).astype(np.uint16)
    intensities = np.stack([counts[..., c - 2 : c + 3].sum(-1) for c in PEAKS], -1)
    grid = (shape[0] // bin_factor, shape[1] // bin_factor)
    rows = np.arange(grid[0]) * bin_factor
    cols = np.arange(grid[1]) * bin_factor
    latent_pixels = (rows[:, None] * shape[1] + cols[None, :]).reshape(-1)
    rep_labels = labels.reshape(-1)[latent_pixels]
    rep_x = latent_pixels % shape[1]
    sub = (rep_labels == 1) & (rep_x >= shape[1] // 6)  # right half of phase 1's stripe
    centres = np.array([CENTRES[k][0] for k in rep_labels])
    centres[sub] = CENTRES[1][1]
    latent = (centres + rng.normal(0, 0.3, centres.shape)).astype(np.float32)
    image = SpectrumImage(
        counts=counts,
        energy=EnergyAxis(0.0, 0.01, n_channels),
        beam_energy=15.0,
        pixel_size=0.5,
        pixel_unit="µm",
        title="fake",
    )
    return SimpleNamespace(
        image=image,
        settings=SimpleNamespace(seed=0),
        lines=LINES,
        intensities=intensities.astype(np.float32),
        latent=latent,
        latent_pixels=latent_pixels.astype(np.int64),
        latent_shape=grid,
        bin_factor=bin_factor,
        labels=labels,
        phase_names=["P1 O", "P2 Si", "P3 Fe"],
        n_phases=3,
        abundances=rng.random((*shape, 2)).astype(np.float32),
        component_names=["C1", "C2"],
    )


def test_merge_and_unassign_are_exact():
    labels = stripe_labels((6, 9))
    merged = editing.apply_edit(labels, editing.merge_phases(labels, [2, 3], 2))
    np.testing.assert_array_equal(merged, np.where(labels == 3, 2, labels))
    cleared = editing.apply_edit(labels, editing.mark_unassigned(labels, [1]))
    np.testing.assert_array_equal(cleared, np.where(labels == 1, 0, labels))
    assert editing.merge_phases(labels, [2], 2).size == 0  # merging a phase into itself


def test_assign_pixels_writes_only_changes():
    labels = stripe_labels((6, 9))
    edit = editing.assign_pixels(labels, np.array([0, 1, 5, 5, 53]), 1)  # 0, 1 are phase 1
    np.testing.assert_array_equal(edit.indices, [5, 53])
    assert editing.apply_edit(labels, edit).reshape(-1)[[5, 53]].tolist() == [1, 1]


@pytest.mark.parametrize("factor", [1, 2, 3])
def test_pixel_latent_rows_cover_blocks_and_cropped_edge(factor):
    result = make_fake_result(shape=(7, 11), bin_factor=factor)
    rows = editing.pixel_latent_rows(result, (7, 11))
    grid_y, grid_x = result.latent_shape
    for y in range(7):
        for x in range(11):
            block = (min(y // factor, grid_y - 1), min(x // factor, grid_x - 1))
            assert rows[y, x] == block[0] * grid_x + block[1]
    # every representative pixel maps to its own row
    np.testing.assert_array_equal(rows.reshape(-1)[result.latent_pixels], np.arange(rows.max() + 1))


def test_latent_rows_to_pixels_returns_whole_blocks():
    result = make_fake_result(shape=(6, 8), bin_factor=2)  # grid 3 x 4
    pixels = editing.latent_rows_to_pixels(result, np.array([5]), (6, 8))  # block (1, 1)
    expected = [y * 8 + x for y in (2, 3) for x in (2, 3)]
    np.testing.assert_array_equal(pixels, expected)


@pytest.mark.parametrize(
    ("shape", "factor"), [((7, 11), 1), ((7, 11), 2), ((13, 9), 3), ((12, 18), 4)]
)
def test_latent_rows_to_pixels_matches_the_per_pixel_lookup(shape, factor):
    """Built from the selected blocks, the pixels are those whose row the per-pixel map gives
    (cropped edges included), for any selection (repeats, every row, none)."""
    result = make_fake_result(shape=shape, bin_factor=factor)
    lookup = editing.pixel_latent_rows(result, shape).reshape(-1)
    n = len(result.latent)
    rng = np.random.default_rng(factor)
    for rows in (np.arange(n), rng.choice(n, n // 3), np.array([n - 1, 0, 0]), np.zeros(0, int)):
        expected = np.flatnonzero(np.isin(lookup, rows))
        np.testing.assert_array_equal(editing.latent_rows_to_pixels(result, rows, shape), expected)


def test_lasso_assigns_every_pixel_of_enclosed_points():
    result = make_fake_result(shape=(12, 18), bin_factor=2)
    labels = result.labels.copy()
    square = [(4.0, -2.0), (8.0, -2.0), (8.0, 2.0), (4.0, 2.0)]  # around phase 2's centre
    edit = editing.assign_latent_selection(labels, result, square, 7)
    out = editing.apply_edit(labels, edit)
    np.testing.assert_array_equal(out == 7, labels == 2)  # all of phase 2 and nothing else
    assert editing.rows_in_polygon(result.latent, [(0, 0), (1, 1)]).size == 0  # not a polygon


def test_split_recovers_the_two_subclusters():
    result = make_fake_result(shape=(12, 18), bin_factor=1)
    labels = result.labels.copy()
    edit = editing.split_phase_edit(labels, result, 1, 2, new_ids=[4], seed=0)
    out = editing.apply_edit(labels, edit)
    left = np.zeros_like(labels, dtype=bool)
    left[:, : 18 // 6] = True
    stripe = labels == 1
    parts = {tuple(np.unique(out[stripe & left])), tuple(np.unique(out[stripe & ~left]))}
    assert parts == {(1,), (4,)}  # each half is one part, the halves differ
    np.testing.assert_array_equal(out[~stripe], labels[~stripe])
    with pytest.raises(ValueError):
        editing.split_phase_edit(labels, result, 1, 2, new_ids=[], seed=0)


def test_apply_to_layer_is_one_undo_step():
    from napari.layers import Labels

    labels = stripe_labels((6, 9))
    layer = Labels(labels.copy())
    paints = []
    layer.events.paint.connect(lambda event: paints.append(np.bincount(layer.data.ravel())))
    editing.apply_to_layer(layer, editing.merge_phases(layer.data, [1, 2, 3], 1))
    assert len(paints) == 1
    np.testing.assert_array_equal(paints[0], [0, 54])  # the event came after the write
    layer.undo()
    np.testing.assert_array_equal(layer.data, labels)


def test_phase_model_events_names_and_colours():
    model = PhaseModel([Phase(1, "quartz", (1.0, 0.0, 0.0)), Phase(2, "albite", "#00ff00")])
    seen = []
    model.changed.connect(lambda: seen.append(model.ids))
    assert model.ensure([0, 1, 2, 5]) == [5]
    assert model.name(5) == "phase 5" and model.next_id() == 6
    model.rename(1, "SiO2")
    model.rename(1, "SiO2")  # unchanged: no event
    assert seen == [[1, 2, 5], [1, 2, 5]]
    assert model.color(2) == (0.0, 1.0, 0.0, 1.0) and model.color(0)[3] == 0.0
    colormap = model.colormap()
    np.testing.assert_allclose(colormap.map(np.array([1, 0]))[:, :3], [[1, 0, 0], [0, 0, 0]])
    with pytest.raises(ValueError):
        model.add(phase_id=2)


def test_phase_model_from_names_uses_distinct_palette_colours():
    model = PhaseModel.from_names(["a", "b", "c"])
    assert model.ids == [1, 2, 3] and model.name(3) == "c"
    assert len({model.color(i) for i in model.ids}) == 3
