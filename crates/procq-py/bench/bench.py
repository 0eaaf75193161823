#!/usr/bin/env python3
"""Throughput of procq against multiprocessing.Queue, multiprocessing.SimpleQueue
and faster-fifo, between processes.

For every item kind (int, 100 B bytes, 100 KB bytes) and topology (1 producer
/ 1 consumer, 2 producers / 2 consumers), each queue moves N items from the
producers to the consumers; the clock runs from the start signal until the
last consumer has its share. Items/s is the best of --repeat runs. One table,
one run:

    python bench/bench.py              # full run (about a minute on 2 cores)
    python bench/bench.py --quick      # fewer items, one repetition
    python bench/bench.py --smoke      # seconds: checks that every path works

Fairness: the bounded queues hold at most 1000 items (procq.Queue(1000),
multiprocessing.Queue(1000)); SimpleQueue is bounded by its pipe; faster-fifo
by a 128 MiB byte ring. "procq unbounded" and "mp.Queue unbounded" are the
defaults, procq.Queue() and multiprocessing.Queue(), the ones most users
make. All processes use the fork start method. The "batch"
rows use put_many/get_many with 64 items per call (faster-fifo's
recommended pattern, and procq's); per-item rows use put/get.

After the table, the targets of the "Performance" issue, each met or not
from the ratios of this run (see TARGETS): small items (int, 100 B) with
procq.Queue(1000) at >= 15x mp.Queue and >= 5x faster-fifo (put/get against
put/get), and 100 KB items with the default unbounded procq.Queue() at
>= 3x the default unbounded mp.Queue(). A missed target does not change the exit status.
"""

import argparse
import multiprocessing as mp
import os
import queue
import sys
import time

import procq

try:
    import faster_fifo
except ImportError:  # the table then says "n/a"
    faster_fifo = None

BATCH = 64
CTX = mp.get_context("fork")

ITEMS = {
    "int": lambda i: i,
    "100 B": lambda i: b"x" * 100,
    "100 KB": lambda i: b"x" * 100_000,
}

# items moved per run, per item kind (full run)
COUNTS = {"int": 200_000, "100 B": 200_000, "100 KB": 10_000}


def make_queue(impl):
    if impl == "procq unbounded":
        return procq.Queue()
    if impl.startswith("procq"):
        return procq.Queue(1000)
    if impl == "mp.Queue":
        return CTX.Queue(1000)
    if impl == "mp.Queue unbounded":
        return CTX.Queue()
    if impl == "mp.SimpleQueue":
        return CTX.SimpleQueue()
    if impl.startswith("faster-fifo"):
        return faster_fifo.Queue(max_size_bytes=128 << 20)
    raise ValueError(impl)


def producer(impl, q, kind, n, start):
    make = ITEMS[kind]
    start.wait()
    if impl.endswith("batch"):
        chunk = [make(i) for i in range(BATCH)]
        sent = 0
        while sent < n:
            k = min(BATCH, n - sent)
            q.put_many(chunk[:k] if k < BATCH else chunk)
            sent += k
    else:
        put = q.put
        if kind == "int":
            for i in range(n):
                put(i)
        else:
            item = make(0)
            for _ in range(n):
                put(item)


def consumer(impl, q, n, done):
    got = 0
    size = 0
    if impl.endswith("batch"):
        while got < n:
            if impl.startswith("faster-fifo"):
                items = q.get_many(timeout=30, max_messages_to_get=min(BATCH, n - got))
            else:
                items = q.get_many(min(BATCH, n - got), timeout=30)
            got += len(items)
            size += sum(len(x) if isinstance(x, bytes) else 1 for x in items)
    else:
        get = q.get
        if impl == "mp.SimpleQueue":
            for _ in range(n):
                x = get()
                size += len(x) if isinstance(x, bytes) else 1
        else:
            for _ in range(n):
                x = get(timeout=30)
                size += len(x) if isinstance(x, bytes) else 1
    done.put((got or n, size))


def collect(impl, done, consumers, procs, limit=120):
    """Every consumer's (count, size), waiting at most `limit` seconds: a
    consumer that died (or a run that stalls) kills the run's processes and
    raises RuntimeError instead of waiting forever."""
    results = []
    deadline = time.monotonic() + limit
    while len(results) < consumers:
        try:
            results.append(done.get(timeout=0.5))
            continue
        except queue.Empty:
            pass
        failed = [p for p in procs if p.exitcode not in (None, 0)]
        if failed or time.monotonic() > deadline:
            for p in procs:
                p.kill()
                p.join(5)
            why = f"a process failed ({failed[0].exitcode})" if failed else "the run stalled"
            raise RuntimeError(f"{impl}: {why}")
    return results


