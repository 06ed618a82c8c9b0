"""Saving and reopening the work on one spectrum image: a session.

A session (a ``.sigma`` file of kind ``"session"``, see :mod:`napari_sigma.io.results.archive`) holds the
source file's path and SHA-256, the analysis settings, the labels as edited, the phase table
(ids, names, RGBA colours), the phases' quantifications and identifications (the names, with
what each is not resolved from), the latent coordinates, the arrays of the analysis result needed to
show it again, the fitted model (:class:`~napari_sigma.pipeline.model.FittedModel`) when there
is one, and a free JSON dict for the GUI's own state. The cube is not copied unless the image has
no source file (a sample or a generated image), in which case its counts are embedded.

>>> save_session("work.sigma", result, labels=edited, phases=[(1, "quartz", (1, 0, 0, 1))])
>>> session = load_session("work.sigma")
>>> image = session.read_image()      # the source, checked against its hash
>>> result = session.result(image)    # an AnalysisResult with the edited labels
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from napari_sigma.errors import SigmaFileError, SpectrumImageError
from napari_sigma.io.results.archive import Archive, read_archive, write_archive
from napari_sigma.io.results.export import to_jsonable
from napari_sigma.pipeline.settings import settings_from_json

SESSION_KIND = "session"

#: Arrays of an AnalysisResult a session keeps (the cube and the features are not kept).
RESULT_ARRAYS = (
    "intensities",
    "latent",
    "latent_pixels",
    "probabilities",
    "phase_spectra",
    "components",
    "phase_weights",
    "abundances",
)


@dataclass
class SessionPhase:
    """One row of a session's phase table: label id, name and RGBA colour (floats in [0, 1])."""

    id: int
    name: str
    color: tuple[float, float, float, float]


