"""The components layer of a run has a slider of its own (qa23): it shared the cube's energy axis,
one component per keV, so that after a Run most of that slider (from K keV to the beam energy,
and below 0) showed an empty canvas when a user showed the components layer."""

import numpy as np
from test_editing import make_fake_result

from napari_sigma._napari.layers import cube_layer
from napari_sigma._napari.results import add_result_layers


def _shown_plane(layer):
    layer.refresh()
    return np.asarray(layer._data_view)


def test_every_component_shows_wherever_the_energy_slider_stands(make_napari_viewer):
    viewer = make_napari_viewer()
    result = make_fake_result()
    data, kwargs, _ = cube_layer(result.image)
    viewer.add_image(data, **kwargs)  # the file's cube: the energy slider (300 channels)
    added = add_result_layers(viewer, result)
    layer = added.components[0]
    layer.visible = True
    k = result.abundances.shape[-1]
    assert viewer.dims.axis_labels[:2] == ("component", "energy (keV)")
    assert viewer.dims.nsteps[0] == k  # component 1..K, nothing else
    channels = result.image.counts.shape[-1]
    assert viewer.dims.nsteps[1] == channels  # the cube's energy slider, unchanged
    for component in range(k):
        viewer.dims.set_current_step(0, component)
        for channel in (0, channels // 2, channels - 1):
            viewer.dims.set_current_step(1, channel)
            np.testing.assert_array_equal(
                _shown_plane(layer), result.abundances[..., component], err_msg=f"{channel=}"
            )


def test_without_a_cube_the_components_still_have_their_slider(make_napari_viewer):
    viewer = make_napari_viewer()
    result = make_fake_result()
    layer = add_result_layers(viewer, result).components[0]
    layer.visible = True
    assert viewer.dims.nsteps[0] == result.abundances.shape[-1]
    viewer.dims.set_current_step(0, 1)
    np.testing.assert_array_equal(_shown_plane(layer), result.abundances[..., 1])
