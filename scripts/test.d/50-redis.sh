#!/usr/bin/env bash
# The Redis backend's tests against a real redis-server: installs it from
# Debian when missing, starts a private server on a free 127.0.0.1 port
# without persistence in a temporary directory, runs
# `cargo test -p procq --features redis --test redis`, and stops the server
# however the run ends. The restart test starts (and kills) a second server
# of its own, with an fsync'ed append-only file, from the same binary.
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! command -v redis-server >/dev/null; then
    echo "redis-server missing: installing the Debian package"
    if command -v apt-get >/dev/null; then
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -qq redis-server) >&2 || true
    fi
fi

if ! command -v redis-server >/dev/null; then
    # The only place a Redis test may skip: the tests print why.
    echo "SKIP: redis-server could not be installed; the Redis tests will skip" >&2
    cargo test -p procq --features redis --test redis --quiet
    exit 0
fi

dir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
    --dir "$dir" --daemonize no >"$dir/server.log" 2>&1 &
pid=$!
cleanup() {
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT

for _ in $(seq 100); do
    if redis-cli -p "$port" ping >/dev/null 2>&1; then break; fi
    sleep 0.05
done
redis-cli -p "$port" ping >/dev/null || {
    cat "$dir/server.log" >&2
    echo "redis-server did not start" >&2
    exit 1
}

export PROCQ_REDIS_URL="redis://127.0.0.1:$port/0"
export PROCQ_REDIS_SERVER
PROCQ_REDIS_SERVER=$(command -v redis-server)
timeout 300 cargo test -p procq --features redis --test redis -- --test-threads=4
