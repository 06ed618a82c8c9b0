"""Finding phases: the Gaussian mixture, phase finding, mixed pixels, trace phases, splitting, statistics and colours."""

from napari_sigma._lazy import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "ClusteringSettings": "mixture",
        "ClusteringResult": "mixture",
        "Mixture": "mixture",
        "cluster_phases": "mixture",
        "PhaseFindingSettings": "finding",
        "find_phases": "finding",
        "phase_templates": "mixed_pixels",
        "phase_log_likelihood": "mixed_pixels",
        "unexplained_pixels": "trace",
        "SplitSettings": "splitting",
        "composition_test": "splitting",
        "split_phase": "splitting",
        "two_label_cut": "graph_cut",
        "PhaseTable": "statistics",
        "PhaseStatistics": "statistics",
        "phase_table": "statistics",
        "main_elements": "statistics",
        "phase_display_name": "statistics",
        "phase_sum_spectra": "spectra",
        "phase_mean_spectra": "spectra",
        "masked_mean": "spectra",
        "neighbourhood_mean": "spectra",
        "PixelSpectra": "pixel_cache",
        "pixel_spectra": "pixel_cache",
        "phase_colors": "colors",
        "label_colormap": "colors",
        "label_rgba": "colors",
        "UNASSIGNED": "colors",
        "merge_noise_splits": "end_members",
        "mixture_zones": "end_members",
    },
)
