#!/usr/bin/env bash
# Runs every test of the project: formatting, lints, import cycles, API
# docs, the Rust workspace (unit, integration, doc and example tests), then each extra suite in
# scripts/test.d/ (Python bindings, Redis backend, benchmark smoke run, ...).
# Each extra suite installs what it needs (pip packages, Debian packages).
#
#   ./scripts/test.sh            # everything
#   PROCQ_TEST_ONLY=rust ./scripts/test.sh   # just the Rust workspace
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null; then
    echo "cargo is required (https://rustup.rs)" >&2
    exit 1
fi

# Each step says how long the one before it took (CI time is budgeted).
step_name=
step_start=$SECONDS
step() {
    if [ -n "$step_name" ]; then
        printf '    (%s: %d s)\n' "$step_name" $((SECONDS - step_start))
    fi
    step_name=$*
    step_start=$SECONDS
    printf '\n==> %s\n' "$*"
}

step "cargo fmt --check"
cargo fmt --all -- --check

step "import cycles (scripts/module-graph.py)"
if command -v python3 >/dev/null; then
    python3 scripts/module-graph.py --check crates/*
else
    echo "skipped: needs python3"
fi

step "cargo clippy"
# The workspace build has the core's `redis` feature on (the procq command
# enables it); lint the core without it too. 50-redis.sh lints `redis-tls`.
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo clippy -p procq --all-targets --quiet -- -D warnings

step "cargo doc (workspace, warnings are errors)"
# Broken intra-doc links and stray HTML in doc comments fail here, as
# they would on docs.rs.
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet

step "cargo package --list (procq, procq-process)"
# The crates meant for crates.io must package cleanly (metadata, license
# files, readme); nothing is published.
out=$(cargo package -p procq -p procq-process --list --allow-dirty 2>&1)
if grep -E '^(warning|error)' <<<"$out"; then
    exit 1
fi

# A hung test must fail its suite by name, not run into CI's time limit
# (90 min): each suite gets a budget, after which its whole process group
# (test binaries and the children they started) is killed.
bounded() {
    local budget=$1
    shift
    local rc=0
    timeout --kill-after=30s "$budget" "$@" || rc=$?
    if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
        echo "!! '$*' still running after $budget: stopped (a hang?)" >&2
    fi
    return "$rc"
}

step "cargo test (workspace)"
bounded 45m cargo test --workspace --quiet 2>&1 | tee target/test-rust.log
grep -q "test result:" target/test-rust.log

if [ "${PROCQ_TEST_ONLY:-}" = rust ]; then
    step "Rust tests passed"
    exit 0
fi

for suite in scripts/test.d/*.sh; do
    [ -e "$suite" ] || continue
    step "$suite"
    bounded 30m bash "$suite"
done

step "all test suites passed"
