"""Calls run in a child Python process, so that their C calls hold none of this process's GIL.

matplotlib's Agg drawing of ``report.png``, the export's phase statistics over the cube and the
mineral report's numpy/scipy passes hold the GIL ~100 ms at a time; in napari's process a thread
running them froze the window that long during an export. :class:`ChildProcess` starts a Python
process of this package that imports what the calls need while the caller works on, then runs the
calls it is sent, one at a time, in the order sent. Arguments and results are pickled through the
child's pipes (between two processes of this package; nothing is written to disk). Only the
functions of :data:`CALLS` run. The child's matplotlib has its default settings (as in the CLI),
whatever this process changed. The plugin's spectrum plots are drawn in such a child too
(:func:`render_figure`: a figure pickled there, its pixels back), at a lower priority than napari's
(``nice``).
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from functools import partial
from pathlib import Path
from typing import Any

CALLS = {
    "phase_table": ("napari_sigma.phases.statistics", "phase_table"),
    "render_report": ("napari_sigma.io.results.report", "render_report"),
    "write_mineral_report": ("napari_sigma.io.mineral_report.mineralogy", "write_mineral_report"),
    "render_figure": ("napari_sigma.io.results.child", "render_figure"),
}
"""What a child runs, by name: (module, function)."""

WARM_MODULES = {
    "phase_table": ("napari_sigma.phases.statistics", "dask.array"),
    "render_report": (
        "matplotlib.figure",
        "matplotlib.backends.backend_agg",
        "napari_sigma.io.results.report",
    ),
    "write_mineral_report": (
        "napari_sigma.io.mineral_report.mineralogy",
        "napari_sigma.minerals.phases",
        "napari_sigma.minerals.mineralogy",
    ),
    "render_figure": ("matplotlib.figure", "matplotlib.backends.backend_agg"),
}
"""What the child imports as it starts, for each call it is told to expect (the mineral report
also parses the default mineral library: ~1 s, once per process)."""


class ChildError(RuntimeError):
    """A call failed in the child (its error and traceback in the message), or the child died."""


class ChildDied(ChildError):
    """The child process ended (or never ran) before it answered: the call was not made."""


class ChildProcess:
    """A child Python process running :data:`CALLS` (see the module notes).

    The constructor starts it and returns at once (``expect``: the calls it will be sent, whose
    modules it imports meanwhile); :meth:`call` sends a call and waits for its
    result (the wait holds no GIL); :meth:`close` ends the child once its calls are done, or
    stops it when none was sent.
    """

    def __init__(self, expect: tuple[str, ...] = tuple(CALLS), nice: int = 0) -> None:
        import napari_sigma

        env = dict(os.environ, MPLBACKEND="agg", NAPARI_SIGMA_CHILD_NICE=str(int(nice)))
        root = str(Path(napari_sigma.__file__).resolve().parents[1])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        self._process = subprocess.Popen(
            [sys.executable, "-c", "from napari_sigma.io.results.child import _serve; _serve()",
             *(name for name in expect if name in CALLS)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
        )  # fmt: skip
        self.calls = 0
        self._busy = False
        self._closed = False

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Run ``CALLS[name](*args, **kwargs)`` in the child; return its result.

        Raises
        ------
        ChildError
            The call raised in the child (its type, message and traceback), or the child died.
        """
        if name not in CALLS:
            raise ValueError(f"no child call named {name!r}")
        self.calls += 1
        self._busy = True
        try:
            _send(self._process.stdin, (name, args, kwargs))
            status, value = _receive(self._process.stdout)
        except (OSError, EOFError, pickle.UnpicklingError) as error:
            code = self._process.poll()
            raise ChildDied(
                f"{name}: the child process ended (exit code {code}): {error}"
            ) from None
        finally:
            self._busy = False
            if self._closed:  # closed while this call ran (a cancelled export): end it now
                self._end()
        if status != "ok":
            raise ChildError(f"{name}: {value}")
        return value

    def close(self) -> None:
        """End the child: at once when it was sent no call; after the call that runs, if one
        does (a cancelled export: its files are written whole, as a thread would write them)."""
        self._closed = True
        if self.calls == 0 and self._process.poll() is None:
            self._process.kill()
        if not self._busy:
            self._end()

    @property
    def pid(self) -> int:
        """The child's process id."""
        return self._process.pid

    def exit_code(self, wait: float = 0.0) -> int | None:
        """The child's exit code, None while it runs (waiting up to ``wait`` seconds for its end:
        one whose pipes just broke may not be reaped yet)."""
        try:
            return self._process.wait(wait) if wait > 0 else self._process.poll()
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> None:
        """Kill the child now, not waiting for its end (at exit: an idle child, nothing of it to
        keep; the kernel frees its memory after this process is gone)."""
        self._closed = True
        if self._process.poll() is None:
            try:
                self._process.kill()
            except OSError:
                pass

    def _end(self) -> None:
        """Close the pipes (the child exits at the end of its input) and reap it."""
        for stream in (self._process.stdin, self._process.stdout):
            try:
                stream.close()
            except OSError:
                pass
        self._process.wait()


