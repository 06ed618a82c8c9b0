"""Checks shared by the tests of a module split: the names moved out of a module stay importable
from it (the same objects, defined in their new home), and each module imports first in a fresh
process (no import cycle)."""

import importlib
import subprocess
import sys
from collections.abc import Iterable, Mapping


def assert_moved_names_kept(package: str, old: str, moved: Mapping[str, Iterable[str]]) -> None:
    """Each name of ``moved`` (new module -> names) is importable from ``package.old`` as the same
    object as in ``package.<new module>``, and a callable is defined there, not imported."""
    before = importlib.import_module(f"{package}.{old}")
    for module, names in moved.items():
        home = importlib.import_module(f"{package}.{module}")
        for name in names:
            assert getattr(before, name) is getattr(home, name), name
            if callable(getattr(home, name)):  # defined there, not imported into it
                assert getattr(home, name).__module__ == home.__name__, name


def assert_each_imports_first(package: str, modules: Iterable[str]) -> None:
    """``import package.<module>`` succeeds as the first import of a fresh interpreter."""
    for module in modules:
        code = f"import {package}.{module}"
        assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0, module
