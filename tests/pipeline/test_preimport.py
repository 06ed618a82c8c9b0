"""The analysis's modules imported in a background thread while ``napari-sigma run`` reads."""

import json
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

from napari_sigma.pipeline import preimport


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

    monkeypatch.setattr(preimport, "start_importing", lambda: calls.append("start") or Thread())
    monkeypatch.setattr(chunks, "read_within", lambda path, limit: calls.append("read") or "image")

    def analyse(image, settings, out):
        calls.append(f"analyse {image}")
        raise cli.SigmaError("stop here")

    monkeypatch.setattr(cli, "_analyse_and_export", analyse)
    outcome = cli.run_one(tmp_path / "x.hspy", None, tmp_path / "out")
    assert calls == ["start", "read", "joined", "analyse image"]
    assert outcome.status == "failed"
    calls.clear()  # under a memory limit the read may import dask: no thread then
    cli.run_one(tmp_path / "x.hspy", None, tmp_path / "out", limit=2**30)
    assert calls == ["read", "analyse image"]


def test_a_real_read_imports_nothing_in_the_main_thread_while_the_thread_runs(tmp_path):
    """A fresh process (nothing imported yet): the main thread reads an ``.hspy`` file (in
    the reading child, as the CLI does) while the thread imports; every import the main thread
    makes meanwhile is recorded (none expected), and the analysis's modules are there after."""
    from napari_sigma.energy import EnergyAxis
    from napari_sigma.io.writing import write_hspy
    from napari_sigma.spectrum_image import SpectrumImage

    counts = np.random.default_rng(0).poisson(2.0, (12, 12, 256)).astype(np.uint16)
    image = SpectrumImage(counts=counts, energy=EnergyAxis(0.0, 0.01, 256), beam_energy=15.0)
    path = write_hspy(tmp_path / "small.hspy", image)
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
        thread = preimport.start_importing()
        image = read_within(Path({str(path)!r}), None)
        preimport.finish_importing(thread)
        main = threading.main_thread().name
        print(json.dumps({{
            "started": thread is not None,
            "main_meanwhile": [n for t, n, r in seen if t == main and r],
            "by_thread": sum(t == preimport.THREAD_NAME for t, n, r in seen),
            "missing": [n for n in preimport.ANALYSIS_MODULES + preimport.EXPORT_MODULES
                        if n not in sys.modules],
            "shape": list(image.shape),
        }}))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=True
    )
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["started"] and report["shape"] == [12, 12]
    assert report["main_meanwhile"] == []
    assert report["by_thread"] > 50
    assert report["missing"] == []
