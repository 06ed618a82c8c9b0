"""Fixtures of the phase-finding tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def threaded_map_calls(monkeypatch) -> list:
    """``compute.blocks.threaded_map`` recorded: the ``workers`` argument of every call, in
    order (the call itself unchanged)."""
    from napari_sigma.compute import blocks

    calls: list = []
    original = blocks.threaded_map

    def recorded(function, items, workers=None):
        calls.append(workers)
        return original(function, items, workers)

    monkeypatch.setattr(blocks, "threaded_map", recorded)
    return calls
