"""The core imports neither Qt nor napari (nor the heavy libraries at import time)."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import napari_sigma

CORE_MODULES = sorted(
    m.name
    for m in pkgutil.walk_packages(napari_sigma.__path__, "napari_sigma.")
    if not m.name.startswith("napari_sigma._napari")
)


def test_core_modules_import_neither_qt_nor_napari():
    code = (
        "import sys\n"
        f"for name in {CORE_MODULES!r}:\n"
        "    __import__(name)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'napari', 'qtpy', 'PyQt5', 'PyQt6', 'PySide2', 'PySide6', 'magicgui', 'vispy'})\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"core pulled in GUI modules: {out.stdout}"
    assert (
        "napari_sigma.pipeline.analysis" in CORE_MODULES
        and "napari_sigma.io.readers.reading" in CORE_MODULES
    )


def test_importing_the_package_is_cheap():
    code = "import sys, napari_sigma; print(','.join(m for m in ('torch', 'sklearn', 'rsciio') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
