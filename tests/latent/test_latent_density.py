"""The latent space as a phase-coloured density image."""

from __future__ import annotations

import numpy as np
import pytest

from napari_sigma.latent.density import latent_extent, phase_density_image


def test_density_image_mixes_phase_colours_per_bin():
    latent = np.array([[0.0, 0.0], [0.0, 0.0], [10.0, 10.0], [10.0, 10.0], [10.0, 10.0]])
    phases = np.array([1, 2, 2, 2, 2])
    colors = {1: (1.0, 0.0, 0.0, 1.0), 2: (0.0, 0.0, 1.0, 1.0)}
    image = phase_density_image(latent, phases, colors, (0.0, 10.0, 0.0, 10.0), bins=4)
    np.testing.assert_allclose(image[0, 0, :3], [0.5, 0.0, 0.5])  # one red, one blue point
    np.testing.assert_allclose(image[3, 3, :3], [0.0, 0.0, 1.0])  # three blue points
    assert image[3, 3, 3] == pytest.approx(1.0)  # densest bin is opaque
    assert image[0, 0, 3] < image[3, 3, 3] and image[1, 1, 3] == 0.0  # empty bin transparent
    assert latent_extent(latent)[0] < 0.0 < 10.0 < latent_extent(latent)[1]
