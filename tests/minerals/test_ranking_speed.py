"""The ranking's prepared comparisons (minerals/scores.py) give `_chi2`, `_carbon_scaled` and
`_comparable` bit for bit, and make the measured side once."""

import random

import numpy as np
import pytest

from napari_sigma.minerals import scores
from napari_sigma.minerals.library import load_library
from napari_sigma.minerals.scores import (
    MeasuredScales,
    _carbon_scaled,
    _carbon_scales,
    _chi2,
    _comparable,
    _library_comparable,
    _Measured,
    _rescaled,
)


def _old_carbon_scaled(wt, err, library):
    # the function as it was before the prepared form (sixteenth session), written out
    best = None
    for _f, scaled, prior in _carbon_scales(wt, library.get("C", 0.0) > 0 and len(wt) > 1):
        w, e = (wt, err) if scaled is None else _rescaled(wt, err, scaled)
        chi2, n = _chi2(w, e, library)
        if best is None or chi2 + prior < best[0]:
            best = (chi2 + prior, n)
    return best


def _measurements():
    rng = random.Random(3)
    elements = ["O", "Si", "Al", "Fe", "Ca", "Na", "K", "Mg", "S", "C", "Ti", "Cu", "Zr"]
    found = []
    for size in (1, 2, 3, 5, 8, 11):
        for _ in range(6):
            picked = rng.sample(elements, size)
            values = [rng.choice([rng.uniform(0.01, 60.0), 0.0, 1e-9]) for _ in picked]
            wt = dict(zip(picked, values, strict=True))
            if rng.random() < 0.3:
                wt[picked[0]] = -0.0 if rng.random() < 0.5 else -0.5
            err = {el: rng.uniform(0.0, 3.0) for el in picked if rng.random() < 0.8}
            if rng.random() < 0.3:
                err["Pb"] = 0.7  # an error for an element not measured
            found.append((wt, err))
    found.append(({"C": 100.0}, {"C": 2.0}))
    found.append(({}, {}))
    return found


def _libraries():
    library = load_library()
    measured = {"O", "Si", "Al", "Fe", "C", "S"}
    found = [_comparable(m.composition, measured) for m in library.minerals.values()]
    return [*found, {}, {"Si": 0.0, "O": 100.0}, {"Zr": 50.0, "C": 50.0}]


def test_prepared_chi2_equals_chi2_bit_for_bit():
    compared = 0
    for wt, err in _measurements():
        prepared = _Measured(wt, err)
        for library in _libraries():
            assert prepared.chi2(library) == _chi2(wt, err, library)
            compared += 1
    assert compared > 10000


def test_prepared_carbon_scales_equal_carbon_scaled_bit_for_bit():
    compared = scaled = 0
    for wt, err in _measurements():
        prepared = MeasuredScales(wt, err)
        for library in _libraries():
            expected = _old_carbon_scaled(wt, err, library)
            assert prepared.best_chi2(library) == expected
            assert _carbon_scaled(wt, err, library) == expected
            compared += 1
            scaled += library.get("C", 0.0) > 0 and wt.get("C", 0.0) > 0 and len(wt) > 1
    assert compared > 10000 and scaled > 100


def test_the_measured_side_is_prepared_once(monkeypatch):
    calls = []
    real = scores._rescaled
    monkeypatch.setattr(scores, "_rescaled", lambda *a: calls.append(1) or real(*a))
    prepared = MeasuredScales({"C": 12.0, "O": 48.0, "Ca": 40.0}, {"C": 1.0, "O": 2.0})
    calcite = {"C": 12.0, "O": 48.0, "Ca": 40.0}
    for _ in range(5):
        prepared.best_chi2(calcite)
    assert len(calls) == len(scores.CARBON_SCALES)  # once per scale, not per comparison


@pytest.mark.parametrize(
    "measured", [set(), {"O"}, {"C", "O"}, {"Si", "Fe"}, {"C", "N", "O", "Si"}, {"N"}]
)
def test_library_comparable_equals_comparable(measured):
    for mineral in load_library().minerals.values():
        first = _library_comparable(mineral.composition, measured)
        again = _library_comparable(mineral.composition, measured)
        expected = _comparable(mineral.composition, measured)
        assert first == expected and again == expected
        assert list(again) == list(expected)  # the same order
        assert np.array([*again.values()]).tobytes() == np.array([*expected.values()]).tobytes()
        assert all(type(v) is type(expected[k]) for k, v in again.items())
        assert again is not first  # a new dict each call: the caller may keep or change it
        again.clear()
        assert _library_comparable(mineral.composition, measured) == expected
