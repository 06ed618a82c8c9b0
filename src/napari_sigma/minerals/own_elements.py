"""Whether a phase's own elements are consistent with a library name that the whole comparison
rejects: the nearest entry (``"scheelite?"``) or an unknown (``"unknown (Fe2.48Cr1.00...)"``).

The library's comparison (:func:`napari_sigma.minerals.identify.fits_composition`) rejects a
name when the measured composition is several tolerances from the entry's, whatever the cause:
a foreign element a few wt % strong (W M on Si K beside scheelite, a host's Fe in a millerite
grain) or the entry's own elements in other proportions (a ferrite with 25 wt % Cr and 4.5 Ni
against 304's 18 and 9.6). A mineralogist keeps the first as the nearest entry with a doubt and
calls the second unknown: a phase is named a library mineral only when its own measured elements
are the mineral's. :func:`ruled_out_by_own_elements` says which, with three tests:

1. **Major elements present and absent alike.** An element the entry lacks may not be a major
   element of the phase: at least ``MAJOR_WT`` (10 wt %, the microanalysis convention: major
   > 10 wt %, minor 1-10, trace < 1; Goldstein et al., *Scanning Electron Microscopy and X-ray
   Microanalysis*, 4th ed., Springer 2018, ch. 19) and detected (more than ``DETECTED_SIGMAS``
   counting standard deviations); and a major element of the entry (C, N, O aside: their
   amounts are known to a factor, or tested by their lines, 3.) may not be missing: undetected
   and below the entry's share by more than ``DETECTED_SIGMAS`` of the comparison's tolerance.
   Minor and trace foreign elements stay traces of the name.
2. **The entry's own elements in its proportions.** The measured composition restricted to the
   entry's compared elements and renormalised, against the entry's: the comparison's chi-square
   (counting uncertainty, 8 % relative, 0.7 wt %; a C scale's prior for C-bearing entries) with
   one degree of freedom per element, at :data:`FIT_LEVEL`. Proportions are compared among the
   elements analysed with lines of one shell (K, L or M: ``shells``, from the quantification's
   fit), each shell's elements renormalised over themselves: the systematic error of a
   standardless analysis lies mostly between shells (the K shell's cross sections and yields
   are known to a few %, the L and M subshells' yields and Coster-Kronig transitions to
   10-30 %: Campbell, At. Data Nucl. Data Tables 85, 291 (2003)). espm and this package read a
   PdNi foil's Pd L against Ni K 40 % apart, a steel's Cr K against Ni K within 4 %. Across
   shells only presence counts. A major element of the entry that
   the phase lacks (a steel without Ni against 304's 9.6 wt %) fails here: its misfit is its whole
   share over the comparison's tolerance. As in the ranking, a measured O (standardless O is the
   least accurate result) may be left out when it is present, at least
   :data:`~napari_sigma.minerals.films.OXYGEN_LEFT_OUT_MIN` of the entry's share: P45's
   plagioclase (O 23 % low, Na lost under the beam) is still plagioclase by its Na, Ca, Al, Si.
3. **The lines of its unanalysed light elements.** Those of the entry's light elements that were
   not analysed must show their lines (:func:`napari_sigma.minerals.spectral.absent_line_chi2`;
   a C-O deposit is not nylon when no N K line stands where nylon's 12 wt % N would put
   hundreds of counts), at the same level.
"""

from __future__ import annotations

from collections.abc import Mapping

from napari_sigma.minerals.films import OXYGEN_LEFT_OUT_MIN
from napari_sigma.minerals.scores import (
    INVISIBLE,
    LIGHT,
    Candidate,
    MeasuredScales,
    renormalised_without,
    tolerance_sigma,
)

FIT_LEVEL = 0.00135
"""The level of each test: that of :func:`napari_sigma.minerals.identify.fits_composition`
(three standard deviations of a normal variable)."""

MAJOR_WT = 10.0
"""A foreign element of at least this share (wt % of the measured elements compared) is a major
element of the phase (the microanalysis convention, see the module docstring)."""

DETECTED_SIGMAS = 3.0
"""A foreign element counts as present above this many counting standard deviations."""


def ruled_out_by_own_elements(
    candidate: Candidate,
    wt: Mapping[str, float],
    err: Mapping[str, float],
    shells: Mapping[str, str] | None = None,
) -> str:
    """Why the phase of measured composition ``wt`` (wt %, 1-sigma counting errors ``err``) is
    not ``candidate``, by its own elements (the module docstring's three tests), or ``""``
    where they are consistent with it (the misfit is foreign minor elements). ``shells``: the
    shell (``"K"``, ``"L"``, ``"M"``) each element was analysed with (:func:`analysed_shells`);
    without it every element counts as one shell's."""
    compared = {
        el: max(v, 0.0)
        for el, v in wt.items()
        if el not in INVISIBLE and el not in candidate.ignored
    }
    reason = _foreign_major(candidate, compared, err) or _missing_major(candidate, compared, err)
    shell_of = {el: (shells or {}).get(el, "") for el in candidate.composition}
    for shell in sorted(set(shell_of.values())):
        elements = {el for el, s in shell_of.items() if s == shell}
        reason = reason or _own_proportions(candidate, compared, err, elements)
    return reason or _absent_lines(candidate)


