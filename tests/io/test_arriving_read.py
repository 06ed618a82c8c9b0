"""An arriving read: the cube handed over while its rows are decoded (compute.arrival,
_hdf5_direct.decode_arriving, the reading child's messages), the same bytes as a whole read."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from napari_sigma.compute import arrival as arrivals
from napari_sigma.errors import SpectrumImageError
from napari_sigma.io.readers import _hdf5_direct


def _dataset(path: Path, data: np.ndarray, **options):
    with h5py.File(path, "w") as file:
        file.create_dataset("cube", data=data, **options)
    return h5py.File(path, "r")["cube"]


@pytest.mark.parametrize(
    "options",
    [
        {"chunks": (5, 4, 40), "shuffle": True},  # tiles, partial at both edges
        {"chunks": (5, 3, 40), "shuffle": False},  # tiles, unshuffled
        {"chunks": (4, 6, 40), "shuffle": True},  # row bands
        {"chunks": (23, 6, 40), "shuffle": False},  # one band
    ],
)
@pytest.mark.parametrize("first", [range(0, 23, 4), range(0)])
def test_the_arriving_decode_writes_the_whole_read_s_bytes_sampled_rows_first(
    tmp_path, options, first
) -> None:
    rng = np.random.default_rng(0)
    data = rng.poisson(3.0, (23, 6, 40)).astype(np.uint16) * 257  # both bytes used
    dataset = _dataset(tmp_path / "c.h5", data, **options)
    plan = _hdf5_direct.plan(dataset)
    assert plan is not None
    out = np.full(data.shape, 7, data.dtype)
    flat = out.reshape(-1).view(np.uint8)
    row_bytes = out.nbytes // 23
    written, reports = [], []

    def write(offset, chunk):
        written.append((offset, len(chunk)))
        flat[offset : offset + len(chunk)] = np.frombuffer(chunk, np.uint8)

    def report(ranges):
        rows = [row for start, stop in ranges for row in range(start, stop)]
        for row in rows:  # a reported row holds its final bytes
            np.testing.assert_array_equal(out[row], data[row])
        reports.append(rows)

    _hdf5_direct.decode_arriving(plan, out, write, report, first)
    np.testing.assert_array_equal(out, data)
    reported = [row for rows in reports for row in rows]
    assert sorted(reported) == list(range(23))  # every row once
    if len(first):
        assert reports[0] == list(first)  # the sampled rows before any other
    ordered = sorted(written)  # every byte written once
    assert [o for o, _ in ordered] == [0] + [o + n for o, n in ordered[:-1]]
    assert sum(n for _, n in written) == out.nbytes
    assert all(o // row_bytes == (o + n - 1) // row_bytes for o, n in written)


def test_waits_pass_for_written_rows_and_counts_that_are_not_arriving() -> None:
    counts = np.zeros((6, 2, 3), np.uint16)
    arrivals.wait_for_rows(counts, slice(0, 6))  # not arriving: at once
    record = arrivals.register(counts, "c.hspy")
    try:
        assert arrivals.arrival_of(counts) is record
        assert arrivals.arrival_of(counts.copy()) is None
        record.mark([(0, 1), (3, 4)])
        arrivals.wait_for_rows(counts, slice(0, 6, 3))
        done = []
        waiter = threading.Thread(target=lambda: done.append(arrivals.wait_for_all(counts)))
        waiter.start()
        time.sleep(0.05)
        assert not done  # rows 1, 2, 4, 5 still to come
        record.mark([(1, 3), (4, 6)])
        waiter.join(5)
        assert done == [None]
    finally:
        arrivals.forget(record)
    assert arrivals.arrival_of(counts) is None


def test_a_failed_read_raises_from_the_next_wait() -> None:
    counts = np.zeros((4, 2, 3), np.uint16)
    record = arrivals.register(counts)
    try:
        record.mark([(0, 2)])
        failures = []

        def wait() -> None:
            try:
                arrivals.wait_for_all(counts)
            except SpectrumImageError as error:
                failures.append(str(error))

        waiter = threading.Thread(target=wait)
        waiter.start()
        record.fail(SpectrumImageError(Path("c.hspy"), "it may be truncated"))
        waiter.join(5)
        assert failures == ["c.hspy: it may be truncated"]
        with pytest.raises(SpectrumImageError, match="truncated"):
            arrivals.wait_for_rows(counts, slice(0, 1))  # even rows that came
    finally:
        arrivals.forget(record)


def test_the_sampled_rows_are_those_of_the_door_check_and_the_sum_spectrum() -> None:
    from napari_sigma.io.readers.validation import SAMPLE_PIXELS
    from napari_sigma.xray.image_fit import SUM_PIXELS

    assert SAMPLE_PIXELS == SUM_PIXELS == arrivals.SAMPLED_PIXELS
    assert arrivals.sampled_rows(1024, 1024) == range(0, 1024, 16)
    assert arrivals.sampled_rows(100, 100) == range(0, 100, 1)


class _FakeWorker:
    """Answers of the reading child, one per receive: a tuple, or an exception to raise."""

    def __init__(self, messages) -> None:
        self.messages = list(messages)

    def receive(self, deadline, poll_s):
        yield  # a wait
        message = self.messages.pop(0)
        if isinstance(message, BaseException):
            raise message
        return message


@pytest.mark.parametrize(
    ("ending", "expected"),
    [
        (("done", None, None), None),
        (
            ("error", "could not be read; it may be truncated or corrupt (OSError)", None),
            "truncated",
        ),
        (EOFError(), "stopped unexpectedly"),
    ],
)
def test_the_following_thread_records_the_rows_and_the_read_s_end(
    monkeypatch, ending, expected
) -> None:
    from napari_sigma.io.reading_process import isolation

    monkeypatch.setattr(isolation, "_drop_worker", lambda: 1)
    counts = np.zeros((4, 2, 3), np.uint16)
    worker = _FakeWorker([("rows", [(0, 1), (2, 3)], None), ("rows", [(1, 2)], None), ending])
    isolation._lock.acquire()  # as read_steps hands it over
    thread = isolation._follow_arriving(
        worker, Path("cube.hspy"), counts, time.monotonic() + 60, isolation.ReadLimits(), 0.01
    )
    thread.join(10)
    assert not thread.is_alive()
    assert isolation._lock.acquire(blocking=False)  # released by the thread
    isolation._lock.release()
    record = arrivals.arrival_of(counts)
    if expected is None:
        assert record is None  # done: forgotten, the counts are whole
        arrivals.wait_for_all(counts)
        return
    try:
        with pytest.raises(SpectrumImageError, match=expected) as raised:
            arrivals.wait_for_all(counts)
        assert str(raised.value).startswith("cube.hspy: ")
        assert "\n" not in str(raised.value)
    finally:
        arrivals.forget(record)


def _cube_file(
    tmp_path: Path, shape=(128, 128, 2048), chunks=(15, 15, 2048)
) -> tuple[Path, np.ndarray]:
    """A tiled .hspy of unsigned counts as large as the reading child's shared files."""
    from napari_sigma.energy import EnergyAxis
    from napari_sigma.io.results.writing import write_hspy
    from napari_sigma.spectrum_image import SpectrumImage

    rng = np.random.default_rng(3)
    counts = rng.poisson(0.02, shape).astype(np.uint16)
    image = SpectrumImage(counts=counts, energy=EnergyAxis(0.0, 0.01, shape[-1]), beam_energy=15.0)
    return write_hspy(tmp_path / "cube.hspy", image, chunks=chunks, compression=None), counts


