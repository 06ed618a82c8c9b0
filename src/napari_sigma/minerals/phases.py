"""Quantify and name every phase of a label image (the analysis's or an edited one).

Each phase's summed spectrum (of its interior, away from boundaries, where it is large enough)
is fitted and quantified (:mod:`napari_sigma.quant`) and matched
against the mineral library (:mod:`napari_sigma.minerals.identify`); the peak-width correction of
the detector is found once, on the summed spectrum of all labelled pixels.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from napari_sigma.compute.forked import forked_map
from napari_sigma.compute.progress import Computation, Progress
from napari_sigma.minerals.host import (  # noqa: F401
    HOST_ENCLOSURE,
    HOST_SIGNIFICANCE,
    HostCorrection,
    _host_names,
    host_corrected_spectra,
    particle_host_shares,
    particle_hosts,
)
from napari_sigma.minerals.identify import Identification, identify_quantified
from napari_sigma.minerals.interiors import (  # noqa: F401
    CORE_FRACTION,
    MIN_CORE_PIXELS,
    interior_labels,
    phase_depths,
    touching_phases,
)
from napari_sigma.minerals.library import MineralLibrary, load_library
from napari_sigma.minerals.same_names import (  # noqa: F401
    DISPERSION_PIXELS,
    LIGHT_ELEMENTS_Z,
    QUALIFIER_DECIMALS,
    SAME_COMPOSITION_P,
    CompositionTest,
    compare_compositions,
    distinguish_same_names,
    line_dispersion,
    mean_uncertainty,
    phase_line_dispersions,
    same_mineral_groups,
)
from napari_sigma.quant.quantify import (
    Quantification,
    QuantSettings,
    foil_thickness_nm,
    quantify_spectrum,
)
from napari_sigma.spectrum_image import SpectrumImage

# The phases' cores and depths (`interiors`), the host correction (`host`) and the test of phases
# of one name (`same_names`) were moved out of this module; their public names are still
# importable from here (the imports marked F401). Patch or change them in their own modules.

MIN_PHASE_COUNTS = 200.0
"""A phase with fewer counts in all is not quantified (its name stays elemental)."""


UNRESOLVED_MARK = "≈"
"""Marks a name the measurement does not resolve from other minerals (the Phases table, the
report): `PhaseMineral.not_resolved_from` names them."""
UNRESOLVED_NOTE = (
    "their compositions are within the accuracy of a standardless analysis (8 % relative, "
    "0.7 wt %) of the named one's: polymorphs, H2O, or a few wt % of O as magnetite Fe3O4 and "
    "hematite Fe2O3; or they fit the measurement within it too, their scores within a factor "
    "1.4 of the named one's; EDS measures composition, not structure (nor glass from crystal)"
)
"""What `UNRESOLVED_MARK` means, in words (tooltips, report footnotes)."""


@dataclass
class PhaseMineral:
    """The quantification and the identification of one phase.

    Parameters
    ----------
    phase_id : int
        The label.
    quantification : Quantification or None
        None when the phase has too few counts or quantification failed (see ``note``).
    identification : Identification or None
        Likewise.
    note : str
        Why there is no result, if there is none.
    """

    phase_id: int
    quantification: Quantification | None
    identification: Identification | None
    note: str = ""
    qualifier: str = ""
    """What tells this phase from another of the same name (``"+ K 2.8 wt%"``, an element the
    mineral does not hold; ``"(Fe 46.6 wt%)"``, one it holds:
    :func:`~napari_sigma.minerals.same_names.distinguish_same_names`), or ``""``; part of its
    name (`mineral_phase_names`), not of its mineral."""
    dispersion: dict[str, float] = field(default_factory=dict)
    """Each quantified element's dispersion over the phase's core pixels
    (:func:`~napari_sigma.minerals.same_names.line_dispersion`: 1 for counting noise alone), or
    empty where not measured."""

    @property
    def err_wt_mean(self) -> dict[str, float]:
        """The 1-sigma uncertainty (wt %) of the phase's mean composition: the counting
        uncertainty of its summed spectrum (``quantification.err_wt``) times the square root of
        the element's dispersion over its pixels (at least 1):
        :func:`~napari_sigma.minerals.same_names.mean_uncertainty`. Empty where the dispersion
        was not measured."""
        if self.quantification is None or not self.dispersion:
            return {}
        return mean_uncertainty(self.quantification.err_wt, self.dispersion)

    @property
    def mineral(self) -> str:
        """The identified name, or ``""``."""
        return self.identification.name if self.identification else ""

    @property
    def score(self) -> float:
        """The identification score, or NaN."""
        return self.identification.score if self.identification else float("nan")

    @property
    def not_resolved_from(self) -> str:
        """The minerals the measurement does not tell the name apart from, with their scores
        (``"maghemite 0.64; magnetite 0.51"``: `Identification.unresolved`), or ``""``."""
        if not self.identification:
            return ""
        return "; ".join(f"{name} {score:.2f}" for name, score in self.identification.unresolved)


def elements_of_lines(lines: Sequence[str]) -> list[str]:
    """The distinct elements of line names such as ``"Fe_Ka"``, in order."""
    return list(dict.fromkeys(line.split("_")[0] for line in lines))


def signal_type(image: SpectrumImage) -> str:
    """The file's signal type (``"EDS_TEM"``, ``"EDS_SEM"``) from its metadata, or ``""``."""
    from napari_sigma.io.readers._rsciio import get_item

    return str(get_item(_metadata(image), "Signal.signal_type", "") or "")


