"""phases/finding.py's and phases/mixture.py's splits (sixteenth session), statistics.py's and
twins.py's (eighteenth): the names other modules, tests and users import from the split modules are
still there, as the same object as in their new module, and every module imports first in a fresh
process (no import cycle)."""

import pytest

from module_moves import assert_each_imports_first, assert_moved_names_kept

KEPT = {
    "finding": {
        "homogeneity": ("local_variance", "homogeneous_pixels"),
        "merging": ("merge_close_phases", "_merged", "_noise_floor"),
        "potts": ("ICM_BAND_ROWS", "_potts_icm", "_potts_icm_steps"),
        "searches": ("_split_compositions", "_unexplained", "_with_trace"),
        "zones": ("_without_mixture_zones", "_without_boundary_zones"),
        "support": ("_without_unsupported_phases", "_placed_by_neighbours"),
    },
    "statistics": {
        "tables": ("PhaseTable", "main_elements", "phase_display_name"),
        "pixel_sums": ("sum_pixels", "add_pixels", "block_sums", "region_sizes", "_groups"),
        "group_sums": ("GroupSums",),
    },
    "twins": {
        "twin_models": (
            "TWIN_SEPARATION",
            "TWIN_CONTRAST",
            "TwinSettings",
            "TwinModel",
            "twin_model",
            "pixel_separation",
            "twin_pairs",
        ),
        "twin_evidence": (
            "pixel_scores",
            "measured_midpoint",
            "neighbour_phases",
            "margin_log_ratios",
            "significant_changes",
            "_evidence_sums",
            "_near_other",
        ),
    },
    "mixture": {
        "gaussians": ("Mixture", "PREDICT_CHUNK"),
        "mixture_choice": ("bic", "bic_of", "knee_k", "merge_components"),
        "mixture_fit": ("LLOYD_STEPS", "YIELD_INTERVAL_S", "torch_generator", "_fit_torch"),
        "mixture_scan": ("STAGE", "SHORT_RUN_TOLERANCE", "_fits_of", "_restarted_fits"),
    },
}


@pytest.mark.parametrize("old", sorted(KEPT))
def test_moved_names_are_importable_from_where_they_were(old):
    assert_moved_names_kept("napari_sigma.phases", old, KEPT[old])


def test_each_module_imports_first_in_a_fresh_process():
    modules = [old for old in sorted(KEPT)] + [m for old in sorted(KEPT) for m in KEPT[old]]
    assert_each_imports_first("napari_sigma.phases", modules)
