"""Cancelling a plain-function computation from another thread (napari_sigma.compute.cancel):
the element suggestion stops at its next fit once its caller cancels it."""

from __future__ import annotations

import threading

import pytest

from napari_sigma.compute import cancel
from napari_sigma.synthetic.generator import make_synthetic
from napari_sigma.xray.elements import default_elements


def test_a_checkpoint_outside_a_cancellable_block_does_nothing():
    cancel.checkpoint()
    assert cancel.current() is None


def test_a_checkpoint_raises_once_the_block_s_event_is_set():
    event = threading.Event()
    with cancel.cancelled_by(event):
        cancel.checkpoint()  # not set: goes on
        assert cancel.current() is event
        event.set()
        with pytest.raises(cancel.Cancelled):
            cancel.checkpoint()
    cancel.checkpoint()  # the block ended: nothing to cancel
    assert cancel.current() is None


def test_cancel_all_sets_the_blocks_under_way_and_not_others():
    ended, other = threading.Event(), threading.Event()
    with cancel.cancelled_by(ended):
        pass
    inside, release, seen = threading.Event(), threading.Event(), []

    def work():
        with cancel.cancelled_by(other):
            inside.set()
            release.wait(30)
            try:
                cancel.checkpoint()
            except cancel.Cancelled:
                seen.append("cancelled")

    thread = threading.Thread(target=work)
    thread.start()
    assert inside.wait(30)
    assert cancel.current() is None  # another thread's block is not this thread's
    assert cancel.cancel_all() >= 1
    release.set()
    thread.join(30)
    assert seen == ["cancelled"] and other.is_set() and not ended.is_set()


def test_the_element_suggestion_stops_when_its_caller_has_cancelled_it():
    spectrum = make_synthetic(seed=0, shape=(16, 16), n_channels=1024).image.sum_spectrum()
    event = threading.Event()
    event.set()
    with cancel.cancelled_by(event), pytest.raises(cancel.Cancelled):
        default_elements(spectrum)
    assert "Si" in default_elements(spectrum).elements  # not cancelled: as before