@dataclass
class Session:
    """A saved session, as :func:`load_session` returns it.

    Attributes
    ----------
    path : Path or None
        The file it was read from.
    source : Path or None
        The spectrum image file the session was made on (None: the counts are embedded).
    source_sha256 : str or None
        SHA-256 of that file when the session was saved.
    settings : AnalysisSettings
        The analysis settings.
    labels : ndarray (y, x) int32
        The labels as edited.
    phases : list of SessionPhase
        Phase ids, names and colours, in table order.
    latent : ndarray (N, 2) float32
        Latent coordinates of the analysis grid's pixels (``latent_pixels`` are their flat
        indices in the full-resolution image; ``latent_shape`` the grid).
    result_data : dict
        Everything else needed to rebuild the :class:`AnalysisResult` (see :meth:`result`).
    model : FittedModel or None
        The fitted phase model.
    gui : dict
        Free JSON state of the GUI (widget values...), returned as saved.
    counts : ndarray or None
        The embedded cube when the image had no source file.
    image_info : dict
        Shape, energy axis, beam energy, pixel size, elements and title of the image.
    phase_minerals : list of PhaseMineral
        The analysis's quantification and identification of each phase (without the line
        fits), as the result held them.
    minerals_labels : ndarray (y, x) int32 or None
        The labels ``phase_minerals`` describe, when they are not ``labels`` (saved after edits).
    """

    path: Path | None
    source: Path | None
    source_sha256: str | None
    settings: Any
    labels: np.ndarray
    phases: list[SessionPhase]
    latent: np.ndarray
    latent_pixels: np.ndarray
    latent_shape: tuple[int, int]
    result_data: dict[str, Any] = field(default_factory=dict)
    model: Any = None
    gui: dict[str, Any] = field(default_factory=dict)
    counts: np.ndarray | None = None
    image_info: dict[str, Any] = field(default_factory=dict)
    phase_minerals: list = field(default_factory=list)
    minerals_labels: np.ndarray | None = None

    @property
    def phase_names(self) -> list[str]:
        """Names of the phases, in table order."""
        return [phase.name for phase in self.phases]

    @property
    def phase_colors(self) -> list[tuple[float, float, float, float]]:
        """RGBA colours of the phases, in table order."""
        return [phase.color for phase in self.phases]

    def read_image(self, check_hash: bool = True):
        """The spectrum image of the session: the source file (verified) or the embedded counts.

        Raises
        ------
        SigmaFileError
            The source file is missing or was changed since the session was saved.
        """
        from napari_sigma.energy import EnergyAxis
        from napari_sigma.spectrum_image import SpectrumImage

        info = self.image_info
        if self.source is None:
            if self.counts is None:
                raise SigmaFileError(self.path or "session", "holds neither a source nor counts")
            return SpectrumImage(
                counts=self.counts,
                energy=EnergyAxis(*info["energy"]),
                beam_energy=info.get("beam_energy"),
                pixel_size=info.get("pixel_size", 1.0),
                pixel_unit=info.get("pixel_unit", "px"),
                elements=tuple(info.get("elements", ())),
                xray_lines=tuple(info.get("xray_lines", ())),
                title=info.get("title", ""),
            )
        return self._read_source(check_hash)

    def _read_source(self, check_hash: bool):
        from napari_sigma.io.readers.reading import read_spectrum_image

        where = self.path or "session"
        if not self.source.is_file():
            raise SigmaFileError(where, f"its source file {self.source} is missing")
        if check_hash and self.source_sha256 and file_sha256(self.source) != self.source_sha256:
            raise SigmaFileError(
                where, f"its source file {self.source} changed since the session was saved"
            )
        try:
            image = read_spectrum_image(self.source, map_index=self.image_info.get("map_index", 0))
        except SpectrumImageError as error:
            raise SigmaFileError(where, f"its source cannot be read: {error}") from None
        if tuple(image.shape) != tuple(self.labels.shape):
            raise SigmaFileError(
                where, f"its labels are {self.labels.shape}, the source is {image.shape}"
            )
        return image

    def result(self, image=None):
        """The :class:`~napari_sigma.pipeline.analysis.AnalysisResult` of the session.

        Its labels are the edited labels and its phase names the session's names.

        Parameters
        ----------
        image : SpectrumImage, optional
            The session's image (default: :meth:`read_image`).
        """
        from napari_sigma.pipeline.analysis import AnalysisResult

        image = self.read_image() if image is None else image
        data = self.result_data
        return AnalysisResult(
            image=image,
            settings=self.settings,
            lines=tuple(data["lines"]),
            intensities=data["intensities"],
            latent=self.latent,
            latent_pixels=self.latent_pixels,
            latent_shape=self.latent_shape,
            bin_factor=int(data["bin_factor"]),
            labels=self.labels.copy(),
            probabilities=data["probabilities"],
            phase_names=self.phase_names,
            phase_spectra=data["phase_spectra"],
            components=data["components"],
            component_names=list(data["component_names"]),
            phase_weights=data["phase_weights"],
            abundances=data["abundances"],
            criterion={int(k): v for k, v in data["criterion"].items()},
            timings=dict(data["timings"]),
            device=str(data["device"]),
            versions=dict(data["versions"]),
            loss_history=list(data["loss_history"]),
            intensity_sigma=data.get("intensity_sigma"),
            phase_minerals=list(self.phase_minerals),
            minerals_labels=None if self.minerals_labels is None else self.minerals_labels.copy(),
        )


