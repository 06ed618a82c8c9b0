"""A file of several spectrum images decoded once for all its maps.

napari opens each map of such a file (a Phenom ``.elid``: three 16x16 maps, ~1 s of CPU to
decode the whole file) as a read of its own, and each read decoded the whole file again (3 s
of CPU for the three maps, at load ~20 3.4-4 s wall each). The decoded signals of the last
multi-map file read are kept (one file, while it is unchanged: same size and modification
time) and each later map's read takes a copy of them; a file of one spectrum image, or a large
one, is not kept, and reading another file lets the kept one go.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: Multi-map files whose decoded signals take more than this are decoded again for each map.
KEEP_MAX_BYTES = 256 * 2**20

_kept: dict[str, Any] = {}  # "key": the file's identity, "value": (format, signals)
_lock = threading.Lock()


def _key(path: Path, lazy: bool) -> tuple | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return (str(path.resolve()), stat.st_size, stat.st_mtime_ns, lazy)


def _worth_keeping(signals: list[dict[str, Any]], fmt: Any) -> bool:
    from napari_sigma.io.readers.signals import _spectrum_images

    if len(_spectrum_images(signals, fmt)) < 2:
        return False
    sizes = [getattr(signal.get("data"), "nbytes", 0) for signal in signals]
    return not any(hasattr(signal.get("data"), "dask") for signal in signals) and (
        sum(sizes) <= KEEP_MAX_BYTES
    )


def load_once(
    path: Path, lazy: bool, load: Callable[[Path, bool], tuple[Any, list[dict[str, Any]]]]
) -> tuple[Any, list[dict[str, Any]]]:
    """``load(path, lazy)`` (a format and the reader's signal dictionaries), or a copy of what
    it gave for this very file before, when that file holds several spectrum images."""
    key = _key(path, lazy)
    with _lock:
        if key is not None and _kept.get("key") == key:
            fmt, signals = _kept["value"]
            return fmt, copy.deepcopy(signals)  # whatever a read changes stays its own
        _kept.clear()  # another file: the kept one goes before this one is decoded
    fmt, signals = load(path, lazy)
    if key is not None and _worth_keeping(signals, fmt):
        with _lock:
            _kept.update(key=key, value=(fmt, copy.deepcopy(signals)))
    return fmt, signals


def forget() -> None:
    """Let the kept file's signals go."""
    with _lock:
        _kept.clear()
