"""The whole analysis on seeded synthetic data with known ground truth."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from napari_sigma.errors import AnalysisError
from napari_sigma.latent.embedding import LatentSettings
from napari_sigma.metrics import adjusted_rand_index, phase_accuracy_report
from napari_sigma.pipeline.analysis import (
    AnalysisResult,
    AnalysisSettings,
    analyse,
    choose_lines,
    run_analysis,
)
from napari_sigma.synthetic.generator import benchmark_case, demo_sample, make_synthetic

FAST_LATENT = LatentSettings(hidden=(32, 16), epochs=2, train_pixels=4000, device="cpu")


@pytest.fixture(scope="module")
def demo():
    return demo_sample(seed=0)


@pytest.fixture(scope="module")
def demo_result(demo):
    settings = AnalysisSettings.preset("default", lines=tuple(demo.lines), device="cpu")
    return run_analysis(demo.image, settings)


def test_demo_finds_the_true_phases_automatically(demo, demo_result):
    # the embedded example: 160x160, 6 minerals, ~200 counts per pixel, mixed boundaries
    assert demo.image.shape == (160, 160) and len(demo.phase_names) >= 5
    assert demo.image.counts.sum() / demo.labels.size == pytest.approx(200, rel=0.05)
    report = phase_accuracy_report(demo, demo_result.labels, demo_result.phase_spectra)
    assert demo_result.settings.clustering.n_phases == "auto"
    assert report["n_phases_found"] == report["n_phases_truth"] == 6
    assert report["ari"] >= 0.9
    assert report["phase_spectra_cosine_summary"]["mean"] >= 0.98


def test_demo_result_is_complete_and_consistent(demo, demo_result):
    r = demo_result
    k, n_channels = r.n_phases, demo.image.energy.size
    assert r.labels.shape == demo.image.shape and r.labels.dtype == np.int32
    assert set(np.unique(r.labels)) == set(range(1, k + 1))  # 1..K, napari's convention
    assert r.phase_spectra.shape == (k, n_channels)
    np.testing.assert_allclose(r.phase_spectra.sum(), demo.image.counts.sum(), rtol=1e-9)
    assert r.components.shape == (k, n_channels) and np.all(r.components >= 0)
    assert r.abundances.shape == (*demo.image.shape, k) and np.all(r.abundances >= 0)
    assert r.latent.shape == (demo.labels.size, 2) and np.isfinite(r.latent).all()
    assert r.probabilities.shape == (*demo.image.shape, k)
    np.testing.assert_allclose(r.probabilities.sum(-1), 1.0, rtol=1e-4)
    assert r.intensities.shape == (*demo.image.shape, len(r.lines))
    assert {"features", "latent", "clustering", "unmixing"} <= set(r.timings)
    assert r.device == "cpu" and "torch" in r.versions
    # names say what a phase is: the mineral identified from its quantified composition
    names = dict(zip(range(1, k + 1), r.phase_names, strict=True))
    pyrite = np.bincount(r.labels[demo.labels == 6]).argmax()
    quartz = np.bincount(r.labels[demo.labels == 1]).argmax()
    assert names[pyrite] == f"P{pyrite} pyrite"
    assert names[quartz] == f"P{quartz} quartz"
    assert [m.phase_id for m in r.phase_minerals] == list(range(1, k + 1))


def test_binned_analysis_returns_full_resolution_labels():
    sample = make_synthetic(seed=3, shape=(41, 37), phases=("quartz", "magnetite", "calcite"))
    settings = AnalysisSettings.preset(
        "default", lines=tuple(sample.lines), bin_factor=2, latent=FAST_LATENT, device="cpu"
    )
    result = run_analysis(sample.image, settings)
    assert result.labels.shape == (41, 37)  # odd edges take their neighbour's label
    assert result.latent_shape == (20, 18) and result.latent.shape == (20 * 18, 2)
    assert result.latent_pixels.max() < 41 * 37
    assert result.n_phases == 3
    assert adjusted_rand_index(sample.labels, result.labels) > 0.8


def test_without_embedding_the_latent_space_is_skipped_and_nothing_else_changes(demo_result):
    from napari_sigma.compute.progress import run_to_completion

    demo = demo_result
    skipped = run_to_completion(analyse(demo.image, demo.settings, embed=False))
    assert skipped.latent.shape == (0, 2) and len(skipped.latent_pixels) == 0
    assert "latent" not in skipped.timings and not skipped.loss_history
    np.testing.assert_array_equal(skipped.labels, demo.labels)
    np.testing.assert_array_equal(skipped.abundances, demo.abundances)
    assert skipped.phase_names == demo.phase_names
    # phases found in the latent space: it is computed whatever ``embed`` says
    sample = make_synthetic(seed=1, shape=(32, 32), phases=("quartz", "magnetite", "halite"))
    settings = AnalysisSettings.preset("default", lines=tuple(sample.lines), device="cpu")
    settings = replace(settings, latent=FAST_LATENT, cluster_space="latent")
    settings = replace(settings, clustering=replace(settings.clustering, n_phases=3))
    assert run_to_completion(analyse(sample.image, settings, embed=False)).latent.shape == (
        32 * 32,
        2,
    )


def test_fixed_number_of_phases_and_the_sigma_preset():
    sample = make_synthetic(seed=1, shape=(48, 48), phases=("quartz", "magnetite", "halite"))
    lines = tuple(sample.lines)
    fixed = AnalysisSettings.preset("default", lines=lines, latent=FAST_LATENT, device="cpu")
    fixed = replace(fixed, clustering=replace(fixed.clustering, n_phases=4))
    assert run_analysis(sample.image, fixed).n_phases == 4
    sigma = AnalysisSettings.preset("sigma", lines=lines, device="cpu")
    assert sigma.bin_factor == 2 and sigma.cluster_space == "latent"
    assert sigma.latent.hidden == (512, 256, 128) and sigma.features.normalisation == "sigma"
    assert sigma.nmf_init == "nndsvd" and fixed.nmf_init == "vertices"
    sigma = replace(sigma, latent=replace(sigma.latent, epochs=1, train_pixels=2000))
    sigma = replace(sigma, clustering=replace(sigma.clustering, n_phases=3))
    result = run_analysis(sample.image, sigma)
    assert result.n_phases == 3 and result.labels.shape == (48, 48)


def test_the_analysis_can_be_cancelled_between_steps(demo):
    settings = AnalysisSettings.preset("default", lines=tuple(demo.lines), device="cpu")
    computation = analyse(demo.image, settings)
    stages = [next(computation).stage for _ in range(3)]
    computation.close()  # what Abort does: no result, no exception
    assert stages[0] == "features"
    with pytest.raises(StopIteration):
        next(computation)


def test_lines_come_from_elements_metadata_or_suggestion(demo):
    image = demo.image
    assert choose_lines(image, AnalysisSettings(elements=("Fe", "Si", "O"))) == (
        "Fe_Ka",
        "Si_Ka",
        "O_Ka",
    )
    assert choose_lines(image, AnalysisSettings(lines=("S_Ka",))) == ("S_Ka",)
    suggested = choose_lines(replace(image, elements=()), AnalysisSettings())
    assert {"Si_Ka", "O_Ka", "Fe_Ka", "S_Ka"} <= set(suggested)
    with pytest.raises(AnalysisError, match="no elements"):
        choose_lines(replace(image, elements=()), AnalysisSettings(elements=("H",)))


def test_a_trace_phase_below_one_percent_is_found():
    from napari_sigma.synthetic.generator import benchmark_case

    sample = benchmark_case("trace", seed=0)  # zircon: 0.5 % of the map, three small grains
    trace_id = int(np.argmin(np.bincount(sample.labels.ravel())[1:])) + 1
    assert 0 < np.mean(sample.labels == trace_id) < 0.01
    settings = AnalysisSettings.preset(
        "default", lines=tuple(sample.lines), latent=FAST_LATENT, device="cpu"
    )
    result = run_analysis(sample.image, settings)
    report = phase_accuracy_report(sample, result.labels)
    assert result.n_phases == sample.n_phases
    assert report["smallest_phase_iou"] >= 0.5
    assert report["ari"] >= 0.9


def _benchmark_report(case: str) -> tuple[dict, AnalysisResult]:
    from napari_sigma.synthetic.generator import benchmark_case

    sample = benchmark_case(case, seed=0)
    settings = AnalysisSettings.preset(
        "default", lines=tuple(sample.lines), latent=FAST_LATENT, device="cpu"
    )
    result = run_analysis(sample.image, settings)
    return phase_accuracy_report(sample, result.labels), result


def test_two_olivines_one_weight_percent_apart_are_two_phases():
    # per pixel they are 0.45 noise sd apart (before the composition split: 4 phases, F1 0);
    # the split alone put a 369-pixel Fo89 grain in Fo90 (twin F1 0.915, ARI 0.921, twin
    # abundances 1.3 and 0.9 points off); the twins' assignment from whole spectra
    # (phases/twins.py) gives it back: F1 0.961, ARI 0.960, abundances 0.32 and 0.10 points off
    from napari_sigma.io.mineral_report.mineralogy import abundance_fractions
    from napari_sigma.synthetic.generator import benchmark_case

    report, result = _benchmark_report("minor_twin")
    assert result.n_phases == report["n_phases_truth"] == 5
    assert min(report["most_similar_pair_f1"]) >= 0.95
    assert report["ari"] >= 0.95
    sample = benchmark_case("minor_twin", seed=0)
    truth = sample.fractions.reshape(-1, 5).mean(axis=0)
    found = abundance_fractions(result.image, result.labels, result.n_phases)
    for twin in (1, 2):
        phase = np.bincount(result.labels[sample.labels == twin]).argmax()
        assert abs(found[phase - 1] - truth[twin - 1]) < 0.005
    _assert_known_sums_are_the_counts(result)  # after the twins moved labels


def test_a_twin_grain_along_other_phases_gets_its_own_twin():
    """minor_twin seed 3: a 151-pixel Fo89 grain, half of its outline along other phases, was
    labelled Fo90 (twin abundances 0.96 points off): its pixels next to the other phases carried
    no evidence. With their mixtures' ratios (phases/twins.py) both twins are within 0.3."""
    from napari_sigma.io.mineral_report.mineralogy import abundance_fractions

    sample = benchmark_case("minor_twin", seed=3)
    settings = AnalysisSettings.preset(
        "default", lines=tuple(sample.lines), latent=FAST_LATENT, device="cpu"
    )
    result = run_analysis(sample.image, settings)
    truth = sample.fractions.reshape(-1, 5).mean(axis=0)
    found = abundance_fractions(result.image, result.labels, result.n_phases)
    for twin in (1, 2):
        phase = np.bincount(result.labels[sample.labels == twin]).argmax()
        assert abs(found[phase - 1] - truth[twin - 1]) < 0.005