def _metadata(image: SpectrumImage) -> Mapping:
    return image.metadata.get("rsciio_metadata", image.metadata) if image.metadata else {}


def identify_phases(
    image: SpectrumImage,
    labels: np.ndarray,
    elements: Sequence[str],
    library: MineralLibrary | None = None,
    settings: QuantSettings | None = None,
    phase_ids: Sequence[int] | None = None,
    spectra: np.ndarray | None = None,
    detect_elements: bool = False,
    depth: np.ndarray | None = None,
    host: tuple[np.ndarray, dict[int, HostCorrection]] | None = None,
    dispersion: Mapping[int, Mapping[str, float]] | None = None,
) -> Computation[list[PhaseMineral]]:
    """Quantify and identify the phases of ``labels`` (a generator yielding Progress).

    Parameters
    ----------
    image : SpectrumImage
        The spectrum image (its beam energy is required).
    labels : ndarray (y, x) int
        Phase ids, 0 = unassigned.
    elements : sequence of str
        The elements to quantify (e.g. those of the analysis lines).
    library : MineralLibrary, optional
        Default: the packaged library.
    settings : QuantSettings, optional
        Quantification options.
    phase_ids : sequence of int, optional
        The phases to do (default every id present in ``labels``).
    spectra : ndarray (K, E), optional
        The summed spectra to quantify, of phases 1..K (default: those of
        ``interior_labels(labels)``, computed here). With ``settings.host_correction``, the
        share of a host is removed from particles' spectra
        (:func:`~napari_sigma.minerals.host.host_corrected_spectra`).
    detect_elements : bool
        Also quantify the elements that each phase's own spectrum shows
        (:func:`phase_elements`): for automatic element lists, where the map's sum spectrum
        misses the minor elements of small phases (P45: Ca of a plagioclase, Mg and Fe of a
        biotite).
    depth : ndarray (y, x), optional
        :func:`~napari_sigma.minerals.interiors.phase_depths` of ``labels`` when already
        computed (the analysis has it).
    host : (ndarray (K, E), dict), optional
        What :func:`~napari_sigma.minerals.host.host_corrected_spectra` gives for these
        ``labels``, ``spectra``, the image's channel energies and beam energy and ``depth``,
        when already computed (the analysis keeps it for the mineral report, which needs it
        too).
    dispersion : dict of int to dict of str to float, optional
        Each phase's elements' dispersion over its core pixels
        (:func:`~napari_sigma.minerals.same_names.line_dispersion`, by phase id), when already
        measured (a process without the cube); the phases not given are measured here
        (:func:`~napari_sigma.minerals.same_names.phase_line_dispersions`). They give each
        phase's ``dispersion`` (the uncertainty of its mean composition:
        ``PhaseMineral.err_wt_mean``) and the test of phases of one name
        (:func:`~napari_sigma.minerals.same_names.distinguish_same_names`).

    Returns
    -------
    list of PhaseMineral
        One per phase id, in order.
    """
    from napari_sigma.unmixing.nmf import phase_sum_spectra

    library = library or load_library()
    settings = settings or QuantSettings()
    labels = np.asarray(labels)
    ids = sorted(set(np.unique(labels).tolist()) - {0}) if phase_ids is None else list(phase_ids)
    if not ids:
        return []
    yield Progress("minerals", 0, len(ids) + 1, "phase spectra")
    interior = None
    if spectra is None or len(spectra) < max(ids):
        interior = interior_labels(labels, depth)
        spectra = phase_sum_spectra(image.counts, interior, max(ids))
    spectra = np.asarray(spectra, dtype=np.float64)
    if not image.beam_energy:
        note = "no beam energy in the file: phases not quantified"
        return [PhaseMineral(pid, None, None, note) for pid in ids]
    silent = _without_signal(image, labels, spectra, depth, interior, elements)
    width = _detector_width(spectra[[i - 1 for i in ids]].sum(axis=0), image, elements, settings)
    spectra, corrections = _host_corrections(image, labels, spectra, depth, host, settings)

    def phase(pid: int) -> tuple[PhaseMineral, dict[str, float] | None]:
        """One phase's mineral and, for a phase without a signal, its stray composition."""
        if pid in silent:
            wt = _stray_composition(spectra[pid - 1], image, elements, settings, width)
            return no_signal_mineral(pid, silent[pid]), wt
        own = phase_elements(spectra[pid - 1], image, elements) if detect_elements else elements
        mineral = _one_phase(pid, spectra[pid - 1], image, own, library, settings, width)
        if _is_intergrowth(mineral) and labels.ndim == 2:
            cores = interior if interior is not None else interior_labels(labels, depth)
            mineral = _map_checked_pairing(mineral, cores == pid, spectra[pid - 1], image, own,
                                           library, settings, width)  # fmt: skip
        return mineral, None

    found, stray = [], {}
    each = forked_map(phase, ids)  # shared with a forked child where allowed (compute.forked)
    try:
        for step, pid in enumerate(ids, start=1):
            yield Progress("minerals", step, len(ids) + 1, f"phase {pid}")
            mineral, stray_wt = next(each)
            found.append(mineral)
            if pid in silent:
                stray[pid] = stray_wt
            else:
                _note_host_correction(mineral, corrections.get(pid))
    finally:
        each.close()
    _explain_by_neighbours(found, labels, library, stray, depth)
    if settings.host_correction:
        _remove_host_markers(found, spectra, labels, image, library, settings, width)
    if labels.ndim == 2:
        yield from _measured_dispersions(found, image, labels, depth, dispersion, len(ids))
        if same_mineral_groups(found):
            distinguish_same_names(found, {m.phase_id: m.dispersion for m in found})
    return found


