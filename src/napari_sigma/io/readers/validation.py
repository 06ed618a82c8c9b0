"""Checks of a spectrum image at the door: right after reading, and again before an analysis.

Two steps, with stated rules:

:func:`validate_spectrum_image` (run by every read function) corrects what can be corrected, with a
warning naming the file, and refuses what cannot, with a :class:`~napari_sigma.errors.SpectrumImageError`
naming the file and the problem:

- **NaN or infinite counts**: set to 0 when they touch at most 1 % of the pixels (warning);
  refused above that.
- **Negative counts** (background-subtracted or overflowed data): clipped to 0 when they sum to at
  most 1 % of the absolute counts (noise around zero; warning); refused above that (these are
  not X-ray counts). Non-integer counts that are not negative are accepted as they are.
- **Energy axis in eV labelled keV** (or keV labelled eV): an EDS channel is 0.5-200 eV wide; a
  channel width 1000 times outside that range but inside it after a factor 1000 is converted
  (warning). Any other width is refused.
- **Missing beam energy**: assumed to be 20 kV (the default the line choice has always used for
  an unknown beam energy; ``beam_energy`` stays None), or the end of the recorded spectrum rounded
  up to a whole kV when the spectrum goes further (detectors record up to about the beam energy;
  then ``beam_energy`` is set), with a warning; lines need it for their overvoltage.
- **Absurd pixel size** (below 1 pm or above 10 mm): the map is taken as uncalibrated (``px``),
  with a warning.
- **Absurd cube shape**: more than :data:`MAX_PIXELS` pixels (16384 x 16384) or
  :data:`MAX_CHANNELS` channels is refused as a corrupt header (a lazily read event stream
  declares its shape without storing it; its per-pixel images alone would not fit in memory).

:func:`check_analysable` refuses, with an :class:`~napari_sigma.errors.AnalysisError` naming the
file, the images an analysis cannot use: no counts at all, fewer than :data:`MIN_COUNTS_PER_PIXEL`
counts per pixel on average, fewer than :data:`MIN_CHANNELS` channels, fewer than
:data:`MIN_PIXELS` pixels after binning (a binning factor larger than the map included). Maps
with counts in only a part of their pixels get a warning. :func:`~napari_sigma.pipeline.analysis.
analyse` runs it in two steps so that a large cube is read once: :func:`check_at_the_door` makes
every check but the counts' at once, and the counts' too unless a sample of rows shows plenty of
counts; then the counts are checked with the per-pixel sums of the feature pass (the same
checks, the same errors, on the same numbers).

Dask counts get the metadata checks only (their values are checked when the analysis reads them).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import replace
from typing import Any

import numpy as np

from napari_sigma.energy import EnergyAxis
from napari_sigma.errors import AnalysisError, SpectrumImageError
from napari_sigma.spectrum_image import SpectrumImage

MAX_BAD_PIXEL_FRACTION = 0.01
MAX_NEGATIVE_FRACTION = 0.01
CHANNEL_WIDTH_KEV = (0.0005, 0.2)
PIXEL_SIZE_UM = (1e-6, 1e4)
MIN_PIXELS = 4
MAX_PIXELS = 2**28
MAX_CHANNELS = 2**16
MIN_CHANNELS = 32
MIN_COUNTS_PER_PIXEL = 0.5
EMPTY_PIXEL_WARNING = 0.5
SAMPLE_PIXELS = 65536
"""Pixels (whole rows, evenly spaced) :func:`check_at_the_door` sums to decide whether the
counts check can wait for the feature pass's sums."""
SAMPLE_MARGIN = 4.0
"""The sample must hold this many times :data:`MIN_COUNTS_PER_PIXEL` per pixel for the check
to wait; a sample with fewer has the whole map summed at the door (the check's outcome is the
same either way: it is always made on every pixel's counts)."""


class DataWarning(UserWarning):
    """A spectrum image was corrected or is of doubtful use; the message names the file."""


def _name(image: SpectrumImage) -> str:
    return str(image.source) if image.source is not None else (image.title or "spectrum image")