def _assert_known_sums_are_the_counts(result) -> None:
    """The cores and sums an analysis keeps for its report are those of its final labels."""
    from unittest import mock

    from napari_sigma.io.mineral_report.mineralogy import (
        BASIS_DEPTH,
        abundance_fractions,
        known_sums,
        label_abundances,
    )
    from napari_sigma.minerals.host import host_corrected_spectra
    from napari_sigma.minerals.interiors import interior_labels, phase_depths
    from napari_sigma.phases.spectra import phase_sum_spectra

    n = result.n_phases
    cores, core_sums, map_sum = known_sums(result, result.labels, n)
    np.testing.assert_array_equal(cores, interior_labels(result.labels))
    np.testing.assert_array_equal(core_sums, phase_sum_spectra(result.image.counts, cores, n))
    counts = result.image.counts
    np.testing.assert_array_equal(map_sum, counts.sum(axis=(0, 1)).astype(np.float64))
    np.testing.assert_array_equal(
        abundance_fractions(result.image, result.labels, n),
        abundance_fractions(result.image, result.labels, n, (cores, core_sums, map_sum)),
    )
    # the abundance basis' deep pixels, summed in the analysis' pass: the sums of the counts
    deep = np.where(phase_depths(result.labels) >= BASIS_DEPTH, result.labels, 0)
    np.testing.assert_array_equal(result.deep_spectra, phase_sum_spectra(counts, deep, n))
    known = (cores, core_sums, map_sum)
    np.testing.assert_array_equal(
        abundance_fractions(result.image, result.labels, n),
        abundance_fractions(result.image, result.labels, n, known, result.deep_spectra),
    )
    # the distance transform the cores came from, used again by the report (not recomputed)
    np.testing.assert_array_equal(result.core_depth, phase_depths(result.labels))
    again = AssertionError("the analysis' distance transform was computed again")
    # the host correction of the cores, made once by the minerals, used again by the report
    image = result.image
    fresh = host_corrected_spectra(counts, result.labels, core_sums, image.energy.energies,
                                   float(image.beam_energy), phase_depths(result.labels))  # fmt: skip
    np.testing.assert_array_equal(result.host_spectra[0], fresh[0])
    assert repr(result.host_spectra[1]) == repr(fresh[1])
    host_again = AssertionError("the analysis' host correction was computed again")
    with (
        mock.patch("napari_sigma.minerals.interiors.phase_depths", side_effect=again),
        mock.patch("napari_sigma.minerals.host.host_corrected_spectra", side_effect=host_again),
    ):
        reused = label_abundances(result, result.labels, n)
    np.testing.assert_array_equal(reused, abundance_fractions(result.image, result.labels, n))
    edited = result.labels.copy()
    edited[0, 0] = edited[0, 0] % n + 1
    assert known_sums(result, edited, n) is None  # other labels: summed from the counts


