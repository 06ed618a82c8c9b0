"""The plugin's reader, writers and sample data: layer data, calibration, round trips, real files."""

from __future__ import annotations

from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import tifffile
from waits import HANG_MS

from napari_sigma._napari import state
from napari_sigma._napari.layers import cube_view
from napari_sigma._napari.reader import get_reader
from napari_sigma._napari.sample_data import TRUTH_LAYER_NAME, synthetic_sample
from napari_sigma._napari.writer import write_image, write_labels
from napari_sigma.errors import SigmaError, SpectrumImageError

DATA = Path("/work/shared/data/eds")
if not DATA.is_dir():
    DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "eds"
PLUGIN = "napari-sigma-eds"
PRUNED_EMD = DATA / "emd" / "Test_SI_16x16_ReducedData_215_kx.emd"
MICRONS = {"micrometer", "µm"}

# file -> (spatial shape, channels, pixel size in µm or None when uncalibrated)
SPECTRUM_IMAGES = {
    "bruker/30x30_instructively_packed_16bit_compressed.bcf": ((30, 30), 2048, 1.667),
    "bruker/P45_the_default_job.bcf": ((75, 100), 2048, 8.74),
    "bruker/Hitachi_TM3030Plus.bcf": ((240, 320), 2048, None),
    "bruker/16x16_12bit_packed_8bit.bcf": ((16, 16), 2048, ...),
    "bruker/over16bit.bcf": ((3, 4), 4096, ...),
    "bruker/test_TEM.bcf": ((64, 64), 2048, 0.00077),
    "emd/Test_SI_16x16_215_kx.emd": ((16, 16), 4096, ...),
    "emd/SI_empty_selection.emd": ((16, 20), 4096, ...),
    "phenom/Elid2Version4.elid": ((16, 16), 2048, ...),
}
SPECTRA = {
    "bruker/bruker_nano.spx": 4096,
    "jeol/met03.EDS": 2048,
    "exspy/EDS_SEM_TM002.hspy": 1024,
    "exspy/EDS_TEM_FePt_nanoparticles.hspy": 992,
}


def _by_role(layers, role):
    return [layer for layer in layers if state.role_of(_meta(layer)) == role]


class _Meta:
    def __init__(self, metadata):
        self.metadata = metadata


def _meta(layer_data):
    return _Meta(layer_data[1]["metadata"])


def _chain_member(error, kind):
    """The first exception of ``kind`` in ``error``'s cause chain, or None."""
    while error is not None and not isinstance(error, kind):
        error = error.__cause__
    return error


# ------------------------------------------------------------------ get_reader


