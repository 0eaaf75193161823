"""Every examples/*.py runs, as a user would run it, and says what it should.

Each runs in a fresh interpreter (the one running the suite) from the
crate's directory; redis_worker.py gets the private redis-server of the
``base`` fixture. A new example must be added to EXPECTED.
"""

import pathlib
import subprocess
import sys

import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"

# example -> lines its output must contain
EXPECTED = {
    "producer_consumer.py": ["[Prod] Generating: Job-4", "[Cons] Processing: Job-4",
                             "exit codes: 0 0"],
    "pool_initargs.py": ["squares: [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]"],
    "spawn_start.py": ["results: [0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120, 130, "
                       "140, 150, 160, 170, 180, 190]", "exit codes: [0, 0, 0]"],
    "numpy_frames.py": ["frames: 60, checksum:"],
    "redis_worker.py": ["squares: [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]", "exit codes: [0, 0]"],
}


def test_every_example_is_tested():
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(EXPECTED)


def run(name, *args):
    out = subprocess.run([sys.executable, str(EXAMPLES / name), *args], cwd=EXAMPLES.parent,
                         capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, f"{name} failed:\n{out.stdout}\n{out.stderr}"
    for line in EXPECTED[name]:
        assert line in out.stdout, f"{name}: {line!r} not in:\n{out.stdout}"


@pytest.mark.parametrize("name", ["producer_consumer.py", "pool_initargs.py", "spawn_start.py"])
def test_example(name):
    run(name)


def test_numpy_frames():
    pytest.importorskip("numpy")
    run("numpy_frames.py")


def test_redis_worker(base):
    run("redis_worker.py", base)

