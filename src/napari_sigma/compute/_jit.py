"""numba compilation applied on first use, for the package's few compiled kernels.

:func:`lazy_njit` wraps a module-level function: numba is imported, and the function compiled
(``nogil=True``: other threads, napari's main thread among them, run meanwhile; ``cache=True``:
numba's on-disk cache, in ``__pycache__`` beside the source when it is writable, else
``NUMBA_CACHE_DIR`` or the user's cache folder), on its first call only. A path that never
calls it pays neither numba's import nor a compile.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

_LOCK = threading.Lock()


class lazy_njit:
    """``numba.njit(cache=True, nogil=True, **options)(function)``, made on the first call."""

    def __init__(self, function: Callable[..., Any] | None = None, **options: Any) -> None:
        self.options = {"cache": True, "nogil": True, **options}
        self.function = function
        self.compiled: Callable[..., Any] | None = None
        if function is not None:
            self.__doc__ = function.__doc__
            self.__name__ = function.__name__

    def __call__(self, *args: Any) -> Any:
        if self.function is None:  # @lazy_njit(option=...): the function comes now
            return type(self)(args[0], **self.options)
        compiled = self.compiled
        if compiled is None:
            with _LOCK:
                if self.compiled is None:
                    from numba import njit

                    self.compiled = njit(**self.options)(self.function)
                compiled = self.compiled
        return compiled(*args)
