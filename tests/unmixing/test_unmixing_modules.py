"""unmixing/nmf.py's split (seventeenth session): the names other modules, tests and users import
from nmf are still there, as the same object as in their new module, and every module imports
first in a fresh process (no import cycle)."""

import importlib
import subprocess
import sys

MOVED = {
    "nmf_start": ("EPS", "nndsvd", "vertex_rows", "_start"),
    "abundances": (
        "STAGE",
        "ABUNDANCE_CHUNK_VALUES",
        "ABUNDANCE_CPU_CHUNK_VALUES",
        "NNLS_ROWS",
        "COMPILED_NNLS_PIXELS",
        "_WARM_UPS",
        "abundance_maps",
        "nnls_maps",
        "start_compiled_warm_up",
    ),
    "block_nnls": ("_nnls_block", "_lawson_hanson", "_lawson_hanson_compiled"),
    "restricted_inverses": ("DENSE_SET_TABLE_MAX", "_set_solver", "_restricted_inverse", "_pinv"),
    "fractions": ("phase_fractions", "mean_phase_spectra", "fractions_of_shares"),
}


def test_moved_names_are_importable_from_nmf():
    nmf = importlib.import_module("napari_sigma.unmixing.nmf")
    for module, names in MOVED.items():
        home = importlib.import_module(f"napari_sigma.unmixing.{module}")
        for name in names:
            assert getattr(nmf, name) is getattr(home, name), name
            if callable(getattr(home, name)):  # defined there, not imported into it
                assert getattr(home, name).__module__ == home.__name__, name


def test_each_unmixing_module_imports_first_in_a_fresh_process():
    for module in ["nmf", *MOVED]:
        code = f"import napari_sigma.unmixing.{module}"
        assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0, module
