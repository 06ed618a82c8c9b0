"""The detector artefacts' columns (napari_sigma.xray.fitting.detector_artefact_columns)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_sigma.energy import EnergyAxis


def test_the_escape_column_of_an_axis_starting_below_minus_the_si_line_warns_nothing():
    # over16bit.bcf's axis starts at -1.901 keV: parents E + 1.74 <= 0 in its first channels
    import warnings

    from napari_sigma.xray.fitting import SI_K_EDGE_KEV, SI_KA_KEV, detector_artefact_columns

    axis = EnergyAxis(offset=-1.901, scale=0.02, size=4096)
    net = np.zeros(axis.size)
    net[np.searchsorted(axis.energies, 6.4)] = 1000.0  # one line: its escape 1.74 keV below
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        columns = detector_artefact_columns(axis, net)
    escape = columns[:, 1]
    assert np.all(np.isfinite(columns))
    assert escape[axis.energies + SI_KA_KEV <= SI_K_EDGE_KEV].sum() == 0.0
    peak = axis.energies[int(np.argmax(escape))]
    assert peak == pytest.approx(6.4 - SI_KA_KEV, abs=0.03)
