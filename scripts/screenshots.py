"""Screenshots of the napari plugin for the docs: the sample, the dock widgets, an analysis.

Opens a 1920x1080 napari window, loads the synthetic sample, docks the plugin ("napari-sigma", all
tools in tabs) through napari's Plugins-menu code path (a failure stops the script), runs the
phase analysis from its Analysis tab and writes PNGs to ``docs/images/``. Needs a display: without ``DISPLAY`` it re-runs itself under
``xvfb-run``::

    python scripts/screenshots.py [--out docs/images] [--epochs 10] [--timeout 600]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

PLUGIN = "napari-sigma-eds"
MAIN_WIDGET = "napari-sigma"  # the whole plugin in one tabbed dock
WINDOW_SIZE = (1920, 1080)


def ensure_display() -> None:
    """Re-run this script under ``xvfb-run`` when there is no X display."""
    if os.environ.get("DISPLAY") or os.environ.get("NAPARI_SIGMA_XVFB"):
        return
    xvfb_run = shutil.which("xvfb-run")
    if xvfb_run is None:
        sys.exit("no DISPLAY and no xvfb-run: install xvfb or run under a display")
    os.environ["NAPARI_SIGMA_XVFB"] = "1"
    screen = f"-screen 0 {WINDOW_SIZE[0]}x{WINDOW_SIZE[1]}x24"
    os.execv(xvfb_run, [xvfb_run, "-a", "-s", screen, sys.executable, *sys.argv])


def wait_for(condition, timeout: float, app: Any) -> bool:
    """Process Qt events until ``condition()`` is true or ``timeout`` seconds pass."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        app.processEvents()
        if condition():
            return True
        time.sleep(0.05)
    return False


def dock_plugin(viewer: Any) -> Any:
    """Dock the plugin from the Plugins menu's code path (an error stops the script)."""
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, MAIN_WIDGET)
    return widget


def load_sample(viewer: Any) -> None:
    """Open the synthetic sample through napari's sample menu code path."""
    viewer.open_sample(PLUGIN, "synthetic")


def run_analysis(widget: Any, epochs: int, timeout: float, app: Any) -> bool:
    """Run the analysis widget on its current source and wait for it to finish."""
    if epochs:
        widget.form.epochs.value = epochs
    worker = widget.run()
    if worker is None:
        print("the analysis did not start")
        return False
    finished = wait_for(lambda: widget.worker is None, timeout, app)
    print(f"analysis: {widget.progress_label.text()}")
    return finished and widget.last_layers is not None


def show_spectra(viewer: Any, widget: Any, app: Any) -> None:
    """Put a cursor spectrum on the Spectrum tab."""
    wait_for(lambda: not widget.loading, 120, app)
    image = widget.spectrum_image
    size = image.pixel_size_um or 1.0
    rows, cols = image.shape
    widget.update_cursor((rows * 0.4 * size, cols * 0.6 * size))
    wait_for(lambda: False, 0.5, app)
    settle_plot(widget.plot, app)


def settle_plot(plot: Any, app: Any) -> None:
    """Draw a plot's pending change now and wait for its rendering (in the plot thread)."""
    plot.flush()
    plot.canvas.wait_rendered(timeout=30.0)
    wait_for(lambda: False, 0.2, app)


def select_phase(viewer: Any, sigma: Any, app: Any) -> None:
    """Select phase 2 of the new phases layer and two rows of the table (their spectra)."""
    layer = sigma.analysis.last_layers.phases
    viewer.layers.selection.active = layer
    layer.selected_label = 2
    sigma.phases.select_ids(sigma.phases.row_ids()[:3])
    wait_for(lambda: sigma.phases.table_data is not None, 60, app)
    wait_for(lambda: False, 1.5, app)
    settle_plot(sigma.phases.spectrum_plot, app)


def save(path: Path, image: Any) -> None:
    """Save an RGBA screenshot array or a QPixmap/QImage to ``path``."""
    if hasattr(image, "save"):
        image.save(str(path))
    else:
        from skimage.io import imsave

        imsave(path, image, check_contrast=False)
    print(f"wrote {path}")


def close(viewer: Any) -> None:
    """Close the viewer once the plugin's background workers are done."""
    from superqt.utils import WorkerBase

    WorkerBase.await_workers(msecs=120_000)
    viewer.close()


def main(argv: list[str] | None = None) -> int:
    """Make the screenshots; returns a process exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parents[1] / "docs" / "images")
    parser.add_argument("--epochs", type=int, default=0, help="autoencoder epochs (0: preset)")
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args(argv)
    ensure_display()
    import napari
    from qtpy.QtWidgets import QApplication

    args.out.mkdir(parents=True, exist_ok=True)
    viewer = napari.Viewer(show=True, title="napari-sigma")
    app = QApplication.instance()
    viewer.window._qt_window.resize(*WINDOW_SIZE)
    load_sample(viewer)
    sigma = dock_plugin(viewer)
    # its tabs are built once the preload thread has imported their modules (as a user sees
    # them): a tab built here while that thread imports matplotlib failed on matplotlib's
    # partially imported modules (ImportError in matplotlib.transforms, load 20)
    if not wait_for(lambda: sigma.built, args.timeout, app):
        close(viewer)
        return 1
    sigma.show_tab("spectrum")
    show_spectra(viewer, sigma.spectrum, app)
    save(args.out / "sample.png", viewer.screenshot(canvas_only=False, flash=False))
    save(args.out / "spectrum_widget.png", sigma.grab())
    sigma.show_tab("analysis")
    if not run_analysis(sigma.analysis, args.epochs, args.timeout, app):
        close(viewer)
        return 1
    select_phase(viewer, sigma, app)
    save(args.out / "analysis.png", viewer.screenshot(canvas_only=False, flash=False))
    for key in ("phases", "latent", "analysis"):
        sigma.show_tab(key)
        wait_for(lambda: False, 1.5, app)
        canvas = sigma.latent.canvas if key == "latent" else None
        if canvas is not None:
            canvas.wait_rendered(timeout=30.0)
            wait_for(lambda: False, 0.2, app)
        elif key == "phases":
            settle_plot(sigma.phases.spectrum_plot, app)
        save(args.out / f"{key}_widget.png", sigma.grab())
    close(viewer)
    return 0


if __name__ == "__main__":
    sys.exit(main())
