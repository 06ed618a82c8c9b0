"""Test data shared by test modules (importable as ``sigma_testdata``: the tests folder is on sys.path).

Not a conftest: a second conftest.py (tests/plugin/) makes ``from conftest import`` ambiguous.
"""

from __future__ import annotations

import os
from pathlib import Path

SHARED_EDS_DIR = Path(
    os.environ.get(
        "NAPARI_SIGMA_SHARED_EDS",
        Path(__file__).resolve().parents[2] / "shared" / "data" / "eds",
    )
)
"""``../shared/data/eds`` beside the repository, or ``$NAPARI_SIGMA_SHARED_EDS`` (e.g. a worktree)."""


def rsciio_signal(data, axes: list[dict], metadata: dict) -> dict:
    """A signal dictionary as rosettasciio's writers take it (``file_writer(path, signal)``)."""
    return {
        "data": data,
        "axes": axes,
        "metadata": metadata,
        "original_metadata": {},
        "tmp_parameters": {},
        "attributes": {"_lazy": False},
        "package_info": {"name": "napari-sigma-tests", "version": "0"},
        "learning_results": {},
        "models": {},
    }


def write_h5oina(
    path: Path,
    counts,
    *,
    pixel_um: float = 0.5,
    channel_ev: float = 10.0,
    start_ev: float = -100.0,
    beam_kv: float | None = 15.0,
    electron_factor: int = 2,
    y_fastest: bool = False,
    detectors: tuple[str, ...] = ("EDS",),
    with_spectra: bool = True,
) -> Path:
    """Write ``counts`` (y, x, E) as an Oxford Instruments ``.h5oina`` file, following the public
    H5OINA specification (github.com/oinanoanalysis/h5oina, ``H5OINAFile.md``, version 6.0).

    Scalars are (1, 1) datasets, per-pixel data one row per pixel (x fastest unless
    ``y_fastest``, with ``Data/X`` and ``Data/Y`` saying so), the spectra int32 with LZF
    compression, a BSE image ``electron_factor`` times finer than the map over the same field.
    """
    import h5py
    import numpy as np

    counts = np.asarray(counts)
    ny, nx, channels = counts.shape
    order = (1, 0, 2) if y_fastest else (0, 1, 2)
    rows = np.ascontiguousarray(counts.transpose(order)).reshape(nx * ny, channels)
    yy, xx = np.mgrid[0:ny, 0:nx].astype(np.float32) * pixel_um
    flat = (lambda a: a.T.reshape(-1, 1)) if y_fastest else (lambda a: a.reshape(-1, 1))
    string = h5py.string_dtype("utf-8")

    def scalar(group, name, value, dtype):
        group.create_dataset(name, data=np.array([[value]], dtype=dtype))

    def common_header(header, cells_x, cells_y, step):
        scalar(header, "Project Label", "Project 1", string)
        scalar(header, "Analysis Label", "Map Data 1", string)
        scalar(header, "X Cells", cells_x, np.int32)
        scalar(header, "Y Cells", cells_y, np.int32)
        scalar(header, "X Step", step, np.float32)
        scalar(header, "Y Step", step, np.float32)
        if beam_kv is not None:
            scalar(header, "Beam Voltage", beam_kv, np.float32)

    with h5py.File(path, "w") as h5:
        scalar(h5, "Manufacturer", "Oxford Instruments", string)
        scalar(h5, "Software Version", "6.1", string)
        scalar(h5, "Format Version", "6.0", string)
        index = h5.create_dataset("Index", data=np.array([["1"]], dtype=object), dtype=string)
        index.attrs["Type"] = "Single"
        acquisition = h5.create_group("1")
        for detector in detectors:
            data = acquisition.create_group(f"{detector}/Data")
            header = acquisition.create_group(f"{detector}/Header")
            common_header(header, nx, ny, pixel_um)
            scalar(header, "Channel Width", channel_ev, np.float32)
            scalar(header, "Start Channel", start_ev, np.float32)
            scalar(header, "Number Channels", channels, np.int32)
            header.create_dataset("Relative Offset", data=np.zeros((1, 2), np.float32))
            header.create_dataset("Relative Size", data=np.ones((1, 2), np.float32))
            if with_spectra:
                data.create_dataset("Spectrum", data=rows.astype(np.int32), compression="lzf")
            data.create_dataset("Live Time", data=np.full((nx * ny, 1), 0.01, np.float32))
            data.create_dataset("X", data=flat(xx))
            data.create_dataset("Y", data=flat(yy))
            total = counts.sum(axis=-1).astype(np.float32) / 0.01
            line = data.create_dataset("Window Integral/Total", data=flat(total))
            line.attrs["Atomic Number"] = np.int32(0)
            line.attrs["X-ray Line"] = "all"
        f = electron_factor
        bse = np.kron(counts.sum(axis=-1), np.ones((f, f))).astype(np.uint16)
        images = acquisition.create_group("Electron Image")
        common_header(images.create_group("Header"), nx * f, ny * f, pixel_um / f)
        images.create_dataset("Data/BSE/Electron Image 1", data=bse.reshape(-1, 1))
    return path


