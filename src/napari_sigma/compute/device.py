"""Choosing the torch device: CUDA when there is one, else the CPU."""

from __future__ import annotations

import glob
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

# Device files through which a GPU driver is reached: NVIDIA's (/dev/nvidiactl, /dev/nvidia0,
# ...; also inside containers given a GPU), AMD's ROCm (/dev/kfd; torch's ROCm build answers
# through torch.cuda) and WSL2's GPU paravirtualisation (/dev/dxg).
GPU_DEVICE_FILES = ("/dev/nvidia*", "/dev/kfd", "/dev/dxg")


def resolve_device(device: str = "auto") -> str:
    """Return ``"cuda"`` or ``"cpu"`` for a requested device.

    Parameters
    ----------
    device : {"auto", "cpu", "cuda"}
        ``"auto"`` picks CUDA when ``torch.cuda.is_available()``.

    Torch is not imported (about 1.1 s of CPU here) to answer ``"cpu"``, nor ``"auto"`` on a
    machine where no GPU can be there (:func:`no_gpu_here`). Once torch is imported it decides
    ``"auto"`` as before.

    Raises
    ------
    ValueError
        If ``"cuda"`` is asked for and no CUDA device is present, or the name is unknown.
    """
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"unknown device {device!r}: use 'auto', 'cpu' or 'cuda'")
    if device == "cpu" or (device == "auto" and "torch" not in sys.modules and no_gpu_here()):
        return "cpu"
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for, but torch finds no CUDA device")
    return device


def no_gpu_here() -> bool:
    """True where ``torch.cuda.is_available()`` cannot be true, known without importing torch:
    macOS (no CUDA build of torch), or Linux without any GPU driver's device file
    (:data:`GPU_DEVICE_FILES`). False wherever it cannot be told (other systems, a device file
    present): torch then decides."""
    if sys.platform == "darwin":
        return True
    if not sys.platform.startswith("linux") or not os.path.isdir("/dev"):
        return False
    return not any(glob.glob(pattern) for pattern in GPU_DEVICE_FILES)


def configure_fast_math(device: str) -> None:
    """Allow TF32 matrix products on CUDA (no effect on the CPU, where torch is not imported)."""
    if device != "cuda":
        return
    import torch

    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True


def cpu_without_torch(device: str) -> bool:
    """True where ``resolve_device(device)`` is ``"cpu"`` and is known without importing torch
    (``"cpu"``, or ``"auto"`` where no GPU can be there and torch is not imported): the
    computations then run in numpy and need no torch (but the autoencoder)."""
    if device == "cpu":
        return True
    return device == "auto" and "torch" not in sys.modules and no_gpu_here()


@contextmanager
def torch_threads(device: str, threads: int | None, uses_torch: bool = True) -> Iterator[None]:
    """Run the enclosed torch work on ``threads`` CPU threads, and numpy's BLAS products on one
    (both restored afterwards).

    Measured here: the autoencoder's small matrix products ran 5-15x slower on 2 OpenMP threads
    than on 1 whenever another process (or napari's own drawing) shared the 2 cores, and barely
    faster on 2 when idle; so the pipeline trains on 1 thread by default on the CPU. OpenBLAS
    under numpy's products (the feature and abundance projections) behaves the same: at load 4
    on 2 cores the abundances of a 512 x 512 x 2048 cube took 2.3 s CPU (2.3-3.0 s wall) on 2
    OpenBLAS threads and 1.2 s CPU (1.1-1.7 s wall) on 1. The BLAS products stay on one thread
    whatever ``threads`` (their float rounding then does not depend on it: the results of 1 and
    2 threads are identical); the passes over the cube use a second core through their own
    thread (:func:`~napari_sigma.compute.blocks.prefetched`). ``threads=None`` leaves both
    settings alone; a CUDA device leaves torch's alone. ``uses_torch=False`` (the work runs
    in numpy on the CPU): torch is not imported for its setting; set only if it is imported
    already.
    """
    if threads is None:
        yield
        return
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        if device != "cpu" or not (uses_torch or "torch" in sys.modules):
            yield
            return
        import torch

        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            yield
        finally:
            torch.set_num_threads(previous)


RESIDENT_FRACTION = 0.5  # at most this share of the free device memory holds a resident cube


def resident_counts(counts, device: str, fraction: float = RESIDENT_FRACTION):
    """The counts as a float32 ``(N, E)`` tensor on a CUDA device, or None.

    Uploaded once in blocks of rows (a lazy or memory-mapped cube is read once), so that the
    passes of a stage (phase sums, abundances) run on the device without copying the cube over
    again. Counts below 2**24 (all 16-bit counts) are exact in float32. None on the CPU, or when
    the tensor would take more than ``fraction`` of the device's free memory (the caller then
    streams the cube in blocks).
    """
    if device == "cpu":
        return None
    import numpy as np
    import torch

    from napari_sigma.compute.blocks import pixel_blocks

    n_pixels = int(np.prod(counts.shape[:-1]))
    n_bytes = n_pixels * int(counts.shape[-1]) * 4
    free, _ = torch.cuda.mem_get_info(torch.device(device))
    if n_bytes > fraction * free:
        return None
    resident = torch.empty((n_pixels, int(counts.shape[-1])), dtype=torch.float32, device=device)
    for start, block in pixel_blocks(counts, max(1, (1 << 24) // int(counts.shape[-1]))):
        host = torch.from_numpy(np.ascontiguousarray(block).astype(np.float32, copy=False))
        resident[start : start + len(block)] = host.to(device)
    return resident


def load_torch_libraries() -> None:
    """Load torch's shared libraries the way its ``__init__`` does, without holding the GIL.

    The libraries are opened by calling the C library's ``dlopen`` through ctypes: a call of a
    foreign function releases the GIL while it runs. ``ctypes.CDLL`` does NOT (CPython 3.11: its
    ``_dlopen`` holds the GIL; measured: a Python loop in the main thread stopped 257-261 ms while
    a thread opened these two libraries with ``CDLL``, 4-8 ms at most with ``dlopen``; nor does the
    import machinery. torch's own import then finds them loaded. Linux only (the libraries'
    names); anything unexpected leaves it to ``import torch``.
    """
    if not sys.platform.startswith("linux") or "torch" in sys.modules:
        return
    import ctypes
    import importlib.util
    import os
    from pathlib import Path

    try:
        spec = importlib.util.find_spec("torch")
    except (ImportError, ValueError):
        return
    if spec is None or spec.origin is None:
        return
    try:
        dlopen = ctypes.CDLL(None).dlopen  # the process's own symbols: the C library's dlopen
    except (OSError, AttributeError):
        return
    dlopen.restype, dlopen.argtypes = ctypes.c_void_p, (ctypes.c_char_p, ctypes.c_int)
    lib = Path(spec.origin).parent / "lib"
    # torch loads libtorch_global_deps with RTLD_GLOBAL, then its extension, which links
    # libtorch_python (and through it libtorch_cpu, the 250 ms part); never closed (torch's)
    for name, mode in (
        ("libtorch_global_deps.so", os.RTLD_NOW | os.RTLD_GLOBAL),
        ("libtorch_python.so", os.RTLD_NOW | os.RTLD_LOCAL),
    ):
        if not (lib / name).is_file() or not dlopen(os.fsencode(lib / name), mode):
            return  # e.g. CUDA libraries torch finds by itself: its import does it
