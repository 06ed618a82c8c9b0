"""The latent space: autoencoder (as in SIGMA), PCA or UMAP embeddings of the features."""

from napari_sigma._lazy import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "LatentSettings": "embedding",
        "LatentResult": "embedding",
        "fit_latent": "embedding",
        "encode": "embedding",
        "build_autoencoder": "embedding",
        "latent_extent": "density",
        "phase_density_image": "density",
    },
)
