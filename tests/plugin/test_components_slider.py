"""The components layer tiles the slider it shares with the cube's energy axis (qa23): one
component per keV, most of that slider (from K keV to the beam energy, and below 0) showed an
empty canvas when a user showed the components layer after a Run."""

import numpy as np
from test_editing import make_fake_result

from napari_sigma._napari.layers import cube_layer
from napari_sigma._napari.results import add_result_layers


def _shown_component(layer, abundances):
    layer.refresh()
    plane = np.asarray(layer._data_view)
    shown = [k for k in range(abundances.shape[-1]) if np.array_equal(plane, abundances[..., k])]
    return shown[0] if shown else None


def test_every_position_of_the_slider_shows_a_component_in_order(make_napari_viewer):
    viewer = make_napari_viewer()
    result = make_fake_result()
    data, kwargs, _ = cube_layer(result.image)
    viewer.add_image(data, **kwargs)  # the file's cube: the slider's 300 channels
    layer = add_result_layers(viewer, result).components[0]
    layer.visible = True
    channels = result.image.counts.shape[-1]
    assert viewer.dims.ndim == 3 and viewer.dims.nsteps[0] == channels  # no axis added
    # the slider's label (napari takes the last layer's) says it is the energy and the components
    # ("component 47" of 300 channels read as a component number)
    assert viewer.dims.axis_labels[0] == "energy (keV) / component"
    shown = []
    for channel in range(0, channels, 7):
        viewer.dims.set_current_step(0, channel)
        shown.append(_shown_component(layer, result.abundances))
    assert None not in shown  # never an empty canvas
    assert shown == sorted(shown) and set(shown) == set(range(result.abundances.shape[-1]))
    viewer.dims.set_current_step(0, channels - 1)
    assert _shown_component(layer, result.abundances) == result.abundances.shape[-1] - 1


def test_without_a_cube_each_step_is_a_component(make_napari_viewer):
    viewer = make_napari_viewer()
    result = make_fake_result()
    layer = add_result_layers(viewer, result).components[0]
    layer.visible = True
    assert viewer.dims.nsteps[0] == result.abundances.shape[-1]
    viewer.dims.set_current_step(0, 1)
    assert _shown_component(layer, result.abundances) == 1