def render_figure(figure: Any, width: int, height: int, dpi: float) -> bytes:
    """Draw a matplotlib figure with Agg at ``width`` x ``height`` pixels and ``dpi``; its RGBA
    pixels, top row first (what ``FigureCanvasAgg`` draws; the plugin's plots are drawn here in
    a child process: :class:`~napari_sigma._napari.plotting.PlotCanvas`)."""
    from matplotlib.backends.backend_agg import RendererAgg

    renderer = RendererAgg(width, height, dpi)
    figure.draw(renderer)
    return bytes(renderer.buffer_rgba())


class _Frames:
    """A pickle's frames, handed over one by one to a write method in Python (:func:`_dumps`)."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, data: Any) -> int:  # bytes (large buffers go out of band: _send)
        part = bytes(data)
        self.parts.append(part)
        return len(part)


def _dumps(value: Any, buffers: list | None = None) -> bytes:
    """``pickle.dumps(value, pickle.HIGHEST_PROTOCOL)``, the same bytes, pickled frame by frame.

    ``pickle.dumps`` is one C call holding the GIL until the whole pickle is made: a matplotlib
    figure sent to the drawing child (``plotting._draw_in_child``) held it for ~0.95 s in the
    plot thread, a 960 ms block of napari's main thread as a JEOL run's result appeared (py-spy,
    load 4.7). Written to a file, the pickler hands each ~64 KB frame to the file's ``write``:
    a Python method here, where another thread waiting for the GIL gets it. 200 000 small arrays
    (11 MB): a 1 ms ticking thread's longest gap 926-994 ms -> 104-115 ms (same CPU, same bytes).

    ``buffers``: a list that takes the large payloads out of band (protocol 5's
    ``buffer_callback``: contiguous numpy arrays, bytearrays) instead of copying them into the
    pickle; :func:`_send` writes them to the pipe from their own memory.
    """
    frames = _Frames()
    callback = None if buffers is None else buffers.append
    pickle.Pickler(frames, pickle.HIGHEST_PROTOCOL, buffer_callback=callback).dump(value)
    return b"".join(frames.parts)


def _send(stream: Any, value: Any) -> None:
    """Pickle ``value`` to ``stream``: a header (the pickle's length, each out-of-band buffer's
    length), the pickle, then each large buffer (numpy arrays: a lazy JEOL cube's events, a
    label image) written from the array's own memory.

    Copied into the pickle, a 200 MiB array held the GIL 320-620 ms (``bytes()`` of its
    ``PickleBuffer``; joining the frames copied it again): a 222 ms freeze of napari's window
    as a JEOL export sent its cube to the child (gui15a, load 14). A buffered pipe's write of a
    large buffer goes to the system from that memory, the GIL released while it blocks."""
    buffers: list = []
    _write_message(stream, _dumps(value, buffers), buffers)


def _write_message(stream: Any, data: bytes, buffers: list) -> None:
    """Write a pickle made by :func:`_dumps` and its out-of-band ``buffers`` (:func:`_send`)."""
    views = [buffer.raw() for buffer in buffers]
    header = [len(data), len(views), *(view.nbytes for view in views)]
    stream.write(b"".join(n.to_bytes(8, "little") for n in header))
    stream.write(data)
    for view in views:
        stream.write(view)
    stream.flush()


def _receive(stream: Any) -> Any:
    """What :func:`_send` wrote: each out-of-band buffer read into fresh memory (a numpy byte
    array: not zeroed first; the read releases the GIL), the arrays unpickled onto it (no
    copy; writable)."""
    data, buffers = _read_message(stream)
    return pickle.loads(data, buffers=buffers)


def _read_message(stream: Any) -> tuple[bytes, list]:
    """The pickle and the out-of-band buffers of a message (:func:`_receive`)."""
    import numpy as np

    size, count = (int.from_bytes(part, "little") for part in _split(_exactly(stream, 16)))
    lengths = [int.from_bytes(part, "little") for part in _split(_exactly(stream, 8 * count))]
    data = _exactly(stream, size)
    buffers = []
    for length in lengths:
        memory = np.empty(length, np.uint8)
        view, done = memoryview(memory), 0
        while done < length:
            got = stream.readinto(view[done:])
            if not got:
                raise EOFError("a truncated answer")
            done += got
        buffers.append(memory)
    return data, buffers


def _split(data: bytes) -> list[bytes]:
    return [data[i : i + 8] for i in range(0, len(data), 8)]


def _exactly(stream: Any, size: int) -> bytes:
    data = stream.read(size)
    if len(data) < size:
        raise EOFError("no answer" if not data else "a truncated answer")
    return data


def _waiting(stream: Any) -> bool:  # pragma: no cover - runs in the child process
    """Whether a request can be read from ``stream`` without waiting (its pipe has data)."""
    import select

    try:
        return bool(select.select([stream.fileno()], [], [], 0)[0])
    except (OSError, ValueError):
        return True


def _warm_import(module: str) -> None:  # pragma: no cover - runs in the child process
    import importlib

    try:
        importlib.import_module(module)
    except Exception:  # the call's own import raises it where it belongs
        pass


def _warm_library() -> None:  # pragma: no cover - runs in the child process
    try:
        from napari_sigma.minerals.library import load_library

        load_library(None)
    except Exception:
        pass


def _serve() -> None:  # pragma: no cover - runs in the child process
    """Answer calls from stdin until it closes; whenever no call waits, import the next of
    :data:`WARM_MODULES` of the expected calls (its arguments, in their order) and the mineral
    library."""
    import importlib
    import traceback

    from napari_sigma.pipeline.import_docs import unrendered_from_now_on

    unrendered_from_now_on()  # docstrings nobody reads here (matplotlib's: ~0.25 s of imports)
    try:  # a lower scheduling priority than its parent's (ChildProcess's nice)
        os.nice(int(os.environ.get("NAPARI_SIGMA_CHILD_NICE", "0")))
    except (AttributeError, OSError, ValueError):
        pass
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # nothing but the answers goes to the pipe
    requests = sys.stdin.buffer
    expected = sys.argv[1:]
    warm_ups: list[Any] = [
        partial(_warm_import, module) for call in expected for module in WARM_MODULES.get(call, ())
    ]
    if "write_mineral_report" in expected:  # the mineral library, parsed once per process
        warm_ups.append(_warm_library)  # (~1 s), before the report asks
    while True:
        # warm up while no call waits: the first call (the export's phase statistics) is
        # answered once its own modules are in, not after every expected call's (seconds)
        while warm_ups and not _waiting(requests):
            warm_ups.pop(0)()
        try:
            request, buffers = _read_message(requests)
        except EOFError:
            return
        try:
            name, args, kwargs = pickle.loads(request, buffers=buffers)
            module, function = CALLS[name]
            value = getattr(importlib.import_module(module), function)(*args, **kwargs)
            buffers = []
            answer = _dumps(("ok", value), buffers)
        except BaseException as error:
            text = f"{type(error).__name__}: {error}\n{traceback.format_exc()}"
            buffers = []
            answer = _dumps(("error", text), buffers)
        _write_message(answers, answer, buffers)
        # nothing of this call kept while the child waits for the next (napari's export child
        # lives for the session: a cube of up to 64 MiB and its report held idle)
        request = buffers = answer = name = args = kwargs = value = None
