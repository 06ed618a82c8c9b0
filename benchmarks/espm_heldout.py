"""Held-out espm maps for the names and numbers (issue #10): assemblages no test here uses.

Every case is made by the shared ``make_dev_cases.py``'s own ``make_case`` (espm 1.1.3's
generation API: spectra, abundance maps, Poisson counts; ``cube.hspy``, ``truth.npz`` and
``meta.json`` as for ``shared/data/espm_dev``), with espm given the ATOMIC fractions of each
phase's formula as :mod:`espm_cases` does (``atomic_fraction: True``), so that the simulated
spectra are those of the stated compositions. ``meta.json`` also holds ``compositions_wt`` (the
truth for a wt % quantification), ``compositions_at`` (what espm was given) and ``truth_names``:
per phase, the name it is scored against (``bench_quant.name_is_right``: library names,
synonyms and series ranges) and, for a phase that is a whole solid-solution series (biotite),
``accept_series``.

The cases were fixed before any result on them was looked at and are not to be changed after
(a held-out set tuned to is no longer held out; add a new case or a new seed instead).

espm models thin foils only (its cross-section tables are for 100, 200 and 300 keV beams, its
absorption that of a foil): the "SEM-like" cases here are coarse-grained, low-dose maps of a
thick (250 nm) foil at 100 keV with a 35 degree take-off, not bulk SEM physics; STEM cases are at
200 keV (and one at 300 keV).

Needs the espm venv (not the project's)::

    python3 -m venv /tmp/espmvenv
    /tmp/espmvenv/bin/pip install espm==1.1.3 -c shared/data/espm_dev/requirements-espm.lock.txt
    /tmp/espmvenv/bin/python benchmarks/espm_heldout.py [case ...] [--shared DIR] [--out DIR]

then, with the project's venv, the user's path on every case and the scoring::

    python benchmarks/espm_heldout_eval.py --run [--out ~/.cache/napari-sigma/heldout_runs]
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from espm_cases import atomic_fractions, case_arguments

DEFAULT_OUT = Path.home() / ".cache" / "napari-sigma" / "heldout"

# standard atomic weights (IUPAC 2021, abridged) and atomic numbers of the elements the shared
# script's tables lack
EXTRA_AW = dict(F=18.998, Na=22.990, P=30.974, K=39.098, Ti=47.867, Co=58.933, Zn=65.38,
                As=74.922, Ba=137.33, W=183.84, Pb=207.2)  # fmt: skip
EXTRA_Z = dict(F=9, Na=11, P=15, K=19, Ti=22, Co=27, Zn=30, As=33, Ba=56, W=74, Pb=82)

# (true phase, formula given to espm, density g/cm3); the first phase is the matrix / complement.
# A formula is the phase's visible part where the mineral holds H (espm has no H): goethite
# FeO(OH) -> FeO2, biotite KMg1.5Fe1.5AlSi3O10(OH)2 -> KMg1.5Fe1.5AlSi3O12.
STEM = dict(beam_kev=200.0, db="200keV_xrays.json", takeoff_deg=22.0)
STEM300 = dict(beam_kev=300.0, db="300keV_xrays.json", takeoff_deg=22.0)
SEM_LIKE = dict(beam_kev=100.0, db="100keV_xrays.json", takeoff_deg=35.0)

CASES = {
    "sulphide_ore_h80": dict(
        acquisition=STEM,
        phases=[("quartz", "SiO2", 2.65), ("pyrite", "FeS2", 5.01),
                ("chalcopyrite", "CuFeS2", 4.19), ("sphalerite", "Zn0.9Fe0.1S", 4.05),
                ("galena", "PbS", 7.60)],
        N=80, shape=(128, 128), seed=71023, pixel_nm=10.0, thickness_nm=90.0,
        layout=dict(kind="particles", groups=[
            dict(phase=1, n=7, r=(5.0, 10.0), asym=(1.0, 1.3), touch=0.2),
            dict(phase=2, n=6, r=(4.0, 9.0), asym=(1.0, 1.3), touch=0.3, touch_to=[1]),
            dict(phase=3, n=6, r=(4.0, 8.0), asym=(1.0, 1.2), touch=0.3),
            dict(phase=4, n=6, r=(3.0, 7.0), asym=(1.0, 1.2), touch=0.3, touch_to=[3])]),
        description="quartz gangue with pyrite, chalcopyrite (partly on pyrite), Fe-bearing "
                    "sphalerite and galena (partly on sphalerite; Pb M on S K) grains"),
    "granite_h40": dict(
        acquisition=STEM,
        phases=[("quartz", "SiO2", 2.65), ("albite", "NaAlSi3O8", 2.62),
                ("orthoclase", "KAlSi3O8", 2.56), ("magnetite", "Fe3O4", 5.18)],
        N=40, shape=(128, 128), seed=71157, pixel_nm=12.0, thickness_nm=100.0,
        layout=dict(kind="grains", n_grains=30, min_dist=15.0, warp_px=3.0, warp_len=7.0,
                    blur_px=1.0, grain_share={1: 0.33, 2: 0.3},
                    groups=[dict(phase=3, n=6, r=(3.0, 6.0), asym=(1.0, 1.3), touch=0.0,
                                 gap=3.0)]),
        description="granite: warped-Voronoi grains of quartz, albite and orthoclase with six "
                    "small magnetite grains"),
    "basalt_h30": dict(
        acquisition=STEM,
        phases=[("labradorite", "Na0.4Ca0.6Al1.6Si2.4O8", 2.69),
                ("augite", "Ca0.9Mg0.8Fe0.25Al0.1Si1.95O6", 3.40),
                ("olivine_fo80", "Mg1.6Fe0.4SiO4", 3.47), ("ilmenite", "FeTiO3", 4.72)],
        N=30, shape=(128, 128), seed=71293, pixel_nm=10.0, thickness_nm=110.0,
        layout=dict(kind="grains", n_grains=32, min_dist=14.0, warp_px=3.0, warp_len=6.0,
                    blur_px=1.0, grain_share={1: 0.3, 2: 0.22},
                    groups=[dict(phase=3, n=7, r=(3.0, 6.0), asym=(1.0, 1.6), touch=0.0,
                                 gap=3.0)]),
        description="basalt: labradorite, augite and olivine Fo80 grains with ilmenite laths"),
    "skarn_h50": dict(
        acquisition=STEM,
        phases=[("wollastonite", "CaSiO3", 2.91), ("grossular", "Ca3Al2Si3O12", 3.59),
                ("calcite", "CaCO3", 2.71), ("magnetite", "Fe3O4", 5.18)],
        N=50, shape=(128, 128), seed=71411, pixel_nm=10.0, thickness_nm=90.0,
        layout=dict(kind="grains", n_grains=28, min_dist=15.0, warp_px=3.0, warp_len=7.0,
                    blur_px=1.0, grain_share={1: 0.32, 2: 0.25},
                    groups=[dict(phase=3, n=6, r=(3.0, 6.5), asym=(1.0, 1.3), touch=0.0,
                                 gap=3.0)]),
        description="calc-silicate skarn: wollastonite, grossular and calcite grains with "
                    "magnetite"),
    "carbonate_h100": dict(
        acquisition=STEM,
        phases=[("calcite", "CaCO3", 2.71), ("dolomite", "CaMgC2O6", 2.84),
                ("siderite", "FeCO3", 3.96), ("fluorapatite", "Ca5P3O12F", 3.19)],
        N=100, shape=(128, 128), seed=71533, pixel_nm=10.0, thickness_nm=100.0,
        layout=dict(kind="particles", groups=[
            dict(phase=1, n=7, r=(6.0, 12.0), asym=(1.0, 1.3), touch=0.2),
            dict(phase=2, n=7, r=(4.0, 9.0), asym=(1.0, 1.3), touch=0.3, touch_to=[1]),
            dict(phase=3, n=6, r=(3.0, 6.0), asym=(1.0, 1.2), touch=0.0, gap=3.0)]),
        description="limestone: calcite with dolomite rhombs, siderite (partly on dolomite) "
                    "and fluorapatite grains"),
    "cemented_carbide_h100": dict(
        acquisition=STEM,
        phases=[("cobalt", "Co", 8.90), ("tungsten carbide", "WC", 15.63),
                ("titanium carbide", "TiC", 4.93)],
        N=100, shape=(128, 128), seed=71677, pixel_nm=8.0, thickness_nm=60.0,
        layout=dict(kind="particles", groups=[
            dict(phase=1, n=14, r=(5.0, 10.0), asym=(1.0, 1.4), touch=0.4, touch_to=[1]),
            dict(phase=2, n=8, r=(4.0, 8.0), asym=(1.0, 1.3), touch=0.3)]),
        description="cemented carbide: WC and TiC grains in a cobalt binder"),
    "fe_oxide_h60": dict(
        acquisition=STEM,
        phases=[("quartz", "SiO2", 2.65), ("hematite", "Fe2O3", 5.26),
                ("magnetite", "Fe3O4", 5.18), ("goethite", "FeO2", 4.27)],
        N=60, shape=(128, 128), seed=71803, pixel_nm=10.0, thickness_nm=80.0,
        layout=dict(kind="particles", groups=[
            dict(phase=1, n=7, r=(6.0, 11.0), asym=(1.0, 1.3), touch=0.2),
            dict(phase=2, n=7, r=(5.0, 10.0), asym=(1.0, 1.3), touch=0.3, touch_to=[1]),
            dict(phase=3, n=6, r=(4.0, 8.0), asym=(1.0, 1.3), touch=0.3, touch_to=[1, 2])]),
        description="banded iron ore: hematite, magnetite (partly on hematite) and goethite "
                    "(an alteration rim on both) in quartz; goethite's H is invisible"),
    "barite_vein_h60": dict(
        acquisition=STEM,
        phases=[("quartz", "SiO2", 2.65), ("barite", "BaSO4", 4.48),
                ("fluorite", "CaF2", 3.18), ("sphalerite", "ZnS", 4.05)],
        N=60, shape=(128, 128), seed=71951, pixel_nm=10.0, thickness_nm=90.0,
        layout=dict(kind="particles", groups=[
            dict(phase=1, n=8, r=(5.0, 11.0), asym=(1.0, 1.4), touch=0.2),
            dict(phase=2, n=7, r=(5.0, 10.0), asym=(1.0, 1.3), touch=0.3),
            dict(phase=3, n=6, r=(3.0, 7.0), asym=(1.0, 1.2), touch=0.3, touch_to=[1])]),
        description="hydrothermal vein: barite, fluorite and sphalerite in quartz"),
    "heavy_sand_h50": dict(
        acquisition=STEM,
        phases=[("quartz", "SiO2", 2.65), ("zircon", "ZrSiO4", 4.65),
                ("rutile", "TiO2", 4.23), ("almandine", "Fe3Al2Si3O12", 4.32)],
        N=50, shape=(128, 128), seed=72089, pixel_nm=12.0, thickness_nm=100.0,
        layout=dict(kind="particles", groups=[
            dict(phase=1, n=7, r=(4.0, 9.0), asym=(1.0, 1.4), touch=0.1),
            dict(phase=2, n=7, r=(4.0, 8.0), asym=(1.0, 1.3), touch=0.1),
            dict(phase=3, n=6, r=(6.0, 11.0), asym=(1.0, 1.2), touch=0.1)]),
        description="heavy-mineral sand: zircon, rutile and almandine grains in quartz"),
    "steel_h300kv": dict(
        acquisition=STEM300,
        phases=[("iron", "Fe", 7.87), ("cementite", "Fe3C", 7.69),
                ("MnS", "MnS", 4.05), ("alumina", "Al2O3", 3.99)],
        N=60, shape=(128, 128), seed=72221, pixel_nm=8.0, thickness_nm=70.0,
        layout=dict(kind="particles", groups=[
            dict(phase=1, n=10, r=(5.0, 10.0), asym=(1.0, 1.8), touch=0.3, touch_to=[1]),
            dict(phase=2, n=6, r=(2.5, 5.0), asym=(1.5, 2.5), elong="col", touch=0.0, gap=3.0),
            dict(phase=3, n=5, r=(2.5, 4.5), asym=(1.0, 1.2), touch=0.4, touch_to=[2])]),
        description="carbon steel at 300 keV: ferrite with cementite, MnS stringers and "
                    "alumina inclusions (partly on MnS)"),
    "sem_granite_h30": dict(
        acquisition=SEM_LIKE,
        phases=[("quartz", "SiO2", 2.65), ("albite", "NaAlSi3O8", 2.62),
                ("orthoclase", "KAlSi3O8", 2.56), ("biotite", "KMg1.5Fe1.5AlSi3O12", 3.09),
                ("zircon", "ZrSiO4", 4.65)],
        N=30, shape=(128, 128), seed=72367, pixel_nm=50.0, thickness_nm=250.0,
        layout=dict(kind="grains", n_grains=22, min_dist=18.0, warp_px=4.0, warp_len=8.0,
                    blur_px=1.5, grain_share={1: 0.3, 2: 0.25, 3: 0.15},
                    groups=[dict(phase=4, n=5, r=(3.0, 5.0), asym=(1.0, 1.4), touch=0.0,
                                 gap=3.0)]),
        description="SEM-like (100 keV, 250 nm, 35 deg, coarse grains, 30 counts/px): quartz, "
                    "albite, orthoclase and biotite grains with zircon"),
    "sem_gold_ore_h30": dict(
        acquisition=SEM_LIKE,
        phases=[("quartz", "SiO2", 2.65), ("arsenopyrite", "FeAsS", 6.07),
                ("pyrite", "FeS2", 5.01), ("sphalerite", "ZnS", 4.05)],
        N=30, shape=(128, 128), seed=72497, pixel_nm=50.0, thickness_nm=250.0,
        layout=dict(kind="particles", groups=[
            dict(phase=1, n=7, r=(6.0, 12.0), asym=(1.0, 1.5), touch=0.2),
            dict(phase=2, n=7, r=(6.0, 11.0), asym=(1.0, 1.3), touch=0.3, touch_to=[1]),
            dict(phase=3, n=5, r=(4.0, 8.0), asym=(1.0, 1.2), touch=0.0, gap=3.0)]),
        description="SEM-like (100 keV, 250 nm, 35 deg, 30 counts/px): arsenopyrite, pyrite "
                    "and sphalerite in quartz (As L on the Mg/Al region, As K)"),
}  # fmt: skip

TRUTH_NAMES = {"biotite": {"accept_series": "biotite"}}
"""Phases scored as a whole series: any end-member fraction of the series is right."""


def case_config(module, name: str, cases: dict | None = None) -> dict:
    """The shared script's configuration of a case of ``cases`` (default :data:`CASES`; its
    ``phase_table``), with espm given the atomic fractions of each formula (the wt % kept as
    ``elts_wt``)."""
    spec = copy.deepcopy((CASES if cases is None else cases)[name])
    chem = module.phase_table(spec.pop("phases"))
    chem["elts_wt"] = chem["elts"]
    chem["elts"] = [atomic_fractions(d, module.AW) for d in chem["elts_wt"]]
    spec.pop("acquisition")
    return dict(chem=chem, **spec)


def make(
    module, name: str, shared_model_params, cases: dict | None = None,
    truth_names: dict | None = None, generator: str = "espm_heldout.py",
) -> dict:  # fmt: skip
    """Generate one case of ``cases`` (default :data:`CASES`) with the shared ``make_case`` at
    the case's acquisition (``shared_model_params``: the shared script's own ``model_params``);
    ``truth_names`` (default :data:`TRUTH_NAMES`): per true phase, what its name is scored
    against beside its own name."""
    cases = CASES if cases is None else cases
    truth_names = TRUTH_NAMES if truth_names is None else truth_names
    acquisition = cases[name]["acquisition"]
    module.E0 = acquisition["beam_kev"]
    module.TOA_DEG = acquisition["takeoff_deg"]
    cfg = case_config(module, name, cases)

    def model_params(density, thickness_nm):
        params = shared_model_params(density, thickness_nm)
        params["db_name"] = acquisition["db"]
        params["E0"] = acquisition["beam_kev"]
        params["params_dict"]["Abs"]["atomic_fraction"] = True  # the fractions are atomic
        return params

    module.model_params = model_params
    meta = module.make_case(name, cfg)
    phases = meta["phases"]
    meta["compositions_at"] = meta["compositions_wt"]  # what espm was given
    meta["compositions_wt"] = dict(zip(phases, cfg["chem"]["elts_wt"], strict=True))
    meta["espm_fraction_convention"] = "atomic"
    meta["truth_names"] = {p: {"name": p, **truth_names.get(p, {})} for p in phases}
    meta["acquisition"] = acquisition
    meta["generator"] += f" via napari-sigma benchmarks/{generator} (atomic fractions)"
    (module.HERE / name / "meta.json").write_text(
        json.dumps(meta, indent=1, default=module._json_default)
    )
    return meta


def with_seed_offset(cases: dict, offset: int) -> dict:
    """The cases drawn again: every seed + ``offset`` (layout and counts), the same phases;
    a case ``NAME`` becomes ``NAME_s<offset>`` (offset 0: ``cases`` as they are)."""
    if not offset:
        return cases
    return {f"{name}_s{offset}": {**case, "seed": case["seed"] + offset}
            for name, case in cases.items()}  # fmt: skip


def generate_set(
    doc: str, default_out: Path, cases: dict, truth_names: dict, tables: tuple[dict, dict],
    generator: str,
) -> None:  # fmt: skip
    """A later held-out set's command line: ``[case ...] [--out DIR] [--seed-offset N]``
    (another draw of every case: a new seed, the same phases); ``tables``: the atomic weights
    and numbers its elements add to the shared script's."""
    offset = 0
    if "--seed-offset" in sys.argv:
        at = sys.argv.index("--seed-offset")
        offset = int(sys.argv[at + 1])
        del sys.argv[at : at + 2]
    names, module = case_arguments(doc.splitlines()[0], default_out)
    module.AW.update(tables[0])
    module.Z.update(tables[1])
    shared_model_params = module.model_params
    drawn = with_seed_offset(cases, offset)
    for name in names or list(drawn):
        meta = make(module, name, shared_model_params, drawn, truth_names, generator)
        _print_case(name, meta)


def _print_case(name: str, meta: dict) -> None:
    areas = ", ".join(f"{p} {100 * v:.2f}%" for p, v in meta["area_frac_labels"].items())
    print(f"{name}: {meta['beam_kev']} keV, {meta['mean_counts_per_px']:.1f} counts/px, "
          f"areas {areas}", flush=True)  # fmt: skip


def main() -> None:
    cases, module = case_arguments(__doc__.splitlines()[0], DEFAULT_OUT)
    module.AW.update(EXTRA_AW)  # elements the shared script's tables lack
    module.Z.update(EXTRA_Z)
    shared_model_params = module.model_params
    for name in cases or list(CASES):
        _print_case(name, make(module, name, shared_model_params))


if __name__ == "__main__":
    main()
