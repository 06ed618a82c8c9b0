"""Library-wide identification benchmark (issue #10: names on cases not in this repository).

For EVERY mineral of the packaged library (``minerals/data/minerals.csv``) the phase spectrum is
simulated with the project's physics and identified the way the pipeline does it
(:func:`napari_sigma.quant.quantify.quantify_spectrum` then
:func:`napari_sigma.minerals.identify.identify_quantified` with the spectrum):

- settings: SEM bulk at 20 kV and 15 kV (the synthetic generator's pure-phase spectra:
  ``quant.simulate`` lines, Kramers continuum, polymer-window SDD, 35 degree take-off) and STEM
  thin foil at 200 kV (``quant.simulate.line_spectrum(thin=True)``, windowless SDD, a
  thin-target continuum ``sum c_i Z_i^2 / A_i / E`` scaled to ~15 % of the counts of quartz;
  no foil absorption);
- total counts 1e5 and 1e6 (a phase's pixel-summed spectrum), Poisson noise, seeded;
- elements: the ones the mineral holds that have lines (what a user would pick); with
  ``--suggested`` the elements ``xray.elements.suggest_elements`` finds in the spectrum instead;
  ``--without C`` leaves C out (a carbon-coated sample), run on the minerals holding C only.

A given name is right when it is the mineral, or a series holding it with the end-member
fractions within ``FRACTION_TOLERANCE`` of the mineral's own (its best fit by the series), or a
**polymorph** (a library entry of the same composition: calcite/aragonite, quartz/cristobalite,
andalusite/kyanite/sillimanite...; EDS cannot tell them apart in principle). Names whose
composition over the elements EDS sees (not H, Li, Be, B) is the mineral's within the
identification's accuracy (each element within 8 % relative and 0.7 wt %; over the elements
measured: tungsten carbide and tungsten when C was left out) are listed as **EDS-equivalent**
and counted separately ("right incl. equivalent").

    nice -n 5 python benchmarks/bench_names_library.py --out bench_out/names_library.json
    python benchmarks/bench_names_library.py --settings sem20 --counts 1e6 --limit 50
"""

from __future__ import annotations

import argparse
import json
import time
import zlib
from collections import defaultdict
from pathlib import Path

import numpy as np

FRACTION_TOLERANCE = 0.10
"""Largest difference of an end-member mole fraction for a series name to count as right."""
AXIS = dict(offset=-0.1, scale=0.01, size=2048)
SETTINGS = {
    "sem20": dict(beam=20.0, thin=False),
    "sem15": dict(beam=15.0, thin=False),
    "stem200": dict(beam=200.0, thin=True),
}
THIN_CONTINUUM_SHARE_QUARTZ = 0.15
"""The thin-target continuum is scaled so that it is this share of the counts of quartz."""


def _axis():
    from napari_sigma.energy import EnergyAxis

    return EnergyAxis(**AXIS)


def _thin_continuum(composition, axis, beam):
    """Thin-target bremsstrahlung ``sum c_i Z_i^2 / A_i / E`` on ``axis``, windowless SDD,
    detector-blurred, zero below 0.1 keV (per unit of the same arbitrary scale)."""
    from scipy.ndimage import gaussian_filter1d

    from napari_sigma.quant import physics
    from napari_sigma.xray.lines import FWHM_PER_SIGMA, detector_fwhm

    energy = np.clip(axis.energies, 0.05, None)
    zz = sum(c * physics.atomic_number(el) ** 2 / physics.atomic_weight(el)
             for el, c in composition.items())  # fmt: skip
    eff = np.array([physics.detector_efficiency(physics.WINDOWLESS, float(e)) for e in energy])
    spectrum = zz / energy * eff * (energy < beam)
    sigma = detector_fwhm(1.0, physics.WINDOWLESS.fwhm_mnka_kev) / FWHM_PER_SIGMA / axis.scale
    threshold = 1.0 / (1.0 + np.exp(-(axis.energies - 0.1) / 0.01))
    return gaussian_filter1d(spectrum, sigma, mode="constant") * threshold


