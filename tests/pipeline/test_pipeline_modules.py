"""pipeline/analysis.py's split (eighteenth session): AnalysisResult is importable from analysis as
the same object as in its new module, the unmixing stage is analysis' own, and every module
imports first in a fresh process (no import cycle)."""

import importlib

from module_moves import assert_each_imports_first


def test_moved_names_are_importable_from_analysis():
    analysis = importlib.import_module("napari_sigma.pipeline.analysis")
    result = importlib.import_module("napari_sigma.pipeline.result")
    stage = importlib.import_module("napari_sigma.pipeline.unmixing_stage")
    assert analysis.AnalysisResult is result.AnalysisResult
    assert result.AnalysisResult.__module__ == result.__name__
    assert analysis._unmix is stage._unmix and stage._unmix.__module__ == stage.__name__


def test_each_pipeline_module_imports_first_in_a_fresh_process():
    assert_each_imports_first("napari_sigma.pipeline", ("analysis", "result", "unmixing_stage"))