def test_an_arriving_read_in_the_child_gives_the_whole_read_s_image(tmp_path) -> None:
    from napari_sigma.compute.chunks import read_within
    from napari_sigma.io.reading_process.shared_arrays import _SHARED_FILE_MIN_BYTES

    path, counts = _cube_file(tmp_path)
    assert counts.nbytes >= _SHARED_FILE_MIN_BYTES
    image = read_within(path, 8 * 2**30, arriving=True)
    arrivals.wait_for_all(image.counts)  # the rows come (or came) from the child
    whole = read_within(path, 8 * 2**30)  # waits for the read lock: the first read is over
    assert arrivals.arrival_of(image.counts) is None  # done: forgotten
    np.testing.assert_array_equal(image.counts, counts)
    assert (image.energy, image.beam_energy, image.metadata) == (
        whole.energy, whole.beam_energy, whole.metadata,
    )  # fmt: skip


def test_the_child_s_read_announces_then_fails_midway(tmp_path, monkeypatch) -> None:
    """The child's side in this process: the image announced before its rows, then a short
    read (a file truncated meanwhile) raises out of the read (the child answers it as an
    error, the parent raises it from the next wait)."""
    from napari_sigma.io.readers import reading

    path, _ = _cube_file(tmp_path, (30, 16, 64), (5, 4, 64))
    events = []
    real_pread = _hdf5_direct._pread

    def pread(fd, into, offset):
        if len([e for e in events if e[0] == "pread"]) > 5:
            raise OSError("the file ends before byte 99: it was truncated")
        events.append(("pread",))
        real_pread(fd, into, offset)

    monkeypatch.setattr(_hdf5_direct, "_pread", pread)

    def allocate(shape, dtype):
        return np.zeros(shape, dtype)

    def write(array, offset, data):
        flat = array.reshape(-1).view(np.uint8)
        flat[offset : offset + len(data)] = np.frombuffer(data, np.uint8)

    arriving = (lambda image, probe: events.append(("announce", image.shape)),
                lambda ranges: events.append(("rows", ranges)))  # fmt: skip
    with pytest.raises(OSError, match="truncated"):
        reading.read_within_steps(path, 2**40, 2**40, allocate, write, 0, arriving)
    assert events[0] == ("announce", (30, 16))
