"""The reading child's side (:mod:`napari_sigma.io.reading_process.isolation`): :func:`_serve` answers the
parent's read requests from stdin until it closes (:func:`_answer`: one request read with
:mod:`napari_sigma.io.readers.reading`, its large arrays in ``/dev/shm``,
:mod:`~napari_sigma.io.reading_process.shared_arrays`; :func:`_send_answer`: the answer written to stdout), after
importing ahead what lazy and JEOL reads need (:func:`_warm_imports`)."""

from __future__ import annotations

import os
import pickle
import select
import sys
from pathlib import Path
from typing import Any

from napari_sigma.errors import NotASpectrumImageError, SpectrumImageError
from napari_sigma.io.reading_process.shared_arrays import (
    _IN_SHARED_FILE,
    _PLACED,
    _SHARED_FILE_MIN_BYTES,
    _close_placed_files,
    _shared_array,
    _shared_file_of,
    _write_shared,
)

_NO_MEMORY = (
    "not enough memory to load this file (or its header is corrupt); open it lazily, or raise "
    "NAPARI_SIGMA_READ_MEMORY"
)


def _serve(memory_bytes: int, warm: bool = True) -> None:  # pragma: no cover - the child
    """Answer read requests from stdin until it closes (``warm``: after importing ahead)."""
    protocol_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # readers that print must not corrupt the answers
    if memory_bytes > 0:
        import resource

        resource.setrlimit(resource.RLIMIT_DATA, (memory_bytes, memory_bytes))
    protocol_in = sys.stdin.buffer
    import warnings

    from napari_sigma.pipeline.import_docs import unrendered_from_now_on

    unrendered_from_now_on()  # docstrings nobody reads here: ~0.3 s of an .hspy read's imports

    warnings.simplefilter("ignore")  # recorded in the metadata and issued by the parent
    from napari_sigma.io.readers import reading  # noqa: F401 - import once, before the first request

    if warm:
        _warm_imports(protocol_in)  # started ahead (prewarm); stops when a request waits

    while True:
        header = protocol_in.read(8)
        if len(header) < 8:
            return
        request = pickle.loads(protocol_in.read(int.from_bytes(header, "little")))
        function, path, lazy, args, arriving, map_index = request
        try:
            stream = protocol_out if arriving else None
            answer = _answer(function, Path(path), lazy, args, stream, map_index)
            _close_placed_files()
            _send_answer(protocol_out, answer)
        finally:  # files placed for an answer that failed (sent ones are the parent's now)
            _close_placed_files()
            for placed in _PLACED.values():
                placed.unlink(missing_ok=True)
            _PLACED.clear()


_WARM_MODULES = ("dask.array", "numba", "rsciio.jeol", "rsciio.utils._fei_stream_readers")


def _warm_imports(requests) -> None:  # pragma: no cover - runs in the child process
    """Import what lazy and JEOL reads need before the first request comes (~1 s), then set up
    numba's CPU target (its registries: ~0.8-1.2 s that the first JEOL decode would pay); each
    step only while no request waits on ``requests``."""
    from importlib import import_module

    for name in _WARM_MODULES:
        if select.select([requests], [], [], 0)[0]:
            return
        try:
            import_module(name)
        except Exception:
            pass
    if select.select([requests], [], [], 0)[0]:
        return
    try:
        from numba.core.registry import cpu_target

        cpu_target.target_context.refresh()
    except Exception:
        pass


def _send_answer(stream, answer: tuple[str, Any, Any]) -> None:  # pragma: no cover - child
    """Write an answer: sizes, the pickle, then the large arrays' bytes (pickle protocol 5)."""
    buffers: list[pickle.PickleBuffer] = []
    try:
        payload = pickle.dumps(answer, protocol=5, buffer_callback=buffers.append)
    except MemoryError:
        buffers, payload = [], pickle.dumps(("error", _NO_MEMORY, None))
    except Exception as exc:  # an unpicklable metadata value
        buffers, payload = [], pickle.dumps(("error", f"could not be transferred ({exc})", None))
    views = [_shared_file_of(buffer.raw(), i) for i, buffer in enumerate(buffers)]
    sizes = [len(v) | _IN_SHARED_FILE if isinstance(v, bytes) else v.nbytes for v in views]
    header = len(payload).to_bytes(8, "little") + len(views).to_bytes(8, "little")
    stream.write(header + b"".join(size.to_bytes(8, "little") for size in sizes) + payload)
    for view in views:
        stream.write(view)
    stream.flush()


def _arriving_messages(stream) -> tuple[Any, Any, list]:
    """``(announce, report, announced)`` of an arriving read on ``stream``: the image goes to
    the parent as ``("arriving", image, probe)`` before its rows are decoded, then each step's
    rows as ``("rows", ranges, None)``; the read's end is the request's answer (``("done",
    None, None)`` or an error)."""
    announced: list = []

    def announce(image, probe) -> None:  # pragma: no cover - runs in the child process
        _send_answer(stream, ("arriving", image, probe))
        announced.append(True)

    def report(ranges) -> None:  # pragma: no cover - runs in the child process
        _send_answer(stream, ("rows", ranges, None))

    return announce, report, announced


def _answer(
    function: str,
    path: Path,
    lazy: bool,
    args: tuple = (),
    stream: Any = None,
    map_index: int = 0,
) -> tuple[str, Any, Any]:
    """One request's answer; ``stream``: the parent's pipe for an arriving read of
    ``read_spectrum_image_within`` (:func:`_arriving_messages`), None for the others;
    ``map_index``: which of the file's spectrum images."""
    from napari_sigma.io.readers import _rsciio as rh
    from napari_sigma.io.readers import reading
    from napari_sigma.io.readers.events import event_cube_of

    fmt = rh.FORMATS.get(path.suffix.lower())
    if fmt is not None and fmt.events:
        lazy = True  # the events travel; the parent densifies them for an eager read
    try:
        if function == "read_spectrum_image_within":  # one lazy opening decides and reads
            arriving, announced = None, []
            if stream is not None:
                announce, report, announced = _arriving_messages(stream)
                arriving = (announce, report)
            image, probe = reading.read_within_steps(
                path, *args, _shared_array, _write_shared, _SHARED_FILE_MIN_BYTES, arriving,
                map_index,
            )  # fmt: skip
            if announced:
                return ("done", None, None)
            if hasattr(image.counts, "dask") and event_cube_of(image.counts) is None:
                reading.decode_all(image)  # lazy: checked here, read again by the parent
                return ("ok", None, probe)
            return ("ok", image, probe)
        result = None
        if not lazy and function in ("read_spectrum_image", "read_any"):
            # a chunked cube is decoded straight into /dev/shm: no copy on the way to the parent
            result = reading.read_into(
                function, path, _shared_array, _SHARED_FILE_MIN_BYTES, _write_shared, map_index
            )
        if result is None:
            result = getattr(reading, function)(path, lazy=lazy, isolate=False, map_index=map_index)
        if hasattr(getattr(result, "counts", None), "dask"):
            if event_cube_of(result.counts) is not None:
                return ("ok", result, None)  # decoded once, here; a few MB
            reading.decode_all(result)
            return ("ok", None, None)
        return ("ok", result, None)
    except NotASpectrumImageError as error:
        return ("not_image", error.cause, None)
    except SpectrumImageError as error:
        return ("error", error.cause, None)
    except MemoryError:
        return ("error", _NO_MEMORY, None)
    except Exception as exc:
        text = f"{type(exc).__name__}: {exc}"[:300]
        return ("error", f"could not be read; it may be truncated or corrupt ({text})", None)
