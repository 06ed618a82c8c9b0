"""The Latent widget: phase-coloured density, selected-phase highlight, lasso assignment."""

from __future__ import annotations

import numpy as np
import pytest

from napari_sigma._napari.latent_widget import LatentWidget, latent_extent, phase_density_image
from napari_sigma._napari.phases_widget import PhasesWidget
from napari_sigma._napari.results import add_result_layers
from test_editing import CENTRES, make_fake_result

AROUND_PHASE_2 = [(4.0, -2.0), (8.0, -2.0), (8.0, 2.0), (4.0, 2.0)]


def test_density_image_mixes_phase_colours_per_bin():
    latent = np.array([[0.0, 0.0], [0.0, 0.0], [10.0, 10.0], [10.0, 10.0], [10.0, 10.0]])
    phases = np.array([1, 2, 2, 2, 2])
    colors = {1: (1.0, 0.0, 0.0, 1.0), 2: (0.0, 0.0, 1.0, 1.0)}
    image = phase_density_image(latent, phases, colors, (0.0, 10.0, 0.0, 10.0), bins=4)
    np.testing.assert_allclose(image[0, 0, :3], [0.5, 0.0, 0.5])  # one red, one blue point
    np.testing.assert_allclose(image[3, 3, :3], [0.0, 0.0, 1.0])  # three blue points
    assert image[3, 3, 3] == pytest.approx(1.0)  # densest bin is opaque
    assert image[0, 0, 3] < image[3, 3, 3] and image[1, 1, 3] == 0.0  # empty bin transparent
    assert latent_extent(latent)[0] < 0.0 < 10.0 < latent_extent(latent)[1]


@pytest.mark.gui
def test_lasso_assigns_pixels_in_one_undo_step_and_phases_widget_follows(make_napari_viewer):
    viewer = make_napari_viewer()
    result = make_fake_result(shape=(12, 18), bin_factor=2)
    layer = add_result_layers(viewer, result).phases
    phases = PhasesWidget(viewer)
    latent = LatentWidget(viewer)
    assert latent.layer is layer and latent._image_artist is not None
    before = np.array(layer.data, copy=True)
    new = latent.assign_selection(AROUND_PHASE_2)  # no target: a new phase
    assert new == 4 and layer.selected_label == 4
    np.testing.assert_array_equal(layer.data == 4, before == 2)
    assert phases.row_ids() == [1, 3, 4]
    assert phases.row_pixels()[4] == int((before == 2).sum())
    assert latent.target.findData(4) >= 0  # the new phase is a lasso target now
    layer.undo()
    np.testing.assert_array_equal(layer.data, before)
    assert phases.row_ids() == [1, 2, 3]
    assert latent.assign_selection(AROUND_PHASE_2, target_phase=3) == 3
    np.testing.assert_array_equal(layer.data == 3, (before == 2) | (before == 3))
    assert latent.assign_selection([(50, 50), (51, 50), (51, 51)]) is None  # empty lasso


@pytest.mark.gui
def test_selected_label_is_highlighted(make_napari_viewer):
    viewer = make_napari_viewer()
    result = make_fake_result(shape=(12, 18))
    layer = add_result_layers(viewer, result).phases
    widget = LatentWidget(viewer)
    layer.selected_label = 3
    points = widget.highlighted_points()
    assert len(points) == int((result.labels.reshape(-1)[result.latent_pixels] == 3).sum())
    np.testing.assert_allclose(points.mean(0), CENTRES[3][0], atol=0.2)
    offsets = widget._highlight.get_offsets()
    np.testing.assert_allclose(np.asarray(offsets), points)