def _without_signal(image, labels, spectra, depth, interior, elements) -> dict[int, float]:
    """The phases without a signal of their own (a hole, vacuum: only the X-rays that reach
    every pixel; :func:`~napari_sigma.minerals.signal.no_signal_phases`, on the cores' summed
    ``spectra`` and the analysed ``elements``' line windows), with their counts per pixel."""
    from napari_sigma.minerals.same_names import _line_windows
    from napari_sigma.minerals.signal import no_signal_phases

    if labels.ndim != 2 or len(spectra) < 2:
        return {}
    interior = interior_labels(labels, depth) if interior is None else interior
    pixels = np.bincount(np.clip(interior, 0, None).ravel(), minlength=len(spectra) + 1)
    windows = list(_line_windows(image, elements).values())
    return no_signal_phases(spectra, pixels[1 : len(spectra) + 1], windows)


def no_signal_mineral(phase_id: int, counts_per_pixel: float) -> PhaseMineral:
    """A phase without a signal of its own (:mod:`napari_sigma.minerals.signal`): named
    ``"no signal (0.08 counts/px)"``, not quantified, no mass (density 0: its area counts in
    the modal table, not its mass), no score."""
    from napari_sigma.minerals.signal import NO_SIGNAL, no_signal_name

    identification = Identification(
        no_signal_name(counts_per_pixel), NO_SIGNAL, float("nan"), [], None, {}, NO_SIGNAL,
        0.0, [], "", False,
    )  # fmt: skip
    note = (
        f"no signal of its own: {counts_per_pixel:.2g} counts per pixel, at most what every "
        "other phase holds in each line window and less in all (stray X-rays from the grid or "
        "holder, system peaks: a hole, vacuum or a shadow); not quantified"
    )
    return PhaseMineral(phase_id, None, identification, note)


