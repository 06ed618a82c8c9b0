"""compute.forked: a map shared with a forked child gives the serial map's results and errors,
never waits on a child that fails, and leaves no child behind."""

from __future__ import annotations

import os
import sys
import threading
import time

import numpy as np
import pytest

from napari_sigma.compute import forked
from napari_sigma.compute.forked import forked_map


def _can_fork() -> bool:
    if not sys.platform.startswith("linux") or threading.active_count() != 1:
        return False
    return len(os.sched_getaffinity(0)) >= 2


needs_fork = pytest.mark.skipif(not _can_fork(), reason="Linux, 2+ CPUs, a single thread")


FORKED: list[int] = []


@pytest.fixture
def allowed(monkeypatch):
    """Forked maps allowed; the children forked are recorded in FORKED. Skipped where an
    earlier test left a thread alive (then the map is serial: see the fresh process's test)."""
    if threading.active_count() != 1:
        pytest.skip("another thread is alive in this process")
    monkeypatch.setattr(forked, "_ALLOWED", True)
    monkeypatch.setattr(forked, "_busy", lambda cpus: False)  # idle, however loaded
    fork = os.fork

    def recorded():
        pid = fork()
        if pid:
            FORKED.append(pid)
        return pid

    FORKED.clear()
    monkeypatch.setattr(forked.os, "fork", recorded)


def _slow_pid(item):
    time.sleep(0.05)
    return item * 10, os.getpid()


def _no_children_left() -> bool:
    """Every child the map forked is gone and reaped (not a zombie)."""
    for pid in FORKED:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            continue
        return False
    return True


def test_not_allowed_is_the_serial_map():
    assert list(forked_map(_slow_pid, range(4))) == [(i * 10, os.getpid()) for i in range(4)]


def _child_goes_first(function, mark):
    """``function`` whose first item in the parent waits (20 s at most) until the child has
    started one: the child gets items however loaded the machine."""
    parent = os.getpid()

    def waiting(item):
        if os.getpid() != parent:
            mark.touch()
        elif item == 0:
            deadline = time.monotonic() + 20
            while not mark.exists() and time.monotonic() < deadline:
                time.sleep(0.01)
        return function(item)

    return waiting


@needs_fork
def test_items_are_shared_with_a_child_and_come_back_in_order(allowed, tmp_path):
    found = list(forked_map(_child_goes_first(_slow_pid, tmp_path / "mark"), range(8)))
    assert [value for value, _ in found] == [i * 10 for i in range(8)]
    pids = [pid for _, pid in found]
    assert pids[-1] != os.getpid()  # the child takes from the back
    assert set(pids) <= {os.getpid(), pids[-1]}
    assert pids == sorted(pids, key=lambda pid: pid != os.getpid())  # the parent's first
    assert _no_children_left()


@needs_fork
def test_results_are_the_serial_maps_values(allowed):
    def spectrum(seed):
        rng = np.random.default_rng(seed)
        return {"sum": float(rng.poisson(50.0, 2048).sum()), "mean": rng.normal(size=64)}

    serial = [spectrum(seed) for seed in range(6)]
    shared = list(forked_map(spectrum, range(6)))
    for a, b in zip(serial, shared, strict=True):
        assert a["sum"] == b["sum"]
        np.testing.assert_array_equal(a["mean"], b["mean"], strict=True)


@needs_fork
def test_an_error_in_the_childs_items_is_raised_by_the_parent_at_that_item(allowed):
    parent = os.getpid()

    def failing(item):
        time.sleep(0.02)
        if item == 5:
            raise ValueError(f"item {item} in {'parent' if os.getpid() == parent else 'child'}")
        return item

    each = forked_map(failing, range(6))
    assert [next(each) for _ in range(5)] == list(range(5))
    with pytest.raises(ValueError, match="item 5 in parent"):
        next(each)
    assert FORKED
    assert _no_children_left()


@needs_fork
def test_a_child_that_dies_leaves_its_items_to_the_parent(allowed):
    parent = os.getpid()

    def dying(item):
        if os.getpid() != parent:
            os._exit(3)
        time.sleep(0.02)
        return item, os.getpid()

    assert list(forked_map(dying, range(5))) == [(i, parent) for i in range(5)]
    assert FORKED
    assert _no_children_left()


@needs_fork
def test_a_map_closed_early_kills_and_reaps_its_child(allowed):
    each = forked_map(_slow_pid, range(40))
    assert next(each) == (0, os.getpid())
    each.close()
    assert _no_children_left()


@needs_fork
def test_a_child_slower_than_its_patience_is_not_waited_for(allowed, monkeypatch):
    monkeypatch.setattr(forked, "MIN_WAIT_S", 0.0)
    monkeypatch.setattr(forked, "CHILD_PATIENCE", 0.0)
    parent = os.getpid()

    def stuck(item):
        if os.getpid() != parent:
            time.sleep(60)
        time.sleep(0.02)
        return item, os.getpid()

    started = time.perf_counter()
    assert list(forked_map(stuck, range(4))) == [(i, parent) for i in range(4)]
    assert time.perf_counter() - started < 30
    assert _no_children_left()