_THIN_SCALE: dict[str, float] = {}


def expected_spectrum(composition, setting: str) -> np.ndarray:
    """The noise-free spectrum of a composition, normalised to 1 count in all."""
    from napari_sigma.quant import physics
    from napari_sigma.quant.simulate import line_spectrum
    from napari_sigma.synthetic.generator import PhaseSpec, phase_spectra

    axis, spec = _axis(), SETTINGS[setting]
    if not spec["thin"]:
        lines, background = phase_spectra([PhaseSpec("x", dict(composition))], axis, spec["beam"])
        total = lines[0] + background[0]
    else:
        if "scale" not in _THIN_SCALE:  # continuum share of quartz fixed once
            from napari_sigma.synthetic.generator import weight_fractions

            quartz = weight_fractions("SiO2")
            lq = line_spectrum(quartz, axis, spec["beam"], physics.WINDOWLESS, thin=True).sum()
            cq = _thin_continuum(quartz, axis, spec["beam"]).sum()
            share = THIN_CONTINUUM_SHARE_QUARTZ
            _THIN_SCALE["scale"] = share / (1 - share) * lq / cq
        lines = line_spectrum(composition, axis, spec["beam"], physics.WINDOWLESS, thin=True)
        total = lines + _THIN_SCALE["scale"] * _thin_continuum(composition, axis, spec["beam"])
    return total / total.sum()


def user_elements(composition, beam: float) -> list[str]:
    """The mineral's elements that have a line in the analysed range (H, Li, Be, B have none)."""
    from napari_sigma.quant.line_fit import analysis_shell
    from napari_sigma.xray.lines import ELEMENTS

    return [
        el
        for el in composition
        if el in ELEMENTS
        and el not in ("Be", "B")
        and analysis_shell(el, beam, AXIS["offset"] + AXIS["scale"] * AXIS["size"])
    ]


def polymorphs(library) -> dict[str, set[str]]:
    """Minerals by name -> the other library entries of the same composition (within 0.05 wt %)."""
    keys = {}
    for name, mineral in library.minerals.items():
        keys[name] = mineral.composition
    found: dict[str, set[str]] = defaultdict(set)
    names = list(keys)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            ca, cb = keys[a], keys[b]
            if set(ca) == set(cb) and all(abs(ca[el] - cb[el]) < 5e-4 for el in ca):
                found[a].add(b)
                found[b].add(a)
    return found


def eds_equivalent(library, a: str, b: str, measured=None) -> bool:
    """Whether two library minerals' compositions over the elements EDS sees (and, when given,
    that were ``measured``) are within the identification's accuracy of each other (every
    element within 8 % relative and 0.7 wt %): e.g. tungsten carbide and tungsten when C was
    not measured."""
    from napari_sigma.minerals.identify import (
        ABSOLUTE_TOLERANCE_WT,
        INVISIBLE,
        RELATIVE_TOLERANCE,
        _comparable,
    )

    ma, mb = library.minerals.get(a), library.minerals.get(b)
    if ma is None or mb is None:
        return False
    seen = set(ma.composition) | set(mb.composition) if measured is None else set(measured)
    va = {el: c for el, c in _comparable(ma.composition, seen).items() if el in seen}
    vb = {el: c for el, c in _comparable(mb.composition, seen).items() if el in seen}
    va, vb = ({el: 100 * c / (sum(v.values()) or 1) for el, c in v.items()} for v in (va, vb))
    for el in (set(va) | set(vb)) - INVISIBLE:
        x, y = va.get(el, 0.0), vb.get(el, 0.0)
        if abs(x - y) > max(RELATIVE_TOLERANCE * max(x, y), ABSOLUTE_TOLERANCE_WT):
            return False
    return True


