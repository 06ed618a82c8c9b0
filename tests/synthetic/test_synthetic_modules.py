"""synthetic/generator.py's split (eighteenth session): the names other modules, tests and users
import from generator are still there, as the same object as in their new module (MINERALS too,
built on first use), and every module imports first in a fresh process (no import cycle)."""

import importlib

from module_moves import assert_each_imports_first, assert_moved_names_kept

MOVED = {
    "phase_specs": ("PhaseSpec", "formula_atoms", "weight_fractions", "mineral", "_atomic_number"),
    "spectra": (
        "FWHM_MNKA_KEV",
        "TAKEOFF_DEG",
        "LINE_SCALE",
        "KRAMERS_CONSTANT",
        "NOISE_THRESHOLD_KEV",
        "detector_efficiency",
        "phase_spectra",
    ),
    "layouts": ("MIN_FRACTION", "grain_layout", "particle_layout", "mixing_fractions"),
    "counts": ("CHUNK_PIXELS", "alias_tables", "sample_counts"),
}


def test_moved_names_are_importable_from_generator():
    assert_moved_names_kept("napari_sigma.synthetic", "generator", MOVED)
    generator = importlib.import_module("napari_sigma.synthetic.generator")
    assert generator.mineral("quartz") is generator.MINERALS["quartz"]


def test_each_synthetic_module_imports_first_in_a_fresh_process():
    assert_each_imports_first("napari_sigma.synthetic", ["generator", *MOVED])
