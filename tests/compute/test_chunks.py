"""Memory limits: sizes, block sizes, and a lazily read cube giving the in-memory labels."""

from __future__ import annotations

import tracemalloc
import warnings

import numpy as np
import pytest

from napari_sigma.cli import main
from napari_sigma.compute.blocks import pixel_blocks
from napari_sigma.compute.chunks import block_pixels, memory_budget, parse_size, read_within
from napari_sigma.compute.progress import run_to_completion
from napari_sigma.io.results.export import read_labels_tiff
from napari_sigma.io.results.writing import write_hspy
from napari_sigma.latent.embedding import LatentSettings
from napari_sigma.phases.statistics import phase_table
from napari_sigma.pipeline.analysis import AnalysisSettings, analyse
from napari_sigma.synthetic.generator import make_synthetic


@pytest.fixture(scope="module")
def cube_file(tmp_path_factory):
    # 24 rows (a band each under the limit below) of 96 pixels, 2048 channels: 4.7 MB
    minerals = ("quartz", "albite", "magnetite", "pyrite")
    sample = make_synthetic(seed=3, shape=(24, 96), phases=minerals, grain_size=10)
    path = tmp_path_factory.mktemp("cube") / "cube.hspy"
    write_hspy(path, sample.image, chunks=(1, 96, sample.image.energy.size), compression=None)
    return path, sample


def test_sizes_parse_and_bound_the_blocks():
    assert parse_size("2GB") == 2_000_000_000 and parse_size("512MiB") == 512 * 2**20
    assert parse_size("1.5g") == 1_500_000_000 and parse_size(1000) == 1000
    for bad in ("two GB", "-1GB", "0", "3 parsecs"):
        with pytest.raises(ValueError, match=r"size|positive"):
            parse_size(bad)
    assert block_pixels(65536, 100.0) == 65536  # no limit: the caller's block
    with memory_budget(4_000):
        assert block_pixels(65536, 100.0) == 10
        counts = np.zeros((8, 5, 20), np.uint16)
        assert [len(b) for _, b in pixel_blocks(counts, 1000)] == [5] * 8  # one row per block
    assert block_pixels(65536, 100.0) == 65536


