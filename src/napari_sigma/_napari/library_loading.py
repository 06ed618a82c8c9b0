"""Extension modules imported by other threads wait, without the GIL, while a thread loads a large
shared library (torch's, :func:`~napari_sigma.compute.device.load_torch_libraries`).

The compute preload loads torch's libraries through the C library's ``dlopen`` without the GIL,
so that napari's main thread runs meanwhile. But ``dlopen`` holds the process's dynamic-loader
lock for all of it (0.2-0.4 s: libtorch_cpu's relocations, more under load), and a thread that
imports an extension module meanwhile (the Spectrum tab's element suggestion importing
``scipy.interpolate`` as the plugin docks) calls ``dlopen`` too, holding the GIL, and waits there
for the loader lock: napari's main thread waits for that GIL (measured without napari: 84-212 ms
of sleep in one gap, 4 of 4 runs, load 11-16; napari's heartbeat on the 30x30 ``.bcf``: 0.9-1.4 s
gaps of the dock step with 146-462 ms of the preload thread's CPU, main and base alike).

:func:`extension_imports_wait` puts a finder first on :data:`sys.meta_path` for the duration:
an import that the rest of the import system would load from an extension file waits (an event,
GIL released, in its loader: not under the import system's global lock) until the block ends,
then loads as before; other imports (pure Python modules,
modules already imported) go on at once, and the thread that loads the library is not held.
"""

from __future__ import annotations

import contextlib
import importlib.machinery
import sys
import threading
from collections.abc import Iterator
from typing import Any

LONGEST_WAIT_S = 30.0  # a hang bound: an import never waits longer than this for the load
_active: list[_ExtensionGate] = []  # the loads under way (their gates)


class _ExtensionGate:
    """A meta-path finder that holds back the loading of extension modules (see module doc).

    It finds what the finders after it find; an extension module's spec gets a loader that
    waits for the block's end in ``create_module`` (under the module's own import lock only:
    ``find_spec`` runs under the import system's global lock, where a wait would hold every
    other thread's imports too)."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.owner = threading.get_ident()
        self.waited: list[str] = []  # the imports held back (names), for tests and notes

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if self.done.is_set() or threading.get_ident() == self.owner:
            return None
        spec = self._spec_from_the_others(name, path, target)
        if spec is not None and isinstance(spec.loader, importlib.machinery.ExtensionFileLoader):
            spec.loader = _LoaderAfterTheLoad(spec.loader, self)
        return spec

    def _spec_from_the_others(self, name: str, path: Any, target: Any) -> Any:
        """The spec the finders after this one give (what the import would load)."""
        for finder in list(sys.meta_path):
            if finder is self:
                continue
            find_spec = getattr(finder, "find_spec", None)
            if find_spec is None:  # a legacy finder: the import system's own way, not held
                return None
            spec = find_spec(name, path, target)
            if spec is not None:
                return spec
        return None


class _LoaderAfterTheLoad:
    """An extension module's loader that first waits for the library load to end (GIL
    released), then gives the spec its own loader back and loads as that loader does."""

    def __init__(self, loader: Any, gate: _ExtensionGate) -> None:
        self.loader, self.gate = loader, gate

    def create_module(self, spec: Any) -> Any:
        if not self.gate.done.is_set():
            self.gate.waited.append(spec.name)
            self.gate.done.wait(LONGEST_WAIT_S)  # without the GIL
        spec.loader = self.loader  # the module's __loader__, and what executes it
        return self.loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        self.loader.exec_module(module)


@contextlib.contextmanager
def extension_imports_wait() -> Iterator[_ExtensionGate]:
    """While the block runs, other threads' imports of extension modules wait for its end,
    without the GIL (the calling thread's own imports are not held)."""
    gate = _ExtensionGate()
    _active.append(gate)
    sys.meta_path.insert(0, gate)
    try:
        yield gate
    finally:
        gate.done.set()
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(gate)
        with contextlib.suppress(ValueError):
            _active.remove(gate)


def wait_for_library_loads(timeout: float = LONGEST_WAIT_S) -> None:
    """Wait (without the GIL) for the loads under way in other threads: for code that calls
    ``dlopen`` itself with the GIL held (``ctypes.CDLL``: threadpoolctl's scan of the process's
    libraries as a worker limits the BLAS/OpenMP pools), which the finder cannot hold back."""
    me = threading.get_ident()
    for gate in list(_active):
        if gate.owner != me:
            gate.done.wait(timeout)
