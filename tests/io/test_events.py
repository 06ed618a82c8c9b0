"""Event cubes (JEOL event streams kept sparse): slicing, sums, pickling, and the real JEOL map."""

from __future__ import annotations

import pickle
import time
from pathlib import Path

import numpy as np
import pytest

from napari_sigma.io.readers.events import EventCube, as_event_cube, event_cube_of
from napari_sigma.io.readers.reading import read_any, read_spectrum_image
from napari_sigma.spectrum_image import SpectrumImage

JEOL_PTS = "jeol/Sample/00_View000/View000_0000006.pts"


def _random_events(shape=(7, 5, 11), n=300, seed=0):
    rng = np.random.default_rng(seed)
    coords = np.stack([rng.integers(0, size, n) for size in shape])
    dense = np.zeros(shape, np.uint16)
    np.add.at(dense, tuple(coords), 1)
    return EventCube(coords, np.ones(n, np.uint16), shape=shape), dense


@pytest.mark.parametrize(
    "key",
    [
        (slice(1, 4),),
        (2,),
        (Ellipsis, 3),
        (slice(None, None, -2), 1, slice(2, 9, 3)),
        (np.array([0, 3, 3, 6]),),
        (slice(3, 3),),
        (-1, -1, -1),
        (slice(0, 7), slice(0, 5), slice(4, 5)),
        (slice(5, 2),),
        (np.array([True, False] * 3 + [True]),),
        Ellipsis,
    ],
)
def test_slicing_matches_the_dense_cube(key) -> None:
    events, dense = _random_events()
    assert np.array_equal(events[key], dense[key])
    assert events[key].shape == dense[key].shape and events[key].dtype == dense.dtype


def test_sums_dask_and_pickling() -> None:
    events, dense = _random_events()
    assert np.array_equal(events.dense(), dense)
    assert np.array_equal(events.sum_last(), dense.sum(-1))
    assert np.array_equal(events.sum_leading(), dense.sum((0, 1)))
    cube = events.to_dask(chunk_bytes=200)
    assert cube.chunks[1:] == ((5,), (11,))  # whole spectra in row blocks
    assert np.array_equal(cube.compute(), dense)
    assert np.array_equal(cube[..., 3].compute(), dense[..., 3])
    assert event_cube_of(cube) is events and as_event_cube(cube) is events
    assert event_cube_of(cube[1:]) is None and event_cube_of(cube.T) is None  # not the cube
    image = SpectrumImage(counts=pickle.loads(pickle.dumps(cube, protocol=5)), energy=None)
    assert event_cube_of(image.counts) is not None
    assert np.array_equal(image.total_counts(), dense.sum(-1))
    assert np.array_equal(image.counts.compute(), dense)


def test_clipping_and_bad_coordinates() -> None:
    coords = np.zeros((3, 300), np.uint16)  # 300 counts in one voxel of a uint8 cube
    events = EventCube(coords, np.ones(300, np.uint8), shape=(2, 2, 2))
    assert events.dense()[0, 0, 0] == 255
    with pytest.raises(ValueError):
        EventCube(np.full((3, 1), 5), np.ones(1, np.uint8), shape=(2, 2, 2))


def test_sparse_arrays_are_converted() -> None:
    sparse = pytest.importorskip("sparse")
    import dask.array as da

    _, dense = _random_events()
    array = da.from_array(sparse.COO.from_numpy(dense), asarray=False)
    events = as_event_cube(array)
    assert events is not None and np.array_equal(events.dense(), dense)
    assert as_event_cube(da.from_array(dense)) is None


@pytest.mark.slow
def test_jeol_map_is_decoded_once_and_travels_as_events(SHARED_EDS: Path) -> None:
    """The isolated lazy read returns the events (no re-read, no densified sums) and eager
    counts equal them."""
    path = SHARED_EDS / JEOL_PTS
    image = read_any(path, lazy=True)
    events = event_cube_of(image.counts)
    assert events is not None and events.shape == (512, 512, 4096)
    start = time.process_time()  # CPU (every thread): the wall clock is the machine's load
    total = image.total_counts()
    spectrum = image.sum_spectrum().counts
    assert time.process_time() - start < 1.0  # from the events, not 2 GiB of chunks
    assert total.sum() == spectrum.sum() == events.counts.sum(dtype=np.int64) > 300_000
    eager = read_spectrum_image(path)
    assert isinstance(eager.counts, np.ndarray) and eager.counts.dtype == np.uint16
    assert np.array_equal(eager.counts.sum(-1), total)
    block = (slice(100, 140), slice(200, 300), slice(50, 900))
    assert np.array_equal(image.counts[block].compute(), eager.counts[block])


def test_a_jeol_stream_that_stops_early_is_read_with_a_warning(SHARED_EDS: Path, tmp_path) -> None:
    """A .pts cut inside its event stream (a truncated copy, an aborted acquisition) opens with
    the sweeps read and says so once, naming the file; the whole file opens without a word."""
    import warnings

    from napari_sigma.io.readers.validation import DataWarning

    whole = (SHARED_EDS / JEOL_PTS).read_bytes()
    cut = tmp_path / "cut.pts"
    cut.write_bytes(whole[: len(whole) // 2])
    for isolate in (True, False):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            image = read_any(cut, lazy=True, isolate=isolate)
        said = [str(w.message) for w in caught if issubclass(w.category, DataWarning)]
        assert len(said) == 1 and str(cut) in said[0], said
        assert "sweep 7 of the 14" in said[0]
        assert image.metadata["warnings"] == [said[0].split(": ", 1)[1]]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        image = read_any(SHARED_EDS / JEOL_PTS, lazy=True)
    assert not [w for w in caught if issubclass(w.category, DataWarning)]
    assert image.metadata["warnings"] == []
