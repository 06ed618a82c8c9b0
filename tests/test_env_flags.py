"""The environment switches' one parse (``NAPARI_SIGMA_ISOLATE``, ``NAPARI_SIGMA_ARRIVING``)."""

import pytest

from napari_sigma.env_flags import env_flag


@pytest.mark.parametrize("value", ["0", "no", "false", "FALSE", " No ", "False\n"])
def test_off_values_turn_a_switch_off(monkeypatch, value):
    monkeypatch.setenv("NAPARI_SIGMA_TEST_FLAG", value)
    assert env_flag("NAPARI_SIGMA_TEST_FLAG") is False


@pytest.mark.parametrize("value", ["1", "yes", "true", "", "anything"])
def test_other_values_leave_it_on(monkeypatch, value):
    monkeypatch.setenv("NAPARI_SIGMA_TEST_FLAG", value)
    assert env_flag("NAPARI_SIGMA_TEST_FLAG") is True


def test_unset_is_the_default(monkeypatch):
    monkeypatch.delenv("NAPARI_SIGMA_TEST_FLAG", raising=False)
    assert env_flag("NAPARI_SIGMA_TEST_FLAG") is True
    assert env_flag("NAPARI_SIGMA_TEST_FLAG", default=False) is False


def test_the_cli_and_the_reader_read_their_switches_through_it(monkeypatch):
    from napari_sigma.cli import _arriving_allowed
    from napari_sigma.io.readers.reading import _isolating

    monkeypatch.setenv("NAPARI_SIGMA_ARRIVING", "no")
    monkeypatch.setenv("NAPARI_SIGMA_ISOLATE", "False")
    assert not _arriving_allowed() and not _isolating(None)
    assert _isolating(True)  # an explicit choice wins over the environment
    monkeypatch.delenv("NAPARI_SIGMA_ARRIVING")
    monkeypatch.delenv("NAPARI_SIGMA_ISOLATE")
    assert _arriving_allowed() and _isolating(None)
