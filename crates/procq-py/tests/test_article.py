"""The seed article's examples, ported to procq, under fork and spawn."""

import queue
import time

import pytest

import procq
import workers
from conftest import run_all


def test_basic_usage():
    q = procq.Queue()
    q.put("Data A")
    q.put("Data B")
    assert q.get(timeout=5) == "Data A"  # retrieved in the order added
    assert q.get(timeout=5) == "Data B"


def test_token_counter(ctx):
    """Two processes × 50 increments of a single token: no lost update."""
    counter_queue = procq.Queue()
    counter_queue.put(0)
    num_processes, loops = 2, 50
    procs = [
        ctx.Process(target=workers.increment_worker, args=(counter_queue, loops))
        for _ in range(num_processes)
    ]
    run_all(procs, timeout=30)
    assert counter_queue.get(timeout=5) == num_processes * loops == 100
    assert counter_queue.empty()


def test_producer_consumer_with_sentinel(ctx):
    q = procq.Queue()
    results = procq.Queue()
    p1 = ctx.Process(target=workers.producer, args=(q, 5, 0.05))
    p2 = ctx.Process(target=workers.consumer, args=(q, results))
    run_all([p1, p2], timeout=30)
    got = [results.get(timeout=5) for _ in range(5)]
    assert got == [f"done Job-{i}" for i in range(5)]
    assert results.empty() and q.empty()


def test_timeout_raises_empty():
    q = procq.Queue()
    start = time.monotonic()
    with pytest.raises(queue.Empty):
        q.get(timeout=0.2)
    elapsed = time.monotonic() - start
    assert 0.19 <= elapsed < 2.0


def test_timeout_raises_full():
    q = procq.Queue(maxsize=1)
    q.put("x")
    start = time.monotonic()
    with pytest.raises(queue.Full):
        q.put("y", timeout=0.2)
    assert 0.19 <= time.monotonic() - start < 2.0


def test_non_blocking_operations():
    q = procq.Queue(maxsize=1)
    with pytest.raises(queue.Empty):
        q.get_nowait()
    q.put_nowait(1)
    with pytest.raises(queue.Full):
        q.put_nowait(2)
    assert q.get_nowait() == 1


def test_joinable_queue(ctx):
    q = procq.JoinableQueue()
    workers_n, jobs = 2, 40
    for i in range(jobs):
        q.put(i)
    for _ in range(workers_n):
        q.put(None)
    procs = [ctx.Process(target=workers.joinable_worker, args=(q,)) for _ in range(workers_n)]
    for p in procs:
        p.start()
    try:
        assert q.join(timeout=20) is True  # every task was marked done
        assert q.unfinished_tasks == 0
    finally:
        for p in procs:
            p.join(10)
            if p.is_alive():
                p.kill()
    assert [p.exitcode for p in procs] == [0, 0]
