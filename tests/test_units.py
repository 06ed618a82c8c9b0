from __future__ import annotations

import pint
import pytest

from napari_sigma import units
from napari_sigma.units import microns_per_unit


@pytest.mark.parametrize("name", sorted(units._COMMON_LENGTHS))
def test_common_lengths_are_what_pint_converts_them_to(name):
    registry = pint.get_application_registry()
    expected = float(registry.Quantity(1.0, name).to("micrometer").magnitude)
    assert microns_per_unit(name) == expected


def test_other_units_go_through_pint():
    assert microns_per_unit("meter") == 1e6
    assert microns_per_unit("pm") == pytest.approx(1e-6)
    assert microns_per_unit("px") is None
    assert microns_per_unit("keV") is None
    assert microns_per_unit(" nm ") == 1e-3
