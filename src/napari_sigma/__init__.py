"""napari-sigma: phase maps from EDS spectrum images (SIGMA: autoencoder, Gaussian mixture, NMF).

The core (this package without ``_napari``) imports neither Qt nor napari and is the Python API::

    from napari_sigma import read_spectrum_image, AnalysisSettings, run_analysis, export_result

    image = read_spectrum_image("map.bcf")
    result = run_analysis(image, AnalysisSettings.preset("default", elements=("O", "Si", "Fe")))
    export_result(result, "out/")
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_API = {
    "read_spectrum_image": "io",
    "read_spectrum": "io",
    "read_any": "io",
    "SpectrumImage": "spectrum_image",
    "Spectrum": "spectrum_image",
    "EnergyAxis": "energy",
    "SigmaError": "errors",
    "SpectrumImageError": "errors",
    "suggest_elements": "elements",
    "AnalysisSettings": "pipeline",
    "AnalysisResult": "pipeline",
    "analyse": "pipeline",
    "run_analysis": "pipeline",
    "export_result": "export",
    "make_synthetic": "synthetic",
    "demo_sample": "synthetic",
    "PhaseStatistics": "phase_stats",
    "Progress": "progress",
}

__all__ = [*sorted(_API), "__version__"]


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(import_module(f".{_API[name]}", __name__), name)
    raise AttributeError(f"module 'napari_sigma' has no attribute {name!r}")
