#!/usr/bin/env bash
# Python bindings (crates/procq-py): builds the `procq` extension module into
# a virtual environment (.venv at the repository root) and runs its pytest
# suite (tests/test_redis.py starts its own redis-server, installed here
# when missing), then a few-second smoke run of the benchmark script.
#
# Works on a fresh machine: creates the venv and installs maturin, pytest and
# pytest-timeout (and faster-fifo, for the benchmark) when they are missing.
#
#   bash scripts/test.d/20-python.sh                 # build + all tests
#   PROCQ_PYTEST_ARGS="-k sigkill" bash scripts/test.d/20-python.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

VENV=.venv
PYTHON=${PYTHON:-python3}
CRATE=crates/procq-py

if ! command -v "$PYTHON" >/dev/null; then
    echo "20-python: $PYTHON not found; installing python3 with apt-get" >&2
    apt-get update -qq && apt-get install -y -qq python3 python3-venv python3-pip >/dev/null
fi

if [ ! -x "$VENV/bin/python" ]; then
    echo "20-python: creating $VENV"
    if ! "$PYTHON" -m venv "$VENV"; then
        # Debian's python3 ships venv separately.
        apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
        rm -rf "$VENV"
        "$PYTHON" -m venv "$VENV"
    fi
fi
VPY=$VENV/bin/python

if ! "$VPY" -c 'import pytest, pytest_timeout, faster_fifo' 2>/dev/null \
    || ! "$VENV/bin/maturin" --version >/dev/null 2>&1; then
    echo "20-python: installing maturin, pytest, pytest-timeout, faster-fifo"
    "$VPY" -m pip install -q --upgrade pip
    "$VPY" -m pip install -q 'maturin>=1.9.4,<2' 'pytest>=7' pytest-timeout
    # Only the benchmark needs faster-fifo; do not fail the suite without it.
    "$VPY" -m pip install -q faster-fifo || echo "20-python: faster-fifo unavailable (benchmark skips it)" >&2
fi

echo "20-python: building the extension (maturin develop --release)"
log=$(mktemp)
if ! VIRTUAL_ENV="$PWD/$VENV" PATH="$PWD/$VENV/bin:$PATH" \
    "$VENV/bin/maturin" develop --release -m "$CRATE/Cargo.toml" >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    echo "20-python: building the extension failed" >&2
    exit 1
fi
rm -f "$log"

# tests/test_redis.py runs a private redis-server of its own.
bash scripts/install-redis-server.sh

echo "20-python: pytest"
set +e
# shellcheck disable=SC2086 # PROCQ_PYTEST_ARGS is a list of arguments
"$VPY" -m pytest "$CRATE/tests" -q -p no:cacheprovider --timeout=120 ${PROCQ_PYTEST_ARGS:-}
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
    echo "20-python: pytest collected no tests" >&2
    exit 1
elif [ "$rc" -ne 0 ]; then
    exit "$rc"
fi

echo "20-python: benchmark smoke run"
"$VPY" "$CRATE/bench/bench.py" --smoke
