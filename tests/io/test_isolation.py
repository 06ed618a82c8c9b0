"""Reading in a child process: reader crashes, hangs and cancels never reach the caller.

The crashing inputs are regenerated from the real files and the mutations that
``benchmarks/bench_fuzz.py`` recorded (no binary is committed); those tests skip without
../shared.
"""

from __future__ import annotations

import importlib.util
import signal
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from napari_sigma.errors import SpectrumImageError
from napari_sigma.io.readers.reading import (
    read_any,
    read_spectrum_image,
    read_spectrum_image_within,
)
from napari_sigma.io.reading_process import isolation

BENCH_FUZZ = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_fuzz.py"

# (format, real file, case index of bench_fuzz with seed 0): process deaths of the in-process
# reader (rsciio's compiled Bruker decoder: bus error, segmentation faults)
CRASHERS = [
    (".bcf", "bruker/Hitachi_TM3030Plus.bcf", 8),
    (".bcf", "bruker/P45_the_default_job.bcf", 27),
    (".bcf", "bruker/Hitachi_TM3030Plus.bcf", 44),
]


def _bench_fuzz():
    spec = importlib.util.spec_from_file_location("bench_fuzz", BENCH_FUZZ)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("bench_fuzz", module)
    spec.loader.exec_module(module)
    return module


def _mutant(shared: Path, tmp_path: Path, fmt: str, name: str, index: int) -> Path:
    fuzz = _bench_fuzz()
    content = (shared / name).read_bytes()
    rng = np.random.default_rng([0, sum(map(ord, fmt)), index])
    _, ops = fuzz.make_mutation(content, rng)
    path = tmp_path / Path(name).name
    path.write_bytes(fuzz.apply_mutation(content, ops))
    return path


@pytest.mark.parametrize(("fmt", "name", "index"), CRASHERS)
def test_reader_crash_becomes_a_clean_error(
    SHARED_EDS: Path, tmp_path: Path, fmt: str, name: str, index: int
) -> None:
    path = _mutant(SHARED_EDS, tmp_path, fmt, name, index)
    with pytest.raises(SpectrumImageError) as info:
        read_any(path)
    message = str(info.value)
    assert path.name in message
    assert "Bruker Esprit hypermap reader crashed on this file" in message
    assert "probably corrupt" in message


def test_napari_reader_survives_a_crashing_file(SHARED_EDS: Path, tmp_path: Path) -> None:
    from napari_sigma._napari.reader import get_reader

    path = _mutant(SHARED_EDS, tmp_path, *CRASHERS[1])
    reader = get_reader(str(path))
    with pytest.raises(SpectrumImageError, match="crashed on this file"):
        reader(str(path))
    # the worker was restarted: the next file reads
    good = SHARED_EDS / "bruker/16x16_12bit_packed_8bit.bcf"
    assert read_spectrum_image(good).counts.shape == (16, 16, 2048)


def test_isolated_read_equals_in_process_read(SHARED_EDS: Path) -> None:
    path = SHARED_EDS / "bruker/16x16_12bit_packed_8bit.bcf"
    isolated, direct = read_spectrum_image(path), read_spectrum_image(path, isolate=False)
    np.testing.assert_array_equal(isolated.counts, direct.counts)
    assert isolated.energy == direct.energy
    assert isolated.beam_energy == direct.beam_energy
    assert isolated.elements == direct.elements


@pytest.mark.parametrize("chunks", [None, (33, 128, 2048)])
def test_a_large_cube_travels_through_shared_memory(tmp_path: Path, chunks) -> None:
    """Counts above 64 MiB come through /dev/shm: equal, writable, and no file is left behind.
    Row bands (``chunks``) and rsciio's tiles are decoded without HDF5 (io._hdf5_direct)."""
    from napari_sigma.energy import EnergyAxis
    from napari_sigma.io.results.writing import write_hspy
    from napari_sigma.spectrum_image import SpectrumImage

    counts = np.random.default_rng(0).poisson(0.05, (132, 128, 2048)).astype(np.uint16)
    assert counts.nbytes > isolation._SHARED_FILE_MIN_BYTES
    image = SpectrumImage(counts=counts, energy=EnergyAxis(0.0, 0.01, 2048), beam_energy=20.0)
    path = write_hspy(tmp_path / "large.hspy", image, chunks=chunks, compression=None)
    isolated = read_spectrum_image(path)
    np.testing.assert_array_equal(isolated.counts, counts)
    isolated.counts[0, 0, 0] += 1  # private pages: the parent may correct counts in place
    prefix = isolation._shared_file_prefix(isolation._worker.process.pid)
    assert not list(isolation._SHARED_DIR.glob(prefix + "*"))
    within, probe = read_spectrum_image_within(path, 2 * counts.nbytes, counts.nbytes)
    np.testing.assert_array_equal(within.counts, counts)  # one request: open, decide, read
    assert probe["nbytes"] == counts.nbytes and isinstance(within.counts, np.ndarray)
    assert not list(isolation._SHARED_DIR.glob(prefix + "*"))


