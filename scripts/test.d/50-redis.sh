#!/usr/bin/env bash
# The Redis backend's tests against a real redis-server: installs it from
# Debian when missing, starts a private server on a free 127.0.0.1 port
# without persistence in a temporary directory, runs
# `cargo test -p procq --features redis --test redis --test contract` (the
# Redis-only tests, and the contract of every backend against Redis too),
# and stops the server
# however the run ends. The restart test starts (and kills) a second server
# of its own, with an fsync'ed append-only file, from the same binary.
#
# Then TLS (`rediss://`, the `redis-tls` feature, native-tls over the
# system's OpenSSL): installs libssl-dev and pkg-config when missing, makes a
# throwaway CA and server certificate with the openssl CLI, starts a second
# private server listening only on a TLS port, lints with `redis-tls`, and
# runs the TLS test with SSL_CERT_FILE naming that CA.
set -euo pipefail
cd "$(dirname "$0")/../.."

apt_updated=
apt_install() {
    command -v apt-get >/dev/null || return 0
    if [ -z "$apt_updated" ]; then
        apt-get update -qq >&2 || true
        apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2 || true
}

if ! command -v redis-server >/dev/null; then
    echo "redis-server missing: installing the Debian package"
    apt_install redis-server
fi

if ! command -v redis-server >/dev/null; then
    # The only place a Redis test may skip: the tests print why.
    echo "SKIP: redis-server could not be installed; the Redis tests will skip" >&2
    cargo test -p procq --features redis --test redis --test contract --quiet
    exit 0
fi

dir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
    --dir "$dir" --daemonize no >"$dir/server.log" 2>&1 &
pid=$!
tls_pid=
cleanup() {
    for p in $pid $tls_pid; do
        kill "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
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
# Compile outside the time limit: it bounds the tests, not a cold build.
cargo test -p procq --features redis --test redis --test contract --no-run --quiet
timeout 300 cargo test -p procq --features redis --test redis --test contract -- --test-threads=4
# The `procq` command with redis:// URLs (crates/procq-cli/tests/cli.rs).
cargo test -p procq-cli --test cli --no-run --quiet
timeout 300 cargo test -p procq-cli --test cli -- redis_url

# --- TLS -------------------------------------------------------------------
need=()
command -v openssl >/dev/null || need+=(openssl)
command -v pkg-config >/dev/null || need+=(pkg-config)
if ! { command -v pkg-config >/dev/null && pkg-config --exists openssl; }; then
    need+=(libssl-dev)
fi
if [ ${#need[@]} -gt 0 ]; then
    echo "installing for the redis-tls build: ${need[*]}"
    apt_install "${need[@]}"
fi

# A CA and a server certificate for 127.0.0.1 / localhost, valid two days.
ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
printf '%s\n' "subjectAltName=IP:127.0.0.1,DNS:localhost" \
    "basicConstraints=CA:FALSE" "keyUsage=digitalSignature" \
    "extendedKeyUsage=serverAuth" >"$dir/server.ext"
{
    openssl req -x509 "${ec[@]}" -days 2 -subj "/CN=procq test CA" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -keyout "$dir/ca.key" -out "$dir/ca.crt" &&
        openssl req "${ec[@]}" -subj "/CN=127.0.0.1" \
            -keyout "$dir/server.key" -out "$dir/server.csr" &&
        openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.crt" \
            -CAkey "$dir/ca.key" -set_serial 1 -days 2 \
            -extfile "$dir/server.ext" -out "$dir/server.crt"
} >"$dir/openssl.log" 2>&1 || {
    cat "$dir/openssl.log" >&2
    echo "could not make the test certificates" >&2
    exit 1
}

tls_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir "$dir/tls"
redis-server --port 0 --tls-port "$tls_port" --bind 127.0.0.1 --save "" \
    --appendonly no --dir "$dir/tls" --daemonize no \
    --tls-cert-file "$dir/server.crt" --tls-key-file "$dir/server.key" \
    --tls-ca-cert-file "$dir/ca.crt" --tls-auth-clients no \
    >"$dir/tls-server.log" 2>&1 &
tls_pid=$!
tls_ping() {
    redis-cli --tls --cacert "$dir/ca.crt" -h 127.0.0.1 -p "$tls_port" ping >/dev/null 2>&1
}
for _ in $(seq 100); do
    if tls_ping; then break; fi
    sleep 0.05
done
tls_ping || {
    cat "$dir/tls-server.log" >&2
    echo "the TLS redis-server did not start (is redis-server built with TLS?)" >&2
    exit 1
}

cargo clippy -p procq --features redis-tls --all-targets --quiet -- -D warnings
# Built first with the usual trust store (cargo may fetch crates); the run
# trusts only the throwaway CA, and is offline so cargo needs no other.
cargo test -p procq --features redis-tls --test redis --no-run --quiet
export PROCQ_REDIS_TLS_URL="rediss://127.0.0.1:$tls_port/0"
SSL_CERT_FILE="$dir/ca.crt" timeout 120 \
    cargo test --offline -p procq --features redis-tls --test redis tls_ -- --test-threads=4