def analysed_shells(quantification) -> dict[str, str]:
    """The shell (``"K"``, ``"L"``, ``"M"``) of the line each element of ``quantification`` was
    analysed with (its fit's ``analysed`` shells), or ``{}`` without a fit."""
    fit = getattr(quantification, "fit", None)
    if fit is None:
        return {}
    return {el: str(shell.shell)[:1] for el, shell in fit.analysed.items()}


def detected_majors(wt: Mapping[str, float], err: Mapping[str, float]) -> dict[str, float]:
    """The major elements of a measured composition ``wt`` (wt %, 1-sigma counting errors
    ``err``; H-B left out, the rest renormalised): those of at least ``MAJOR_WT`` detected above
    ``DETECTED_SIGMAS`` counting standard deviations, with their shares, the largest first."""
    compared = {el: max(v, 0.0) for el, v in wt.items() if el not in INVISIBLE}
    total = sum(compared.values())
    if total <= 0:
        return {}
    majors = {}
    for el, value in sorted(compared.items(), key=lambda item: -item[1]):
        share, sigma = 100.0 * value / total, 100.0 * err.get(el, 0.0) / total
        if share >= MAJOR_WT and share > DETECTED_SIGMAS * sigma:
            majors[el] = share
    return majors


def _foreign_major(candidate: Candidate, compared: Mapping[str, float], err) -> str:
    for el, share in detected_majors(compared, err).items():
        if candidate.composition.get(el, 0.0) <= 0:
            return f"{el} {share:.1f} wt%, a major element {candidate.name} does not hold"
    return ""


def _missing_major(candidate: Candidate, compared: Mapping[str, float], err) -> str:
    """A major element of the entry (not C, N, O: known to a factor, or tested by their lines)
    that the phase lacks: not detected, and below the entry's share by more than
    ``DETECTED_SIGMAS`` of the comparison's tolerance (a phase of few counts detects little)."""
    total = sum(compared.values())
    for el, share in candidate.composition.items():
        if share < MAJOR_WT or el in LIGHT or total <= 0:
            continue
        measured = compared.get(el, 0.0)  # an element not analysed was not detected
        sigma = err.get(el, 0.0)
        if measured > DETECTED_SIGMAS * sigma and measured > 0:
            continue
        found, sigma = 100.0 * measured / total, 100.0 * sigma / total
        if share - found > DETECTED_SIGMAS * tolerance_sigma(found, share, sigma):
            return f"no {el} detected, a major element of {candidate.name} ({share:.1f} wt%)"
    return ""


def _own_proportions(candidate: Candidate, compared: Mapping[str, float], err, elements) -> str:
    """Test 2 over ``elements`` (those of one shell) of the candidate's composition."""
    library = {el: v for el, v in candidate.composition.items() if v > 0 and el in elements}
    if len(library) < 2:
        return ""  # one element's proportion among itself says nothing
    own = {el: compared.get(el, 0.0) for el in library}
    total, library_total = sum(own.values()), sum(library.values())
    if total <= 0 or library_total <= 0:
        return f"none of {candidate.name}'s {', '.join(sorted(library))} measured"
    own = {el: 100.0 * v / total for el, v in own.items()}
    own_err = {el: 100.0 * err.get(el, 0.0) / total for el in own}
    library = {el: 100.0 * v / library_total for el, v in library.items()}
    if _proportions_fit(own, own_err, library):
        return ""
    if "O" in library and len(library) > 2 and own["O"] >= OXYGEN_LEFT_OUT_MIN * library["O"]:
        # standardless O is the least accurate result (the ranking compares without it too):
        # its presence is the evidence, the others' proportions decide
        without = renormalised_without(own, "O")
        errors = {el: own_err[el] * 100.0 / (100.0 - own["O"]) for el in without}
        if _proportions_fit(without, errors, renormalised_without(library, "O")):
            return ""
    misfits = sorted(
        library,
        key=lambda el: (
            -abs(own[el] - library[el]) / tolerance_sigma(own[el], library[el], own_err[el])
        ),
    )
    worst = ", ".join(f"{el} {own[el]:.1f} ({library[el]:.1f})" for el in misfits[:2])
    return f"its own elements are not {candidate.name}'s: {worst} wt% of them"


def _proportions_fit(own, own_err, library) -> bool:
    from scipy.special import chdtrc

    chi2, _ = MeasuredScales(own, own_err).best_chi2(library)
    return bool(chdtrc(len(library), chi2) >= FIT_LEVEL)


def _absent_lines(candidate: Candidate) -> str:
    from scipy.special import chdtrc

    if candidate.absent_tested and chdtrc(candidate.absent_tested, candidate.absent_chi2) < (
        FIT_LEVEL
    ):
        return f"the lines of {candidate.name}'s unanalysed light elements are absent"
    return ""