def test_a_chunked_cube_is_decoded_straight_into_shared_memory(tmp_path: Path) -> None:
    """An eager read of a chunked .hspy decodes into the array it is given (the child's
    /dev/shm file), checked as an eager read is: same counts, same corrections, same notes."""
    from napari_sigma.energy import EnergyAxis
    from napari_sigma.io.readers import reading
    from napari_sigma.io.results.writing import write_hspy
    from napari_sigma.spectrum_image import SpectrumImage

    rng = np.random.default_rng(1)
    counts = rng.poisson(0.5, (132, 128, 1024)).astype(np.float32)
    counts[3, 4, :] = np.nan  # an eager-only correction: NaN pixels set to 0 with a note
    image = SpectrumImage(counts=counts, energy=EnergyAxis(0.0, 0.01, 1024), beam_energy=20.0)
    path = write_hspy(tmp_path / "chunked.hspy", image, chunks=(33, 32, 1024), compression=None)
    given = []

    def allocate(shape, dtype):
        given.append(np.zeros(shape, dtype))
        return given[-1]

    with pytest.warns(UserWarning, match="NaN"):
        direct = read_spectrum_image(path, isolate=False)
    with pytest.warns(UserWarning, match="NaN"):
        placed = reading.read_into("read_spectrum_image", path, allocate)
    assert (
        given
        and reading._plain_hdf5_dataset(read_spectrum_image(path, lazy=True, isolate=False).counts)
        is not None
    )
    np.testing.assert_array_equal(placed.counts, direct.counts)
    assert placed.metadata["warnings"] == direct.metadata["warnings"]
    assert placed.metadata["lazy_from_file"] is False
    with pytest.warns(UserWarning, match="NaN"):
        isolated = read_spectrum_image(path)
    np.testing.assert_array_equal(isolated.counts, direct.counts)
    assert isolated.metadata["warnings"] == direct.metadata["warnings"]
    isolated.counts[0, 0, 0] += 1  # private pages
    prefix = isolation._shared_file_prefix(isolation._worker.process.pid)
    assert not list(isolation._SHARED_DIR.glob(prefix + "*"))
    # one block, an event stream or a small cube: read the usual way
    assert reading.read_into("read_spectrum_image", path, allocate, 2 * counts.nbytes) is None


def test_lazy_isolated_read_gives_dask_counts(SHARED_EDS: Path) -> None:
    path = SHARED_EDS / "bruker/16x16_12bit_packed_8bit.bcf"
    image = read_spectrum_image(path, lazy=True)
    assert hasattr(image.counts, "dask")
    np.testing.assert_array_equal(np.asarray(image.counts), read_spectrum_image(path).counts)


def test_time_limit_stops_the_reader(SHARED_EDS: Path) -> None:
    path = SHARED_EDS / "bruker/P45_the_default_job.bcf"
    limits = isolation.ReadLimits(time_s=0.0, memory_bytes=0)
    with pytest.raises(SpectrumImageError, match="longer than 0 s") as info:
        isolation.read_isolated("read_any", path, limits=limits)
    assert path.name in str(info.value)


def test_memory_limit_gives_a_clean_error(SHARED_EDS: Path) -> None:
    path = SHARED_EDS / "bruker/Hitachi_TM3030Plus.bcf"  # 157 MB of counts
    limits = isolation.ReadLimits(time_s=60.0, memory_bytes=200 * 2**20)
    with pytest.raises(SpectrumImageError, match="not enough memory") as info:
        isolation.read_isolated("read_any", path, limits=limits)
    assert path.name in str(info.value)


def test_cancelling_a_read_stops_it_within_a_second(SHARED_EDS: Path) -> None:
    path = SHARED_EDS / "bruker/Hitachi_TM3030Plus.bcf"
    steps = isolation.read_steps("read_any", path)
    next(steps)  # the read is under way
    child = isolation._worker.process
    start = time.monotonic()
    steps.close()
    # the reading process is killed, not waited for (a read runs to its end: no signal); the
    # wall clock only as a hang bound (a killed process on a loaded machine waits for a core)
    assert child.returncode == -signal.SIGKILL
    assert time.monotonic() - start < 10.0
    assert read_any(SHARED_EDS / "exspy/EDS_SEM_TM002.hspy").counts.shape == (1024,)