def _host_corrections(image, labels, spectra, depth, host, settings: QuantSettings):
    """``(spectra, corrections by phase id)``: with ``settings.host_correction``, the spectra
    with a host's share removed from the particles'
    (:func:`~napari_sigma.minerals.host.host_corrected_spectra`, or ``host`` when given);
    without it, ``spectra`` and no correction."""
    corrections: dict[int, HostCorrection] = {}
    if settings.host_correction and labels.ndim == 2:
        if host is None:
            energies, beam = image.energy.energies, float(image.beam_energy)
            host = host_corrected_spectra(image.counts, labels, spectra, energies, beam, depth)
        spectra, corrections = host
    return spectra, corrections


def _remove_host_markers(found, spectra, labels, image, library, settings, width) -> None:
    """The share of its hosts that a named particle's core holds, measured by the host's
    elements its mineral lacks, removed and the particle named again
    (:func:`~napari_sigma.minerals.markers.remove_host_markers`), in place; a part of the
    host correction (``QuantSettings.host_correction``)."""
    from napari_sigma.minerals.markers import remove_host_markers

    def again(pid: int, spectrum: np.ndarray, elements: Sequence[str]) -> PhaseMineral:
        return _one_phase(pid, spectrum, image, elements, library, settings, width)

    remove_host_markers(found, spectra, labels, again)


def _note_host_correction(mineral: PhaseMineral, fix: HostCorrection | None) -> None:
    """The host correction of a quantified phase, added to its quantification's notes."""
    if fix is not None and mineral.quantification is not None:
        mineral.quantification.notes.append(
            f"host correction: {100 * fix.share:.1f} % (+- {100 * fix.sigma:.1f}) of the "
            f"counts removed as {_host_names(fix)}'s spectrum (fitted on "
            f"{fix.centre_pixels} core pixels)"
        )


def _measured_dispersions(found, image, labels, depth, dispersion, n_ids: int):
    """Each quantified phase's ``dispersion``: from ``dispersion`` where given, the others
    measured over the cores' pixels
    (:func:`~napari_sigma.minerals.same_names.phase_line_dispersions`)."""
    given = dict(dispersion or {})
    asked = {
        m.phase_id: list(m.quantification.wt)
        for m in found
        if m.quantification is not None and m.phase_id not in given
    }
    if asked:
        yield Progress("minerals", n_ids, n_ids + 1, "the pixels' scatter")
        given.update(phase_line_dispersions(image, interior_labels(labels, depth), asked))
    for m in found:
        if m.quantification is not None and m.phase_id in given:
            m.dispersion = {
                el: float(v) for el, v in given[m.phase_id].items() if el in m.quantification.wt
            }


NEIGHBOURS_TRIED = 2
"""An unknown phase is tried as a mineral mixed with each of its this many longest neighbours;
the best-scoring mixture names it, not the first that fits: the fourth set's hematite-magnetite
phase (O 29.8, Si 3.8, Fe 66.4 wt %) fits as wustite with 41 % of its goethite rim (the longest
neighbour, itself Si-bearing: 0.846) and as magnetite with 8 % of its quartz (0.850)."""


