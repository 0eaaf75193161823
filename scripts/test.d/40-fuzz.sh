#!/usr/bin/env bash
# Fuzzes procq's parsing of hostile shared memory (header, state, records)
# for a short while. Installs cargo-fuzz when missing. The checked-in corpus
# is also replayed by `cargo test` (procq::__fuzzing tests).
#   PROCQ_FUZZ_SECONDS=600 bash scripts/test.d/40-fuzz.sh   # a longer run
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds="${PROCQ_FUZZ_SECONDS:-30}"
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz"
    cargo install cargo-fuzz --locked --quiet
fi
cd fuzz
# Fuzz into a scratch copy of the corpus so that CI never rewrites the
# checked-in one; a crash leaves its input in fuzz/artifacts/.
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
cp corpus/segment/* "$scratch"/
# No sanitizer: works on the stable toolchain. Every access procq makes to
# shared memory is bounds-checked in safe code, and debug assertions
# (overflow checks) are on in fuzz builds.
cargo fuzz run segment --sanitizer none "$scratch" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 2>&1 | tail -n 3
echo "fuzz: ${seconds}s without a crash"
