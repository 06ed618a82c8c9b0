"""compute.blocks.Ahead: a call made ahead in a thread (two cores) or at result() (one), the same
value either way; errors raised by result(); a stoppable call stopped by cancel()."""

import threading

import pytest

from napari_sigma.compute import blocks
from napari_sigma.compute.blocks import Ahead, worker_threads


def test_the_value_is_made_in_another_thread_on_two_cores(monkeypatch):
    monkeypatch.setattr(blocks, "usable_cores", lambda: 2)
    callers = []

    def work(a, b):
        callers.append(threading.current_thread())
        return a * b

    made = Ahead(work, 6, 7)
    assert made.result() == 42
    assert made.result() == 42  # asked again: the same value, not made again
    assert callers and callers[0] is not threading.current_thread()
    assert len(callers) == 1


def test_on_one_core_the_value_is_made_by_result_in_the_calling_thread():
    callers = []

    def work():
        callers.append(threading.current_thread())
        return "done"

    with worker_threads(1):
        made = Ahead(work)
        assert callers == []  # nothing made yet
        assert made.result() == "done"
    assert callers == [threading.current_thread()]


@pytest.mark.parametrize("cores", [1, 2])
def test_an_error_of_the_call_is_raised_by_result(monkeypatch, cores):
    monkeypatch.setattr(blocks, "usable_cores", lambda: cores)

    def work():
        raise ValueError("bad block")

    made = Ahead(work)
    with pytest.raises(ValueError, match="bad block"):
        made.result()


def test_cancel_stops_a_stoppable_call_at_its_next_step(monkeypatch):
    monkeypatch.setattr(blocks, "usable_cores", lambda: 2)
    started, steps = threading.Event(), []

    def work(stop):
        started.set()
        for step in range(1000):
            if stop.wait(0.01):
                return None
            steps.append(step)
        return "finished"

    made = Ahead(work, stoppable=True)
    assert started.wait(5)
    made.cancel()  # returns once the thread has ended
    assert len(steps) < 1000
    assert made.result() is None


def test_the_thread_sees_the_callers_context(monkeypatch):
    monkeypatch.setattr(blocks, "usable_cores", lambda: 2)
    with worker_threads(3):
        made = Ahead(lambda: blocks._WORKERS.get())
        assert made.result() == 3