def _stray_composition(spectrum, image, elements, settings, width) -> dict[str, float] | None:
    """The composition (wt %) of a phase without a signal of its own: what reaches every pixel
    (stray X-rays), which a touching phase may hold too (a film's grid Cu); not the phase's
    (it is not reported), used only by :func:`_explain_by_neighbours`. None where it cannot be
    quantified."""
    if spectrum.sum() < MIN_PHASE_COUNTS:
        return None
    try:
        return quantify_spectrum(
            spectrum, image.energy, elements, float(image.beam_energy), settings,
            signal_type(image), _metadata(image), width,
        ).wt  # fmt: skip
    except (ValueError, np.linalg.LinAlgError):
        return None


def _explain_by_neighbours(
    found: list[PhaseMineral],
    labels,
    library,
    stray: Mapping[int, Mapping] | None = None,
    depth: np.ndarray | None = None,
) -> None:
    """Unknown phases, and intergrowths one of whose two minerals is a touching phase's: a
    library mineral plus some of a touching phase
    (:func:`~napari_sigma.minerals.identify.identify_with_neighbour`), in place. A grain whose
    core holds a fifth of its neighbour (a WC grain in its Co binder) is that grain with some of
    its neighbour, not an intergrowth of the two. A touching phase without a signal of its own
    (a hole) takes part with ``stray``'s composition of it: what reaches every pixel (a carbon
    film beside a hole holds the grid's Cu that the hole holds).

    An unknown whose nearest entry its own elements rule out (``Identification.ruled_out``: a
    ferrite's Cr and Ni, not 304's) is not named through a phase with a signal of its own: its
    spectrum is its core's (its deepest pixels), and a touching phase's share large enough to
    move its own major elements would name it after whatever mixture fits (a 308L delta ferrite
    as "304" plus its austenite, an ilvaite as fayalite plus its hedenbergite). Only a touching
    phase without a signal (stray X-rays, which reach every pixel however deep) may. A mixture
    that does not fit and whose mineral the phase's composition less the neighbour's share
    rules out (:func:`~napari_sigma.minerals.identify.identify_with_neighbour`) names nothing:
    an unknown stays as it is, an intergrowth becomes unknown (the weld's delta ferrite as
    "304 + chromite (79:21)" is neither that nor "304?" with some of its austenite).

    A touching phase with a signal does not bring a major element to a mixture that leaves a
    single one (an Ag-Sn phase as silver plus its tin: ``majors_from_neighbour`` of
    :func:`~napari_sigma.minerals.identify.identify_with_neighbour`), unless the phase's core
    lies on its boundary (:func:`core_on_boundary`: a pixel of its core touches another phase,
    so its spectrum is partly a boundary's). ``depth``:
    :func:`~napari_sigma.minerals.interiors.phase_depths` of ``labels``, when computed."""
    from napari_sigma.minerals.identify import identify_with_neighbour, plain_name
    from napari_sigma.minerals.intergrowth import is_component
    from napari_sigma.minerals.own_elements import analysed_shells

    by_id = {m.phase_id: m for m in found}
    touching, on_boundary = None, None
    for m in found:
        ident = m.identification
        if ident is None or not (ident.unknown or ident.components):
            continue
        touching = touching if touching is not None else touching_phases(labels)
        neighbours = sorted(touching.get(m.phase_id, {}).items(), key=lambda item: -item[1])
        best = None
        for q, _ in neighbours[:NEIGHBOURS_TRIED]:
            other = by_id.get(q)
            if other is None or (ident.ruled_out and other.quantification is not None):
                continue
            other_wt = (
                other.quantification.wt
                if other.quantification is not None
                else (stray or {}).get(q)
            )
            if not other_wt:
                continue
            if ident.components and not (
                other.identification is not None
                and any(is_component(plain_name(other.identification.name), c, library)
                        for c, _ in ident.components)
            ):  # fmt: skip
                continue  # an intergrowth's minerals are not this neighbour
            name = f"P{q} {other.mineral}" if other.mineral else f"P{q}"
            if on_boundary is None:
                on_boundary = core_on_boundary(labels, depth)
            better = identify_with_neighbour(
                m.quantification.wt, m.quantification.err_wt, other_wt, name, library,
                shells=analysed_shells(m.quantification),
                majors_from_neighbour=other.quantification is None or m.phase_id in on_boundary,
            )  # fmt: skip
            if better is None or (better.unknown and ident.unknown):
                continue  # nothing fits, or its own elements rule the mixture's mineral out
            if best is None or _mixture_rank(better) > _mixture_rank(best):
                best = better
        if best is not None:
            if ident.components:  # the intergrowth it replaces comes first
                best.alternatives = [(ident.name, ident.score), *ident.alternatives[:1]]
            m.identification = best


