#!/usr/bin/env python3
"""CPU time of one call of each method that carries items, in one process
(no other process, no waiting): what the binding costs per call, for each
way of passing the arguments. CPU time (time.process_time) rather than the
clock, so that other jobs on a shared machine change it less; the best of
--repeat rounds of N calls. The batch calls move BATCH items per call.

    python bench/call_bench.py            # 200 000 calls per round, 7 rounds
    python bench/call_bench.py --smoke    # seconds: checks that it runs
    python bench/call_bench.py -k get     # only the cases whose label has "get"
"""

import argparse
import sys
import time

import procq

BATCH = 10


def cases(n):
    """The queues, and (label, what runs before each round, the round) for
    every case."""
    q = procq.Queue()
    sq = procq.SimpleQueue()
    # What the loops see: each loop is compiled from its source text, so
    # that nothing but the call runs between two calls.
    env = {
        "q": q, "sq": sq, "ints": range(n), "batches": range(n),
        "small": b"x" * 100, "batch": list(range(BATCH)), "BATCH": BATCH,
    }

    def loop(call, over="ints"):
        ns = dict(env)
        exec(f"def body():\n    for i in {over}:\n        {call}\n", ns)
        return ns["body"]

    def drain(queue):
        return lambda: queue.get_many() if queue.qsize() else None

    def fill(queue, items):
        def before():
            drain(queue)()
            queue.put_many(range(items))
        return before

    for name in ("put", "get", "put_nowait", "get_nowait", "put_many", "get_many"):
        env[name] = getattr(q, name)
        env["s" + name] = getattr(sq, name, None)

    many = n * BATCH
    return (q, sq), [
        ("put(i)", drain(q), loop("put(i)")),
        ("put(100 B)", drain(q), loop("put(small)")),
        ("put(100 B, timeout=30)", drain(q), loop("put(small, timeout=30)")),
        ("put_nowait(i)", drain(q), loop("put_nowait(i)")),
        ("get()", fill(q, n), loop("get()")),
        ("get(True, 30)", fill(q, n), loop("get(True, 30)")),
        ("get(timeout=30.0)", fill(q, n), loop("get(timeout=30.0)")),
        ("get(block=True)", fill(q, n), loop("get(block=True)")),
        ("get(False)", fill(q, n), loop("get(False)")),
        ("get_nowait()", fill(q, n), loop("get_nowait()")),
        (f"put_many({BATCH} ints)", drain(q), loop("put_many(batch)", "batches")),
        (f"get_many({BATCH})", fill(q, many), loop("get_many(BATCH)", "batches")),
        (f"get_many({BATCH}, timeout=30)", fill(q, many),
         loop("get_many(BATCH, timeout=30)", "batches")),
        ("SimpleQueue put(i)", drain(sq), loop("sput(i)")),
        ("SimpleQueue get()", fill(sq, n), loop("sget()")),
        ("SimpleQueue get(timeout=30)", fill(sq, n), loop("sget(timeout=30)")),
        (f"SimpleQueue put_many({BATCH} ints)", drain(sq), loop("sput_many(batch)", "batches")),
        (f"SimpleQueue get_many({BATCH})", fill(sq, many), loop("sget_many(BATCH)", "batches")),
    ]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=200_000, help="calls per round")
    ap.add_argument("--repeat", type=int, default=7, help="rounds (best is kept)")
    ap.add_argument("--smoke", action="store_true", help="a tiny run")
    ap.add_argument("-k", default="", help="only the cases whose label contains this")
    args = ap.parse_args()
    n, repeat = (1000, 1) if args.smoke else (args.n, args.repeat)

    queues, every = cases(n)
    chosen = [c for c in every if args.k in c[0]]
    print(f"CPU ns per call, best of {repeat} x {n}; Python {sys.version.split()[0]}")
    for label, before, body in chosen:
        best = float("inf")
        for _ in range(repeat):
            before()
            t = time.process_time()
            body()
            best = min(best, time.process_time() - t)
        print(f"  {label:<34} {best / n * 1e9:6.0f}")
    for queue in queues:
        if queue.qsize():
            queue.get_many()
        queue.close()


if __name__ == "__main__":
    main()
