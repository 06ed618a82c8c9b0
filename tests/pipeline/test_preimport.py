"""The analysis's modules imported in a background thread while ``napari-sigma run`` reads."""

import json
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

from napari_sigma.pipeline import preimport


@pytest.fixture(autouse=True)
def _unfrozen():
    """The objects a test's import thread froze are put back in the collector's reach."""
    yield
    preimport.unfreeze_collections()


@pytest.fixture
def fake_modules(tmp_path, monkeypatch):
    """Modules on a temporary path that note the thread importing them (one fails)."""
    for name in ("sigma_fake_a", "sigma_fake_b"):
        (tmp_path / f"{name}.py").write_text(
            "import threading\nTHREAD = threading.current_thread().name\n"
        )
    (tmp_path / "sigma_fake_bad.py").write_text("raise RuntimeError('broken on import')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield ("sigma_fake_a", "sigma_fake_bad", "sigma_fake_b")
    for name in ("sigma_fake_a", "sigma_fake_b", "sigma_fake_bad"):
        sys.modules.pop(name, None)


def test_the_modules_are_imported_in_a_thread_the_caller_waits_for(fake_modules):
    thread = preimport.start_importing(fake_modules)
    assert thread is not None and thread.name == preimport.THREAD_NAME
    preimport.finish_importing(thread)
    assert not thread.is_alive()
    # a module that fails is left for the caller's own import (which raises it there)
    assert "sigma_fake_bad" not in sys.modules
    assert sys.modules["sigma_fake_a"].THREAD == preimport.THREAD_NAME
    assert sys.modules["sigma_fake_b"].THREAD == preimport.THREAD_NAME  # after the failure
    with pytest.raises(RuntimeError, match="broken on import"):
        __import__("sigma_fake_bad")
    # the read's own modules were imported before the thread started
    assert all(name in sys.modules for name in preimport.READ_MODULES)


def test_nothing_is_started_off_the_main_thread_on_one_core_or_when_imported(
    fake_modules, monkeypatch
):
    found = []
    worker = threading.Thread(target=lambda: found.append(preimport.start_importing(fake_modules)))
    worker.start()
    worker.join()
    assert found == [None]  # napari's worker: the viewer's thread may be importing
    assert preimport.start_importing(("numpy", "napari_sigma.pipeline.preimport")) is None
    from napari_sigma.compute import blocks

    monkeypatch.setattr(blocks, "usable_cores", lambda: 1)
    assert preimport.start_importing(fake_modules) is None
    assert "sigma_fake_a" not in sys.modules
    preimport.finish_importing(None)  # nothing to wait for


def test_the_cli_reads_while_the_thread_imports_and_waits_before_the_analysis(
    monkeypatch, tmp_path
):
    from napari_sigma import cli
    from napari_sigma.compute import chunks

    calls = []

    class Thread:
        def join(self):
            calls.append("joined")

    def start(compiled_code=False):
        calls.append(f"start {compiled_code}")
        return Thread()

    monkeypatch.setattr(preimport, "start_importing", start)

    def read(path, limit, arriving=False, map_index=0):  # arriving: rows come meanwhile
        return calls.append("read arriving" if arriving else "read") or "image"

    monkeypatch.setattr(chunks, "read_within", read)

    def analyse(image, settings, out):
        calls.append(f"analyse {image}")
        raise cli.SigmaError("stop here")

    monkeypatch.setattr(cli, "_analyse_and_export", analyse)
    import gc

    gc.freeze()  # as the thread leaves the objects of its imports
    outcome = cli.run_one(tmp_path / "x.hspy", None, tmp_path / "out")
    assert calls == ["start False", "read", "joined", "analyse image"]
    assert outcome.status == "failed"
    assert gc.get_freeze_count() == 0  # back in the collector's reach once the input is done
    calls.clear()  # under a memory limit of the caller's the read may import dask: no thread
    cli.run_one(tmp_path / "x.hspy", None, tmp_path / "out", limit=2**30)
    assert calls == ["read", "analyse image"]
    calls.clear()  # napari-sigma run's default limit: the thread; numba too for a large file
    big = tmp_path / "big.hspy"
    with open(big, "wb") as file:
        file.truncate(preimport.COMPILED_CODE_FILE_BYTES)  # sparse: no disk used
    cli.run_one(big, None, tmp_path / "out", limit=2**30, import_meanwhile=True)
    assert calls == ["start True", "read arriving", "joined", "analyse image"]
    calls.clear()  # NAPARI_SIGMA_ARRIVING=0: the whole cube read first (A/B timings)
    monkeypatch.setenv("NAPARI_SIGMA_ARRIVING", "0")
    cli.run_one(big, None, tmp_path / "out", limit=2**30, import_meanwhile=True)
    assert calls == ["start True", "read", "joined", "analyse image"]
    monkeypatch.delenv("NAPARI_SIGMA_ARRIVING")
    calls.clear()  # a read in this process (isolation off) imports its reader: no thread
    monkeypatch.setenv("NAPARI_SIGMA_ISOLATE", "0")
    cli.run_one(big, None, tmp_path / "out", import_meanwhile=True)
    assert calls == ["read", "analyse image"]


def test_the_command_imports_meanwhile_under_its_default_limit_only(monkeypatch, tmp_path):
    from napari_sigma import cli

    seen = []
    monkeypatch.setattr(
        cli,
        "run_one",
        lambda path, s, out, limit, meanwhile, map_index=0: (
            seen.append((limit, meanwhile)) or cli.Outcome(path, "ok", "")
        ),
    )
    monkeypatch.setattr(cli, "build_settings", lambda args: None)
    path = tmp_path / "x.hspy"
    cli.command_run(cli.make_parser().parse_args(["run", str(path), "--out", str(tmp_path)]))
    cli.command_run(
        cli.make_parser().parse_args(["run", str(path), "--out", str(tmp_path),
                                      "--memory-limit", "2GB"])
    )  # fmt: skip
    assert seen[0][0] is not None and seen[0][1] is True  # the default limit
    assert seen[1] == (2 * 10**9, False)


def test_the_thread_loads_the_compiled_code_only_while_the_read_goes_on(monkeypatch):
    """``compiled_code``: after its imports the thread loads numba's compiled code
    (``abundances.load_compiled_code``) unless the read is done by then; the wait for the
    thread is the join (no load starts after it)."""
    from napari_sigma.unmixing import abundances

    loads = []
    release = threading.Event()

    def load():
        loads.append(threading.current_thread().name)
        return True

    monkeypatch.setattr(abundances, "load_compiled_code", load)
    # the read still going when the imports end: the thread loads the code
    thread = preimport.start_importing(("sigma_no_such_module_a",), compiled_code=True)
    thread.join()
    preimport.finish_importing(thread)
    assert loads == [preimport.THREAD_NAME]
    # the read done first: no load
    loads.clear()
    original = preimport._import

    def slow_import(*args):
        release.wait(10)
        original(*args)

    monkeypatch.setattr(preimport, "_import", slow_import)
    thread = preimport.start_importing(("sigma_no_such_module_b",), compiled_code=True)
    finishing = threading.Thread(target=preimport.finish_importing, args=(thread,))
    finishing.start()
    while thread in preimport._READ_DONE:  # the read is done: the event set, then the join
        time.sleep(0.001)
    release.set()
    finishing.join()
    assert not thread.is_alive() and loads == []
    # without compiled_code: never
    thread = preimport.start_importing(("sigma_no_such_module_c",))
    preimport.finish_importing(thread)
    assert loads == []
    assert preimport._READ_DONE == {}


@pytest.mark.parametrize(
    ("limit", "compiled", "lazy"),
    [(None, False, False), (10**9, True, False), (100_000, True, True)],
    ids=["no-limit", "default-limit-with-numba", "lazy-under-limit"],
)
def test_a_real_read_imports_nothing_in_the_main_thread_while_the_thread_runs(
    tmp_path, limit, compiled, lazy
):
    """A fresh process (nothing imported yet): the main thread reads an ``.hspy`` file (in
    the reading child, as the CLI does) while the thread imports; every import the main thread
    makes meanwhile is recorded (none expected), and the analysis's modules are there after.
    With ``compiled``, the thread also loads numba's compiled code (while the read goes on, or
    not at all). Under a limit the cube exceeds (73 KB, rows of 6 KB, a 100 KB limit) the read
    is lazy: the parent opens the file itself, after waiting for the thread."""
    from napari_sigma.energy import EnergyAxis
    from napari_sigma.io.results.writing import write_hspy
    from napari_sigma.spectrum_image import SpectrumImage

    counts = np.random.default_rng(0).poisson(2.0, (12, 12, 256)).astype(np.uint16)
    image = SpectrumImage(counts=counts, energy=EnergyAxis(0.0, 0.01, 256), beam_energy=15.0)
    path = write_hspy(tmp_path / "small.hspy", image, chunks=(1, 12, 256))
    script = textwrap.dedent(
        f"""
        import importlib.abc, json, sys, threading
        from pathlib import Path
        seen = []
        class Recorder(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                running = any(t.name == "{preimport.THREAD_NAME}" for t in threading.enumerate())
                seen.append((threading.current_thread().name, name, running))
        sys.meta_path.insert(0, Recorder())
        from napari_sigma.compute.chunks import read_within
        from napari_sigma.pipeline import preimport
        thread = preimport.start_importing(compiled_code={compiled!r})
        image = read_within(Path({str(path)!r}), {limit!r})
        preimport.finish_importing(thread)
        main = threading.main_thread().name
        print(json.dumps({{
            "started": thread is not None,
            "main_meanwhile": [n for t, n, r in seen if t == main and r],
            "by_thread": sum(t == preimport.THREAD_NAME for t, n, r in seen),
            "missing": [n for n in preimport.ANALYSIS_MODULES + preimport.EXPORT_MODULES
                        if n not in sys.modules],
            "shape": list(image.shape),
            "lazy": hasattr(image.counts, "dask"),
        }}))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=True
    )
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["started"] and report["shape"] == [12, 12]
    assert report["lazy"] is lazy
    assert report["main_meanwhile"] == []
    assert report["by_thread"] > 50
    assert report["missing"] == []


def test_the_report_drawing_imports_nothing_of_matplotlib_after_the_thread(tmp_path):
    """``napari-sigma run`` draws report.png in its own process: with the thread's modules
    imported (what :func:`~napari_sigma.pipeline.preimport.start_importing` imports), drawing a
    report imports no module of matplotlib or of this package any more (a fresh process)."""
    from pathlib import Path

    tests_io = Path(__file__).resolve().parents[1] / "io"
    script = textwrap.dedent(
        f"""
        import importlib, json, sys
        sys.path.insert(0, {str(tests_io)!r})
        from napari_sigma.pipeline import preimport
        for name in preimport.ANALYSIS_MODULES + preimport.EXPORT_MODULES:
            importlib.import_module(name)
        from test_export import fake_result
        result = fake_result()
        before = set(sys.modules)
        from napari_sigma.io.results.report import render_report
        render_report(result, {str(tmp_path / "report.png")!r})
        print(json.dumps(sorted(set(sys.modules) - before)))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=True
    )
    new = json.loads(done.stdout.strip().splitlines()[-1])
    assert (tmp_path / "report.png").stat().st_size > 0
    assert [n for n in new if n.split(".")[0] in ("matplotlib", "napari_sigma")] == []


def test_numpys_developer_tools_load_on_first_use_only():
    """A fresh process: with numpy's developer tools deferred, importing scipy's subpackages
    (whose array-API layer touches every numpy name) runs neither of them; their first use (an
    attribute, a ``from`` import, an ``import`` statement, ``help()``) loads the real modules
    and works as before. Only ``napari-sigma run`` and the speed benchmark's worker call
    ``start_importing`` (napari's process never does: off the main thread it returns first)."""
    script = textwrap.dedent(
        """
        import json, sys
        import numpy
        from napari_sigma.pipeline import preimport
        deferred = preimport.defer_numpy_tools()
        import scipy.ndimage, scipy.optimize
        ran = [n for n in ("numpy.testing._private.utils", "numpy.f2py.crackfortran")
               if n in sys.modules]
        again = preimport.defer_numpy_tools()
        numpy.testing.assert_allclose([1.0, 2.0], [1.0, 2.0])
        from numpy.testing import assert_array_equal
        assert_array_equal(numpy.arange(3), [0, 1, 2])
        import numpy.f2py, pydoc
        helped = "assert_allclose" in pydoc.render_doc(numpy.testing)  # help() as before
        print(json.dumps({
            "deferred": deferred, "ran_before_use": ran, "again": again,
            "loaded": "numpy.testing._private.utils" in sys.modules,
            "same": numpy.testing is sys.modules["numpy.testing"],
            "f2py": callable(numpy.f2py.run_main), "help": helped,
        }))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=True
    )
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["deferred"] == list(preimport.DEFERRED_NUMPY_MODULES)
    assert report["ran_before_use"] == []
    assert report["again"] == []  # registered once
    assert report["loaded"] and report["same"] and report["f2py"] and report["help"]


def test_the_thread_imports_without_garbage_collections_and_leaves_the_collector_on(
    tmp_path, monkeypatch
):
    import gc

    # a module that makes many tracked objects (enough for dozens of young collections)
    (tmp_path / "sigma_fake_many.py").write_text(
        "import threading\nTHREAD = threading.current_thread().name\n"
        "KEPT = [{'i': i, 'j': [i]} for i in range(40000)]\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    seen = []

    def note(phase, info):
        if phase == "start":
            seen.append(threading.current_thread().name)

    gc.callbacks.append(note)
    try:
        assert gc.isenabled()
        thread = preimport.start_importing(("sigma_fake_many",))
        preimport.finish_importing(thread)
        assert gc.isenabled()
        # its objects are frozen: out of later collections until the caller unfreezes them
        assert gc.get_freeze_count() > 80000
        module = sys.modules["sigma_fake_many"]
        tracked = {id(item) for item in gc.get_objects()}
        assert id(module.KEPT) not in tracked and id(module.KEPT[-1]) not in tracked
    finally:
        gc.callbacks.remove(note)
        preimport.unfreeze_collections()
        module = sys.modules.pop("sigma_fake_many", None)
    assert module is not None and module.THREAD == preimport.THREAD_NAME
    assert preimport.THREAD_NAME not in seen  # no collection while the thread imported
    # unfrozen: in the collector's oldest generation, reached by a full collection
    assert gc.get_freeze_count() == 0
    oldest = {id(item) for item in gc.get_objects(generation=2)}
    assert id(module.KEPT) in oldest and id(module.KEPT[-1]) in oldest


def test_a_disabled_collector_stays_disabled():
    import gc

    gc.disable()
    try:
        with preimport.collections_deferred():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()
        preimport.unfreeze_collections()
    try:
        with preimport.collections_deferred():
            assert not gc.isenabled()
        assert gc.isenabled()
    finally:
        preimport.unfreeze_collections()
