"""procq under the spawn start method (the default on macOS and Windows, and
from Python 3.14 on Linux): the queues are pickled into the children by
name, one shutdown() ends every worker's `for job in jobs:` loop once the
queue is drained (no None per worker), and a JoinableQueue's join() waits
for every worker's task_done().

    python examples/spawn_start.py
"""

import multiprocessing as mp

import procq


def worker(jobs, results):
    for job in jobs:  # ends once jobs is shut down and drained
        results.put(job * 10)
        jobs.task_done()


if __name__ == "__main__":
    ctx = mp.get_context("spawn")
    jobs, results = procq.JoinableQueue(maxsize=8), procq.Queue()
    workers = [ctx.Process(target=worker, args=(jobs, results)) for _ in range(3)]
    for w in workers:
        w.start()
    for i in range(20):
        jobs.put(i)
    jobs.shutdown()  # Python 3.13's Queue.shutdown, for every process: no more jobs
    assert jobs.join(timeout=60), "workers did not finish"
    print("results:", sorted(results.get(timeout=10) for _ in range(20)))
    for w in workers:
        w.join(30)
    print("exit codes:", [w.exitcode for w in workers])
