"""How long napari's main thread sleeps when a thread imports extension modules while the compute
preload loads torch's libraries, with and without the plugin's gate
(``napari_sigma._napari.library_loading.extension_imports_wait``).

The main thread sleeps 0.5 ms at a time; a gap's *sleep* is the gap minus the main thread's CPU
and its wait for a core (Linux schedstat), i.e. the time it waited for the GIL or a lock. One
thread runs ``load_torch_libraries()`` (``dlopen``: the loader's lock held, the GIL free), another
imports scipy's interpolate/optimize/linalg/fft 50 ms later (extension modules: ``dlopen`` with the
GIL held), as the Spectrum tab's element suggestion did while the plugin docked. Each case runs in
a fresh process (the modules are imported once per process).

    python benchmarks/bench_library_load_gil.py --runs 3
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time

CASES = ("ungated", "gated")


def _schedstat(tid: int) -> tuple[float, float]:
    try:
        with open(f"/proc/self/task/{tid}/schedstat") as f:
            cpu, wait, _ = f.read().split()
        return int(cpu) / 1e6, int(wait) / 1e6
    except (OSError, ValueError):
        return 0.0, 0.0


def one_case(case: str) -> None:
    """In this (fresh) process: the two threads, the main thread's sleeps; print one line."""
    import numpy  # noqa: F401 - napari's process has it

    from napari_sigma._napari.library_loading import extension_imports_wait
    from napari_sigma.compute.device import load_torch_libraries

    held: list[str] = []

    def load() -> None:
        if case == "gated":
            with extension_imports_wait() as gate:
                load_torch_libraries()
            held.extend(gate.waited)
        else:
            load_torch_libraries()

    def imports() -> None:
        time.sleep(0.05)
        import scipy.fft
        import scipy.interpolate
        import scipy.linalg
        import scipy.optimize  # noqa: F401

    sys.setswitchinterval(0.001)  # the plugin's (threads.quick_gil_switch)
    me = threading.get_native_id()
    threads = [threading.Thread(target=load), threading.Thread(target=imports)]
    for t in threads:
        t.start()
    last, (cpu0, wait0), sleeps = time.perf_counter(), _schedstat(me), []
    while any(t.is_alive() for t in threads):
        time.sleep(0.0005)
        now, (cpu, wait) = time.perf_counter(), _schedstat(me)
        sleeps.append(1e3 * (now - last) - (cpu - cpu0) - (wait - wait0))
        last, cpu0, wait0 = now, cpu, wait
    longest = max(sleeps, default=0.0)
    over = sum(s > 20 for s in sleeps)
    print(f"{case:8s} load {os.getloadavg()[0]:5.1f}: longest sleep {longest:6.1f} ms, "
          f"{over} gaps with over 20 ms of sleep; imports held back: {held}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--case", choices=CASES, help=argparse.SUPPRESS)  # the child's
    args = parser.parse_args()
    if args.case:
        one_case(args.case)
        return
    for _ in range(args.runs):
        for case in CASES:  # alternated: the same conditions for both
            subprocess.run([sys.executable, __file__, "--case", case], check=False)


if __name__ == "__main__":
    main()
