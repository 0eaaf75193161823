#!/usr/bin/env bash
# The Redis backend's tests against real servers, all on 127.0.0.1 and all
# stopped however the run ends:
# - a plain redis-server on a free port, without persistence;
# - a TLS-only redis-server with a throwaway CA and server certificate
#   (made with the openssl command), for `rediss://` (the `redis-tls`
#   feature: rustls, no system OpenSSL library needed);
# - a Redis Cluster of 3 masters (`--cluster-enabled yes` ×3, then
#   `redis-cli --cluster create`), each node started from a config file in
#   the temporary directory, with an fsynced append-only file, so that the
#   restart test can SIGKILL a node and start it again from that file. Each
#   node also listens on a TLS port and its cluster bus speaks TLS
#   (`tls-cluster yes`), for `rediss+cluster://`: a node tells a TLS client
#   the TLS ports of the others, a plain client the plain ones.
# Installs redis-server (and openssl) from Debian when missing. Runs
# `cargo test -p procq --features redis-tls --test redis --test
# redis_delivery --test redis_cluster --test contract --test contract_async` once with all three
# (the Redis-only tests, at-least-once delivery, the cluster's, and the
# contract of every backend against Redis too; the tests that
# restart a cluster node or move a slot run alone, after the others), then
# the `procq` command's Redis tests.
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
    cargo test -p procq --features redis --test redis --test redis_delivery --test redis_cluster --test contract --test contract_async --quiet
    exit 0
fi
if ! command -v openssl >/dev/null; then
    echo "installing openssl (the command) to make the test certificates"
    apt_install openssl
fi

dir=$(mktemp -d)
free_ports() {
    python3 -c '
import socket, sys
held = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); held.append(s)
print(" ".join(str(s.getsockname()[1]) for s in held))' "$1"
}
read -r port tls_port c1 c2 c3 b1 b2 b3 t1 t2 t3 <<<"$(free_ports 11)"
cluster_ports=("$c1" "$c2" "$c3")
bus_ports=("$b1" "$b2" "$b3")
cluster_tls_ports=("$t1" "$t2" "$t3")

pids=()
cleanup() {
    for p in "${pids[@]}"; do
        kill "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    # Cluster nodes daemonize (a test may restart one): stop them by the
    # pid file their config names, whoever started them.
    for cp in "${cluster_ports[@]}"; do
        f="$dir/cluster/$cp/redis.pid"
        if [ -s "$f" ]; then kill -9 "$(cat "$f")" 2>/dev/null || true; fi
    done
    rm -rf "$dir"
}
trap cleanup EXIT

wait_ping() { # name, redis-cli arguments...
    local what=$1
    shift
    for _ in $(seq 200); do
        if redis-cli "$@" ping >/dev/null 2>&1; then return 0; fi
        sleep 0.05
    done
    echo "$what did not start" >&2
    cat "$dir"/*.log "$dir"/cluster/*/redis.log >&2 2>/dev/null || true
    exit 1
}

# --- plain server ------------------------------------------------------------
redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
    --dir "$dir" --daemonize no >"$dir/server.log" 2>&1 &
pids+=($!)
wait_ping redis-server -p "$port"

# --- TLS server --------------------------------------------------------------
# A CA and a server certificate for 127.0.0.1 / localhost, valid two days
# (a client certificate too: cluster nodes present it to each other).
ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
printf '%s\n' "subjectAltName=IP:127.0.0.1,DNS:localhost" \
    "basicConstraints=CA:FALSE" "keyUsage=digitalSignature" \
    "extendedKeyUsage=serverAuth,clientAuth" >"$dir/server.ext"
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
mkdir "$dir/tls"
redis-server --port 0 --tls-port "$tls_port" --bind 127.0.0.1 --save "" \
    --appendonly no --dir "$dir/tls" --daemonize no \
    --tls-cert-file "$dir/server.crt" --tls-key-file "$dir/server.key" \
    --tls-ca-cert-file "$dir/ca.crt" --tls-auth-clients no \
    >"$dir/tls-server.log" 2>&1 &
pids+=($!)
wait_ping "the TLS redis-server (is redis-server built with TLS?)" \
    --tls --cacert "$dir/ca.crt" -h 127.0.0.1 -p "$tls_port"