def _mixture_rank(found) -> tuple[float, float]:
    """How a mixture with one touching phase ranks against one with another: by its score,
    then by the smaller share of the neighbour it explains away."""
    return (float(found.score), -float(found.neighbour_share))


def core_on_boundary(labels, depth: np.ndarray | None = None) -> set[int]:
    """The phases whose core (:func:`~napari_sigma.minerals.interiors.interior_labels`, the
    pixels their spectrum is summed over) holds a pixel that touches another phase (depth <= 1
    pixel): a phase of thin or tiny grains, whose spectrum is partly its boundaries', where a
    touching phase may bring any element. Every phase of a map that is not 2-D."""
    labels = np.asarray(labels)
    ids = set(np.unique(labels[labels > 0]).tolist())
    if labels.ndim != 2:
        return ids
    depth = phase_depths(labels) if depth is None else depth
    interior = interior_labels(labels, depth)
    shallow = (interior > 0) & (depth <= 1.0)
    return {int(pid) for pid in np.unique(interior[shallow]).tolist()}


def phase_elements(
    spectrum: np.ndarray, image: SpectrumImage, elements: Sequence[str]
) -> list[str]:
    """``elements`` plus those the phase's summed spectrum shows
    (:func:`napari_sigma.xray.elements.suggest_elements`, its default significance)."""
    from napari_sigma.spectrum_image import Spectrum
    from napari_sigma.xray.elements import suggest_elements

    if np.sum(spectrum) < MIN_PHASE_COUNTS:
        return list(elements)
    found = suggest_elements(Spectrum(np.asarray(spectrum, float), image.energy,
                                      float(image.beam_energy)))  # fmt: skip
    return list(elements) + [s.element for s in found if s.element not in elements]


def _detector_width(total, image, elements, settings):
    from napari_sigma.quant.line_fit import fit_lines

    if total.sum() < MIN_PHASE_COUNTS:
        return None
    try:
        fit = fit_lines(total, image.energy, elements, float(image.beam_energy),
                        settings.detector_for("bulk", _metadata(image)))  # fmt: skip
    except (ValueError, np.linalg.LinAlgError):
        return None
    return fit.width


def _is_intergrowth(mineral: PhaseMineral) -> bool:
    found = mineral.identification
    return bool(found is not None and found.components and not found.unknown)


