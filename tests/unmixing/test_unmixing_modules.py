"""unmixing/nmf.py's split (seventeenth session): the names other modules, tests and users import
from nmf are still there, as the same object as in their new module, and every module imports
first in a fresh process (no import cycle)."""

from module_moves import assert_each_imports_first, assert_moved_names_kept

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
    assert_moved_names_kept("napari_sigma.unmixing", "nmf", MOVED)


def test_each_unmixing_module_imports_first_in_a_fresh_process():
    assert_each_imports_first("napari_sigma.unmixing", ["nmf", *MOVED])
