"""Does a fitted phase model describe a field? The check ``apply`` makes of every field.

A model names every pixel after its nearest phase template, whatever the field. Applied to a
field of another sample it still names that field with its own minerals, so each applied field
is checked on three counts, and each failure is one clause of the field's warning line:

- **Pixels that fit no phase.** A pixel whose squared Mahalanobis distance to the nearest
  template of every phase (under the model's shared covariance) exceeds the
  :data:`QUANTILE` quantile of the chi-square distribution with F degrees of freedom (F
  features). On the fields a model was fitted on 0-13 % of pixels lie beyond it (grain
  boundaries, the tails of real maps: the Phenom .elid 12.9 %, the 30x30 Bruker map 5.2 %,
  test_TEM 1.0 %; generated fields of the same sample 0.0 %); on a field with one mineral the
  model lacks, about that mineral's area (16.5 % for a sixth mineral of the generator); on
  another sample 69-100 %. The model keeps its own fields' share
  (``info["not_fitted_fraction"]``, 0 for a model saved without it) and a field warns from
  that share + :data:`NOT_FITTED_WARNING` (10 %) on. Such pixels keep the label of their
  nearest phase (the model's own fields keep the labels of their fit; nothing is dropped);
  they are counted in the check and written as a mask where the field warns of them.
- **Elements the model does not analyse.** A model with few lines does not see what it does
  not measure (test_TEM's model, lines of Cu, O, Pd and Ti, classifies a carbon film or a
  feldspar as its one phase at distances within its spread). The field's elements (those it
  lists and shows, else the element suggestion's elements of score >= :data:`ELEMENT_SCORE`)
  are compared with the model's: its lines' elements and those its fields' summed spectrum
  suggests (:func:`model_elements`, kept in the model's ``info`` from this version on).
- **Beam energy.** A model keeps its fields' beam energy (``info["beam_energy_kV"]``); a field
  measured at another (more than :data:`BEAM_TOLERANCE_KV` apart) has other line ratios and
  other excited lines. A model saved before this version has none: not compared, and said so
  in the record.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

#: The chi-square quantile beyond which a pixel fits no phase of the model.
QUANTILE = 0.99999
#: How much the share of a field's pixels that fit no phase may exceed the model's own fields'
#: before the field warns.
NOT_FITTED_WARNING = 0.10
#: The suggestion's score (fitted counts relative to the strongest element's) from which a
#: suggested element of the field counts as present.
ELEMENT_SCORE = 0.1
#: The lower score for the model's own fields' suggestion (a margin: an element weak in the
#: model's fields and stronger in the field is not foreign).
MODEL_ELEMENT_SCORE = 0.02
#: Beam energies closer than this (kV) are the same.
BEAM_TOLERANCE_KV = 0.5


@dataclass
class FieldCheck:
    """How well a model describes one field.

    Attributes
    ----------
    pixels : int
        Pixels of the field (full resolution).
    not_fitted : int
        Of them, those that fit no phase of the model (full resolution).
    threshold : float
        The squared distance beyond which a pixel fits no phase.
    foreign_elements : tuple of str
        Elements present in the field that the model does not analyse.
    beam_energy_kV, model_beam_energy_kV : float or None
        The field's and the model's beam energies (None: not recorded).
    model_not_fitted_fraction : float or None
        The share of the model's own fields' pixels that fit none of its phases (None: a model
        saved without it).
    mask : ndarray (y, x) bool or None
        The pixels that fit no phase (not written to the record).
    """

    pixels: int
    not_fitted: int
    threshold: float
    foreign_elements: tuple[str, ...] = ()
    beam_energy_kV: float | None = None
    model_beam_energy_kV: float | None = None
    model_not_fitted_fraction: float | None = None
    mask: np.ndarray | None = None

    @property
    def not_fitted_fraction(self) -> float:
        """Share of the field's pixels that fit no phase."""
        return self.not_fitted / self.pixels if self.pixels else 0.0

    @property
    def too_many_not_fitted(self) -> bool:
        """Whether the share of pixels that fit no phase exceeds the model's own fields' by
        :data:`NOT_FITTED_WARNING` or more."""
        own = self.model_not_fitted_fraction or 0.0
        return self.not_fitted_fraction >= own + NOT_FITTED_WARNING

    @property
    def beam_mismatch(self) -> bool:
        """Whether the field and the model were measured at different beam energies."""
        if self.beam_energy_kV is None or self.model_beam_energy_kV is None:
            return False
        return abs(self.beam_energy_kV - self.model_beam_energy_kV) > BEAM_TOLERANCE_KV

    @property
    def warns(self) -> bool:
        """Whether the model may not describe the field (see the module docstring)."""
        return self.too_many_not_fitted or bool(self.foreign_elements) or self.beam_mismatch

    def problems(self) -> list[str]:
        """One clause per failed count (empty when the field passes)."""
        clauses = []
        if self.too_many_not_fitted:
            own = self.model_not_fitted_fraction
            known = "" if own is None else f"its own fields {100 * own:.1f} %; "
            clauses.append(
                f"{100 * self.not_fitted_fraction:.1f} % of pixels fit no phase of the model "
                f"({known}labelled with the nearest)"
            )
        if self.foreign_elements:
            clauses.append(
                f"elements the model does not analyse: {', '.join(self.foreign_elements)}"
            )
        if self.beam_mismatch:
            clauses.append(
                f"beam {self.beam_energy_kV:g} kV, the model's {self.model_beam_energy_kV:g} kV"
            )
        return clauses

    def warning(self) -> str:
        """The field's warning line ("" when it passes)."""
        problems = self.problems()
        if not problems:
            return ""
        return "the model may not describe this field: " + "; ".join(problems)

    def record(self) -> dict[str, Any]:
        """The check as ``run.json`` keeps it."""
        return {
            "not_fitted": {
                "pixels": int(self.not_fitted),
                "fraction": float(self.not_fitted_fraction),
                "rule": f"squared Mahalanobis distance to every phase's nearest template above "
                f"the chi-square {QUANTILE} quantile ({self.threshold:.1f})",
                "labels": "kept: each pixel keeps its nearest phase",
            },
            "model_not_fitted_fraction": self.model_not_fitted_fraction,
            "foreign_elements": list(self.foreign_elements),
            "beam_energy_kV": self.beam_energy_kV,
            "model_beam_energy_kV": self.model_beam_energy_kV,
            "warning": self.warning(),
        }


