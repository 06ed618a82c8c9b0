"""Standardless quantification: X-ray physics, line fits, ZAF and Cliff-Lorimer corrections."""

from napari_sigma._lazy import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "Detector": "physics",
        "QuantSettings": "quantify",
        "Quantification": "quantify",
        "quantify_spectrum": "quantify",
        "quantify_intensities": "quantify",
        "fit_lines": "line_fit",
        "LineFit": "line_fit",
        "ShellIntensity": "line_fit",
        "line_spectrum": "simulate",
        "line_intensities": "simulate",
    },
)
