"""quant.physics: the namespace of every physical term and `detected_lines`."""

from __future__ import annotations

import importlib
import subprocess
import sys

import numpy as np

import napari_sigma.quant as quant
from napari_sigma.quant import absorption, detector, generation, physics
from napari_sigma.xray.lines import parse_line

MODULES = ("atomic", "attenuation", "cross_sections", "generation", "absorption", "fluorescence",
           "detector")  # fmt: skip


def test_the_namespace_holds_the_domain_modules_own_objects():
    owners = [importlib.import_module(f"napari_sigma.quant.{m}") for m in MODULES]
    for name in physics.__all__:
        if name in ("detected_lines", "bulk_detected_lines"):  # the namespace's own
            continue
        found = [m for m in owners if getattr(m, name, None) is getattr(physics, name)]
        assert found, name
    # quant's public names of the physics are the same objects
    public = [name for name in quant.__all__ if name in physics.__all__]
    assert len(public) >= 15
    for name in public:
        assert getattr(quant, name) is getattr(physics, name), name


def test_each_domain_module_imports_alone_without_physics():
    # no module of the physics imports quant.physics: the namespace depends on them, not back
    for module in MODULES:
        code = (
            f"import sys; import napari_sigma.quant.{module}; "
            "assert 'napari_sigma.quant.physics' not in sys.modules"
        )
        subprocess.run([sys.executable, "-c", code], check=True)


def test_detected_lines_is_the_product_of_the_terms():
    # bulk: generation x XPP escape x (1 + fluorescence) x efficiency, each from its own module
    quartz = {"Si": 0.4674, "O": 0.5326}
    line = parse_line("Si_Ka")
    sdd = detector.Detector()
    (value,) = physics.detected_lines((line,), quartz, 15.0, 35.0, sdd)
    expected = (
        generation.emissions_per_electron(quartz, "Si", "K", 15.0, line=line)
        * absorption.xpp_absorption_factor(quartz, "Si", "K", np.array([line.energy]), 15.0, 35.0)[
            0
        ]
        * (1.0 + physics.fluorescence_ratio(quartz, line, 15.0, 35.0))
        * detector.detector_efficiency(sdd, line.energy)
    )
    assert value == expected
