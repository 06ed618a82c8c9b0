"""Files of several spectrum images (a Phenom .elid: three maps): each map read on its own
(``map_index``), named, chosen in the CLI (``--map N``) and kept by a session."""

from __future__ import annotations

import numpy as np
import pytest

from napari_sigma.errors import SpectrumImageError
from napari_sigma.io.readers.reading import read_any, read_spectrum_image

MAPS = ("Image 1, Map 3", "Image 1, Map 6", "Image 1, Map 1")


@pytest.fixture
def elid(SHARED_EDS):
    return SHARED_EDS / "phenom" / "Elid2Version4.elid"


def test_each_map_of_the_file_is_read_on_its_own_and_named(elid):
    images = [read_spectrum_image(elid, map_index=k) for k in range(3)]
    assert [image.title for image in images] == [f"Elid2Version4 ({name})" for name in MAPS]
    assert all(image.metadata["maps"] == list(MAPS) for image in images)
    assert [image.metadata["map_index"] for image in images] == [0, 1, 2]
    totals = [int(np.asarray(image.counts).sum()) for image in images]
    assert len(set(totals)) == 3 and all(image.shape == (16, 16) for image in images)
    (note,) = images[1].metadata["notes"]
    assert note.startswith("the file holds 3 spectrum images; this is map 2 'Image 1, Map 6'")
    assert "--map N" in note
    lazy = read_any(elid, lazy=True, map_index=2)  # the isolated lazy path reads the same map
    np.testing.assert_array_equal(np.asarray(lazy.counts), np.asarray(images[2].counts))


def test_a_map_the_file_does_not_hold_is_refused_naming_the_file_and_its_maps(elid):
    with pytest.raises(SpectrumImageError, match=r"Elid2Version4\.elid: there is no spectrum "
                       r"image 4 in this file: it holds 3 \(1 'Image 1, Map 3', 2 "):  # fmt: skip
        read_any(elid, map_index=3)


def test_a_file_of_one_map_keeps_its_metadata_as_before(SHARED_EDS):
    image = read_spectrum_image(
        SHARED_EDS / "bruker" / "30x30_instructively_packed_16bit_compressed.bcf"
    )
    assert "maps" not in image.metadata and "map_index" not in image.metadata
    assert image.title == "30x30_instructively_packed_16bit_compressed"


def test_the_cli_reads_the_map_asked_for(elid, capsys):
    from napari_sigma.cli import main

    assert main(["elements", str(elid), "--map", "2"]) == 0
    second = capsys.readouterr().out
    assert main(["elements", str(elid)]) == 0
    assert capsys.readouterr().out != second  # another map, another spectrum
    with pytest.raises(SystemExit):
        main(["elements", str(elid), "--map", "0"])
    assert "a map number is 1, 2, ..." in capsys.readouterr().err


def test_a_session_of_the_second_map_reads_that_map_again(elid):
    from napari_sigma.pipeline.session import Session, _image_info

    image = read_spectrum_image(elid, map_index=1)
    info = _image_info(image)
    assert info["map_index"] == 1
    session = Session(
        path=None, source=elid, source_sha256=None, settings=None,
        labels=np.zeros(image.shape, np.uint8), phases=[], latent=np.zeros((0, 2)),
        latent_pixels=np.zeros(0, int), latent_shape=image.shape, image_info=info,
    )  # fmt: skip
    again = session.read_image()
    np.testing.assert_array_equal(np.asarray(again.counts), np.asarray(image.counts))
    assert "map_index" not in _image_info(
        read_spectrum_image(elid.parent.parent / "bruker" / "P45_the_default_job.bcf")
    )


def test_shared_model_and_apply_read_the_map_asked_for(elid, tmp_path, capsys):
    """``run --shared-model --map N`` fits its model on each input's N-th map and classifies
    that map; ``apply MODEL FILE --map N`` reads the N-th map (its title in run.json); a map the
    file lacks: the reader's line naming the maps, exit 1."""
    import json

    from napari_sigma.cli import main

    def title(folder):
        return json.loads((folder / "Elid2Version4" / "run.json").read_text())["title"]

    shared = tmp_path / "shared"
    common = ["--device", "cpu", "--latent", "pca", "--phases", "2"]
    assert (
        main(["run", str(elid), "--map", "2", "--shared-model", "--out", str(shared), *common]) == 0
    )
    assert title(shared) == f"Elid2Version4 ({MAPS[1]})"
    model = shared / "model.sigma"
    assert main(["apply", str(model), str(elid), "--map", "3", "--out", str(tmp_path / "a")]) == 0
    assert title(tmp_path / "a") == f"Elid2Version4 ({MAPS[2]})"
    capsys.readouterr()
    assert main(["apply", str(model), str(elid), "--map", "4", "--out", str(tmp_path / "b")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "there is no spectrum image 4 in this file: it holds 3" in err[0]


def test_a_limited_field_reads_its_map(elid):
    from napari_sigma.pipeline.batch import LimitedField

    field = LimitedField(elid, None, map_index=2)
    assert field().title == f"Elid2Version4 ({MAPS[2]})" and str(field) == f"{elid} (map 3)"
    assert str(LimitedField(elid)) == str(elid) and LimitedField(elid)().metadata["map_index"] == 0


def test_a_file_of_several_maps_is_decoded_once_for_all_its_maps(
    elid, SHARED_EDS, monkeypatch, tmp_path
):
    """Each map read after the first takes a copy of the file's decoded signals (napari opens
    every map of an .elid: three decodes of the whole file before); each map is as a read of
    its own gives it; a file of one map is not kept; a changed file is decoded again."""
    import dataclasses
    import os
    import shutil

    from napari_sigma.io.readers import multi_map, reading

    monkeypatch.setattr(multi_map, "_kept", {})
    alone = []
    for k in range(3):  # each map read with nothing kept
        multi_map.forget()
        alone.append(read_spectrum_image(elid, isolate=False, map_index=k))
    calls = []
    load = reading._load
    monkeypatch.setattr(reading, "_load", lambda *a: calls.append(a) or load(*a))
    multi_map.forget()
    images = [read_any(elid, isolate=False, map_index=k) for k in (1, 0, 2)]
    assert len(calls) == 1
    for image, k in zip(images, (1, 0, 2), strict=True):
        for field in dataclasses.fields(image):
            a, b = getattr(image, field.name), getattr(alone[k], field.name)
            if isinstance(a, np.ndarray) or hasattr(a, "__array__"):
                np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
            else:
                assert repr(a) == repr(b), field.name
    one_map = SHARED_EDS / "bruker" / "16x16_12bit_packed_8bit.bcf"
    read_any(one_map, isolate=False), read_any(one_map, isolate=False)
    assert len(calls) == 3 and multi_map._kept == {}  # not kept; the .elid let go
    copy = tmp_path / elid.name
    shutil.copyfile(elid, copy)
    read_any(copy, isolate=False, map_index=0), read_any(copy, isolate=False, map_index=1)
    assert len(calls) == 4
    stat = copy.stat()
    os.utime(copy, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # changed since
    read_any(copy, isolate=False, map_index=2)
    assert len(calls) == 5
