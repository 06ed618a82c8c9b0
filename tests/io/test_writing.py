"""A converted ``.hspy`` keeps what the quantification reads from the source's metadata."""

from dataclasses import replace

from napari_sigma.io.readers.reading import read_spectrum_image
from napari_sigma.io.results.writing import write_hspy
from napari_sigma.minerals.phases import _metadata, signal_type
from napari_sigma.quant.detector import takeoff_angle
from napari_sigma.synthetic.generator import make_synthetic


def _small_image(**changes):
    image = make_synthetic(seed=0, shape=(6, 5), counts_per_pixel=50, n_channels=256).image
    return replace(image, **changes)


def test_a_thin_foil_stays_a_thin_foil_with_its_detector(tmp_path):
    source = {
        "Signal": {"signal_type": "EDS_TEM"},
        "Sample": {"thickness": 30.0, "elements": ["Fe"]},
        "Acquisition_instrument": {
            "TEM": {
                "beam_energy": 200.0,
                "Detector": {"EDS": {"elevation_angle": 22.0, "azimuth_angle": 45.0}},
                "Stage": {"tilt_alpha": 5.0},
            }
        },
    }
    image = _small_image(beam_energy=200.0, metadata={"rsciio_metadata": source})
    back = read_spectrum_image(write_hspy(tmp_path / "foil.hspy", image))
    assert signal_type(back) == "EDS_TEM"
    assert back.beam_energy == 200.0
    assert takeoff_angle(_metadata(back)) == 27.0
    detector = _metadata(back)["Acquisition_instrument"]["TEM"]["Detector"]["EDS"]
    assert detector["azimuth_angle"] == 45.0
    sample = _metadata(back)["Sample"]
    assert sample["thickness"] == 30.0  # the thin-foil absorption reads it
    assert list(sample["elements"]) == list(image.elements)  # the image's own, not the source's


def test_an_image_without_metadata_is_written_as_sem_with_its_beam_energy(tmp_path):
    image = _small_image(beam_energy=15.0, metadata={})
    back = read_spectrum_image(write_hspy(tmp_path / "bulk.hspy", image))
    assert signal_type(back) == "EDS_SEM"
    assert back.beam_energy == 15.0
    assert takeoff_angle(_metadata(back)) == 35.0  # the default: no detector in the source


def test_the_image_s_beam_energy_wins_over_the_source_s(tmp_path):
    source = {
        "Signal": {"signal_type": "EDS_SEM"},
        "Acquisition_instrument": {"SEM": {"beam_energy": 30.0}},
    }
    image = _small_image(beam_energy=20.0, metadata={"rsciio_metadata": source})
    back = read_spectrum_image(write_hspy(tmp_path / "kv.hspy", image))
    assert back.beam_energy == 20.0
    assert source["Acquisition_instrument"]["SEM"]["beam_energy"] == 30.0  # source untouched


def test_a_bruker_window_description_survives_the_conversion(tmp_path):
    from napari_sigma.quant.detector import detector_from_metadata

    window = {
        "type": "XFlash 6|10",
        "window_type": "slew AP3.3",
        "window_layers": [[5, 0.013], [6, 0.145], [13, 0.035]],
        "grid": [14, 380.0, 0.23],
        "dead_layer_um": 0.029,
        "crystal_mm": 0.45,
    }
    source = {"Signal": {"signal_type": "EDS_SEM"}, "eds_detector": window}
    image = _small_image(beam_energy=20.0, metadata={"rsciio_metadata": source})
    back = read_spectrum_image(write_hspy(tmp_path / "window.hspy", image))
    assert detector_from_metadata(_metadata(back)) == detector_from_metadata(source)
