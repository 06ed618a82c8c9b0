"""quant.fluorescence: Reed's characteristic fluorescence."""

from __future__ import annotations

from napari_sigma.quant import fluorescence
from napari_sigma.xray.lines import parse_line


def test_fluorescence_of_fe_by_ni_is_significant_and_not_the_reverse():
    alloy = {"Fe": 0.5, "Ni": 0.5}
    fe = fluorescence.fluorescence_ratio(alloy, parse_line("Fe_Ka"), 20.0, 40.0)
    ni = fluorescence.fluorescence_ratio(alloy, parse_line("Ni_Ka"), 20.0, 40.0)
    # Ni Ka (7.47 keV) excites the Fe K edge (7.11 keV): a few to ~15 % extra Fe Ka in Fe-Ni
    assert 0.03 < fe < 0.2
    assert ni == 0.0
