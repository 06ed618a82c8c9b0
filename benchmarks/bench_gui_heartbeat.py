"""The longest freeze of napari's main thread per user step, with the plugin docked.

A 10 ms QTimer heartbeat runs in a real viewer; for each step (open, dock, run, label switch,
paint mode, brush strokes with an existing and a new label (picked in a step of its own), fill,
undo, lasso, merge, split, export, export again) the
longest gap between two ticks is the longest time the user saw napari frozen. The run's gap
includes the result appearing (layers added, the table's statistics started). Next to it, the main
thread's CPU time during that gap: close to the gap, the main thread was working (a repaint, our
code); far below it, it was waiting (for the GIL held by another thread, or for a core). Where
the rest went (Linux schedstat, per thread): the main thread's time runnable but without a core
("runq"), the CPU and run-queue wait of Mesa's llvmpipe threads ("GL": Qt composing the window in
software OpenGL under Xvfb, which the main thread waits for), the X server's ("X", a process of
its own that answers the main thread) and the CPU of the process's other threads (workers,
imports: when it fills the gap, the main thread waited for the GIL). ``--py-spy FILE``: stacks of
every thread when a tick is 100 ms late (see :class:`SpyClock`). The phase edits the plugin autosaves go to a temporary folder
(``NAPARI_SIGMA_RECOVERY_DIR``), not the user's cache.
``--watchdog FILE`` writes every thread's stack whenever a tick is 100 ms late (faulthandler's
watchdog thread, which needs no GIL). It reads the other threads' frames while they run and
crashes the process: a segmentation fault in 5 of 8 benchmark runs (fifth session) and 1 of 2
(eleventh); a script of two threads importing modules while faulthandler dumps every 2 ms
crashed in 5 of 6 runs with it and 0 of 3 without (twelfth). Prefer ``--py-spy``, which also
says which thread holds the GIL ("active+gil"); faulthandler's dump does not.

    xvfb-run -a python benchmarks/bench_gui_heartbeat.py --size 1024 --channels 2048
    xvfb-run -a python benchmarks/bench_gui_heartbeat.py --file ../shared/data/eds/jeol/rawdata.ASW

The synthetic cube is a seeded Poisson map of six minerals (``make_synthetic``) tiled up to the
size asked (tiling keeps building it cheap; the timings do not depend on the values).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

PLUGIN = "napari-sigma-eds"
TICK_MS = 10
PROFILE = ""  # --profile STEP[,STEP..]|all: a cProfile of the steps whose name starts with STEP
PROFILE_DIR: Path | None = None  # --profile-dir: write them there (.prof) instead of printing
WATCHDOG: Any = None  # --watchdog FILE: every thread's stack when the main thread misses a tick
WATCHDOG_S = 0.1
SPY: Any = None  # --py-spy FILE: the shared tick clock a py-spy monitor process watches
LATE_S = 0.05  # each step also counts its gaps longer than this (the longest alone is noisy)


class SpyClock:
    """The last tick's time (CLOCK_MONOTONIC) and the step's name in a shared file, watched by a
    monitor process (:func:`spy_monitor`) that runs ``py-spy dump --nonblocking`` on this process
    when a tick is over 100 ms late. Unlike ``--watchdog`` it reads no frame from inside the
    process (faulthandler's dump crashed the benchmark in 5 of 8 runs) and needs none of its GIL."""

    SIZE = 128

    def __init__(self, out: Path, late_ms: float = 100.0) -> None:
        import mmap
        import os
        import subprocess
        import sys

        fd, self.path = tempfile.mkstemp(prefix="bench-tick-")
        os.write(fd, bytes(self.SIZE))
        self.map = mmap.mmap(fd, self.SIZE)
        os.close(fd)
        self.tick()
        self.monitor = subprocess.Popen(
            [sys.executable, __file__, "--spy-monitor", str(os.getpid()), self.path, str(out),
             str(late_ms / 1e3)]
        )  # fmt: skip

    def tick(self) -> None:
        import struct

        struct.pack_into("d", self.map, 0, time.monotonic())

    def step(self, name: str) -> None:
        import struct

        struct.pack_into("d", self.map, 8, time.monotonic())  # the step's start
        self.map[16:] = name.encode()[: self.SIZE - 16].ljust(self.SIZE - 16, b"\0")
        self.tick()

    def close(self) -> None:
        import os

        self.monitor.terminate()
        self.monitor.wait()
        os.unlink(self.path)


def spy_monitor(pid: int, path: str, out: str, late_s: float = 0.1) -> None:
    """Dump ``pid``'s threads (py-spy: Python frames, the process not paused) once per tick that is
    ``late_s`` late."""
    import mmap
    import shutil
    import struct
    import subprocess
    import sys

    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    with open(path, "r+b") as f, open(out, "w") as log:
        shared = mmap.mmap(f.fileno(), SpyClock.SIZE)
        dumped = None
        while Path(f"/proc/{pid}").exists():  # ends with the benchmark, however it ends
            last = struct.unpack_from("d", shared, 0)[0]
            late = time.monotonic() - last
            if late > late_s and last != dumped:
                dumped = last
                began = struct.unpack_from("d", shared, 8)[0]
                name = bytes(shared[16:]).rstrip(b"\0").decode(errors="replace")
                kernel = kernel_waits(pid)  # first: the dump takes 10-200 ms
                # --nonblocking: the process is not paused (a paused dump, 150-550 ms at load
                # 10, lengthened the very gaps it looked at); Python frames only
                dump = subprocess.run([spy, "dump", "--nonblocking", "--pid",
                                       str(pid)], capture_output=True, text=True)  # fmt: skip
                log.write(f"\n=== step {name}: tick {1e3 * late:.0f} ms late, dump took "
                          f"{1e3 * (time.monotonic() - last - late):.0f} ms more; the gap began "
                          f"{last - began:.2f} s into the step\n")  # fmt: skip
                log.write(kernel + dump.stdout + dump.stderr)
                log.flush()
            time.sleep(0.01)


IDLE_WAITS = ("futex_", "epoll_wait", "do_sys_poll", "poll_schedule", "nanosleep", "do_select",
              "pipe_read", "do_wait", "ep_poll")  # fmt: skip


def kernel_waits(pid: int) -> str:
    """Where ``pid``'s threads are in the kernel (Linux /proc), for the --py-spy log: each thread
    that is running (R), in an uninterruptible wait (D) or waiting elsewhere than in the usual idle
    waits (futex, poll, sleep, a pipe) with its name, state, wait channel and, where /proc lets
    us read it, its top kernel frames. A thread that holds the GIL while it waits in the kernel
    (on the process's memory map lock, a page fault) shows here, not in py-spy's Python frames."""
    lines = ["kernel (state, wait channel, top kernel frames):"]
    for task in sorted(Path(f"/proc/{pid}/task").glob("*")):
        try:
            stat = (task / "stat").read_text()
            name = stat[stat.index("(") + 1 : stat.rindex(")")]
            state = stat[stat.rindex(")") + 2]
            wchan = (task / "wchan").read_text().strip()
        except (OSError, ValueError):
            continue
        if state == "S" and (wchan == "0" or any(w in wchan for w in IDLE_WAITS)):
            continue
        try:
            frames = [f.split("] ", 1)[-1].split("+")[0] for f in
                      (task / "stack").read_text().splitlines()[:4]]  # fmt: skip
        except OSError:
            frames = []
        lines.append(f"  {task.name} {name!r} {state} {wchan} {' < '.join(frames)}")
    return "\n".join(lines) + "\n"


class ThreadClocks:
    """Where the time of a gap went, per thread, from Linux's ``/proc/self/task/*/schedstat``:
    CPU time and time spent runnable but waiting for a core (the run queue), for napari's main
    thread and for Mesa's llvmpipe rasterizer threads (the software OpenGL that composes the
    window under Xvfb), the X server's (a process of its own: the main thread waits for its
    replies), plus the CPU of every other thread of the process (our workers, the preload,
    napari's). Empty where /proc has no schedstat (not Linux)."""

    def __init__(self, per_thread: bool = False) -> None:
        import os
        import threading

        self.main = f"/proc/self/task/{threading.get_native_id()}/schedstat"
        self.ok = os.path.exists(self.main)
        self.per_thread = per_thread and self.ok
        self.others: dict[str, str] = {}  # --thread-clocks: schedstat file -> the thread's name
        self.gl: list[str] = []
        self.x: list[str] = self._x_server() if self.ok else []
        self.scan()

    @staticmethod
    def _x_server() -> list[str]:
        """The schedstat files of the X server of ``$DISPLAY`` (an Xvfb/Xorg process here)."""
        import os

        display = os.environ.get("DISPLAY", "")
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    args = f.read().split(b"\0")
            except OSError:
                continue
            if args and Path(args[0].decode(errors="replace")).name in ("Xvfb", "Xorg", "X"):
                if display and display.encode() in args:
                    tasks = f"/proc/{pid}/task"
                    return [f"{tasks}/{tid}/schedstat" for tid in os.listdir(tasks)]
        return []

    def scan(self) -> None:
        """Find the llvmpipe threads (they start with the first OpenGL context)."""
        import os

        if not self.ok:
            return
        found = []
        for tid in os.listdir("/proc/self/task"):
            try:
                with open(f"/proc/self/task/{tid}/comm") as f:
                    if f.read().startswith("llvmpipe"):
                        found.append(f"/proc/self/task/{tid}/schedstat")
            except OSError:
                continue
        self.gl = found
        if self.per_thread:
            self._scan_others()

    def _scan_others(self) -> None:
        """The process's other threads (not main, not llvmpipe), named as Python names them
        (threading's name; a Qt pool thread running Python is "Dummy-N"), else their ``comm``."""
        import os
        import threading

        names = {t.native_id: t.name for t in threading.enumerate()}
        others = {}
        for tid in os.listdir("/proc/self/task"):
            path = f"/proc/self/task/{tid}/schedstat"
            if path == self.main or path in self.gl:
                continue
            name = names.get(int(tid))
            if name is None:
                try:
                    with open(f"/proc/self/task/{tid}/comm") as f:
                        name = f.read().strip()
                except OSError:
                    continue
            others[path] = f"{name}:{tid}"
        self.others = others

    def read_others(self) -> dict[str, tuple[int, int]]:
        """(CPU ns, run-queue wait ns) of each other thread (``--thread-clocks``)."""
        return {p: self._read(p) for p in self.others} if self.per_thread else {}

    def others_delta(self, now: dict, before: dict) -> dict[str, Any]:
        """The other threads' run-queue wait in a gap (ms: a thread holding the GIL that waits
        for a core keeps the main thread waiting with it) and the three threads that had the
        most CPU + run-queue wait, "name:tid cpu/runq" (ms)."""
        per = {}
        for path, (cpu, wait) in now.items():
            cpu0, wait0 = before.get(path, (cpu, wait))
            per[path] = (max(0, cpu - cpu0) / 1e6, max(0, wait - wait0) / 1e6)
        top = sorted(per, key=lambda p: -sum(per[p]))[:3]
        return {"other_runq": sum(w for _, w in per.values()),
                "threads": ", ".join(f"{self.others[p]} {per[p][0]:.0f}/{per[p][1]:.0f}"
                                     for p in top if sum(per[p]) >= 1)}  # fmt: skip

    _fds: ClassVar[dict[str, int]] = {}  # schedstat files opened once, read with pread

    @classmethod
    def _read(cls, path: str) -> tuple[int, int]:
        """(CPU ns, run-queue wait ns) of one thread: ~5 us per read with the file kept open
        (opening it at every tick cost the main thread ~1 ms per tick, profiled)."""
        import os

        try:
            fd = cls._fds.get(path)
            if fd is None:
                fd = cls._fds[path] = os.open(path, os.O_RDONLY)
            cpu, wait, _ = os.pread(fd, 128, 0).split()
            return int(cpu), int(wait)
        except (OSError, ValueError):  # the thread ended
            cls._fds.pop(path, None)
            return 0, 0

    def read(self) -> tuple[float, ...]:
        """(process CPU, main CPU, main run-queue wait, GL CPU, GL run-queue wait, X CPU, X
        run-queue wait), seconds."""
        if not self.ok:
            return (time.process_time(), time.thread_time(), 0.0, 0.0, 0.0, 0.0, 0.0)
        main = self._read(self.main)
        gl = [self._read(p) for p in self.gl]
        x = [self._read(p) for p in self.x]
        return (time.process_time(), main[0] / 1e9, main[1] / 1e9,
                sum(c for c, _ in gl) / 1e9, sum(w for _, w in gl) / 1e9,
                sum(c for c, _ in x) / 1e9, sum(w for _, w in x) / 1e9)  # fmt: skip

    @staticmethod
    def delta(now: tuple[float, ...], before: tuple[float, ...]) -> dict[str, float]:
        """The gap's shares in ms: the main thread's CPU and run-queue wait, llvmpipe's CPU and
        run-queue wait, the X server's, the CPU of the process's other threads."""
        d = [a - b for a, b in zip(now, before, strict=True)]
        return {"main_cpu": 1e3 * d[1], "main_runq": 1e3 * d[2], "gl_cpu": 1e3 * d[3],
                "gl_runq": 1e3 * d[4], "x_cpu": 1e3 * d[5], "x_runq": 1e3 * d[6],
                "other_cpu": 1e3 * max(0.0, d[0] - d[1] - d[3])}  # fmt: skip


class Heartbeat:
    """A 10 ms QTimer; ``longest`` is the longest gap between ticks since :meth:`reset`."""

    def __init__(self, per_thread: bool = False) -> None:
        from qtpy.QtCore import QTimer

        self.timer = QTimer()
        self.timer.setInterval(TICK_MS)
        self.timer.timeout.connect(self._tick)
        self.clocks = ThreadClocks(per_thread)
        self.last = time.perf_counter()
        self.last_clocks = self.clocks.read()
        self.last_others = self.clocks.read_others()
        self.last_scan = self.last
        self.longest = 0.0
        self.longest_split: dict[str, float] = {}  # where the longest gap's time went
        # (time of the tick, gap before it, where the gap's time went)
        self.gaps: list[tuple[float, float, dict[str, float]]] = []
        self.timer.start()

    @property
    def longest_cpu(self) -> float:
        """The main thread's CPU time during the longest gap (s)."""
        return self.longest_split.get("main_cpu", 0.0) / 1e3

    def _tick(self) -> None:
        now, clocks = time.perf_counter(), self.clocks.read()
        split: dict[str, Any] = ThreadClocks.delta(clocks, self.last_clocks)
        if self.clocks.per_thread:
            others = self.clocks.read_others()
            if now - self.last > LATE_S:
                split.update(self.clocks.others_delta(others, self.last_others))
            if now - self.last_scan > 0.5:  # threads started since (a run's workers)
                self.clocks._scan_others()
                others, self.last_scan = self.clocks.read_others(), now
            self.last_others = others
        if now - self.last > self.longest:
            self.longest, self.longest_split = now - self.last, split
        self.gaps.append((now, now - self.last, split))
        self.last, self.last_clocks = now, clocks
        if SPY is not None:
            SPY.tick()
        if WATCHDOG is not None:  # re-armed at every tick: fires only when one is 100 ms late
            import faulthandler

            faulthandler.dump_traceback_later(WATCHDOG_S, repeat=False, file=WATCHDOG)

    def reset(self) -> None:
        self.clocks.scan()
        self.last, self.longest, self.gaps = time.perf_counter(), 0.0, []
        self.last_clocks, self.longest_split = self.clocks.read(), {}

    def count_between(self, start: float, end: float, over_s: float = LATE_S) -> int:
        """How many gaps that ended in ``[start, end)`` were longer than ``over_s``."""
        return sum(1 for t, gap, _ in self.gaps if start <= t < end and gap > over_s)

    def late_between(self, start: float, end: float, origin: float | None = None) -> list[dict]:
        """The gaps that ended in ``[start, end)`` longer than :data:`LATE_S`: when each began
        (s after ``origin``, default ``start``: the step's start, as --py-spy's dumps say), its
        length and where its time went (ms)."""
        origin = start if origin is None else origin
        return [{"at_s": round(t - gap - origin, 2), "ms": round(1e3 * gap, 1),
                 **{k: (round(v, 1) if isinstance(v, float) else v) for k, v in split.items()}}
                for t, gap, split in self.gaps if start <= t < end and gap > LATE_S]  # fmt: skip

    def longest_between(self, start: float, end: float) -> tuple[float, dict[str, float]]:
        """The longest gap that ended in ``[start, end)`` (a gap belongs to where it ended), and
        where its time went."""
        return max(
            ((gap, split) for t, gap, split in self.gaps if start <= t < end),
            default=(0.0, {}), key=lambda g: g[0],
        )  # fmt: skip


class Collections:
    """Every garbage collection of the process (``--gc``: :data:`gc.callbacks`): when it began,
    its length, generation, thread and how many objects it collected. A full collection holds
    the GIL for all of its traversal, in whichever thread it runs: a step's gap that a
    collection fills is the collector's, not the step's code."""

    def __init__(self) -> None:
        import gc
        import threading

        self.threading = threading
        self.started: dict[int, float] = {}
        self.done: list[tuple[float, float, int, str, int]] = []  # (start, s, gen, thread, n)
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict) -> None:
        ident = self.threading.get_ident()
        if phase == "start":
            self.started[ident] = time.perf_counter()
            return
        began = self.started.pop(ident, None)
        if began is not None:
            name = self.threading.current_thread().name
            self.done.append((began, time.perf_counter() - began, info["generation"], name,
                              info.get("collected", 0)))  # fmt: skip

    def between(self, start: float, end: float, over_s: float = 0.005) -> list[dict]:
        """The collections longer than ``over_s`` that began in ``[start, end)`` (s after
        ``start``, ms, generation, thread, objects collected)."""
        return [{"at_s": round(b - start, 2), "ms": round(1e3 * d, 1), "generation": g,
                 "thread": t, "collected": n}
                for b, d, g, t, n in self.done if start <= b < end and d > over_s]  # fmt: skip


