"""The plugin's separate docks as napari builds them (Plugins menu, ``add_plugin_dock_widget``).

Each factory imports its widget's module only once the preload's imports (:mod:`preload`),
when under way, are done: the tabbed dock starts them in a thread as it is built, and a script
that docks it and a separate widget in one turn of the event loop had napari's main thread
import matplotlib at the same time as that thread: each held a module the other waited for,
and Python handed one of them a partly made module ("cannot import name 'Transform' from
partially initialized module 'matplotlib.transforms'"; the widget did not open). A user's
clicks leave the preload the time it needs; then nothing waits.
"""

from __future__ import annotations

import importlib
from typing import Any


def _after_the_preload() -> None:
    from napari_sigma._napari import preload

    if preload.started():
        preload.wait()


class _Dock:
    """Calling the class builds the widget ``WIDGET`` of ``MODULE`` (napari passes the viewer
    to a class whose ``__init__`` takes ``napari_viewer``; a plain function it would not)."""

    MODULE = ""
    WIDGET = ""

    def __new__(cls, napari_viewer: Any) -> Any:
        _after_the_preload()
        widget_class = getattr(importlib.import_module(cls.MODULE), cls.WIDGET)
        return widget_class(napari_viewer)  # not a _Dock: Python calls no __init__ of ours

    def __init__(self, napari_viewer: Any) -> None:  # pragma: no cover - the signature napari reads
        raise AssertionError("never reached: __new__ returns the widget")


class SpectrumDock(_Dock):
    """The Spectrum and elements dock."""

    MODULE, WIDGET = "napari_sigma._napari.spectrum_widget", "SpectrumWidget"


class AnalysisDock(_Dock):
    """The Phase analysis dock."""

    MODULE, WIDGET = "napari_sigma._napari.analysis_widget", "AnalysisWidget"


class LatentDock(_Dock):
    """The Latent space dock."""

    MODULE, WIDGET = "napari_sigma._napari.latent_widget", "LatentWidget"


class PhasesDock(_Dock):
    """The Phases dock."""

    MODULE, WIDGET = "napari_sigma._napari.phases_widget", "PhasesWidget"
