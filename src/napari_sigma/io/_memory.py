"""Large zeroed arrays whose pages are mapped in one call, without transparent huge pages.

``np.zeros``/``np.empty`` ask the kernel for transparent huge pages on large arrays
(``madvise(MADV_HUGEPAGE)``); where the kernel compacts memory to find them on each fault
(``/sys/kernel/mm/transparent_hugepage/defrag`` = ``madvise``, as on this project's VM) filling a
4 GiB array cost 11-12 s of CPU against 4.2 s with the pages mapped at once (``MAP_POPULATE``,
4 KiB pages), and densifying a 2 GiB JEOL event cube 4.1-5.0 s of system time against 0.8 s.
"""

from __future__ import annotations

import mmap
from typing import Any

import numpy as np

#: Smaller arrays come from numpy as usual.
MIN_BYTES = 64 * 2**20


def zeroed_array(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """A new zeroed, writable C-contiguous array; large ones on populated anonymous memory."""
    nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
    populate = getattr(mmap, "MAP_POPULATE", 0)
    if nbytes == 0 or nbytes < MIN_BYTES or not populate:
        return np.zeros(shape, dtype)
    flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | populate
    return np.ndarray(shape, dtype, buffer=mmap.mmap(-1, nbytes, flags=flags))
