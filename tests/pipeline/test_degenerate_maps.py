"""Tiny and single-phase maps through the API: they analyse, or are refused naming the file."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from napari_sigma.energy import EnergyAxis
from napari_sigma.errors import AnalysisError
from napari_sigma.pipeline.analysis import AnalysisSettings, run_analysis
from napari_sigma.spectrum_image import SpectrumImage
from napari_sigma.synthetic.generator import mineral, phase_spectra

AXIS = EnergyAxis(offset=-0.1, scale=0.01, size=1024)
LINES = ("O_Ka", "Na_Ka", "Al_Ka", "Si_Ka", "K_Ka", "Ca_Ka", "Fe_Ka")


def _one_phase(shape: tuple[int, int], seed: int = 0) -> SpectrumImage:
    lines, background = phase_spectra([mineral("albite")], AXIS, 15.0)
    expected = (lines + background)[0] * 300
    counts = np.random.default_rng(seed).poisson(expected, size=(*shape, AXIS.size))
    return SpectrumImage(
        counts=counts.astype(np.uint16), energy=AXIS, beam_energy=15.0, title="albite field"
    )


def _settings(method: str = "pca") -> AnalysisSettings:
    settings = AnalysisSettings.preset("default", lines=LINES)
    return replace(settings, latent=replace(settings.latent, method=method, epochs=3))


@pytest.mark.parametrize("method", ["pca", "ae"])
def test_a_single_phase_map_gives_exactly_one_phase(method, one_torch_thread) -> None:
    result = run_analysis(_one_phase((32, 32)), _settings(method))
    assert result.n_phases == 1
    assert set(np.unique(result.labels)) == {1}


@pytest.mark.parametrize("shape", [(2, 2), (1, 24)])
def test_two_by_two_and_single_row_maps_analyse(shape, one_torch_thread) -> None:
    result = run_analysis(_one_phase(shape), _settings())
    assert result.labels.shape == shape
    assert result.labels.min() >= 1


def test_a_one_pixel_map_is_refused_naming_it() -> None:
    with pytest.raises(AnalysisError, match="albite field: a 1 x 1 map has 1 pixel"):
        run_analysis(_one_phase((1, 1)), _settings())


def _two_phase(shape: tuple[int, int] = (64, 32)) -> SpectrumImage:
    lines, background = phase_spectra([mineral("albite"), mineral("quartz")], AXIS, 15.0)
    expected = (lines + background) * 200
    half = (np.arange(shape[1]) >= shape[1] // 2).astype(int)
    means = expected[np.broadcast_to(half, shape)]
    counts = np.random.default_rng(3).poisson(means).astype(np.uint16)
    return SpectrumImage(counts=counts, energy=AXIS, beam_energy=15.0, title="two-phase field")


def test_counts_checked_on_the_feature_pass_sums_give_the_same_analysis(monkeypatch) -> None:
    """A large map (here: a 256-pixel door sample) is read once: its counts are checked on the
    feature pass's sums, never summed apart, and every result equals the door-summed run's."""
    from napari_sigma.io.readers import validation

    image = _two_phase()
    monkeypatch.setattr(validation, "SAMPLE_PIXELS", 64 * 32)  # the door sums every pixel
    summed_at_the_door = run_analysis(image, _settings())

    def no_second_pass(self):
        raise AssertionError("the counts were summed apart from the feature pass")

    monkeypatch.setattr(validation, "SAMPLE_PIXELS", 256)  # every 8th row sampled
    monkeypatch.setattr(SpectrumImage, "total_counts", no_second_pass)
    one_pass = run_analysis(image, _settings())
    for name in ("labels", "abundances", "phase_fractions", "phase_spectra", "intensities",
                 "features", "probabilities"):  # fmt: skip
        np.testing.assert_array_equal(getattr(one_pass, name), getattr(summed_at_the_door, name))
    assert one_pass.n_phases == 2 and one_pass.phase_names == summed_at_the_door.phase_names


@pytest.mark.parametrize("sampled_rows_only", [False, True])
def test_empty_maps_are_refused_naming_them_whichever_check_sees_it(
    sampled_rows_only, monkeypatch
) -> None:
    """No counts: refused at the door, before the feature pass; counts only in the rows of the
    door's sample (3 per pixel there, 0.375 on average): refused by the check on the feature
    pass's sums, with the same message as a check at the door."""
    from napari_sigma.io.readers import validation
    from napari_sigma.pipeline import analysis

    image = _two_phase()
    image.counts[:] = 0
    monkeypatch.setattr(validation, "SAMPLE_PIXELS", 256)
    passes = []
    plain_line_features = analysis.line_features

    def counted(*args, **kwargs):
        passes.append(1)
        return plain_line_features(*args, **kwargs)

    monkeypatch.setattr(analysis, "line_features", counted)
    if not sampled_rows_only:
        with pytest.raises(AnalysisError, match=r"^two-phase field: the map holds no counts$"):
            run_analysis(image, _settings())
        assert passes == []
        return
    image.counts[::8, :, 300] = 3
    expected = r"^two-phase field: nearly empty \(768 counts in 2048 pixels, 0.38 per pixel"
    with pytest.raises(AnalysisError, match=expected):
        run_analysis(image, _settings())
    assert passes == [1]