def test_get_reader_refuses_foreign_paths(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    assert get_reader(str(tmp_path / "notes.txt")) is None
    assert get_reader(str(tmp_path)) is None
    bcf = str(DATA / "bruker" / "P45_the_default_job.bcf")
    assert get_reader([bcf, str(tmp_path / "notes.txt")]) is None
    assert callable(get_reader(bcf))
    assert callable(get_reader([bcf, str(DATA / "bruker" / "test_TEM.bcf")]))


def test_reader_gives_total_counts_own_images_and_a_lazy_cube():
    path = DATA / "bruker" / "P45_the_default_job.bcf"
    layers = get_reader(str(path))(str(path))
    (total,) = _by_role(layers, "total")
    (cube,) = _by_role(layers, "cube")
    images = _by_role(layers, "image")
    image = total[1]["metadata"][state.KEY]["spectrum_image"]
    counts = np.asarray(image.counts)
    assert total[0].shape == (75, 100)
    np.testing.assert_allclose(total[0], counts.sum(axis=-1))
    assert total[1]["scale"] == pytest.approx((8.74, 8.74), rel=1e-3)
    assert total[1]["units"] == ("µm", "µm")
    assert len(images) >= 2  # BSE and SE
    for picture in images:
        rows, cols = picture[0].shape
        extent = (rows * picture[1]["scale"][0], cols * picture[1]["scale"][1])
        assert extent == pytest.approx((75 * 8.74, 100 * 8.74), rel=1e-3)
    data, kwargs, kind = cube
    assert kind == "image" and data.shape == (2048, 75, 100)
    assert kwargs["visible"] is False and kwargs["rgb"] is False
    assert kwargs["axis_labels"] == ("energy (keV)", "y", "x")
    assert kwargs["units"] == ("keV", "µm", "µm")
    assert kwargs["scale"] == pytest.approx((0.01, 8.74, 8.74), rel=1e-3)
    assert kwargs["translate"][0] == pytest.approx(image.energy.offset)
    np.testing.assert_array_equal(np.asarray(data[:, 10, 20]), counts[10, 20])
    assert cube[1]["metadata"][state.KEY]["spectrum_image"] is image


@pytest.mark.gui
def test_a_files_element_maps_open_as_one_hidden_layer_beside_its_electron_image(viewer):
    # a Velox file with a HAADF image and four element maps (C, Ca, O, Cu): napari pays ~0.13 s of
    # its main thread per added layer, so the maps come as one (element map, y, x) layer
    path = DATA / "emd" / "Test_SI_16x16_215_kx.emd"
    viewer.open(str(path), plugin=PLUGIN)
    images = [layer for layer in viewer.layers if state.role_of(layer) == "image"]
    assert len(viewer.layers) == 4  # total counts, HAADF, the element maps, the cube
    (haadf,) = [layer for layer in images if layer.ndim == 2]
    (maps,) = [layer for layer in images if layer.ndim == 3]
    assert haadf.name.endswith("HAADF") and haadf.visible
    names = state.plugin_data(maps)["names"]
    assert sorted(names) == ["C", "Ca", "Cu", "O"]
    assert maps.name.endswith(f"element maps ({', '.join(names)})")
    assert maps.visible is False and maps.data.shape == (4, 16, 16)
    image = state.spectrum_image_of(maps)
    for index, name in enumerate(names):  # slice i is the file's map names[i], values unchanged
        np.testing.assert_array_equal(maps.data[index], np.asarray(image.images[name], np.float32))
    total = next(layer for layer in viewer.layers if state.role_of(layer) == "total")
    np.testing.assert_allclose(maps.scale[1:], total.scale)  # the same extent as the map
    assert len({str(u) for u in maps.units[1:]} | {str(u) for u in total.units}) == 1


@pytest.mark.gui
def test_every_position_of_the_energy_slider_shows_one_of_the_files_element_maps(viewer):
    # the maps share the viewer's first axis with the cube's 4096 channels (0-41 keV): one map
    # per keV showed map i within 0.5 keV of i keV only, an empty canvas elsewhere (qa23); now
    # they tile the slider's range in order, every step one map, and no axis is added
    viewer.open(str(DATA / "emd" / "Test_SI_16x16_215_kx.emd"), plugin=PLUGIN)
    (maps,) = [
        layer for layer in viewer.layers if layer.ndim == 3 and "names" in state.plugin_data(layer)
    ]
    maps.visible = True
    planes = np.asarray(maps.data)
    channels = state.spectrum_image_of(maps).counts.shape[-1]
    assert viewer.dims.ndim == 3 and viewer.dims.nsteps[0] == channels
    assert maps.axis_labels[0] == "energy (keV) / element map"
    shown = []
    for channel in [*range(0, channels, 97), channels - 1]:
        viewer.dims.set_current_step(0, channel)
        maps.refresh()
        plane = np.asarray(maps._data_view)
        shown.append(next((i for i, p in enumerate(planes) if np.array_equal(plane, p)), None))
    assert None not in shown  # never an empty canvas
    assert shown == sorted(shown) and set(shown) == set(range(len(planes)))


def test_element_map_names_are_told_from_electron_images():
    from napari_sigma._napari.layers import is_element_map_name

    for name in ("C K", "O K", "Fe K", "Cu", "Fe_Ka", "Si K-alpha", "Cu L", "Ca"):
        assert is_element_map_name(name), name
    for name in ("BSE", "SE", "SEI", "IMG1", "HAADF", "DF", "AsB", "SEM", "Image 1", "Xx K"):
        assert not is_element_map_name(name), name


def test_only_event_streams_and_big_files_are_read_lazily(tmp_path):
    from napari_sigma._napari.reader import LAZY_ABOVE_BYTES, reads_lazily

    assert reads_lazily(DATA / "jeol" / "Sample" / "00_View000" / "View000_0000006.pts")
    assert not reads_lazily(DATA / "emd" / "SI_empty_selection.emd")
    big = tmp_path / "big.bcf"
    with big.open("wb") as handle:
        handle.truncate(LAZY_ABOVE_BYTES + 1)  # sparse file: no disk used
    assert reads_lazily(big)


def test_cube_view_never_copies():
    counts = np.arange(2 * 3 * 5).reshape(2, 3, 5)
    view = cube_view(counts)
    assert view.shape == (5, 2, 3) and np.shares_memory(view, counts)


def test_reader_opens_a_single_spectrum_as_a_hidden_spectrum_layer():
    path = DATA / "bruker" / "bruker_nano.spx"
    (layer,) = get_reader(str(path))(str(path))
    data, kwargs, kind = layer
    spectrum = kwargs["metadata"][state.KEY]["spectrum"]
    assert kind == "image" and data.shape == (4096, 1, 1) and kwargs["visible"] is False
    assert state.role_of(_meta(layer)) == "spectrum"
    np.testing.assert_array_equal(data[:, 0, 0], spectrum.counts)


def test_pruned_velox_file_opens_its_spectrum_with_a_warning(monkeypatch):
    from napari_sigma._napari import reader

    warnings = []
    monkeypatch.setattr(reader, "warn_spectrum_only", lambda path, spectrum: warnings.append(path))
    (layer,) = get_reader(str(PRUNED_EMD))(str(PRUNED_EMD))
    assert state.role_of(_meta(layer)) == "spectrum" and layer[0].shape == (4096, 1, 1)
    assert warnings == [PRUNED_EMD]


def test_reader_raises_a_clear_error_for_a_broken_file(tmp_path):
    broken = tmp_path / "broken.bcf"
    broken.write_bytes(b"this is not a Bruker file" * 40)
    with pytest.raises(SpectrumImageError) as info:
        get_reader(str(broken))(str(broken))
    assert "broken.bcf" in str(info.value) and info.value.cause


def test_the_open_warm_up_is_done_before_napari_gets_the_layers(tmp_path, monkeypatch):
    """napari's one-time costs run in a thread while the file is read; the reader returns (or
    raises) only once that thread is done (napari then builds pint's registry itself)."""
    import threading

    from napari_sigma._napari import reader

    started = []
    real = reader.warm_up_layer_adding

    def recorded(lazy, frozen=False):
        started.append(real(lazy, frozen))
        return started[-1]

    monkeypatch.setattr(reader, "warm_up_layer_adding", recorded)
    path = DATA / "bruker" / "P45_the_default_job.bcf"
    assert get_reader(str(path))(str(path))
    broken = tmp_path / "broken.bcf"
    broken.write_bytes(b"this is not a Bruker file" * 40)
    with pytest.raises(SpectrumImageError):
        get_reader(str(broken))(str(broken))
    assert len(started) == 2 and not any(thread.is_alive() for thread in started)
    assert not any(t.name == "napari-sigma-open-warm-up" for t in threading.enumerate())
    import pint

    assert pint.get_application_registry().Unit("µm") is not None


def test_torch_libraries_are_loaded_without_holding_the_gil():
    """A Python loop in the main thread keeps running while a thread loads torch's libraries
    (``ctypes.CDLL`` held the GIL for the whole load: the loop stopped as long as it lasted).

    Measured as the time the loop's thread was runnable during the load (its CPU plus its wait
    for a core), not its ticks or its CPU: on a loaded machine, niced, the loop may get almost
    no core, but it stays runnable; a loop stopped by the GIL sleeps on it."""
    code = TORCH_LIBRARIES_LOAD.format(load="preload._load_torch_libraries()")
    done = _run_python(code, timeout=120)
    assert done.returncode == 0, done.stderr
    loaded, runnable, wall = done.stdout.split()
    assert loaded == "True"
    # runnable / wall measured 0.95-1.0 (quiet, and 10x niced beside 3 busy processes, load 6);
    # with CDLL 0.07-0.25 (stopped while it loaded)
    assert float(runnable) > 0.7 * float(wall), (runnable, wall)


TORCH_LIBRARIES_LOAD = """
import threading, time
from napari_sigma._napari import preload
span, done = {{}}, threading.Event()
loop = threading.get_native_id()
def runnable():
    with open(f"/proc/self/task/{{loop}}/schedstat") as stat:
        cpu, waited, _ = stat.read().split()
    return (int(cpu) + int(waited)) / 1e9
def load():
    span["runnable"], span["wall"] = runnable(), time.perf_counter()
    {load}
    span["runnable"] = runnable() - span["runnable"]
    span["wall"] = time.perf_counter() - span["wall"]
    done.set()
thread = threading.Thread(target=load)
thread.start()
while not done.is_set():
    pass
thread.join()
loaded = open("/proc/self/maps").read().count("libtorch_python")
print(loaded > 0, span["runnable"], span["wall"])
"""


def test_torch_libraries_loaded_ahead_of_its_import_leave_torch_working():
    """The preload loads torch's libraries (no GIL held) before importing it."""
    code = (
        "import sys; from napari_sigma._napari import preload; preload._load_torch_libraries(); "
        "assert 'torch' not in sys.modules; import torch; "
        "assert float(torch.ones(3).sum()) == 3.0; print('ok')"
    )
    done = _run_python(code, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_the_preload_imports_every_dock_widget_s_module():
    """napari imports a widget contribution's module inside its docking call: when the preload
    has not imported it, the import runs in napari's main thread (the tabbed dock's module and
    the Analysis tab's: 66 ms of the 1024² dock, profiled)."""
    code = (
        "import sys, pathlib, yaml, napari_sigma; from napari_sigma._napari import preload; "
        "assert preload.wait(120); "
        "manifest = pathlib.Path(napari_sigma.__file__).parent / 'napari.yaml'; "
        "names = [c['python_name'].split(':')[0] for c in yaml.safe_load(manifest.read_text())"
        "['contributions']['commands'] if c['id'].endswith('_widget')]; "
        "assert len(names) >= 5, names; missing = [n for n in names if n not in sys.modules]; "
        "assert not missing, missing; print('ok')"
    )
    done = _run_python(code, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_a_separate_dock_built_in_the_tabbed_dock_s_turn_opens():
    """A script docking the tabbed dock and a separate one in one turn of the event loop: the
    tabbed dock's preload thread imported matplotlib while napari's main thread imported the
    Spectrum widget's module: "cannot import name 'Transform' from partially initialized module
    'matplotlib.transforms'", the dock did not open. The separate docks' factories wait for
    the preload's imports when they are under way (fresh interpreter: nothing imported yet)."""
    code = (
        "import napari; viewer = napari.Viewer(show=False); "
        "viewer.window.add_plugin_dock_widget('napari-sigma-eds', 'napari-sigma'); "
        "_, widget = viewer.window.add_plugin_dock_widget("
        "'napari-sigma-eds', 'Spectrum and elements'); "
        "from napari_sigma._napari.spectrum_widget import SpectrumWidget; "
        "assert isinstance(widget, SpectrumWidget), widget; viewer.close(); print('ok')"
    )
    done = _run_python(code, timeout=180)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-3000:]


def test_the_compute_preload_warms_dask_and_the_label_colouring_after_torch(monkeypatch):
    """The first run's worker imported dask.distributed (dask's first compute looks for a
    client) and Run started compiling napari's label colouring beside torch's import: both held
    the GIL in the run's first turns. The compute preload does them, one after the other, after
    torch; what it imported is frozen before the compilation's throw-away layer is made, and what
    the compilation leaves alive (numba's typing, pandas: ~100 thousand objects) after it, so
    that the result's collection does not traverse them."""
    import threading
    import time

    import dask.base

    from napari_sigma._napari import preload, results

    done = threading.Event()
    done.set()
    events = []
    monkeypatch.setattr(preload, "_modules_done", done)
    monkeypatch.setattr(preload, "_prewarm_reading", lambda: events.append("reader"))
    monkeypatch.setattr(preload, "_load_torch_libraries", lambda: events.append("libraries"))
    monkeypatch.setattr(preload, "_import", lambda names: events.append(names))
    monkeypatch.setattr(preload, "_warm_threadpoolctl", lambda: events.append("threadpoolctl"))
    monkeypatch.setattr(preload, "_freeze_long_lived", lambda: events.append("freeze"))
    monkeypatch.setattr(dask.base, "_distributed_available", lambda: events.append("dask"))
    from napari_sigma.compute.background import start_thread

    def compile_in_a_thread() -> None:  # as results.warm_up_labels_drawing does
        events.append("labels")
        start_thread(lambda: time.sleep(0.2) or events.append("compiled"), preload.WARM_UP_THREAD)

    monkeypatch.setattr(results, "warm_up_labels_drawing", compile_in_a_thread)
    preload._import_compute()
    assert events == [
        "reader", "libraries", preload.COMPUTE_MODULES, "threadpoolctl", "dask", "freeze",
        "labels", "compiled", "freeze",
    ]  # fmt: skip


def test_the_preload_starts_the_numba_warm_up_before_its_imports(monkeypatch):
    """An install's first run compiled the analysis' numba kernels in the worker (GIL bursts of
    111 ms to 1 s): the preload, started when napari shows a spectrum image, first starts the
    child process that compiles them into numba's cache (compute._jit.start_warm_up)."""
    import threading

    from napari_sigma._napari import preload
    from napari_sigma.compute import _jit

    events = []
    monkeypatch.setattr(preload, "_modules_done", threading.Event())
    monkeypatch.setattr(_jit, "start_warm_up", lambda: events.append("numba"))
    monkeypatch.setattr(preload, "_import", lambda names: events.append(names))
    monkeypatch.setattr(preload, "_warm_threadpoolctl", lambda: events.append("threadpoolctl"))
    monkeypatch.setattr(preload, "_freeze_long_lived", lambda: events.append("freeze"))
    preload._import_all()
    assert events == ["numba", preload.MODULES, "threadpoolctl", "freeze"]


def test_the_preloaded_modules_are_out_of_the_collectors_reach():
    """Full collections hold the GIL for every tracked object (33-347 ms each in the 1024²
    heartbeat); the preload freezes what it imported (gc.freeze) so they traverse the rest only,
    and no collection runs in the middle of its imports (35-160 ms full collections in the
    preload threads held napari's main thread in the open and dock steps, load 15-19), not even
    one for the label colouring's garbage (77-104 ms of the preload thread's CPU holding the GIL
    at a run's start: its 13.5 thousand objects, 1.7 MB, are frozen instead). The collector is
    back after (a dask slicing after the preload left it on)."""
    code = (
        "import gc, sys, threading; from napari_sigma._napari import preload; seen = []; "
        "gc.callbacks.append(lambda phase, info: phase == 'start' and "
        "seen.append((threading.current_thread().name, info['generation']))); "
        "preload.wait_compute(); assert gc.isenabled(); "
        "assert 'torch' in sys.modules; frozen, tracked = gc.get_freeze_count(), len(gc.get_objects()); "
        "assert frozen > 10 * tracked, (frozen, tracked); "
        "inside = [s for s in seen if s[0].startswith('napari-sigma') and s[1] == 2]; "
        "assert inside == [], inside; import dask.array as da; da.ones(8)[2:5].compute(); "
        "assert gc.isenabled() and gc.get_threshold()[2] < 1000; print('ok')"
    )
    done = _run_python(code, timeout=180)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_the_collector_pauses_nest_and_restore_it():
    """``collector_paused`` blocks may nest and overlap in several threads; full collections
    come back when the last one ends, even through an error; the collector itself stays on
    (a module imported inside may capture ``gc.isenabled()``, as dask's slicing does)."""
    import gc

    from napari_sigma._napari.preload import NO_FULL_COLLECTION, collector_paused

    before = gc.get_threshold()
    with collector_paused():
        assert gc.isenabled() and gc.get_threshold() == (*before[:2], NO_FULL_COLLECTION)
        with pytest.raises(KeyError), collector_paused():
            raise KeyError
        assert gc.get_threshold()[2] == NO_FULL_COLLECTION  # the outer block still runs
    assert gc.get_threshold() == before and gc.isenabled()


@pytest.mark.gui
@pytest.mark.parametrize("docked", [True, False])
def test_a_files_layers_frozen_by_the_preload_are_freed_when_deleted(viewer, qtbot, docked):
    """The preload freezes what is alive when its imports end (gc.freeze), the file the user
    opened first included: frozen, its layers' reference cycles were never collected and the
    cube's memory stayed taken after the user deleted them. The preload starts when the plugin
    reads a file, docked or not: the viewer the file was opened in is watched too."""
    import gc
    import weakref

    from napari_sigma._napari import preload

    viewer.open_sample(PLUGIN, "synthetic")
    if docked:
        _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Spectrum and elements")
        qtbot.waitUntil(lambda: not widget.loading, timeout=30_000)
    (cube,) = [layer for layer in viewer.layers if state.role_of(layer) == "cube"]
    alive = weakref.ref(cube)
    del cube
    preload._freeze_long_lived()  # what the preload thread does when its imports end
    viewer.layers.clear()
    qtbot.wait(100)  # the collection runs at the next turn of the event loop
    gc.collect()
    assert alive() is None


def _run_python(code: str, timeout: float):
    """``code`` run by a fresh interpreter (what it imports is not imported by the tests)."""
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout
    )


# ------------------------------------------------------------------ writers


def test_labels_round_trip_with_calibration(tmp_path):
    from napari_sigma.io.results.export import read_labels_tiff

    labels = np.random.default_rng(0).integers(0, 7, size=(20, 30)).astype(np.int32)
    labels[0, 0] = 1000
    path = tmp_path / "phases.tif"
    meta = {"scale": (0.25, 0.25), "units": ("micrometer", "micrometer"), "name": "phases"}
    assert write_labels(str(path), labels, meta) == [str(path)]
    raw = tifffile.imread(path)
    assert raw.dtype == np.uint16
    np.testing.assert_array_equal(raw, labels)
    back, pixel_size = read_labels_tiff(path)
    np.testing.assert_array_equal(back, labels)
    assert pixel_size == pytest.approx(0.25)


def test_labels_in_nanometres_are_written_in_microns(tmp_path):
    from napari_sigma.io.results.export import read_labels_tiff

    path = tmp_path / "tem.tif"
    write_labels(str(path), np.ones((4, 4), int), {"scale": (0.77, 0.77), "units": ("nm", "nm")})
    assert read_labels_tiff(path)[1] == pytest.approx(0.00077)


def test_labels_beyond_uint16_are_refused(tmp_path):
    labels = np.zeros((4, 4), np.int32)
    labels[1, 1] = 70000
    with pytest.raises(SigmaError, match="65535"):
        write_labels(str(tmp_path / "x.tif"), labels, {"scale": (1, 1)})


def test_image_round_trip_as_float32(tmp_path):
    image = np.random.default_rng(1).normal(size=(12, 9)).astype(np.float64)
    path = tmp_path / "map.tif"
    meta = {"scale": (2.0, 2.0), "units": ("micrometer", "micrometer"), "name": "Fe_Ka"}
    assert write_image(str(path), image, meta) == [str(path)]
    raw = tifffile.imread(path)
    assert raw.dtype == np.float32
    np.testing.assert_array_equal(raw.reshape(image.shape), image.astype(np.float32))


# ------------------------------------------------------------------ sample data


def test_sample_data_has_total_cube_and_hidden_ground_truth():
    from napari_sigma.synthetic.generator import demo_sample

    layers = synthetic_sample()
    (truth,) = [layer for layer in layers if layer[1]["name"] == TRUTH_LAYER_NAME]
    sample = demo_sample()
    data, kwargs, kind = truth
    assert kind == "labels" and kwargs["visible"] is False
    np.testing.assert_array_equal(data, sample.labels)
    tags = kwargs["metadata"][state.KEY]
    assert tags["phase_names"] == list(sample.phase_names)
    assert len(_by_role(layers, "total")) == 1 and len(_by_role(layers, "cube")) == 1
    for layer in layers:
        assert layer[1]["metadata"][state.KEY]["truth"] is tags["truth"]
        assert layer[1]["metadata"][state.KEY]["spectrum_image"] is tags["spectrum_image"]


# ------------------------------------------------------------------ through napari


@pytest.fixture
def viewer(make_napari_viewer, npe2pm):
    with npe2pm.tmp_plugin(package=PLUGIN):
        yield make_napari_viewer()


SEVERAL_MAPS = {"phenom/Elid2Version4.elid": 3}  # files of several spectrum images


@pytest.mark.gui
def test_every_real_file_opens_through_the_plugin(viewer):
    for relative, (shape, channels, pixel_um) in SPECTRUM_IMAGES.items():
        viewer.layers.clear()
        viewer.open(str(DATA / relative), plugin=PLUGIN)
        totals = [layer for layer in viewer.layers if state.role_of(layer) == "total"]
        cubes = [layer for layer in viewer.layers if state.role_of(layer) == "cube"]
        maps = SEVERAL_MAPS.get(relative, 1)  # each map of a file is a spectrum image of its own
        assert len(totals) == len(cubes) == maps, relative
        total = totals[0]
        assert all(la.data.shape == shape for la in totals), relative
        assert all(la.data.shape == (channels, *shape) for la in cubes), relative
        unit = str(total.units[-1])
        if pixel_um is None:
            assert unit == "pixel" and tuple(total.scale) == (1, 1), relative
        else:
            assert unit in MICRONS, relative
            if pixel_um is not ...:
                assert total.scale[-1] == pytest.approx(pixel_um, rel=2e-3), relative
    for relative, channels in SPECTRA.items():
        viewer.layers.clear()
        viewer.open(str(DATA / relative), plugin=PLUGIN)
        (layer,) = viewer.layers
        assert state.role_of(layer) == "spectrum" and layer.data.shape == (channels, 1, 1), relative


@pytest.mark.gui
def test_napari_s_event_loop_turns_while_the_file_is_read(viewer, qtbot):
    """napari calls the reader in its main thread: while the reading process worked (1.2-1.5 s
    on a first JEOL read, its start included) napari was frozen, no repaint and no timer. The
    reader waits in 10 ms slices and turns Qt's event loop in between: a 10 ms timer keeps
    ticking while the read holds the reading process, and the file opens as before."""
    from qtpy.QtCore import QTimer

    from napari_sigma.io.reading_process import isolation

    isolation.shutdown()  # the read starts the reading process: it surely takes a while
    ticks = []
    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(lambda: ticks.append(isolation._lock.locked()))
    timer.start()
    try:
        viewer.open(str(DATA / "bruker" / "P45_the_default_job.bcf"), plugin=PLUGIN)
    finally:
        timer.stop()
    assert sum(ticks) >= 10, ticks  # 0 when the read blocked the event loop
    (total,) = [layer for layer in viewer.layers if state.role_of(layer) == "total"]
    assert total.data.shape == (75, 100)


@pytest.mark.gui
def test_the_preload_runs_while_the_file_is_read(viewer, qtbot, monkeypatch):
    """The plugin's imports for the dock (matplotlib, the tabs) start with the read, while
    napari's main thread only waits for the reading process. Started at the event-loop turn
    after the layers were made, they ran inside napari's open (napari turns the loop itself
    while it adds layers) and held the GIL while napari added and drew them (179 ms of the
    preload's CPU in a JEOL open's longest block)."""
    from napari_sigma._napari import preload

    calls = []

    def start():
        calls.append(len(viewer.layers))
        preload._state["thread"] = "started"

    monkeypatch.setitem(preload._state, "thread", None)  # as in a session that read no file
    monkeypatch.setattr(preload, "start", start)
    viewer.open(str(DATA / "bruker" / "P45_the_default_job.bcf"), plugin=PLUGIN)
    qtbot.wait(50)
    assert calls == [0]  # once, before napari added any of the file's layers


@pytest.mark.gui
def test_without_a_reading_process_the_preload_starts_once_napari_s_open_has_returned(
    viewer, qtbot, monkeypatch
):
    """Read in napari's process (``NAPARI_SIGMA_ISOLATE=0``) the file leaves napari no wait to
    fill: the imports start at the event-loop turn after napari's open has returned, not inside
    it (napari turns the loop while it adds layers)."""
    from napari.utils.progress import progress

    from napari_sigma._napari import preload

    monkeypatch.setenv("NAPARI_SIGMA_ISOLATE", "0")
    calls = []
    monkeypatch.setitem(preload._state, "thread", None)  # as in a session that read no file
    monkeypatch.setattr(preload, "start", lambda: calls.append(len(progress._all_instances)))
    viewer.open(str(DATA / "bruker" / "P45_the_default_job.bcf"), plugin=PLUGIN)
    assert calls == []  # not inside the open
    qtbot.waitUntil(lambda: bool(calls), timeout=HANG_MS)
    assert calls == [0]  # once, with napari's "Opening Files" progress closed


CLOSE_DURING_READ = """
import json, os, sys
import napari
from qtpy.QtCore import QTimer
from napari_sigma.io.reading_process import isolation
from napari_sigma.io.readers.reading import read_any

path, report = sys.argv[1], {"runs": [], "children": []}

def close_during_read(how):
    viewer = napari.Viewer(show=True)
    isolation.shutdown()  # the read starts the reading process: it surely lasts
    run = {"how": how, "closed_during_read": False}
    timer = QTimer()
    timer.setInterval(5)

    def tick():  # the first turn of the event loop inside the read: the user closes napari
        worker = isolation._worker
        if isolation._holder["thread"] is None or worker is None or not worker.alive():
            return
        timer.stop()
        report["children"].append(worker.process.pid)
        viewer.close() if how == "viewer.close" else viewer.window._qt_window.close()
        run["closed_during_read"] = isolation._holder["thread"] is not None

    timer.timeout.connect(tick)
    timer.start()
    try:
        run["layers"] = len(viewer.open(path, plugin="napari-sigma-eds"))
    except Exception as error:  # reported, and the test fails on it
        run["error"] = repr(error)
    timer.stop()
    run["viewer_layers"] = len(viewer.layers)
    pids = report["children"][-1:]
    run["child_alive_after_open"] = [os.path.exists(f"/proc/{pid}") for pid in pids]
    report["runs"].append(run)

close_during_read("viewer.close")
close_during_read("window close")
report["read_after"] = list(read_any(path).counts.shape)  # the reading process is free again
print("REPORT " + json.dumps(report), flush=True)
"""


@pytest.mark.gui
def test_napari_closed_during_a_files_read_exits_cleanly_and_the_reading_process_ends(tmp_path):
    """The reader turns Qt's event loop while it waits for the reading process; a window close
    is not user input, so a user (or a script) closing napari in the middle of a read has it
    processed inside the read. Closed by ``viewer.close()`` and by the window's close (its close
    button), each at the first turn inside the read: no traceback, the open returns without
    adding layers to the closed viewer, the reading process stops with the read, a later read
    works, the process exits 0. Before, the window's close made napari add the layers to a
    canvas without its OpenGL context (an AttributeError out of vispy)."""
    import json
    import subprocess
    import sys

    script = tmp_path / "close_during_read.py"
    script.write_text(CLOSE_DURING_READ)
    done = subprocess.run(
        [sys.executable, str(script), str(DATA / "bruker" / "P45_the_default_job.bcf")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    (line,) = [line for line in done.stdout.splitlines() if line.startswith("REPORT ")]
    report = json.loads(line.removeprefix("REPORT "))
    assert [run["how"] for run in report["runs"]] == ["viewer.close", "window close"]
    for run in report["runs"]:
        assert run["closed_during_read"], run  # the close came while the child was reading
        assert "error" not in run, run  # napari's open returned
        assert run["layers"] == 0 and run["viewer_layers"] == 0, run  # nothing added to it
        assert run["child_alive_after_open"] == [False], run  # the read stopped, its child too
    assert report["read_after"] == [75, 100, 2048]


@pytest.mark.gui
def test_a_broken_file_fails_clearly_and_napari_stays_up(viewer, tmp_path):
    broken = tmp_path / "broken.emd"
    broken.write_bytes(b"\x89HDF but not really" * 50)
    with pytest.raises(Exception) as info:  # SpectrumImageError, or napari's wrapper of it
        viewer.open(str(broken), plugin=PLUGIN)
    cause = _chain_member(info.value, SpectrumImageError)
    assert cause is not None, repr(info.value)
    assert "broken.emd" in str(cause)
    viewer.add_image(np.zeros((4, 4)))
    assert len(viewer.layers) == 1


# one real file of each format the reader takes; how much of it a truncated copy keeps
DAMAGED_FORMATS = {
    "bruker/30x30_instructively_packed_16bit_compressed.bcf": 0.5,
    "bruker/bruker_nano.spx": 0.5,
    "emd/Test_SI_16x16_215_kx.emd": 0.5,
    "exspy/EDS_SEM_TM002.hspy": 0.5,
    "jeol/met03.EDS": 0.5,
    "phenom/Elid2Version4.elid": 0.5,
    # cut inside its header: a .pts cut in its event stream opens the sweeps before the cut,
    # with a warning naming the file (tests/io/test_events.py)
    "jeol/Sample/00_View000/View000_0000006.pts": 0.006,
    "jeol/rawdata.ASW": 0.5,  # the project file, beside a whole copy of its Sample folder
}


def _damaged_copies(relative: str, folder: Path) -> list[tuple[str, Path]]:
    """A truncated and a fuzzed copy of a real file (its neighbours copied for a project)."""
    import shutil

    source = DATA / relative
    content = source.read_bytes()
    fuzzed = np.frombuffer(content, np.uint8).copy()
    rng = np.random.default_rng(0)
    where = rng.integers(min(256, len(content) // 4), len(content), max(8, len(content) // 200))
    fuzzed[where] = rng.integers(0, 256, len(where))
    copies = []
    for kind, data in (("truncated", content[: int(len(content) * DAMAGED_FORMATS[relative])]),
                       ("fuzzed", fuzzed.tobytes())):  # fmt: skip
        path = folder / kind / source.name
        path.parent.mkdir(parents=True)
        if relative.endswith(".ASW"):
            shutil.copytree(source.parent / "Sample", path.parent / "Sample")
        path.write_bytes(data)
        copies.append((kind, path))
    return copies


@pytest.mark.gui
def test_damaged_copies_of_every_format_fail_in_one_line_naming_the_file(viewer, tmp_path):
    """A truncated and a fuzzed copy of each format opened in napari: a truncated one fails with
    one line naming the file; a fuzzed one fails the same way or opens (fuzzed counts are still
    counts); no other exception, no hang, and napari stays up."""
    outcomes = {}
    for n, relative in enumerate(DAMAGED_FORMATS):
        for kind, path in _damaged_copies(relative, tmp_path / str(n)):
            try:
                viewer.open(str(path), plugin=PLUGIN)
                outcomes[relative, kind] = "opened"
            except Exception as error:  # SpectrumImageError, or napari's wrapper of it
                cause = _chain_member(error, SpectrumImageError)
                assert cause is not None, (relative, kind, repr(error))
                message = str(cause)
                assert path.name in message and "\n" not in message, (relative, kind, message)
                assert path.name in str(error), (relative, kind, str(error))
                outcomes[relative, kind] = "refused"
            viewer.layers.clear()
    assert all(outcomes[relative, "truncated"] == "refused" for relative in DAMAGED_FORMATS)
    viewer.add_image(np.zeros((4, 4)))
    assert len(viewer.layers) == 1


@pytest.mark.gui
def test_pruned_velox_file_opens_as_a_spectrum_in_napari(viewer):
    viewer.open(str(PRUNED_EMD), plugin=PLUGIN)
    (layer,) = viewer.layers
    assert state.role_of(layer) == "spectrum"


@pytest.mark.gui
def test_run_on_a_file_of_one_spectrum_says_a_spectrum_image_is_needed(viewer, dock, monkeypatch):
    """A user opens a single spectrum (bruker_nano.spx) and presses Run: there is no layer to
    choose, and "choose a spectrum image layer first" sent them looking for one."""
    import napari.utils.notifications as notifications

    viewer.open(str(DATA / "bruker" / "bruker_nano.spx"), plugin=PLUGIN)
    widget = dock(viewer, "Phase analysis")
    messages = []
    monkeypatch.setattr(notifications, "show_error", messages.append)
    assert widget.run() is None and len(viewer.layers) == 1
    assert messages == [
        "Phase analysis needs a spectrum image (a map with a spectrum per pixel); no layer "
        "holds one (a single spectrum shows in the Spectrum tab)"
    ]


@pytest.mark.gui
def test_jeol_pts_cube_opens_lazily(viewer):
    pts = DATA / "jeol" / "Sample" / "00_View000" / "View000_0000006.pts"
    viewer.open(str(pts), plugin=PLUGIN)
    (cube,) = [layer for layer in viewer.layers if state.role_of(layer) == "cube"]
    assert cube.data.shape == (4096, 512, 512)
    assert isinstance(cube.data, da.Array)  # 2 GiB dense: never loaded whole


@pytest.mark.gui
def test_sample_data_opens_in_napari(viewer):
    viewer.open_sample(PLUGIN, "synthetic")
    names = [layer.name for layer in viewer.layers]
    assert TRUTH_LAYER_NAME in names
    truth = viewer.layers[TRUTH_LAYER_NAME]
    assert truth.visible is False and str(truth.units[-1]) in MICRONS


@pytest.mark.gui
def test_napari_saves_labels_with_the_plugin_writer(viewer, tmp_path):
    from napari.plugins.io import save_layers

    from napari_sigma.io.results.export import read_labels_tiff

    labels = np.arange(12, dtype=np.int32).reshape(3, 4)
    layer = viewer.add_labels(labels, scale=(0.5, 0.5), units="µm")
    path = tmp_path / "saved.tif"
    save_layers(str(path), [layer], plugin=PLUGIN)
    back, pixel_size = read_labels_tiff(path)
    np.testing.assert_array_equal(back, labels)
    assert pixel_size == pytest.approx(0.5)


def test_reader_shows_the_data_corrections_once(tmp_path, monkeypatch):
    from dataclasses import replace

    import napari.utils.notifications as notifications

    from napari_sigma.energy import EnergyAxis
    from napari_sigma.io.results.writing import write_hspy
    from napari_sigma.spectrum_image import SpectrumImage

    counts = np.random.default_rng(0).poisson(3.0, size=(16, 16, 256)).astype(np.float32)
    counts[2, 3, 7] = np.nan
    image = SpectrumImage(counts=counts, energy=EnergyAxis(-0.1, 0.01, 256), beam_energy=None)
    path = write_hspy(tmp_path / "odd.hspy", replace(image, title="odd"))
    shown = []
    monkeypatch.setattr(notifications, "show_warning", shown.append)
    layers = get_reader(str(path))(str(path))
    assert layers
    assert len(shown) == 2 and all(text.startswith("odd.hspy: ") for text in shown)
    assert any("NaN or infinite counts in 1 pixels" in text for text in shown)
    assert any("beam energy missing: assumed 20 kV" in text for text in shown)


def test_each_map_of_a_file_of_several_opens_as_its_own_spectrum_image(viewer, monkeypatch):
    """Elid2Version4.elid holds three maps; napari showed the first and said nothing of the
    other two (twentieth session: a note named them). Each opens now as a spectrum image of its
    own (its layers named after the map), said in one line."""
    import napari.utils.notifications as notifications

    shown, warned = [], []
    monkeypatch.setattr(notifications, "show_info", shown.append)
    monkeypatch.setattr(notifications, "show_warning", warned.append)
    viewer.open(str(DATA / "phenom" / "Elid2Version4.elid"), plugin=PLUGIN)
    assert len(shown) == 1 and warned == [], (shown, warned)
    maps = ("Image 1, Map 3", "Image 1, Map 6", "Image 1, Map 1")
    assert shown[0].startswith("Elid2Version4.elid: the file holds 3 spectrum images, each opened")
    images = [state.spectrum_image_of(la) for la in viewer.layers if state.role_of(la) == "cube"]
    assert [image.title for image in images] == [f"Elid2Version4 ({name})" for name in maps]
    assert [image.metadata["map_index"] for image in images] == [0, 1, 2]
    assert all(f"'Elid2Version4 ({name})'" in shown[0] for name in maps)
    totals = [np.asarray(image.counts).sum() for image in images]
    assert len(set(totals)) == 3  # three different maps, not one three times
    names = [layer.name for layer in viewer.layers]
    assert len(set(names)) == len(names)
    # each map its own area (the third's pixel is 2.03 µm, the others' 1.22): only the first
    # map's layers are shown, not three images on top of each other
    shown_maps = {state.spectrum_image_of(la).title for la in viewer.layers if la.visible}
    assert shown_maps == {f"Elid2Version4 ({maps[0]})"}
    assert "the first is shown, the others' layers are hidden" in shown[0]


def test_reader_refuses_a_cube_of_nan_naming_it(tmp_path):
    from napari_sigma.energy import EnergyAxis
    from napari_sigma.io.results.writing import write_hspy
    from napari_sigma.spectrum_image import SpectrumImage

    counts = np.full((4, 4, 64), np.nan, np.float32)
    image = SpectrumImage(counts=counts, energy=EnergyAxis(-0.1, 0.01, 64), beam_energy=15.0)
    path = write_hspy(tmp_path / "nan.hspy", image)
    with pytest.raises(SpectrumImageError, match=r"nan\.hspy: 16 of 16 pixels hold NaN"):
        get_reader(str(path))(str(path))
