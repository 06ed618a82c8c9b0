"""Simple reference methods a phase-mapping tool should beat.

- :func:`kmeans_element_maps`: k-means on smoothed, background-subtracted, standardised element
  maps (the classical "cluster the element maps" approach) with a given number of phases.
- :func:`nmf_cube`: non-negative matrix factorisation of the whole cube (pixels x channels), each
  pixel labelled by its largest abundance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from napari_sigma.energy import EnergyAxis
from napari_sigma.spectrum_image import SpectrumImage


@dataclass
class BaselineResult:
    """Labels ``(y, x)`` 1..K, the phases' summed spectra ``(K, E)`` and optional components."""

    labels: np.ndarray
    phase_spectra: np.ndarray
    components: np.ndarray | None = None


def summed_spectra(counts: np.ndarray, labels: np.ndarray, n_phases: int) -> np.ndarray:
    """Spectra summed over each phase's pixels, ``(K, E)`` float64 (row k-1 = phase k)."""
    flat = np.asarray(counts).reshape(-1, counts.shape[-1])
    spectra = np.zeros((n_phases, flat.shape[1]))
    for phase in range(1, n_phases + 1):
        spectra[phase - 1] = flat[labels.ravel() == phase].sum(axis=0, dtype=np.float64)
    return spectra


def window_weights(axis: EnergyAxis, lines: tuple[str, ...]) -> np.ndarray:
    """Weights ``(E, L)``: counts in line +- 1 FWHM minus the mean of two equal side windows.

    Kept independent of :mod:`napari_sigma.features.intensities`, so that the baseline does not share its code.
    """
    from napari_sigma.xray.lines import detector_fwhm, parse_line

    weights = np.zeros((axis.size, len(lines)), dtype=np.float32)
    for index, name in enumerate(lines):
        energy = parse_line(name).energy
        half = detector_fwhm(energy)
        peak = axis.channel_range(energy - half, energy + half)
        width = peak.stop - peak.start
        weights[peak, index] = 1.0
        sides = (slice(peak.start - width, peak.start), slice(peak.stop, peak.stop + width))
        inside = [side for side in sides if side.start >= 0 and side.stop <= axis.size]
        for side in inside:
            weights[side, index] -= 1.0 / len(inside)
    return weights


def element_maps(image: SpectrumImage, lines: tuple[str, ...], smooth: int = 3) -> np.ndarray:
    """Background-subtracted line counts per pixel, smoothed by a ``smooth`` x ``smooth`` mean.

    Returns
    -------
    ndarray, shape (y, x, L), float32
    """
    from scipy.ndimage import uniform_filter

    weights = window_weights(image.energy, lines)
    counts = np.asarray(image.counts)
    maps = (counts.reshape(-1, counts.shape[-1]).astype(np.float32) @ weights).reshape(
        *image.shape, len(lines)
    )
    return uniform_filter(maps, size=(smooth, smooth, 1), mode="nearest")


def kmeans_element_maps(
    image: SpectrumImage, lines: tuple[str, ...], n_phases: int, seed: int = 0
) -> BaselineResult:
    """k-means (scikit-learn, 4 starts) on standardised, smoothed element maps.

    Parameters
    ----------
    image : SpectrumImage
        The spectrum image.
    lines : tuple of str
        The X-ray lines whose maps are clustered.
    n_phases : int
        Number of clusters.
    seed : int
        Random state of k-means.
    """
    from sklearn.cluster import KMeans

    maps = element_maps(image, lines).reshape(-1, len(lines))
    spread = maps.std(axis=0)
    features = (maps - maps.mean(axis=0)) / np.where(spread > 0, spread, 1.0)
    model = KMeans(n_clusters=n_phases, n_init=4, random_state=seed).fit(features)
    labels = (model.labels_.astype(np.int32) + 1).reshape(image.shape)
    return BaselineResult(labels, summed_spectra(image.counts, labels, n_phases))


def nmf_cube(
    image: SpectrumImage,
    n_components: int,
    seed: int = 0,
    channel_bin: int = 4,
    max_iter: int = 300,
) -> BaselineResult:
    """NMF (scikit-learn, nndsvda start) of the cube; label = index of the largest abundance + 1.

    The fit uses channels from 0.1 keV (above the noise peak) to the beam energy, summed by
    ``channel_bin`` for speed; the full-resolution components are then the non-negative
    least-squares fit of the cube to the abundances.
    """
    from sklearn.decomposition import NMF

    counts = np.asarray(image.counts)
    flat = counts.reshape(-1, counts.shape[-1])
    top = image.energy.channel(image.beam_energy or image.energy.max_energy)
    used = slice(image.energy.channel(0.1), top - (top - image.energy.channel(0.1)) % channel_bin)
    binned = flat[:, used].astype(np.float32)
    binned = binned.reshape(len(flat), -1, channel_bin).sum(axis=2)
    model = NMF(n_components=n_components, init="nndsvda", random_state=seed, max_iter=max_iter)
    abundances = model.fit_transform(binned)
    components = np.zeros((n_components, counts.shape[-1]))
    solution = np.linalg.lstsq(abundances, flat[:, used].astype(np.float32), rcond=None)[0]
    components[:, used] = np.clip(solution, 0.0, None)
    labels = (np.argmax(abundances, axis=1).astype(np.int32) + 1).reshape(image.shape)
    return BaselineResult(labels, summed_spectra(counts, labels, n_components), components)
