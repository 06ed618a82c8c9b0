"""A fifth held-out espm set for the names and numbers (issue #10): six maps no earlier set has.

Made like :mod:`espm_heldout4` (the shared ``make_dev_cases.py``'s own ``make_case`` through
:func:`espm_heldout.make`, espm 1.1.3's physics, espm given the ATOMIC fractions of each formula;
``cube.hspy``, ``truth.npz``, ``meta.json`` with ``compositions_wt``, ``compositions_at`` and
``truth_names``), with new sample mixes, new phases and new seeds (91000-96999). Written and
committed (names20b, twentieth session) before napari-sigma was run on any of it; not to be
changed after (add a case or a seed instead).

The maps (no earlier set has their mix; 23 of the 27 true phases are in no earlier set or
espm_dev case: only quartz, twice, magnetite and M23C6 were met before):

- ``sem_granite_h45``: an S-type (peraluminous) granite: quartz, oligoclase, cordierite,
  sillimanite and small xenotime-(Y) grains (Y L beside Si K and P K);
- ``skarn_h70``: an iron skarn: andradite with hedenbergite, ilvaite and scheelite (W M on Si K's
  side); ilvaite is not in the packaged library;
- ``sem_cu_slag_h50``: a copper smelter slag: Fe-Ca-Al silicate glass with fayalitic olivine
  laths, magnetite, bornite (matte) droplets and copper prills;
- ``weld_308_h90``: a 308L stainless weld metal: austenite with delta ferrite, M23C6 carbides and
  Mn silicate (MnSiO3) inclusions;
- ``sn_ore_h60``: a polymetallic tin vein: quartz with stannite, tetrahedrite (Sb L beside Sn L),
  molybdenite (Mo L on S K) and cassiterite;
- ``solder_h80``: a Sn-Ag-Cu solder joint's lamella: beta-tin with Cu6Sn5 and Ag3Sn
  intermetallics and the copper pad; the two intermetallics are not in the packaged library.

Formulas (the truth): minerals from the IMA list (RRUFF IMA database) and Deer, Howie & Zussman,
*An Introduction to the Rock-Forming Minerals*, 3rd ed. (2013): oligoclase An20
Na0.8Ca0.2Al1.2Si2.8O8, cordierite Mg2Al4Si5O18, sillimanite Al2SiO5, xenotime-(Y) YPO4,
andradite Ca3Fe2Si3O12, hedenbergite CaFeSi2O6, ilvaite CaFe3(Si2O7)O(OH), scheelite CaWO4,
Fa95 olivine Fe1.9Mg0.1SiO4, magnetite Fe3O4, bornite Cu5FeS4, stannite Cu2FeSnS4, tetrahedrite
Cu12Sb4S13, molybdenite MoS2, cassiterite SnO2, rhodonite MnSiO3; the slag glass is a typical
interstitial glass of a fayalitic copper slag (Si-Fe-Al-Ca-Mg-K, O by charge balance; cf.
B. Gorai et al., Resour. Conserv. Recycl. 39, 299 (2003)); the weld's phases are typical
308L weld metal compositions (austenite ~19 Cr 10 Ni 1.8 Mn 0.7 Si wt %, delta ferrite enriched
in Cr and depleted in Ni; J. C. Lippold & D. J. Kotecki, *Welding Metallurgy and Weldability
of Stainless Steels* (2005), ch. 4) and (Cr,Fe)23C6, written as atom counts; the solder's
intermetallics are Cu6Sn5 (eta) and Ag3Sn (epsilon) as named (K. N. Tu, *Solder Joint
Technology* (2007)). A hydrous mineral is given as its visible part (espm has no H): ilvaite ->
CaFe3Si2O9.

espm has thin-foil physics only (cross-section tables for 100, 200 and 300 keV beams): the two
``sem_`` cases are, like the earlier sets', SEM-LIKE: coarse 50 nm pixels, 250 nm foil, 100 keV,
35 degree take-off.

Scoring (``truth_names``, read by ``espm_heldout_eval.py``): a true phase's name is right when
``bench_quant.name_is_right`` accepts it for ``name``, or it is one of ``accept`` (the same
phase under another name, a polymorph EDS cannot tell apart, a series member of the stated
range: oligoclase is plagioclase An10-30), or, for a phase the packaged library does not hold
(``accept_unknown``: ilvaite, the slag glass, the weld's austenite and delta ferrite, Cu6Sn5,
Ag3Sn), "unknown (formula)".

    /tmp/espmvenv/bin/python benchmarks/espm_heldout5.py [case ...] [--out DIR] [--seed-offset N]
    python benchmarks/espm_heldout_eval.py --heldout ~/.cache/napari-sigma/heldout5 --run --out DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from espm_heldout import EXTRA_AW, EXTRA_Z, SEM_LIKE, STEM, generate_set

DEFAULT_OUT = Path.home() / ".cache" / "napari-sigma" / "heldout5"

# standard atomic weights (IUPAC 2021) and atomic numbers beside espm_heldout's
AW5 = {**EXTRA_AW, "Y": 88.906, "Mo": 95.95, "Ag": 107.87, "Sn": 118.71, "Sb": 121.76}
Z5 = {**EXTRA_Z, "Y": 39, "Mo": 42, "Ag": 47, "Sn": 50, "Sb": 51}

CASES = {
    "sem_granite_h45": dict(
        acquisition=SEM_LIKE,
        phases=[("quartz", "SiO2", 2.65), ("oligoclase", "Na0.8Ca0.2Al1.2Si2.8O8", 2.65),
                ("cordierite", "Mg2Al4Si5O18", 2.60), ("sillimanite", "Al2SiO5", 3.24),
                ("xenotime-(Y)", "YPO4", 4.75)],
        N=45, shape=(128, 128), seed=91237, pixel_nm=50.0, thickness_nm=250.0,
        layout=dict(kind="grains", n_grains=25, min_dist=17.0, warp_px=4.0, warp_len=8.0,
                    blur_px=1.5, grain_share={1: 0.28, 2: 0.15, 3: 0.10},
                    groups=[dict(phase=4, n=5, r=(2.5, 4.5), asym=(1.0, 1.4), touch=0.0,
                                 gap=3.0)]),
        description="SEM-like (100 keV, 250 nm, 35 deg, 45 counts/px): S-type granite with "
                    "quartz, oligoclase, cordierite and sillimanite grains and five small "
                    "xenotime-(Y) grains"),
    "skarn_h70": dict(
        acquisition=STEM,
        phases=[("andradite", "Ca3Fe2Si3O12", 3.86), ("hedenbergite", "CaFeSi2O6", 3.56),
                ("ilvaite", "CaFe3Si2O9", 4.01), ("scheelite", "CaWO4", 6.10)],
        N=70, shape=(128, 128), seed=92371, pixel_nm=10.0, thickness_nm=90.0,
        layout=dict(kind="grains", n_grains=27, min_dist=15.0, warp_px=3.0, warp_len=7.0,
                    blur_px=1.0, grain_share={1: 0.30, 2: 0.14},
                    groups=[dict(phase=3, n=6, r=(3.0, 6.0), asym=(1.0, 1.3), touch=0.0,
                                 gap=3.0)]),
        description="iron skarn: andradite, hedenbergite and ilvaite grains with scheelite; "
                    "W M on Si K's side"),
    "sem_cu_slag_h50": dict(
        acquisition=SEM_LIKE,
        phases=[("slag glass", "Si7Al2Fe3Ca1.5Mg0.5K0.5O22.25", 3.00),
                ("olivine_fo05", "Fe1.9Mg0.1SiO4", 4.30), ("magnetite", "Fe3O4", 5.18),
                ("bornite", "Cu5FeS4", 5.09), ("copper", "Cu", 8.96)],
        N=50, shape=(128, 128), seed=93413, pixel_nm=50.0, thickness_nm=250.0,
        layout=dict(kind="particles", groups=[
            dict(phase=1, n=10, r=(4.0, 9.0), asym=(1.5, 3.0), touch=0.2),
            dict(phase=2, n=7, r=(2.5, 5.0), asym=(1.0, 1.2), touch=0.3, touch_to=[1]),
            dict(phase=3, n=6, r=(3.0, 6.0), asym=(1.0, 1.1), touch=0.0, gap=3.0),
            dict(phase=4, n=4, r=(2.0, 3.5), asym=(1.0, 1.1), touch=0.5, touch_to=[3])]),
        description="SEM-like (100 keV, 250 nm, 35 deg, 50 counts/px): copper smelter slag: "
                    "silicate glass with fayalitic olivine laths, magnetite (partly on the "
                    "olivine), bornite matte droplets and copper prills (partly on the matte)"),
    "weld_308_h90": dict(
        acquisition=STEM,
        phases=[("weld austenite", "Fe67.4Cr20.1Ni9.4Mn1.8Si1.3", 7.90),
                ("delta ferrite", "Fe65.6Cr25.9Ni5.1Mn1.6Si1.8", 7.75),
                ("chromium carbide M23C6", "Cr17.5Fe5Ni0.5C6", 6.97),
                ("rhodonite", "MnSiO3", 3.60)],
        N=90, shape=(128, 128), seed=94507, pixel_nm=8.0, thickness_nm=70.0,
        layout=dict(kind="grains", n_grains=24, min_dist=17.0, warp_px=4.0, warp_len=8.0,
                    blur_px=1.0, grain_share={1: 0.22},
                    groups=[dict(phase=2, n=6, r=(2.0, 3.5), asym=(1.2, 2.0), touch=0.0,
                                 gap=2.0),
                            dict(phase=3, n=5, r=(2.5, 4.5), asym=(1.0, 1.1), touch=0.0,
                                 gap=2.0)]),
        description="308L stainless weld metal: austenite and delta ferrite grains, M23C6 "
                    "carbides and Mn silicate inclusions; 90 counts/px"),
    "sn_ore_h60": dict(
        acquisition=STEM,
        phases=[("quartz", "SiO2", 2.65), ("stannite", "Cu2FeSnS4", 4.40),
                ("tetrahedrite", "Cu12Sb4S13", 4.97), ("molybdenite", "MoS2", 5.00),
                ("cassiterite", "SnO2", 6.95)],
        N=60, shape=(128, 128), seed=95619, pixel_nm=10.0, thickness_nm=90.0,
        layout=dict(kind="particles", groups=[
            dict(phase=1, n=7, r=(5.0, 10.0), asym=(1.0, 1.3), touch=0.2),
            dict(phase=2, n=6, r=(3.0, 7.0), asym=(1.0, 1.3), touch=0.4, touch_to=[1]),
            dict(phase=3, n=5, r=(3.0, 6.0), asym=(1.5, 3.0), touch=0.0, gap=3.0),
            dict(phase=4, n=6, r=(3.0, 7.0), asym=(1.0, 1.2), touch=0.1)]),
        description="tin vein: quartz with stannite, tetrahedrite (partly on stannite), "
                    "molybdenite flakes and cassiterite; Sb L beside Sn L, Mo L on S K"),
    "solder_h80": dict(
        acquisition=STEM,
        phases=[("tin", "Sn", 7.29), ("Cu6Sn5", "Cu6Sn5", 8.28), ("Ag3Sn", "Ag3Sn", 9.93),
                ("copper", "Cu", 8.96)],
        N=80, shape=(128, 128), seed=96733, pixel_nm=10.0, thickness_nm=80.0,
        layout=dict(kind="particles", groups=[
            dict(phase=3, n=3, r=(8.0, 12.0), asym=(1.0, 1.4), touch=0.1),
            dict(phase=1, n=8, r=(4.0, 7.0), asym=(1.0, 1.8), touch=0.4, touch_to=[3]),
            dict(phase=2, n=6, r=(2.0, 4.0), asym=(1.5, 3.0), touch=0.0, gap=2.0)]),
        description="Sn-Ag-Cu solder joint lamella: beta-tin with Cu6Sn5 scallops on copper "
                    "pad fragments and Ag3Sn plates; 80 counts/px"),
}  # fmt: skip

TRUTH_NAMES = {
    # oligoclase is plagioclase An10-30 (Deer, Howie & Zussman 2013)
    "oligoclase": {"accept": [f"plagioclase An{an}" for an in range(10, 31)]},
    "sillimanite": {"accept": ["andalusite", "kyanite"]},  # Al2SiO5 polymorphs
    "xenotime-(Y)": {"accept": ["xenotime"]},
    "ilvaite": {"accept_unknown": True},
    "slag glass": {"accept": ["copper slag", "fayalitic slag"], "accept_unknown": True},
    "olivine_fo05": {"accept": ["fayalite"]},  # bench_quant: "olivine FoN", |N - 5| <= 10
    "weld austenite": {"accept": ["stainless steel 304"], "accept_unknown": True},
    "delta ferrite": {"accept": ["ferritic stainless steel"], "accept_unknown": True},
    "tin": {"accept": ["lead-free solder"]},  # beta-tin of a SAC solder
    "Cu6Sn5": {"accept_unknown": True},
    "Ag3Sn": {"accept_unknown": True},
}
"""What each true phase's name is scored against beside ``bench_quant.name_is_right``."""


def main() -> None:
    generate_set(__doc__, DEFAULT_OUT, CASES, TRUTH_NAMES, (AW5, Z5), "espm_heldout5.py")


if __name__ == "__main__":
    main()
