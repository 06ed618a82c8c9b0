"""X-ray lines, the detector response, spectrum fitting and element suggestion."""

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
        "usable_line": "lines",
        "usable_range": "lines",
        "line_in_range": "lines",
        "checked_lines": "lines",
        "marker_lines": "lines",
        "LineRangeWarning": "lines",
        "LineFamily": "line_families",
        "SpectrumFit": "fitting",
        "fit_spectrum": "fitting",
        "ImageFit": "image_fit",
        "fit_spectrum_image": "image_fit",
        "ELEMENTS": "lines",
        "fluorescence_yield": "yields",
        "ElementSuggestion": "elements",
        "suggest_elements": "elements",
        "check_listed_elements": "elements",
        "elements_to_analyse": "elements",
        "ElementsNotDetectedWarning": "elements",
    },
)
