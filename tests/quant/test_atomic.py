"""quant.atomic: edges and fluorescence yields against published values."""

from __future__ import annotations

import pytest

from napari_sigma.quant import atomic


def test_edges_and_fluorescence_yields_match_published_values():
    # Bearden & Burr (1967) edges; Krause (1979) K-shell yields
    assert atomic.edge_energy("Fe", "K") == pytest.approx(7.112, abs=0.002)
    assert atomic.edge_energy("Cu", "K") == pytest.approx(8.979, abs=0.002)
    assert atomic.fluorescence_yield("Fe", "K") == pytest.approx(0.340, rel=0.05)
    assert atomic.fluorescence_yield("Cu", "K") == pytest.approx(0.440, rel=0.05)
