"""Public names of a package, imported on first use so that importing a package stays cheap; the
old names of modules that moved, kept importable."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from importlib import import_module
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import Any


def lazy_exports(
    package: str, exports: Mapping[str, str]
) -> tuple[Callable[[str], Any], list[str]]:
    """A module ``__getattr__`` and ``__all__`` for ``exports`` (public name -> submodule)."""

    def __getattr__(name: str) -> Any:
        if name in exports:
            return getattr(import_module(f".{exports[name]}", package), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__, sorted(exports)


class _MovedModules:
    """Finds a module by a name it had before it moved (see :func:`moved_modules`): a finder
    of ``sys.meta_path`` and the loader of what it finds."""

    def __init__(self) -> None:
        self.homes: dict[str, str] = {}

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> ModuleSpec | None:
        return ModuleSpec(fullname, self) if fullname in self.homes else None

    def create_module(self, spec: ModuleSpec) -> None:
        return None  # a placeholder, replaced in sys.modules by exec_module

    def exec_module(self, module: ModuleType) -> None:
        sys.modules[module.__name__] = import_module(self.homes[module.__name__])

    def get_code(self, fullname: str) -> Any:
        """The moved module's code, for ``python -m`` of an old name (run as ``__main__``, as
        ``python -m`` of the new name runs it)."""
        from importlib.util import find_spec

        spec = find_spec(self.homes[fullname])
        return spec.loader.get_code(spec.name)


def moved_modules(package: str, homes: Mapping[str, str]) -> None:
    """Keep the old names of ``package``'s moved modules importable (``homes``: the old name,
    relative to ``package`` -> the module's full name now): ``import package.old`` (and
    ``from package.old import x``, ``importlib.import_module``) gives the moved module itself,
    the same object, so a name patched through either path is patched for both. Nothing is
    imported until an old name is; ``python -m package.old`` runs the moved module's code."""
    finder = next((f for f in sys.meta_path if isinstance(f, _MovedModules)), None)
    if finder is None:
        finder = _MovedModules()
        sys.meta_path.insert(0, finder)
    finder.homes.update({f"{package}.{old}": new for old, new in homes.items()})
