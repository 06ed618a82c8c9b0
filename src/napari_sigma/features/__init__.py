"""Per-pixel features: element-line intensities, binning, normalisation."""

from napari_sigma._lazy import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "FeatureSettings": "intensities",
        "line_weights": "intensities",
        "line_intensities": "intensities",
        "line_features": "intensities",
        "LineFeatures": "intensities",
        "project_spectra": "intensities",
        "total_counts": "intensities",
        "bin_image": "intensities",
        "neighbour_average": "intensities",
        "normalise": "intensities",
        "anscombe": "intensities",
        "inverse_anscombe": "intensities",
    },
)
