"""napari's export child kept for the session: reused warm, shared by two exports at once,
replaced when it dies (one line said), killed at exit without a wait; the same files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from types import SimpleNamespace

import pytest
from test_export import fake_result

from napari_sigma.io.results.child import ChildDied, ChildError
from napari_sigma.io.results.export import export_result
from napari_sigma.io.results.export_child import KeptChild


class _Dies:
    """Unpickled in the child, it ends the child (exit code 3) in the middle of a call."""

    def __reduce__(self):
        return (os._exit, (3,))


@pytest.fixture
def result():
    result = fake_result()
    result.settings = SimpleNamespace(**vars(result.settings))  # the child imports its class
    return result


@pytest.fixture
def kept():
    child = KeptChild()
    yield child
    child.close()


def assert_same_files(written, reference):
    assert set(written) == set(reference)
    for key, path in reference.items():
        assert written[key].read_bytes() == path.read_bytes(), key


def made_in_the_child_only(monkeypatch):
    import napari_sigma.io.mineral_report.mineralogy as mineralogy
    import napari_sigma.io.results.report as report

    def not_here(*args, **kwargs):
        raise AssertionError("made in this process")

    monkeypatch.setattr(report, "render_report", not_here)
    monkeypatch.setattr(mineralogy, "write_mineral_report", not_here)


def test_later_exports_reuse_the_kept_child_and_write_the_same_files(
    result, kept, tmp_path, monkeypatch
):
    """The second and third exports are answered by the child the first one started (no new
    interpreter, imports or library parse), and every file is byte-identical to the export made
    in this process: report.png included."""
    here = export_result(result, tmp_path / "here")
    assert "modal" in here  # the mineral report's files are compared too
    made_in_the_child_only(monkeypatch)
    first = export_result(result, tmp_path / "first", kept=kept)
    pid = kept.pid
    assert pid is not None and kept.started == 1
    for name in ("second", "third"):
        assert_same_files(export_result(result, tmp_path / name, kept=kept), here)
        assert kept.pid == pid and kept.started == 1
    assert_same_files(first, here)
    assert kept.take_notice() == ""  # nothing to say: it never died


def test_edited_labels_and_a_cube_too_large_to_send_use_the_kept_child_too(
    kept, tmp_path, monkeypatch
):
    """The export's other paths through the kept child: edited labels (the phase statistics'
    pass over the cube made there), then a cube too large to send (its sums made here, the
    mineral report there); each export byte-identical to the one made in this process."""
    from test_export import _same_named_edit

    import napari_sigma.io.results.export as export

    result, labels = _same_named_edit()
    names = [f"edited {k}" for k in range(1, 5)]
    here = export_result(result, tmp_path / "here", labels=labels, names=names)
    made_in_the_child_only(monkeypatch)
    edited = export_result(result, tmp_path / "edited", labels=labels, names=names, kept=kept)
    assert_same_files(edited, here)
    monkeypatch.setattr(export, "CHILD_CUBE_BYTES", 0)  # this cube counts as too large
    large = export_result(result, tmp_path / "large", labels=labels, names=names, kept=kept)
    assert_same_files(large, here)
    assert kept.started == 1


def test_two_exports_at_once_take_turns_in_one_child(result, kept, tmp_path, monkeypatch):
    """Two exports started together (two Export clicks) share the kept child call by call:
    both write every file, each byte-identical to the export made here; one child served both."""
    here = export_result(result, tmp_path / "here")
    made_in_the_child_only(monkeypatch)
    written, errors = {}, []

    def export(name):
        try:
            written[name] = export_result(result, tmp_path / name, kept=kept)
        except BaseException as error:  # reported below, not lost in the thread
            errors.append(error)

    threads = [threading.Thread(target=export, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == [] and set(written) == {"a", "b"}
    for name in ("a", "b"):
        assert_same_files(written[name], here)
    assert kept.started == 1


def test_a_child_killed_between_exports_is_replaced_and_said_once(
    result, kept, tmp_path, monkeypatch
):
    """The kept child killed while idle (out of memory, a user's kill): the next export starts
    a new one, which makes the files (the same), and one line says what happened."""
    here = export_result(result, tmp_path / "here")
    made_in_the_child_only(monkeypatch)
    export_result(result, tmp_path / "first", kept=kept)
    old = kept.pid
    os.kill(old, signal.SIGKILL)
    kept._process._process.wait(10)
    assert_same_files(export_result(result, tmp_path / "after", kept=kept), here)
    assert kept.started == 2 and kept.pid != old
    notice = kept.take_notice()
    assert notice == (
        f"the export's child process ended (exit code {-signal.SIGKILL}) between exports "
        "(a new one started)"
    )
    assert kept.take_notice() == ""  # said once


def test_a_child_dying_in_a_call_has_that_call_made_here_and_a_successor_started(kept):
    """The child ends in the middle of a call: the caller gets ChildDied (the export then makes
    that file in this process, as for a child started per export), the notice names the call,
    and the next call is answered by a new child."""
    kept.expect(("render_figure",))
    first = kept.pid
    with pytest.raises(ChildError, match="render_figure: AttributeError"):  # an error: kept
        kept.call("render_figure", None, 1, 1, 72.0)
    assert kept.pid == first and kept.take_notice() == ""
    with pytest.raises(ChildDied):
        kept.call("render_figure", _Dies(), 1, 1, 72.0)
    assert kept.take_notice() == (
        "the export's child process ended (exit code 3) answering render_figure (made here)"
    )
    assert kept.pid not in (None, first)  # the successor started at once
    from matplotlib.figure import Figure

    pixels = kept.call("render_figure", Figure(figsize=(1, 1)), 4, 3, 72.0)
    assert len(pixels) == 4 * 3 * 4 and kept.started == 2


def test_an_export_whose_kept_child_cannot_start_writes_the_same_files_here(
    result, kept, tmp_path, monkeypatch
):
    """No process can be started (a broken interpreter path): every call is made in this
    process; the same files."""
    import napari_sigma.io.results.child as child_module

    here = export_result(result, tmp_path / "here")
    monkeypatch.setattr(child_module.sys, "executable", "/nonexistent/python")
    assert_same_files(export_result(result, tmp_path / "fallback", kept=kept), here)
    assert kept.started == 0 and kept.pid is None


def test_close_kills_an_idle_child_at_once(kept):
    """At exit (atexit: close) an idle child is killed, not waited for: napari's exit is not
    delayed by the child's own shutdown."""
    kept.expect(("render_report",))
    process = kept._process
    kept.close()
    assert process.exit_code(wait=10) == -signal.SIGKILL
    assert kept.pid is None
    with pytest.raises(ChildDied, match="closed"):  # no export after exit begins
        kept.call("render_report")


def test_a_process_with_a_kept_child_kills_it_at_exit(tmp_path):
    """A Python process (napari) that used the session's child: at its exit the idle child is
    killed by the exit handler (registered by the child's start), not waited for."""
    script = (
        "import atexit, time\n"
        "from napari_sigma.io.results.export_child import session_child\n"
        "from matplotlib.figure import Figure\n"
        "kept = session_child()\n"
        "def after():  # registered first: runs after the session child's handler\n"
        "    print('exit code', process._process.wait(10), flush=True)\n"
        "atexit.register(after)\n"
        "kept.call('render_figure', Figure(figsize=(1, 1)), 2, 2, 72.0)\n"
        "process = kept._process\n"
    )
    src = os.path.dirname(os.path.dirname(__import__("napari_sigma").__file__))
    path = os.pathsep.join(filter(None, (src, os.environ.get("PYTHONPATH"))))
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
        env=dict(os.environ, PYTHONPATH=path),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[-2] == f"exit code {-signal.SIGKILL}"
