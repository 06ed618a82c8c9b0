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
