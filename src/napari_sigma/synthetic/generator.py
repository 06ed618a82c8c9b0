"""Synthetic EDS spectrum images of real minerals, with ground truth.

A sample is a field of grains (a warped Voronoi tessellation) or of round particles on a substrate;
every pixel is a mixture of pure phases (Gaussian-blurred phase indicators at grain boundaries)
whose expected spectrum is ``sum_k fraction_k * pure_k``; the counts are its Poisson realisation.

The pure spectrum of a phase is built from a plausible physical model:

- characteristic lines: the quantification's physics (:mod:`napari_sigma.quant.simulate`): X-ray
  production per electron from Casnati's cross-section integrated with the PAP stopping power
  and backscatter factor, Philibert-Duncumb-Heinrich absorption (xraydb mass attenuation, 35
  degree take-off), Reed's characteristic fluorescence and the detector efficiency (0.3 um
  polymer window, 30 nm Al, 30 nm Si dead layer, 0.45 mm Si crystal); Gaussian peaks of the
  detector FWHM (130 eV at Mn Ka). Not modelled: escape and sum peaks, coherent bremsstrahlung;
- bremsstrahlung: Kramers' law ``Zbar * (E0 - E) / E`` times the same absorption and efficiency,
  blurred by the detector resolution, zero above the beam energy and below ~0.1 keV (noise
  threshold). It is about a quarter of the counts of a silicate, more for heavy phases.

Each pure spectrum is normalised to the dose with a mild phase-dependent yield
``(Zbar / mean Zbar) ** 0.3`` (heavier phases are brighter); the field's mean counts per pixel
equal ``counts_per_pixel``. Counts are sampled event by event (Poisson total per pixel, then each
count's phase and channel from the pure spectra), row chunk by row chunk, which is exact Poisson
statistics and much faster than one Poisson draw per channel.

This module holds the samples (:func:`make_synthetic`, :func:`demo_sample`, the benchmark cases);
the rest lives by domain: :mod:`~napari_sigma.synthetic.phase_specs` (``PhaseSpec``,
``mineral``, ``MINERALS``), :mod:`~napari_sigma.synthetic.spectra` (``phase_spectra``,
``detector_efficiency``), :mod:`~napari_sigma.synthetic.layouts` (``grain_layout``,
``particle_layout``, ``mixing_fractions``) and :mod:`~napari_sigma.synthetic.counts`
(``sample_counts``, ``alias_tables``). Their names are importable from here as before; change
them in their own modules, patch them in the module that reads them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from napari_sigma.energy import EnergyAxis
from napari_sigma.spectrum_image import SpectrumImage

# moved by domain (eighteenth session): importable from here as before; a patch takes effect in
# the module that reads the name
from napari_sigma.synthetic.counts import CHUNK_PIXELS, alias_tables, sample_counts  # noqa: F401
from napari_sigma.synthetic.layouts import (  # noqa: F401
    MIN_FRACTION,
    _fractions,
    grain_layout,
    mixing_fractions,
    particle_layout,
)
from napari_sigma.synthetic.phase_specs import (  # noqa: F401
    PhaseSpec,
    _as_phase,
    _atomic_number,
    _build_minerals,
    formula_atoms,
    mineral,
    weight_fractions,
)
from napari_sigma.synthetic.spectra import (  # noqa: F401
    FWHM_MNKA_KEV,
    KRAMERS_CONSTANT,
    LINE_SCALE,
    NOISE_THRESHOLD_KEV,
    TAKEOFF_DEG,
    YIELD_EXPONENT,
    detector_efficiency,
    phase_spectra,
)
from napari_sigma.xray.lines import default_line, element_lines

DETECTOR_OFFSET_KEV = -0.1

DETECTOR_SCALE_KEV = 0.01


def __getattr__(name: str):
    # MINERALS is built on first use, so that importing this module does not import xraydb.
    if name == "MINERALS":
        minerals = _build_minerals()
        globals()["MINERALS"] = minerals
        return minerals
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass
class SyntheticSample:
    """A synthetic spectrum image and its ground truth.

    Parameters
    ----------
    image : SpectrumImage
        The counts (y, x, E) and their calibration.
    labels : ndarray, shape (y, x) int32
        True phase 1..K of every pixel (the phase with the largest fraction).
    fractions : ndarray, shape (y, x, K) float32
        Mixing fractions of the phases (sum 1 per pixel).
    pure_spectra : ndarray, shape (K, E) float64
        Expected counts of one pixel of each pure phase (lines and background).
    pure_line_spectra : ndarray, shape (K, E) float64
        The same without the background.
    phase_names : tuple of str
        Name of phase ``k`` at index ``k - 1``.
    elements : tuple of str
        Elements with X-ray lines in any phase, by atomic number.
    lines : tuple of str
        The default analysis line of each element (``xray.default_line``), e.g. ``"Fe_Ka"``.
    phases : tuple of PhaseSpec
        The phases' compositions.
    """

    image: SpectrumImage
    labels: np.ndarray
    fractions: np.ndarray
    pure_spectra: np.ndarray
    pure_line_spectra: np.ndarray
    phase_names: tuple[str, ...]
    elements: tuple[str, ...]
    lines: tuple[str, ...]
    phases: tuple[PhaseSpec, ...] = field(default=())

    @property
    def n_phases(self) -> int:
        """Number of phases K."""
        return len(self.phase_names)


DEFAULT_PHASES = ("quartz", "albite", "orthoclase", "diopside", "magnetite", "pyrite")


def _elements_of(phases: Sequence[PhaseSpec], beam_energy: float) -> tuple[str, ...]:
    found = {el for phase in phases for el in phase.composition}
    with_lines = [el for el in found if element_lines(el, NOISE_THRESHOLD_KEV, beam_energy)]
    return tuple(sorted(with_lines, key=_atomic_number))


def _phase_map(
    layout: str,
    shape: tuple[int, int],
    n_phases: int,
    grain_size: float,
    area_fractions: Sequence[float] | None,
    rng: np.random.Generator,
) -> np.ndarray:
    if layout == "grains":
        return grain_layout(shape, _fractions(n_phases, area_fractions), grain_size, rng)
    if layout == "particles":  # the substrate, the last phase, is what the particles leave
        return particle_layout(shape, _fractions(n_phases - 1, area_fractions), grain_size, rng)
    raise ValueError(f"layout must be 'grains' or 'particles', got {layout!r}")


def make_synthetic(
    seed: int = 0,
    shape: tuple[int, int] = (128, 128),
    phases: Sequence[str | PhaseSpec] = DEFAULT_PHASES,
    counts_per_pixel: float = 200.0,
    n_channels: int = 2048,
    beam_energy: float = 15.0,
    pixel_size_um: float = 0.5,
    layout: str = "grains",
    grain_size: float = 20.0,
    boundary_width: float = 0.7,
    area_fractions: Sequence[float] | None = None,
    substrate: str | PhaseSpec | None = None,
    dtype: npt.DTypeLike = np.uint16,
    title: str = "synthetic",
) -> SyntheticSample:
    """A synthetic EDS spectrum image of mineral phases with its ground truth.

    Parameters
    ----------
    seed : int
        Seed of everything random (layout and counts): equal seeds give identical samples.
    shape : (int, int)
        Field size (y, x) in pixels.
    phases : sequence of str or PhaseSpec
        Mineral names of ``MINERALS`` or explicit phases (at least 2 for grains).
    counts_per_pixel : float
        Mean expected counts per pixel over the field (the dose).
    n_channels : int
        Channels of the energy axis (offset -0.1 keV, 0.01 keV per channel).
    beam_energy : float
        Accelerating voltage in kV.
    pixel_size_um : float
        Pixel size in µm.
    layout : {"grains", "particles"}
        A tessellation of grains, or round particles on a substrate.
    grain_size : float
        Typical grain (or particle) diameter in pixels.
    boundary_width : float
        Sigma (pixels) of the blur that mixes phases at boundaries; 0 for sharp boundaries.
    area_fractions : sequence of float, optional
        Relative target areas of ``phases`` (equal when None). A phase smaller than half a grain
        becomes a few small inclusions. With particles, the shares of the particle area.
    substrate : str or PhaseSpec, optional
        Substrate of the particles layout (default ``"carbon"``); it is the last phase.
    dtype : numpy dtype
        Dtype of the counts.
    title : str
        Title of the image.

    Returns
    -------
    SyntheticSample
    """
    specs = _phase_specs(phases, layout, substrate)
    rng = np.random.default_rng(seed)
    phase_map = _phase_map(layout, tuple(shape), len(specs), grain_size, area_fractions, rng)
    fractions = mixing_fractions(phase_map, len(specs), boundary_width)
    axis = EnergyAxis(DETECTOR_OFFSET_KEV, DETECTOR_SCALE_KEV, int(n_channels))
    pure, pure_lines = _dosed_spectra(specs, fractions, axis, beam_energy, counts_per_pixel)
    labels = _dominant_labels(fractions, specs, shape)
    counts = sample_counts(fractions, pure, rng, dtype)
    elements = _elements_of(specs, beam_energy)
    lines = tuple(default_line(el, beam_energy).name for el in elements)
    mean_z = np.array([p.mean_z for p in specs], dtype=np.float32)
    image = SpectrumImage(
        counts=counts,
        energy=axis,
        beam_energy=beam_energy,
        pixel_size=pixel_size_um,
        pixel_unit="µm",
        elements=elements,
        xray_lines=lines,
        images={"mean Z": fractions @ mean_z},
        title=title,
        metadata={"synthetic": {"seed": seed, "phases": [p.name for p in specs]}},
    )
    return SyntheticSample(
        image=image,
        labels=labels,
        fractions=fractions,
        pure_spectra=pure,
        pure_line_spectra=pure_lines,
        phase_names=tuple(p.name for p in specs),
        elements=elements,
        lines=lines,
        phases=tuple(specs),
    )


def _phase_specs(
    phases: Sequence[str | PhaseSpec], layout: str, substrate: str | PhaseSpec | None
) -> list[PhaseSpec]:
    """The phases of :func:`make_synthetic` (the particles' substrate last), checked."""
    specs = [_as_phase(phase) for phase in phases]
    if layout == "particles":
        specs.append(_as_phase("carbon" if substrate is None else substrate))
    elif substrate is not None:
        raise ValueError("a substrate is only used with layout='particles'")
    if len(specs) < 2:
        raise ValueError("a synthetic sample needs at least two phases")
    return specs


def _dosed_spectra(
    specs: list[PhaseSpec],
    fractions: np.ndarray,
    axis: EnergyAxis,
    beam_energy: float,
    counts_per_pixel: float,
) -> tuple[np.ndarray, np.ndarray]:
    """The expected spectra of the pure phases (all counts, and the lines' alone), scaled so
    that a pixel holds ``counts_per_pixel`` counts on average over the field."""
    line_part, background = phase_spectra(specs, axis, beam_energy)
    mean_yield = float(fractions.mean(axis=(0, 1)) @ (line_part + background).sum(axis=1))
    dose = counts_per_pixel / mean_yield
    return (line_part + background) * dose, line_part * dose


def _dominant_labels(
    fractions: np.ndarray, specs: list[PhaseSpec], shape: tuple[int, int]
) -> np.ndarray:
    """The ground-truth labels 1..K (the phase of largest fraction); every phase must have a
    pixel."""
    labels = (np.argmax(fractions, axis=-1) + 1).astype(np.int32)
    missing = sorted(set(range(1, len(specs) + 1)) - set(np.unique(labels).tolist()))
    if missing:
        names = ", ".join(specs[k - 1].name for k in missing)
        raise ValueError(f"no pixel of {names} in a {shape} field: enlarge it or the grain count")
    return labels


def demo_sample(seed: int = 0) -> SyntheticSample:
    """The embedded example: 160 x 160 pixels of six rock-forming minerals, ~200 counts per pixel.

    Quartz, albite, orthoclase, diopside, magnetite and pyrite: silicates sharing O, Si and Al,
    an oxide and a sulfide sharing Fe, with mixed pixels at grain boundaries.
    """
    return make_synthetic(
        seed=seed,
        shape=(160, 160),
        phases=DEFAULT_PHASES,
        counts_per_pixel=200.0,
        grain_size=20.0,
        boundary_width=0.8,
        area_fractions=(0.28, 0.22, 0.18, 0.14, 0.1, 0.08),
        title="synthetic granite-like rock",
    )


def _twin_olivines() -> tuple[PhaseSpec, PhaseSpec]:
    olivine = mineral("olivine_fo90")
    return olivine, olivine.shifted("Mg", "Fe", 0.01, "olivine_fo90_fe+1%")


def _benchmark_settings() -> dict[str, dict]:
    return {
        "easy": dict(phases=("quartz", "calcite", "magnetite", "halite"), counts_per_pixel=400.0),
        "eight_phases": dict(
            phases=(*DEFAULT_PHASES[:4], "anorthite", "calcite", "magnetite", "pyrite"),
            boundary_width=1.0,
        ),
        "low_dose": dict(phases=DEFAULT_PHASES, counts_per_pixel=50.0),
        "minor_twin": dict(phases=(*_twin_olivines(), "diopside", "magnetite", "albite")),
        "trace": dict(
            phases=("quartz", "albite", "orthoclase", "magnetite", "zircon"),
            area_fractions=(0.35, 0.3, 0.2, 0.145, 0.005),
        ),
        "particles": dict(
            phases=("quartz", "pyrite", "rutile", "apatite"), layout="particles", grain_size=16.0
        ),
    }


BENCHMARK_CASES: tuple[str, ...] = (
    "easy",
    "eight_phases",
    "low_dose",
    "minor_twin",
    "trace",
    "particles",
)


def benchmark_case(name: str, seed: int = 0, shape: tuple[int, int] = (128, 128)):
    """A named synthetic case of the accuracy benchmark (see ``BENCHMARK_CASES``).

    ``easy``: 4 very distinct phases, 400 counts/pixel; ``eight_phases``: 8 phases, wider mixed
    boundaries; ``low_dose``: the demo's 6 phases at 50 counts/pixel; ``minor_twin``: two olivines
    differing by 1 wt% Fe (from Mg) plus 3 other phases; ``trace``: 5 phases, zircon covering
    ~0.5 % of the area in a few small grains; ``particles``: 4 mineral phases as particles on carbon.
    """
    settings = _benchmark_settings()
    if name not in settings:
        raise ValueError(f"unknown benchmark case {name!r}; known: {', '.join(BENCHMARK_CASES)}")
    return make_synthetic(seed=seed, shape=shape, title=f"benchmark {name}", **settings[name])