def distance_threshold(n_features: int) -> float:
    """The squared distance beyond which a pixel fits no phase (F = ``n_features``)."""
    from scipy.stats import chi2

    return float(chi2.ppf(QUANTILE, n_features))


def beyond_model(log_likelihood: np.ndarray, n_features: int) -> np.ndarray:
    """Grid pixels that fit no phase: ``log_likelihood`` is
    :func:`~napari_sigma.pipeline.model.template_log_likelihood`'s ``-d²/2`` to each phase's
    nearest template ``(y, x, K)``: a numpy array, or a tensor on its device (only the
    ``(y, x)`` maximum comes to the host)."""
    from napari_sigma.compute.arrays import host, is_tensor

    if is_tensor(log_likelihood):
        best = host(log_likelihood.amax(dim=-1))
    else:
        best = log_likelihood.max(axis=-1)
    return -2.0 * best > distance_threshold(n_features)


def own_not_fitted(model: Any, raw: np.ndarray) -> float:
    """The share of a field's grid pixels (features ``raw`` on the model's scale) that fit no
    phase of ``model``: on the fields it was fitted on, the model's own share
    (``info["not_fitted_fraction"]``)."""
    from napari_sigma.pipeline.model import template_log_likelihood

    log_likelihood = template_log_likelihood(raw, model.templates, model.whitening)
    return float(beyond_model(log_likelihood, raw.shape[-1]).mean())