def validate_spectrum_image(image: SpectrumImage) -> SpectrumImage:
    """The image with the corrections of the module's rules; warnings are issued and recorded.

    Parameters
    ----------
    image : SpectrumImage
        As read (not modified).

    Returns
    -------
    SpectrumImage
        The corrected image (the same object when nothing needed correcting). Its
        ``metadata["warnings"]`` lists the warnings (each also issued as a :class:`DataWarning`).

    Raises
    ------
    SpectrumImageError
        A problem that has no safe correction (too many NaN or negative counts, an energy axis
        that is neither keV nor eV, a cube that is not 3-D or empty).
    """
    if image.metadata.get("validated"):
        return image
    path = image.source or image.title or "spectrum image"
    counts = image.counts
    if counts.ndim != 3 or 0 in counts.shape:
        raise SpectrumImageError(path, f"the spectrum image has shape {tuple(counts.shape)}")
    ny, nx, n_channels = (int(n) for n in counts.shape)
    if ny * nx > MAX_PIXELS or n_channels > MAX_CHANNELS:
        raise SpectrumImageError(
            path,
            f"the spectrum image declares {ny} x {nx} pixels x {n_channels} channels, more than "
            "any EDS map: the file header is probably corrupt",
        )
    notes: list[str] = []
    changes: dict[str, Any] = {}
    if isinstance(counts, np.ndarray):
        changes["counts"] = _checked_counts(path, counts, notes)
    changes["energy"] = _checked_energy(path, image.energy, notes)
    beam = _checked_beam(image.beam_energy, changes["energy"], notes)
    if beam != image.beam_energy:
        changes["beam_energy"] = beam
    size_um = image.pixel_size_um
    if size_um is not None and not (PIXEL_SIZE_UM[0] <= size_um <= PIXEL_SIZE_UM[1]):
        notes.append(
            f"pixel size {image.pixel_size:g} {image.pixel_unit} is not plausible: the map is "
            "taken as spatially uncalibrated (px)"
        )
        changes.update(pixel_size=1.0, pixel_unit="px")
    if changes.get("counts") is counts:
        del changes["counts"]
    if changes.get("energy") == image.energy:
        del changes["energy"]
    old = _old(image)
    # a cube checked again once decoded (reading's decoded reads) keeps one note per correction
    notes = [note for note in notes if note not in old]
    metadata = {**image.metadata, "validated": True, "warnings": [*old, *notes]}
    checked = replace(image, metadata=metadata, **changes)
    for note in notes:
        warnings.warn(DataWarning(f"{path}: {note}"), stacklevel=3)
    return checked


def _old(image: SpectrumImage) -> list[str]:
    return list(image.metadata.get("warnings", []))


def _checked_counts(path: Any, counts: np.ndarray, notes: list[str]) -> np.ndarray:
    if counts.dtype.kind not in "biuf":
        raise SpectrumImageError(path, f"counts of type {counts.dtype} are not numbers")
    if counts.dtype.kind == "f":
        finite = np.isfinite(counts)
        if not finite.all():
            bad_pixels = int((~finite).any(axis=-1).sum())
            n_pixels = counts.shape[0] * counts.shape[1]
            if bad_pixels > MAX_BAD_PIXEL_FRACTION * n_pixels:
                raise SpectrumImageError(
                    path,
                    f"{bad_pixels} of {n_pixels} pixels hold NaN or infinite counts (more than "
                    f"{MAX_BAD_PIXEL_FRACTION:.0%}): not a usable spectrum image",
                )
            counts = np.where(finite, counts, 0).astype(counts.dtype)
            notes.append(f"NaN or infinite counts in {bad_pixels} pixels were set to 0")
    if counts.dtype.kind in "if" and counts.min() < 0:
        negative = -float(counts[counts < 0].sum(dtype=np.float64))
        total = float(np.abs(counts).sum(dtype=np.float64))
        if negative > MAX_NEGATIVE_FRACTION * total:
            raise SpectrumImageError(
                path,
                f"negative counts hold {negative / total:.1%} of the absolute counts: napari-sigma "
                "needs raw X-ray counts (not background-subtracted or overflowed data)",
            )
        counts = np.clip(counts, 0, None)
        notes.append(f"small negative counts ({negative / total:.2%} of the total) were set to 0")
    return counts


def _checked_energy(path: Any, energy: EnergyAxis, notes: list[str]) -> EnergyAxis:
    low, high = CHANNEL_WIDTH_KEV
    if low <= energy.scale <= high:
        return energy
    for factor, wrong, right in ((1e-3, "eV", "keV"), (1e3, "keV", "eV")):
        if low <= energy.scale * factor <= high:
            notes.append(
                f"the energy axis was in {wrong} although labelled {right} (channel width "
                f"{energy.scale:g}): converted to keV"
            )
            return EnergyAxis(energy.offset * factor, energy.scale * factor, energy.size)
    raise SpectrumImageError(
        path,
        f"energy channel width {energy.scale:g} keV is not an EDS calibration (expected "
        f"{low * 1e3:g}-{high * 1e3:g} eV)",
    )


def _checked_beam(beam: float | None, energy: EnergyAxis, notes: list[str]) -> float | None:
    if beam is not None and math.isfinite(beam) and 0.1 <= beam <= 1000:
        return beam
    from napari_sigma.xray.lines import DEFAULT_BEAM_ENERGY_KV

    assumed = float(min(max(math.ceil(energy.max_energy), DEFAULT_BEAM_ENERGY_KV), 300))
    was = "missing" if beam is None else f"implausible ({beam:g} kV)"
    notes.append(
        f"beam energy {was}: assumed {assumed:g} kV (20 kV, or the end of the recorded spectrum "
        "when it goes further); lines are chosen for it"
    )
    # None already means 20 kV to the line choice: the image keeps "unknown" in that case
    return None if assumed == DEFAULT_BEAM_ENERGY_KV else assumed


