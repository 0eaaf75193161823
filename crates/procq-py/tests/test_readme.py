"""The Python quickstart of the top-level README runs and prints what it says.

The README's first ``python`` block is written to a file and run in a fresh
interpreter (the one running the suite), as a user who copies it would run
it; it is skipped when the suite runs outside the repository (from an
unpacked sdist, say).
"""

import pathlib
import re
import subprocess
import sys

import pytest

README = pathlib.Path(__file__).resolve().parents[3] / "README.md"


def quickstart():
    if not README.is_file():
        pytest.skip(f"{README} not found: not run from the repository")
    blocks = re.findall(r"^```python\n(.*?)^```", README.read_text(), re.S | re.M)
    assert blocks, "the README has no python block"
    return blocks[0]


def test_readme_quickstart_runs(tmp_path):
    script = tmp_path / "quickstart.py"
    script.write_text(quickstart())
    out = subprocess.run([sys.executable, str(script)], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, f"README quickstart failed:\n{out.stdout}\n{out.stderr}"
    assert out.stdout.strip().splitlines()[-1] == str([2 * i for i in range(10)]), out.stdout
