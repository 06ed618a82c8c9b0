"""Screenshots of the napari plugin for the docs: the sample, the dock widgets, an analysis.

Opens a napari viewer, loads the synthetic sample, docks the plugin's widgets through napari's
Plugins-menu code path (a widget that fails to dock stops the script with an error), runs the phase analysis through the analysis widget, and
writes PNGs to ``docs/images/``. Needs a display: without ``DISPLAY`` it re-runs itself under
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
WIDGETS = {
    "spectrum": "Spectrum and elements",
    "analysis": "Phase analysis",
    "latent": "Latent space",
    "phases": "Phases",
}
WINDOW_SIZE = (1700, 1050)


def ensure_display() -> None:
    """Re-run this script under ``xvfb-run`` when there is no X display."""
    if os.environ.get("DISPLAY") or os.environ.get("NAPARI_SIGMA_XVFB"):
        return
    xvfb_run = shutil.which("xvfb-run")
    if xvfb_run is None:
        sys.exit("no DISPLAY and no xvfb-run: install xvfb or run under a display")
    os.environ["NAPARI_SIGMA_XVFB"] = "1"
    screen = f"-screen 0 {WINDOW_SIZE[0] + 100}x{WINDOW_SIZE[1] + 100}x24"
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


def dock_widgets(viewer: Any) -> dict[str, Any]:
    """Dock each plugin widget from the Plugins menu's code path (an error stops the script)."""
    docked = {}
    for key, title in WIDGETS.items():
        _, docked[key] = viewer.window.add_plugin_dock_widget(PLUGIN, title, tabify=False)
    return docked


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
    """Put a cursor spectrum and a phase spectrum on the Spectrum widget."""
    image = widget.spectrum_image
    if image is None:
        return
    size = image.pixel_size_um or 1.0
    rows, cols = image.shape
    widget.update_cursor((rows * 0.4 * size, cols * 0.6 * size))
    labels = [layer for layer in viewer.layers if layer.__class__.__name__ == "Labels"]
    if labels:
        viewer.layers.selection.active = labels[-1]
        labels[-1].selected_label = 1
    wait_for(lambda: False, 0.5, app)


def save(path: Path, image: Any) -> None:
    """Save an RGBA screenshot array or a QPixmap/QImage to ``path``."""
    if hasattr(image, "save"):
        image.save(str(path))
    else:
        from skimage.io import imsave

        imsave(path, image, check_contrast=False)
    print(f"wrote {path}")


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
    docked = dock_widgets(viewer)
    wait_for(lambda: False, 1.0, app)
    save(args.out / "sample.png", viewer.screenshot(canvas_only=False, flash=False))
    show_spectra(viewer, docked["spectrum"], app)
    save(args.out / "spectrum_widget.png", docked["spectrum"].grab())
    if not run_analysis(docked["analysis"], args.epochs, args.timeout, app):
        viewer.close()
        return 1
    wait_for(lambda: False, 1.0, app)
    save(args.out / "analysis.png", viewer.screenshot(canvas_only=False, flash=False))
    for key in ("analysis", "latent", "phases"):
        save(args.out / f"{key}_widget.png", docked[key].grab())
    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
