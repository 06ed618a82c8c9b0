"""io/'s splits (eighteenth session): the names other modules, tests and users import from the
split modules are still there, as the same object as in their new module, and every module
imports first in a fresh process (no import cycle)."""

import numpy as np
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


def _old_module_names():
    from napari_sigma.io import MOVED_MODULES

    return {f"napari_sigma.io.{old}" for old in MOVED_MODULES}


def test_the_children_and_the_lists_of_modules_name_the_modules_where_they_are_now():
    """What names a module in a string (the drawing child's calls, its warm imports, the CLI's
    imports in a thread) names it where it is, and so do pickles: an old name there would
    import through the aliases, or break once they go."""
    import pickle

    from napari_sigma.io.readers.validation import DataWarning
    from napari_sigma.io.reading_process.isolation import ReadLimits
    from napari_sigma.io.results.child import CALLS, WARM_MODULES
    from napari_sigma.pipeline import preimport

    named = {module for module, _ in CALLS.values()}
    named |= {module for modules in WARM_MODULES.values() for module in modules}
    named |= set(preimport.ANALYSIS_MODULES + preimport.EXPORT_MODULES + preimport.READ_MODULES)
    assert not named & _old_module_names()
    for value in (ReadLimits(), DataWarning):
        assert b"napari_sigma.io.reading_process." in pickle.dumps(
            value
        ) or b"napari_sigma.io.readers." in pickle.dumps(value)


def test_the_reading_and_drawing_children_start_by_the_new_names(tmp_path):
    """The reading child runs ``python -m napari_sigma.io.reading_process.isolation`` (with the
    package's root on its path) and reads; the drawing child imports ``io.results.child``."""
    from napari_sigma.energy import EnergyAxis
    from napari_sigma.io.reading_process import isolation
    from napari_sigma.io.results.child import ChildProcess
    from napari_sigma.io.results.writing import write_hspy
    from napari_sigma.spectrum_image import SpectrumImage

    counts = np.arange(4 * 5 * 16, dtype=np.uint16).reshape(4, 5, 16)
    image = SpectrumImage(counts=counts, energy=EnergyAxis(0.0, 0.01, 16), beam_energy=15.0)
    path = write_hspy(tmp_path / "small.hspy", image)
    read = isolation.read_isolated("read_spectrum_image", path)
    assert np.array_equal(np.asarray(read.counts), counts)
    assert isolation._worker.process.args[1:3] == [
        "-m",
        "napari_sigma.io.reading_process.isolation",
    ]
    child = ChildProcess(expect=("phase_table",))
    try:
        assert (
            child._process.args[2] == "from napari_sigma.io.results.child import _serve; _serve()"
        )
        labels = np.ones((4, 5), dtype=np.int32)
        table = child.call("phase_table", labels, counts, counts[..., :2], ["A_Ka", "B_Ka"])
        assert table.pixels.tolist() == [20]
    finally:
        child.close()


def test_python_m_of_an_old_name_runs_the_moved_module():
    """``python -m napari_sigma.io.isolation`` (how a reader worker was started before the move,
    e.g. by a napari process older than the installed package) runs the reading child: it serves
    until its stdin closes, then ends cleanly."""
    import subprocess
    import sys

    for name in ("napari_sigma.io.isolation", "napari_sigma.io.reading_process.isolation"):
        done = subprocess.run(
            [sys.executable, "-m", name, "0"], input=b"", capture_output=True, timeout=120
        )
        assert done.returncode == 0 and done.stderr == b"", (name, done.stderr[-500:])