def _map_checked_pairing(
    mineral: PhaseMineral, mask, spectrum, image, elements, library, settings, width
) -> PhaseMineral:
    """An intergrowth-named phase whose map contradicts the name's pairing of its elements
    (:func:`~napari_sigma.minerals.association.pairing_contradiction` over its core pixels
    ``mask``) named again without intergrowths, the reason in its quantification's notes. A
    phase of a lazy cube (not read into memory) is not tested."""
    from napari_sigma.minerals.association import block_counts, pairing_contradiction
    from napari_sigma.minerals.identify import FIT_LEVEL
    from napari_sigma.minerals.same_names import _line_windows

    fit = mineral.quantification.fit
    if not isinstance(image.counts, np.ndarray) or fit is None or fit.background is None:
        return mineral
    analysed = {el for el, v in mineral.quantification.wt.items() if v > 0}
    components = [_component_elements(name, library, analysed)
                  for name, _ in mineral.identification.components]  # fmt: skip
    windows = _line_windows(image, analysed)
    blocks = block_counts(image.counts, mask, windows, fit.background)
    reason = pairing_contradiction(components, blocks, FIT_LEVEL)
    if not reason:
        return mineral
    again = _one_phase(mineral.phase_id, spectrum, image, elements, library, settings, width,
                       intergrowths=False)  # fmt: skip
    if again.identification is None:
        return mineral
    again.quantification.notes.append(f"not {mineral.identification.name}: {reason}")
    return again


def _component_elements(name: str, library, analysed) -> tuple[str, list[str], bool]:
    """An intergrowth component's name, its analysed elements (>= 1 wt %; a series': all its
    end members') and whether its composition is fixed (a library row, not a series)."""
    from napari_sigma.minerals.intergrowth import _base_name

    if name in library:
        composition = library[name].composition
        return name, [el for el in analysed if composition.get(el, 0.0) >= 0.01], True
    base = _base_name(name)
    series = next((s for s in library.series if s.name == base), None)
    members = series.members if series is not None else ()
    held = {el for m in members for el, c in library[m].composition.items() if c >= 0.01}
    return name, sorted(held & analysed), False


def _one_phase(
    pid, spectrum, image, elements, library, settings, width, intergrowths: bool = True
) -> PhaseMineral:
    if spectrum.sum() < MIN_PHASE_COUNTS:
        return PhaseMineral(pid, None, None, f"fewer than {MIN_PHASE_COUNTS:g} counts")
    try:
        quantification = quantify_spectrum(
            spectrum, image.energy, elements, float(image.beam_energy), settings,
            signal_type(image), _metadata(image), width,
        )  # fmt: skip
        identification = identify_quantified(
            quantification, spectrum, image.energy, library,
            settings.detector_for(quantification.mode, _metadata(image)),
            requantify=_requantify(spectrum, image, elements, settings, width),
            foil_nm=settings.thickness_nm or foil_thickness_nm(_metadata(image)),
            coating=settings.coating, intergrowths=intergrowths,
        )  # fmt: skip
    except (ValueError, np.linalg.LinAlgError) as error:
        return PhaseMineral(pid, None, None, f"not quantified: {error}")
    return PhaseMineral(pid, quantification, identification)


def _requantify(spectrum, image, elements, settings, width):
    """``fixed -> Quantification`` of the same spectrum with some mass fractions held fixed
    (:func:`~napari_sigma.minerals.identify.with_unmeasured_carbon`)."""
    from dataclasses import replace

    def again(fixed: Mapping[str, float]) -> Quantification:
        held = replace(settings, fixed={**settings.fixed, **fixed})
        return quantify_spectrum(spectrum, image.energy, elements, float(image.beam_energy),
                                 held, signal_type(image), _metadata(image), width)  # fmt: skip

    return again


def mineral_phase_names(
    names: Sequence[str], minerals: Sequence[PhaseMineral], phase_ids: Sequence[int] | None = None
) -> list[str]:
    """``"P3 quartz"`` for identified phases, with the qualifier that tells it from another phase
    of the same name (``"P2 garnet Alm51Prp46 + K 2.8 wt%"``:
    :func:`~napari_sigma.minerals.same_names.distinguish_same_names`); the given name for the
    others."""
    ids = list(phase_ids) if phase_ids is not None else list(range(1, len(names) + 1))
    by_id = {m.phase_id: m for m in minerals}
    named = []
    for pid, name in zip(ids, names, strict=True):
        found = by_id.get(pid)
        if found and found.mineral:
            extra = f" {found.qualifier}" if found.qualifier else ""
            named.append(f"P{pid} {found.mineral}{extra}")
        else:
            named.append(name)
    return named