def test_mixed_boundary_pixels_go_to_their_majority_phase():
    # without mixture templates albite rims quartz-anorthite boundaries: ARI 0.957, now 0.981
    report, result = _benchmark_report("eight_phases")
    assert result.n_phases == 8
    assert report["ari"] >= 0.975
    _assert_known_sums_are_the_counts(result)  # after the majority step moved labels


@pytest.mark.parametrize(("case", "before"), [("particles", 4), ("eight_phases", 11)])
def test_high_counts_find_the_true_number_of_phases(case, before):
    # at 2 000 counts per pixel boundary-biased profiles and three-phase junctions used to be
    # taken for trace phases: particles 4 of 5 phases (ARI 0.888), eight_phases 11 of 8
    from napari_sigma.synthetic.generator import _benchmark_settings

    kwargs = {**_benchmark_settings()[case], "counts_per_pixel": 2000.0}
    sample = make_synthetic(seed=0, **kwargs)
    settings = AnalysisSettings.preset(
        "default", lines=tuple(sample.lines), latent=FAST_LATENT, device="cpu"
    )
    result = run_analysis(sample.image, settings)
    assert result.n_phases == sample.n_phases != before
    assert phase_accuracy_report(sample, result.labels)["ari"] >= 0.98


def test_pixels_without_counts_are_unassigned_with_the_reason():
    sample = benchmark_case("easy", seed=0, shape=(64, 64))
    counts = np.array(sample.image.counts)
    counts[:, :20] = 0  # an empty background strip
    image = replace(sample.image, counts=counts)
    settings = AnalysisSettings.preset(
        "default", lines=tuple(sample.lines), device="cpu", latent=FAST_LATENT
    )
    result = run_analysis(image, settings)
    assert (result.labels[:, :20] == 0).all()
    assert (result.labels[:, 22:] > 0).all()
    assert result.unassigned == {"no counts": 64 * 20}
    assert result.phase_fractions.shape == (64, 64, result.n_phases)
    np.testing.assert_allclose(result.phase_fractions[:, 25:].sum(-1), 1.0, atol=1e-5)
    assert (result.purity[:, :20] == 0).all()
    assert result.phase_choice().startswith(f"auto: {result.n_phases} phases; next ")