def file_sha256(path: str | Path, chunk_bytes: int = 1 << 22) -> str:
    """SHA-256 (hex) of a file, read in chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while block := handle.read(chunk_bytes):
            digest.update(block)
    return digest.hexdigest()


def save_session(
    path: str | Path,
    result: Any,
    labels: np.ndarray | None = None,
    phases: Iterable[Any] | None = None,
    model: Any = None,
    gui: Mapping[str, Any] | None = None,
    embed_counts: bool | None = None,
) -> Path:
    """Save the work on one image as a session file.

    Parameters
    ----------
    path : str or Path
        The file to write (``.sigma`` by convention); written atomically.
    result : AnalysisResult
        The analysis.
    labels : ndarray (y, x) int, optional
        The labels as edited (default ``result.labels``).
    phases : iterable, optional
        The phase table: :class:`SessionPhase`, objects with ``id``, ``name``, ``color``
        (the napari layer's ``PhaseModel`` rows) or ``(id, name, color)`` tuples; colours as
        RGBA or RGB floats in [0, 1]. Default: ``result.phase_names`` with the project palette.
    model : FittedModel, optional
        The fitted phase model to keep with the session.
    gui : mapping, optional
        JSON-compatible GUI state, returned as saved by :func:`load_session`.
    embed_counts : bool, optional
        Keep the cube in the session; default only when the image has no source file.

    Returns
    -------
    Path
    """
    image = result.image
    labels = np.asarray(result.labels if labels is None else labels).astype(np.int32)
    if labels.shape != tuple(image.shape):
        raise ValueError(f"labels {labels.shape} do not match the image {image.shape}")
    source = Path(image.source).resolve() if image.source else None
    embed = source is None if embed_counts is None else embed_counts
    content = {
        "source": str(source) if source else None,
        "source_sha256": file_sha256(source) if source and source.is_file() else None,
        "settings": to_jsonable(result.settings),
        "phases": [to_jsonable(dataclasses.asdict(p)) for p in session_phases(result, phases)],
        "latent_shape": list(result.latent_shape),
        "image": _image_info(image),
        "result": _result_info(result),
        "gui": to_jsonable(dict(gui or {})),
        "model": None,
    }
    arrays = {"labels": labels}
    arrays.update({f"result.{name}": np.asarray(getattr(result, name)) for name in RESULT_ARRAYS})
    if getattr(result, "intensity_sigma", None) is not None:
        arrays["result.intensity_sigma"] = np.asarray(result.intensity_sigma)
    if embed:
        arrays["counts"] = np.asarray(image.counts)
    minerals = list(getattr(result, "phase_minerals", None) or [])
    if minerals:
        content["minerals"] = _minerals_content(minerals)
        described = getattr(result, "minerals_labels", None)
        described = np.asarray(result.labels if described is None else described)
        if not np.array_equal(described, labels):
            arrays["minerals_labels"] = described.astype(np.int32)
    if model is not None:
        content["model"], model_arrays = model.to_archive()
        arrays.update({f"model.{name}": value for name, value in model_arrays.items()})
    return write_archive(path, Archive(SESSION_KIND, content, arrays))


def load_session(path: str | Path) -> Session:
    """Read a session file written by :func:`save_session`.

    Raises
    ------
    SigmaFileError
        Not a session, damaged, tampered with, of a newer format, or incomplete.
    """
    archive = read_archive(path, kind=SESSION_KIND)
    try:
        return _session(Path(path), archive)
    except (KeyError, TypeError, ValueError) as error:
        raise SigmaFileError(path, f"incomplete or invalid session ({error!r})") from None


def _session(path: Path, archive: Archive) -> Session:
    content, arrays = archive.content, archive.arrays
    result_data = dict(content["result"])
    result_data.update({name: arrays[f"result.{name}"] for name in RESULT_ARRAYS})
    result_data["intensity_sigma"] = arrays.get("result.intensity_sigma")
    model = None
    if content.get("model") is not None:
        from napari_sigma.pipeline.model import FittedModel

        prefix = "model."
        model_arrays = {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}
        model = FittedModel.from_archive(content["model"], model_arrays)
    return Session(
        path=path,
        source=Path(content["source"]) if content["source"] else None,
        source_sha256=content["source_sha256"],
        settings=settings_from_json(content["settings"], ignore_unknown=True),
        labels=arrays["labels"],
        phases=[
            SessionPhase(int(p["id"]), str(p["name"]), _rgba(p["color"])) for p in content["phases"]
        ],
        latent=result_data.pop("latent"),
        latent_pixels=result_data.pop("latent_pixels"),
        latent_shape=tuple(int(v) for v in content["latent_shape"]),
        result_data=result_data,
        model=model,
        gui=dict(content.get("gui") or {}),
        counts=arrays.get("counts"),
        image_info=dict(content["image"]),
        phase_minerals=_minerals_from(content.get("minerals") or []),
        minerals_labels=arrays.get("minerals_labels"),
    )


def _minerals_content(minerals: Iterable[Any]) -> list[dict[str, Any]]:
    """The phase minerals as JSON (the line fits, arrays of the quantification, are left out)."""
    rows = []
    for m in minerals:
        q, ident = m.quantification, m.identification
        kept = None
        if q is not None:
            kept = {f.name: getattr(q, f.name) for f in dataclasses.fields(q) if f.name != "fit"}
        rows.append(to_jsonable({"phase_id": int(m.phase_id), "note": m.note,
                                 "quantification": kept, "identification": ident,
                                 "dispersion": dict(getattr(m, "dispersion", {}) or {})}))  # fmt: skip
    return rows


def _number(value: Any) -> float:
    return float("nan") if value is None else float(value)  # JSON keeps NaN as null


def _numbers(values: Mapping[str, Any]) -> dict[str, float]:
    return {str(k): _number(v) for k, v in _mapping(values, "numbers").items()}


def _mapping(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{what}: a {type(value).__name__}, not a mapping")
    return value


def _pairs(values: Iterable[Any]) -> list[tuple[str, float]]:
    return [(str(name), _number(score)) for name, score in values]


def _minerals_from(rows: Sequence[Mapping[str, Any]]) -> list:
    """:func:`_minerals_content` read back into PhaseMineral objects."""
    if not rows:
        return []
    if not isinstance(rows, list):
        raise ValueError(f"minerals: a {type(rows).__name__}, not a list")
    from napari_sigma.minerals.identify import Identification
    from napari_sigma.minerals.phases import PhaseMineral
    from napari_sigma.quant.quantify import Quantification

    minerals = []
    for row in rows:
        row = _mapping(row, "a phase's minerals")
        q, ident = row.get("quantification"), row.get("identification")
        if q is not None:
            q = _mapping(q, "quantification")
            q = Quantification(
                **{k: _numbers(q[k]) for k in ("wt", "at", "err_wt", "err_at", "oxide_wt",
                                               "err_oxide_wt", "formula")},
                analytical_total=_number(q["analytical_total"]), mode=str(q["mode"]),
                takeoff_deg=_number(q["takeoff_deg"]), beam_kev=_number(q["beam_kev"]),
                iterations=int(q["iterations"]), converged=bool(q["converged"]),
                notes=[str(n) for n in q.get("notes", [])],
            )  # fmt: skip
        if ident is not None:
            ident = _mapping(ident, "identification")
            ident = Identification(
                name=str(ident["name"]), mineral=str(ident["mineral"]),
                score=_number(ident["score"]), alternatives=_pairs(ident["alternatives"]),
                series=None if ident["series"] is None else str(ident["series"]),
                fractions=_numbers(ident["fractions"]),
                group=str(ident["group"]), density=_number(ident["density"]),
                trace=[str(t) for t in ident["trace"]], formula=str(ident["formula"]),
                unknown=bool(ident["unknown"]), unresolved=_pairs(ident.get("unresolved", [])),
                components=tuple(_pairs(ident.get("components", []))),
                ruled_out=str(ident.get("ruled_out", "")),
            )  # fmt: skip
        # the pixels' scatter (sessions saved before it was kept have none)
        dispersion = _numbers(row.get("dispersion") or {})
        minerals.append(PhaseMineral(int(row["phase_id"]), q, ident, str(row.get("note", "")),
                                     dispersion=dispersion))  # fmt: skip
    return minerals


def session_phases(result: Any, phases: Iterable[Any] | None = None) -> list[SessionPhase]:
    """The phase table to save: ``phases`` as :class:`SessionPhase` rows, or the result's."""
    if phases is None:
        from napari_sigma.phases.colors import phase_colors

        names = list(result.phase_names)
        colors = np.asarray(phase_colors(len(names)), dtype=np.float64)
        return [SessionPhase(i + 1, name, _rgba(colors[i])) for i, name in enumerate(names)]
    rows = []
    for phase in phases:
        if isinstance(phase, Sequence) and not isinstance(phase, str):
            phase_id, name, color = phase
        else:
            phase_id, name, color = phase.id, phase.name, phase.color
        rows.append(SessionPhase(int(phase_id), str(name), _rgba(color)))
    return rows


def _rgba(color: Any) -> tuple[float, float, float, float]:
    values = np.asarray(color, dtype=np.float64).ravel()
    if values.size == 3:
        values = np.append(values, 1.0)
    if values.size != 4:
        raise ValueError(f"not an RGBA colour: {color!r}")
    return tuple(float(v) for v in values)  # type: ignore[return-value]


def _image_info(image: Any) -> dict[str, Any]:
    energy = image.energy
    info = {
        "shape": list(image.shape),
        "energy": [float(energy.offset), float(energy.scale), int(energy.size)],
        "beam_energy": image.beam_energy,
        "pixel_size": float(image.pixel_size),
        "pixel_unit": image.pixel_unit,
        "elements": list(image.elements),
        "xray_lines": list(image.xray_lines),
        "title": image.title,
    }
    metadata = getattr(image, "metadata", None) or {}
    if len(metadata.get("maps") or ()) > 1:  # one of a file's several maps: read that one again
        info["map_index"] = int(metadata.get("map_index", 0))
    return info


def _result_info(result: Any) -> dict[str, Any]:
    return to_jsonable(
        {
            "lines": list(result.lines),
            "bin_factor": int(result.bin_factor),
            "component_names": list(result.component_names),
            "phase_names": list(result.phase_names),
            "criterion": dict(result.criterion),
            "timings": dict(result.timings),
            "device": result.device,
            "versions": dict(result.versions),
            "loss_history": list(result.loss_history),
        }
    )
