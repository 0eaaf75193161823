#!/usr/bin/env python3
"""CPU time of one put or get call, in one process (no other process, no
waiting): what the binding costs per call, for each way of passing the
arguments. CPU time (time.process_time) rather than the clock, so that
other jobs on a shared machine change it less; the best of --repeat rounds
of N calls.

    python bench/call_bench.py            # 200 000 calls per round, 7 rounds
    python bench/call_bench.py --smoke    # seconds: checks that it runs
"""

import argparse
import sys
import time

import procq


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=200_000, help="calls per round")
    ap.add_argument("--repeat", type=int, default=7, help="rounds (best is kept)")
    ap.add_argument("--smoke", action="store_true", help="a tiny run")
    args = ap.parse_args()
    n, repeat = (1000, 1) if args.smoke else (args.n, args.repeat)

    q = procq.Queue()
    ints = list(range(n))
    small = b"x" * 100
    put, get = q.put, q.get

    def drain():
        while q.qsize():
            q.get_many(n, block=False)

    def fill():
        drain()
        q.put_many(ints)

    def put_int():
        for i in ints:
            put(i)

    def put_small():
        for _ in ints:
            put(small)

    def put_small_timeout():
        for _ in ints:
            put(small, timeout=30)

    def get_plain():
        for _ in ints:
            get()

    def get_positional():
        for _ in ints:
            get(True, 30)

    def get_timeout():
        for _ in ints:
            get(timeout=30.0)

    def get_block():
        for _ in ints:
            get(block=True)

    def get_nowait():
        nowait = q.get_nowait
        for _ in ints:
            nowait()

    # (label, what runs before each round, the round)
    cases = [
        ("put(i)", drain, put_int),
        ("put(100 B)", drain, put_small),
        ("put(100 B, timeout=30)", drain, put_small_timeout),
        ("get()", fill, get_plain),
        ("get(True, 30)", fill, get_positional),
        ("get(timeout=30.0)", fill, get_timeout),
        ("get(block=True)", fill, get_block),
        ("get_nowait()", fill, get_nowait),
    ]
    print(f"CPU ns per call, best of {repeat} x {n}; Python {sys.version.split()[0]}")
    for label, before, body in cases:
        best = float("inf")
        for _ in range(repeat):
            before()
            t = time.process_time()
            body()
            best = min(best, time.process_time() - t)
        print(f"  {label:<24} {best / n * 1e9:6.0f}")
    drain()
    q.close()


if __name__ == "__main__":
    main()
