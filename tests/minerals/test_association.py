"""The map's test of an intergrowth's pairing (minerals.association): the elements of one
mineral of the name keep one ratio over the phase's pixels, whatever the minerals' shares."""

import numpy as np
import pytest

from napari_sigma.minerals.association import (
    block_counts,
    pairing_contradiction,
    ratio_test,
)

LEVEL = 0.00135
WINDOWS = {"Si": slice(0, 1), "O": slice(1, 2), "Ti": slice(2, 3), "N": slice(3, 4)}


def _cube(n_with_ti: bool, varying: bool = True, seed: int = 0, size: int = 48):
    """A Si-O-Ti-N phase whose Ti-bearing share varies from left to right (or not): Ti, and N
    when ``n_with_ti``, follow that share; Si and O (and N otherwise) the rest. Continuum in a
    fifth channel only."""
    rng = np.random.default_rng(seed)
    share = np.linspace(0.1, 0.6, size)[None, :] * np.ones((size, 1)) if varying else 0.35
    share = np.broadcast_to(share, (size, size))
    rate = np.zeros((size, size, 5))
    rate[..., 0] = 12.0 * (1 - share)  # Si
    rate[..., 1] = 6.0 * (1 - share)  # O
    rate[..., 2] = 10.0 * share  # Ti
    rate[..., 3] = 4.0 * share if n_with_ti else 3.0 * (1 - share)  # N
    rate[..., 4] = 5.0  # continuum
    return rng.poisson(rate)


COMPONENTS = [("quartz", ["Si", "O"], True), ("osbornite", ["Ti", "N"], True)]


def test_elements_of_one_mineral_that_vary_together_are_no_contradiction():
    cube = _cube(n_with_ti=True)
    blocks = block_counts(cube, np.ones(cube.shape[:2], bool), WINDOWS, np.zeros(5), block=8)
    assert len(blocks.totals) == 36
    assert pairing_contradiction(COMPONENTS, blocks, LEVEL) == ""
    assert ratio_test(blocks, "Ti", "N")[2] > LEVEL


def test_an_element_that_follows_the_other_mineral_contradicts_the_pairing():
    cube = _cube(n_with_ti=False)
    blocks = block_counts(cube, np.ones(cube.shape[:2], bool), WINDOWS, np.zeros(5), block=8)
    reason = pairing_contradiction(COMPONENTS, blocks, LEVEL)
    assert reason.startswith("osbornite's N and Ti do not keep one ratio"), reason
    assert "N keeps its ratio to" in reason  # Si or O: the side N is on


def test_a_phase_whose_shares_do_not_vary_cannot_contradict_any_pairing():
    cube = _cube(n_with_ti=False, varying=False)
    blocks = block_counts(cube, np.ones(cube.shape[:2], bool), WINDOWS, np.zeros(5), block=8)
    assert pairing_contradiction(COMPONENTS, blocks, LEVEL) == ""


def test_a_series_is_not_tested_and_shared_elements_are_not_tested():
    cube = _cube(n_with_ti=False)
    blocks = block_counts(cube, np.ones(cube.shape[:2], bool), WINDOWS, np.zeros(5), block=8)
    series = [("quartz", ["Si", "O"], True), ("some series X50", ["Ti", "N"], False)]
    assert pairing_contradiction(series, blocks, LEVEL) == ""
    shared = [("quartz", ["Si", "O", "N"], True), ("osbornite", ["Ti", "N"], True)]
    assert "osbornite" not in pairing_contradiction(shared, blocks, LEVEL)


def test_the_continuum_s_share_of_a_window_is_taken_off():
    cube = _cube(n_with_ti=True)
    cube[..., 3] += np.random.default_rng(1).poisson(8.0, cube.shape[:2])  # continuum under N
    background = np.zeros(5)
    mask = np.ones(cube.shape[:2], bool)
    background[3] = 8.0 * mask.sum()  # the phase fit's continuum in N's window
    blocks = block_counts(cube, mask, WINDOWS, background, block=8)
    assert pairing_contradiction(COMPONENTS, blocks, LEVEL) == ""
    raw = block_counts(cube, mask, WINDOWS, np.zeros(5), block=8)
    assert ratio_test(raw, "Ti", "N")[0] > ratio_test(blocks, "Ti", "N")[0]