# --- 3-master cluster --------------------------------------------------------
nodes=()
tls_nodes=()
for i in 0 1 2; do
    cp=${cluster_ports[$i]}
    mkdir -p "$dir/cluster/$cp"
    cat >"$dir/cluster/$cp/redis.conf" <<EOF
port $cp
cluster-port ${bus_ports[$i]}
bind 127.0.0.1
cluster-enabled yes
cluster-config-file nodes.conf
cluster-node-timeout 5000
dir $dir/cluster/$cp
save ""
appendonly yes
appendfsync always
daemonize yes
pidfile $dir/cluster/$cp/redis.pid
logfile $dir/cluster/$cp/redis.log
tls-port ${cluster_tls_ports[$i]}
tls-cluster yes
tls-cert-file $dir/server.crt
tls-key-file $dir/server.key
tls-ca-cert-file $dir/ca.crt
tls-auth-clients no
EOF
    redis-server "$dir/cluster/$cp/redis.conf"
    nodes+=("127.0.0.1:$cp")
    tls_nodes+=("127.0.0.1:${cluster_tls_ports[$i]}")
done
for cp in "${cluster_ports[@]}"; do wait_ping "cluster node $cp" -p "$cp"; done
redis-cli --cluster create "${nodes[@]}" --cluster-yes >"$dir/cluster-create.log" 2>&1 || {
    cat "$dir/cluster-create.log" >&2
    exit 1
}
for cp in "${cluster_ports[@]}"; do
    for _ in $(seq 200); do
        if redis-cli -p "$cp" cluster info 2>/dev/null | grep -q cluster_state:ok; then break; fi
        sleep 0.05
    done
    redis-cli -p "$cp" cluster info | grep -q cluster_state:ok || {
        echo "cluster node $cp is not ok" >&2
        exit 1
    }
done

# --- tests -------------------------------------------------------------------
export PROCQ_REDIS_URL="redis://127.0.0.1:$port/0"
export PROCQ_REDIS_TLS_URL="rediss://127.0.0.1:$tls_port/0"
export PROCQ_REDIS_CLUSTER_URL="redis+cluster://$(IFS=,; echo "${nodes[*]}")"
export PROCQ_REDIS_TLS_CLUSTER_URL="rediss+cluster://$(IFS=,; echo "${tls_nodes[*]}")"
export PROCQ_REDIS_SERVER
PROCQ_REDIS_SERVER=$(command -v redis-server)

cargo clippy -p procq --features redis-tls --all-targets --quiet -- -D warnings
# Compile outside the time limits: they bound the tests, not a cold build.
# Built with the usual trust store (cargo may fetch crates); the runs trust
# only the throwaway CA, and are offline so cargo needs no other.
tests=(--test redis --test redis_delivery --test redis_cluster --test contract --test contract_async)
cargo test -p procq --features redis-tls "${tests[@]}" --no-run --quiet
cargo test -p procq-cli --test cli --no-run --quiet
alone=(cluster_node_restart_is_survived cluster_slot_migration_is_followed_ask_then_moved)
skips=()
for t in "${alone[@]}"; do skips+=(--skip "$t"); done
SSL_CERT_FILE="$dir/ca.crt" timeout 300 cargo test --offline -p procq --features redis-tls \
    "${tests[@]}" -- --test-threads=4 "${skips[@]}"
SSL_CERT_FILE="$dir/ca.crt" timeout 120 cargo test --offline -p procq --features redis-tls \
    --test redis_cluster -- --test-threads=1 --exact "${alone[@]}"
# The `procq` command with redis:// URLs (crates/procq-cli/tests/cli.rs).
SSL_CERT_FILE="$dir/ca.crt" timeout 300 cargo test --offline -p procq-cli --test cli -- redis_url
# The Redis benchmark still runs, on the server and the cluster (a few
# hundred items: a smoke run, not a measurement; see docs/redis.md).
timeout 300 cargo run --offline -q -p procq --features redis-tls --example redis_bench -- \
    "$PROCQ_REDIS_URL" "$PROCQ_REDIS_CLUSTER_URL" 300
