"""``napari-sigma run`` starts its reading child before it imports numpy and the analysis."""

import json
import subprocess
import sys

import pytest

from napari_sigma.cli import _reader_started, main
from napari_sigma.io.reading_process import isolation


@pytest.fixture
def no_reader():
    isolation.shutdown()
    yield
    isolation.shutdown()


def test_the_cli_module_imports_no_numpy():
    code = "import json, sys, napari_sigma.cli; print(json.dumps('numpy' in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) is False


def test_run_starts_the_reader_at_once_without_its_warm_up(no_reader):
    assert _reader_started(["run", "map.hspy", "--out", "out", "--phases", "6"])
    worker = isolation._worker
    assert worker is not None and worker.alive() and "--no-warm" in worker.process.args
    assert not _reader_started(["run", "map.hspy", "--out", "out"])  # one is running


@pytest.mark.parametrize(
    "argv",
    [
        ["demo", "--out", "out"],
        ["run", "a.hspy", "b.hspy", "--out", "out", "--shared-model"],
        ["run", "a.hspy", "--out", "out", "--scheduler", "127.0.0.1:8786"],
        [],
    ],
)
def test_other_commands_and_fields_start_no_reader(no_reader, argv):
    assert not _reader_started(argv)
    assert isolation._worker is None


def test_no_reader_without_isolation(no_reader, monkeypatch):
    monkeypatch.setenv("NAPARI_SIGMA_ISOLATE", "0")
    assert not _reader_started(["run", "map.hspy", "--out", "out"])
    assert isolation._worker is None


def test_a_bad_mineral_table_is_still_a_settings_error(tmp_path, capsys):
    table = tmp_path / "minerals.csv"
    table.write_text("this is not, a mineral table\n1,2\n")
    code = main(
        ["run", str(tmp_path / "map.hspy"), "--out", str(tmp_path), "--minerals", str(table)]
    )
    assert code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(errors) == 1 and "minerals.csv" in errors[0]
