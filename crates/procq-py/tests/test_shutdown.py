"""``shutdown()``, iteration and ``with`` (issue #16), across processes.

Python 3.13's ``queue.Queue.shutdown`` semantics: after it, ``put`` raises
ShutDown in every process, ``get`` drains what is left and then raises it,
blocked callers of every process wake, and ``immediate=True`` drops the
rest and counts it done for ``join``.
"""

import queue
import sys
import time

import pytest

import procq
import workers
from conftest import run_all

# Blocked calls wake at least once a second anyway (the core checks that
# its segment still exists): "woken by the shutdown" means well within it.
AT_ONCE = 0.5


def wait_blocked(q, gets=0, puts=0):
    deadline = time.monotonic() + 30
    while True:
        s = q.stats()
        if s["blocked_gets"] >= gets and s["blocked_puts"] >= puts:
            return
        assert time.monotonic() < deadline, f"never blocked: {s}"
        time.sleep(0.005)


def test_shutdown_is_the_standard_librarys_exception():
    if sys.version_info >= (3, 13):
        assert procq.ShutDown is queue.ShutDown
    else:
        assert issubclass(procq.ShutDown, Exception)
    q = procq.Queue()
    q.put(1)
    q.put(2)
    assert not q.is_shutdown
    q.shutdown()
    assert q.is_shutdown
    assert q.stats()["shutdown"] is True
    with pytest.raises(procq.ShutDown):
        q.put(3)
    with pytest.raises(procq.ShutDown):
        q.put_nowait(3)
    with pytest.raises(procq.ShutDown):
        q.put_many([3, 4])
    assert q.get() == 1  # what is left is still handed out
    assert q.get_many(10) == [2]
    for call in (q.get, q.get_nowait, lambda: q.get(timeout=5), lambda: q.get_many(3)):
        with pytest.raises(procq.ShutDown):
            call()
    q.shutdown()  # again: harmless
    q.close()


def test_immediate_shutdown_drops_items_and_counts_them_done():
    q = procq.JoinableQueue()
    for i in range(5):
        q.put(i)
    assert q.get() == 0  # taken, not done
    q.shutdown(immediate=True)
    assert q.qsize() == 0
    assert q.unfinished_tasks == 1
    with pytest.raises(procq.ShutDown):
        q.get_nowait()
    assert q.join(timeout=0.05) is False
    q.task_done()
    assert q.join(timeout=5) is True


def test_iteration_ends_at_shutdown_and_drain(ctx):
    q = procq.Queue()
    results = procq.Queue()
    consumers = [ctx.Process(target=workers.drain_until_shutdown, args=(q, results))
                 for _ in range(3)]
    for p in consumers:
        p.start()
    items = list(range(300))
    q.put_many(items)
    q.shutdown()
    for p in consumers:
        p.join(30)
        assert p.exitcode == 0
    got = [x for _ in consumers for x in results.get(timeout=10)]
    assert sorted(got) == items


def test_shutdown_wakes_blocked_getters_in_every_process_at_once(ctx):
    q = procq.Queue()
    results = procq.Queue()
    getters = [ctx.Process(target=workers.get_expect_shutdown, args=(q, results))
               for _ in range(4)]
    for p in getters:
        p.start()
    wait_blocked(q, gets=4)
    time.sleep(0.05)  # past their spin: asleep
    # From yet another process.
    since = time.monotonic()
    run_all([ctx.Process(target=workers.shutdown_queue, args=(q, False))])
    for p in getters:
        p.join(30)
        assert p.exitcode == 0
    woke = [results.get(timeout=10) for _ in getters]
    assert all(what == "shutdown" for what, _ in woke), woke
    # The closer's own start-up counts here; generous all the same.
    late = max(t for _, t in woke) - since
    assert late < AT_ONCE + 2.0, late


def test_shutdown_wakes_blocked_putters_in_every_process(ctx):
    q = procq.Queue(1)
    q.put("first")
    results = procq.Queue()
    putters = [ctx.Process(target=workers.put_expect_shutdown, args=(q, results))
               for _ in range(3)]
    for p in putters:
        p.start()
    wait_blocked(q, puts=3)
    time.sleep(0.05)
    since = time.monotonic()
    q.shutdown()
    for p in putters:
        p.join(30)
        assert p.exitcode == 0
    woke = [results.get(timeout=10) for _ in putters]
    assert all(what == "shutdown" for what, _ in woke), woke
    assert max(t for _, t in woke) - since < AT_ONCE, woke
    assert q.get_nowait() == "first"
    with pytest.raises(procq.ShutDown):
        q.get_nowait()


def test_shutdown_racing_producers_and_consumers_loses_nothing(ctx):
    q = procq.Queue(16)
    accepted = procq.Queue()
    results = procq.Queue()
    consumers = [ctx.Process(target=workers.drain_until_shutdown, args=(q, results))
                 for _ in range(3)]
    producers = [ctx.Process(target=workers.produce_until_shutdown, args=(q, accepted, t))
                 for t in range(2)]
    for p in consumers + producers:
        p.start()
    deadline = time.monotonic() + 60
    while q.stats()["items_got"] < 1000:
        assert time.monotonic() < deadline
        time.sleep(0.005)
    q.shutdown()
    for p in consumers + producers:
        p.join(60)
        assert p.exitcode == 0
    got = [x for _ in consumers for x in results.get(timeout=10)]
    assert len(got) == len(set(got)), "delivered twice"
    want = set()
    for _ in producers:
        tag, n = accepted.get(timeout=10)
        want.update((tag, i) for i in range(n))
    assert set(got) == want


def test_for_loop_over_a_queue_in_this_process():
    q = procq.Queue()
    q.put_many(["a", "b"])
    q.shutdown()
    assert [x for x in q] == ["a", "b"]
    assert list(q) == []
    q.close()


def test_with_closes_the_handle_and_the_queue_lives_on():
    with procq.Queue() as q:
        q.put("kept")
        other = procq.Queue.open(q.name)
    assert q.closed
    with pytest.raises(ValueError):
        q.get_nowait()
    assert other.get(timeout=5) == "kept"
    with procq.JoinableQueue() as jq:
        assert isinstance(jq, procq.JoinableQueue)
    assert jq.closed
    with procq.SimpleQueue() as sq:
        sq.put(1)
    assert sq.closed
    other.close()


def test_shutdown_on_a_closed_handle_raises_value_error():
    q = procq.Queue()
    q.close()
    with pytest.raises(ValueError):
        q.shutdown()
