"""Device choice and thread settings: torch is imported only where it decides something."""

from __future__ import annotations

import fnmatch
import subprocess
import sys

import pytest

from napari_sigma.compute import device


def test_no_gpu_is_known_from_the_driver_device_files_only_where_it_can_be(monkeypatch):
    """Linux without any GPU driver's device file, and macOS: no GPU. A device file present, or
    another system: unknown (torch decides)."""
    present: list[str] = []
    monkeypatch.setattr(device.os.path, "isdir", lambda path: True)
    monkeypatch.setattr(device.glob, "glob", lambda pattern: fnmatch.filter(present, pattern))
    monkeypatch.setattr(device.sys, "platform", "linux")
    assert device.no_gpu_here()
    for path in ("/dev/nvidia0", "/dev/nvidiactl", "/dev/kfd", "/dev/dxg"):
        present[:] = [path]
        assert not device.no_gpu_here(), path
    present[:] = []
    monkeypatch.setattr(device.sys, "platform", "darwin")
    assert device.no_gpu_here()
    monkeypatch.setattr(device.sys, "platform", "win32")
    assert not device.no_gpu_here()


def test_once_torch_is_imported_it_decides_auto(monkeypatch):
    """A CUDA device torch sees is chosen even where no device file was found (as before)."""
    import torch

    monkeypatch.setattr(device, "no_gpu_here", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert device.resolve_device("auto") == "cuda"
    assert device.resolve_device("cuda") == "cuda"
    assert device.resolve_device("cpu") == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert device.resolve_device("auto") == "cpu"
    with pytest.raises(ValueError, match="no CUDA device"):
        device.resolve_device("cuda")
    with pytest.raises(ValueError, match="unknown device 'gpu'"):
        device.resolve_device("gpu")


def test_the_cpu_is_chosen_and_set_up_without_importing_torch():
    """In a fresh interpreter: "cpu", and "auto" where no GPU can be, are answered without
    torch, and fast math on the CPU imports nothing."""
    script = (
        "import sys\n"
        "from napari_sigma.compute import device\n"
        "device.no_gpu_here = lambda: True\n"
        "assert device.resolve_device('cpu') == 'cpu'\n"
        "assert device.resolve_device('auto') == 'cpu'\n"
        "device.configure_fast_math('cpu')\n"
        "assert 'torch' not in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
