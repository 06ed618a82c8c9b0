"""The pixels' window sums of an integer cube, gathered in blocks: the numbers of the whole gather."""

import numpy as np
import pytest

from napari_sigma.minerals import same_names


def _plain(counts, samples, windows):
    """The whole gather, as ``_sampled_window_sums`` made it before (per phase, one array)."""
    flat = counts.reshape(-1, counts.shape[-1])
    found = {}
    for pid, where in samples.items():
        pixels = flat[where]
        kind = np.int64 if pixels.dtype.kind in "biu" else np.float64
        if pixels.dtype.kind not in "biu":
            pixels = pixels.astype(np.float64)
        totals = pixels.sum(axis=1, dtype=kind).astype(np.float64)
        inside = np.zeros((len(pixels), len(windows)))
        for k, window in enumerate(windows):
            inside[:, k] = pixels[:, window].sum(axis=1, dtype=kind)
        found[pid] = (totals, inside)
    return found


@pytest.mark.parametrize("dtype", [np.uint16, np.uint8, np.int32, np.uint32, np.int64, np.float32])
def test_blocks_give_the_numbers_of_the_whole_gather(dtype):
    rng = np.random.default_rng(int(np.dtype(dtype).itemsize))
    for trial in range(4):
        ny, nx, channels = rng.integers(8, 90), rng.integers(8, 90), int(rng.integers(3, 300))
        high = 60000 if np.dtype(dtype).itemsize > 1 else 250
        counts = rng.integers(0, high, (ny, nx, channels)).astype(dtype)
        if trial == 0:  # huge counts in float32: the float path is kept as it was
            counts = (counts * 1000).astype(dtype) if np.dtype(dtype).kind == "f" else counts
        pixels = ny * nx
        sizes = [2, 255, 256, 257, 512, min(pixels, 4096), int(rng.integers(2, pixels))]
        samples = {
            pid: np.sort(rng.choice(pixels, min(size, pixels), replace=False))
            for pid, size in enumerate(sizes, start=1)
        }
        windows = [slice(0, 0), slice(0, channels), slice(1, 2)]
        windows += [
            slice(int(a), int(a) + int(rng.integers(1, 40))) for a in rng.integers(0, channels, 4)
        ]
        got = same_names._sampled_window_sums(counts, samples, windows)
        want = _plain(counts, samples, windows)
        assert list(got) == list(want)
        for pid in want:
            for a, b in zip(got[pid], want[pid], strict=True):
                assert a.dtype == b.dtype == np.float64 and a.shape == b.shape
                assert a.tobytes() == b.tobytes()


def test_an_integer_cube_is_gathered_in_blocks(monkeypatch):
    """Each block is at most GATHER_PIXELS pixels: never the whole phase at once."""
    seen = []
    original = same_names._gathered_in_blocks

    def spy(flat, samples, sums):
        def counted(pixels):
            seen.append(len(pixels))
            return sums(pixels)

        return original(flat, samples, counted)

    monkeypatch.setattr(same_names, "_gathered_in_blocks", spy)
    counts = np.ones((64, 64, 16), np.uint16)
    samples = {1: np.arange(0, 4096, 1), 2: np.arange(3, 700, 2)}
    totals, inside = same_names._sampled_window_sums(counts, samples, [slice(2, 5)])[1]
    assert max(seen) == same_names.GATHER_PIXELS and sum(seen) == 4096 + 349
    assert totals.tolist() == [16.0] * 4096 and inside[:, 0].tolist() == [3.0] * 4096


def test_the_composition_test_p_is_scipy_stats_chi2_sf():
    """The p value of compare_compositions, now from scipy.special's chdtrc: bit for bit what
    scipy.stats.chi2.sf gave (random and edge chi-squares, 1-40 degrees of freedom)."""
    from scipy.special import chdtrc
    from scipy.stats import chi2

    rng = np.random.default_rng(5)
    values = [0.0, -0.0, 1e-300, 1e-12, 0.5, 1.0, 3.84, 1e3, 1e6, np.inf, np.nan]
    values += rng.exponential(10.0, 80).tolist() + (10.0 ** rng.uniform(-8, 4, 40)).tolist()
    for df in range(1, 41):
        for x in values:
            old = float(chi2.sf(float(x), df))
            new = float(chdtrc(df, float(x)))
            assert np.array_equal(np.array(old), np.array(new), equal_nan=True), (df, x)
            assert np.array(old).tobytes() == np.array(new).tobytes() or np.isnan(old)


def test_comparing_compositions_does_not_import_scipy_stats():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from napari_sigma.minerals.same_names import compare_compositions\n"
        "from napari_sigma.quant.quantify import Quantification\n"
        "a = Quantification.__new__(Quantification)\n"
        "b = Quantification.__new__(Quantification)\n"
        "a.wt, a.err_wt, b.wt, b.err_wt = {'Si': 40.0, 'O': 50.0}, {'Si': 0.5, 'O': 1.0}, "
        "{'Si': 42.0, 'O': 49.0}, {'Si': 0.5, 'O': 1.0}\n"
        "test = compare_compositions(a, b)\n"
        "print(test.n, test.p, 'scipy.stats' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    n, p, imported = done.stdout.split()
    assert n == "2" and 0.0 < float(p) < 1.0 and imported == "False"
