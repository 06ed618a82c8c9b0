"""The Latent widget: phase-coloured density, selected-phase highlight, lasso assignment."""

from __future__ import annotations

import numpy as np
import pytest
from test_editing import CENTRES, make_fake_result
from waits import HANG_MS

from napari_sigma._napari.latent_widget import LatentWidget
from napari_sigma._napari.phases_widget import PhasesWidget
from napari_sigma._napari.results import add_result_layers

AROUND_PHASE_2 = [(4.0, -2.0), (8.0, -2.0), (8.0, 2.0), (4.0, 2.0)]


@pytest.mark.gui
def test_lasso_assigns_pixels_in_one_undo_step_and_phases_widget_follows(
    plugin_viewer, dock, qtbot
):
    viewer = plugin_viewer
    result = make_fake_result(shape=(12, 18), bin_factor=2)
    layer = add_result_layers(viewer, result).phases
    phases = dock(viewer, "Phases")
    latent = dock(viewer, "Latent space")
    assert isinstance(phases, PhasesWidget) and isinstance(latent, LatentWidget)
    assert latent.layer is layer
    qtbot.waitUntil(lambda: latent._image_artist is not None, timeout=HANG_MS)  # edits paused
    before = np.array(layer.data, copy=True)
    latent._on_lasso(AROUND_PHASE_2)  # the lasso's callback; target "new phase"
    new = layer.selected_label
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
def test_selected_label_is_highlighted(plugin_viewer, dock, qtbot):
    viewer = plugin_viewer
    result = make_fake_result(shape=(12, 18))
    layer = add_result_layers(viewer, result).phases
    widget = dock(viewer, "Latent space")
    layer.selected_label = 3
    qtbot.waitUntil(
        lambda: widget._highlight is not None and not widget._pending and not widget.canvas.busy,
        timeout=HANG_MS,
    )  # built and rendered in the plot thread
    points = widget.highlighted_points()
    assert len(points) == int((result.labels.reshape(-1)[result.latent_pixels] == 3).sum())
    np.testing.assert_allclose(points.mean(0), CENTRES[3][0], atol=0.2)
    offsets = widget._highlight.get_offsets()
    np.testing.assert_allclose(np.asarray(offsets), points)
