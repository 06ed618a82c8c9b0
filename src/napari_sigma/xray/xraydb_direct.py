"""xraydb's atomic and X-ray tables read with the standard library's ``sqlite3``.

xraydb (Elam, Ravel & Sieber 2002 and the other tables of its ``xraydb.sqlite``) reaches its
database through SQLAlchemy: importing it imports SQLAlchemy and ``XrayDB()`` reflects the
database's schema, 0.3-0.5 s of CPU in every process that names a phase (the minerals stage of
a 256^2 map: about a third of it). The functions here are those of xraydb this package calls,
made by the same queries on the same file (the rows in the same order) and the same code after
them, so they return the same values (tests/xray/test_xraydb_direct.py compares every element
with xraydb's own). Only the file is shared: xraydb itself is imported where something here
does not cover (``mu_elam``'s fallback).
"""

from __future__ import annotations

import importlib.util
import os
import sqlite3
import threading
from collections import namedtuple
from types import SimpleNamespace
from typing import Any

# xraydb's own record types (xraydb/xraydb.py), field for field
XrayEdge = namedtuple("XrayEdge", ("energy", "fyield", "jump_ratio"))
XrayLine = namedtuple("XrayLine", ("energy", "intensity", "initial_level", "final_level"))
ElementData = namedtuple("ElementData", ("Z", "symbol", "name", "mass", "density"))

_lock = threading.Lock()
_database: _Database | None = None
_chemparse: Any = None


def _package_dir() -> str:
    """xraydb's folder, found without importing it."""
    spec = importlib.util.find_spec("xraydb")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("xraydb is not installed")
    return next(iter(spec.submodule_search_locations))


def _element_index(rows) -> tuple[dict, dict, dict]:
    """The elements' rows by atomic number, symbol and name (each the first row of its key, in
    the table's order: the row xraydb's search of the rows finds)."""
    by_number: dict = {}
    by_symbol: dict = {}
    by_name: dict = {}
    for row in rows:
        by_number.setdefault(row.atomic_number, row)
        by_symbol.setdefault(row.element, row)
        by_name.setdefault(row.name, row)
    return by_number, by_symbol, by_name


class _Database:
    """The part of ``xraydb.XrayDB`` this package uses, on a read-only sqlite3 connection."""

    def __init__(self, path: str) -> None:
        # one connection shared by the threads of a process (read-only; calls serialised)
        self._path = path
        self._connection = self._connect()
        self._cache: dict[str, Any] = {}
        self._by_number, self._by_symbol, self._by_name = _element_index(self.get_cache("elements"))

    def _connect(self) -> sqlite3.Connection:
        uri = "file:" + self._path + "?mode=ro"
        return sqlite3.connect(uri, uri=True, check_same_thread=False)

    def reconnect(self) -> None:
        """A new connection to the same file (a forked child's: SQLite's connections must not
        cross a fork); the rows read so far are kept."""
        self._connection = self._connect()

    def _rows(self, sql: str, parameters: tuple = ()) -> list[SimpleNamespace]:
        with _lock:
            cursor = self._connection.execute(sql, parameters)
            columns = [d[0] for d in cursor.description]
            return [
                SimpleNamespace(**dict(zip(columns, row, strict=True))) for row in cursor.fetchall()
            ]

    def get_cache(self, tablename: str, column: str | None = None, value: Any = None):
        """``XrayDB.get_cache``: a table's rows (``column == value`` only), cached."""
        if not tablename.isidentifier() or (column is not None and not column.isidentifier()):
            raise ValueError(f"not a table or column name: {tablename!r} {column!r}")
        if column is None:
            if tablename not in self._cache:
                self._cache[tablename] = self._rows(f"SELECT * FROM {tablename}")
            return self._cache[tablename]
        data = self._cache.setdefault(tablename, {})
        key = f"{column:s}_{value!r}"
        if key not in data:
            data[key] = self._rows(f"SELECT * FROM {tablename} WHERE {column} = ?", (value,))
        return data[key]

    def _elem_data(self, element) -> ElementData:
        if isinstance(element, int):
            row = self._by_number.get(element)
            if row is None:
                raise IndexError("list index out of range")  # an unknown number, as xraydb
        elif element.title() in self._by_symbol:
            row = self._by_symbol[element.title()]
        elif element.lower() in self._by_name:
            row = self._by_name[element.lower()]
        else:
            raise ValueError(f"unknown element '{element!r}'")
        return ElementData(
            int(row.atomic_number), row.element.title(), row.name, row.molar_mass, row.density
        )

    def symbol(self, element) -> str:
        return self._elem_data(element).symbol

    def xray_edges(self, element) -> dict[str, XrayEdge]:
        """A new dict each call; the rows read once per element."""
        symbol = self.symbol(element)
        edges = self._cache.setdefault("_xray_edges", {})
        found = edges.get(symbol)
        if found is None:
            found = {}
            for r in self._rows("SELECT * FROM xray_levels WHERE element = ?", (symbol,)):
                found[str(r.iupac_symbol)] = XrayEdge(
                    r.absorption_edge, r.fluorescence_yield, r.jump_ratio
                )
            edges[symbol] = found
        return dict(found)

    def xray_lines(self, element, initial_level=None, excitation_energy=None):
        elem = self.symbol(element)
        sql, parameters = "SELECT * FROM xray_transitions WHERE element = ?", [elem]
        if excitation_energy is not None:
            initial_level = []
            for level, edge in self.xray_edges(elem).items():
                if edge[0] < excitation_energy:
                    initial_level.append(level.title())
        if initial_level is not None:
            if isinstance(initial_level, (list, tuple)):
                if not initial_level:
                    return {}  # SQLAlchemy's empty IN: no row
                sql += f" AND initial_level IN ({', '.join('?' * len(initial_level))})"
                parameters += list(initial_level)
            else:
                sql += " AND initial_level = ?"
                parameters.append(initial_level.title())
        out = {}
        for r in self._rows(sql, tuple(parameters)):
            out[str(r.siegbahn_symbol)] = XrayLine(
                r.emission_energy, r.intensity, r.initial_level, r.final_level
            )
        return out

    def ck_probability(self, element, initial, final, total=True) -> float:
        rows = self._rows(
            "SELECT * FROM Coster_Kronig WHERE element = ? AND initial_level = ? "
            "AND final_level = ?",
            (self.symbol(element), initial.title(), final.title()),
        )
        out = 0.0
        if rows:
            out = rows[0].transition_probability
            if total:
                out = rows[0].total_transition_probability
        return out


