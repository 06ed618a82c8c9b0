"""Calls to a child process pickle their arguments frame by frame (io/child._dumps): a large
figure's pickle no longer holds the GIL in one C call for its whole length."""

from __future__ import annotations

import pickle

import numpy as np

from napari_sigma.io import child


def _figure_like():
    # a figure's kind of content: many small arrays (segments, paths), a few large ones
    return {"segments": [np.arange(4.0) + i for i in range(20_000)],
            "image": np.ones((300, 400, 4), np.uint8), "labels": ["quartz"] * 50}  # fmt: skip


def test_the_child_s_pickle_is_pickle_dumps_bytes_made_frame_by_frame():
    value = _figure_like()
    assert child._dumps(value) == pickle.dumps(value, pickle.HIGHEST_PROTOCOL)
    frames = child._Frames()
    pickle.Pickler(frames, pickle.HIGHEST_PROTOCOL).dump(value)
    # each frame goes through the Python-level write, a point where other threads take the GIL
    assert len(frames.parts) > 10
    small = [len(part) for part in frames.parts if len(part) < 300 * 400 * 4]
    assert max(small) < 2 * 65536


def test_a_call_sends_its_arguments_through_the_framed_pickle(monkeypatch):
    sent = []
    monkeypatch.setattr(child, "_dumps", lambda value: sent.append(value) or pickle.dumps(value))
    process = child.ChildProcess(expect=())
    try:
        try:
            process.call("phase_table")  # wrong arguments: the child answers with an error
        except child.ChildError:
            pass
    finally:
        process.close()
    assert sent and sent[0][0] == "phase_table"
