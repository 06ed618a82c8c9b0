"""The longest freeze of napari's main thread per user step, with the plugin docked.

A 10 ms QTimer heartbeat runs in a real viewer; for each step (open, dock, run, label switch,
brush strokes with an existing and a new label, fill, undo, lasso, merge, split, export) the
longest gap between two ticks is the longest time the user saw napari frozen. The run's gap
includes the result appearing (layers added, the table's statistics started). Next to it, the main
thread's CPU time during that gap: close to the gap, the main thread was working (a repaint, our
code); far below it, it was waiting (for the GIL held by another thread, or for a core).
``--watchdog FILE`` writes every thread's stack whenever a tick is 100 ms late (faulthandler's
watchdog thread needs no GIL, so it shows what the other threads do while the main thread waits).

    xvfb-run -a python benchmarks/bench_gui_heartbeat.py --size 1024 --channels 2048
    xvfb-run -a python benchmarks/bench_gui_heartbeat.py --file ../shared/data/eds/jeol/rawdata.ASW

The synthetic cube is a seeded Poisson map of six minerals (``make_synthetic``) tiled up to the
size asked (tiling keeps building it cheap; the timings do not depend on the values).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

PLUGIN = "napari-sigma-eds"
TICK_MS = 10
PROFILE = ""  # --profile STEP[,STEP..]|all: a cProfile of the steps whose name starts with STEP
PROFILE_DIR: Path | None = None  # --profile-dir: write them there (.prof) instead of printing
WATCHDOG: Any = None  # --watchdog FILE: every thread's stack when the main thread misses a tick
WATCHDOG_S = 0.1


class Heartbeat:
    """A 10 ms QTimer; ``longest`` is the longest gap between ticks since :meth:`reset`."""

    def __init__(self) -> None:
        from qtpy.QtCore import QTimer

        self.timer = QTimer()
        self.timer.setInterval(TICK_MS)
        self.timer.timeout.connect(self._tick)
        self.last = time.perf_counter()
        self.last_cpu = time.thread_time()
        self.longest = 0.0
        self.longest_cpu = 0.0  # the main thread's CPU time during the longest gap
        # (time of the tick, gap before it, the main thread's CPU time in that gap)
        self.gaps: list[tuple[float, float, float]] = []
        self.timer.start()

    def _tick(self) -> None:
        now, cpu = time.perf_counter(), time.thread_time()
        if now - self.last > self.longest:
            self.longest, self.longest_cpu = now - self.last, cpu - self.last_cpu
        self.gaps.append((now, now - self.last, cpu - self.last_cpu))
        self.last, self.last_cpu = now, cpu
        if WATCHDOG is not None:  # re-armed at every tick: fires only when one is 100 ms late
            import faulthandler

            faulthandler.dump_traceback_later(WATCHDOG_S, repeat=False, file=WATCHDOG)

    def reset(self) -> None:
        self.last, self.longest, self.gaps = time.perf_counter(), 0.0, []
        self.last_cpu, self.longest_cpu = time.thread_time(), 0.0

    def longest_between(self, start: float, end: float) -> tuple[float, float]:
        """The longest gap that ended in ``[start, end)`` (a gap belongs to where it ended), and
        the main thread's CPU time in it."""
        return max(((gap, cpu) for t, gap, cpu in self.gaps if start <= t < end), default=(0, 0))


