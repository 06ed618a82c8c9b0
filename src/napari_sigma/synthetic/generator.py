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
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import numpy.typing as npt

from napari_sigma.energy import EnergyAxis
from napari_sigma.spectrum_image import SpectrumImage
from napari_sigma.xray.lines import FWHM_PER_SIGMA, default_line, detector_fwhm, element_lines

DETECTOR_OFFSET_KEV = -0.1
DETECTOR_SCALE_KEV = 0.01
FWHM_MNKA_KEV = 0.130
TAKEOFF_DEG = 35.0
YIELD_EXPONENT = 0.3
LINE_SCALE = 4.5e25
"""Lines per electron of ``quant.simulate`` times this keep the continuum of quartz at 15 kV at
about a quarter of its counts."""
KRAMERS_CONSTANT = 0.00026
"""Bremsstrahlung per keV per unit of ``Zbar`` relative to the line intensities (about 25 % of
the counts of quartz at 15 kV)."""
NOISE_THRESHOLD_KEV = 0.1
MIN_FRACTION = 1e-3
"""Mixing fractions below this are set to 0 (so that grain interiors are exactly pure)."""
CHUNK_PIXELS = 1024
"""Pixels per sampling chunk (whole rows): keeps the histogram of a chunk in the CPU cache."""

# --------------------------------------------------------------------------------------------
# Phases


@dataclass(frozen=True)
class PhaseSpec:
    """A phase: a name and a composition in weight fractions.

    Parameters
    ----------
    name : str
        Display name, e.g. ``"quartz"``.
    composition : dict of str to float
        Element symbol -> weight fraction; must sum to 1 (within 1 %, renormalised exactly).
    density : float
        Density in g/cm^3 (for reference).
    """

    name: str
    composition: dict[str, float]
    density: float = 3.0

    def __post_init__(self) -> None:
        total = sum(self.composition.values())
        if not self.composition or any(v < 0 for v in self.composition.values()):
            raise ValueError(f"phase {self.name!r}: composition must be non-empty and >= 0")
        if abs(total - 1.0) > 0.01:
            raise ValueError(f"phase {self.name!r}: weight fractions sum to {total:.4f}, not 1")
        normalised = {el: float(v) / total for el, v in self.composition.items() if v > 0}
        object.__setattr__(self, "composition", normalised)

    @classmethod
    def from_formula(cls, name: str, formula: str, density: float = 3.0) -> PhaseSpec:
        """A phase from a chemical formula such as ``"Ca5(PO4)3F"`` (atomic masses from xraydb)."""
        return cls(name, weight_fractions(formula), density)

    @property
    def mean_z(self) -> float:
        """Mass-weighted mean atomic number."""
        return sum(c * _atomic_number(el) for el, c in self.composition.items())

    def shifted(self, take_from: str, give_to: str, amount: float, name: str) -> PhaseSpec:
        """A twin phase with ``amount`` weight fraction moved from one element to another."""
        composition = dict(self.composition)
        if composition.get(take_from, 0.0) < amount:
            raise ValueError(f"{self.name} has less than {amount} of {take_from}")
        composition[take_from] -= amount
        composition[give_to] = composition.get(give_to, 0.0) + amount
        return PhaseSpec(name, composition, self.density)


def formula_atoms(formula: str) -> dict[str, float]:
    """Atoms per formula unit, e.g. ``"CaMg(CO3)2"`` -> ``{"Ca": 1, "Mg": 1, "C": 2, "O": 6}``.

    Parsed by ``xraydb.chemparse``; a formula it cannot read raises ValueError naming it.
    """
    from napari_sigma.xray import xraydb_direct as xraydb

    try:
        atoms = xraydb.chemparse(formula)
    except ValueError as error:
        raise ValueError(
            f"cannot parse formula {formula!r}: {str(error).splitlines()[0].rstrip(':')}"
        ) from None
    if not atoms:
        raise ValueError(f"cannot parse formula {formula!r}: no elements")
    return {element: float(count) for element, count in atoms.items()}