def truth_fractions(library, series_name: str, mineral) -> dict[str, float] | None:
    """The mineral's end-member fractions in a series (its best fit by the series, all elements
    measured, noise-free), None when the series does not describe it (score < 0.5)."""
    from napari_sigma.minerals.identify import _series_candidate

    series = next((s for s in library.series if s.name == series_name), None)
    if series is None:
        return None
    wt = {el: 100.0 * c for el, c in mineral.composition.items()}
    if mineral.name in series.members:
        return {lab: float(m == mineral.name) for lab, m in zip(series.labels, series.members,
                                                               strict=True)}  # fmt: skip
    candidate = _series_candidate(series, library, wt, {}, set(wt))
    return candidate.fractions if candidate.score >= 0.5 else None


def judge(library, poly, truth: str, ident, measured=None) -> str:
    """``"right"``, ``"polymorph"``, ``"equivalent"`` or ``"wrong"``."""
    if ident.unknown:
        return "wrong"
    if ident.mineral == truth and (ident.series is None or ident.name == truth):
        return "right"
    if ident.name == truth or ident.name.endswith(f"({truth})"):
        return "right"
    if ident.series is not None:
        fractions = truth_fractions(library, ident.series, library[truth])
        if fractions is not None and all(
            abs(fractions.get(k, 0.0) - ident.fractions.get(k, 0.0)) <= FRACTION_TOLERANCE
            for k in set(fractions) | set(ident.fractions)
        ):
            return "right"
        return "wrong"
    if ident.mineral in poly.get(truth, ()):
        return "polymorph"
    if eds_equivalent(library, truth, ident.mineral, measured):
        return "equivalent"
    return "wrong"


def run_one(library, mineral, setting: str, total: float, rng, suggested: bool, without=()):
    from napari_sigma.minerals.identify import identify_quantified
    from napari_sigma.quant import physics
    from napari_sigma.quant.quantify import quantify_spectrum

    spec = SETTINGS[setting]
    axis = _axis()
    expected = expected_spectrum(mineral.composition, setting)
    counts = rng.poisson(expected * total).astype(np.float64)
    elements = [el for el in user_elements(mineral.composition, spec["beam"]) if el not in without]
    if suggested:
        from napari_sigma.spectrum_image import Spectrum
        from napari_sigma.xray.elements import suggest_elements

        found = suggest_elements(Spectrum(counts, axis, spec["beam"]))
        elements = [s.element for s in found] or elements
    signal = "EDS_TEM" if spec["thin"] else "EDS_SEM"
    detector = physics.WINDOWLESS if spec["thin"] else physics.Detector(fwhm_mnka_kev=0.130)
    from napari_sigma.quant.quantify import QuantSettings

    settings = QuantSettings(detector=detector)
    quant = quantify_spectrum(counts, axis, elements, spec["beam"], settings, signal)

    def requantify(fixed):  # as minerals.phases does (carbonates analysed without C)
        held = QuantSettings(detector=detector, fixed=fixed)
        return quantify_spectrum(counts, axis, elements, spec["beam"], held, signal)

    return identify_quantified(quant, counts, axis, library, detector,
                               requantify=requantify), elements  # fmt: skip