@needs_fork
@pytest.mark.parametrize("why", ["a busy machine", "switched off"])
def test_a_busy_machine_or_the_switch_keeps_the_map_serial(allowed, monkeypatch, why):
    if why == "a busy machine":
        monkeypatch.setattr(forked, "_busy", lambda cpus: True)
    else:
        monkeypatch.setenv("NAPARI_SIGMA_FORKED_PHASES", "0")
    assert list(forked_map(_slow_pid, range(4))) == [(i * 10, os.getpid()) for i in range(4)]
    assert not FORKED


def test_another_thread_alive_keeps_the_map_serial(monkeypatch):
    monkeypatch.setattr(forked, "_ALLOWED", True)
    monkeypatch.setattr(forked, "_busy", lambda cpus: False)
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        found = list(forked_map(_slow_pid, range(4)))
    finally:
        stop.set()
        thread.join()
    assert found == [(i * 10, os.getpid()) for i in range(4)]


# A process like the command line's (no napari, no Qt): the children of a pytest process with
# napari imported were seen to stop in SQLite; the command line and its benchmark, the only
# processes that allow forked maps, import neither.
_IN_A_CLI_PROCESS = r"""
import json, os, sys, time
import numpy as np
from napari_sigma.compute import forked
from napari_sigma.compute.forked import forked_map
from napari_sigma.xray import xraydb_direct

forked.allow_forked_maps()
forked._busy = lambda cpus: False  # an idle machine, however loaded the test's
parent = os.getpid()
report = {}

# xraydb: the child queries through a connection of its own (rows read before: kept)
database = xraydb_direct.get_xraydb()
parents = database._connection
mark = sys.argv[1]

def edges(element):
    if os.getpid() != parent:
        open(mark, "w").close()
    elif element == "Ba":  # the parent's first waits for the child's first
        deadline = time.monotonic() + 20
        while not os.path.exists(mark) and time.monotonic() < deadline:
            time.sleep(0.01)
    found = xraydb_direct.xray_edges(element)
    return {k: list(v) for k, v in found.items()}, database._connection is parents, os.getpid()

items = ["Ba", "Pb", "Zr"]
found = list(forked_map(edges, items))
report["edges"] = [e for e, _, _ in found] == [
    {k: list(v) for k, v in xraydb_direct.xray_edges(el).items()} for el in items
]
report["own_connection"] = [own == (pid == parent) for _, own, pid in found]
report["child_took_last"] = found[-1][2] != parent
report["parents_kept"] = database._connection is parents

# the phases of a map, named with a child and serially
from napari_sigma.compute.progress import run_to_completion
from napari_sigma.energy import EnergyAxis
from napari_sigma.minerals.library import composition_of
from napari_sigma.minerals.phases import identify_phases
from napari_sigma.quant.simulate import line_spectrum
from napari_sigma.spectrum_image import SpectrumImage

axis = EnergyAxis(-0.1, 0.01, 1024)
rng = np.random.default_rng(1)
spectra = [line_spectrum(composition_of(f), axis, 15.0)
           for f in ("NaAlSi3O8", "CaAl2Si2O8", "SiO2", "Fe3O4", "PbS", "ZrSiO4")]
labels = np.repeat(np.repeat(np.arange(1, 7).reshape(2, 3), 8, axis=0), 8, axis=1)
means = np.stack([spectra[i - 1] / spectra[i - 1].sum() for i in labels.ravel()])
counts = rng.poisson(means.reshape(16, 24, -1) * 4000).astype(np.float32)
image = SpectrumImage(counts, axis, 15.0)
elements = ["O", "Na", "Al", "Si", "Ca", "Fe"]
forks = []
fork = os.fork
def recorded():
    pid = fork()
    if pid:
        forks.append(pid)
    return pid
os.fork = recorded

def named():
    found = run_to_completion(identify_phases(image, labels, elements, detect_elements=True))
    return repr([(m.phase_id, m.mineral, m.score, m.note, m.qualifier, m.dispersion,
                  None if m.quantification is None else (m.quantification.wt,
                                                         m.quantification.err_wt,
                                                         m.quantification.notes))
                 for m in found])

import pickle
loads = []

class Counted:  # the parent's reads of the child's results
    HIGHEST_PROTOCOL = pickle.HIGHEST_PROTOCOL
    dumps = staticmethod(pickle.dumps)

    @staticmethod
    def loads(payload):
        loads.append(len(payload))
        return pickle.loads(payload)

forked.pickle = Counted
shared = named()
report["forked"] = len(forks)
report["delivered"] = len(loads) >= 1
forked.allow_forked_maps(False)
report["phases_equal"] = shared == named()
print(json.dumps(report))
"""


@needs_fork
def test_in_a_cli_process_children_query_xraydb_and_name_phases_as_serially(tmp_path):
    import json
    import subprocess

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    done = subprocess.run(
        [sys.executable, "-c", _IN_A_CLI_PROCESS, str(tmp_path / "mark")],
        capture_output=True, text=True, env=env, timeout=600, check=True,
    )  # fmt: skip
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report == {
        "edges": True,
        "own_connection": [True, True, True],
        "child_took_last": True,
        "parents_kept": True,
        "forked": 1,
        "delivered": True,
        "phases_equal": True,
    }
