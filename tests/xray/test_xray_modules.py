"""xray/fitting.py's split (eighteenth session): the names other modules, tests and users import
from fitting are still there, as the same object as in their new module, and every module imports
first in a fresh process (no import cycle)."""

import importlib
import subprocess
import sys

MOVED = {
    "line_families": (
        "MIN_LINE_WEIGHT",
        "MIN_EDGE_OVERVOLTAGE",
        "SHELL_RATIO_SLACK",
        "LOWER_RATIO_SLACK",
        "ElementShell",
        "LineFamily",
        "element_families",
        "family_profile",
        "FamilyDesign",
        "family_design",
        "_shell_yield",
    ),
    "continuum": (
        "BACKGROUND_KNOT_KEV",
        "ABSORPTION_EDGES_KEV",
        "background_knots",
        "background_columns",
        "absorbed_continuum_columns",
        "reference_background",
    ),
}


def test_moved_names_are_importable_from_fitting():
    fitting = importlib.import_module("napari_sigma.xray.fitting")
    for module, names in MOVED.items():
        home = importlib.import_module(f"napari_sigma.xray.{module}")
        for name in names:
            assert getattr(fitting, name) is getattr(home, name), name
            if callable(getattr(home, name)):  # defined there, not imported into it
                assert getattr(home, name).__module__ == home.__name__, name


def test_each_fitting_module_imports_first_in_a_fresh_process():
    for module in ["fitting", *MOVED]:
        code = f"import napari_sigma.xray.{module}"
        assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0, module