GC: Collections | None = None  # --gc


def record(results: dict, name: str, gap: float, split: dict[str, float], wall: float) -> str:
    """Store a step's longest gap and where its time went; return the line to print."""
    results[name] = {"longest_block_ms": round(1e3 * gap, 1),
                     "main_thread_cpu_ms": round(split.get("main_cpu", 0.0), 1),
                     "wall_s": round(wall, 2),
                     "gap_split_ms": {k: (round(v, 1) if isinstance(v, float) else v)
                                      for k, v in split.items()}}  # fmt: skip
    g = results[name]["gap_split_ms"]
    where = (
        f" runq {g.get('main_runq', 0):5.0f} | GL CPU {g.get('gl_cpu', 0):5.0f} runq "
        f"{g.get('gl_runq', 0):5.0f} | X CPU {g.get('x_cpu', 0):4.0f} runq {g.get('x_runq', 0):4.0f}"
        f" | other CPU {g.get('other_cpu', 0):5.0f}"
        + (f" runq {g['other_runq']:4.0f}" if "other_runq" in g else "")
    )
    return (
        f"{name:28s} longest block {1e3 * gap:8.1f} ms (main thread CPU "
        f"{g.get('main_cpu', 0):6.1f}{where})"
    )


def process(app: Any, seconds: float, until: Any = None) -> bool:
    """Run Qt's event loop for ``seconds`` or until ``until()`` holds.

    Deferred deletes are delivered too, as napari's running event loop (``napari.run()``) does:
    ``processEvents`` without ``exec()`` never delivers a ``deleteLater()`` made outside an
    event handler (Qt's loop-level rule). napari closes its "Opening Files" progress bar so:
    left alive, its status-bar "in progress" GIF animated through every step after the open,
    a whole-window compose every ~40 ms (software OpenGL: ~25 ms of llvmpipe CPU each).
    """
    from qtpy.QtCore import QEvent

    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        app.processEvents()
        app.sendPostedEvents(None, QEvent.Type.DeferredDelete)
        if until is not None and until():
            return True
        time.sleep(0.002)
    return until is None