def weight_fractions(formula: str) -> dict[str, float]:
    """Weight fractions of the elements of a chemical formula (atomic masses from xraydb)."""
    from napari_sigma.quant.physics import atomic_weight  # cached: one xraydb query per element

    atoms = formula_atoms(formula)
    masses = {el: n * atomic_weight(el) for el, n in atoms.items() if n > 0}
    total = sum(masses.values())
    return {el: m / total for el, m in masses.items()}


_MINERAL_FORMULAS: dict[str, tuple[str, float]] = {
    "quartz": ("SiO2", 2.65),
    "albite": ("NaAlSi3O8", 2.62),
    "orthoclase": ("KAlSi3O8", 2.56),
    "anorthite": ("CaAl2Si2O8", 2.73),
    "forsterite": ("Mg2SiO4", 3.27),
    "fayalite": ("Fe2SiO4", 4.39),
    "olivine_fo90": ("Mg1.8Fe0.2SiO4", 3.32),
    "enstatite": ("MgSiO3", 3.2),
    "diopside": ("CaMgSi2O6", 3.4),
    "almandine": ("Fe3Al2Si3O12", 4.3),
    "spinel": ("MgAl2O4", 3.58),
    "calcite": ("CaCO3", 2.71),
    "dolomite": ("CaMg(CO3)2", 2.85),
    "magnetite": ("Fe3O4", 5.18),
    "hematite": ("Fe2O3", 5.26),
    "ilmenite": ("FeTiO3", 4.72),
    "rutile": ("TiO2", 4.25),
    "chromite": ("FeCr2O4", 4.79),
    "corundum": ("Al2O3", 4.02),
    "cassiterite": ("SnO2", 6.95),
    "pyrite": ("FeS2", 5.01),
    "chalcopyrite": ("CuFeS2", 4.19),
    "pentlandite": ("Fe4.5Ni4.5S8", 4.8),
    "galena": ("PbS", 7.6),
    "sphalerite": ("ZnS", 4.05),
    "barite": ("BaSO4", 4.48),
    "anhydrite": ("CaSO4", 2.97),
    "apatite": ("Ca5(PO4)3F", 3.19),
    "zircon": ("ZrSiO4", 4.65),
    "halite": ("NaCl", 2.17),
    "sylvite": ("KCl", 1.99),
    "fluorite": ("CaF2", 3.18),
    "carbon": ("C", 1.8),
}


def _build_minerals() -> dict[str, PhaseSpec]:
    return {
        name: PhaseSpec.from_formula(name, formula, density)
        for name, (formula, density) in _MINERAL_FORMULAS.items()
    }


def __getattr__(name: str):
    # MINERALS is built on first use, so that importing this module does not import xraydb.
    if name == "MINERALS":
        minerals = _build_minerals()
        globals()["MINERALS"] = minerals
        return minerals
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def mineral(name: str) -> PhaseSpec:
    """The :class:`PhaseSpec` of a mineral of ``MINERALS`` (stoichiometric composition)."""
    from napari_sigma.synthetic import generator as synthetic

    minerals = synthetic.MINERALS
    if name not in minerals:
        raise ValueError(f"unknown mineral {name!r}; known: {', '.join(sorted(minerals))}")
    return minerals[name]


def _as_phase(phase: str | PhaseSpec) -> PhaseSpec:
    return phase if isinstance(phase, PhaseSpec) else mineral(phase)


# --------------------------------------------------------------------------------------------
# Spectra


@lru_cache(maxsize=128)
def _atomic_number(element: str) -> int:
    from napari_sigma.xray import xraydb_direct as xraydb

    return int(xraydb.atomic_number(element))


def _mass_attenuation(composition: dict[str, float], energies_kev: np.ndarray) -> np.ndarray:
    """Mass attenuation coefficient (cm^2/g) of a composition at the given energies."""
    import xraydb

    energies_ev = np.clip(np.asarray(energies_kev, dtype=np.float64), 0.1, None) * 1000.0
    return sum(c * np.asarray(xraydb.mu_elam(el, energies_ev)) for el, c in composition.items())


GRID_STEP_KEV = 0.02


