"""The speed benchmark's part 3 bookkeeping: rounds in alternating order, per-round ratios, medians."""

import argparse
import importlib
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        yield importlib.import_module("bench_speed")
    finally:
        sys.path.remove(str(BENCHMARKS))


def _row(config, round_, process_s, user_s=1.0, sys_s=1.0, read_s=1.0, pass_s=0.5):
    row = {"size": 64, "config": config, "round": round_, "process_s": process_s}
    row.update(user_s=user_s, sys_s=sys_s, peak_rss_mb=10.0)
    if config != "end_to_end":
        row.update(read_s=read_s, pass_s=pass_s)
    return row


def test_rounds_alternate_their_order(bench, monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(bench, "load_cube", lambda stem: (None, ("O_Ka",), 2))
    monkeypatch.setattr(bench, "write_hspy", lambda path, image, lines: path.touch() or path)
    monkeypatch.setattr(
        bench,
        "_measure_e2e_process",
        lambda cube, size, label, round_, *rest: calls.append((round_, label)) or {},
    )
    args = argparse.Namespace(e2e_repeats=3, threads=1)
    rows = bench.measure_end_to_end(tmp_path / "cube_64", 64, args)
    order = ["read_pass", "end_to_end", "read_pass_isolated"]
    assert calls == [(0, k) for k in order] + [(1, k) for k in order[::-1]] + [
        (2, k) for k in order
    ]
    assert len(rows) == 9 and not (tmp_path / "e2e_64.hspy").exists()


def test_ratios_are_medians_of_rounds_and_cheapest_takes_the_faster_read(bench):
    rows = [
        _row("read_pass", 0, 10.0),
        _row("end_to_end", 0, 24.0, user_s=20.0, sys_s=4.0),
        _row("read_pass_isolated", 0, 6.0),
        _row("read_pass_isolated", 1, 8.0),
        _row("end_to_end", 1, 30.0, user_s=24.0, sys_s=6.0),
        _row("read_pass", 1, 7.5),
        _row("read_pass", 2, 8.0),
        _row("end_to_end", 2, 25.0, user_s=20.0, sys_s=5.0),
        _row("read_pass_isolated", 2, 5.0),
    ]
    by_floor = {r["floor"]: r for r in bench.end_to_end_ratios(rows)}
    assert set(by_floor) == {"read_pass", "read_pass_isolated", "cheapest"}
    inside = by_floor["read_pass"]
    # each round's run against the floor measured beside it: 2.4, 4.0, 3.125
    assert inside["ratio"] == pytest.approx(3.12, abs=0.01)
    assert (inside["ratio_min"], inside["ratio_max"]) == (2.4, 4.0)
    assert inside["end_to_end_s"] == 25.0 and inside["read_pass_process_s"] == 8.0
    assert inside["rounds"] == 3
    # CPU: 24 / 2, 30 / 2, 25 / 2
    assert inside["cpu_ratio"] == 12.5
    cheapest = by_floor["cheapest"]
    # the faster read of each round: 6.0, 7.5, 5.0 -> 4.0, 4.0, 5.0
    assert cheapest["ratio"] == 4.0 and cheapest["read_pass_process_s"] == 6.0


def test_a_failed_process_gives_no_ratio(bench):
    rows = [
        _row("read_pass", 0, 10.0),
        dict(_row("end_to_end", 0, 24.0), error="exit 1"),
        _row("read_pass_isolated", 0, 6.0),
    ]
    assert bench.end_to_end_ratios(rows) == []


def test_page_cache_and_memory_state_of_a_file(bench, tmp_path):
    path = tmp_path / "cube.bin"
    path.write_bytes(b"\1" * (3 * 2**20 + 5))
    assert bench.read_through(path, block=2**20) >= 0.0
    cached = bench.page_cache_mb(path)
    assert cached is None or 0.0 <= cached <= 3.1  # just read: normally all of it
    (tmp_path / "empty.bin").touch()
    assert bench.page_cache_mb(tmp_path / "empty.bin") == 0.0
    state = bench.memory_state()
    if Path("/proc/meminfo").exists():
        assert state["mem_free_mb"] > 0 and state["mem_available_mb"] > 0


def test_the_cli_configuration_is_checked_for_the_same_labels(bench):
    rows = [
        {"size": 64, "config": "ours_b2", "device": "cpu", "labels_sha1": "a"},
        {"size": 64, "config": "ours_b2_cli", "device": "cpu", "labels_sha1": "a"},
        {"size": 128, "config": "ours_b2", "device": "cpu", "labels_sha1": "b"},
        {"size": 128, "config": "ours_b2_cli", "device": "cpu", "labels_sha1": "c"},
    ]
    assert bench.same_labels(rows) == [
        "64 cpu: ours_b2_cli labels = ours_b2's: True",
        "128 cpu: ours_b2_cli labels = ours_b2's: False",
    ]
    assert "ours_b2_cli" in bench.OURS_B2
    settings = bench.worker_settings("ours_b2_cli", ("O_Ka",), 3, "cpu")
    assert settings == bench.worker_settings("ours_b2", ("O_Ka",), 3, "cpu")


def test_ratios_to_emsigma_include_the_process_cpu(bench):
    rows = [
        {"size": 256, "config": "emsigma", "process_s": 50.0, "process_cpu_s": 60.0,
         "pipeline_s": 40.0},
        {"size": 256, "config": "ours_b2_cli", "device": "cpu", "process_s": 5.0,
         "process_cpu_s": 4.0, "pipeline_s": 4.0},
        {"size": 256, "config": "ours_b2", "device": "cpu", "process_s": 8.0, "pipeline_s": 6.0},
    ]  # fmt: skip
    by_config = {r["config"]: r for r in bench.ratio_rows(rows)}
    assert by_config["ours_b2_cli"]["process_ratio"] == 10.0
    # under load the walls measure the load: emsigma's CPU over ours
    assert by_config["ours_b2_cli"]["process_cpu_ratio"] == 15.0
    assert by_config["ours_b2"]["process_cpu_ratio"] is None  # no CPU figure: no ratio


def test_the_worker_reports_torch_as_the_run_left_it(bench, tmp_path):
    import json

    cube = tmp_path / "cube"
    bench.save_cube(32, 0, cube, "six", 30.0)
    out = tmp_path / "out.json"
    torch_before = "torch" in sys.modules
    bench.worker(cube, "ours_b2_cli", "cpu", out)
    info = json.loads(out.read_text())
    assert info["torch_imported"] == ("torch" in sys.modules)
    assert (info["torch_threads"] is None) == (not info["torch_imported"])
    if not torch_before:  # the report itself imports nothing
        assert info["torch_imported"] or "torch" not in sys.modules


def test_the_cli_worker_keeps_freed_memory_as_the_command_does(bench, monkeypatch, tmp_path):
    """ours_b2_cli's worker process is the command's: freed memory kept for reuse first
    (cli.main's keep_freed_memory), the run, then the command's end; other configurations
    leave the C library alone."""
    from napari_sigma import cli
    from napari_sigma.io.readers import _memory

    calls = []
    monkeypatch.setattr(_memory, "keep_freed_memory", lambda: calls.append("keep"))
    monkeypatch.setattr(bench, "worker", lambda *args: calls.append("worker"))
    monkeypatch.setattr(cli, "end_process", lambda code: calls.append("end"))
    for config, expected in (("ours_b2_cli", ["keep", "worker", "end"]), ("ours_b2", ["worker"])):
        calls.clear()
        bench.main(["--worker", "--cube", str(tmp_path / "c"), "--config", config,
                    "--worker-out", str(tmp_path / "o.json")])  # fmt: skip
        assert calls == expected


def test_the_sources_are_precompiled_for_the_measurement_and_left_as_they_were(bench):
    """As an installed package: the measured processes find the project's bytecode; the files
    made for them are removed at the end (the tree as before); --no-precompile: nothing made."""
    import importlib.util

    import napari_sigma

    package = Path(napari_sigma.__file__).resolve().parent
    module = package / "pipeline" / "preimport.py"
    cached = importlib.util.cache_from_source(str(module))

    def pycs():
        return {str(f) for f in (*package.rglob("*.pyc"), *BENCHMARKS.rglob("*.pyc"))}

    before = pycs()
    with bench.precompiled_sources(False) as info:
        assert info == {"precompiled": None} and pycs() == before
    with bench.precompiled_sources() as info:
        assert set(info["precompiled"]) == {str(package), str(BENCHMARKS)}
        assert Path(cached).exists()
        assert pycs() >= before
    assert pycs() == before


def test_the_emsigma_comparisons_rows_of_the_same_size_are_no_floor(bench):
    """Part 2's rows (ours against emsigma) of a size that part 3 also measures are not read +
    pass floors: the default sizes (``--emsigma-sizes 128,256 --e2e-sizes 256``) gave a KeyError."""
    rows = [
        _row("read_pass", 0, 10.0),
        _row("end_to_end", 0, 24.0),
        _row("read_pass_isolated", 0, 6.0),
        dict(_row("ours_b2_cli", 0, 2.0), pipeline_s=1.7),
        dict(_row("emsigma", 0, 64.0), pipeline_s=53.2),
    ]
    floors = {r["floor"] for r in bench.end_to_end_ratios(rows)}
    assert floors == {"read_pass", "read_pass_isolated", "cheapest"}