def step(results: dict, name: str, beat: Heartbeat, app: Any, action: Any, until=None, wait=1.0):
    """Do ``action`` in the main thread, run the loop until ``until()``; record the longest gap.

    The loop runs ``wait`` s more, so that work a step defers (debounced plot redraws, 250 ms
    after the last change, rendered in the plot thread) counts for that step.
    """
    app.processEvents()
    beat.reset()
    start = time.perf_counter()
    if SPY is not None:
        SPY.step(name)
    if WATCHDOG is not None:  # faulthandler writes to the file's descriptor: mark the step there
        WATCHDOG.flush()
        import os

        os.write(WATCHDOG.fileno(), f"\n=== step {name} at {start:.3f}\n".encode())
    profiler = None
    if PROFILE and (PROFILE == "all" or any(name.startswith(p) for p in PROFILE.split(","))):
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    before = process_times()
    action()
    call = time.perf_counter() - start  # the action's own call (open: until viewer.open returned)
    call_cpu = process_times(before)
    done = process(app, 900.0 if until is not None else wait, until)
    if until is not None:
        process(app, wait)
    if profiler is not None:
        import pstats

        profiler.disable()
        if PROFILE_DIR:
            PROFILE_DIR.mkdir(parents=True, exist_ok=True)
            profiler.dump_stats(PROFILE_DIR / (name.split(",")[0].replace(" ", "_") + ".prof"))
        else:
            pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
    beat._tick()
    wall = time.perf_counter() - start
    line = record(results, name, beat.longest, beat.longest_split, wall)
    results[name]["call_s"] = round(call, 2)
    results[name]["call_cpu_s"] = call_cpu
    late = results[name]["gaps_over_50_ms"] = beat.count_between(start, float("inf"))
    results[name]["late_gaps"] = beat.late_between(start, float("inf"))
    print(f"{line}   (step {wall:.2f} s, call {call:.2f} s, {late} gaps > 50 ms)"
          + ("" if done else "  TIMED OUT"))  # fmt: skip
    if GC is not None:
        collections = results[name]["collections"] = GC.between(start, float("inf"))
        for c in sorted(collections, key=lambda c: -c["ms"])[:3]:
            print(
                f"    collection: {c['ms']} ms, generation {c['generation']}, {c['thread']}, "
                f"{c['collected']} collected, {c['at_s']} s into the step"
            )
    if call > 0.5:
        print("    call's CPU (s; faults): " + ", ".join(f"{k} {v}" for k, v in call_cpu.items()))


