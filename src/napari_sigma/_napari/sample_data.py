"""napari sample data: the embedded synthetic EDS map with its ground-truth phases."""

from __future__ import annotations

from napari_sigma._napari.layers import LayerData, labels_layer, spectrum_image_layers

TRUTH_LAYER_NAME = "ground truth phases"


def synthetic_sample() -> list[LayerData]:
    """The demo sample (:func:`napari_sigma.synthetic.generator.demo_sample`) as napari layers.

    Returns
    -------
    list of (data, kwargs, layer_type)
        Total counts, the hidden cube, and a hidden Labels layer ``"ground truth phases"``
        (role ``"truth"``, phase names in its plugin metadata). Every layer carries the
        SpectrumImage and ``truth=`` the :class:`~napari_sigma.synthetic.generator.SyntheticSample`.
    """
    from napari_sigma.synthetic.generator import demo_sample

    sample = demo_sample()
    layers = spectrum_image_layers(sample.image, truth=sample)
    truth = labels_layer(
        sample.labels,
        sample.image,
        name=TRUTH_LAYER_NAME,
        role="truth",
        phase_names=list(sample.phase_names),
        visible=False,
        truth=sample,
    )
    return [*layers, truth]
