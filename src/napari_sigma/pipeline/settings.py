"""Analysis settings: one validated model, written to ``run.json`` and read back.

:class:`AnalysisSettings` holds every parameter of an analysis; its parts are the frozen
dataclasses of each domain (:class:`~napari_sigma.features.intensities.FeatureSettings`,
:class:`~napari_sigma.latent.embedding.LatentSettings`, ...). It is checked when it is made, from
Python, the CLI, the widget or a file alike: types against the dataclass annotations (strictly:
a string is never a number, a bool never an int; lists become tuples) and ranges from
:data:`LIMITS` and :data:`CHOICES`. A bad value raises :class:`~napari_sigma.errors.SettingsError`,
a one-line message naming the field (``latent.epochs: expected an integer, got 'ten'``).

Plain dataclasses and a validator rather than pydantic: the settings classes live in their
domain modules, are frozen and are changed with :func:`dataclasses.replace` throughout the code
and the public API; pydantic models would change that API, and pydantic dataclasses would make
every domain module import pydantic. The validator is short and the only place that knows the
limits.

The seed and the device are set once, at the top: the latent and clustering stages take them
from there (their own ``seed``/``device`` are overwritten when the settings are made, so
``run.json`` shows one value).

:func:`settings_from_choices` is how the CLI and the analysis widget turn their few choices into
settings (preset, elements or lines, number of phases, ...); :func:`save_settings` and
:func:`load_settings` write and read them as JSON (a ``run.json`` or a bare settings object).
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from napari_sigma.errors import SettingsError
from napari_sigma.features.intensities import FeatureSettings
from napari_sigma.latent.embedding import LatentSettings
from napari_sigma.phases.finding import PhaseFindingSettings
from napari_sigma.phases.mixture import ClusteringSettings
from napari_sigma.pipeline.validation import check_dataclass, check_settings, refuse_unknown

AUTO = "auto"
SEEDED_STAGES = ("latent", "clustering")
"""Parts of :class:`AnalysisSettings` that take its ``seed`` and ``device``."""

ClusterSpace = Literal["spatial", "features", "latent"]


@dataclass(frozen=True)
class AnalysisSettings:
    """Every parameter of an analysis.

    Parameters
    ----------
    lines : tuple of str or None
        X-ray lines to analyse (``"Fe_Ka"``). None: the default lines of ``elements``.
    elements : tuple of str or None
        Elements to analyse when ``lines`` is None. None: the file's elements that its sum
        spectrum shows (those it does not are reported and dropped), else the elements
        suggested from the sum spectrum
        (:func:`~napari_sigma.xray.elements.elements_to_analyse`).
    bin_factor : int
        Spatial binning of the analysis grid (results are returned at full resolution).
    features, latent, clustering : settings dataclasses
        See :mod:`~napari_sigma.features.intensities`, :mod:`~napari_sigma.latent.embedding`,
        :mod:`~napari_sigma.phases.mixture`. ``features.background`` applies to the clustering
        features: raw line windows by default, whose counts are Poisson so that the square-root
        normalisation makes their noise Gaussian and equal (measured at least as accurate as
        background-subtracted windows). The intensity maps of the result
        (``AnalysisResult.intensities``, with their counting standard deviations in
        ``intensity_sigma``) are fitted (:mod:`~napari_sigma.xray.image_fit`): never negative.
    cluster_space : {"spatial", "features", "latent"}
        Where the Gaussian mixture runs. ``"spatial"`` (default, the most accurate measured):
        on the smoothed features of homogeneous pixels, then every pixel classified on its own
        features with a neighbourhood prior (:mod:`~napari_sigma.phases.finding`);
        ``"features"``: on the smoothed features of all pixels; ``"latent"``: on the 2-D latent
        space (SIGMA).
    phase_finding : PhaseFindingSettings
        Parameters of the ``"spatial"`` strategy.
    n_components : int or None
        NMF components; None gives one per phase.
    nmf_init : {"vertices", "nndsvd"}
        Start of the NMF (:func:`~napari_sigma.unmixing.nmf.nmf`): ``"vertices"`` (default) keeps
        the phase spectra as components when there is one per phase; ``"nndsvd"`` is SIGMA's
        kind of start (the ``sigma`` preset), whose components blend phases.
    seed : int
        Seed of every random step.
    device : {"auto", "cpu", "cuda"}
        Torch device; ``"auto"`` uses CUDA when present.
    cpu_threads : int or None
        Torch threads for training and mixtures on the CPU (None: torch's and BLAS's defaults).
        One thread is measured faster on 2 shared cores; numpy's BLAS products then run on one
        thread too, whatever this number (see :func:`~napari_sigma.compute.device.torch_threads`).
    identify_minerals : bool
        Quantify every phase and name it from the mineral library
        (:mod:`napari_sigma.minerals.phases`; names become ``"P1 quartz"``).
    minerals : str or None
        A CSV of minerals extending the packaged library (``--minerals FILE``).
    coating : tuple of str
        Elements of a coat the sample carries (``("C",)``: ``--coating C``; see
        ``QuantSettings.coating``).
    """

    lines: tuple[str, ...] | None = None
    elements: tuple[str, ...] | None = None
    bin_factor: int = 1
    features: FeatureSettings = field(default_factory=lambda: FeatureSettings(background="none"))
    latent: LatentSettings = field(default_factory=LatentSettings)
    clustering: ClusteringSettings = field(default_factory=ClusteringSettings)
    cluster_space: ClusterSpace = "spatial"
    phase_finding: PhaseFindingSettings = field(default_factory=PhaseFindingSettings)
    n_components: int | None = None
    nmf_init: str = "vertices"
    seed: int = 0
    device: str = "auto"
    cpu_threads: int | None = 1
    identify_minerals: bool = True
    minerals: str | None = None
    coating: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        checked = check_settings(self)
        for name in SEEDED_STAGES:  # the seed and the device are set here once, for every stage
            stage = checked[name]
            checked[name] = replace(stage, seed=checked["seed"], device=checked["device"])
        for name, value in checked.items():
            object.__setattr__(self, name, value)

    @classmethod
    def preset(cls, name: str = "default", **overrides: Any) -> AnalysisSettings:
        """Settings of a named preset, with keyword overrides.

        ``"default"``: background-subtracted, Poisson-normalised, 3x3-averaged features;
        Gaussian mixture on the features with an automatic number of phases; a 2-D autoencoder
        latent for display. ``"sigma"``: SIGMA's tutorial defaults (2x2 binning, raw windows,
        per-pixel sum + z-score + softmax, the SIGMA autoencoder, mixture on the 2-D latent).
        """
        if name == "default":
            base = cls()
        elif name == "sigma":
            base = cls(
                bin_factor=2,
                features=FeatureSettings(background="none", normalisation="sigma"),
                latent=LatentSettings.sigma(),
                clustering=ClusteringSettings(criterion="bic"),
                cluster_space="latent",
                nmf_init="nndsvd",
            )
        else:
            raise ValueError(f"unknown preset {name!r}: use 'default' or 'sigma'")
        return replace(base, **overrides)


# ------------------------------------------------------------------------------ JSON


def settings_to_json(settings: AnalysisSettings) -> dict[str, Any]:
    """The JSON form of settings (nested dicts; tuples as lists)."""
    return json.loads(json.dumps(dataclasses.asdict(settings)))


def settings_from_json(data: Mapping[str, Any], ignore_unknown: bool = False) -> AnalysisSettings:
    """:class:`AnalysisSettings` from its JSON form; missing fields take their defaults.

    Parameters
    ----------
    data : mapping
        As written by :func:`settings_to_json` (the ``"settings"`` of a ``run.json``).
    ignore_unknown : bool
        Skip keys that are not settings (a session from another version) instead of refusing.

    Raises
    ------
    SettingsError
        A key that is not a setting, a value of the wrong type or out of range, naming the field.
    """
    if not isinstance(data, Mapping):
        raise SettingsError(None, f"expected a settings object, got {data!r}")
    if ignore_unknown:
        data = _known_only(AnalysisSettings, data)
    else:
        refuse_unknown(AnalysisSettings, data, "")
    return check_dataclass(data, AnalysisSettings)


def _known_only(cls: type, data: Mapping[str, Any]) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    kept = {}
    for item in dataclasses.fields(cls):
        if item.name not in data:
            continue
        value, nested = data[item.name], _dataclass_arm(hints[item.name])
        kept[item.name] = (
            _known_only(nested, value) if nested and isinstance(value, Mapping) else value
        )
    return kept


def _dataclass_arm(hint: Any) -> type | None:
    arms = (
        typing.get_args(hint)
        if typing.get_origin(hint) in (types.UnionType, typing.Union)
        else (hint,)
    )
    return next((a for a in arms if dataclasses.is_dataclass(a)), None)


def save_settings(settings: AnalysisSettings, path: str | Path) -> Path:
    """Write settings as a JSON file (the form :func:`load_settings` reads)."""
    path = Path(path)
    path.write_text(json.dumps(settings_to_json(settings), indent=2) + "\n")
    return path


def load_settings(path: str | Path) -> AnalysisSettings:
    """Settings from a JSON file: a ``run.json`` (its ``"settings"``) or a bare settings object.

    Raises
    ------
    SettingsError
        The file is missing or not JSON, or a setting is wrong; the message names the file and
        the field.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except OSError as error:
        raise SettingsError(
            None, f"cannot read settings: {error.strerror or error}", path
        ) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SettingsError(None, f"not a JSON settings file ({error})", path) from None
    if isinstance(data, Mapping) and isinstance(data.get("settings"), Mapping):
        data = data["settings"]
    try:
        return settings_from_json(data)
    except SettingsError as error:
        raise SettingsError(error.field, error.cause, path) from None


