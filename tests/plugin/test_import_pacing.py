"""A background import paced by napari's main thread (napari_sigma._napari.import_pacing): each
new module waits for a turn of the main thread's event loop; a blocked main thread holds it once,
for LONGEST_WAIT_S at most."""

from __future__ import annotations

import sys
import threading

import pytest

from napari_sigma._napari import import_pacing

pytestmark = pytest.mark.gui


def _modules(tmp_path, prefix: str, count: int = 5) -> str:
    """A chain of ``count`` new modules (each imports the next) on sys.path; the first's name."""
    for k in range(count):
        body = f"import {prefix}{k + 1}\n" if k + 1 < count else "VALUE = 1\n"
        (tmp_path / f"{prefix}{k}.py").write_text(body)
    sys.path.insert(0, str(tmp_path))
    return f"{prefix}0"


def _import_in_a_thread(name: str, seen: dict) -> threading.Thread:
    def work():
        with import_pacing.paced_by_main_loop() as pacer:
            __import__(name)
        seen["pacer"] = pacer

    thread = threading.Thread(target=work)
    thread.start()
    return thread


def test_each_new_module_waits_for_a_turn_of_the_main_loop(qapp, qtbot, tmp_path, monkeypatch):
    monkeypatch.setattr(import_pacing, "SLICE_S", 0.0)  # every module asks
    monkeypatch.setattr(import_pacing, "LONGEST_WAIT_S", 60.0)  # only an answer ends a wait
    seen: dict = {}
    try:
        thread = _import_in_a_thread(_modules(tmp_path, "paced_chain_"), seen)
        qtbot.waitUntil(lambda: not thread.is_alive(), timeout=60_000)  # the loop turns here
    finally:
        sys.path.remove(str(tmp_path))
    pacer = seen["pacer"]
    assert pacer.turns == 5 and pacer.unanswered == 0  # one answered ask per new module
    assert not any(isinstance(f, import_pacing._Pacer) for f in sys.meta_path)


def test_a_blocked_main_thread_holds_the_import_once_then_it_goes_on(qapp, tmp_path, monkeypatch):
    monkeypatch.setattr(import_pacing, "SLICE_S", 0.0)
    monkeypatch.setattr(import_pacing, "LONGEST_WAIT_S", 0.05)
    seen: dict = {}
    try:
        thread = _import_in_a_thread(_modules(tmp_path, "blocked_chain_"), seen)
        thread.join(60)  # the main thread blocked: its event loop never turns meanwhile
    finally:
        sys.path.remove(str(tmp_path))
    assert not thread.is_alive()
    pacer = seen["pacer"]
    assert pacer.unanswered == 1 and pacer.turns == 0  # no second wait while unanswered


def test_the_main_thread_s_own_imports_are_not_paced(qapp):
    with import_pacing.paced_by_main_loop() as pacer:
        assert pacer is None