def _energy_grid(beam_energy: float) -> np.ndarray:
    """The coarse energy grid (keV) on which the bremsstrahlung is computed."""
    return np.arange(0.05, beam_energy + GRID_STEP_KEV, GRID_STEP_KEV)


@lru_cache(maxsize=256)
def _element_attenuation_on_grid(element: str, beam_energy: float) -> np.ndarray:
    return _mass_attenuation({element: 1.0}, _energy_grid(beam_energy))


@lru_cache(maxsize=16)
def _efficiency_on_grid(beam_energy: float) -> np.ndarray:
    return detector_efficiency(_energy_grid(beam_energy))


def _absorption_factor(
    phase: PhaseSpec, mu_rho: np.ndarray, edge_kev: np.ndarray, beam_energy: float
) -> np.ndarray:
    """Philibert's simplified f(chi): the fraction of generated X-rays leaving the sample."""

    from napari_sigma.quant.physics import atomic_weight

    mean_a = sum(c * atomic_weight(el) for el, c in phase.composition.items())
    h = 1.2 * mean_a / phase.mean_z**2
    chi = mu_rho / np.sin(np.radians(TAKEOFF_DEG))
    edge = np.minimum(edge_kev, 0.95 * beam_energy)
    sigma = 4.5e5 / (beam_energy**1.65 - edge**1.65)
    ratio = chi / sigma
    return 1.0 / ((1.0 + ratio) * (1.0 + h / (1.0 + h) * ratio))


def detector_efficiency(energies_kev: np.ndarray) -> np.ndarray:
    """Efficiency of a windowed silicon drift detector (0..1) at the given energies (keV)."""
    import xraydb

    energies_ev = np.clip(np.asarray(energies_kev, dtype=np.float64), 0.1, None) * 1000.0
    window = xraydb.material_mu("C8H8", energies_ev, density=1.05) * 3e-5
    window += xraydb.material_mu("Al", energies_ev, density=2.70) * 3e-6
    dead_layer = xraydb.material_mu("Si", energies_ev, density=2.33) * 3e-6
    crystal = xraydb.material_mu("Si", energies_ev, density=2.33) * 0.045
    return np.exp(-window - dead_layer) * -np.expm1(-crystal)


def _line_spectrum(phase: PhaseSpec, axis: EnergyAxis, beam_energy: float) -> np.ndarray:
    """Characteristic X-rays of a phase (arbitrary units per electron) on ``axis``.

    The quantification's physics (:func:`napari_sigma.quant.simulate.line_spectrum`, bulk, 35
    degree take-off, the default SDD) times ``LINE_SCALE``.
    """
    from napari_sigma.quant.physics import Detector
    from napari_sigma.quant.simulate import line_spectrum

    detector = Detector(fwhm_mnka_kev=FWHM_MNKA_KEV)
    lines = line_spectrum(phase.composition, axis, beam_energy, detector, TAKEOFF_DEG)
    return LINE_SCALE * lines


def _background_spectrum(phase: PhaseSpec, axis: EnergyAxis, beam_energy: float) -> np.ndarray:
    """Bremsstrahlung of a phase (Kramers, absorbed, detected), same units as the lines."""
    from scipy.ndimage import gaussian_filter1d

    grid = _energy_grid(beam_energy)
    mu_rho = sum(
        c * _element_attenuation_on_grid(el, beam_energy) for el, c in phase.composition.items()
    )
    absorbed = _absorption_factor(phase, mu_rho, grid, beam_energy)
    kramers = KRAMERS_CONSTANT * phase.mean_z * np.clip(beam_energy - grid, 0, None) / grid
    detected = kramers * absorbed * _efficiency_on_grid(beam_energy)
    energy = axis.energies
    spectrum = np.interp(energy, grid, detected, left=0.0, right=0.0) * axis.scale
    sigma_channels = detector_fwhm(1.0, FWHM_MNKA_KEV) / FWHM_PER_SIGMA / axis.scale
    threshold = 1.0 / (1.0 + np.exp(-(energy - NOISE_THRESHOLD_KEV) / 0.01))
    spectrum = gaussian_filter1d(spectrum, sigma_channels, mode="constant") * threshold
    spectrum[energy >= beam_energy] = 0.0
    return spectrum