@pytest.mark.slow
def test_hitachi_sample_is_one_phase_and_its_empty_frame_unassigned(SHARED_EDS):
    """The recorded area of Hitachi_TM3030Plus.bcf (~10 counts per pixel, uniform) is one
    phase: the empty frame around it (80 % of the pixels, no counts) is unassigned and is no
    "second composition" of it (it was: 1 115 of the sample's pixels became a speck phase)."""
    from napari_sigma.io.readers.reading import read_spectrum_image

    image = read_spectrum_image(SHARED_EDS / "bruker" / "Hitachi_TM3030Plus.bcf")
    settings = AnalysisSettings.preset("default", device="cpu", latent=FAST_LATENT)
    result = run_analysis(image, settings)
    empty = np.asarray(image.counts).sum(axis=-1) == 0
    assert result.n_phases == 1, result.phase_names
    assert (result.labels[empty] == 0).all() and (result.labels[~empty] == 1).mean() > 0.99
    assert result.unassigned["no counts"] >= 0.75 * image.counts.shape[0] * image.counts.shape[1]


def test_torch_is_imported_beside_the_data_check_only_where_nothing_else_imports():
    """The CLI's first analysis imports torch in a thread while the check sums the counts
    (a fresh interpreter), its libraries first opened without the GIL; never off the main
    thread, for lazy counts or when torch is in."""
    import subprocess
    import sys
    import threading

    import torch  # noqa: F401

    from napari_sigma.energy import EnergyAxis
    from napari_sigma.pipeline.analysis import _torch_imported_meanwhile
    from napari_sigma.spectrum_image import SpectrumImage

    image = SpectrumImage(counts=np.ones((4, 4, 64), np.uint16), energy=EnergyAxis(0, 0.01, 64))
    assert _torch_imported_meanwhile(image) is None
    script = (
        "import sys, threading, numpy as np\n"
        "from napari_sigma.energy import EnergyAxis\n"
        "from napari_sigma.spectrum_image import SpectrumImage\n"
        "from napari_sigma.pipeline.analysis import _torch_imported_meanwhile\n"
        "image = SpectrumImage(counts=np.ones((4, 4, 64), np.uint16), energy=EnergyAxis(0, 0.01, 64))\n"
        "assert 'torch' not in sys.modules\n"
        "seen = []\n"
        "worker = threading.Thread(target=lambda: seen.append(_torch_imported_meanwhile(image)))\n"
        "worker.start(); worker.join()\n"
        "assert seen == [None] and 'torch' not in sys.modules\n"
        "import dask.array as da\n"
        "lazy = SpectrumImage(counts=da.ones((4, 4, 64), chunks=2), energy=image.energy)\n"
        "assert _torch_imported_meanwhile(lazy) is None\n"
        "from napari_sigma.compute import device\n"
        "loaded, real = [], device.load_torch_libraries\n"
        "device.load_torch_libraries = lambda: (loaded.append('torch' in sys.modules), real())\n"
        "thread = _torch_imported_meanwhile(image)\n"
        "thread.join()\n"
        "assert isinstance(thread, threading.Thread) and 'torch' in sys.modules\n"
        "assert loaded == [False]\n"  # torch's libraries opened without the GIL, then imported
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert threading.current_thread() is threading.main_thread()


def test_the_minerals_reuse_the_analysis_distance_transform(demo_result):
    """identify_phases given the analysis' depth map (as the analysis calls it) finds exactly
    what it finds computing the map anew."""
    from unittest import mock

    from napari_sigma.compute.progress import run_to_completion
    from napari_sigma.minerals.interiors import phase_depths
    from napari_sigma.minerals.phases import elements_of_lines, identify_phases

    r = demo_result
    np.testing.assert_array_equal(r.core_depth, phase_depths(r.labels))
    elements = elements_of_lines(r.lines)
    args = (r.image, r.labels, elements)
    given = run_to_completion(identify_phases(*args, spectra=r.core_spectra, depth=r.core_depth))
    fresh = run_to_completion(identify_phases(*args, spectra=r.core_spectra))
    assert len(given) == r.n_phases and repr(given) == repr(fresh)
    assert repr(given) == repr(r.phase_minerals)
    # and given the analysis' host correction (made once for the minerals and the report)
    assert r.host_spectra is not None
    # identify_phases calls the name it imported into minerals.phases; neither is called
    with (
        mock.patch("napari_sigma.minerals.host.host_corrected_spectra", side_effect=AssertionError),
        mock.patch(
            "napari_sigma.minerals.phases.host_corrected_spectra", side_effect=AssertionError
        ),
    ):
        hosted = run_to_completion(
            identify_phases(*args, spectra=r.core_spectra, depth=r.core_depth, host=r.host_spectra)
        )
    assert repr(hosted) == repr(fresh)


def test_the_compiled_abundance_code_is_loaded_beside_the_phase_sums(
    demo, demo_result, monkeypatch
):
    """A CPU run that takes the compiled active set (here from the demo's 160 x 160 pixels)
    loads numba's code in a thread started before the phase sums pass; the abundance pass
    waits for it; labels and abundances are those of the run without it (the batched form)."""
    from napari_sigma.unmixing import abundances

    started = []
    original = abundances.start_compiled_warm_up

    def recorded(counts, device="auto"):
        started.append(original(counts, device))
        return started[-1]

    monkeypatch.setattr(abundances, "COMPILED_NNLS_PIXELS", 160 * 160)
    monkeypatch.setattr(abundances, "start_compiled_warm_up", recorded)
    settings = AnalysisSettings.preset("default", lines=tuple(demo.lines), device="cpu")
    result = run_analysis(demo.image, settings)
    assert len(started) == 1 and started[0] is not None and not started[0].is_alive()
    assert abundances._WARM_UPS == []
    np.testing.assert_array_equal(result.labels, demo_result.labels)
    np.testing.assert_array_equal(result.abundances, demo_result.abundances)
    np.testing.assert_array_equal(result.phase_fractions, demo_result.phase_fractions)
