"""Synthetic EDS maps with ground truth: mineral phases, layouts, Poisson counts, benchmark cases."""

from napari_sigma._lazy import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "PhaseSpec": "phase_specs",
        "SyntheticSample": "generator",
        "make_synthetic": "generator",
        "demo_sample": "generator",
        "benchmark_case": "generator",
        "mineral": "phase_specs",
        "BENCHMARK_CASES": "generator",
    },
)
