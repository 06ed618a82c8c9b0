"""numpy arrays (the CPU) and torch tensors (another device) behind numpy's names.

The core's shared algorithms (the mixtures' EM, the spatial prior's ICM, the active-set NNLS of
the abundances) are written once: ``xp = namespace(x)`` is the ``numpy`` module itself for a
numpy array, so the CPU's path makes exactly numpy's calls (the same bits as code written for
numpy), and :class:`TorchNamespace` for a torch tensor, numpy's names for torch's operations on
the tensor's device (a GPU, or CPU tensors in the tests). The path is chosen by the arrays'
type, never by a device name; torch is imported only where a tensor is handled.

Where the two sides compute differently on purpose (an algorithm chosen for one side, e.g.
``np.bincount`` sums against ``index_add_``), the caller branches on :func:`on_host` beside the
shared steps. Only the names the core uses are here; add one when a shared algorithm needs it.
"""

from __future__ import annotations

import functools
import sys
from typing import Any

import numpy as np


def on_host(a: Any) -> bool:
    """Whether ``a`` is a numpy array (the CPU's path)."""
    return isinstance(a, np.ndarray)


def is_tensor(a: Any) -> bool:
    """Whether ``a`` is a torch tensor (torch not imported to answer)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(a, getattr(torch, "Tensor", ()))


def host(a: Any) -> np.ndarray:
    """``a`` as a numpy array (a tensor copied to the CPU; a numpy array as it is)."""
    return a if isinstance(a, np.ndarray) else a.cpu().numpy()


def namespace(a: Any) -> Any:
    """``numpy`` for a numpy array, :class:`TorchNamespace` for a torch tensor."""
    return np if isinstance(a, np.ndarray) else torch_namespace()


def clamp_min(a: Any, low: float) -> Any:
    """``torch.clamp_min``; on numpy ``np.maximum(low, a)``, which keeps a ``-0.0`` of ``a``
    as torch does."""
    return np.maximum(low, a) if isinstance(a, np.ndarray) else a.clamp_min(low)


@functools.cache
def torch_namespace() -> TorchNamespace:
    return TorchNamespace()


class TorchNamespace:
    """numpy's names (and argument conventions: ``axis``, ``keepdims``, ``like``) for torch.

    Arrays made from nothing (``zeros``, ``arange``) go where ``like`` is, as numpy's
    ``like=`` argument; dtypes may be given as numpy's (``bool``, ``np.float64``, ...).
    """

    def __init__(self) -> None:
        import torch

        self._torch = torch
        self.float64, self.float32, self.int64 = torch.float64, torch.float32, torch.int64
        self._dtypes = {
            bool: torch.bool,
            np.bool_: torch.bool,
            float: torch.float64,
            np.float64: torch.float64,
            np.float32: torch.float32,
            int: torch.int64,
            np.int64: torch.int64,
            np.int32: torch.int32,
        }

    def _dtype(self, dtype: Any) -> Any:
        if dtype is None or isinstance(dtype, self._torch.dtype):
            return dtype
        return self._dtypes[np.dtype(dtype).type]

    # made from nothing or from another array
    def asarray(self, values: Any, dtype: Any = None, like: Any = None) -> Any:
        device = None if like is None else like.device
        return self._torch.as_tensor(values, dtype=self._dtype(dtype), device=device)

    def zeros(self, shape: Any, dtype: Any = float, like: Any = None) -> Any:
        device = None if like is None else like.device
        return self._torch.zeros(shape, dtype=self._dtype(dtype), device=device)

    def arange(self, stop: int, like: Any = None) -> Any:
        return self._torch.arange(stop, device=None if like is None else like.device)

    def zeros_like(self, a: Any, dtype: Any = None) -> Any:
        return self._torch.zeros_like(a, dtype=self._dtype(dtype))

    def empty_like(self, a: Any, dtype: Any = None) -> Any:
        return self._torch.empty_like(a, dtype=self._dtype(dtype))

    def full_like(self, a: Any, fill_value: Any) -> Any:
        return self._torch.full_like(a, fill_value)

    def copy(self, a: Any) -> Any:
        return a.clone()

    # element-wise
    def where(self, condition: Any, a: Any, b: Any) -> Any:
        return self._torch.where(condition, a, b)

    def abs(self, a: Any) -> Any:
        return a.abs()

    def exp(self, a: Any) -> Any:
        return a.exp()

    def log(self, a: Any) -> Any:
        return a.log()

    def clip(self, a: Any, low: float, high: float) -> Any:
        return a.clamp(low, high)

    # reductions and indices
    def any(self, a: Any, axis: int | None = None, keepdims: bool = False) -> Any:
        return a.any() if axis is None else a.any(axis, keepdim=keepdims)

    def max(self, a: Any, axis: int | None = None, keepdims: bool = False) -> Any:
        return a.max() if axis is None else a.amax(axis, keepdim=keepdims)

    def min(self, a: Any, axis: int | None = None, keepdims: bool = False) -> Any:
        return a.min() if axis is None else a.amin(axis, keepdim=keepdims)

    def sum(self, a: Any, axis: int | None = None, keepdims: bool = False) -> Any:
        return a.sum() if axis is None else a.sum(axis, keepdim=keepdims)

    def argmax(self, a: Any, axis: int) -> Any:
        return a.argmax(axis)

    def argmin(self, a: Any, axis: int) -> Any:
        return a.argmin(axis)

    def nonzero(self, a: Any) -> tuple:
        return self._torch.nonzero(a, as_tuple=True)

    def flatnonzero(self, a: Any) -> Any:
        return a.reshape(-1).nonzero().squeeze(1)

    def take_along_axis(self, a: Any, indices: Any, axis: int) -> Any:
        return a.gather(axis, indices)

    def array_equal(self, a: Any, b: Any) -> bool:
        return self._torch.equal(a, b)

    def concatenate(self, arrays: Any, axis: int = 0) -> Any:
        return self._torch.cat(list(arrays), dim=axis)