def group_of(mineral) -> str:
    return mineral.group.split(":")[0].strip() or "other"


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--counts", nargs="+", type=float, default=[1e5, 1e6])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=0, help="first N minerals only")
    parser.add_argument("--only", nargs="*", default=None, help="these minerals only")
    parser.add_argument("--suggested", action="store_true",
                        help="elements from suggest_elements instead of the mineral's own")  # fmt: skip
    parser.add_argument(
        "--without",
        nargs="*",
        default=[],
        help="light elements the user leaves out (e.g. C on a carbon-coated "
        "sample): only the minerals holding >= 1 wt %% of one are run",
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    from napari_sigma.minerals.library import load_library

    library = load_library()
    poly = polymorphs(library)
    minerals = list(library.minerals.values())
    if args.only:
        minerals = [m for m in minerals if m.name in set(args.only)]
    if args.without:
        minerals = [
            m for m in minerals if any(m.composition.get(el, 0.0) >= 0.01 for el in args.without)
        ]
    if args.limit:
        minerals = minerals[: args.limit]
    rows, start = [], time.process_time()
    for setting in args.settings:
        for total in args.counts:
            for mineral in minerals:  # one seeded draw per mineral: --only reproduces it
                rng = np.random.default_rng([args.seed, zlib.crc32(mineral.name.encode()),
                                             int(total), int(SETTINGS[setting]["beam"])])  # fmt: skip
                try:
                    ident, elements = run_one(library, mineral, setting, total, rng,
                                              args.suggested, tuple(args.without))  # fmt: skip
                    given, score = ident.name, ident.score
                    verdict = judge(library, poly, mineral.name, ident, elements)
                except (ValueError, np.linalg.LinAlgError) as error:
                    given, score, verdict, elements = f"error: {error}", 0.0, "wrong", []
                rows.append({"setting": setting, "counts": total, "mineral": mineral.name,
                             "group": group_of(mineral), "given": given,
                             "score": round(float(score), 3), "verdict": verdict,
                             "elements": elements})  # fmt: skip
    cpu = time.process_time() - start
    summary = report(rows, library, poly)
    summary["cpu_s"] = round(cpu, 1)
    print(f"\nCPU {cpu:.0f} s for {len(rows)} identifications")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"rows": rows, "summary": summary}, indent=1))
    return summary


def _share(rows, strict: bool) -> float:
    ok = {"right", "polymorph"} if strict else {"right", "polymorph", "equivalent"}
    return 100.0 * sum(r["verdict"] in ok for r in rows) / max(len(rows), 1)


def report(rows, library, poly) -> dict:
    by_run = defaultdict(list)
    for r in rows:
        by_run[(r["setting"], r["counts"])].append(r)
    groups = sorted({r["group"] for r in rows})
    summary: dict = {"runs": {}}
    print("right names (polymorphs count as right; +equiv: EDS-equivalent compositions too)")
    print(f"{'setting':9s} {'counts':>7s} {'n':>4s} {'right %':>8s} {'+equiv %':>8s}  per group")
    for (setting, total), rs in by_run.items():
        per_group = {}
        for g in groups:
            gr = [r for r in rs if r["group"] == g]
            if gr:
                per_group[g] = (round(_share(gr, True), 1), len(gr))
        summary["runs"][f"{setting} {total:g}"] = {
            "n": len(rs), "right": round(_share(rs, True), 1),
            "right_incl_equivalent": round(_share(rs, False), 1), "groups": per_group,
        }  # fmt: skip
        cells = " ".join(f"{g[:12]}={v[0]:.0f}/{v[1]}" for g, v in per_group.items())
        print(f"{setting:9s} {total:7.0e} {len(rs):4d} {_share(rs, True):8.1f} "
              f"{_share(rs, False):8.1f}  {cells}")  # fmt: skip
    pairs = sorted({(m, p) for m, ps in poly.items() for p in ps if m < p})
    print(
        f"\npolymorphs in the library (same composition, EDS cannot tell them apart; "
        f"counted right): {', '.join(f'{a}/{b}' for a, b in pairs)}"
    )
    equivalent = sorted({(r["mineral"], r["given"]) for r in rows if r["verdict"] == "equivalent"})
    print(
        "EDS-equivalent names given (visible composition within 8 % / 0.7 wt %): "
        + ", ".join(f"{a} -> {b}" for a, b in equivalent)
    )
    print("\nconfusions (mineral -> name given, score) [setting counts]:")
    wrong = defaultdict(list)
    for r in rows:
        if r["verdict"] == "wrong":
            wrong[r["mineral"]].append(r)
    for name in sorted(wrong, key=lambda n: (-len(wrong[n]), n)):
        cells = "; ".join(f"{r['given']} {r['score']:.2f} [{r['setting']} {r['counts']:.0e}]"
                          for r in wrong[name])  # fmt: skip
        print(f"  {name} ({library[name].formula}): {cells}")
    summary["wrong"] = {n: [(r["setting"], r["counts"], r["given"], r["score"]) for r in rs]
                        for n, rs in wrong.items()}  # fmt: skip
    summary["equivalent"] = equivalent
    return summary


if __name__ == "__main__":
    main()
