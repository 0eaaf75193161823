"""procq under the spawn start method (the default on macOS and Windows, and
from Python 3.14 on Linux): the queues are pickled into the children by
name, a JoinableQueue's join() waits for every worker's task_done().

    python examples/spawn_start.py
"""

import multiprocessing as mp

import procq


def worker(jobs, results):
    while (job := jobs.get(timeout=30)) is not None:
        results.put(job * 10)
        jobs.task_done()
    jobs.task_done()  # for the None


if __name__ == "__main__":
    ctx = mp.get_context("spawn")
    jobs, results = procq.JoinableQueue(maxsize=8), procq.Queue()
    workers = [ctx.Process(target=worker, args=(jobs, results)) for _ in range(3)]
    for w in workers:
        w.start()
    for i in range(20):
        jobs.put(i)
    for _ in workers:
        jobs.put(None)
    assert jobs.join(timeout=60), "workers did not finish"
    print("results:", sorted(results.get(timeout=10) for _ in range(20)))
    for w in workers:
        w.join(30)
    print("exit codes:", [w.exitcode for w in workers])
