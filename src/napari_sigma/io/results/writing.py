"""Writing a spectrum image to a HyperSpy ``.hspy`` file (HDF5), optionally chunked.

Used to convert a file once into a chunked one that reads lazily in row bands, and by the tests
to write fields that the CLI then reads like any vendor file.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from napari_sigma.spectrum_image import SpectrumImage

_UNITS = {"µm": "µm", "nm": "nm", "mm": "mm", "px": ""}


def write_hspy(
    path: str | Path,
    image: SpectrumImage,
    chunks: tuple[int, int, int] | None = None,
    compression: str | None = "gzip",
) -> Path:
    """Write ``image`` as an EDS signal to ``path`` (``.hspy``).

    The source file's signal type (``EDS_TEM`` stays a thin foil), its acquisition metadata
    (beam energy, stage tilt, the detector's elevation and azimuth) and its sample's (a foil's
    thickness) are kept, so that a converted file is quantified and named as the original
    (espm_dev catalyst_n60: every table identical after ``napari-sigma convert``).

    Parameters
    ----------
    path : str or Path
        The file to write.
    image : SpectrumImage
        Counts ``(y, x, E)`` (numpy or dask) and calibration.
    chunks : (int, int, int), optional
        HDF5 chunk shape; default rsciio's choice.
    compression : str or None
        HDF5 compression (``"gzip"``, ``"lzf"`` or None: faster to read, larger).

    Returns
    -------
    Path
    """
    from rsciio.hspy import file_writer

    ny, nx = image.shape
    unit = _UNITS.get(image.pixel_unit, image.pixel_unit)
    energy = _axis("Energy", image.energy.size, image.energy.scale, "keV", False)
    energy["offset"] = float(image.energy.offset)
    axes = [
        _axis("y", ny, image.pixel_size, unit, True),
        _axis("x", nx, image.pixel_size, unit, True),
        energy,
    ]
    source = _source_metadata(image)
    signal_type, instrument = _acquisition(source, image.beam_energy)
    metadata: dict[str, Any] = {
        "General": {"title": image.title or Path(path).stem},
        "Signal": {**_subtree(source, "Signal"), "signal_type": signal_type},
        "Sample": {
            **_subtree(source, "Sample"),  # e.g. a thin foil's thickness
            "elements": list(image.elements),
            "xray_lines": list(image.xray_lines),
        },
    }
    if instrument:
        metadata["Acquisition_instrument"] = instrument
    detector = source.get("eds_detector")  # the file's own window (a Bruker header), plain numbers
    if isinstance(detector, Mapping):
        metadata["eds_detector"] = {k: v for k, v in detector.items() if v is not None}
    signal = {
        "data": image.counts if hasattr(image.counts, "dask") else np.asarray(image.counts),
        "axes": axes,
        "metadata": metadata,
        "original_metadata": {},
        "tmp_parameters": {},
        "attributes": {"_lazy": hasattr(image.counts, "dask")},
        "package_info": {"name": "napari-sigma", "version": "0"},
        "learning_results": {},
        "models": {},
    }
    kwargs = {} if chunks is None else {"chunks": tuple(int(c) for c in chunks)}
    file_writer(str(path), signal, compression=compression, show_progressbar=False, **kwargs)
    return Path(path)


def _acquisition(
    source: Mapping[str, Any], beam_energy: float | None
) -> tuple[str, dict[str, Any]]:
    """The signal type and the ``Acquisition_instrument`` tree to write, from the ``source``
    metadata the file was read with (HyperSpy-style, as rosettasciio gives it); the microscope
    key follows the signal type and carries the image's ``beam_energy``.
    """
    signal_type = str(_subtree(source, "Signal").get("signal_type", "") or "")
    if not signal_type.startswith("EDS"):
        signal_type = "EDS_SEM"
    microscope = "TEM" if "TEM" in signal_type else "SEM"
    instrument = _subtree(source, "Acquisition_instrument")
    if beam_energy is not None:
        if not isinstance(instrument.get(microscope), dict):
            instrument[microscope] = {}
        instrument[microscope]["beam_energy"] = float(beam_energy)
    return signal_type, instrument


def _source_metadata(image: SpectrumImage) -> Mapping[str, Any]:
    """The HyperSpy-style metadata the image was read with (rosettasciio's), or ``{}``."""
    if not image.metadata:
        return {}
    return image.metadata.get("rsciio_metadata", image.metadata)


def _subtree(source: Mapping[str, Any], key: str) -> dict[str, Any]:
    """A deep copy of ``source[key]`` when it is a mapping, else ``{}``."""
    found = source.get(key)
    return copy.deepcopy(dict(found)) if isinstance(found, Mapping) else {}


def _axis(name: str, size: int, scale: float, units: str, navigate: bool) -> dict[str, Any]:
    return {
        "name": name,
        "size": int(size),
        "scale": float(scale),
        "offset": 0.0,
        "units": units,
        "navigate": navigate,
    }
