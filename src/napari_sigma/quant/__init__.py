"""Standardless quantification: X-ray physics, line fits, ZAF and Cliff-Lorimer corrections.

The physics is one module per domain, each with its references (paper and equation):
``atomic`` (atomic data), ``attenuation`` (mass attenuation), ``cross_sections`` (ionisation and
X-ray production), ``generation`` (PAP stopping power and backscatter), ``absorption`` (XPP,
PDH, thin foil), ``fluorescence`` (Reed) and ``detector`` (efficiency, take-off angle);
``physics`` is their common namespace and adds `detected_lines`.
"""

from napari_sigma._lazy import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "Detector": "detector",
        "WINDOWLESS": "detector",
        "detector_from_metadata": "detector",
        "takeoff_angle": "detector",
        "atomic_weight": "atomic",
        "edge_energy": "atomic",
        "fluorescence_yield": "atomic",
        "mass_attenuation": "attenuation",
        "ionisation_cross_section": "cross_sections",
        "emission_cross_section": "cross_sections",
        "line_cross_section": "cross_sections",
        "stopping_power": "generation",
        "backscatter_factor": "generation",
        "emissions_per_electron": "generation",
        "xpp_distribution": "absorption",
        "xpp_absorption_factor": "absorption",
        "absorption_factor": "absorption",
        "thin_film_absorption": "absorption",
        "fluorescence_ratio": "fluorescence",
        "detected_lines": "physics",
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
