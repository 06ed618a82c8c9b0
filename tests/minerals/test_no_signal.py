"""A phase without a signal of its own (a hole in a film: only stray X-rays) is named as such,
not as the element of its few counts (minerals.signal, minerals.phases)."""

import numpy as np

from napari_sigma.compute.progress import run_to_completion
from napari_sigma.energy import EnergyAxis
from napari_sigma.minerals.phases import identify_phases, mineral_phase_names
from napari_sigma.minerals.signal import no_signal_phases
from napari_sigma.quant.simulate import line_spectrum
from napari_sigma.spectrum_image import SpectrumImage
from napari_sigma.synthetic.generator import weight_fractions

AXIS = EnergyAxis(-0.1, 0.01, 1024)
BEAM = 200.0


def _unit(spectrum):
    return spectrum / spectrum.sum()


def _continuum():
    """A smooth bremsstrahlung-like background over the axis (a material under the beam)."""
    energy = np.clip(AXIS.energies, 0.2, None)
    return _unit(np.where(AXIS.energies > 0.2, 1.0 / energy, 0.0))


def _film_hole_particle(rates=(9.0, 1.6, 36.0), stripes=3, seed=0):
    """A JEOL-like STEM map (rawdata.ASW's proportions, 20 times its dose): a carbon film with
    stray Cu (9 counts/px), a hole holding only the stray Cu lines (1.6), a cubanite particle
    (36); vertical stripes, one phase each."""
    stray = _unit(line_spectrum({"Cu": 1.0}, AXIS, BEAM, thin=True))
    carbon = _unit(line_spectrum({"C": 1.0}, AXIS, BEAM, thin=True))
    cubanite = _unit(line_spectrum(weight_fractions("CuFe2S3"), AXIS, BEAM, thin=True))
    film = 0.6 * carbon + 0.25 * _continuum() + 0.15 * stray
    particle = 0.7 * cubanite + 0.2 * _continuum() + 0.1 * stray
    means = [rates[0] * film, rates[1] * stray, rates[2] * particle][:stripes]
    labels = np.repeat(np.arange(1, stripes + 1), 16)[None, :].repeat(48, axis=0)
    cube = np.stack([means[k - 1] for k in labels.ravel()]).reshape(48, 16 * stripes, -1)
    counts = np.random.default_rng(seed).poisson(cube).astype(np.float32)
    return SpectrumImage(counts, AXIS, BEAM), labels.astype(np.int32)


def test_a_hole_holding_only_stray_copper_is_named_no_signal_not_copper():
    image, labels = _film_hole_particle()
    found = run_to_completion(identify_phases(image, labels, ["C", "S", "Fe", "Cu"]))
    hole = found[1]
    assert hole.quantification is None
    assert hole.mineral.startswith("no signal (") and hole.mineral.endswith(" counts/px)")
    rate = float(hole.mineral.split("(")[1].split(" ")[0])
    assert 1.2 < rate < 2.0  # the core's counts per pixel (1.6 drawn; 192 core pixels)
    assert hole.identification.density == 0.0  # no mass in the modal table
    names = mineral_phase_names(["P1", "P2", "P3"], found)
    assert names[1] == f"P2 {hole.mineral}"
    # the film and the particle are materials: quantified and named from the library
    for material in (found[0], found[2]):
        assert material.quantification is not None
        assert not material.mineral.startswith("no signal")


def test_a_film_holding_the_hole_s_stray_copper_is_named_with_it():
    # a third of the film's counts are the stray Cu that fills the hole (20 wt % Cu): no
    # library entry fits (as a contaminant the Cu is over 2 at %); as carbon plus some of its
    # touching phase, the hole's stray composition, it is carbon
    stray = _unit(line_spectrum({"Cu": 1.0}, AXIS, BEAM, thin=True))
    carbon = _unit(line_spectrum({"C": 1.0}, AXIS, BEAM, thin=True))
    film = 0.45 * carbon + 0.25 * _continuum() + 0.3 * stray
    labels = np.repeat(np.array([1, 2]), 16)[None, :].repeat(48, axis=0).astype(np.int32)
    means = np.stack([9.0 * film, 1.6 * stray])[labels - 1]
    image = SpectrumImage(np.random.default_rng(0).poisson(means).astype(np.float32), AXIS, BEAM)
    found = run_to_completion(identify_phases(image, labels, ["C", "Cu"]))
    assert found[1].mineral.startswith("no signal (") and found[1].quantification is None
    assert found[0].mineral == "carbon"
    assert found[0].identification.trace[0].endswith(f"% of P2 {found[1].mineral}")


def test_a_film_and_its_hole_alone():
    image, labels = _film_hole_particle(stripes=2)
    found = run_to_completion(identify_phases(image, labels, ["C", "Cu"]))
    assert found[1].mineral.startswith("no signal")
    assert found[0].quantification is not None


def _windows_counts(rates, pixels, shape):
    """Summed spectra of phases with per-pixel window ``rates`` (K, W) over ``pixels``."""
    spectra = np.asarray(rates, float) * np.asarray(pixels, float)[:, None]
    return spectra, [slice(i, i + 1) for i in range(shape)]


def test_a_thinner_part_of_one_material_is_no_hole():
    # a wedge: the thin part's lines are the thick part's, scaled (a fainter copy): a material
    rng = np.random.default_rng(1)
    thick = np.array([40.0, 25.0, 10.0])
    pixels = [2000, 2000]
    spectra = np.stack([rng.poisson(thick * 2000), rng.poisson(0.3 * thick * 2000)]).astype(float)
    windows = [slice(0, 1), slice(1, 2), slice(2, 3)]
    assert no_signal_phases(spectra, pixels, windows) == {}


def test_a_phase_holding_more_of_something_has_a_signal_of_its_own():
    # lower in all but one line, where it holds more than one other phase: not "no signal"
    spectra = np.array([[4000.0, 100.0, 0.0], [400.0, 0.0, 900.0], [300.0, 50.0, 50.0]])
    pixels = [1000, 1000, 1000]
    windows = [slice(0, 1), slice(1, 2), slice(2, 3)]
    assert no_signal_phases(spectra, pixels, windows) == {}
    # without its second and third lines: whatever it holds, every other phase holds more, and
    # it is no copy of either (a copy of the first would hold its second line): no signal
    spectra[2] = [300.0, 0.0, 0.0]
    found = no_signal_phases(spectra, pixels, windows)
    assert list(found) == [3] and found[3] == 0.3


def test_a_single_phase_is_never_no_signal():
    assert no_signal_phases(np.array([[5.0, 1.0]]), [100], [slice(0, 1)]) == {}


def test_a_hole_is_background_of_the_particle_table_and_holds_no_mass():
    from napari_sigma.minerals.mineralogy import mineralogy

    labels = np.full((30, 30), 1, dtype=np.int32)  # carbon film
    labels[:, 15:] = 2  # the hole
    labels[10:16, 12:18] = 3  # a particle across the film's edge
    hole = "no signal (0.18 counts/px)"
    names = {1: "carbon", 2: hole, 3: "cubanite"}
    tables = mineralogy(
        labels, names, 0.01,
        densities={"carbon": 2.2, hole: 0.0, "cubanite": 4.1},
        groups={"carbon": "carbon", hole: "no signal", "cubanite": "sulfide"},
    )  # fmt: skip
    assert [p["minerals"] for p in tables.particles] == ["cubanite 100.0"]
    modal = {row["mineral"]: row for row in tables.modal}
    assert modal[hole]["pixels"] == 30 * 15 - 18 and modal[hole]["wt_percent"] == 0.0
