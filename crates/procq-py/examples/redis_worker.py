"""Workers on any machine that reaches a Redis server: a JoinableQueue of
jobs on the server, results back through a second queue. A worker that is
killed has its unfinished job handed to another (at-least-once delivery).

Items are JSON (dumps=/loads=), so any client of the server may write jobs
without being trusted to run code in the workers; pickled items would need
trusted=True (see help(procq.Queue)).

    python examples/redis_worker.py redis://127.0.0.1:6379/0
    # or: PROCQ_REDIS_URL=redis://host:6379/0 python examples/redis_worker.py
"""

import json
import multiprocessing as mp
import os
import sys
import uuid

import procq


def dumps(obj):
    return json.dumps(obj).encode()


def worker(jobs, results):
    while (job := jobs.get(timeout=30)) is not None:
        results.put({"job": job["n"], "square": job["n"] ** 2, "pid": os.getpid()})
        jobs.task_done()
    jobs.task_done()


def main(server):
    tag = uuid.uuid4().hex[:8]  # fresh queue names for this run
    jobs = procq.JoinableQueue(f"{server}/example-jobs-{tag}", dumps=dumps, loads=json.loads)
    results = procq.Queue(f"{server}/example-results-{tag}", dumps=dumps, loads=json.loads)
    procs = [mp.Process(target=worker, args=(jobs, results)) for _ in range(2)]
    for p in procs:
        p.start()
    for n in range(10):
        jobs.put({"n": n})
    for _ in procs:
        jobs.put(None)
    assert jobs.join(timeout=60), "the workers did not finish"
    got = sorted(r["square"] for r in results.get_many(10, timeout=10))
    while len(got) < 10:
        got += [r["square"] for r in results.get_many(10, timeout=10)]
    for p in procs:
        p.join(30)
    print("squares:", sorted(got))
    print("exit codes:", [p.exitcode for p in procs])


if __name__ == "__main__":
    url = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("PROCQ_REDIS_URL")
    if not url:
        sys.exit("usage: redis_worker.py redis://host:port/db  (or set PROCQ_REDIS_URL)")
    main(url.rstrip("/"))