def test_a_small_phase_is_no_map():
    cube = _cube(n_with_ti=False)
    mask = np.zeros(cube.shape[:2], bool)
    mask[:16, :24] = True  # 16 x 24 pixels: 6 blocks of 8, 2 of 12
    assert pairing_contradiction(COMPONENTS, block_counts(cube, mask, WINDOWS, np.zeros(5), 8),
                                 LEVEL)  # fmt: skip
    small = block_counts(cube, mask, WINDOWS, np.zeros(5), block=12)
    assert len(small.totals) == 2
    assert pairing_contradiction(COMPONENTS, small, LEVEL) == ""


@pytest.mark.slow
def test_test_tem_s_nitrogen_is_not_bound_to_its_titanium(SHARED_EDS):
    """test_TEM's one phase (Si 46, O 25, N 18, Ti 10 at %) fits "quartz + osbornite" by its
    summed spectrum; over its pixels N keeps its ratio to Si and not to Ti (qa23's halves: the
    N K band falls where Ti rises): the name does not bind N to Ti."""
    from napari_sigma.compute.progress import run_to_completion
    from napari_sigma.io.readers.reading import read_any
    from napari_sigma.minerals.phases import identify_phases
    from napari_sigma.xray.elements import default_elements

    image = read_any(SHARED_EDS / "bruker" / "test_TEM.bcf")
    elements = default_elements(image.sum_spectrum()).elements
    assert {"N", "Si", "Ti", "O"} <= set(elements)
    labels = np.ones(image.shape, dtype=np.int32)
    (found,) = run_to_completion(identify_phases(image, labels, elements))
    assert "osbornite" not in found.identification.name, found.identification.name
    notes = "; ".join(found.quantification.notes)
    assert "not quartz + osbornite" in notes and "N keeps its ratio to Si" in notes, notes


@pytest.mark.parametrize("dtype", [np.uint16, np.int32, np.int64])
@pytest.mark.parametrize("block", [None, 2, 3, 8])
def test_integer_counts_are_summed_all_at_once_to_the_loop_s_numbers(dtype, block):
    """Integer counts are summed per block in one pass (bincount), not block by block: the
    same blocks in the same order and the same numbers to the last bit as the loop over the
    blocks, edge blocks (a map that is not a multiple of the block) and blocks half outside
    the phase included, counts up to uint16's top."""
    from napari_sigma.minerals.association import _block_counts_by_block

    rng = np.random.default_rng(7)
    cube = rng.poisson(3.0, (37, 29, 40))
    cube[::3, ::2, 5] = rng.integers(30_000, 65_535, cube[::3, ::2, 5].shape)
    cube = cube.astype(dtype)
    mask = (rng.random((37, 29)) < 0.8) & (np.arange(29)[None, :] < 25)
    windows = {"Si": slice(3, 9), "O": slice(10, 12), "Fe": slice(30, 40), "Ti": slice(0, 1)}
    background = rng.random(40) * 1e3
    fast = block_counts(cube, mask, windows, background, block)
    slow = _block_counts_by_block(cube, mask, windows, background, block)
    side = block or 2  # the default side for ~135 counts a pixel
    all_blocks = -(-37 // side) * -(-29 // side)
    assert 0 < len(slow.totals) < all_blocks  # some blocks are left out
    np.testing.assert_array_equal(fast.totals, slow.totals)
    assert fast.totals.dtype == slow.totals.dtype == np.float64
    assert fast.windows.keys() == slow.windows.keys()
    for element, values in slow.windows.items():
        np.testing.assert_array_equal(fast.windows[element], values)
    assert fast.continuum_per_count == slow.continuum_per_count


def test_a_phase_with_no_pixels_has_no_blocks_either_way():
    from napari_sigma.minerals.association import _block_counts_by_block

    cube = np.ones((9, 9, 5), np.uint16)
    mask = np.zeros((9, 9), bool)
    for made in (block_counts, _block_counts_by_block):
        blocks = made(cube, mask, WINDOWS, np.zeros(5))
        assert blocks.totals.shape == (0,) and blocks.windows["Si"].shape == (0,)
        assert blocks.continuum_per_count == dict.fromkeys(WINDOWS, 0.0)
