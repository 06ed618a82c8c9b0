"""minerals/identify.py's split (sixteenth session): every name moved out of it is still
importable from it, as the same object as in its new module, and every module imports first in a
fresh process (no import cycle)."""

import pytest

from module_moves import assert_each_imports_first, assert_moved_names_kept

MOVED = {
    "scores": (
        "INVISIBLE",
        "LIGHT",
        "RELATIVE_TOLERANCE",
        "ABSOLUTE_TOLERANCE_WT",
        "IGNORED_LIGHT_PENALTY",
        "CARBON_SCALE_SIGMA",
        "CARBON_SCALES",
        "Candidate",
        "_comparable",
        "tolerance_sigma",
        "_chi2",
        "_score",
        "_carbon_scales",
        "_rescaled",
        "_carbon_scaled",
        "_visible_elements",
        "_single",
        "renormalised_without",
        "_equivalent",
    ),
    "series": (
        "PURE_MEMBER",
        "SERIES_PENALTY",
        "_mixture",
        "series_fractions",
        "series_name",
        "_series_candidate",
        "SERIES_RANGES",
        "_prefer_series",
        "_series_with_carbon_scale",
        "_series_composition",
    ),
    "ranking": (
        "TRACE_MIN_WT",
        "UNMEASURED_LIGHT_PENALTY",
        "COATING_MAX_WT",
        "CONTAMINANT_MAX_AT",
        "rank_candidates",
        "comparison_variants",
        "_candidates",
        "contaminant_sets",
        "_with_contaminants",
    ),
    "films": (
        "FILM_NM",
        "FILM_OXYGEN_MOL_CM3",
        "DEFAULT_FOIL_NM",
        "OXYGEN_LEFT_OUT_MIN",
        "Geometry",
        "SEM_20KV",
        "_film_explains",
        "_unbound_oxygen_of",
        "_unbound_oxygen_cached",
        "_oxygen_at_cached",
        "_oxygen_at",
        "NOT_OXIDE_BOUND",
        "unbound_oxygen_at",
        "film_oxygen_at",
        "surface_layer_at",
        "_surface_layer_cached",
    ),
    "spectral": (
        "SPECTRUM_CANDIDATES",
        "SIMILARITY_POWER",
        "spectrum_similarity",
        "_unanalysed_light",
        "unanalysed_light_chi2",
        "_default_detector",
        "_rerank_by_spectrum",
    ),
}


@pytest.mark.parametrize("module", sorted(MOVED))
def test_moved_names_are_importable_from_identify(module):
    assert_moved_names_kept("napari_sigma.minerals", "identify", {module: MOVED[module]})


def test_each_module_imports_first_in_a_fresh_process():
    modules = [*sorted(MOVED), "identify", "intergrowth", "coating"]
    assert_each_imports_first("napari_sigma.minerals", modules)
