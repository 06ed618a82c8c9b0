"""Mineral library, identification of phases and the automated-mineralogy report."""

from napari_sigma._lazy import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "Mineral": "library",
        "MineralLibrary": "library",
        "Series": "library",
        "LibraryError": "library",
        "load_library": "library",
        "composition_of": "library",
        "Identification": "identify",
        "identify_composition": "identify",
        "identify_quantified": "identify",
        "rank_candidates": "ranking",
        "Geometry": "films",
        "film_oxygen_at": "films",
        "PhaseMineral": "phases",
        "identify_phases": "phases",
        "interior_labels": "interiors",
        "phase_depths": "interiors",
        "touching_phases": "interiors",
        "HostCorrection": "host",
        "host_corrected_spectra": "host",
        "CompositionTest": "same_names",
        "compare_compositions": "same_names",
        "distinguish_same_names": "same_names",
        "line_dispersion": "same_names",
        "phase_line_dispersions": "same_names",
        "Mineralogy": "mineralogy",
        "mineralogy": "mineralogy",
        "abundance_fractions": "map_abundances",
    },
)
