"""Choosing the torch device: CUDA when there is one, else the CPU."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

DeviceName = Literal["auto", "cpu", "cuda"]


def resolve_device(device: str = "auto") -> str:
    """Return ``"cuda"`` or ``"cpu"`` for a requested device.

    Parameters
    ----------
    device : {"auto", "cpu", "cuda"}
        ``"auto"`` picks CUDA when ``torch.cuda.is_available()``.

    Raises
    ------
    ValueError
        If ``"cuda"`` is asked for and no CUDA device is present, or the name is unknown.
    """
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for, but torch finds no CUDA device")
    if device not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {device!r}: use 'auto', 'cpu' or 'cuda'")
    return device


def configure_fast_math(device: str) -> None:
    """Allow TF32 matrix products on CUDA (no effect on the CPU)."""
    import torch

    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


@contextmanager
def torch_threads(device: str, threads: int | None) -> Iterator[None]:
    """Run the enclosed torch work on ``threads`` CPU threads (restored afterwards).

    Measured here: the autoencoder's small matrix products ran 5-15x slower on 2 OpenMP threads
    than on 1 whenever another process (or napari's own drawing) shared the 2 cores, and barely
    faster on 2 when idle; so the pipeline trains on 1 thread by default on the CPU.
    ``threads=None`` or a CUDA device leaves torch's setting alone.
    """
    if device != "cpu" or threads is None:
        yield
        return
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
