"""Calls to a child process pickle their arguments frame by frame (io/child._dumps): a large
figure's pickle no longer holds the GIL in one C call for its whole length; large arrays travel
out of band, written to the pipe from their own memory (io/child._send)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from napari_sigma.io.results import child


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


def test_large_arrays_travel_out_of_band_from_their_own_memory():
    """A message's large arrays are not copied into its pickle (a 200 MiB copy held the GIL
    320-620 ms: a 222 ms freeze of napari during a JEOL export) but written after it from their
    memory; they come back equal and writable, and so does everything else."""
    import io

    rng = np.random.default_rng(0)
    cube = rng.integers(0, 9, (64, 64, 512), dtype=np.uint16)  # 4 MiB
    value = {"cube": cube, "fortran": np.asfortranarray(cube[:, :, 0]),
             "strided": cube[::2, ::3, 5], "bytes": bytearray(b"x" * 100_000), **_figure_like()}  # fmt: skip
    stream = io.BytesIO()
    child._send(stream, value)
    size = int.from_bytes(stream.getvalue()[:8], "little")
    assert size < 2_000_000 and stream.tell() > cube.nbytes + size  # the cube after the pickle
    stream.seek(0)
    back = child._receive(stream)
    for key in ("cube", "fortran", "strided"):
        np.testing.assert_array_equal(back[key], value[key])
        assert back[key].flags.writeable
    assert back["bytes"] == value["bytes"]
    assert all(
        np.array_equal(a, b) for a, b in zip(back["segments"], value["segments"], strict=True)
    )
    stream.seek(0)
    stream.truncate(stream.getbuffer().nbytes - 1000)
    with pytest.raises(EOFError):
        child._receive(stream)


def test_a_call_sends_its_arguments_and_gets_its_answer_through_the_pipe():
    """The child's phase statistics of a 16 MiB cube (sent out of band) equal this process's."""
    from napari_sigma.phases.statistics import phase_table

    rng = np.random.default_rng(1)
    counts = rng.integers(0, 5, (64, 128, 1024), dtype=np.uint16)
    labels = np.repeat(rng.integers(1, 4, (8, 16)), 8, 0).repeat(8, 1).astype(np.int32)
    intensities = rng.random((64, 128, 2)).astype(np.float32)
    arguments = (labels, counts, intensities, ("Fe_Ka", "Si_Ka"), 0.5)
    process = child.ChildProcess(expect=("phase_table",))
    try:
        there = process.call("phase_table", *arguments)
        with pytest.raises(child.ChildError, match="phase_table: TypeError"):
            process.call("phase_table")  # wrong arguments: answered with the error
    finally:
        process.close()
    here = phase_table(*arguments)
    np.testing.assert_array_equal(there.mean_spectra, here.mean_spectra)
    np.testing.assert_array_equal(there.pixels, here.pixels)
