"""The Python quickstarts of the READMEs run and print what they say.

The first ``python`` block of the top-level README and of the package's own
README (crates/procq-py/README.md) is written to a file and run in a fresh
interpreter (the one running the suite), as a user who copies it would run
it; a README that is not there is skipped (the top-level one when the suite
runs outside the repository, from an unpacked sdist, say).
"""

import pathlib
import re
import subprocess
import sys

import pytest

CRATE = pathlib.Path(__file__).resolve().parents[1]
READMES = {"top-level": CRATE.parents[1] / "README.md", "package": CRATE / "README.md"}


def quickstart(readme):
    if not readme.is_file():
        pytest.skip(f"{readme} not found: not run from the repository")
    blocks = re.findall(r"^```python\n(.*?)^```", readme.read_text(), re.S | re.M)
    assert blocks, f"{readme} has no python block"
    return blocks[0]


@pytest.mark.parametrize("which", sorted(READMES))
def test_readme_quickstart_runs(tmp_path, which):
    script = tmp_path / "quickstart.py"
    script.write_text(quickstart(READMES[which]))
    out = subprocess.run([sys.executable, str(script)], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, f"{which} README quickstart failed:\n{out.stdout}\n{out.stderr}"
    assert out.stdout.strip().splitlines()[-1] == str([2 * i for i in range(10)]), out.stdout
