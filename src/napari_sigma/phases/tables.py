"""The phase table of a label image (:class:`PhaseTable`: per phase its pixels, area, mean
spectrum, mean line intensities and regions) and the phases' display names (:func:`main_elements`,
:func:`phase_display_name`: ``"P1 Si-O"``). Made by :mod:`napari_sigma.phases.statistics`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np


@dataclass
class PhaseTable:
    """Per-phase statistics of a label image (row ``i`` describes phase ``phase_ids[i]``).

    Parameters
    ----------
    phase_ids : ndarray (K,) int
        The phase label ids, ascending.
    pixels : ndarray (K,) int64
        Pixels per phase.
    area_fraction : ndarray (K,) float64
        Fraction of *all* pixels of the image (unassigned included).
    area_um2 : ndarray (K,) float64 or None
        Area in µm², None when the image is spatially uncalibrated.
    mean_spectra : ndarray (K, E) float64
        Mean spectrum in counts per pixel (zeros for an empty phase).
    mean_intensities : ndarray (K, L) float64
        Mean line intensity per phase.
    n_regions : ndarray (K,) int64
        Number of 8-connected regions; -1 when regions were not computed.
    region_sizes : list of ndarray
        Pixel counts of the regions of each phase, largest first (empty when not computed).
    names : list of str
        Display names such as ``"P1 Si-O"``.
    line_names : tuple of str
        The lines of the columns of ``mean_intensities`` (e.g. ``"Fe_Ka"``).
    abundance_fraction : ndarray (K,) float64 or None
        Abundance area of each phase: the map's sum spectrum unmixed onto the phases' spectra
        (:func:`napari_sigma.minerals.map_abundances.abundance_fractions`, set by the export),
        None when not computed.
    """

    phase_ids: np.ndarray
    pixels: np.ndarray
    area_fraction: np.ndarray
    area_um2: np.ndarray | None
    mean_spectra: np.ndarray
    mean_intensities: np.ndarray
    n_regions: np.ndarray
    region_sizes: list[np.ndarray]
    names: list[str]
    line_names: tuple[str, ...] = ()
    abundance_fraction: np.ndarray | None = None

    @property
    def largest_region(self) -> np.ndarray:
        """Pixels of the largest region of each phase (0 if none or not computed), int64 (K,)."""
        return np.array([int(s[0]) if s.size else 0 for s in self.region_sizes], dtype=np.int64)

    def live(self) -> PhaseTable:
        """The rows of phases that still have pixels (a phase merged away or erased has none)."""
        keep = np.flatnonzero(self.pixels > 0)

        def rows(values: np.ndarray | None) -> np.ndarray | None:
            return None if values is None else np.asarray(values)[keep]

        return replace(
            self,
            phase_ids=self.phase_ids[keep],
            pixels=self.pixels[keep],
            area_fraction=self.area_fraction[keep],
            area_um2=rows(self.area_um2),
            mean_spectra=self.mean_spectra[keep],
            mean_intensities=self.mean_intensities[keep],
            n_regions=self.n_regions[keep],
            region_sizes=[self.region_sizes[i] for i in keep] if self.region_sizes else [],
            names=[self.names[i] for i in keep],
            abundance_fraction=rows(self.abundance_fraction),
        )

    def main_elements(self, n: int = 3) -> list[list[str]]:
        """The ``n`` main elements of each phase (see :func:`main_elements`)."""
        return [main_elements(row, self.line_names, n) for row in self.mean_intensities]

    def to_rows(self) -> list[dict[str, Any]]:
        """One dict per phase for a CSV file or a GUI table.

        Returns
        -------
        list of dict
            Keys ``phase_id, name, pixels, area_fraction, area_um2, n_regions,
            largest_region_px, main_elements`` (elements joined by ``"-"``) and ``mean_<line>`` per line, then ``area_fraction_abundance``; values are
            plain Python numbers/strings (``area_um2`` is None when uncalibrated).
        """
        largest = self.largest_region
        elements = self.main_elements()
        rows = []
        for i, phase_id in enumerate(self.phase_ids):
            row: dict[str, Any] = {
                "phase_id": int(phase_id),
                "name": self.names[i],
                "pixels": int(self.pixels[i]),
                "area_fraction": float(self.area_fraction[i]),
                "area_um2": None if self.area_um2 is None else float(self.area_um2[i]),
                "n_regions": int(self.n_regions[i]),
                "largest_region_px": int(largest[i]),
                "main_elements": "-".join(elements[i]),
            }
            for j, line in enumerate(self.line_names):
                row[f"mean_{line}"] = float(self.mean_intensities[i, j])
            fraction = self.abundance_fraction
            row["area_fraction_abundance"] = None if fraction is None else float(fraction[i])
            rows.append(row)
        return rows


def main_elements(
    mean_intensities_row: np.ndarray,
    line_names: Sequence[str],
    n: int = 3,
    min_fraction: float = 0.1,
) -> list[str]:
    """Element symbols of the strongest lines of one phase.

    Parameters
    ----------
    mean_intensities_row : ndarray (L,)
        Mean line intensities of the phase.
    line_names : sequence of str
        Line names such as ``"Fe_Ka"`` (the element is the part before ``"_"``).
    n : int
        At most this many elements.
    min_fraction : float
        Lines weaker than this fraction of the phase's strongest line are not "main" (so quartz
        is "Si-O", not "Si-O" plus whichever trace line happens to be third).

    Returns
    -------
    list of str
        Distinct element symbols, strongest first; lines with intensity <= 0 are skipped.
    """
    values = np.asarray(mean_intensities_row, dtype=np.float64)
    floor = min_fraction * values.max(initial=0.0)
    elements: list[str] = []
    for j in np.argsort(-values, kind="stable"):
        if len(elements) >= n or not values[j] > 0 or values[j] < floor:
            break
        element = str(line_names[j]).split("_")[0]
        if element not in elements:
            elements.append(element)
    return elements


def phase_display_name(phase_id: int, elements: Sequence[str]) -> str:
    """A short display name: ``phase_display_name(1, ["Si", "O"]) == "P1 Si-O"`` (``"P1"`` if none)."""
    label = f"P{int(phase_id)}"
    return f"{label} {'-'.join(elements)}" if elements else label