def get_xraydb() -> _Database:
    """The process's database (``xraydb.get_xraydb``'s counterpart), opened on first use."""
    global _database
    if _database is None:
        with _lock:
            path = os.path.join(_package_dir(), "xraydb.sqlite")
            if not os.path.exists(path):
                raise OSError(f"xraydb's database {path} not found")
        database = _Database(path)
        with _lock:
            if _database is None:
                _database = database
    return _database


def _after_fork_in_child() -> None:
    """A forked child gets its own lock and connection (the parent's lock may have been held by
    another thread at the fork; a SQLite connection must not be used across a fork)."""
    global _lock
    _lock = threading.Lock()
    if _database is not None:
        _database.reconnect()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def atomic_number(element) -> int:
    return int(get_xraydb()._elem_data(element).Z)


def atomic_symbol(z) -> str:
    return get_xraydb()._elem_data(z).symbol


def atomic_mass(element) -> float:
    if isinstance(element, int):
        element = atomic_symbol(element)
    return get_xraydb()._elem_data(element).mass


def atomic_density(element) -> float:
    if isinstance(element, int):
        element = atomic_symbol(element)
    return get_xraydb()._elem_data(element).density


def xray_edges(element) -> dict[str, XrayEdge]:
    return get_xraydb().xray_edges(element)


def xray_lines(element, initial_level=None, excitation_energy=None) -> dict[str, XrayLine]:
    return get_xraydb().xray_lines(
        element, initial_level=initial_level, excitation_energy=excitation_energy
    )


def ck_probability(element, initial, final, total=True) -> float:
    return get_xraydb().ck_probability(element, initial, final, total=total)


def chemparse(formula: str) -> dict[str, float]:
    """``xraydb.chemparse``: xraydb's formula parser (its module needs only ``re``), loaded from
    its file without xraydb's package (whose import brings SQLAlchemy)."""
    global _chemparse
    if _chemparse is None:
        import sys

        if "xraydb" in sys.modules:
            _chemparse = sys.modules["xraydb"].chemparse
        else:
            path = os.path.join(_package_dir(), "chemparser.py")
            spec = importlib.util.spec_from_file_location("napari_sigma._xraydb_chemparser", path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            _chemparse = module.chemparse
    return _chemparse(formula)


def mu_elam(element, energy, kind: str = "total"):
    """xraydb's own ``mu_elam`` (imports xraydb: the rare path the tables here do not cover)."""
    import xraydb

    return xraydb.mu_elam(element, energy, kind=kind)
