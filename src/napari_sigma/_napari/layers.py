"""Core objects as napari layer-data tuples ``(data, kwargs, layer_type)``.

Shared by the reader, the sample data and the widgets, so that every layer the plugin makes is
calibrated the same way: spatial axes in µm when the file is calibrated (in pixels otherwise), the
spectrum image as a lazy ``(energy, y, x)`` view in keV, and the plugin's data in
``metadata["napari_sigma"]`` (see :mod:`napari_sigma._napari.state`).

A single spectrum (``.spx``, ``.msa``, ``.EDS``) cannot be shown as a napari image; it becomes a
hidden ``(1, E)`` Image layer with role ``"spectrum"`` that carries the
:class:`~napari_sigma.spectrum_image.Spectrum`, which the Spectrum widget plots.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from napari_sigma._napari import state
from napari_sigma.spectrum_image import Spectrum, SpectrumImage

LayerData = tuple[Any, dict[str, Any], str]

MICRONS = "µm"
PIXELS = "pixel"
ENERGY_UNIT = "keV"
ENERGY_LABEL = "energy (keV)"
# the first axis of the layers of maps that tile the energy slider (`energy_tiling`): napari
# labels the slider after the last layer added, and "component 47" of a 6-component result (the
# cube's channel 47) read as a component number; the label says what the slider does for both
COMPONENT_LABEL = f"{ENERGY_LABEL} / component"
ELEMENT_MAP_LABEL = f"{ENERGY_LABEL} / element map"


def display_title(image: SpectrumImage | Spectrum) -> str:
    """A short name for layers made from ``image``: its title, file stem, or ``"EDS"``."""
    if image.title:
        return image.title
    return image.source.stem if image.source is not None else "EDS"


def spatial_calibration(image: SpectrumImage) -> tuple[float, str]:
    """Pixel size and unit for napari: ``(size_um, "µm")``, or ``(1.0, "pixel")`` if uncalibrated."""
    size_um = image.pixel_size_um
    if size_um is None or not np.isfinite(size_um) or size_um <= 0:
        return 1.0, PIXELS
    return float(size_um), MICRONS


def _spatial_kwargs(image: SpectrumImage, shape: tuple[int, int] | None = None) -> dict[str, Any]:
    """Scale and units of a 2-D layer covering the map; ``shape`` if it is sampled differently."""
    size, unit = spatial_calibration(image)
    ny, nx = image.shape
    sy, sx = shape if shape is not None else (ny, nx)
    return {"scale": (size * ny / sy, size * nx / sx), "units": (unit, unit)}


def total_counts_layer(image: SpectrumImage, **extra_tags: Any) -> LayerData:
    """The counts summed over energy as an Image layer (role ``"total"``)."""
    total = np.asarray(image.total_counts(), dtype=np.float32)
    kwargs = {
        "name": f"{display_title(image)} total counts",
        "colormap": "gray",
        "metadata": state.tag(None, role="total", spectrum_image=image, **extra_tags),
        **_spatial_kwargs(image),
    }
    return total, kwargs, "image"


def own_image_layers(image: SpectrumImage, **extra_tags: Any) -> list[LayerData]:
    """The file's own 2-D images as Image layers (role ``"image"``).

    Electron images (BSE, SE, HAADF, ...) become one layer each. Element maps the file holds
    (images named like ``"Fe K"``, ``"O_Ka"``, ``"Cu"``; a JEOL project has five) become ONE
    hidden ``(element map, y, x)`` layer (:func:`element_maps_layer`) when there are two or more:
    napari spends ~0.13 s of its main thread per added layer (controls, visual, selection
    events; measured 0.15-0.25 s of a JEOL open's 1.2-1.6 s), and five opaque maps stacked on
    top of each other hid the electron image anyway.
    """
    pictures = {name: np.asarray(p) for name, p in image.images.items()}
    pictures = {name: p for name, p in pictures.items() if p.ndim == 2}
    maps = {name: p for name, p in pictures.items() if is_element_map_name(name)}
    if maps:
        shape = next(iter(maps.values())).shape
        maps = {name: p for name, p in maps.items() if p.shape == shape}
    if len(maps) < 2:
        maps = {}
    layers = []
    for name, picture in pictures.items():
        if name in maps:
            continue
        kwargs = {
            "name": f"{display_title(image)} {name}",
            "colormap": "gray",
            "metadata": state.tag(None, role="image", spectrum_image=image, **extra_tags),
            **_spatial_kwargs(image, picture.shape),
        }
        layers.append((picture, kwargs, "image"))
    if maps:
        layers.append(element_maps_layer(maps, image, **extra_tags))
    return layers


_ELEMENT_MAP_NAME = re.compile(r"([A-Z][a-z]?)(?:[ _-]*[KLM](?:[a-z0-9]*|[ _-]?(?:alpha|beta))?)?")


def is_element_map_name(name: str) -> bool:
    """Whether a file's image ``name`` reads as an element map: ``"Fe"``, ``"C K"``, ``"O_Ka"``,
    ``"Cu L"`` (a symbol from Be to U, optionally a K/L/M line); not ``"BSE"``, ``"IMG1"``."""
    from napari_sigma.xray.lines import ELEMENTS

    match = _ELEMENT_MAP_NAME.fullmatch(name.strip())
    return match is not None and match.group(1) in ELEMENTS


def energy_tiling(image: Any, planes: int) -> tuple[float, float] | None:
    """Scale and translate of a first axis of ``planes`` planes that tile the energy range of
    ``image``'s cube as napari places it (:func:`cube_layer`): ``planes`` equal stretches of
    the energy slider, one plane each, in order; None when ``image`` has no usable energy axis
    (then one plane per step: scale 1, no translation).

    Layers of maps (the file's element maps, the analysis' components) share the viewer's first
    axis with the cube's energy. One map per keV showed map i within 0.5 keV of i keV only and
    an empty canvas over the rest of the slider (qa22, qa23); a slider of their own (a 4-D layer)
    made napari build its sliders again when the layer was added (+36 ms of main thread in
    that turn, qa23).
    """
    try:
        energy = image.energy
        channels = int(image.counts.shape[-1])
        scale, offset = float(energy.scale), float(energy.offset)
    except (AttributeError, TypeError, ValueError, IndexError):
        return None
    if not (np.isfinite(scale) and np.isfinite(offset)) or scale <= 0 or channels < 1:
        return None
    step = scale * channels / max(1, planes)
    return step, offset - scale / 2 + step / 2


def element_maps_layer(
    maps: dict[str, np.ndarray], image: SpectrumImage, **extra_tags: Any
) -> LayerData:
    """A file's element maps as ONE hidden Image layer ``(element map, y, x)`` (role ``"image"``).

    The layer is named after the maps (``"<title> element maps (C K, O K, ...)"``), its plugin
    metadata lists them under ``"names"`` in slice order; the slider of the viewer's first axis
    (the cube's energy, in keV) picks one: the maps tile its whole range in order
    (:func:`energy_tiling`), as the analysis' component maps do. Each map is drawn in
    its own contrast range (napari's ``auto_contrast``: the layer controls' "continuous"
    button), the values the status bar reads are the file's.
    """
    names = list(maps)
    shape = next(iter(maps.values())).shape
    spatial = _spatial_kwargs(image, shape)
    step, first = energy_tiling(image, len(names)) or (1.0, 0.0)
    kwargs = {
        "name": f"{display_title(image)} element maps ({', '.join(names)})",
        "colormap": "inferno",
        # each map its own range: C's 0-71 counts left Ca, O and Cu (0.2-0.9) black in one
        # range (the Velox file, qa24); napari sets the limits from the slice it draws (a
        # min/max of one map, drawn anyway) whenever the slider picks another map
        "auto_contrast": True,
        "visible": False,
        "scale": (step, *spatial["scale"]),
        "translate": (first, 0.0, 0.0),
        "units": (ENERGY_UNIT, *spatial["units"]),
        "axis_labels": (ELEMENT_MAP_LABEL, "y", "x"),
        "metadata": state.tag(None, role="image", spectrum_image=image, names=names, **extra_tags),
    }
    stack = np.stack([np.asarray(maps[name], dtype=np.float32) for name in names])
    return stack, kwargs, "image"


def cube_view(counts: Any) -> Any:
    """The ``(y, x, E)`` counts as an ``(E, y, x)`` view (numpy or dask, never a copy)."""
    if isinstance(counts, np.ndarray):
        return np.moveaxis(counts, -1, 0)
    return counts.transpose(2, 0, 1)


def cube_contrast_limits(total: np.ndarray) -> tuple[float, float]:
    """Display range of single channels: the brightest channel of a pixel holds a few % of it."""
    bright = float(np.percentile(total, 99)) if total.size else 0.0
    return 0.0, max(1.0, round(0.05 * bright))


def cube_layer(
    image: SpectrumImage, total: np.ndarray | None = None, **extra_tags: Any
) -> LayerData:
    """The spectrum image as a hidden ``(E, y, x)`` Image layer in keV and µm (role ``"cube"``).

    Parameters
    ----------
    image : SpectrumImage
        The data (numpy or dask counts; not copied).
    total : ndarray, optional
        Its total-counts image, to set the contrast limits without touching the cube.
    **extra_tags
        More entries for the plugin metadata (e.g. ``truth=``).
    """
    size, unit = spatial_calibration(image)
    limits = cube_contrast_limits(total) if total is not None else None
    kwargs = {
        "name": f"{display_title(image)} spectrum image",
        "scale": (image.energy.scale, size, size),
        "translate": (image.energy.offset, 0.0, 0.0),
        "units": (ENERGY_UNIT, unit, unit),
        "axis_labels": (ENERGY_LABEL, "y", "x"),
        "colormap": "viridis",
        "rgb": False,
        "visible": False,
        "metadata": state.tag(None, role="cube", spectrum_image=image, **extra_tags),
    }
    if limits is not None:
        kwargs["contrast_limits"] = limits
    return cube_view(image.counts), kwargs, "image"


def spectrum_image_layers(image: SpectrumImage, **extra_tags: Any) -> list[LayerData]:
    """Total counts, the file's own images (element maps as one hidden layer, see
    :func:`own_image_layers`) and the (hidden) cube of a spectrum image.

    Parameters
    ----------
    image : SpectrumImage
        What was read.
    **extra_tags
        More entries for every layer's plugin metadata (e.g. ``truth=`` for sample data).

    Returns
    -------
    list of layer-data tuples
        The total-counts image first (it defines the view), the cube last.

    Starts importing the plugin's heavy modules in a background thread once napari has added
    the layers (:mod:`~napari_sigma._napari.preload`), so that docking the plugin afterwards is
    quick.
    """
    from napari_sigma._napari import preload

    preload.start_soon()  # a user who sees a spectrum image docks the plugin next: import it
    total_layer = total_counts_layer(image, **extra_tags)
    return [
        total_layer,
        *own_image_layers(image, **extra_tags),
        cube_layer(image, total=total_layer[0], **extra_tags),
    ]


Spatial = tuple[tuple[float, float], tuple[str, str]]
"""Pixel size and unit of a layer's two spatial axes: ``((sy, sx), (unit_y, unit_x))``."""


def spectrum_layer(spectrum: Spectrum, spatial: Spatial | None = None) -> LayerData:
    """A single spectrum as a hidden ``(E, 1, 1)`` Image layer (role ``"spectrum"``) for the widget.

    Its energy lies on the viewer's first axis in keV, as the cube's does, so that napari's
    status bar reads keV over it; its two spatial axes hold one pixel of ``spatial``'s size
    and unit: those of the maps beside it (:func:`layer_spatial`), napari's pixel without.
    A ``(1, E)`` layer put the spectrum's keV on the maps' x axis (µm): napari found the
    layers' units inconsistent ("Inconsistent units across layers", a toast on every layer
    added) and drew without units.
    """
    counts = np.asarray(spectrum.counts, dtype=np.float32)[:, np.newaxis, np.newaxis]
    (sy, sx), (uy, ux) = spatial or ((1.0, 1.0), (PIXELS, PIXELS))
    kwargs = {
        "name": f"{display_title(spectrum)} spectrum",
        "scale": (spectrum.energy.scale, sy, sx),
        "translate": (spectrum.energy.offset, 0.0, 0.0),
        "units": (ENERGY_UNIT, uy, ux),
        "axis_labels": (ENERGY_LABEL, "y", "x"),
        "visible": False,
        "metadata": state.tag(None, role="spectrum", spectrum=spectrum),
    }
    return counts, kwargs, "image"


def layer_spatial(kwargs: dict[str, Any]) -> Spatial | None:
    """The spatial calibration (:data:`Spatial`) of a layer's kwargs, or None without units."""
    scale, units = kwargs.get("scale"), kwargs.get("units")
    if scale is None or units is None or len(scale) < 2 or len(units) < 2:
        return None
    return (float(scale[-2]), float(scale[-1])), (str(units[-2]), str(units[-1]))


def with_spatial(layer: LayerData, spatial: Spatial) -> LayerData:
    """A spectrum's layer data (:func:`spectrum_layer`) with its spatial axes in ``spatial``."""
    data, kwargs, kind = layer
    (sy, sx), (uy, ux) = spatial
    scale, units = kwargs["scale"], kwargs["units"]
    return data, {**kwargs, "scale": (scale[0], sy, sx), "units": (units[0], uy, ux)}, kind


def labels_layer(
    labels: np.ndarray,
    image: SpectrumImage,
    name: str,
    role: str,
    phase_names: list[str] | None = None,
    visible: bool = True,
    **extra_tags: Any,
) -> LayerData:
    """A label image ``(y, x)`` (0 = none, phases 1..K) as a calibrated Labels layer.

    Parameters
    ----------
    labels : ndarray, shape (y, x)
        Integer labels.
    image : SpectrumImage
        The spectrum image they belong to (calibration, and tagged on the layer).
    name : str
        Layer name.
    role : str
        Plugin role, e.g. ``"truth"`` or ``"phases"``.
    phase_names : list of str, optional
        Names of phases 1..K; stored as ``metadata["napari_sigma"]["phase_names"]``.
    visible : bool
        Whether the layer starts visible.
    **extra_tags
        More entries for the plugin metadata.
    """
    tags = {"spectrum_image": image, "phase_names": list(phase_names or []), **extra_tags}
    kwargs = {
        "name": name,
        "visible": visible,
        "metadata": state.tag(None, role=role, **tags),
        **_spatial_kwargs(image),
    }
    kwargs["colormap"] = _phase_colormap(int(np.max(labels, initial=0)))
    return np.asarray(labels, dtype=np.int32), kwargs, "labels"


def _phase_colormap(n_phases: int) -> Any:
    """A napari label colormap with the project's phase colours (label 0 transparent)."""
    from napari.utils.colormaps import DirectLabelColormap

    from napari_sigma.phases.colors import label_colormap

    return DirectLabelColormap(color_dict=label_colormap(n_phases))


def element_map_layer(intensity: np.ndarray, line: str, image: SpectrumImage) -> LayerData:
    """One line-intensity map ``(y, x)`` as an Image layer named ``"<title> Fe_Ka"`` (µm)."""
    kwargs = {
        "name": f"{display_title(image)} {line}",
        "colormap": "inferno",
        "blending": "additive",
        "metadata": state.tag(None, role="element_map", spectrum_image=image, line=line),
        **_spatial_kwargs(image),
    }
    return np.asarray(intensity, dtype=np.float32), kwargs, "image"
