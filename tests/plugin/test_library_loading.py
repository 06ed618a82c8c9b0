"""Other threads' extension imports wait, without the GIL, while the compute preload loads torch's
libraries (napari_sigma._napari.library_loading)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

# in a fresh interpreter, so that the modules are not imported yet: a thread importing an
# extension module (_bz2) waits for the block's end, one importing a pure Python module
# (colorsys) and the block's own thread importing an extension (_lzma) do not
HELD_BACK = textwrap.dedent(
    """
    import json, sys, threading
    from napari_sigma._napari.library_loading import extension_imports_wait

    assert not {"_bz2", "_lzma", "colorsys"} & set(sys.modules)
    done = {}

    def importer(name):
        __import__(name)
        done[name] = True

    with extension_imports_wait() as gate:
        extension = threading.Thread(target=importer, args=("_bz2",))
        pure = threading.Thread(target=importer, args=("colorsys",))
        extension.start(); pure.start()
        pure.join(60)
        import _lzma  # the loading thread's own import: not held
        extension.join(0.5)
        during = (dict(done), extension.is_alive())
    extension.join(60)
    print(json.dumps([during, done, gate.waited, gate in sys.meta_path]))
    """
)


def test_an_extension_import_waits_for_the_library_load_and_nothing_else_does():
    """The Spectrum tab's worker importing scipy's extensions while the compute preload loaded
    torch's libraries (dlopen, the loader's lock held 0.2-0.4 s) waited for that lock holding
    the GIL: napari's main thread stopped 0.1-0.2 s (0.9-1.4 s gaps of the dock at load 19).
    Now such an import waits before its own dlopen, without the GIL, until the load is done;
    pure Python imports and the loading thread's own go on."""
    out = subprocess.run(
        [sys.executable, "-c", HELD_BACK], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    during, after, waited, still_installed = json.loads(out.stdout.strip().splitlines()[-1])
    assert during == [{"colorsys": True}, True]  # _bz2 held back while the block ran
    assert after == {"colorsys": True, "_bz2": True}  # and imported once it ended
    assert waited == ["_bz2"]
    assert not still_installed


def test_the_compute_preload_loads_torch_s_libraries_with_extension_imports_held(monkeypatch):
    """preload._import_compute loads torch's libraries inside the gate, and only them."""
    import threading

    from napari_sigma._napari import library_loading, preload

    done = threading.Event()
    done.set()
    gated = []

    def gate_installed() -> bool:
        return any(isinstance(f, library_loading._ExtensionGate) for f in sys.meta_path)

    monkeypatch.setattr(preload, "_modules_done", done)
    monkeypatch.setattr(preload, "_prewarm_reading", lambda: gated.append(gate_installed()))
    monkeypatch.setattr(preload, "_load_torch_libraries", lambda: gated.append(gate_installed()))
    monkeypatch.setattr(preload, "_import", lambda names: gated.append(gate_installed()))
    monkeypatch.setattr(preload, "_warm_threadpoolctl", lambda: None)
    monkeypatch.setattr(preload, "_warm_dask_scheduler", lambda: None)
    monkeypatch.setattr(preload, "_warm_labels_drawing", lambda: None)
    monkeypatch.setattr(preload, "_freeze_long_lived", lambda: None)
    preload._import_compute()
    assert gated == [False, True, False]  # reader, libraries, torch's import
    assert not gate_installed()


def test_the_workers_pool_limits_wait_for_the_library_load(monkeypatch):
    """threadpoolctl opens each pool's library with ctypes.CDLL (dlopen, the GIL held): a worker
    limiting the pools (threads._limit_pools, as every plugin worker starts) waits for a library
    load under way in another thread before it, without the GIL, and goes on once it ends."""
    import threading

    import threadpoolctl

    from napari_sigma._napari import library_loading, threads

    events = []
    monkeypatch.setattr(threads, "_release_openblas", lambda: None)
    monkeypatch.setattr(threadpoolctl, "threadpool_limits", lambda limits: events.append(limits))
    entered, release = threading.Event(), threading.Event()

    def load() -> None:
        with library_loading.extension_imports_wait():
            entered.set()
            release.wait(60)

    loader = threading.Thread(target=load)
    loader.start()
    entered.wait(60)
    worker = threading.Thread(target=threads._limit_pools, args=(1,))
    worker.start()
    worker.join(0.3)
    held = (worker.is_alive(), list(events))
    release.set()
    loader.join(60)
    worker.join(60)
    assert held == (True, [])  # waiting while the load ran
    assert events == [1] and not library_loading._active
    # with no load under way it does not wait
    threads._limit_pools(2)
    assert events == [1, 2]
