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


def _waiting_pacer(tmp_path, prefix: str, monkeypatch) -> tuple[threading.Thread, dict]:
    """A paced import of a new chain whose first wait has begun (never answered by itself: the
    main loop does not turn until the test lets it)."""
    monkeypatch.setattr(import_pacing, "SLICE_S", 0.0)
    monkeypatch.setattr(import_pacing, "LONGEST_WAIT_S", 60.0)  # only an answer or a yield
    asked = threading.Event()
    made = import_pacing._main_loop_turn

    def turn_that_says_it_asked():
        ask, answered = made()

        def ask_and_say():
            ask()
            asked.set()

        return ask_and_say, answered

    monkeypatch.setattr(import_pacing, "_main_loop_turn", turn_that_says_it_asked)
    seen: dict = {}
    thread = _import_in_a_thread(_modules(tmp_path, prefix), seen)
    assert asked.wait(60)  # the paced thread waits for the main loop's turn now
    return thread, seen


def test_the_main_thread_imports_a_new_module_while_the_paced_thread_waits(
    qapp, qtbot, tmp_path, monkeypatch
):
    """The wait lets CPython's global import lock go: the main thread's own import of an
    unrelated new module does not wait for it (before: up to LONGEST_WAIT_S)."""
    (tmp_path / "pacing_unrelated_module.py").write_text("VALUE = 2\n")
    try:
        thread, seen = _waiting_pacer(tmp_path, "lockfree_chain_", monkeypatch)
        import pacing_unrelated_module  # noqa: F401  (the main thread's import)

        assert thread.is_alive()  # the paced thread still waits: the import did not wait for it
        qtbot.waitUntil(lambda: not thread.is_alive(), timeout=60_000)  # the loop answers
    finally:
        sys.path.remove(str(tmp_path))
    pacer = seen["pacer"]
    assert pacer.unanswered == 0 and pacer.turns == 5


def test_a_main_thread_waiting_for_the_paced_module_ends_the_wait(qapp, tmp_path, monkeypatch):
    """The main thread imports the module the paced thread is importing (its module lock): the
    wait ends at once (yielded), not at LONGEST_WAIT_S, and the import goes on."""
    try:
        thread, seen = _waiting_pacer(tmp_path, "shared_chain_", monkeypatch)
        import shared_chain_0  # noqa: F401  (waits for the paced thread's module lock)

        thread.join(60)
    finally:
        sys.path.remove(str(tmp_path))
    assert not thread.is_alive()
    pacer = seen["pacer"]
    assert pacer.yielded == 1 and pacer.unanswered == 0 and pacer.turns == 0
