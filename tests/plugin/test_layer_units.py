"""What a user sees of the files' layers in napari: every element map readable in its own
contrast range, and one set of units across the layers of real files opened side by side
(napari's "Inconsistent units across layers" toast, and no scale bar units, otherwise)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_sigma._napari import state
from sigma_testdata import SHARED_EDS_DIR as DATA

PLUGIN = "napari-sigma-eds"
VELOX = DATA / "emd" / "Test_SI_16x16_215_kx.emd"
PRUNED_EMD = DATA / "emd" / "Test_SI_16x16_ReducedData_215_kx.emd"
MAP_30 = DATA / "bruker" / "30x30_instructively_packed_16bit_compressed.bcf"
TEM = DATA / "bruker" / "test_TEM.bcf"
SPX = DATA / "bruker" / "bruker_nano.spx"
MET03 = DATA / "jeol" / "met03.EDS"
TOAST = "Inconsistent units across layers"

pytestmark = pytest.mark.gui


@pytest.fixture
def shown_viewer(make_napari_viewer, npe2pm):
    """A shown viewer (napari checks the units when its canvas draws) with the plugin."""
    with npe2pm.tmp_plugin(package=PLUGIN):
        yield make_napari_viewer(show=True)


@pytest.fixture
def toasts(monkeypatch):
    """The messages napari's notifications show (its toasts), in order."""
    from napari.utils import notifications

    shown: list[str] = []
    monkeypatch.setattr(
        notifications.notification_manager, "dispatch", lambda note: shown.append(str(note.message))
    )
    return shown


def _drawn(viewer, qtbot):
    viewer.window._qt_viewer.canvas._scene_canvas.update()
    qtbot.wait(50)


def _maps_layer(viewer):
    (maps,) = [layer for layer in viewer.layers if "names" in state.plugin_data(layer)]
    return maps


def test_each_element_map_of_the_file_is_drawn_in_its_own_contrast_range(shown_viewer, qtbot):
    # the Velox file's maps: C 0-71, Ca 0-0.89, O 0-0.56, Cu 0-0.22; in one range (0-71) only
    # C showed, the other three black (qa24's walk)
    viewer = shown_viewer
    viewer.open(str(VELOX), plugin=PLUGIN)
    maps = _maps_layer(viewer)
    maps.visible = True
    planes = np.asarray(maps.data)
    seen = {}
    for channel in range(0, viewer.dims.nsteps[0], 64):
        viewer.dims.set_current_step(0, channel)
        _drawn(viewer, qtbot)
        index = int(np.round(maps.world_to_data(viewer.dims.point)[0]))
        seen[index] = tuple(maps.contrast_limits)
    assert sorted(seen) == list(range(len(planes)))
    for index, limits in seen.items():
        plane = planes[index]
        assert limits == pytest.approx((plane.min(), plane.max())), (index, limits)
    assert max(planes[i].max() for i in seen) / min(planes[i].max() for i in seen) > 100
    # the values napari shows under the cursor stay the file's (no rescaled copy)
    y, x = np.unravel_index(int(np.argmax(planes[-1])), planes[-1].shape)
    viewer.dims.set_current_step(0, viewer.dims.nsteps[0] - 1)
    point = (viewer.dims.point[0], *maps.data_to_world((0, y, x))[1:])
    assert maps.get_value(point, world=True) == pytest.approx(planes[-1].max())


def _spectrum_layer(viewer):
    (layer,) = [layer for layer in viewer.layers if state.role_of(layer) == "spectrum"]
    return layer


def _assert_spectrum_calibrated(layer):
    spectrum = state.plugin_data(layer)["spectrum"]
    energy = spectrum.energy
    assert str(layer.units[0]) == "kiloelectron_volt" and layer.data.shape[0] == energy.size
    for channel in (0, energy.size // 2, energy.size - 1):
        world = layer.data_to_world((channel, 0, 0))[0]
        assert world == pytest.approx(energy.offset + channel * energy.scale)
        assert layer.data[channel, 0, 0] == spectrum.counts[channel]


@pytest.mark.parametrize("spectrum_file", [SPX, PRUNED_EMD, MET03])
def test_a_spectrum_opened_beside_a_map_keeps_one_set_of_units(
    shown_viewer, qtbot, toasts, spectrum_file
):
    viewer = shown_viewer
    viewer.open(str(MAP_30), plugin=PLUGIN)
    _drawn(viewer, qtbot)
    viewer.open(str(spectrum_file), plugin=PLUGIN)
    _drawn(viewer, qtbot)
    # napari's condition for its toast (napari/_vispy/canvas.py, _update_world_units)
    assert viewer.layers.extent.units is not None
    assert not [t for t in toasts if TOAST in t], toasts
    # the map's calibration as read: 1.667 µm pixels, what the scale bar measures in
    total = next(layer for layer in viewer.layers if state.role_of(layer) == "total")
    assert total.scale[-1] == pytest.approx(1.667, rel=2e-3)
    assert str(total.units[-1]) == "micrometer" == str(viewer.layers.units[-1])
    _assert_spectrum_calibrated(_spectrum_layer(viewer))


def test_a_spectrum_opened_first_takes_the_units_of_the_map_opened_after(
    shown_viewer, qtbot, toasts
):
    viewer = shown_viewer
    viewer.open(str(MET03), plugin=PLUGIN)
    _drawn(viewer, qtbot)
    viewer.open(str(TEM), plugin=PLUGIN)  # 0.77 nm pixels
    _drawn(viewer, qtbot)
    assert viewer.layers.extent.units is not None
    assert not [t for t in toasts if TOAST in t], toasts
    spectrum = _spectrum_layer(viewer)
    _assert_spectrum_calibrated(spectrum)
    assert str(spectrum.units[-1]) == "micrometer"
    # its one pixel holds no place beside the map: the view's extent is the map's
    total = next(layer for layer in viewer.layers if state.role_of(layer) == "total")
    np.testing.assert_allclose(viewer.layers.extent.world[:, 1:], total.extent.world)


def test_a_spectrum_opened_alone_reads_keV_on_naparis_slider(shown_viewer, qtbot, toasts):
    viewer = shown_viewer
    viewer.open(str(SPX), plugin=PLUGIN)
    _drawn(viewer, qtbot)
    layer = _spectrum_layer(viewer)
    _assert_spectrum_calibrated(layer)
    assert viewer.dims.axis_labels[0] == "energy (keV)" and layer.visible is False
    assert not [t for t in toasts if TOAST in t], toasts


HITACHI = DATA / "bruker" / "Hitachi_TM3030Plus.bcf"  # no pixel size in the file


@pytest.mark.parametrize("first, second", [(MAP_30, HITACHI), (HITACHI, MAP_30)])
def test_a_map_in_pixels_beside_one_in_microns_is_named_in_one_line(
    shown_viewer, qtbot, toasts, first, second
):
    # no unit is common to pixels and µm (napari drops them all); inventing a pixel size would
    # break the calibration: the file and the reason in one line, beside napari's own toast
    viewer = shown_viewer
    viewer.open(str(first), plugin=PLUGIN)
    _drawn(viewer, qtbot)
    assert not toasts
    viewer.open(str(second), plugin=PLUGIN)
    ours = [t for t in toasts if t.startswith(second.name)]
    assert len(ours) == 1 and "without units" in ours[0] and "\n" not in ours[0], toasts
    assert ("no pixel size" in ours[0]) == (second == HITACHI), ours
    total = next(layer for layer in viewer.layers if layer.name.startswith(HITACHI.stem))
    assert str(total.units[-1]) == "pixel" and tuple(total.scale) == (1, 1)
