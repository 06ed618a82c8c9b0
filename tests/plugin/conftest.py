"""Fixtures of the plugin tests: a viewer with the installed plugin, widgets docked as napari does.

Widgets come from ``viewer.window.add_plugin_dock_widget`` (the Plugins menu's code path: napari
decides what to pass to the constructor), files from ``viewer.open(path, plugin=PLUGIN)``, samples
from ``viewer.open_sample``. pytest-qt's capture of exceptions in Qt's event loop stays on: a test
fails when a callback raises.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

PLUGIN = "napari-sigma-eds"
SPECTRUM = "Spectrum and elements"
ANALYSIS = "Phase analysis"
LATENT = "Latent space"
PHASES = "Phases"


@pytest.fixture(autouse=True)
def _recovery_in_tmp(tmp_path: Any, monkeypatch: Any) -> None:
    """Autosaved recovery sessions of a test go to its tmp folder, never the user's cache."""
    monkeypatch.setenv("NAPARI_SIGMA_RECOVERY_DIR", str(tmp_path / "recovery"))


@pytest.fixture(scope="session", autouse=True)
def _preloaded_before_any_viewer() -> None:
    """The plugin's preload (imports, then :func:`gc.freeze`) done before the first viewer.

    In a session the preload runs once, when the plugin first shows a spectrum image; what is
    alive then stays out of the collector's reach, the viewer included (its layers are given
    back when removed: ``preload.thaw_when_removed``). Which test's viewer that is would depend
    on the order the tests run in (napari's leak check failed the first test of a file run on
    its own); done here, it is none.
    """
    from napari_sigma._napari import preload

    preload.wait_compute()


@pytest.fixture
def plugin_viewer(make_napari_viewer, npe2pm) -> Iterator[Any]:
    """A napari viewer with the installed napari-sigma plugin registered."""
    with npe2pm.tmp_plugin(package=PLUGIN):
        yield make_napari_viewer()


def dock_widget(viewer: Any, display_name: str) -> Any:
    """Dock a plugin widget from the Plugins menu's code path and return the widget."""
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, display_name)
    return widget


@pytest.fixture
def dock():
    """``dock(viewer, display_name) -> widget``: a widget docked as the Plugins menu does it."""
    return dock_widget


def pytest_configure(config: Any) -> None:
    """pytest-qt's capture of exceptions in Qt callbacks must stay on for the plugin tests."""
    assert not config.getini("qt_no_exception_capture"), "qt_no_exception_capture is set"


def pytest_collection_modifyitems(items: list[Any]) -> None:
    """No test may switch off pytest-qt's capture of exceptions raised in Qt callbacks."""
    for item in items:
        assert item.get_closest_marker("qt_no_exception_capture") is None, item.nodeid
