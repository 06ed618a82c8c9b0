"""xray/fitting.py's split (eighteenth session): the names other modules, tests and users import
from fitting are still there, as the same object as in their new module, and every module imports
first in a fresh process (no import cycle)."""

from module_moves import assert_each_imports_first, assert_moved_names_kept

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
    assert_moved_names_kept("napari_sigma.xray", "fitting", MOVED)


def test_each_fitting_module_imports_first_in_a_fresh_process():
    assert_each_imports_first("napari_sigma.xray", ["fitting", *MOVED])
