"""Phase spectra, their NMF decomposition and per-pixel abundance maps."""

from napari_sigma._lazy import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "UnmixingResult": "nmf",
        "phase_sum_spectra": "nmf",
        "nmf": "nmf",
        "abundance_maps": "abundances",
        "phase_fractions": "fractions",
    },
)