def phase_spectra(
    phases: Sequence[PhaseSpec], axis: EnergyAxis, beam_energy: float
) -> tuple[np.ndarray, np.ndarray]:
    """Line and background spectra of phases, each scaled to 1 count times its relative yield.

    Returns
    -------
    lines, background : ndarray, shape (K, E) float64
        ``(lines + background)[k].sum()`` is ``(Zbar_k / mean Zbar) ** 0.3``.
    """
    lines = np.array([_line_spectrum(p, axis, beam_energy) for p in phases])
    background = np.array([_background_spectrum(p, axis, beam_energy) for p in phases])
    mean_z = np.array([p.mean_z for p in phases])
    yields = (mean_z / mean_z.mean()) ** YIELD_EXPONENT
    scale = yields / (lines + background).sum(axis=1)
    return lines * scale[:, None], background * scale[:, None]


# --------------------------------------------------------------------------------------------
# Layouts: a phase index map (y, x) with values 0..K-1


def _fractions(n_phases: int, area_fractions: Sequence[float] | None) -> np.ndarray:
    """``area_fractions`` checked and scaled to a sum of 1 (equal shares when None)."""
    if area_fractions is None:
        return np.full(n_phases, 1.0 / n_phases)
    fractions = np.asarray(area_fractions, dtype=np.float64)
    if fractions.shape != (n_phases,) or np.any(fractions <= 0):
        raise ValueError(f"area_fractions needs {n_phases} positive values, got {fractions}")
    return fractions / fractions.sum()


