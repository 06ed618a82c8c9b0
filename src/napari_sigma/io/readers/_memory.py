"""Large zeroed arrays whose pages are mapped in one call, without transparent huge pages.

``np.zeros``/``np.empty`` ask the kernel for transparent huge pages on large arrays
(``madvise(MADV_HUGEPAGE)``); where the kernel compacts memory to find them on each fault
(``/sys/kernel/mm/transparent_hugepage/defrag`` = ``madvise``, as on this project's VM) filling a
4 GiB array cost 11-12 s of CPU against 4.2 s with the pages mapped at once (``MAP_POPULATE``,
4 KiB pages), and densifying a 2 GiB JEOL event cube 4.1-5.0 s of system time against 0.8 s.

The mapping is made and released through the C library by ctypes, which lets go of the GIL for
the call: Python's ``mmap.mmap`` holds it while the kernel zeroes the pages (~1 ms per MiB), so a
worker densifying a 256 MiB block stopped napari's main thread for as long (py-spy, JEOL map).
"""

from __future__ import annotations

import ctypes
import functools
import mmap
import os
import weakref
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
    libc = _libc()
    if libc is None:
        flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | populate
        return np.ndarray(shape, dtype, buffer=mmap.mmap(-1, nbytes, flags=flags))
    return np.ndarray(shape, dtype, buffer=_mapped_bytes(libc, nbytes, populate))


def _mapped_bytes(libc: ctypes.CDLL, nbytes: int, populate: int) -> ctypes.Array:
    """``nbytes`` of populated anonymous memory as a ctypes byte array, unmapped when the array
    (and so every numpy array made on it) is collected."""
    prot = mmap.PROT_READ | mmap.PROT_WRITE
    flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | populate
    address = libc.mmap(None, nbytes, prot, flags, -1, 0)
    if address is None or address == ctypes.c_void_p(-1).value:
        raise MemoryError(f"cannot map {nbytes} bytes: {os.strerror(ctypes.get_errno())}")
    data = (ctypes.c_ubyte * nbytes).from_address(address)
    unmap = weakref.finalize(data, libc.munmap, address, nbytes)
    unmap.atexit = False  # the process's end frees it; nothing may touch it after an unmap
    return data


#: glibc's ``mallopt`` parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
#: Blocks of up to this many bytes come from the heap (glibc's largest ``M_MMAP_THRESHOLD``
#: on 64 bits); larger ones are mapped and unmapped as before.
HEAP_BLOCK_BYTES = 32 * 2**20
#: Free memory the heap keeps before giving any back to the kernel.
KEPT_FREE_BYTES = 512 * 2**20


def keep_freed_memory() -> bool:
    """Let the C library reuse freed memory instead of giving it back to the kernel (glibc).

    By default glibc maps a block of more than 128 KiB (raised up to 32 MiB as such blocks
    are freed) on its own and unmaps it when it is freed, and gives the heap's free top back to
    the kernel above twice that: every temporary array of a pass (a few MiB per block, several
    per block) is new memory again, which the kernel faults in and zeroes page by page. On this
    project's VM, whose memory faults in slowly, that was 12-21 s of system time in a 1024^2
    ``napari-sigma run`` (user 20-24 s); 300 rounds of four 4 MiB temporaries: 600 000 page
    faults and 0.9-1.6 s of system time against 0 and 0.01 s with freed memory kept.

    Blocks up to :data:`HEAP_BLOCK_BYTES` then come from the heap, which keeps up to
    :data:`KEPT_FREE_BYTES` free before trimming. Only where memory placement changes no
    number; called once by the CLI (a process of its own). Returns False where there is no
    glibc ``mallopt`` (nothing changed).
    """
    libc = _libc()
    mallopt = getattr(libc, "mallopt", None) if libc is not None else None
    if mallopt is None:
        return False
    mallopt.restype = ctypes.c_int
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    # the mmap threshold first: setting it also ends glibc's dynamic adjustment of both
    done = mallopt(_M_MMAP_THRESHOLD, HEAP_BLOCK_BYTES) == 1
    return mallopt(_M_TRIM_THRESHOLD, KEPT_FREE_BYTES) == 1 and done


@functools.cache
def _libc() -> ctypes.CDLL | None:
    """The C library's mmap and munmap (ctypes calls release the GIL), or None elsewhere."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)  # the symbols already in the process
        mmap_, munmap = libc.mmap, libc.munmap
    except (OSError, AttributeError):
        return None
    mmap_.restype = ctypes.c_void_p
    mmap_.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                      ctypes.c_int, ctypes.c_long]  # fmt: skip
    munmap.restype = ctypes.c_int
    munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    return libc
