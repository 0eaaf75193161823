#!/usr/bin/env bash
# Benchmark smoke run: the whole procq-bench suite in quick mode (a few
# thousand items per case, seconds on 2 cores), with the peers it was built
# with (ipmpsc by default; iceoryx2 with --features iceoryx2), then checks
# that it printed the tables and wrote a complete JSON report and an SVG
# chart.
# Figures from this run are not measurements (debug build, few items); see
# docs/performance.md for how to measure.
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! command -v python3 >/dev/null; then
    echo "python3 is required to check the JSON report" >&2
    exit 1
fi

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

cargo build --quiet -p procq-bench
# The run itself must stay well under two minutes; the limit turns a hang
# into a failure.
start=$(date +%s)
timeout 120 cargo run --quiet -p procq-bench -- \
    --quick --targets --json-out "$out/report.json" --plot "$out/report.svg" \
    >"$out/table.txt" 2>"$out/progress.txt" || {
    status=$?
    cat "$out/progress.txt" "$out/table.txt" >&2
    echo "procq-bench --quick failed (status $status)" >&2
    exit 1
}
cat "$out/table.txt"
echo "bench smoke run: $(($(date +%s) - start)) s"

for heading in "Side by side" "Throughput, items/s" "Throughput, bytes/s" "Round-trip latency" \
    "Memory, unbounded queue" "Targets" "No queue segments left"; do
    grep -q "$heading" "$out/table.txt" || {
        echo "table lacks \"$heading\"" >&2
        exit 1
    }
done

python3 - "$out/report.json" <<'PY'
import json, sys

r = json.load(open(sys.argv[1]))
assert r["mode"] == "quick", r["mode"]
assert not r["errors"], r["errors"]
assert not r["leaked_segments"], r["leaked_segments"]
systems = {t["system"] for t in r["throughput"]}
# ipmpsc is built by default, so the smoke run exercises its code paths;
# iceoryx2 only when the crate was built with that feature.
base = {"procq", "procq-zero-copy", "socket", "ipc-channel", "crossbeam", "memcpy", "ipmpsc",
        "ipmpsc-bytes"}
assert base <= systems <= base | {"iceoryx2", "iceoryx2-zero-copy"}, systems
sizes = {t["item_bytes"] for t in r["throughput"]}
assert sizes == {8, 100, 4096, 65536, 1 << 20}, sizes
procs = {(t["producers"], t["consumers"], t["maxsize"]) for t in r["throughput"] if t["system"] == "procq"}
want = {(n, n, m) for n in (1, 2, 4) for m in (0, 1024)} | {(p, c, 1024) for p, c in ((4, 1), (1, 4), (8, 8))}
# 1P/1C at the peers' bound for large items (256 at 64 KiB, 16 at 1 MiB).
want |= {(1, 1, 256), (1, 1, 16)}
assert procs == want, procs
assert any(t["system"] == "ipmpsc" and t["producers"] == 4 for t in r["throughput"]), "no ipmpsc 4P/1C"
loans = sorted(t["item_bytes"] for t in r["throughput"] if t["system"] == "procq-zero-copy")
assert loans == [65536, 1 << 20], loans
assert any(t["batch"] > 1 for t in r["throughput"]), "no batch case"
for t in r["throughput"]:
    assert t["items"] > 0 and t["items_per_sec"] > 0, t
lat = {(l["system"], l["oversubscribed"]) for l in r["latency"]}
assert {("procq", False), ("socket", False), ("procq", True), ("ipmpsc", False)} <= lat, lat
for l in r["latency"]:
    assert 0 < l["p50_ns"] <= l["p99_ns"] <= l["p999_ns"] <= l["max_ns"], l
    assert l["cpu_ns_per_round_trip"] > 0 and l["cpu_cores"] > 0, l
m = r["memory"]
assert m and 0 < m["idle_resident_bytes"] < m["full_resident_bytes"], m
assert m["full_resident_bytes"] >= m["fill_bytes"], m
missing = [t["name"] for t in r["targets"] if t["result"] == "missing"
           and ("iceoryx2" not in t["name"] or "iceoryx2" in systems)]
assert not missing, missing
print(f"bench smoke: {len(r['throughput'])} throughput, {len(r['latency'])} latency "
      f"cases, {len(r['targets'])} targets, {r['seconds']:.1f} s")
PY

grep -q "</svg>" "$out/report.svg" || {
    echo "the SVG chart is incomplete" >&2
    exit 1
}
