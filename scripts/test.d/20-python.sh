#!/usr/bin/env bash
# Python bindings (crates/procq-py): builds the release wheel once
# (scripts/wheel.sh: cp39-abi3, manylinux2014, into dist/), installs THAT
# file into a fresh venv of the oldest and of the newest supported CPython,
# and runs the pytest suite (tests/, which also runs every examples/*.py) in
# each; then a few-second smoke run of both benchmark scripts in the newest.
# tests/test_redis.py starts its own redis-servers, plain and TLS-only
# (redis-server and the openssl command installed here when missing).
#
# Interpreters: PROCQ_PYTHONS (default "3.9 3.13", the oldest and newest
# supported), each looked up in pyenv ($PYENV_ROOT/versions/3.X*), then as
# python3.X on PATH. A fresh machine may have neither (only its python3):
# then the suite runs on every interpreter it did find, python3 at least,
# and says which ones it skipped, loudly, on stderr and in the last line.
# PROCQ_REQUIRE_PYTHONS=1 makes a missing one an error instead.
#
#   bash scripts/test.d/20-python.sh                        # wheel + both
#   PROCQ_PYTHONS=3.12 bash scripts/test.d/20-python.sh     # just one
#   PROCQ_PYTEST_ARGS="-k sigkill" bash scripts/test.d/20-python.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

CRATE=crates/procq-py
VENVS=target/py-test
say() { echo "20-python: $*" >&2; }

# Finds CPython $1 (like 3.9): prints its path, or nothing.
find_python() {
    local v=$1 c
    local root=${PYENV_ROOT:-$HOME/.pyenv}
    for c in "$root"/versions/"$v".*/bin/python"$v" "$root/versions/$v/bin/python$v" \
        "$(command -v "python$v" 2>/dev/null || true)"; do
        [ -n "$c" ] && [ -x "$c" ] || continue
        # A pyenv shim for a version pyenv does not select fails here.
        if "$c" -c "import sys, venv; sys.exit(sys.version_info[:2] != tuple(map(int, '$v'.split('.'))))" \
            2>/dev/null; then
            echo "$c"
            return
        fi
    done
}

wheel=$(./scripts/wheel.sh | tail -n 1)
say "testing $wheel"

pythons=()
missing=()
for v in ${PROCQ_PYTHONS:-3.9 3.13}; do
    p=$(find_python "$v")
    if [ -n "$p" ]; then
        pythons+=("$v=$p")
    else
        missing+=("$v")
    fi
done
if [ "${#missing[@]}" -gt 0 ]; then
    if [ "${PROCQ_REQUIRE_PYTHONS:-0}" = 1 ]; then
        say "CPython ${missing[*]} not found (pyenv, PATH) and PROCQ_REQUIRE_PYTHONS=1"
        exit 1
    fi
    say "WARNING: CPython ${missing[*]} not found (looked in pyenv and on PATH);" \
        "the wheel is not tested there. 'pyenv install ${missing[*]}' adds them."
fi
if [ "${#pythons[@]}" -eq 0 ]; then
    sys=$(command -v python3 || true)
    if [ -z "$sys" ]; then
        say "no python3; installing it with apt-get"
        apt-get update -qq && apt-get install -y -qq python3 python3-venv >/dev/null
        sys=$(command -v python3)
    fi
    v=$("$sys" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    pythons+=("$v=$sys")
fi

# tests/test_redis.py runs private redis-servers of its own (one TLS-only,
# with a throwaway CA made by the openssl command).
bash scripts/install-redis-server.sh
if ! command -v openssl >/dev/null && command -v apt-get >/dev/null; then
    say "installing openssl (the command) to make the TLS test's certificates"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl) >&2 || true
fi

tested=()
newest_vpy=
for entry in "${pythons[@]}"; do
    v=${entry%%=*}
    py=${entry#*=}
    venv=$VENVS/$v
    say "CPython $v ($py): fresh venv $venv"
    rm -rf "$venv"
    if ! "$py" -m venv "$venv"; then
        # Debian's python3 ships venv separately.
        apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
        rm -rf "$venv"
        "$py" -m venv "$venv"
    fi
    vpy=$venv/bin/python
    "$vpy" -m pip install -q --disable-pip-version-check "$wheel" 'pytest>=7' pytest-timeout numpy
    # The suite must exercise the installed wheel, not the source tree.
    "$vpy" -c 'import procq, sys; f = procq._procq.__file__; sys.exit(0 if "site-packages" in f else "procq imported from " + f)'

    say "CPython $v: pytest"
    set +e
    # shellcheck disable=SC2086 # PROCQ_PYTEST_ARGS is a list of arguments
    "$vpy" -m pytest "$CRATE/tests" -q -p no:cacheprovider --timeout=180 ${PROCQ_PYTEST_ARGS:-}
    rc=$?
    set -e
    if [ "$rc" -eq 5 ]; then
        say "CPython $v: pytest collected no tests"
        exit 1
    elif [ "$rc" -ne 0 ]; then
        say "CPython $v: pytest failed"
        exit "$rc"
    fi
    tested+=("$v")
    newest_vpy=$vpy
done

say "benchmark smoke run (CPython ${tested[-1]})"
# Only the benchmark needs faster-fifo; without it the benchmark says so.
"$newest_vpy" -m pip install -q --disable-pip-version-check faster-fifo \
    || say "faster-fifo did not install: the benchmarks skip it"
"$newest_vpy" "$CRATE/bench/bench.py" --smoke
"$newest_vpy" "$CRATE/bench/numpy_bench.py" --smoke

if [ "${#missing[@]}" -gt 0 ]; then
    say "passed on CPython ${tested[*]}; NOT tested on ${missing[*]} (not found)"
else
    say "passed on CPython ${tested[*]}"
fi