def quick_three_phase_settings():
    """Settings of a fast analysis of the three-mineral test maps: PCA latent, K = 3, CPU."""
    from dataclasses import replace

    from napari_sigma.pipeline.analysis import AnalysisSettings

    base = AnalysisSettings.preset("default")
    return replace(
        base, elements=("O", "Si", "Fe", "Al", "Na"), device="cpu",
        latent=replace(base.latent, method="pca"),
        clustering=replace(base.clustering, n_phases=3),
    )  # fmt: skip


def measured_spectrum(composition, axis, beam=15.0, counts=1e6, seed=0, visible_min_z=6):
    """A Poisson spectrum of ``composition`` (mass fractions) on ``axis`` at ``beam`` kV (its
    lines with a Kramers continuum through the detector and the sample's absorption) and its
    quantification with the elements of Z >= ``visible_min_z``: ``(spectrum, quantification)``."""
    import numpy as np

    from napari_sigma.quant import physics
    from napari_sigma.quant.quantify import quantify_spectrum
    from napari_sigma.quant.simulate import line_spectrum

    lines = line_spectrum(composition, axis, beam)
    e = np.clip(axis.energies, 0.05, None)
    continuum = np.clip(beam - e, 0, None) / e * physics.Detector().efficiency(e)
    continuum *= physics.absorption_factor(composition, e, e, beam, 35.0)
    continuum[axis.energies < 0.1] = 0
    continuum *= 0.33 * lines.sum() / continuum.sum()
    expected = (lines + continuum) * counts / (lines + continuum).sum()
    spectrum = np.random.default_rng(seed).poisson(expected).astype(float)
    elements = [el for el in composition if physics.atomic_number(el) >= visible_min_z]
    return spectrum, quantify_spectrum(spectrum, axis, elements, beam, width=(1.0, 0.0))


class CountingCube:
    """A cube read through dask's ``from_array``: the row ranges of every read are recorded."""

    def __init__(self, data) -> None:
        self.data, self.shape, self.dtype, self.ndim = data, data.shape, data.dtype, data.ndim
        self.reads: list[tuple[int, int]] = []

    def __getitem__(self, key):
        rows = key[0] if isinstance(key, tuple) else key
        self.reads.append((rows.start, rows.stop))
        return self.data[key]


def lazy_cube(data, rows: int):
    """A dask cube of ``data`` (y, x, E) in chunks of ``rows`` whole rows, and its reads' record."""
    import dask.array as da

    source = CountingCube(data)
    chunks = (rows, *data.shape[1:])
    return da.from_array(source, chunks=chunks, asarray=False, meta=data[:0, :0, :0]), source


def foil_spectrum(
    formula: str,
    axis,
    *,
    density: float,
    thickness_nm: float,
    beam_kv: float = 200.0,
    counts: float = 5e6,
    seed: int = 0,
):
    """A thin foil's Poisson spectrum at ``beam_kv`` through the windowless detector: the
    physics' lines, absorbed over the foil's mass thickness as the quantification does, plus a
    Kramers continuum (20 % of the lines); returns ``(spectrum, weight fractions)``."""
    import numpy as np

    from napari_sigma.quant import physics
    from napari_sigma.quant.simulate import line_spectrum
    from napari_sigma.synthetic.generator import weight_fractions

    composition = weight_fractions(formula)
    mass_thickness = density * thickness_nm * 1e-7
    lines = line_spectrum(composition, axis, beam_kv, thin=True, mass_thickness=mass_thickness)
    e = np.clip(axis.energies, 0.05, None)
    continuum = np.clip(beam_kv - e, 0, None) / e * physics.WINDOWLESS.efficiency(e)
    continuum[axis.energies < 0.1] = 0
    continuum *= 0.2 * lines.sum() / continuum.sum()
    expected = (lines + continuum) * counts / (lines + continuum).sum()
    return np.random.default_rng(seed).poisson(expected).astype(float), composition


def disc_grains(shape, centres, radius):
    """A boolean map of ``shape`` true inside discs of ``radius`` around each (y, x) of
    ``centres``: grains for the phase-finding tests."""
    import numpy as np

    yy, xx = np.mgrid[: shape[0], : shape[1]]
    inside = np.zeros(shape, dtype=bool)
    for cy, cx in centres:
        inside |= (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2
    return inside


def trained_state(labels):
    """(flat labels, one-hot probabilities, training labels, K) of a label map with every
    pixel trained: the clustering's state as the small-phase search receives it."""
    import numpy as np

    flat = labels.reshape(-1)
    n_phases = int(flat.max()) + 1
    probabilities = np.eye(n_phases, dtype=np.float32)[flat]
    return flat.copy(), probabilities, flat.copy(), n_phases