def run_once(impl, kind, producers, consumers, n):
    q = make_queue(impl)
    start = CTX.Event()
    done = CTX.Queue()
    per_p, per_c = n // producers, n // consumers
    procs = [CTX.Process(target=producer, args=(impl, q, kind, per_p, start)) for _ in range(producers)]
    procs += [CTX.Process(target=consumer, args=(impl, q, per_c, done)) for _ in range(consumers)]
    for p in procs:
        p.start()
    time.sleep(0.05)  # let every process reach its start line
    t0 = time.perf_counter()
    start.set()
    results = collect(impl, done, consumers, procs)
    elapsed = time.perf_counter() - t0
    for p in procs:
        p.join(30)
        if p.is_alive():
            p.kill()
            raise RuntimeError(f"{impl}: a process hung")
        if p.exitcode != 0:
            raise RuntimeError(f"{impl}: a process failed ({p.exitcode})")
    count = sum(r[0] for r in results)
    if count != per_c * consumers:
        raise RuntimeError(f"{impl}: moved {count} items, expected {per_c * consumers}")
    if impl.startswith("procq"):
        q.close()
    return count / elapsed


# The targets: (item kinds, procq's implementation, the baseline, the
# least ratio procq / baseline). Judged for every topology in the table.
TARGETS = [
    (("int", "100 B"), "procq", "mp.Queue", 15.0),
    (("int", "100 B"), "procq", "faster-fifo", 5.0),
    (("100 KB",), "procq unbounded", "mp.Queue unbounded", 3.0),
]


def judge(rows):
    """The targets as rows of (target, measured ratio or None, required,
    verdict), from the table's rows of (kind, topology, N, rates). A
    baseline that did not run (faster-fifo not installed) gives "n/a"."""
    out = []
    for kinds, ours, base, need in TARGETS:
        for kind, topo, _n, rates in rows:
            if kind not in kinds:
                continue
            a, b = rates.get(ours), rates.get(base)
            ratio = None if a is None or b is None or b <= 0 else a / b
            verdict = "n/a" if ratio is None else "met" if ratio >= need else "NOT MET"
            out.append((f"{kind} {topo}: {ours} / {base}", ratio, need, verdict))
    return out


def fmt_rate(r):
    if r is None:
        return "n/a"
    if r >= 1e6:
        return f"{r / 1e6:.2f} M/s"
    if r >= 1e3:
        return f"{r / 1e3:.1f} k/s"
    return f"{r:.0f} /s"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="a fifth of the items, one repetition")
    ap.add_argument("--smoke", action="store_true", help="tiny run to check every path works")
    ap.add_argument("--repeat", type=int, default=None, help="runs per cell (best is kept)")
    args = ap.parse_args()

    scale = 0.002 if args.smoke else 0.2 if args.quick else 1.0
    repeat = args.repeat or (1 if (args.smoke or args.quick) else 3)
    impls = ["procq", "procq batch", "procq unbounded", "mp.Queue", "mp.Queue unbounded",
             "mp.SimpleQueue", "faster-fifo", "faster-fifo batch"]
    if faster_fifo is None:
        print("faster-fifo is not installed: its columns say n/a", file=sys.stderr)

    rows = []
    for kind in ITEMS:
        for producers, consumers in [(1, 1), (2, 2)]:
            n = max(4 * BATCH, int(COUNTS[kind] * scale)) // 4 * 4
            rates = {}
            for impl in impls:
                if impl.startswith("faster-fifo") and faster_fifo is None:
                    rates[impl] = None
                    continue
                try:
                    rates[impl] = max(
                        run_once(impl, kind, producers, consumers, n) for _ in range(repeat)
                    )
                except RuntimeError as e:
                    if impl.startswith("procq"):
                        raise
                    # A baseline that fails (faster-fifo's 2P/2C once
                    # left a consumer short of items) says n/a.
                    print(f"  {e}: its cell says n/a", file=sys.stderr)
                    rates[impl] = None
            rows.append((kind, f"{producers}P/{consumers}C", n, rates))
            print(f"  done: {kind} {producers}P/{consumers}C", file=sys.stderr)

    head = ["item", "topology", "N"] + impls + ["procq/mp.Queue", "procq/SimpleQueue", "procq/faster-fifo", "batch/faster-fifo batch"]
    table = []
    for kind, topo, n, r in rows:
        def ratio(a, b):
            return "n/a" if r.get(a) is None or r.get(b) is None else f"{r[a] / r[b]:.1f}x"
        table.append(
            [kind, topo, str(n)] + [fmt_rate(r[i]) for i in impls]
            + [ratio("procq", "mp.Queue"), ratio("procq", "mp.SimpleQueue"),
               ratio("procq", "faster-fifo"), ratio("procq batch", "faster-fifo batch")]
        )
    widths = [max(len(h), *(len(row[i]) for row in table)) for i, h in enumerate(head)]
    print(f"\nitems/s, best of {repeat}; Python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    print("| " + " | ".join(h.ljust(w) for h, w in zip(head, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in table:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |")

    verdicts = judge(rows)
    note = " (--smoke: too few items for these to mean anything)" if args.smoke else ""
    print(f'\nTargets (issue "Performance"; same-run ratios of items/s){note}')
    width = max(len(name) for name, *_ in verdicts)
    for name, ratio, need, verdict in verdicts:
        measured = "n/a" if ratio is None else f"{ratio:.1f}x"
        required = f">= {need:g}x"
        print(f"  {name:<{width}}  {measured:>6}  {required:<7}  {verdict}")


if __name__ == "__main__":
    main()
