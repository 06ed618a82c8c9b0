"""A tied M shell (Zr..Sn: Mz, Mg; :func:`napari_sigma.xray.lines.is_tied`) in the
quantification: folded into the element's L alpha template at its physical ratio, never a free
template, never the K template; tin and Cu6Sn5 foils quantified right with it."""

from __future__ import annotations

import numpy as np
import pytest

from napari_sigma.energy import EnergyAxis
from napari_sigma.quant import physics
from napari_sigma.quant.line_fit import _templates, fit_lines
from napari_sigma.quant.quantify import QuantSettings, quantify_spectrum
from napari_sigma.quant.simulate import line_intensities
from sigma_testdata import foil_spectrum

AXIS = EnergyAxis(-0.1, 0.01, 2048)
FANO = (1.0, 0.0)


def _groups(element: str, beam: float = 200.0) -> dict[str, set[str]]:
    folding = {"composition": {element: 1.0}, "takeoff_deg": 35.0, "thin": True}
    found = _templates([element], AXIS, beam, physics.WINDOWLESS, folding)
    return {group: {line.family for line in lines} for _, group, lines, _, _ in found}


def test_tin_m_lines_join_the_l_alpha_template():
    groups = _groups("Sn")
    assert {"La", "Ll", "Mz", "Mg"} <= groups["La"]
    assert "M" not in groups and "Mz" not in groups and "Mg" not in groups  # never free


def test_zirconium_m_line_joins_l_not_k():
    """Zr's K lines (15.7 keV) are fitted at 200 kV: its Mz still joins the L alpha template."""
    groups = _groups("Zr")
    assert "Mz" in groups["La"] and groups["K"] == {"Ka", "Kb"}


def test_no_l_line_fitted_no_m_line():
    """At 3.5 kV Sn's L shell is not excited: its M lines are not fitted alone."""
    assert _groups("Sn", beam=3.5) == {}


def test_tin_m_lines_are_simulated_at_their_physical_ratio():
    found = {line.name: a for line, a in line_intensities({"Sn": 1.0}, 200.0, thin=True)}
    assert 0.4 < found["Sn_Mz"] / found["Sn_La"] < 0.7  # windowless, no absorption: 0.57
    assert found["Sn_Mg"] < 0.15 * found["Sn_Mz"]


def _foil(formula: str):
    """An 80 nm foil of density 7.3 at 200 kV (:func:`sigma_testdata.foil_spectrum`)."""
    return foil_spectrum(formula, AXIS, density=7.3, thickness_nm=80.0)


@pytest.mark.parametrize("formula", ["Sn", "Cu6Sn5", "Ag3Sn"])
def test_tin_alloys_are_quantified_with_the_folded_m_lines(formula):
    spectrum, truth = _foil(formula)
    settings = QuantSettings(thickness_nm=80.0, density=7.3)
    result = quantify_spectrum(spectrum, AXIS, sorted(truth), 200.0, settings, "EDS_TEM",
                               width=FANO)  # fmt: skip
    for element, fraction in truth.items():
        assert result.wt[element] == pytest.approx(100 * fraction, abs=1.0)
    tin = result.fit.analysed["Sn"]
    assert tin.shell == "L" and tin.folded and tin.principal.name == "Sn_La"
    assert not [s for s in result.fit.others if s.element == "Sn" and s.shell == "M"]


def test_the_fold_explains_the_tin_m_peak():
    """With the M lines folded the fit leaves no peak at 0.4 keV (the residual a nitrogen
    template would take)."""
    spectrum, _ = _foil("Sn")
    fit = fit_lines(spectrum, AXIS, ["Sn"], 200.0, physics.WINDOWLESS, thin=True, width=FANO,
                    mass_thickness=7.3 * 80.0 * 1e-7)  # fmt: skip
    window = (AXIS.energies > 0.35) & (AXIS.energies < 0.46)
    residual = (spectrum - fit.model)[window]
    assert (
        abs(residual.sum()) < 3.0 * np.sqrt(spectrum[window].sum()) + 0.01 * spectrum[window].sum()
    )
