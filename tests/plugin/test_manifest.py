"""The installed plugin's npe2 manifest: valid, complete, and pointing at real callables."""

from __future__ import annotations

import fnmatch
import subprocess
import sys
from pathlib import Path

import pytest
from npe2 import PluginManifest

PLUGIN = "napari-sigma-eds"


@pytest.fixture(scope="module")
def manifest() -> PluginManifest:
    return PluginManifest.from_distribution(PLUGIN)


def test_npe2_validate_accepts_the_installed_plugin():
    npe2 = Path(sys.executable).with_name("npe2")
    done = subprocess.run(
        [str(npe2), "validate", PLUGIN], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_manifest_is_shipped_inside_the_package(manifest):
    import napari_sigma

    assert manifest.name == PLUGIN
    assert (Path(napari_sigma.__file__).parent / "napari.yaml").is_file()


def test_manifest_contributes_reader_writers_sample_and_widgets(manifest):
    contributions = manifest.contributions
    assert len(contributions.readers) == 1
    assert {tuple(w.layer_types) for w in contributions.writers} == {("labels",), ("image",)}
    assert [s.key for s in contributions.sample_data] == ["synthetic"]
    assert len(contributions.widgets) == 5  # the four tools, and all of them in tabs


def test_every_command_imports(manifest):
    manifest.validate_imports()


def test_reader_patterns_cover_every_supported_extension(manifest):
    from napari_sigma.io.readers.reading import SUPPORTED_EXTENSIONS

    patterns = manifest.contributions.readers[0].filename_patterns
    for extension in SUPPORTED_EXTENSIONS:
        name = f"file{extension}"
        assert any(fnmatch.fnmatchcase(name, p) for p in patterns), extension


def test_commands_of_this_developer_resolve_to_the_documented_callables(manifest):
    from napari_sigma._napari import docks, reader, sample_data, writer

    expected = {
        "napari-sigma-eds.get_reader": reader.get_reader,
        "napari-sigma-eds.write_labels": writer.write_labels,
        "napari-sigma-eds.write_image": writer.write_image,
        "napari-sigma-eds.synthetic_sample": sample_data.synthetic_sample,
        "napari-sigma-eds.spectrum_widget": docks.SpectrumDock,
        "napari-sigma-eds.phases_widget": docks.PhasesDock,
    }
    commands = {c.id: c for c in manifest.contributions.commands}
    for command_id, target in expected.items():
        assert _resolve(commands[command_id]) is target


def _resolve(command):
    module, _, name = command.python_name.partition(":")
    return getattr(__import__(module, fromlist=[name]), name)
