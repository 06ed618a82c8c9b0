"""A stated carbon coat (minerals.coating, QuantSettings.coating, ``--coating C``)."""

import numpy as np
import pytest

from napari_sigma.minerals.identify import Geometry, identify_composition

# a fluorapatite grain whose spectrum holds some C (a coat, a support film, a carbonate host):
# 2 wt % C is 6.4 at % of its atoms; carbonate-fluorapatite (1.2 wt % C) fits it better than
# C-free fluorapatite
APATITE_WITH_C = {"Ca": 37.5, "P": 17.0, "O": 39.0, "F": 3.5, "C": 2.0}


def test_a_stated_carbon_coat_is_no_evidence_for_a_minor_carbon_mineral():
    for geometry in (None, Geometry("thin", 200.0, 22.0, 100.0)):
        plain = identify_composition(APATITE_WITH_C, geometry=geometry)
        assert plain.name == "carbonate-fluorapatite"  # unchanged without a stated coat
        coated = identify_composition(APATITE_WITH_C, geometry=geometry, coating=("C",))
        assert coated.name == "fluorapatite" or coated.name.split(" ")[0] == "apatite"  # Fap94
        assert "carbonate-fluorapatite" in [name for name, _ in coated.alternatives]


@pytest.mark.parametrize(
    ("composition", "name"),
    [
        ({"W": 89.0, "C": 9.6, "Co": 1.4}, "tungsten carbide"),  # 61 at % C > a coat's 57
        ({"Ca": 38.0, "C": 13.0, "O": 49.0}, "calcite"),  # no C-free mineral agrees on the rest
        ({"Fe": 46.0, "C": 11.0, "O": 43.0}, "siderite"),
        ({"Fe": 93.0, "C": 7.0}, "cohenite"),  # 26 at % C, a coat gives iron 24 at %
        ({"Si": 44.0, "O": 50.0, "C": 6.0}, "quartz"),
    ],
)
def test_a_coat_does_not_explain_more_carbon_than_it_gives(composition, name):
    assert identify_composition(composition, coating=("C",)).name == name


def test_the_carbon_a_coat_adds_follows_the_geometry():
    from scipy.integrate import quad

    from napari_sigma.minerals.coating import COAT_CARBON_MOL_CM3, COAT_NM, film_carbon_at
    from napari_sigma.minerals.library import load_library
    from napari_sigma.quant import physics

    library = load_library()
    bulk = {n: film_carbon_at(library[n].composition, library[n].density)
            for n in ("lime", "fluorapatite", "quartz", "iron", "copper", "tungsten")}  # fmt: skip
    # C K is absorbed most in heavy matrices: the deeper signal fades, the coat's does not
    assert bulk["lime"] < bulk["fluorapatite"] < bulk["quartz"] < bulk["iron"] < bulk["copper"]
    assert bulk["copper"] < bulk["tungsten"] < 70.0 and 3.0 < bulk["lime"]
    # the first-order estimate against the XPP distribution integrated over the coat with its
    # absorption (iron at 20 kV): within 10 %
    iron = {"Fe": 1.0}
    dist = physics.xpp_distribution(iron, "C", "K", 20.0)
    chi = physics.mass_attenuation(iron, physics.shell_lines("C", "K")[0].energy) / np.sin(
        np.radians(35.0)
    )
    depth = COAT_CARBON_MOL_CM3 * 12.011 * COAT_NM["bulk"] * 1e-7  # the coat's mass thickness
    coat, _ = quad(lambda z: float(dist.phi(z)) * np.exp(-chi * z), 0.0, depth)
    c_c = coat / dist.emitted(chi)
    at_c = 100 * (c_c / 12.011) / (c_c / 12.011 + (1 - c_c) / 55.845)
    assert film_carbon_at(iron, 7.87) == pytest.approx(at_c, rel=0.1)
    # a thin foil: a coat on each surface, atoms counted; thinner foils carry more of its C
    thin = [film_carbon_at(iron, 7.87, Geometry("thin", 200.0, 20.0, t)) for t in (30, 100, 200)]
    assert thin[0] > thin[1] > thin[2]
    atoms = 7.87 / 55.845 * (100 - 10) * 1e-7  # mol/cm2 of the 100 nm foil's iron
    carbon = 2 * COAT_NM["thin"] * 1e-7 * COAT_CARBON_MOL_CM3
    assert thin[1] == pytest.approx(100 * carbon / (carbon + atoms))


def test_the_coating_setting_reaches_the_identification_from_the_cli():
    from napari_sigma.cli import build_settings, make_parser
    from napari_sigma.pipeline.analysis import quant_settings
    from napari_sigma.pipeline.settings import AnalysisSettings
    from napari_sigma.pipeline.validation import SettingsError

    args = make_parser().parse_args(["run", "x.hspy", "--out", "o", "--coating", "C"])
    settings = build_settings(args)
    assert settings.coating == ("C",)
    assert quant_settings(settings).coating == ("C",)
    plain = build_settings(make_parser().parse_args(["run", "x.hspy", "--out", "o"]))
    assert plain.coating == () and quant_settings(plain) is None
    with pytest.raises(SettingsError):
        AnalysisSettings(coating=("Au",))
    from napari_sigma.pipeline.settings import settings_from_choices

    assert settings_from_choices("default", coating=("C",)).coating == ("C",)
    assert settings_from_choices(settings, coating=()).coating == ()
