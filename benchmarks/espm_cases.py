"""Regenerate the five espm_dev cases with the ATOMIC fractions of their wt % compositions.

espm 1.1.3 multiplies each element's fraction by a per-atom cross-section (its line weights are
atomic fractions; its own concentration report calls them at.%). ``make_dev_cases.py`` of
``shared/data/espm_dev`` hands espm the mass fractions (``compositions_wt``), so its spectra
correspond to compositions in which every mass fraction was read as an atomic one. This script
runs the shared script's own ``make_case`` (same phases, formulas, densities, bremsstrahlung,
geometry, seeds) but gives espm the atomic fractions computed from ``compositions_wt`` (with
``atomic_fraction: True`` so espm's continuum absorption converts them back to mass), so the
simulated spectra are those of the stated wt % compositions. ``meta.json`` keeps
``compositions_wt`` (the truth for a wt % quantification) and adds ``compositions_at`` (what
espm was given) and ``espm_fraction_convention: "atomic"``.

Needs a separate venv with espm (not the project's)::

    python3 -m venv /tmp/espmvenv
    /tmp/espmvenv/bin/pip install espm==1.1.3 -c shared/data/espm_dev/requirements-espm.lock.txt
    /tmp/espmvenv/bin/python benchmarks/espm_cases.py [--out ~/.cache/napari-sigma/espm_atomic]

then, with the project's venv::

    python benchmarks/bench_quant.py --espm-only --espm-dir ~/.cache/napari-sigma/espm_atomic
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
from pathlib import Path

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "espm_dev"
DEFAULT_OUT = Path.home() / ".cache" / "napari-sigma" / "espm_atomic"


def load_shared_script(folder: Path):
    """Import ``make_dev_cases.py`` of the shared espm_dev folder as a module."""
    spec = importlib.util.spec_from_file_location("make_dev_cases", folder / "make_dev_cases.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def atomic_fractions(wt: dict[str, float], atomic_weights: dict[str, float]) -> dict[str, float]:
    """Mass fractions -> atomic fractions (n_i = w_i / A_i, normalised), 5 decimals like the script."""
    moles = {el: w / atomic_weights[el] for el, w in wt.items()}
    total = sum(moles.values())
    return {el: round(n / total, 5) for el, n in moles.items()}


def atomic_case(module, name: str) -> dict:
    """The shared case's configuration with espm given the atomic fractions of its wt % chemistry.

    Everything but the fractions handed to espm stays as the shared script chose it: bremsstrahlung
    parameters (from the mass-weighted mean Z of the wt % composition), count-rate modifiers and
    the geometry (drawn from the case's seed before and independently of the chemistry)."""
    cfg = copy.deepcopy(module.CASES[name])
    chem = cfg["chem"]
    chem["elts_wt"] = chem["elts"]
    chem["elts"] = [atomic_fractions(d, module.AW) for d in chem["elts_wt"]]
    return cfg


def case_arguments(description: str, default_out: Path):
    """``(cases, module)`` from the command line: the case names asked for (all when none) and
    the shared ``make_dev_cases.py`` (``--shared``) set to write under ``--out``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("cases", nargs="*")
    parser.add_argument("--shared", type=Path, default=SHARED)
    parser.add_argument("--out", type=Path, default=default_out)
    args = parser.parse_args()
    module = load_shared_script(args.shared)
    module.HERE = args.out.expanduser()  # make_case writes <HERE>/<case>/
    return args.cases, module


def main() -> None:
    cases, module = case_arguments(__doc__.splitlines()[0], DEFAULT_OUT)
    shared_model_params = module.model_params

    def model_params(density, thickness_nm):
        params = shared_model_params(density, thickness_nm)
        params["params_dict"]["Abs"]["atomic_fraction"] = True  # the fractions are atomic now
        return params

    module.model_params = model_params
    for name in cases or list(module.CASES):
        cfg = atomic_case(module, name)
        meta = module.make_case(name, cfg)
        phases = meta["phases"]
        meta["compositions_at"] = meta["compositions_wt"]  # what espm was given
        meta["compositions_wt"] = dict(zip(phases, cfg["chem"]["elts_wt"], strict=True))
        meta["espm_fraction_convention"] = "atomic"
        meta["generator"] += " via napari-sigma benchmarks/espm_cases.py (atomic fractions)"
        (module.HERE / name / "meta.json").write_text(
            json.dumps(meta, indent=1, default=module._json_default)
        )
        areas = ", ".join(f"{p} {100 * v:.2f}%" for p, v in meta["area_frac_labels"].items())
        print(f"{name}: {meta['mean_counts_per_px']:.1f} counts/px, areas {areas}", flush=True)


if __name__ == "__main__":
    main()
