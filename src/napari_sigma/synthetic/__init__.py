"""Synthetic EDS maps with ground truth: mineral phases, layouts, Poisson counts, benchmark cases."""

from napari_sigma._lazy import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "PhaseSpec": "generator",
        "SyntheticSample": "generator",
        "make_synthetic": "generator",
        "demo_sample": "generator",
        "benchmark_case": "generator",
        "mineral": "generator",
        "BENCHMARK_CASES": "generator",
    },
)