def _smooth_noise(shape: tuple[int, int], sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian-filtered white noise with zero mean and unit standard deviation."""
    from scipy.ndimage import gaussian_filter

    noise = gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma, mode="wrap")
    noise -= noise.mean()
    return noise / max(float(noise.std()), 1e-12)


def _voronoi_cells(
    shape: tuple[int, int], n_cells: int, grain_size: float, rng: np.random.Generator
) -> np.ndarray:
    """Cell index of every pixel in a Voronoi tessellation with wavy (noise-warped) boundaries."""
    from scipy.spatial import cKDTree

    height, width = shape
    seeds = rng.uniform((0.0, 0.0), (height, width), size=(n_cells, 2))
    rows, cols = np.indices(shape, dtype=np.float32)
    amplitude = 0.2 * grain_size
    rows += amplitude * _smooth_noise(shape, grain_size / 2, rng)
    cols += amplitude * _smooth_noise(shape, grain_size / 2, rng)
    _, cells = cKDTree(seeds).query(np.stack([rows.ravel(), cols.ravel()], axis=1))
    return cells.reshape(shape)


def _assign_cells(sizes: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Phase of every cell: largest cells first, each to the phase furthest below its target."""
    assigned = np.zeros(targets.size)
    phase_of_cell = np.zeros(sizes.size, dtype=np.int64)
    for cell in np.argsort(-sizes, kind="stable"):
        phase = int(np.argmax(targets - assigned))
        phase_of_cell[cell] = phase
        assigned[phase] += sizes[cell]
    return phase_of_cell


def _disc(phase_map: np.ndarray, centre: tuple[float, float], radius: float, value: int) -> None:
    """Paint a disc of ``value`` into ``phase_map`` (in place)."""
    height, width = phase_map.shape
    r0, r1 = max(int(centre[0] - radius), 0), min(int(centre[0] + radius) + 2, height)
    c0, c1 = max(int(centre[1] - radius), 0), min(int(centre[1] + radius) + 2, width)
    rows, cols = np.ogrid[r0:r1, c0:c1]
    inside = (rows - centre[0]) ** 2 + (cols - centre[1]) ** 2 <= radius**2
    phase_map[r0:r1, c0:c1][inside] = value


def _add_inclusions(
    phase_map: np.ndarray, phase: int, area: float, grain_size: float, rng: np.random.Generator
) -> None:
    """Paint a minor phase as a few small round grains of about ``area`` pixels in total."""
    radius = float(np.clip(np.sqrt(area / (3 * np.pi)), 1.5, grain_size / 4))
    count = max(1, round(area / (np.pi * radius**2)))
    height, width = phase_map.shape
    margin = radius + 1
    for _ in range(count):
        centre = (rng.uniform(margin, height - margin), rng.uniform(margin, width - margin))
        _disc(phase_map, centre, radius, phase)


def grain_layout(
    shape: tuple[int, int], fractions: np.ndarray, grain_size: float, rng: np.random.Generator
) -> np.ndarray:
    """Phase index map (0..K-1) of a polycrystalline field; every phase is present.

    ``fractions``: the K phases' shares of the area (sum 1). Phases whose target area is less
    than half a mean grain become a few small round inclusions.
    """
    n_phases, n_pixels = len(fractions), shape[0] * shape[1]
    targets = fractions * n_pixels
    n_cells = max(round(n_pixels / grain_size**2), 2 * n_phases)
    minor = targets < 0.5 * n_pixels / n_cells
    cells = _voronoi_cells(shape, n_cells, grain_size, rng)
    sizes = np.bincount(cells.ravel(), minlength=n_cells).astype(np.float64)
    host_targets = np.where(minor, -np.inf, targets)
    phase_map = _assign_cells(sizes, host_targets)[cells]
    for phase in np.flatnonzero(minor):
        _add_inclusions(phase_map, int(phase), targets[phase], grain_size, rng)
    return phase_map


def particle_layout(
    shape: tuple[int, int],
    fractions: np.ndarray,
    grain_size: float,
    rng: np.random.Generator,
    coverage: float = 0.3,
) -> np.ndarray:
    """Phase index map of sparse round particles (phases 0..K-2) on a substrate (phase K-1).

    ``fractions``: the K-1 particle phases' shares of the particle area (sum 1); the particles
    cover about ``coverage`` of the field.
    """
    n_particle_phases = len(fractions)
    n_phases = n_particle_phases + 1
    height, width = shape
    targets = fractions * coverage * height * width
    phase_map = np.full(shape, n_particle_phases, dtype=np.int64)
    centres: list[tuple[float, float]] = []
    radii: list[float] = []
    assigned = np.zeros(n_particle_phases)
    order = rng.permutation(n_particle_phases)
    for _attempt in range(200 * max(1, round(coverage * height * width / grain_size**2))):
        if assigned.sum() >= coverage * height * width and len(radii) >= n_particle_phases:
            break
        radius = float(np.clip(grain_size / 2 * rng.lognormal(0.0, 0.3), 2.0, grain_size * 1.5))
        centre = (rng.uniform(0, height), rng.uniform(0, width))
        if radii:
            gaps = np.hypot(*(np.array(centres) - centre).T) - np.array(radii) - radius
            if gaps.min() < 2.0:
                continue
        phase = (
            order[len(radii)] if len(radii) < n_particle_phases else np.argmax(targets - assigned)
        )
        _disc(phase_map, centre, radius, int(phase))
        centres.append(centre)
        radii.append(radius)
        assigned[phase] += np.pi * radius**2
    missing = set(range(n_phases)) - set(np.unique(phase_map).tolist())
    if missing:
        raise ValueError(f"field {shape} too small for particles of {n_phases - 1} phases")
    return phase_map


def mixing_fractions(phase_map: np.ndarray, n_phases: int, boundary_width: float) -> np.ndarray:
    """Per-pixel phase fractions (y, x, K) float32: blurred phase indicators, summing to 1."""
    from scipy.ndimage import gaussian_filter

    fractions = np.zeros((*phase_map.shape, n_phases), dtype=np.float32)
    for phase in range(n_phases):
        indicator = (phase_map == phase).astype(np.float32)
        if boundary_width > 0:
            indicator = gaussian_filter(indicator, boundary_width, mode="nearest")
        fractions[..., phase] = indicator
    fractions[fractions < MIN_FRACTION] = 0.0
    fractions /= fractions.sum(axis=-1, keepdims=True)
    return fractions


# --------------------------------------------------------------------------------------------
# Counts


def alias_tables(probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Walker/Vose alias tables of a discrete distribution (for O(1) sampling).

    Returns
    -------
    threshold : ndarray (E,) float64
        Keep bin ``i`` when the uniform fraction is below ``threshold[i]``...
    alias : ndarray (E,) int64
        ...else take ``alias[i]``.
    """
    size = probabilities.size
    scaled = probabilities / probabilities.sum() * size
    threshold = np.ones(size)
    alias = np.arange(size)
    small = [i for i in range(size) if scaled[i] < 1.0]
    large = [i for i in range(size) if scaled[i] >= 1.0]
    while small and large:
        low, high = small.pop(), large.pop()
        threshold[low], alias[low] = scaled[low], high
        scaled[high] -= 1.0 - scaled[low]
        (small if scaled[high] < 1.0 else large).append(high)
    return threshold, alias


def _event_phases(
    fractions: np.ndarray, weights: np.ndarray, pixel: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Phase of every count: the pixel's phase, or a draw by weight in mixed pixels."""
    phase = np.argmax(fractions, axis=1)[pixel]
    mixed = (fractions.max(axis=1) < 1.0)[pixel]
    if mixed.any():
        cumulative = np.cumsum(weights, axis=1)
        cumulative = cumulative[:, :-1] / cumulative[:, -1:]
        u = rng.random(int(mixed.sum()))
        phase[mixed] = (u[:, None] > cumulative[pixel[mixed]]).sum(axis=1)
    return phase


def _sample_chunk(
    fractions: np.ndarray,
    totals: np.ndarray,
    tables: tuple[np.ndarray, np.ndarray],
    rng: np.random.Generator,
) -> tuple[np.ndarray, int]:
    """Counts (P, E) int64 of P pixels and their largest total.

    A Poisson total per pixel, then each count's phase and channel.
    """
    n_pixels = fractions.shape[0]
    threshold, alias = tables
    n_channels = threshold.shape[1]
    weights = fractions * totals
    totals_drawn = rng.poisson(weights.sum(axis=1))
    pixel = np.repeat(np.arange(n_pixels), totals_drawn)
    phase = _event_phases(fractions, weights, pixel, rng)
    position = rng.random(pixel.size) * n_channels
    channel = position.astype(np.int64)
    keep = (position - channel) < threshold[phase, channel]
    channel = np.where(keep, channel, alias[phase, channel])
    flat = pixel * n_channels + channel
    histogram = np.bincount(flat, minlength=n_pixels * n_channels).reshape(n_pixels, n_channels)
    return histogram, int(totals_drawn.max(initial=0))


def sample_counts(
    fractions: np.ndarray,
    pure_spectra: np.ndarray,
    rng: np.random.Generator,
    dtype: npt.DTypeLike = np.uint16,
) -> np.ndarray:
    """Poisson counts (y, x, E) with expectation ``fractions @ pure_spectra``.

    Counts are drawn event by event in chunks of rows small enough for the cache: a Poisson total
    per pixel, the phase of each count (by ``fraction * total`` of the phases) and its channel
    (alias method on the phase's spectrum). Counts above the range of an integer ``dtype`` are
    clipped.
    """
    height, width, n_phases = fractions.shape
    totals = pure_spectra.sum(axis=1)
    per_phase = [alias_tables(spectrum) for spectrum in pure_spectra]
    tables = (np.array([t for t, _ in per_phase]), np.array([a for _, a in per_phase]))
    rows_per_chunk = max(1, CHUNK_PIXELS // width)
    counts = np.empty((height, width, pure_spectra.shape[1]), dtype=dtype)
    limit = np.iinfo(dtype).max if np.issubdtype(dtype, np.integer) else None
    for start in range(0, height, rows_per_chunk):
        block = fractions[start : start + rows_per_chunk].reshape(-1, n_phases)
        chunk, largest_total = _sample_chunk(block.astype(np.float64), totals, tables, rng)
        if limit is not None and largest_total > limit:
            np.minimum(chunk, limit, out=chunk)
        counts[start : start + rows_per_chunk] = chunk.reshape(-1, width, chunk.shape[1])
    return counts


# --------------------------------------------------------------------------------------------
# Samples


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