def spectrum_elements(spectrum: Any) -> tuple[str, ...]:
    """Elements present in a (field's summed) spectrum: those its file lists and the spectrum
    shows, with what it shows beside them (the analysis' rule,
    :func:`~napari_sigma.xray.elements.default_elements`); for a file that lists none, the
    suggestion's elements of score >= :data:`ELEMENT_SCORE`."""
    from napari_sigma.xray.elements import default_elements, suggest_elements
    from napari_sigma.xray.lines import ELEMENTS

    if any(e in ELEMENTS for e in spectrum.elements):
        chosen = default_elements(spectrum)
        return tuple(e for e in chosen.elements if e not in chosen.absent)
    return tuple(s.element for s in suggest_elements(spectrum) if s.score >= ELEMENT_SCORE)


def model_elements(model: Any) -> tuple[str, ...]:
    """The elements a model knows: its lines' and those its fields' summed spectrum (the sum
    of its phase spectra) suggests at score >= :data:`MODEL_ELEMENT_SCORE`.

    Kept in ``model.info["elements"]`` (computed here for a model saved without it)."""
    from napari_sigma.minerals.phases import elements_of_lines

    known = model.info.get("elements")
    if known is None:
        known = list(_suggested_in_model_fields(model))
        model.info["elements"] = known
    return tuple(dict.fromkeys([*elements_of_lines(model.lines), *known]))


def _suggested_in_model_fields(model: Any) -> tuple[str, ...]:
    from napari_sigma.energy import EnergyAxis
    from napari_sigma.spectrum_image import Spectrum
    from napari_sigma.xray.elements import suggest_elements

    spectra = np.asarray(model.phase_spectra)
    if spectra.size == 0 or int(model.energy[2]) < 1:
        return ()
    total = spectra.sum(axis=0)
    beam = model.info.get("beam_energy_kV")
    spectrum = Spectrum(total, EnergyAxis(*model.energy), beam)
    found = suggest_elements(spectrum, min_score=MODEL_ELEMENT_SCORE)
    return tuple(s.element for s in found)


def describe_fields(model: Any, beam_energy: float | None) -> Any:
    """``model`` with its fields' beam energy and elements in its ``info`` (at fitting)."""
    model.info["beam_energy_kV"] = None if beam_energy is None else float(beam_energy)
    model.info.pop("elements", None)
    model_elements(model)
    return model


def check_field(
    model: Any, image: Any, field_spectrum: np.ndarray, not_fitted: np.ndarray
) -> FieldCheck:
    """The :class:`FieldCheck` of a field classified by ``model``.

    Parameters
    ----------
    model : FittedModel
    image : SpectrumImage
        The field (its energy axis, beam energy and listed elements).
    field_spectrum : ndarray (E,)
        The field's summed counts (the sum of its phase spectra).
    not_fitted : ndarray (y, x) bool
        The pixels (full resolution) that fit no phase.
    """
    from napari_sigma.spectrum_image import Spectrum

    spectrum = Spectrum(
        np.asarray(field_spectrum, dtype=np.float64), image.energy, image.beam_energy,
        tuple(image.elements),
    )  # fmt: skip
    known = set(model_elements(model))
    present = spectrum_elements(spectrum) if field_spectrum.sum() > 0 else ()
    model_beam = model.info.get("beam_energy_kV")
    own = model.info.get("not_fitted_fraction")
    return FieldCheck(
        pixels=int(not_fitted.size),
        not_fitted=int(np.count_nonzero(not_fitted)),
        threshold=distance_threshold(int(model.templates.shape[-1])),
        foreign_elements=tuple(e for e in present if e not in known),
        beam_energy_kV=None if image.beam_energy is None else float(image.beam_energy),
        model_beam_energy_kV=None if model_beam is None else float(model_beam),
        model_not_fitted_fraction=None if own is None else float(own),
        mask=not_fitted,
    )
