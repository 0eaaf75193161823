#!/usr/bin/env bash
# Builds procq's Python package into dist/:
#
#   dist/procq-<version>-cp39-abi3-manylinux2014_x86_64.manylinux_2_17_x86_64.whl
#   dist/procq-<version>.tar.gz                        (the sdist)
#
# One release wheel for every CPython from 3.9 up (PyO3's abi3), linked
# against glibc 2.17 by zig so that it installs on any manylinux2014 system
# (RHEL 7+, Debian 9+, Ubuntu 18.04+), stripped. zig comes from the `ziglang`
# package on PyPI: no Docker, nothing downloaded from outside the package
# registries. Then it checks what it built: the wheel's tags, its size
# (at most 5 MB), the license files and METADATA, and that the extension
# needs no glibc symbol newer than 2.17.
#
#   ./scripts/wheel.sh                    # build and check
#   PYTHON=python3.12 ./scripts/wheel.sh  # run maturin with another python
#
# maturin and ziglang live in a venv of their own (target/wheel-tools),
# installed on first use. Prints the wheel's path last.
set -euo pipefail
cd "$(dirname "$0")/.."

CRATE=crates/procq-py
TOOLS=target/wheel-tools
PYTHON=${PYTHON:-python3}
MAX_WHEEL_BYTES=$((5 * 1000 * 1000))

say() { echo "wheel.sh: $*" >&2; }

if ! command -v "$PYTHON" >/dev/null; then
    say "$PYTHON not found; installing python3 with apt-get"
    apt-get update -qq && apt-get install -y -qq python3 python3-venv >/dev/null
fi

if ! "$TOOLS/bin/python" -c 'import ziglang' 2>/dev/null \
    || ! "$TOOLS/bin/maturin" --version >/dev/null 2>&1; then
    say "installing maturin and ziglang into $TOOLS"
    rm -rf "$TOOLS"
    if ! "$PYTHON" -m venv "$TOOLS" 2>/dev/null; then
        # Debian's python3 ships venv separately.
        apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
        rm -rf "$TOOLS"
        "$PYTHON" -m venv "$TOOLS"
    fi
    "$TOOLS/bin/python" -m pip install -q --disable-pip-version-check 'maturin>=1.9.4,<2' ziglang
fi

mkdir -p dist
rm -f dist/procq-*.whl dist/procq-*.tar.gz

# maturin runs zig as `python -m ziglang` with the python on PATH.
export PATH="$PWD/$TOOLS/bin:$PATH"
say "maturin build --release --zig --compatibility manylinux2014"
start=$SECONDS
maturin build --release --zig --compatibility manylinux2014 \
    -m "$CRATE/Cargo.toml" --out dist
say "maturin sdist"
maturin sdist -m "$CRATE/Cargo.toml" --out dist
say "built in $((SECONDS - start)) s"

wheels=(dist/procq-*.whl)
if [ "${#wheels[@]}" -ne 1 ] || [ ! -f "${wheels[0]}" ]; then
    say "expected exactly one wheel in dist/, found: ${wheels[*]}"
    exit 1
fi
wheel=${wheels[0]}

# What a user gets: check it rather than trust the flags above.
"$TOOLS/bin/python" - "$wheel" "$MAX_WHEEL_BYTES" <<'EOF'
import os
import re
import subprocess
import sys
import tempfile
import zipfile

wheel, max_bytes = sys.argv[1], int(sys.argv[2])
problems = []
name = os.path.basename(wheel)
if "-cp39-abi3-" not in name:
    problems.append(f"not a cp39-abi3 wheel: {name}")
if "manylinux_2_17_" not in name or "manylinux2014_" not in name:
    problems.append(f"not tagged manylinux_2_17 / manylinux2014: {name}")
size = os.path.getsize(wheel)
if size > max_bytes:
    problems.append(f"{size} bytes, more than {max_bytes}")
with zipfile.ZipFile(wheel) as z:
    names = z.namelist()
    meta_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
    meta = z.read(meta_name).decode()
    for lic in ("LICENSE-MIT", "LICENSE-APACHE"):
        if not any(n.endswith("/" + lic) for n in names):
            problems.append(f"{lic} missing from the wheel")
    for field in ("Requires-Python: >=3.9", "License-Expression: MIT OR Apache-2.0",
                  "Classifier: Programming Language :: Python :: 3.13",
                  "Description-Content-Type: text/markdown"):
        if field not in meta:
            problems.append(f"METADATA lacks {field!r}")
    so = [n for n in names if n.endswith(".so")]
    if len(so) != 1:
        problems.append(f"expected one extension module, found {so}")
    else:
        with tempfile.TemporaryDirectory() as tmp:
            path = z.extract(so[0], tmp)
            out = subprocess.run(["objdump", "-T", path], capture_output=True,
                                 text=True, check=True).stdout
            versions = {tuple(int(x) for x in v.split("."))
                        for v in re.findall(r"GLIBC_([0-9.]+)", out)}
            newest = max(versions, default=(0,))
            if newest > (2, 17):
                problems.append("needs glibc " + ".".join(map(str, newest)))
            out = subprocess.run(["objdump", "-h", path], capture_output=True,
                                 text=True, check=True).stdout
            if ".debug_" in out:
                problems.append("the extension is not stripped")
            so_size = os.path.getsize(path)
if problems:
    sys.exit("wheel.sh: " + "; ".join(problems))
print(f"wheel.sh: {name}: {size / 1e6:.2f} MB (extension {so_size / 1e6:.2f} MB), "
      f"glibc <= {'.'.join(map(str, newest))}, licenses and METADATA present", file=sys.stderr)
EOF
echo "$wheel"
