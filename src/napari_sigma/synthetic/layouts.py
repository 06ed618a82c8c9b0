"""The layouts of a synthetic sample (:mod:`napari_sigma.synthetic.generator`): a phase index
map ``(y, x)`` with values 0..K-1 of grains (a warped Voronoi tessellation with inclusions,
:func:`grain_layout`) or of round particles on a substrate (:func:`particle_layout`), and the
pixels' mixing fractions at the boundaries (:func:`mixing_fractions`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

MIN_FRACTION = 1e-3
"""Mixing fractions below this are set to 0 (so that grain interiors are exactly pure)."""


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
