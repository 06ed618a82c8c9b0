"""The automated-mineralogy tables on hand-made label images."""

import numpy as np
import pytest

from napari_sigma.minerals.mineralogy import boundary_lengths, mineral_map, mineralogy


def _field():
    labels = np.zeros((20, 30), dtype=np.int32)
    labels[:, :10] = 1  # quartz, touching the border
    labels[5:10, 15:20] = 2  # pyrite grain 1, inside
    labels[12:15, 22:25] = 3  # a second pyrite phase (same mineral)
    return labels


NAMES = {1: "quartz", 2: "pyrite", 3: "pyrite"}


def test_modal_areas_equal_label_areas_and_phases_of_one_mineral_merge():
    labels = _field()
    tables = mineralogy(labels, NAMES, 0.5, densities={"quartz": 2.65, "pyrite": 5.01})
    modal = {row["mineral"]: row for row in tables.modal}
    assert modal["quartz"]["pixels"] == 200
    assert modal["pyrite"]["pixels"] == 25 + 9
    assert modal["unassigned"]["pixels"] == 600 - 234
    assert modal["quartz"]["area_percent"] == pytest.approx(100 * 200 / 600)
    assert modal["pyrite"]["grains"] == 2 and modal["quartz"]["grains"] == 1
    mass = {"quartz": 200 * 2.65, "pyrite": 34 * 5.01}
    assert modal["pyrite"]["wt_percent"] == pytest.approx(100 * mass["pyrite"] / sum(mass.values()))


def test_grain_sizes_perimeters_and_border_contact():
    tables = mineralogy(_field(), NAMES, 0.5)
    grains = {(g["mineral"], g["area_px"]): g for g in tables.grains}
    square = grains[("pyrite", 25)]
    assert square["area_um2"] == pytest.approx(25 * 0.25)
    assert square["ecd_um"] == pytest.approx(2 * np.sqrt(25 / np.pi) * 0.5)
    assert square["perimeter_um"] == pytest.approx(20 * 0.5)
    assert not square["touches_border"]
    assert grains[("quartz", 200)]["touches_border"]


def test_association_counts_shared_pixel_sides():
    minerals, names = mineral_map(_field(), NAMES)
    lengths = boundary_lengths(minerals, len(names))
    assert lengths[1, 0] == 20  # quartz column 9 against background column 10
    rows = {
        (r["mineral_a"], r["mineral_b"]): r for r in mineralogy(_field(), NAMES, 1.0).association
    }
    assert rows[("background", "quartz")]["boundary_px"] == 20
    assert rows[("background", "pyrite")]["boundary_px"] == 20 + 12
    assert ("quartz", "pyrite") not in rows


def test_particles_on_a_substrate_get_liberation_classes():
    labels = np.full((30, 30), 1, dtype=np.int32)  # carbon substrate
    labels[2:8, 2:8] = 2  # a liberated quartz particle
    labels[15:25, 15:25] = 2
    labels[15:25, 15:19] = 3  # a quartz-pyrite middling
    names = {1: "carbon", 2: "quartz", 3: "pyrite"}
    tables = mineralogy(labels, names, 1.0, groups={"carbon": "carbon"})
    particles = sorted(tables.particles, key=lambda p: p["area_px"])
    assert [p["area_px"] for p in particles] == [36, 100]
    assert particles[0]["liberation"] == "liberated" and particles[0]["main_mineral"] == "quartz"
    assert particles[1]["liberation"] == "middling"
    assert particles[1]["minerals"] == "quartz 60.0; pyrite 40.0"


def test_abundance_areas_and_deportment():
    labels = _field()
    fractions = np.array([(labels == k).mean() for k in (1, 2, 3)])
    tables = mineralogy(
        labels, NAMES, 1.0, fractions=fractions,
        compositions={"quartz": {"Si": 0.47, "O": 0.53}, "pyrite": {"Fe": 0.47, "S": 0.53}},
    )  # fmt: skip
    modal = {row["mineral"]: row for row in tables.modal}
    assert modal["quartz"]["abundance_area_percent"] == pytest.approx(100 * 200 / 600)
    iron = [r for r in tables.deportment if r["element"] == "Fe"]
    assert iron == [pytest.approx({"element": "Fe", "mineral": "pyrite",
                                   "element_mass_percent": 100.0,
                                   "sample_wt_percent": iron[0]["sample_wt_percent"]})]  # fmt: skip


def test_phase_cores_are_the_deepest_pixels_and_keep_small_particles():
    from napari_sigma.minerals.interiors import MIN_CORE_PIXELS, interior_labels

    labels = np.ones((40, 40), dtype=np.int32)
    yy, xx = np.mgrid[:40, :40]
    labels[(yy - 10) ** 2 + (xx - 10) ** 2 <= 9] = 2  # a particle of radius 3 (29 px)
    labels[25:, :] = 3  # a band touching the map's edge
    cores = interior_labels(labels)
    particle = cores == 2
    assert MIN_CORE_PIXELS <= particle.sum() < (labels == 2).sum()
    assert particle[10, 10]  # the centre, not the rim
    assert not particle[10, 13]
    band = cores == 3
    assert band.sum() == pytest.approx(0.25 * (labels == 3).sum(), abs=40)
    assert band[39].all() and not band[25].any()  # the map's edge is no boundary
    assert set(np.unique(cores)) == {0, 1, 2, 3}


def test_a_phase_that_fills_the_map_is_all_core():
    # before, its depths were distances to a phantom edge of the padding (2.2 in a corner,
    # 8.5 in the opposite one) and its core one corner
    from napari_sigma.minerals.interiors import interior_labels, phase_depths

    labels = np.ones((5, 6), dtype=np.int32)
    assert np.isinf(phase_depths(labels)).all()
    np.testing.assert_array_equal(interior_labels(labels), labels)
    labels[0, :] = 0  # unassigned pixels are another label: depths from them
    np.testing.assert_array_equal(phase_depths(labels)[1:, 0], [1, 2, 3, 4])


def test_phase_depths_are_each_phases_own_distance_transform_on_any_number_of_threads():
    from scipy.ndimage import distance_transform_edt

    from napari_sigma.compute.blocks import worker_threads
    from napari_sigma.minerals.interiors import phase_depths

    rng = np.random.default_rng(3)
    labels = np.repeat(np.repeat(rng.integers(0, 6, (9, 11)), 7, axis=0), 5, axis=1)
    labels[labels == 4] = 0  # unassigned pixels; phase 4 absent
    with worker_threads(1):
        one = phase_depths(labels)
    with worker_threads(2):
        assert np.array_equal(phase_depths(labels), one)
    # away from the map's edge, each pixel's depth is the plain transform of its phase's mask
    inner = np.zeros_like(labels, dtype=bool)
    inner[14:-14, 10:-10] = True
    for pid in (1, 2, 3, 5):
        mine = labels == pid
        # the map's edge is no boundary: pad with the edge rows before the transform
        padded = np.pad(mine, 40, mode="edge")
        expected = distance_transform_edt(padded)[40:-40, 40:-40]
        assert np.array_equal(one[mine & inner], expected[mine & inner])
    assert not one[labels == 0].any()
