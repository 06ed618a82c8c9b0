"""Fuzzing benchmark of the readers: mutated copies of every real file in ../shared/data/eds.

Each case is a copy of one real file with a recorded mutation (bit flips, a truncation, an
overwritten block, an edited header field: a binary integer or an ASCII number), read through one
of the two entry points a user reaches: the core ``read_any`` (eager; lazy for JEOL event streams,
as napari reads them) and napari's reader ``get_reader(path)(path)``. Even cases use the core,
odd cases napari. Cases run in a pool of worker processes with a time limit per case; each ends as

- ``read``: a spectrum image or spectrum came back;
- ``clean``: the package's own ``SpectrumImageError`` (one line naming the file and the cause);
- ``other``: any other exception (a defect: a foreign exception reached the caller);
- ``death``: the worker process died (a defect: the caller would be gone, napari or a batch);
- ``hang``: no answer within the time limit (a defect).

Inputs of the last three are saved under ``OUT/crashers/`` (the mutant and its mutation as JSON)
for regression tests, which regenerate them from the real file and the recorded mutation.

    nice python benchmarks/bench_fuzz.py --cases 1000 --workers 2 --out bench_out/fuzz

``--in-process`` reads without the child-process isolation (``NAPARI_SIGMA_ISOLATE=0``), to
measure what the isolation prevents.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from multiprocessing.connection import wait
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
EDS_DIR = Path(
    os.environ.get("NAPARI_SIGMA_SHARED_EDS", REPO_ROOT.parent / "shared" / "data" / "eds")
)
OUTCOMES = ("read", "clean", "other", "death", "hang")
SLOW_SUFFIXES = (".pts", ".asw")  # a 512 x 512 x 4096 JEOL cube: 10-30 s per read


# ----------------------------------------------------------------------------- mutations


def apply_mutation(content: bytes, ops: list[list]) -> bytes:
    """Apply splices ``[offset, removed_length, inserted_hex]`` in order (the recorded mutation)."""
    data = bytearray(content)
    for offset, removed, inserted in ops:
        data[offset : offset + removed] = bytes.fromhex(inserted)
    return bytes(data)


def make_mutation(content: bytes, rng: np.random.Generator) -> tuple[str, list[list]]:
    """A random mutation of ``content``: its kind and its splices."""
    size = len(content)
    kind = str(rng.choice(["flip", "truncate", "block", "header_int", "header_number"]))
    head = min(size, 4096)
    if kind == "flip":
        n = int(rng.integers(1, 33))
        span = head if rng.random() < 0.5 else size
        ops = []
        for offset in rng.integers(0, span, n):
            value = content[offset] ^ int(rng.integers(1, 256))
            ops.append([int(offset), 1, f"{value:02x}"])
        return kind, ops
    if kind == "truncate":
        length = (
            int(size * (1 - rng.random() ** 3))
            if rng.random() < 0.5
            else int(rng.integers(0, size))
        )
        return kind, [[length, size - length, ""]]
    if kind == "block":
        length = int(rng.integers(8, 8193))
        offset = int(rng.integers(0, max(size - 8, 1)))
        fill = rng.choice(["random", "zeros", "ones"])
        block = {"random": rng.bytes(length), "zeros": bytes(length), "ones": b"\xff" * length}[
            fill
        ]
        return kind, [[offset, min(length, size - offset), block.hex()]]
    if kind == "header_int":
        width = int(rng.choice([1, 2, 4, 8]))
        offset = int(rng.integers(0, max(head - width, 1))) // width * width
        extremes = [0, 1, 2 ** (8 * width - 1) - 1, 2 ** (8 * width) - 1, 2 ** (8 * width - 1)]
        if rng.random() < 0.7:
            value = extremes[int(rng.integers(0, len(extremes)))]
        else:
            value = int(rng.integers(0, 2**31)) % (2 ** (8 * width))
        return kind, [[offset, width, value.to_bytes(width, "little").hex()]]
    numbers = _ascii_numbers(content)
    if not numbers:
        return make_mutation(content, rng)
    start, end = numbers[int(rng.integers(0, len(numbers)))]
    choices = ["0", "-1", "9" * (end - start), "99999999", "1e308", "nan", "-2147483648", ""]
    text = str(rng.choice(choices))
    return kind, [[start, end - start, text.encode().hex()]]


def _ascii_numbers(content: bytes, limit: int = 2**18) -> list[tuple[int, int]]:
    """Spans of ASCII digit runs in the first 256 KiB (XML and text headers)."""
    head = np.frombuffer(content[:limit], dtype=np.uint8)
    digit = (head >= 48) & (head <= 57)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], digit.astype(np.int8), [0]])))
    spans = list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))
    return spans[:: max(len(spans) // 5000, 1)]


# ----------------------------------------------------------------------------- cases


@dataclass(frozen=True)
class Case:
    """One mutated file and the entry point that reads it."""

    index: int
    number: int  # within its format: the mutation is make_mutation(rng([seed, fmt code, number]))
    format: str
    source: str  # relative to EDS_DIR
    kind: str
    ops: list
    entry: str  # "core" or "napari"


def real_files() -> dict[str, list[str]]:
    """The readable real files by format (lower-case extension), relative to ``EDS_DIR``."""
    from napari_sigma.io.readers.reading import is_supported

    by_format: dict[str, list[str]] = defaultdict(list)
    for path in sorted(EDS_DIR.rglob("*")):
        if path.is_file() and is_supported(path):
            by_format[path.suffix.lower()].append(path.relative_to(EDS_DIR).as_posix())
    return dict(by_format)


def make_cases(n_cases: int, n_slow: int, seed: int, formats: list[str] | None) -> list[Case]:
    """``n_cases`` cases per format (``n_slow`` for JEOL event streams), files taken in turn."""
    cases = []
    for fmt, files in real_files().items():
        if formats and fmt not in formats:
            continue
        count = n_slow if fmt in SLOW_SUFFIXES else n_cases
        contents = {name: (EDS_DIR / name).read_bytes() for name in files}
        for i in range(count):
            name = files[i % len(files)]
            rng = np.random.default_rng([seed, sum(map(ord, fmt)), i])
            kind, ops = make_mutation(contents[name], rng)
            entry = "core" if i % 2 == 0 else "napari"
            cases.append(Case(len(cases), i, fmt, name, kind, ops, entry))
    return cases


# ----------------------------------------------------------------------------- workers


def _worker(connection, workdir: str) -> None:
    """Read cases sent through ``connection`` until it closes; answer (outcome, detail)."""
    from napari_sigma._napari.reader import get_reader, reads_lazily
    from napari_sigma.errors import SpectrumImageError
    from napari_sigma.io.readers.reading import read_any

    root = Path(workdir)
    shutil.copytree(EDS_DIR / "jeol", root / "jeol")  # JEOL projects point at their Sample folder
    while True:
        try:
            case = connection.recv()
        except EOFError:
            return
        target = root / case.source
        if not case.source.startswith("jeol/"):
            target = root / Path(case.source).name
        original = (EDS_DIR / case.source).read_bytes()
        target.write_bytes(apply_mutation(original, case.ops))
        try:
            if case.entry == "core":
                read_any(target, lazy=reads_lazily(target))
            else:
                reader = get_reader(str(target))
                if reader is None:
                    raise RuntimeError("get_reader declined a supported file")
                reader(str(target))
            answer = ("read", "")
        except SpectrumImageError as error:
            answer = ("clean", str(error)[:200])
        except Exception as exc:
            answer = ("other", f"{type(exc).__name__}: {exc}"[:300])
        finally:
            target.write_bytes(original)
        connection.send(answer)


class Pool:
    """Worker processes (spawned) with one case each at a time; dead or stuck ones are replaced."""

    def __init__(self, n_workers: int, workdir: Path) -> None:
        self.context = multiprocessing.get_context("spawn")
        self.workdir = workdir
        self.slots = [self._start(i) for i in range(n_workers)]

    def _start(self, slot: int):
        parent, child = self.context.Pipe()
        folder = self.workdir / f"worker{slot}_{time.monotonic_ns()}"
        folder.mkdir()
        process = self.context.Process(target=_worker, args=(child, str(folder)), daemon=True)
        process.start()
        child.close()
        return {"process": process, "conn": parent, "case": None, "since": 0.0, "slot": slot}

    def restart(self, slot: dict) -> dict:
        slot["process"].kill()
        slot["process"].join(5)
        fresh = self._start(slot["slot"])
        self.slots[slot["slot"]] = fresh
        return fresh

    def close(self) -> None:
        for slot in self.slots:
            slot["conn"].close()
            slot["process"].join(5)
            if slot["process"].is_alive():
                slot["process"].kill()


def run_cases(cases: list[Case], n_workers: int, time_limit: float, out: Path) -> list[dict]:
    """Run every case; return one record per case."""
    workdir = Path(tempfile.mkdtemp(prefix="bench_fuzz_"))
    pool, queue, records = Pool(n_workers, workdir), list(reversed(cases)), []
    started, printed = time.monotonic(), 0
    try:
        while queue or any(slot["case"] is not None for slot in pool.slots):
            for slot in pool.slots:
                if slot["case"] is None and queue:
                    slot["case"], slot["since"] = queue.pop(), time.monotonic()
                    slot["conn"].send(slot["case"])
            busy = {slot["conn"]: slot for slot in pool.slots if slot["case"] is not None}
            for conn in wait(list(busy), timeout=1.0):
                slot = busy[conn]
                try:
                    outcome, detail = conn.recv()
                except (EOFError, OSError):
                    code = slot["process"].exitcode
                    outcome, detail = "death", f"worker exit code {code}"
                    slot = pool.restart(slot)
                    records.append(_record(busy[conn]["case"], outcome, detail, busy[conn]))
                    continue
                records.append(_record(slot["case"], outcome, detail, slot))
                slot["case"] = None
            now = time.monotonic()
            for slot in list(pool.slots):
                if slot["case"] is not None and now - slot["since"] > time_limit:
                    records.append(_record(slot["case"], "hang", f"> {time_limit:g} s", slot))
                    pool.restart(slot)
            if len(records) >= printed + 200:
                printed = len(records)
                _progress(records, len(cases), started)
    finally:
        pool.close()
        shutil.rmtree(workdir, ignore_errors=True)
    _save_crashers(records, cases, out)
    return records


def _record(case: Case, outcome: str, detail: str, slot: dict) -> dict:
    return {
        "index": case.index,
        "number": case.number,
        "format": case.format,
        "source": case.source,
        "kind": case.kind,
        "entry": case.entry,
        "outcome": outcome,
        "detail": detail,
        "seconds": round(time.monotonic() - slot["since"], 3),
    }


def _progress(records: list[dict], total: int, started: float) -> None:
    counts = Counter(r["outcome"] for r in records)
    line = ", ".join(f"{k} {counts[k]}" for k in OUTCOMES)
    print(f"  {len(records)}/{total} cases, {time.monotonic() - started:.0f} s: {line}", flush=True)


def _save_crashers(records: list[dict], cases: list[Case], out: Path) -> None:
    by_index = {case.index: case for case in cases}
    folder = out / "crashers"
    for record in records:
        if record["outcome"] in ("read", "clean"):
            continue
        folder.mkdir(parents=True, exist_ok=True)
        case = by_index[record["index"]]
        stem = f"{case.index:05d}_{record['outcome']}_{Path(case.source).name}"
        mutant = apply_mutation((EDS_DIR / case.source).read_bytes(), case.ops)
        (folder / stem).write_bytes(mutant)
        (folder / f"{stem}.json").write_text(json.dumps({**record, "ops": case.ops}))


# ----------------------------------------------------------------------------- report


def summarise(records: list[dict]) -> dict[str, dict[str, int]]:
    """Outcome counts per format and entry point, and in all."""
    table: dict[str, Counter] = defaultdict(Counter)
    for record in records:
        table[record["format"]][record["outcome"]] += 1
        table[f"{record['format']} ({record['entry']})"]["cases"] += 1
        table["all"][record["outcome"]] += 1
    return {key: dict(value) for key, value in table.items()}


def print_table(records: list[dict], seconds: float) -> None:
    """The per-format table of outcomes."""
    by_format: dict[str, Counter] = defaultdict(Counter)
    for record in records:
        by_format[record["format"]][record["outcome"]] += 1
    header = f"{'format':<8}{'cases':>7}" + "".join(f"{k:>7}" for k in OUTCOMES) + f"{'max s':>8}"
    print(header)
    for fmt in [*sorted(by_format), "all"]:
        rows = records if fmt == "all" else [r for r in records if r["format"] == fmt]
        counts = Counter(r["outcome"] for r in rows)
        slowest = max((r["seconds"] for r in rows), default=0.0)
        cells = "".join(f"{counts[k]:>7}" for k in OUTCOMES)
        print(f"{fmt:<8}{len(rows):>7}{cells}{slowest:>8.1f}")
    print(f"wall time {seconds:.0f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1000, help="cases per format")
    parser.add_argument("--slow-cases", type=int, default=None, help="cases for .pts/.asw")
    parser.add_argument("--formats", default=None, help="comma-separated extensions (.bcf,.emd)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--time-limit", type=float, default=120.0, help="seconds per case")
    parser.add_argument("--read-timeout", type=float, default=60.0, help="isolated read limit")
    parser.add_argument("--read-memory-gib", type=float, default=4.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--in-process", action="store_true", help="no child-process isolation")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench_out" / "fuzz")
    args = parser.parse_args(argv)
    if not EDS_DIR.is_dir():
        print(f"no real files at {EDS_DIR}", file=sys.stderr)
        return 2
    os.environ["NAPARI_SIGMA_READ_TIMEOUT"] = str(args.read_timeout)
    os.environ["NAPARI_SIGMA_READ_MEMORY"] = str(int(args.read_memory_gib * 2**30))
    os.environ["NAPARI_SIGMA_ISOLATE"] = "0" if args.in_process else "1"
    formats = args.formats.split(",") if args.formats else None
    slow = args.cases if args.slow_cases is None else args.slow_cases
    cases = make_cases(args.cases, slow, args.seed, formats)
    args.out.mkdir(parents=True, exist_ok=True)
    print(
        f"{len(cases)} cases, {args.workers} workers, isolation {not args.in_process}", flush=True
    )
    started = time.monotonic()
    records = run_cases(cases, args.workers, args.time_limit, args.out)
    seconds = time.monotonic() - started
    print_table(records, seconds)
    summary = {"seconds": round(seconds, 1), "args": vars(args) | {"out": str(args.out)}}
    summary["outcomes"] = summarise(records)
    (args.out / "fuzz.json").write_text(json.dumps({**summary, "records": records}, indent=1))
    bad = sum(r["outcome"] in ("other", "death", "hang") for r in records)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
