"""Background warm-up threads: the interpreter's exit waits for them (a daemon thread torn down
inside a C++ library aborted the process after its work was done)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

from napari_sigma.compute import background


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)


def test_the_exit_waits_for_an_unfinished_thread_and_what_it_started():
    code = (
        "import time; from napari_sigma.compute.background import start_thread\n"
        "def inner(): time.sleep(0.3); print('inner done', flush=True)\n"
        "def outer(): time.sleep(0.3); start_thread(inner, 'inner'); print('outer done', flush=True)\n"
        "start_thread(outer, 'outer'); print('main done', flush=True)\n"
    )
    done = _python(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:3] == ["main done", "outer done", "inner done"]


def test_a_thread_leaves_the_pending_list_when_it_ends_even_through_an_error():
    release = threading.Event()

    def work() -> None:
        release.wait(5)
        raise ValueError("a failed warm-up")

    thread = background.start_thread(work, "napari-sigma-test")
    assert thread.daemon and thread in background.pending()
    release.set()
    thread.join(5)
    assert thread not in background.pending()


def test_the_exit_wait_is_bounded():
    release = threading.Event()
    thread = background.start_thread(release.wait, "napari-sigma-test", args=(60,))
    started = time.monotonic()
    assert not background.join_pending(timeout=0.2)
    # bounded: back long before the thread's own end (60 s), however loaded the machine
    assert time.monotonic() - started < 30
    release.set()
    assert background.join_pending(timeout=5) and not thread.is_alive()
