"""X-ray lines, the detector response and element suggestion."""

from napari_sigma._lazy import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "XrayLine": "lines",
        "element_lines": "lines",
        "parse_line": "lines",
        "default_line": "lines",
        "lines_for_elements": "lines",
        "lines_in_range": "lines",
        "all_lines": "lines",
        "detector_fwhm": "lines",
        "ELEMENTS": "lines",
        "fluorescence_yield": "yields",
        "ElementSuggestion": "elements",
        "suggest_elements": "elements",
    },
)
