"""The longest freeze of napari's main thread per user step, with the plugin docked.

A 10 ms QTimer heartbeat runs in a real viewer; for each step (open, dock, run, label switch,
brush strokes with an existing and a new label, fill, undo, lasso, merge, split, export) the
longest gap between two ticks is the longest time the user saw napari frozen. The run's gap
includes the result appearing (layers added, the table's statistics started).

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


class Heartbeat:
    """A 10 ms QTimer; ``longest`` is the longest gap between ticks since :meth:`reset`."""

    def __init__(self) -> None:
        from qtpy.QtCore import QTimer

        self.timer = QTimer()
        self.timer.setInterval(TICK_MS)
        self.timer.timeout.connect(self._tick)
        self.last = time.perf_counter()
        self.longest = 0.0
        self.timer.start()

    def _tick(self) -> None:
        now = time.perf_counter()
        self.longest = max(self.longest, now - self.last)
        self.last = now

    def reset(self) -> None:
        self.last, self.longest = time.perf_counter(), 0.0


def process(app: Any, seconds: float, until: Any = None) -> bool:
    """Run Qt's event loop for ``seconds`` or until ``until()`` holds."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        app.processEvents()
        if until is not None and until():
            return True
        time.sleep(0.002)
    return until is None


def step(results: dict, name: str, beat: Heartbeat, app: Any, action: Any, until=None, wait=0.5):
    """Do ``action`` in the main thread, run the loop until ``until()``; record the longest gap."""
    app.processEvents()
    beat.reset()
    start = time.perf_counter()
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
    results[name]["wall_s"] = round(time.perf_counter() - start, 2)
    print(
        f"{name:28s} longest block {1e3 * beat.longest:8.1f} ms   (step {results[name]['wall_s']} s)"
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
    args = parser.parse_args()
    global PROFILE, PROFILE_DIR
    PROFILE, PROFILE_DIR = args.profile, args.profile_dir

    import napari
    from qtpy.QtWidgets import QApplication

    from napari_sigma._napari import state
    from napari_sigma._napari.layers import spectrum_image_layers

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
    step(results, "run + result appearing", beat, app, form.run.native.click,
         until=lambda: analysis.worker is None)  # fmt: skip
    layer = analysis.last_layers.phases if analysis.last_layers else None
    if layer is None:
        print("the run failed:", analysis.progress_label.text())
        return
    step(results, "table statistics ready", beat, app, lambda: None,
         until=lambda: phases.table_data is not None)  # fmt: skip
    ny, nx = layer.data.shape
    step(results, "label switch", beat, app, lambda: setattr(layer, "selected_label", 2))
    step(results, "brush stroke, existing label", beat, app,
         lambda: stroke(layer, 1, (ny * 0.3, nx * 0.2), (ny * 0.3, nx * 0.6), app))  # fmt: skip
    new = int(np.asarray(layer.data).max()) + 1
    step(results, "brush stroke, new label", beat, app,
         lambda: stroke(layer, new, (ny * 0.6, nx * 0.2), (ny * 0.6, nx * 0.6), app))  # fmt: skip

    def fill():
        with layer.block_history():
            layer.fill((ny // 2, nx // 2), 3)

    step(results, "fill", beat, app, fill)
    step(results, "undo", beat, app, layer.undo)
    points = np.asarray(state.result_of(layer).latent)[:, :2]
    lo, hi = np.percentile(points, 10, axis=0), np.percentile(points, 30, axis=0)
    box = [(lo[0], lo[1]), (hi[0], lo[1]), (hi[0], hi[1]), (lo[0], hi[1])]
    step(results, "lasso", beat, app, lambda: latent.assign_selection(box))
    step(results, "merge", beat, app, lambda: phases.merge_selected([1, 2]))
    step(results, "split", beat, app, lambda: phases.split_selected(1, 2))
    out_dir = Path(tempfile.mkdtemp())
    step(results, "export", beat, app, lambda: phases.export_in_background(out_dir),
         until=lambda: not phases.exporting)  # fmt: skip
    report = {"source": str(args.file or f"synthetic {args.size}x{args.size}x{args.channels}"),
              "tick_ms": TICK_MS, "steps": results}  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"written {args.out}")
    viewer.close()


if __name__ == "__main__":
    main()
