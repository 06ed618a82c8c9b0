"""numba's cache filled by the warm-up child: the analysis then loads its kernels, never compiles
them in the calling process (napari's: compiling holds the GIL)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from napari_sigma.compute import _jit

SRC = str(Path(_jit.__file__).resolve().parents[2])

# the analysis' own calls: abundances through the compiled active set, the twins' two-label cut,
# the phase sums' kernel, the host correction's gather;
# then, per kernel, how many of its signatures numba loaded from the cache and how many it compiled
PROBE = """
import json, numpy as np
from napari_sigma.compute.progress import run_to_completion
from napari_sigma.unmixing import abundances
from napari_sigma.phases.graph_cut import two_label_cut
rng = np.random.default_rng(3)
components = rng.dirichlet(np.full(80, 0.3), 8)
counts = rng.poisson(rng.dirichlet(np.full(8, 0.2), (20, 30)) @ components * 10.0)
abundances.COMPILED_NNLS_PIXELS = 600
run_to_completion(abundances.abundance_maps(counts.astype(np.uint16), components, device="cpu"))
two_label_cut(rng.normal(size=(20, 30)), np.ones((20, 30), bool), 1.0)
from napari_sigma.phases import spectra
spectra.COMPILED_SUM_PIXELS = 600
spectra.phase_sum_spectra(counts.astype(np.uint16), rng.integers(0, 4, (20, 30)), 3)
from napari_sigma.minerals import host
host.COMPILED_GATHER_PIXELS = 600
host._core_projections(counts.astype(np.uint16), rng.integers(0, 3, (20, 30)), {1: np.ones(80)})
from napari_sigma.compute import flow
from napari_sigma.minerals import _gather
from napari_sigma.phases import _label_sums
from napari_sigma.unmixing import _active_set
kernels = {"residual": flow._residual_graph.compiled, "dinic": flow._dinic_source_side.compiled,
           "rows": _active_set.lawson_hanson_rows, "sums": _label_sums.add_label_sums,
           "gather": _gather.gather_rows}
print(json.dumps({k: [sum(d.stats.cache_hits.values()), sum(d.stats.cache_misses.values())]
                  for k, d in kernels.items()}))
"""

WARM = """
from napari_sigma.compute import _jit
assert _jit.start_warm_up() and _jit.warm_up_running() in (True, False)
assert _jit.wait_for_warm_up(240)
print(_jit._child["process"].returncode)
"""


def _python(code: str, cache: Path, **env: str) -> str:
    environment = {**os.environ, "NUMBA_CACHE_DIR": str(cache), **env}
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [SRC, os.environ.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=environment, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1]


def test_the_warm_up_child_fills_the_cache_that_the_analysis_then_loads(tmp_path):
    """A process that started the warm-up child (as the plugin's preload does) and a later
    process running the analysis' calls: every kernel comes from the (new, empty before) cache,
    none is compiled (without the child each one is: an install's first run)."""
    assert _python(WARM, tmp_path / "cache") == "0"  # the child's exit status
    warm = json.loads(_python(PROBE, tmp_path / "cache"))
    assert all(hits == 1 and misses == 0 for hits, misses in warm.values()), warm


def test_no_child_when_switched_off(monkeypatch):
    monkeypatch.setattr(_jit, "_child", {"process": None, "done": threading.Event()})
    monkeypatch.setenv(_jit.ENV_SWITCH, "0")
    assert not _jit.start_warm_up()
    assert _jit.wait_for_warm_up(0.0) and not _jit.warm_up_running()


def test_a_first_call_waits_for_the_child_still_compiling(monkeypatch):
    """The first call loads what the child compiles instead of compiling it at the same time."""
    done = threading.Event()
    monkeypatch.setattr(_jit, "_child", {"process": object(), "done": done})

    def twice(x):
        return 2 * x

    kernel = _jit.lazy_njit(twice)
    answers = []
    caller = threading.Thread(target=lambda: answers.append(kernel(21)))
    caller.start()
    time.sleep(0.3)
    assert _jit.warm_up_running() and not answers and kernel.compiled is None
    done.set()
    caller.join(60)
    assert answers == [42]


def test_two_warm_ups_take_turns():
    """The lock file: a second holder waits until the first lets go."""
    order = []
    with _jit._cache_lock() as held:
        assert held.handle is not None

        def second():
            with _jit._cache_lock():
                order.append("second")

        other = threading.Thread(target=second)
        other.start()
        time.sleep(0.2)
        order.append("first")
    other.join(10)
    assert order == ["first", "second"]


def test_the_compiled_abundances_wait_for_the_child_still_compiling(monkeypatch):
    """unmixing's compiled active set (not a lazy_njit kernel) waits for the child too."""
    import numpy as np
    import torch

    from napari_sigma.unmixing import block_nnls

    done = threading.Event()
    monkeypatch.setattr(_jit, "_child", {"process": object(), "done": done})
    gram = torch.eye(2, dtype=torch.float64)
    rhs = torch.tensor([[1.0, -1.0]], dtype=torch.float64)
    answers = []
    caller = threading.Thread(
        target=lambda: answers.append(
            block_nnls._lawson_hanson_compiled(gram, rhs, rhs >= 0, 1e-9, {})[0].numpy()
        )
    )
    caller.start()
    time.sleep(0.3)
    assert not answers
    done.set()
    caller.join(120)
    assert len(answers) == 1 and np.array_equal(answers[0], [[1.0, 0.0]])
