"""Degenerate data checked at the door: corrected with a warning, or refused naming the file."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from napari_sigma.energy import EnergyAxis
from napari_sigma.errors import AnalysisError, SpectrumImageError
from napari_sigma.io.readers.validation import (
    DataWarning,
    check_analysable,
    validate_spectrum_image,
)
from napari_sigma.spectrum_image import SpectrumImage

AXIS = EnergyAxis(offset=-0.1, scale=0.01, size=256)


def _image(shape=(6, 5), dtype=np.float32, beam=15.0, axis=AXIS, seed=0) -> SpectrumImage:
    counts = np.random.default_rng(seed).poisson(3.0, size=(*shape, axis.size)).astype(dtype)
    return SpectrumImage(
        counts=counts,
        energy=axis,
        beam_energy=beam,
        pixel_size=0.5,
        pixel_unit="µm",
        title="map",
        source=Path("/data/map.hspy"),
    )


def test_clean_image_passes_unchanged_without_warning(recwarn) -> None:
    image = _image()
    checked = validate_spectrum_image(image)
    assert checked.counts is image.counts and checked.energy == image.energy
    assert checked.metadata["warnings"] == []
    assert not [w for w in recwarn if issubclass(w.category, DataWarning)]


def test_float_counts_that_are_not_integers_are_accepted() -> None:
    image = _image()
    image.counts *= 0.37
    assert validate_spectrum_image(image).metadata["warnings"] == []


def test_a_few_nan_pixels_are_zeroed_with_a_warning() -> None:
    image = _image(shape=(20, 10))
    image.counts[3, 4, 10] = np.nan
    image.counts[0, 0, :] = np.inf
    with pytest.warns(DataWarning, match=r"map\.hspy: NaN or infinite counts in 2 pixels"):
        checked = validate_spectrum_image(image)
    assert np.isfinite(checked.counts).all()
    assert checked.counts[0, 0].sum() == 0 and checked.counts[3, 4, 10] == 0
    assert np.isnan(image.counts[3, 4, 10])  # the caller's image is not modified


def test_many_nan_pixels_are_refused() -> None:
    image = _image()
    image.counts[:2] = np.nan
    with pytest.raises(SpectrumImageError, match="10 of 30 pixels hold NaN") as info:
        validate_spectrum_image(image)
    assert "map.hspy" in str(info.value)


def test_small_negative_counts_are_clipped_with_a_warning() -> None:
    image = _image()
    image.counts[1, 1, 5] = -1.0
    with pytest.warns(DataWarning, match="small negative counts"):
        checked = validate_spectrum_image(image)
    assert checked.counts.min() == 0


@pytest.mark.parametrize("dtype", [np.float64, np.int32])
def test_large_negative_counts_are_refused(dtype) -> None:
    image = _image(dtype=dtype)
    image.counts -= 3
    with pytest.raises(SpectrumImageError, match="needs raw X-ray counts"):
        validate_spectrum_image(image)


@pytest.mark.parametrize(
    ("axis", "expected"),
    [
        (EnergyAxis(offset=-100.0, scale=10.0, size=256), (-0.1, 0.01)),  # eV labelled keV
        (EnergyAxis(offset=-1e-4, scale=1e-5, size=256), (-0.1, 0.01)),  # keV labelled eV
    ],
)
def test_energy_axis_in_the_wrong_unit_is_converted(axis, expected) -> None:
    with pytest.warns(DataWarning, match="converted to keV"):
        checked = validate_spectrum_image(_image(axis=axis))
    assert (checked.energy.offset, checked.energy.scale) == pytest.approx(expected)


def test_absurd_cube_shape_is_refused_without_reading_it() -> None:
    import dask.array as da

    for shape in ((20000, 20000, 2048), (4, 4, 70000)):
        huge = replace(_image(), counts=da.zeros(shape, dtype=np.uint16, chunks=(1, 1, 2048)))
        with pytest.raises(SpectrumImageError, match=r"map\.hspy: .*header is probably corrupt"):
            validate_spectrum_image(huge)


def test_absurd_energy_axis_is_refused() -> None:
    with pytest.raises(SpectrumImageError, match="not an EDS calibration"):
        validate_spectrum_image(_image(axis=EnergyAxis(offset=0.0, scale=1000.0, size=256)))


@pytest.mark.parametrize("beam", [None, 0.0, 5000.0])
def test_missing_beam_energy_is_assumed_with_a_warning(beam) -> None:
    with pytest.warns(DataWarning, match="assumed 20 kV"):
        checked = validate_spectrum_image(_image(beam=beam))
    assert checked.beam_energy is None  # unknown: the line choice takes 20 kV


def test_missing_beam_energy_of_a_long_spectrum_is_its_end() -> None:
    axis = EnergyAxis(offset=0.0, scale=0.02, size=2048)  # up to 41 keV
    with pytest.warns(DataWarning, match="assumed 41 kV"):
        assert validate_spectrum_image(_image(beam=None, axis=axis)).beam_energy == 41.0


def test_absurd_pixel_size_becomes_uncalibrated() -> None:
    image = replace(_image(), pixel_size=5e6, pixel_unit="µm")
    with pytest.warns(DataWarning, match="not plausible"):
        checked = validate_spectrum_image(image)
    assert (checked.pixel_size, checked.pixel_unit) == (1.0, "px")


def test_validation_runs_once() -> None:
    image = _image(beam=None)
    with pytest.warns(DataWarning):
        checked = validate_spectrum_image(image)
    assert validate_spectrum_image(checked) is checked


# ----------------------------------------------------------------------------- analysable


@pytest.mark.parametrize(
    ("shape", "bin_factor", "cause"),
    [
        ((1, 1), 1, "a 1 x 1 map has 1 pixel"),
        ((1, 3), 1, "a 1 x 3 map has 3 pixel"),
        ((6, 5), 8, "binning by 8 is larger than the 6 x 5 map"),
        ((6, 5), 4, "binned by 4 has 1 pixel"),
    ],
)
def test_too_few_pixels_are_refused(shape, bin_factor, cause) -> None:
    with pytest.raises(AnalysisError, match=cause) as info:
        check_analysable(_image(shape=shape), bin_factor)
    assert str(info.value).startswith("/data/map.hspy: ")


def test_two_by_two_and_a_single_row_are_analysable() -> None:
    check_analysable(_image(shape=(2, 2)))
    check_analysable(_image(shape=(1, 24)))


def test_all_zero_and_nearly_empty_maps_are_refused() -> None:
    image = _image()
    image.counts[:] = 0
    with pytest.raises(AnalysisError, match="the map holds no counts"):
        check_analysable(image)
    image.counts[0, 0, 0] = 3
    with pytest.raises(AnalysisError, match="nearly empty"):
        check_analysable(image)


def test_too_few_channels_are_refused() -> None:
    image = _image(axis=EnergyAxis(offset=0.0, scale=0.01, size=16))
    with pytest.raises(AnalysisError, match="16 energy channels"):
        check_analysable(image)


def test_mostly_empty_pixels_give_a_warning() -> None:
    image = _image(shape=(10, 10))
    image.counts[:8] = 0
    with pytest.warns(DataWarning, match="80% of the pixels have no counts"):
        check_analysable(image)


def test_nearly_empty_real_velox_map_is_refused_naming_the_file(SHARED_EDS: Path) -> None:
    from napari_sigma.io.readers.reading import read_spectrum_image

    image = read_spectrum_image(SHARED_EDS / "emd/SI_empty_selection.emd")
    with pytest.raises(AnalysisError, match=r"SI_empty_selection\.emd: nearly empty \(72 counts"):
        check_analysable(image)


@pytest.mark.parametrize("shape", [(96, 8), (12, 96)])
def test_the_door_check_leaves_the_counts_to_the_feature_pass_only_with_a_good_sample(shape):
    from napari_sigma.io.readers.validation import check_at_the_door

    image = _image(shape=shape, dtype=np.uint16)  # ~768 counts in each pixel
    # a sample of every n-th row with plenty of counts: checked on the pass's sums
    assert check_at_the_door(image, sample_pixels=100) is None
    # a sample that would be the whole map: checked at once, its sums returned
    n_pixels = shape[0] * shape[1]
    np.testing.assert_array_equal(check_at_the_door(image, 1, n_pixels), image.total_counts())
    np.testing.assert_array_equal(check_at_the_door(image), image.total_counts())


@pytest.mark.parametrize(
    ("fill", "cause"),
    [
        (None, "the map holds no counts"),
        ((slice(0, 1), 0), r"nearly empty \(3 counts in 768 pixels"),
        ((slice(1, 2), 3), r"nearly empty \(3 counts in 768 pixels"),  # a row the sample skips
    ],
)
def test_empty_and_nearly_empty_maps_are_refused_at_the_door_naming_the_file(fill, cause):
    from napari_sigma.io.readers.validation import check_at_the_door

    image = _image(shape=(96, 8), dtype=np.uint16)
    image.counts[:] = 0
    if fill is not None:
        image.counts[fill[0], fill[1], 7] = 3
    with pytest.raises(AnalysisError, match=cause) as info:
        check_at_the_door(image, sample_pixels=100)
    assert str(info.value).startswith("/data/map.hspy: ")


def test_a_map_whose_sample_misleads_is_refused_by_the_check_on_every_pixel():
    """Counts only in the rows the door's sample reads: the sample passes, the check on the
    feature pass's sums (every pixel) refuses the map with the usual message."""
    from napari_sigma.io.readers.validation import check_at_the_door

    image = _image(shape=(96, 8), dtype=np.uint16)
    image.counts[:] = 0
    image.counts[::8, :, 5] = 3  # the sampled rows: 3 counts per pixel, 1/8 of the map
    assert check_at_the_door(image, sample_pixels=100) is None
    with pytest.raises(AnalysisError, match=r"map\.hspy: nearly empty \(288 counts in 768"):
        check_analysable(image, 1, image.total_counts())
    with pytest.raises(AnalysisError, match="binning by 200 is larger"):
        check_at_the_door(image, 200, sample_pixels=100)  # the shape checks come first
