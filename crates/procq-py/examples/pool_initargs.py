"""A procq queue handed to every worker of a multiprocessing.Pool through
initargs: a procq queue pickles to its name, so it goes wherever pickle
goes (multiprocessing.Queue refuses: "Queue objects should only be shared
between processes through inheritance").

    python examples/pool_initargs.py
"""

import multiprocessing
import os

import procq

results = None  # set in each worker by init()


def init(q):
    global results
    results = q


def square(x):
    results.put((os.getpid(), x * x))  # reported through the queue, not the return value
    return x


if __name__ == "__main__":
    q = procq.Queue()
    with multiprocessing.get_context("spawn").Pool(2, initializer=init, initargs=(q,)) as pool:
        assert pool.map(square, range(10)) == list(range(10))
    got = [q.get(timeout=30) for _ in range(10)]
    print("squares:", sorted(v for _, v in got))
    print("worker processes:", len({pid for pid, _ in got}))
