"""Shared pytest fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

from sigma_testdata import SHARED_EDS_DIR


@pytest.fixture(scope="session")
def SHARED_EDS() -> Path:
    """Folder of real vendor EDS files (``../shared/data/eds`` beside the repository).

    Tests that need it are skipped when it is absent (for example on a fresh CI machine).
    """
    if not SHARED_EDS_DIR.is_dir():
        pytest.skip(f"real EDS test files not found at {SHARED_EDS_DIR}")
    return SHARED_EDS_DIR


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a test module: faster and stabler than two on a loaded 2-core machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def joins(monkeypatch):
    """The number of chunks each dask result was assembled from (``concatenate3``)."""
    import dask.array.core as core

    seen: list[int] = []
    original = core.concatenate3

    def counted(arrays):
        seen.append(len(list(core.flatten(arrays, container=(list, tuple)))))
        return original(arrays)

    monkeypatch.setattr(core, "concatenate3", counted)
    return seen
