"""The verdicts bench/bench.py prints for the "Performance" issue's Python
targets: each judged from same-run ratios, n/a when a baseline did not run."""

import importlib.util
import pathlib

import pytest

BENCH = pathlib.Path(__file__).resolve().parent.parent / "bench" / "bench.py"


def load_bench():
    if not BENCH.is_file():
        pytest.skip(f"{BENCH} not found: not run from the repository")
    spec = importlib.util.spec_from_file_location("procq_bench_py", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_targets_are_judged_from_same_run_ratios():
    bench = load_bench()
    rows = [
        ("int", "1P/1C", 1000, {"procq": 1.6e6, "mp.Queue": 1e5, "faster-fifo": 2e5}),
        ("100 B", "2P/2C", 1000, {"procq": 1.4e6, "mp.Queue": 1e5, "faster-fifo": None}),
        ("100 KB", "1P/1C", 100, {"procq unbounded": 2.9e4, "procq": 4e4, "mp.Queue": 1e3,
                                   "mp.Queue unbounded": 1e4}),
    ]
    got = {name: (ratio, need, verdict) for name, ratio, need, verdict in bench.judge(rows)}
    assert got["int 1P/1C: procq / mp.Queue"] == (16.0, 15.0, "met")
    assert got["int 1P/1C: procq / faster-fifo"] == (8.0, 5.0, "met")
    ratio, need, verdict = got["100 B 2P/2C: procq / mp.Queue"]
    assert (round(ratio, 6), need, verdict) == (14.0, 15.0, "NOT MET")
    # faster-fifo not installed: not judged, not failed either.
    assert got["100 B 2P/2C: procq / faster-fifo"] == (None, 5.0, "n/a")
    # The 100 KB target compares the default unbounded queues, not the
    # bounded ones.
    ratio, need, verdict = got["100 KB 1P/1C: procq unbounded / mp.Queue unbounded"]
    assert (round(ratio, 6), need, verdict) == (2.9, 3.0, "NOT MET")
    assert len(got) == 5, sorted(got)


def test_every_target_names_a_queue_the_benchmark_runs():
    bench = load_bench()
    for kinds, ours, base, need in bench.TARGETS:
        assert set(kinds) <= set(bench.ITEMS)
        assert need > 1
        for impl in (ours, base):
            # make_queue knows every implementation a target compares.
            if not impl.startswith("faster-fifo"):
                q = bench.make_queue(impl)
                if impl.startswith("procq"):
                    q.close()


def test_call_bench_smoke_run():
    """bench/call_bench.py (CPU per call of each method that carries items)
    runs and reports every case."""
    import subprocess
    import sys

    script = BENCH.parent / "call_bench.py"
    if not script.is_file():
        pytest.skip(f"{script} not found: not run from the repository")
    out = subprocess.run([sys.executable, str(script), "--smoke"], capture_output=True,
                         text=True, timeout=120, check=True).stdout
    rows = [line.split() for line in out.splitlines()[1:]]
    assert len(rows) == 18 and all(row[-1].isdigit() for row in rows), out