# ------------------------------------------------------------------------------ choices


def parse_names(text: str | Sequence[str] | None) -> tuple[str, ...] | None:
    """``"Fe, Si;O"`` -> ``("Fe", "Si", "O")``; ``"auto"``, empty or None -> None."""
    if text is None:
        return None
    words = text.replace(";", ",").split(",") if isinstance(text, str) else list(text)
    items = tuple(item.strip() for item in words if item.strip())
    if not items or (len(items) == 1 and items[0].lower() == AUTO):
        return None
    return items


def parse_phases(text: str | int) -> str | int:
    """``"auto"`` (or empty) -> ``"auto"``; ``"5"`` -> 5; anything else raises SettingsError."""
    if isinstance(text, int):
        number = text
    elif text.strip().lower() in ("", AUTO):
        return AUTO
    else:
        try:
            number = int(text)
        except ValueError:
            raise SettingsError("phases", f"takes 'auto' or a number, not {text!r}") from None
    if number < 1:
        raise SettingsError("phases", f"must be at least 1, got {number}")
    return number


def settings_from_choices(
    base: AnalysisSettings | str = "default",
    elements: str | Sequence[str] | None = None,
    phases: str | int | None = None,
    latent_method: str | None = None,
    epochs: int | None = None,
    bin_factor: int | None = None,
    normalisation: str | None = None,
    split: bool | None = None,
    seed: int | None = None,
    device: str | None = None,
    coating: Sequence[str] | None = None,
) -> AnalysisSettings:
    """Settings from the choices the CLI and the analysis widget offer; None keeps ``base``'s.

    Parameters
    ----------
    base : AnalysisSettings or str
        Settings to start from, or the name of a preset (``"default"``, ``"sigma"``).
    elements : str, sequence of str or None
        Elements (``"Fe,Si,O"``) or, when every item names a line (``"Fe_Ka,Si_Ka"``), lines;
        ``"auto"`` chooses them from the data.
    phases : str or int or None
        ``"auto"`` or a number of phases.
    latent_method, epochs, bin_factor, normalisation, seed, device
        The fields of the same name (``normalisation`` of the features).
    split : bool or None
        Test phases for two close compositions (``phase_finding.split``) or not.
    coating : sequence of str or None
        A coat the sample carries (``("C",)``; ``()``: none): ``AnalysisSettings.coating``.
    """
    settings = AnalysisSettings.preset(base) if isinstance(base, str) else base
    overrides: dict[str, Any] = {}
    if elements is not None:
        names = parse_names(elements)
        lines = names if names and all("_" in n for n in names) else None
        overrides.update(lines=lines, elements=None if lines else names)
    if phases is not None:
        overrides["clustering"] = replace(settings.clustering, n_phases=parse_phases(phases))
    latent = {"method": latent_method, "epochs": epochs}
    if any(v is not None for v in latent.values()):
        latent = {k: v for k, v in latent.items() if v is not None}
        overrides["latent"] = replace(settings.latent, **latent)
    if normalisation is not None:
        overrides["features"] = replace(settings.features, normalisation=normalisation)
    if split is not None:
        overrides["phase_finding"] = with_split(settings.phase_finding, split)
    for name, value in (("bin_factor", bin_factor), ("seed", seed), ("device", device)):
        if value is not None:
            overrides[name] = value
    if coating is not None:
        overrides["coating"] = tuple(coating)
    return replace(settings, **overrides)


def with_split(settings: PhaseFindingSettings, split: bool) -> PhaseFindingSettings:
    """Phase-finding settings with the search for two-composition phases on or off."""
    from napari_sigma.phases.splitting import SplitSettings

    if split:
        return settings if settings.split is not None else replace(settings, split=SplitSettings())
    return replace(settings, split=None)