def process(app: Any, seconds: float, until: Any = None) -> bool:
    """Run Qt's event loop for ``seconds`` or until ``until()`` holds."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        app.processEvents()
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
    if WATCHDOG is not None:  # faulthandler writes to the file's descriptor: mark the step there
        WATCHDOG.flush()
        import os

        os.write(WATCHDOG.fileno(), f"\n=== step {name} at {start:.3f}\n".encode())
    profiler = None
    if PROFILE and (PROFILE == "all" or any(name.startswith(p) for p in PROFILE.split(","))):
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    action()
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
    results[name] = {"longest_block_ms": round(1e3 * beat.longest, 1)}
    results[name]["main_thread_cpu_ms"] = round(1e3 * beat.longest_cpu, 1)
    results[name]["wall_s"] = round(time.perf_counter() - start, 2)
    print(
        f"{name:28s} longest block {1e3 * beat.longest:8.1f} ms (main thread CPU "
        f"{1e3 * beat.longest_cpu:6.1f})   (step {results[name]['wall_s']} s)"
        + ("" if done else "  TIMED OUT")
    )


def synthetic_image(size: int, channels: int) -> Any:
    from dataclasses import replace

    from napari_sigma.synthetic.generator import make_synthetic

    tile = min(size, 256)
    sample = make_synthetic(seed=0, shape=(tile, tile), n_channels=channels, grain_size=20.0)
    reps = -(-size // tile)
    counts = np.tile(np.asarray(sample.image.counts), (reps, reps, 1))[:size, :size]
    return replace(sample.image, counts=np.ascontiguousarray(counts), title=f"synthetic {size}")


def stroke(layer: Any, label: int, start, end, app: Any, moves: int = 30) -> None:
    """A user's brush stroke: press, ``moves`` mouse moves (events processed between), release."""
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
    layer.mode, layer.selected_label = "paint", label

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
        "(faulthandler's watchdog thread needs no GIL: it shows which thread holds it)",
    )  # fmt: skip
    parser.add_argument(
        "--no-plugin", action="store_true",
        help="napari alone: the same image and a Labels layer of phases, without the plugin "
        "docked (what napari's own drawing costs in each step)",
    )  # fmt: skip
    args = parser.parse_args()
    global PROFILE, PROFILE_DIR, WATCHDOG
    PROFILE, PROFILE_DIR = args.profile, args.profile_dir
    if args.watchdog is not None:
        WATCHDOG = args.watchdog.open("w")

    import napari
    from qtpy.QtWidgets import QApplication

    from napari_sigma._napari.layers import spectrum_image_layers

    load_before = load_average()
    print(f"load average before: {load_before}")
    viewer = napari.Viewer(show=True)
    viewer.window.resize(1920, 1080)
    app = QApplication.instance()
    beat = Heartbeat()
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
    """Label switch, strokes with an existing and a new label, fill, undo: napari's own tools."""
    ny, nx = layer.data.shape
    step(results, "label switch", beat, app, lambda: setattr(layer, "selected_label", 2))
    step(results, "brush stroke, existing label", beat, app,
         lambda: stroke(layer, 1, (ny * 0.3, nx * 0.2), (ny * 0.3, nx * 0.6), app))  # fmt: skip
    new = int(np.asarray(layer.data).max()) + 1
    step(results, "brush stroke, new label", beat, app,
         lambda: stroke(layer, new, (ny * 0.6, nx * 0.2), (ny * 0.6, nx * 0.6), app))  # fmt: skip

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
        results["run (analysis in a worker)"] = {
            "longest_block_ms": round(1e3 * run[0], 1),
            "main_thread_cpu_ms": round(1e3 * run[1], 1),
            "wall_s": round(arrived["t"] - started, 2),
        }
        results["result appearing"] = {
            "longest_block_ms": round(1e3 * result[0], 1),
            "main_thread_cpu_ms": round(1e3 * result[1], 1),
            "wall_s": round(end - arrived["t"], 2),
        }
        for name in ("run (analysis in a worker)", "result appearing"):
            print(
                f"  {name:26s} longest block {results[name]['longest_block_ms']:8.1f} ms "
                f"(main thread CPU {results[name]['main_thread_cpu_ms']:6.1f})"
            )
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
         until=lambda: not phases.busy)  # fmt: skip
    phases.rename(3, "renamed")
    step(results, "rename + undo", beat, app, phases.undo)
    out_dir = Path(tempfile.mkdtemp())
    step(results, "export", beat, app, lambda: phases.export_in_background(out_dir),
         until=lambda: not phases.exporting)  # fmt: skip
    return layer


if __name__ == "__main__":
    main()