def test_a_read_started_inside_another_s_wait_is_refused(SHARED_EDS: Path) -> None:
    """A caller may run other code between a read's waits (napari's reader turns Qt's event
    loop there); a read started there, in the same thread, waited forever for the lock the
    first read holds. It is refused with an error naming both files; the first read goes on."""
    import threading

    first, second = SHARED_EDS / "bruker/Hitachi_TM3030Plus.bcf", SHARED_EDS / "jeol/met03.EDS"
    isolation.shutdown()  # the child's start: the first read surely waits
    outcome: dict = {}

    def nested() -> None:
        steps = isolation.read_steps("read_any", first)
        next(steps)  # waiting for the child, the lock held by this thread
        try:
            read_any(second)
        except SpectrumImageError as error:
            outcome["error"] = str(error)
        for _ in steps:
            pass

    thread = threading.Thread(target=nested, daemon=True)
    thread.start()
    thread.join(60)
    assert not thread.is_alive(), "the nested read waited for the first one's lock"
    error = outcome["error"]
    assert "met03.EDS" in error and "Hitachi_TM3030Plus.bcf is being read" in error
    assert read_any(second).counts.shape == (2048,)  # nothing left held


def test_refusals_need_no_child(tmp_path: Path) -> None:
    isolation.shutdown()
    with pytest.raises(SpectrumImageError, match="file not found"):
        read_any(tmp_path / "absent.bcf")
    assert isolation._worker is None


def test_garbage_is_refused_by_the_child(tmp_path: Path) -> None:
    # an EDAX .spd: no container check refuses noise before the reader (an .hspy's is refused
    # in the caller: no HDF5 signature)
    path = tmp_path / "noise.spd"
    path.write_bytes(np.random.default_rng(1).bytes(2048))
    with pytest.raises(SpectrumImageError, match=r"noise\.spd: could not be read as an EDAX"):
        read_any(path)


def test_a_crashing_reader_fails_alone(SHARED_EDS, tmp_path, capsys):
    from napari_sigma.cli import main
    from napari_sigma.io.results.writing import write_hspy
    from napari_sigma.synthetic.generator import make_synthetic

    crasher = _mutant(SHARED_EDS, tmp_path, *CRASHERS[1])
    image = make_synthetic(seed=0, shape=(20, 20), counts_per_pixel=150, n_channels=1024).image
    good = write_hspy(tmp_path / "good.hspy", image)
    argv = ["run", str(crasher), str(good), "--out", str(tmp_path / "out"), "--latent", "pca"]
    assert main([*argv, "--elements", "Si,Al,Fe,Mg,Ca,K,Na,S,O"]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 1 and "reader crashed on this file" in errors[0]
    assert (tmp_path / "out" / "good" / "phases.tif").exists()


def test_a_new_reading_child_frees_the_files_of_children_that_are_gone(tmp_path: Path) -> None:
    """A reader killed with its parent (a crash, kill -9) leaves its /dev/shm array files:
    memory taken until the machine restarts. The next reading child removes those of
    children that are gone and keeps the files of one that is alive (another napari's)."""
    import os
    import subprocess

    if not isolation._SHARED_DIR.is_dir():
        pytest.skip("no /dev/shm here")
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    left = isolation._SHARED_DIR / (isolation._shared_file_prefix(gone.pid) + "1-placed")
    alive = isolation._SHARED_DIR / (isolation._shared_file_prefix(os.getpid()) + "1-placed")
    for path in (left, alive):
        path.write_bytes(b"\0" * 4096)
    try:
        isolation.shutdown()
        path = tmp_path / "noise.spd"  # read by the child (an .hspy's noise is refused before)
        path.write_bytes(np.random.default_rng(1).bytes(2048))
        with pytest.raises(SpectrumImageError, match=r"noise\.spd"):
            read_any(path)  # the read starts a new child
        assert not left.exists()
        assert alive.exists()
    finally:
        left.unlink(missing_ok=True)
        alive.unlink(missing_ok=True)


def test_at_exit_the_child_is_killed_and_not_waited_for(monkeypatch) -> None:
    """The caller's exit does not wait while the kernel frees the child's memory (up to 0.1 s
    of a 256² run's wall); the child is killed all the same."""
    isolation.shutdown()
    assert isolation.prewarm()
    process = isolation._worker.process
    waits = []
    monkeypatch.setattr(process, "wait", lambda *args, **kwargs: waits.append(args) or 0)
    isolation._stop_at_exit()
    assert isolation._worker is None and waits == []
    deadline = time.monotonic() + 30
    while process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process.returncode == -signal.SIGKILL
