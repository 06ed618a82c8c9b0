"""How fast the Phases widget's table follows a brush stroke in a real napari viewer.

A 1024 x 1024 phases Labels layer over a 2048-channel uint16 cube is shown in a napari viewer
(run under Xvfb) with the Phases widget docked. Each of ``--repeats`` brush strokes (a disk of
``--brush`` pixels diameter, written by ``layer.paint`` inside ``block_history`` like a finished
user stroke) is timed from the call to the moment the table shows the new counts (layer events ->
``PhaseStatistics.update``, in a worker for a cube this large -> cells updated), then again
including the Qt repaint (``processEvents``). The median is compared with the 50 ms target; JSON goes to ``--out``.

Run: ``xvfb-run -a python benchmarks/bench_paint.py [--size 1024] [--out bench_out/paint.json]``
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from bench_interactivity import N_CHANNELS, N_PHASES, make_cube, make_labels
from napari_sigma.energy import EnergyAxis
from napari_sigma.spectrum_image import SpectrumImage

LINES = ("O_Ka", "Na_Ka", "Mg_Ka", "Al_Ka", "Si_Ka", "S_Ka", "K_Ka", "Ca_Ka", "Ti_Ka", "Fe_Ka")
TARGET_MS = 50.0


def fake_result(size: int, seed: int) -> SimpleNamespace:
    """An AnalysisResult stand-in with what the Phases widget reads."""
    rng = np.random.default_rng(seed)
    labels, _ = make_labels(size, seed)
    image = SpectrumImage(
        counts=make_cube(size, seed),
        energy=EnergyAxis(-0.01, 0.01, N_CHANNELS),
        beam_energy=15.0,
        pixel_size=0.1,
        pixel_unit="µm",
        title="bench",
    )
    return SimpleNamespace(
        image=image,
        settings=SimpleNamespace(seed=seed),
        lines=LINES,
        intensities=rng.random((size, size, len(LINES)), dtype=np.float32),
        latent=rng.normal(size=(size * size, 2)).astype(np.float32),
        latent_pixels=np.arange(size * size, dtype=np.int64),
        latent_shape=(size, size),
        bin_factor=1,
        labels=labels,
        phase_names=[f"P{k}" for k in range(1, N_PHASES + 1)],
        n_phases=N_PHASES,
        abundances=np.zeros((size, size, 0), dtype=np.float32),
        component_names=[],
    )


def table_matches(widget, layer) -> bool:
    """Whether the table shows exactly the pixel counts of the layer."""
    counts = np.bincount(np.asarray(layer.data).ravel())
    truth = {k: int(n) for k, n in enumerate(counts) if k > 0 and n > 0}
    return widget.row_pixels() == truth


def settle(widget) -> None:
    """Run Qt's event loop until the table shows the layer's current statistics."""
    from qtpy.QtWidgets import QApplication

    while widget.table_data is None or widget.pending_updates():
        QApplication.processEvents()
        time.sleep(0.0005)


def run(size: int, repeats: int, brush: int, seed: int) -> dict:
    """Time ``repeats`` brush strokes; return the figures."""
    import napari
    from qtpy.QtWidgets import QApplication

    from napari_sigma._napari.phases_widget import PhasesWidget
    from napari_sigma._napari.results import add_result_layers

    start = time.perf_counter()
    result = fake_result(size, seed)
    build_s = time.perf_counter() - start
    viewer = napari.Viewer(show=True)
    layer = add_result_layers(viewer, result, components=False).phases
    start = time.perf_counter()
    widget = PhasesWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Phases")
    QApplication.processEvents()
    settle(widget)  # a large cube's statistics are built in a worker
    first_table_s = time.perf_counter() - start
    layer.brush_size = brush
    rng = np.random.default_rng(seed)
    to_table, to_screen, correct = [], [], True
    for _ in range(repeats + 2):  # the first two strokes warm caches and are not counted
        coord = rng.integers(brush, size - brush, 2)
        label = int(rng.integers(1, N_PHASES + 2))  # sometimes a new phase
        start = time.perf_counter()
        with layer.block_history():
            layer.paint(coord, label)
        settle(widget)  # ... and updated in one: the table follows when it returns
        table_done = time.perf_counter()
        QApplication.processEvents()
        screen_done = time.perf_counter()
        correct &= table_matches(widget, layer)
        to_table.append(1000 * (table_done - start))
        to_screen.append(1000 * (screen_done - start))
    viewer.close()
    to_table, to_screen = to_table[2:], to_screen[2:]
    return {
        "size": size,
        "channels": N_CHANNELS,
        "brush_diameter": brush,
        "repeats": repeats,
        "paint_to_table_ms_median": statistics.median(to_table),
        "paint_to_table_ms_max": max(to_table),
        "paint_to_repaint_ms_median": statistics.median(to_screen),
        "target_ms": TARGET_MS,
        "meets_target": statistics.median(to_table) <= TARGET_MS,
        "table_exact_after_every_stroke": bool(correct),
        "first_table_s": first_table_s,
        "build_data_s": build_s,
        "machine": {"platform": platform.platform(), "python": platform.python_version()},
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--brush", type=int, default=20, help="brush diameter in pixels")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("bench_out/paint.json"))
    args = parser.parse_args(argv)
    figures = run(args.size, args.repeats, args.brush, args.seed)
    print(
        f"paint -> table: median {figures['paint_to_table_ms_median']:.1f} ms "
        f"(max {figures['paint_to_table_ms_max']:.1f} ms, target <= {TARGET_MS:.0f} ms, "
        f"{'met' if figures['meets_target'] else 'NOT met'}); with repaint "
        f"{figures['paint_to_repaint_ms_median']:.1f} ms; first table {figures['first_table_s']:.2f} s; "
        f"table exact: {figures['table_exact_after_every_stroke']}"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2))
    return figures


if __name__ == "__main__":
    main()