def process_times(since: dict | None = None) -> dict:
    """This process's user and system CPU, its main thread's CPU, its page faults (minor,
    major) and its child processes' user and system CPU (the reading process, the export's and
    the plots' children; Linux /proc), as a dict; minus ``since``'s when given.

    Which side of a long call (the open: the reading child, napari's process; CPU or the
    kernel's time faulting memory in) took the time."""
    import os
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    now = {"user": usage.ru_utime, "sys": usage.ru_stime, "main_thread": time.thread_time(),
           "minflt": usage.ru_minflt, "majflt": usage.ru_majflt,
           "children_user": 0.0, "children_sys": 0.0}  # fmt: skip
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    try:  # the machine's: every CPU's time stolen by the hypervisor, waiting for I/O, idle (s)
        cpu = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
        now.update(machine_steal=int(cpu[7]) / tick, machine_iowait=int(cpu[4]) / tick,
                   machine_idle=int(cpu[3]) / tick)  # fmt: skip
    except (OSError, IndexError, ValueError):
        pass
    me = str(os.getpid())
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[1] == me:  # ppid
            user, system = int(fields[11]) / tick, int(fields[12]) / tick  # utime, stime
            now["children_user"] += user
            now["children_sys"] += system
            try:  # which child: its command's last words (the reading process, the warm-up)
                words = (stat.parent / "cmdline").read_bytes().split(b"\0")
                what = " ".join(w.decode(errors="replace") for w in words if w)[-60:]
            except OSError:
                what = "?"
            now[f"child {stat.parent.name} {what}"] = user + system
    if since is None:
        return now
    return {k: round(v - since.get(k, 0.0), 3) if isinstance(v, float) else v - since[k]
            for k, v in now.items()}  # fmt: skip