def check_analysable(
    image: SpectrumImage, bin_factor: int = 1, totals: np.ndarray | None = None
) -> np.ndarray:
    """Refuse a spectrum image an analysis cannot use (see the module notes).

    Parameters
    ----------
    image : SpectrumImage
        A validated image (:func:`validate_spectrum_image`).
    bin_factor : int
        The analysis' spatial binning factor.
    totals : ndarray, shape (y, x), or None
        The counts of every pixel when already summed (the analysis' feature pass); None: summed
        here (:meth:`SpectrumImage.total_counts`).

    Returns
    -------
    ndarray, shape (y, x), float64
        The counts of every pixel (:meth:`SpectrumImage.total_counts`), which the check
        needs: the analysis takes them from here rather than summing the cube again.

    Raises
    ------
    AnalysisError
        With a message naming the file and the problem.
    """
    _check_shape(image, bin_factor)
    return _checked_totals(_name(image), image.total_counts() if totals is None else totals)


def check_at_the_door(
    image: SpectrumImage, bin_factor: int = 1, sample_pixels: int | None = None
) -> np.ndarray | None:
    """:func:`check_analysable` before any work, its counts check left to the feature pass
    when a sample shows plenty of counts.

    The shape, binning and channel checks are made. Then, for counts in memory with more than
    ``sample_pixels`` pixels (default :data:`SAMPLE_PIXELS`), every n-th row (about that many
    pixels) is summed: when the sample holds at least :data:`SAMPLE_MARGIN` x
    :data:`MIN_COUNTS_PER_PIXEL` counts per pixel, None is returned and the caller checks the
    counts with the feature pass's per-pixel sums (``check_analysable(image, bin_factor,
    totals)``: the same checks on the same numbers); otherwise (and for small maps, lazy cubes
    and event streams) the whole check is made now and its per-pixel counts are returned. Empty
    and nearly empty maps are so refused before any work.

    Raises
    ------
    AnalysisError
        As :func:`check_analysable`.
    """
    _check_shape(image, bin_factor)
    counts = image.counts
    ny, nx = image.shape
    sample_pixels = SAMPLE_PIXELS if sample_pixels is None else sample_pixels
    from napari_sigma.compute.arrival import row_step

    step = row_step(ny, nx, sample_pixels)
    if isinstance(counts, np.ndarray) and step > 1:
        from napari_sigma.compute.arrival import wait_for_rows
        from napari_sigma.features.intensities import total_counts

        wait_for_rows(counts, slice(0, ny, step))  # a cube still being read (compute.arrival)
        sample = total_counts(counts[::step])
        per_pixel = float(sample.sum()) / sample.size
        if np.isfinite(per_pixel) and per_pixel >= SAMPLE_MARGIN * MIN_COUNTS_PER_PIXEL:
            return None
    return check_analysable(image, bin_factor)


def _check_shape(image: SpectrumImage, bin_factor: int) -> None:
    name = _name(image)
    ny, nx = image.shape
    if bin_factor < 1:
        raise AnalysisError(f"{name}: the binning factor must be at least 1, not {bin_factor}")
    if bin_factor > min(ny, nx):
        raise AnalysisError(
            f"{name}: binning by {bin_factor} is larger than the {ny} x {nx} map; use --bin "
            f"{max(min(ny, nx) // 2, 1)} or less"
        )
    binned = (ny // bin_factor) * (nx // bin_factor)
    if binned < MIN_PIXELS:
        size = f"{ny} x {nx} map" + (f" binned by {bin_factor}" if bin_factor > 1 else "")
        raise AnalysisError(
            f"{name}: a {size} has {binned} pixel(s); a phase map needs at least {MIN_PIXELS}"
        )
    if image.energy.size < MIN_CHANNELS:
        raise AnalysisError(
            f"{name}: {image.energy.size} energy channels; the X-ray lines need at least "
            f"{MIN_CHANNELS}"
        )


def _checked_totals(name: str, totals: np.ndarray) -> np.ndarray:
    total = float(totals.sum())
    if not np.isfinite(total) or total <= 0:
        raise AnalysisError(f"{name}: the map holds no counts")
    per_pixel = total / totals.size
    if per_pixel < MIN_COUNTS_PER_PIXEL:
        raise AnalysisError(
            f"{name}: nearly empty ({total:.0f} counts in {totals.size} pixels, {per_pixel:.2g} "
            f"per pixel; at least {MIN_COUNTS_PER_PIXEL} per pixel are needed)"
        )
    empty = float((totals <= 0).mean())
    if empty > EMPTY_PIXEL_WARNING:
        warnings.warn(
            DataWarning(f"{name}: {empty:.0%} of the pixels have no counts"), stacklevel=4
        )
    return totals