@pytest.mark.slow
def test_a_lazy_cube_under_a_tiny_limit_gives_the_in_memory_result(cube_file):
    path, sample = cube_file
    settings = AnalysisSettings(
        device="cpu", lines=tuple(sample.lines), latent=LatentSettings(method="pca")
    )
    in_memory = run_to_completion(analyse(read_within(path, None), settings))
    # 4.7 MB cube stored in 0.4 MB rows, 2 MB limit: read lazily, bands of at most 0.5 MB
    lazy = read_within(path, 2_000_000)
    assert hasattr(lazy.counts, "dask")
    np.asarray(lazy.counts[:1])  # dask's first compute imports modules: not the cube's memory
    tracemalloc.start()
    try:
        with memory_budget(2_000_000):
            banded = run_to_completion(analyse(lazy, settings))
            table = phase_table(banded.labels, lazy.counts, banded.intensities, banded.lines)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    np.testing.assert_array_equal(banded.labels, in_memory.labels)
    np.testing.assert_allclose(banded.abundances, in_memory.abundances, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(banded.phase_spectra, in_memory.phase_spectra)
    np.testing.assert_allclose(table.mean_spectra[:, :], _means(banded.phase_spectra, table))
    # numpy never held the cube or a float copy of it: row bands only
    assert peak < 0.5 * sample.image.counts.nbytes


def _means(sums, table):
    return sums[table.phase_ids - 1] / table.pixels[:, None]


@pytest.mark.slow
def test_cli_memory_limit_gives_identical_labels(cube_file, tmp_path):
    path, _ = cube_file
    common = ["--device", "cpu", "--latent", "pca", "--elements", "O,Na,Al,Si,S,Fe"]
    assert main(["run", str(path), "--out", str(tmp_path / "a"), *common]) == 0
    limited = ["--memory-limit", "2MB"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # read in parts: no "read whole" warning
        assert main(["run", str(path), "--out", str(tmp_path / "b"), *common, *limited]) == 0
    a = read_labels_tiff(tmp_path / "a" / "cube" / "phases.tif")[0]
    b = read_labels_tiff(tmp_path / "b" / "cube" / "phases.tif")[0]
    np.testing.assert_array_equal(a, b)
    with pytest.raises(SystemExit):
        main(["run", str(path), "--out", str(tmp_path / "c"), "--memory-limit", "lots"])


@pytest.mark.slow
def test_shared_model_under_a_limit_matches(cube_file, tmp_path):
    path, _ = cube_file
    common = ["--device", "cpu", "--shared-model", "--elements", "O,Na,Al,Si,S,Fe"]
    assert main(["run", str(path), "--out", str(tmp_path / "a"), *common]) == 0
    argv = ["run", str(path), "--out", str(tmp_path / "b"), *common, "--memory-limit", "2MB"]
    assert main(argv) == 0
    a = read_labels_tiff(tmp_path / "a" / "cube" / "phases.tif")[0]
    b = read_labels_tiff(tmp_path / "b" / "cube" / "phases.tif")[0]
    np.testing.assert_array_equal(a, b)


def test_a_file_stored_in_one_block_is_read_whole_with_advice_then_converted(SHARED_EDS, tmp_path):
    source = SHARED_EDS / "bruker" / "test_TEM.bcf"  # 64x64x2048 uint8, one block of 8.4 MB
    with pytest.warns(UserWarning, match=r"test_TEM\.bcf: stored in blocks .*napari-sigma convert"):
        whole = read_within(source, 1_000_000)
    assert isinstance(whole.counts, np.ndarray)
    converted = tmp_path / "tem.hspy"
    assert main(["convert", str(source), str(converted), "--band-mb", "0.2"]) == 0
    banded = read_within(converted, 1_000_000)  # bands of 1 row: no warning, lazy
    assert hasattr(banded.counts, "dask") and banded.counts.chunks[0][0] == 1
    np.testing.assert_array_equal(np.asarray(banded.counts), whole.counts)
    assert (banded.energy, banded.beam_energy) == (whole.energy, whole.beam_energy)
    assert banded.pixel_size == pytest.approx(whole.pixel_size)
    assert banded.pixel_unit == whole.pixel_unit


def test_read_within_probes_without_decoding_then_reads_once(cube_file, monkeypatch):
    """The choice between an eager and a lazy read is made on the file opened lazily, in the
    same request to the reading child as the read: the file is opened and read once."""
    from napari_sigma.io.readers.reading import probe_spectrum_image
    from napari_sigma.io.reading_process import isolation

    path, sample = cube_file
    probe = probe_spectrum_image(path)
    assert probe["shape"] == sample.image.counts.shape
    assert probe["nbytes"] == sample.image.counts.nbytes
    assert probe["block_bytes"] == 96 * sample.image.energy.size * sample.image.counts.itemsize
    requests = []
    real = isolation.read_isolated

    def recording(function, path, lazy=False, limits=None, args=()):
        requests.append((function, lazy))
        return real(function, path, lazy, limits, args)

    monkeypatch.setattr(isolation, "read_isolated", recording)
    eager = read_within(path, 100_000_000)
    assert isinstance(eager.counts, np.ndarray)
    np.testing.assert_array_equal(eager.counts, sample.image.counts)
    assert requests == [("read_spectrum_image_within", False)]
    requests.clear()
    lazy = read_within(path, 2_000_000)
    assert hasattr(lazy.counts, "dask")
    np.testing.assert_array_equal(np.asarray(lazy.counts), sample.image.counts)
    assert requests == [("read_spectrum_image_within", False)]
