"""io/'s splits (eighteenth session): the names other modules, tests and users import from the
split modules are still there, as the same object as in their new module, and every module
imports first in a fresh process (no import cycle)."""

import pytest

from module_moves import assert_each_imports_first, assert_moved_names_kept

KEPT = {
    "export": {
        "result_files": (
            "write_labels_tiff",
            "read_labels_tiff",
            "write_maps_tiff",
            "write_spectra_csv",
            "write_stats_csv",
        ),
        "run_record": ("to_jsonable", "write_run_json", "run_info"),
        "export_sums": (
            "_exact_phase_sums",
            "_phase_abundances",
            "_report_reads_the_cube",
            "_report_sums",
        ),
    },
    "mineralogy": {
        "map_abundances": (
            "NEAR_IDENTICAL",
            "BASIS_DEPTH",
            "basis_labels",
            "abundance_fractions",
            "abundance_basis",
            "known_sums",
            "_similar_groups",
        ),
        "report_sums": ("CubeSums", "cube_sums"),
        "mineral_tables": ("ERR_WT_NOTE", "phase_quant_rows", "write_html", "_write_rows"),
    },
    "reading": {
        "decoding": ("_plain_hdf5_dataset", "_read_into_image", "store_counts"),
        "signals": (
            "_build_image",
            "_build_spectrum",
            "_find_spectrum",
            "_find_spectrum_image",
            "_no_image_cause",
        ),
    },
    "isolation": {
        "reader_child": ("_serve",),
        "reader_process": ("_POLL_S", "_Worker"),
        "shared_arrays": ("_SHARED_DIR", "_SHARED_FILE_MIN_BYTES", "_shared_file_prefix"),
    },
}


@pytest.mark.parametrize("old", sorted(KEPT))
def test_moved_names_are_importable_from_where_they_were(old):
    assert_moved_names_kept("napari_sigma.io", old, KEPT[old])


def test_each_module_imports_first_in_a_fresh_process():
    modules = [old for old in sorted(KEPT)] + [m for old in sorted(KEPT) for m in KEPT[old]]
    modules.append("calibration")  # reading's axes (its helpers are not re-exported)
    assert_each_imports_first("napari_sigma.io", modules)


def test_the_modules_moved_into_subpackages_keep_their_old_names():
    """io/'s modules moved into packages by domain (nineteenth session): each old name imports
    the module itself (the same object), so a name patched through either path is patched for
    both, and the package's public names come from the moved modules."""
    import importlib

    import napari_sigma.io as io

    for old, new in io.MOVED_MODULES.items():
        moved = importlib.import_module(new)
        assert importlib.import_module(f"napari_sigma.io.{old}") is moved, old
        assert getattr(io, old) is moved and moved.__name__ == new, old
    from napari_sigma.io.readers import reading
    from napari_sigma.io.reading import read_spectrum_image

    assert read_spectrum_image is reading.read_spectrum_image is io.read_spectrum_image
    assert io.export_result.__module__ == "napari_sigma.io.results.export"


def test_a_name_patched_through_an_old_path_is_patched_in_the_moved_module(monkeypatch):
    from napari_sigma.io import validation
    from napari_sigma.io.readers import validation as moved

    monkeypatch.setattr(validation, "SAMPLE_PIXELS", 7)
    assert moved.SAMPLE_PIXELS == 7


def test_the_old_names_import_first_in_a_fresh_process():
    from napari_sigma.io import MOVED_MODULES

    assert_each_imports_first("napari_sigma.io", ["reading", "isolation", "export", "mineralogy"])
    assert_each_imports_first(
        "napari_sigma", sorted(m.removeprefix("napari_sigma.") for m in MOVED_MODULES.values())
    )
