"""How much the compute preload's torch import slows napari's main thread, paced or not.

A Qt event loop (QCoreApplication, no window) runs a 10 ms heartbeat and, every 150 ms, a
"handler": ~25 ms of Python cut by 250 GIL releases, as a click's handler or a repaint calls
into Qt hundreds of times. Meanwhile a thread imports torch and the analysis as the compute
preload does (full collections paused, torch's libraries loaded without the GIL first), either
paced by the main loop (:mod:`napari_sigma._napari.import_pacing`, as the plugin does) or not.
Printed: the handler's wall time alone and during the import (median, max), the heartbeat's
longest gap and gaps over 50 ms, the import's wall and CPU, the pacer's answered/unanswered asks.

Each mode needs a fresh process (torch is imported once): run both, alternated, several times::

    for i in 1 2 3; do for m in unpaced paced; do
        python benchmarks/bench_preload_pacing.py $m; done; done
"""

from __future__ import annotations

import contextlib
import importlib
import statistics
import sys
import threading
import time

HANDLER_EVERY_MS = 150
RELEASES = 250  # GIL releases per handler
WORK = 400  # loop steps between two releases


def handler() -> float:
    """~25 ms of Python with :data:`RELEASES` GIL releases; return its wall time."""
    start = time.perf_counter()
    for _ in range(RELEASES):
        total = 0
        for j in range(WORK):
            total += j
        time.sleep(0)  # releases the GIL, as a call into Qt does
    return time.perf_counter() - start


def main() -> None:
    mode = sys.argv[1] if len(sys.argv) > 1 else "paced"
    if mode not in ("paced", "unpaced"):
        raise SystemExit("usage: bench_preload_pacing.py paced|unpaced")
    import napari  # noqa: F401  (what napari's process has imported before the preload)
    from qtpy.QtCore import QCoreApplication, QTimer

    from napari_sigma._napari import preload
    from napari_sigma._napari.import_pacing import paced_by_main_loop
    from napari_sigma._napari.threads import quick_gil_switch

    for name in preload.MODULES:  # the first preload's modules: imported before torch's
        with contextlib.suppress(Exception):
            importlib.import_module(name)
    app = QCoreApplication.instance() or QCoreApplication([])
    quick_gil_switch()
    alone = statistics.median(handler() for _ in range(5))
    done, info, walls, gaps = threading.Event(), {}, [], []

    def work() -> None:
        start, cpu = time.perf_counter(), time.thread_time()
        with preload.collector_paused():
            preload._load_torch_libraries()
            pacing = paced_by_main_loop() if mode == "paced" else contextlib.nullcontext()
            with pacing as pacer:
                preload._import(preload.COMPUTE_MODULES)
        info["wall"], info["cpu"] = time.perf_counter() - start, time.thread_time() - cpu
        info["asks"] = (pacer.turns, pacer.unanswered) if pacer is not None else None
        done.set()

    last = [time.perf_counter()]

    def tick() -> None:
        now = time.perf_counter()
        gaps.append(now - last[0])
        last[0] = now
        if done.is_set():
            app.quit()

    beat, busy = QTimer(), QTimer()
    beat.timeout.connect(tick)
    busy.timeout.connect(lambda: walls.append(handler()))
    beat.start(10)
    busy.start(HANDLER_EVERY_MS)
    thread = threading.Thread(target=work, name="napari-sigma-preload-compute")
    QTimer.singleShot(100, thread.start)
    app.exec()
    thread.join()
    print(
        f"{mode}: handler alone {1e3 * alone:.1f} ms, during the import median "
        f"{1e3 * statistics.median(walls):.1f} max {1e3 * max(walls):.1f} ms (n {len(walls)}) | "
        f"heartbeat longest gap {1e3 * max(gaps):.1f} ms, gaps > 50 ms "
        f"{sum(g > 0.05 for g in gaps)} | import wall {info['wall']:.2f} s CPU {info['cpu']:.2f} s"
        f" | asks answered/unanswered {info['asks']}"
    )


if __name__ == "__main__":
    main()
