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
    "read_spectrum_image": "io.reading",
    "read_spectrum": "io.reading",
    "read_any": "io.reading",
    "SpectrumImage": "spectrum_image",
    "Spectrum": "spectrum_image",
    "EnergyAxis": "energy",
    "SigmaError": "errors",
    "SpectrumImageError": "errors",
    "suggest_elements": "xray.elements",
    "AnalysisSettings": "pipeline.settings",
    "AnalysisResult": "pipeline.analysis",
    "analyse": "pipeline.analysis",
    "run_analysis": "pipeline.analysis",
    "export_result": "io.export",
    "make_synthetic": "synthetic.generator",
    "demo_sample": "synthetic.generator",
    "PhaseStatistics": "phases.statistics",
    "Progress": "compute.progress",
}

__all__ = [*sorted(_API), "__version__"]


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(import_module(f".{_API[name]}", __name__), name)
    raise AttributeError(f"module 'napari_sigma' has no attribute {name!r}")