def synthetic_image(size: int, channels: int) -> Any:
    from dataclasses import replace

    from napari_sigma.synthetic.generator import make_synthetic

    tile = min(size, 256)
    sample = make_synthetic(seed=0, shape=(tile, tile), n_channels=channels, grain_size=20.0)
    reps = -(-size // tile)
    counts = np.tile(np.asarray(sample.image.counts), (reps, reps, 1))[:size, :size]
    return replace(sample.image, counts=np.ascontiguousarray(counts), title=f"synthetic {size}")


def stroke(layer: Any, start, end, app: Any, moves: int = 30) -> None:
    """A user's brush stroke with the layer's mode and label (the user chose them before, each a
    step of its own): press, ``moves`` mouse moves (events processed between), release."""
    from dataclasses import dataclass

    from napari.utils._proxies import ReadOnlyWrapper
    from napari.utils.interactions import (
        mouse_move_callbacks,
        mouse_press_callbacks,
        mouse_release_callbacks,
    )

    @dataclass
    class Event:
        type: str
        position: tuple
        is_dragging: bool = False
        dims_displayed: tuple = (0, 1)
        dims_point: Any = None
        view_direction: Any = None
        pos: tuple = (0, 0)
        button: int = 1
        handled: bool = False
        modifiers: tuple = ()

    scale = np.asarray(layer.scale)

    def event(kind, where, dragging):
        pos = tuple(float(v) for v in np.asarray(where) * scale)
        return ReadOnlyWrapper(Event(kind, pos, dragging, dims_point=pos))

    mouse_press_callbacks(layer, event("mouse_press", start, False))
    for t in np.linspace(0, 1, moves):
        where = np.asarray(start) + t * (np.asarray(end) - np.asarray(start))
        mouse_move_callbacks(layer, event("mouse_move", where, True))
        app.processEvents()
    mouse_release_callbacks(layer, event("mouse_release", end, False))


def blocky_labels(shape: tuple[int, int], n: int = 6, block: int = 16) -> np.ndarray:
    """Labels 1..n in square blocks (napari's own costs do not depend on the values)."""
    ny, nx = shape
    coarse = np.random.default_rng(0).integers(1, n + 1, (ny // block + 1, nx // block + 1))
    return np.ascontiguousarray(np.kron(coarse, np.ones((block, block)))[:ny, :nx], np.int32)


def scratch_dir(prefix: str) -> str:
    """A new temporary folder, removed with what is in it when the benchmark exits (each run
    left its recovery folder and its export, 27 MB at 1024², in the temporary directory)."""
    import atexit
    import shutil

    path = tempfile.mkdtemp(prefix=prefix)
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def load_average() -> list[float]:
    import os

    return [round(v, 2) for v in os.getloadavg()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", type=Path, help="an EDS file to open (default: synthetic)")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--channels", type=int, default=2048)
    parser.add_argument("--binning", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("bench_out/gui_heartbeat.json"))
    parser.add_argument("--profile", default="", help="profile steps starting with this")
    parser.add_argument("--profile-dir", type=Path, help="write the profiles there")
    parser.add_argument(
        "--watchdog", type=Path,
        help="write every thread's stack there whenever a tick is over 100 ms late "
        "(faulthandler's watchdog thread). UNSAFE: it reads running threads' frames and "
        "crashed the benchmark (segfault) in 6 of 10 runs; it does not show which thread holds "
        "the GIL. Use --py-spy",
    )  # fmt: skip
    parser.add_argument(
        "--py-spy", type=Path,
        help="write py-spy's stacks of every thread (Python frames) there whenever a tick is "
        "over 100 ms late, taken from a monitor process (py-spy must be installed)",
    )  # fmt: skip
    parser.add_argument(
        "--py-spy-ms", type=float, default=100.0,
        help="how late a tick is when --py-spy dumps the stacks (default 100 ms: the criterion; "
        "lower to see what the shorter gaps are)",
    )  # fmt: skip
    parser.add_argument(
        "--thread-clocks", action="store_true",
        help="also read every other thread's CPU and run-queue wait at each tick (Linux; "
        "~0.06 ms of the main thread's CPU per tick with 60 threads): each gap over 50 ms in --out's "
        "late_gaps gets the other threads' run-queue wait (a thread holding the GIL while it "
        "waits for a core keeps the main thread waiting) and the three busiest threads",
    )  # fmt: skip
    parser.add_argument(
        "--gc", action="store_true",
        help="record every garbage collection (gc.callbacks: thread, generation, ms): each "
        "step's collections over 5 ms go to --out's 'collections' and the three longest are "
        "printed",
    )  # fmt: skip
    parser.add_argument(
        "--no-plugin", action="store_true",
        help="napari alone: the same image and a Labels layer of phases, without the plugin "
        "docked (what napari's own drawing costs in each step)",
    )  # fmt: skip
    if len(sys.argv) == 6 and sys.argv[1] == "--spy-monitor":  # the --py-spy monitor process
        spy_monitor(int(sys.argv[2]), sys.argv[3], sys.argv[4], float(sys.argv[5]))
        return
    args = parser.parse_args()
    global PROFILE, PROFILE_DIR, WATCHDOG, SPY, GC
    PROFILE, PROFILE_DIR = args.profile, args.profile_dir
    if args.gc:
        GC = Collections()
    if args.watchdog is not None:
        print("--watchdog: faulthandler's dumps may crash this process (see --help); --py-spy "
              "is safe", file=sys.stderr)  # fmt: skip
        WATCHDOG = args.watchdog.open("w")

    import os

    # the autosaves of the benchmark's edits: not in the user's cache, where the next open of the
    # same file would offer to restore them; a folder of its own, removed at exit
    if "NAPARI_SIGMA_RECOVERY_DIR" not in os.environ:
        os.environ["NAPARI_SIGMA_RECOVERY_DIR"] = scratch_dir("bench-recovery-")

    import napari
    from qtpy.QtWidgets import QApplication

    from napari_sigma._napari.layers import spectrum_image_layers

    load_before = load_average()
    print(f"load average before: {load_before}")
    viewer = napari.Viewer(show=True)
    viewer.window.resize(1920, 1080)
    app = QApplication.instance()
    beat = Heartbeat(per_thread=args.thread_clocks)
    if args.py_spy is not None:
        import atexit

        SPY = SpyClock(args.py_spy, args.py_spy_ms)
        atexit.register(SPY.close)  # also when a step fails
    results: dict = {}
    process(app, 1.0)
    if args.file is not None:
        step(results, "open", beat, app, lambda: viewer.open(str(args.file), plugin=PLUGIN))
    else:
        image = synthetic_image(args.size, args.channels)

        def add():
            for data, kwargs, kind in spectrum_image_layers(image):
                getattr(viewer, f"add_{kind}")(data, **kwargs)

        step(results, "open (add layers)", beat, app, add)
    if args.no_plugin:
        layer = napari_alone(viewer, results, beat, app)
    else:
        layer = with_plugin(viewer, results, beat, app, args)
    if layer is None:
        return
    load_after = load_average()
    print(f"load average after: {load_after}")
    report = {"source": str(args.file or f"synthetic {args.size}x{args.size}x{args.channels}"),
              "plugin": not args.no_plugin, "tick_ms": TICK_MS,
              "load_average": {"before": load_before, "after": load_after},
              "steps": results}  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"written {args.out}")
    if WATCHDOG is not None:
        import faulthandler

        faulthandler.cancel_dump_traceback_later()
    viewer.close()


def edit_steps(results: dict, beat: Heartbeat, app: Any, layer: Any) -> None:
    """Label switch, paint mode, strokes with an existing and a new label, fill, undo: napari's
    own tools, one user action per step (a user picks the label, clicks the brush, then paints:
    each is measured on its own)."""
    ny, nx = layer.data.shape
    step(results, "label switch", beat, app, lambda: setattr(layer, "selected_label", 2))
    step(results, "paint mode", beat, app, lambda: setattr(layer, "mode", "paint"))
    step(results, "brush stroke, existing label", beat, app,
         lambda: stroke(layer, (ny * 0.3, nx * 0.2), (ny * 0.3, nx * 0.6), app))  # fmt: skip
    new = int(np.asarray(layer.data).max()) + 1
    step(results, "new label", beat, app, lambda: setattr(layer, "selected_label", new))
    step(results, "brush stroke, new label", beat, app,
         lambda: stroke(layer, (ny * 0.6, nx * 0.2), (ny * 0.6, nx * 0.6), app))  # fmt: skip

    def fill():  # with a label other than the one there (a fill with the same label does nothing)
        centre = (ny // 2, nx // 2)
        with layer.block_history():
            layer.fill(centre, 1 + int(np.asarray(layer.data)[centre]) % 6)

    step(results, "fill", beat, app, fill)
    step(results, "undo", beat, app, layer.undo)


def napari_alone(viewer: Any, results: dict, beat: Heartbeat, app: Any) -> Any:
    """The steps napari does by itself, on a Labels layer like the plugin's, nothing docked."""
    from napari_sigma._napari import editing
    from napari_sigma._napari.phase_model import PhaseModel

    cube = next(la for la in viewer.layers if la.ndim == 3)
    shape = cube.data.shape[1:]
    labels = blocky_labels(shape, block=max(16, shape[0] // 8))  # a fill covers 1/64 of it
    holder = {}

    total = viewer.layers[0]  # the total counts: the plugin's phases layer has its calibration

    def add():
        holder["layer"] = viewer.add_labels(
            labels, colormap=PhaseModel.from_names(list("abcdef")).colormap(),
            scale=total.scale, units=total.units,
        )  # fmt: skip

    def dock_a_label():
        from qtpy.QtWidgets import QLabel

        viewer.window.add_dock_widget(QLabel("a dock of napari's own"), area="right")

    step(results, "dock (a QLabel)", beat, app, dock_a_label)
    step(results, "result appearing (add Labels layer)", beat, app, add)
    layer = holder["layer"]
    edit_steps(results, beat, app, layer)
    edit = editing.merge_phases(np.asarray(layer.data), [1, 2], 1)
    step(results, "merge (the same write, data_setitem)", beat, app,
         lambda: editing.apply_to_layer(layer, edit))  # fmt: skip
    return layer


def with_plugin(viewer: Any, results: dict, beat: Heartbeat, app: Any, args: Any) -> Any:
    from napari_sigma._napari import state

    holder = {}

    def dock():
        holder["w"] = viewer.window.add_plugin_dock_widget(PLUGIN, "napari-sigma")[1]

    step(results, "dock", beat, app, dock,
         until=lambda: holder["w"].built and not holder["w"].spectrum.loading)  # fmt: skip
    sigma = holder["w"]
    analysis, phases, latent = sigma.analysis, sigma.phases, sigma.latent
    form = analysis.form
    form.binning.value, form.epochs.value = args.binning, args.epochs
    form.phases.value, form.device.value = "6", "cpu"
    arrived = {}
    on_result = analysis._on_result

    def timed_on_result(*a):
        arrived["t"] = time.perf_counter()
        if "result" in PROFILE.split(","):  # --profile result: from the result's arrival only
            import cProfile

            arrived["profiler"] = cProfile.Profile()
            arrived["profiler"].enable()
        return on_result(*a)

    analysis._on_result = timed_on_result
    started = time.perf_counter()
    step(results, "run + result appearing", beat, app, form.run.native.click,
         until=lambda: analysis.worker is None and not analysis.adding)  # fmt: skip
    if "profiler" in arrived:
        import pstats

        arrived["profiler"].disable()
        if PROFILE_DIR:
            PROFILE_DIR.mkdir(parents=True, exist_ok=True)
            arrived["profiler"].dump_stats(PROFILE_DIR / "result_appearing.prof")
        else:
            pstats.Stats(arrived["profiler"]).sort_stats("cumulative").print_stats(40)
    if "t" in arrived:  # the same step, split where the result arrived in the main thread
        end = time.perf_counter()
        run = beat.longest_between(started, arrived["t"])
        result = beat.longest_between(arrived["t"], end + 1)
        for name, gap, start, stop in (
            ("run (analysis in a worker)", run, started, arrived["t"]),
            ("result appearing", result, arrived["t"], end + 1),
        ):
            line = record(results, name, *gap, min(stop, end) - start)
            late = results[name]["gaps_over_50_ms"] = beat.count_between(start, stop)
            results[name]["late_gaps"] = beat.late_between(start, stop, origin=started)
            print(f"{line}   ({late} gaps > 50 ms)")
            if GC is not None:
                results[name]["collections"] = GC.between(start, stop)
    layer = analysis.last_layers.phases if analysis.last_layers else None
    if layer is None:
        print("the run failed:", analysis.progress_label.text())
        return None
    step(results, "table statistics ready", beat, app, lambda: None,
         until=lambda: phases.table_data is not None)  # fmt: skip
    edit_steps(results, beat, app, layer)
    points = np.asarray(state.result_of(layer).latent)[:, :2]
    lo, hi = np.percentile(points, 10, axis=0), np.percentile(points, 30, axis=0)
    box = [(lo[0], lo[1]), (hi[0], lo[1]), (hi[0], hi[1]), (lo[0], hi[1])]
    step(results, "lasso", beat, app, lambda: latent.assign_selection(box))
    step(results, "merge", beat, app, lambda: phases.merge_selected([1, 2]))
    step(results, "split", beat, app, lambda: phases.split_selected(1, 2),
         until=lambda: not phases.busy and not phases.pending_updates())  # fmt: skip
    phases.rename(3, "renamed")
    step(results, "rename + undo", beat, app, phases.undo)
    out_dir = Path(scratch_dir("bench-export-"))
    step(results, "export", beat, app, lambda: phases.export_in_background(out_dir),
         until=lambda: not phases.exporting)  # fmt: skip
    again = Path(scratch_dir("bench-export-"))  # a user exporting again (the child kept warm)
    step(results, "export again", beat, app, lambda: phases.export_in_background(again),
         until=lambda: not phases.exporting)  # fmt: skip
    return layer


if __name__ == "__main__":
    main()
