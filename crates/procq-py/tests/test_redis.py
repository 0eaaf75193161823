"""procq queues on a Redis server: the same classes and behaviour, opened
with a URL (``procq.Queue("redis://host:port/db/name", maxsize=...)``).

A private ``redis-server`` (installed by scripts/test.d/20-python.sh when
missing) runs on a free 127.0.0.1 port without persistence (the ``base``
fixture in conftest.py). These tests skip only when no ``redis-server``
binary exists at all.
"""

import asyncio
import multiprocessing
import os
import pickle
import queue
import signal
import socket
import threading
import time

import pytest

import procq

import workers
from conftest import race_to_create, run_all

WAIT = 10.0


_n = 0


def url(base, label, options=""):
    global _n
    _n += 1
    return f"{base}/py-{os.getpid()}-{label}-{_n}{options}"


def test_same_api_fifo_sizes_and_timeouts(base):
    q = procq.Queue(url(base, "fifo"), maxsize=3, trusted=True)
    assert (q.maxsize, q.qsize(), q.empty(), q.full()) == (3, 0, True, False)
    for item in ["Data A", b"raw", {"k": [1, 2]}]:
        q.put(item)
    assert (q.qsize(), q.empty(), q.full()) == (3, False, True)
    t = time.monotonic()
    with pytest.raises(queue.Full):
        q.put("x", timeout=0.3)
    assert 0.25 <= time.monotonic() - t < 3
    with pytest.raises(queue.Full):
        q.put_nowait("x")
    assert [q.get(), q.get(), q.get_nowait()] == ["Data A", b"raw", {"k": [1, 2]}]
    with pytest.raises(queue.Empty):
        q.get_nowait()
    t = time.monotonic()
    with pytest.raises(queue.Empty):
        q.get(timeout=0.3)
    assert 0.25 <= time.monotonic() - t < 3
    q.put_many(range(3))
    assert q.get_many(10) == [0, 1, 2]


def test_constructor_forms(base):
    u = url(base, "forms")
    a = procq.Queue(u, maxsize=2, trusted=True)
    b = procq.Queue(u, trusted=True)  # no maxsize: takes the existing bound
    c = procq.Queue(maxsize=2, name=u, trusted=True)
    d = procq.Queue.open(u, trusted=True)
    assert [x.maxsize for x in (a, b, c, d)] == [2, 2, 2, 2]
    with pytest.raises(ValueError, match="maxsize"):
        procq.Queue(u, maxsize=5, trusted=True)
    with pytest.raises(ValueError, match="Joinable"):
        procq.JoinableQueue(u, trusted=True)
    with pytest.raises(TypeError):
        procq.Queue(u, name=u, trusted=True)
    # stdlib forms still mean a shared-memory queue
    assert procq.Queue(4).maxsize == 4 and procq.Queue(maxsize=5).maxsize == 5
    with pytest.raises(TypeError):
        procq.Queue(4, 5)
    a.put(1)
    assert d.get(timeout=WAIT) == 1


def test_password_never_shown():
    u = "redis://user:hunter2@127.0.0.1:1/0/x?timeout_ms=200"
    with pytest.raises(OSError) as e:
        procq.Queue(u, trusted=True)
    assert "hunter2" not in str(e.value)


def test_repr_stats_and_pickle(base):
    u = url(base, "stats")
    q = procq.JoinableQueue(u, maxsize=7, trusted=True)
    q.put("job")
    st = q.stats()
    assert (st["kind"], st["maxsize"], st["items"], st["unfinished_tasks"]) == (
        "joinable", 7, 1, 1)
    assert u.split("?")[0] in repr(q)
    again = pickle.loads(pickle.dumps(q))
    assert isinstance(again, procq.JoinableQueue) and again.name == q.name
    assert again.get(timeout=WAIT) == "job"
    again.task_done()
    assert q.join(timeout=WAIT)


def test_close_raises_value_error_and_wakes_own_waiter(base):
    q = procq.Queue(url(base, "close"), trusted=True)
    other = procq.Queue.open(q.name, trusted=True)
    errors = []

    def waiter():
        try:
            q.get(timeout=20)
        except Exception as e:  # noqa: BLE001 - the type is the assertion
            errors.append(type(e))

    t = threading.Thread(target=waiter)
    t.start()
    time.sleep(0.3)
    started = time.monotonic()
    q.close()
    t.join(5)
    assert not t.is_alive() and errors == [ValueError]
    assert time.monotonic() - started < 2
    with pytest.raises(ValueError):
        q.put(1)
    other.put(2)  # other handles unaffected
    assert other.get(timeout=WAIT) == 2


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_article_examples_across_processes(base, method):
    import multiprocessing as mp

    ctx = mp.get_context(method)
    # Token counter: two processes add 50 each to a value passed around.
    tokens = procq.Queue(url(base, "tokens"), trusted=True)
    tokens.put(0)
    run_all([ctx.Process(target=workers.increment_worker, args=(tokens, 50))
             for _ in range(2)], timeout=60)
    assert tokens.get(timeout=WAIT) == 100
    # Producer-consumer with a None sentinel.
    jobs, results = procq.Queue(url(base, "jobs"), maxsize=2, trusted=True), procq.Queue(url(base, "res"), trusted=True)
    run_all([ctx.Process(target=workers.producer, args=(jobs, 10, 0)),
             ctx.Process(target=workers.consumer, args=(jobs, results))], timeout=60)
    assert sorted(results.get_many(100, timeout=WAIT)) == sorted(
        f"done Job-{i}" for i in range(10))


def test_create_new_refuses_an_existing_queue(base):
    u = url(base, "create-new")
    q = procq.Queue(u, maxsize=3, create_new=True, trusted=True)
    for make in (procq.Queue, procq.JoinableQueue):
        with pytest.raises(FileExistsError):
            make(u, create_new=True, trusted=True)
    with pytest.raises(FileExistsError):
        procq.SimpleQueue(name=u, create_new=True, trusted=True)
    # Without it, the URL opens the existing queue.
    again = procq.Queue(u, trusted=True)
    q.put("one")
    assert (again.maxsize, again.get(timeout=WAIT)) == (3, "one")


def test_create_new_exactly_one_of_racing_processes_wins(base):
    # Check and creation are one step on the server: a check-then-create
    # would let several of them win.
    for i in range(3):
        u = url(base, f"race-{i}")
        assert sorted(race_to_create(u)) == ["created"] + ["exists"] * 5


def test_joinable_join_across_processes(base):
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    q = procq.JoinableQueue(url(base, "join"), trusted=True)
    procs = [ctx.Process(target=workers.joinable_worker, args=(q,)) for _ in range(2)]
    for p in procs:
        p.start()
    for i in range(40):
        q.put(i)
    for _ in procs:
        q.put(None)
    assert q.join(timeout=30)
    assert q.unfinished_tasks == 0
    for p in procs:
        p.join(10)
        assert p.exitcode == 0


def test_sigkilled_consumer_task_comes_back_and_join_waits(base):
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    q = procq.JoinableQueue(url(base, "kill", "?lease_ms=500"), trusted=True)
    ready = procq.Queue(url(base, "ready"), trusted=True)
    q.put("task-1")
    q.put("task-2")
    p = ctx.Process(target=workers.consume_without_task_done, args=(q, ready, 1))
    p.start()
    pid = ready.get(timeout=30)
    os.kill(pid, signal.SIGKILL)
    p.join(10)
    assert q.unfinished_tasks == 2
    assert q.join(timeout=0.2) is False
    got = [q.get(timeout=WAIT), q.get(timeout=WAIT)]
    assert sorted(got) == ["task-1", "task-2"]  # the dead one's task is redelivered
    q.task_done()
    assert q.join(timeout=0.2) is False
    q.task_done()
    assert q.join(timeout=WAIT)


def test_live_slow_consumer_keeps_its_task(base):
    # The heartbeat renews the lease while the consumer lives: a task that
    # takes longer than the lease is not handed to anyone else.
    u = url(base, "slow", "?lease_ms=300")
    slow = procq.JoinableQueue(u, trusted=True)
    other = procq.JoinableQueue.open(u, trusted=True)
    slow.put("long task")
    assert slow.get(timeout=WAIT) == "long task"
    with pytest.raises(queue.Empty):
        other.get(timeout=1.2)
    slow.task_done()
    assert other.join(timeout=WAIT)


def test_pickles_from_a_server_need_trusted(base):
    """get() unpickles what any client of the server put in, and unpickling
    runs code: a queue on a server takes pickles only with trusted=True."""
    u = url(base, "trust")
    refused = [
        lambda: procq.Queue(u),
        lambda: procq.Queue(maxsize=1, name=u),
        lambda: procq.Queue.open(u),
        lambda: procq.JoinableQueue(url(base, "trust-j")),
        lambda: procq.JoinableQueue.open(url(base, "trust-j")),
        lambda: procq.SimpleQueue(name=url(base, "trust-s")),
    ]
    for make in refused:
        with pytest.raises(ValueError, match="trusted=True"):
            make()
    # Plain data needs no opt-in: nothing is unpickled.
    b = procq.Queue(u, codec="bytes")
    b.put(b"raw")
    assert b.get(timeout=WAIT) == b"raw"
    t = procq.Queue(url(base, "trust-t"), codec="text")
    t.put("text")
    assert t.get(timeout=WAIT) == "text"
    j = procq.Queue(url(base, "trust-json"), dumps=workers.json_dumps, loads=workers.json_loads)
    j.put({"a": [1]})
    assert j.get(timeout=WAIT) == {"a": [1]}


def test_trusted_travels_with_a_pickled_queue(base):
    q = procq.Queue(url(base, "trusted"), trusted=True)
    again = pickle.loads(pickle.dumps(q))
    q.put({"obj": 1})
    assert again.get(timeout=WAIT) == {"obj": 1}
    # A spawned child unpickles the queue: it must still take pickles.
    jq = procq.JoinableQueue(url(base, "trusted-j"), trusted=True)
    jq.put("task")
    spawn = multiprocessing.get_context("spawn")
    run_all([spawn.Process(target=workers.fork_child_task_done, args=(jq, 1))])
    assert jq.join(timeout=WAIT)


def test_out_of_band_buffers_through_redis(base):
    np = pytest.importorskip("numpy")
    q = procq.Queue(url(base, "numpy"), trusted=True)
    arrays = [np.arange(10.0), np.arange(300_000, dtype=np.int32)]
    q.put(arrays)
    got = q.get(timeout=WAIT)
    assert all(np.array_equal(a, b) and b.flags.writeable for a, b in zip(arrays, got))


def test_task_done_many_marks_a_batch_or_none(base):
    for loc in (None, url(base, "tdm")):
        j = procq.JoinableQueue() if loc is None else procq.JoinableQueue(loc, trusted=True)
        j.put_many(range(10))
        batch = j.get_many(6, timeout=WAIT)
        assert batch == list(range(6))
        with pytest.raises(ValueError):
            j.task_done_many(7)
        assert j.unfinished_tasks == 10
        j.task_done_many(6)
        assert j.unfinished_tasks == 4
        assert j.get_many(10, timeout=WAIT) == list(range(6, 10))
        j.task_done_many(4)
        assert j.join(timeout=WAIT)


def test_rediss_queues_across_processes(tls_base):
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    q = procq.Queue(url(tls_base, "tls"), trusted=True)
    assert "rediss://" in repr(q)
    # The child finds the CA through SSL_CERT_FILE, as this process does.
    run_all([ctx.Process(target=workers.put_many_items, args=(q, 0, 50))], timeout=60)
    got = []
    while len(got) < 50:
        got.extend(q.get_many(50, timeout=WAIT))
    assert got == list(range(50))
    j = procq.JoinableQueue(url(tls_base, "tls-join"), trusted=True)
    procs = [ctx.Process(target=workers.joinable_worker, args=(j,))]
    for p in procs:
        p.start()
    j.put_many(range(20))
    j.put(None)
    assert j.join(timeout=30)
    for p in procs:
        p.join(10)
        assert p.exitcode == 0


def test_rediss_to_a_server_that_never_answers_fails_within_timeout_ms():
    # Accepts TCP and never sends a byte: the TLS handshake must give up
    # after timeout_ms instead of hanging (with the GIL released).
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        t = time.monotonic()
        with pytest.raises(OSError):
            procq.Queue(f"rediss://127.0.0.1:{port}/0/silent?timeout_ms=500", trusted=True)
        assert time.monotonic() - t < 5


def test_a_cluster_url_opens_the_same_queues(cluster_base):
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    # The article's token counter, across processes, on a Redis Cluster.
    tokens = procq.Queue(url(cluster_base, "tokens"), trusted=True)
    tokens.put(0)
    run_all([ctx.Process(target=workers.increment_worker, args=(tokens, 25))
             for _ in range(2)], timeout=60)
    assert tokens.get(timeout=WAIT) == 50
    # A SIGKILLed consumer's task comes back; join waits for it.
    q = procq.JoinableQueue(url(cluster_base, "kill", "?lease_ms=500"), trusted=True)
    ready = procq.Queue(url(cluster_base, "ready"), trusted=True)
    q.put_many(["task-1", "task-2"])
    p = ctx.Process(target=workers.consume_without_task_done, args=(q, ready, 1))
    p.start()
    os.kill(ready.get(timeout=30), signal.SIGKILL)
    p.join(10)
    assert sorted([q.get(timeout=WAIT), q.get(timeout=WAIT)]) == ["task-1", "task-2"]
    q.task_done_many(2)
    assert q.join(timeout=WAIT)


# --- shutdown (issue #16) -----------------------------------------------------

def test_shutdown_wakes_blocked_getters_of_other_processes_and_ends_iteration(base):
    ctx = multiprocessing.get_context("spawn")
    q = procq.Queue(url(base, "shut"), trusted=True)
    woke = procq.Queue(url(base, "shut-woke"), trusted=True)
    drained = procq.Queue(url(base, "shut-drained"), trusted=True)
    getters = [ctx.Process(target=workers.get_expect_shutdown, args=(q, woke))
               for _ in range(2)]
    consumer = ctx.Process(target=workers.drain_until_shutdown, args=(q, drained))
    procs = getters + [consumer]
    try:
        for p in procs:
            p.start()
        # Spawned interpreters take a while to start and block.
        time.sleep(2.0)
        assert all(p.is_alive() for p in procs)
        assert not q.is_shutdown
        since = time.monotonic()
        q.shutdown()
        assert q.is_shutdown and q.stats()["shutdown"] is True
        for p in procs:
            p.join(30)
            assert p.exitcode == 0
        got = [woke.get(timeout=WAIT) for _ in getters]
        assert all(what == "shutdown" for what, _ in got), got
        assert max(t for _, t in got) - since < 1.5, got
        assert drained.get(timeout=WAIT) == []
        with pytest.raises(procq.ShutDown):
            q.put(1)
        with pytest.raises(procq.ShutDown):
            q.get(timeout=5)
        assert list(q) == []
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join(5)


def test_for_loop_hands_out_what_remains_then_ends(base):
    q = procq.Queue(url(base, "iter"), maxsize=10, trusted=True)
    q.put_many(range(5))
    q.shutdown()
    with pytest.raises(procq.ShutDown):
        q.put_nowait(5)
    late = procq.Queue.open(q.name, trusted=True)
    assert late.is_shutdown
    assert [x for x in late] == [0, 1, 2, 3, 4]
    with pytest.raises(procq.ShutDown):
        q.get_nowait()


def test_immediate_shutdown_drops_the_rest_and_join_returns(base):
    q = procq.JoinableQueue(url(base, "imm"), trusted=True)
    for i in range(5):
        q.put(i)
    assert q.get() == 0  # in flight: not dropped, still owes its task_done
    q.shutdown(immediate=True)
    assert q.qsize() == 0
    assert q.unfinished_tasks == 1
    with pytest.raises(procq.ShutDown):
        q.get_nowait()
    with pytest.raises(procq.ShutDown):
        q.put(9)
    assert q.join(timeout=0.05) is False
    q.task_done()
    assert q.join(timeout=5) is True


# --- asyncio (issue #16) -----------------------------------------------------

async def _ticker(ticks):
    while True:
        await asyncio.sleep(0.01)
        ticks.append(time.monotonic())


async def _while_ticking(awaitable):
    ticks = []
    t = asyncio.ensure_future(_ticker(ticks))
    try:
        result = await awaitable
    finally:
        t.cancel()
    return result, len(ticks)


def test_the_loop_keeps_ticking_while_redis_async_calls_wait(base):
    ctx = multiprocessing.get_context("spawn")
    q = procq.Queue(url(base, "aget"), trusted=True)
    p = ctx.Process(target=workers.put_after, args=(q, 1.5, "late"))
    p.start()
    try:
        got, ticks = asyncio.run(_while_ticking(q.get_async()))
        assert got == "late"
        # ~150 ticks while it waited; a get that blocked the loop allows none.
        assert ticks >= 10, ticks
        b = procq.Queue(url(base, "aput"), maxsize=1, trusted=True)
        b.put("first")
        g = ctx.Process(target=workers.get_after, args=(b, 1.5))
        g.start()
        try:
            _, ticks = asyncio.run(_while_ticking(b.put_async("second")))
            assert ticks >= 10, ticks
        finally:
            g.join(30)
        assert g.exitcode == 0
        assert b.get(timeout=5) == "second"
        jq = procq.JoinableQueue(url(base, "ajoin"), trusted=True)
        jq.put("task")
        d = ctx.Process(target=workers.task_done_after, args=(jq, 1.0))
        d.start()
        try:
            done, ticks = asyncio.run(_while_ticking(jq.join_async()))
            assert done is True and ticks >= 10, ticks
        finally:
            d.join(30)
        assert d.exitcode == 0
    finally:
        p.join(30)
    assert p.exitcode == 0


def test_redis_async_timeouts_raise_empty_and_full_and_shutdown_ends_them(base):
    async def main():
        q = procq.Queue(url(base, "atime"), maxsize=1, trusted=True)
        t = time.monotonic()
        with pytest.raises(queue.Empty):
            await q.get_async(timeout=0.1)
        assert time.monotonic() - t >= 0.09
        await q.put_async(1)
        with pytest.raises(queue.Full):
            await q.put_async(2, timeout=0.1)
        jq = procq.JoinableQueue(url(base, "atime-j"), trusted=True)
        jq.put(1)
        assert await jq.join_async(timeout=0.1) is False
        assert await jq.get_async(timeout=5) == 1
        jq.task_done()
        assert await jq.join_async(timeout=5) is True
        s = procq.Queue(url(base, "ashut"), trusted=True)
        pending = asyncio.ensure_future(s.get_async())
        await asyncio.sleep(0.2)
        s.shutdown()
        with pytest.raises(procq.ShutDown):
            await asyncio.wait_for(pending, 5)
        with pytest.raises(procq.ShutDown):
            await s.put_async(1)

    asyncio.run(main())


@pytest.mark.parametrize("kind", ["plain", "joinable"])
def test_cancelled_redis_get_async_calls_lose_nothing(base, kind):
    ctx = multiprocessing.get_context("spawn")
    n = 300
    if kind == "plain":
        q = procq.Queue(url(base, "acancel"), trusted=True)
    else:
        q = procq.JoinableQueue(url(base, "acancel-j"), trusted=True)
    p = ctx.Process(target=workers.produce_n, args=(q, n))
    p.start()

    async def main():
        got, cancelled, i = [], 0, 0
        deadline = time.monotonic() + 60
        while len(got) < n:
            assert time.monotonic() < deadline, f"stuck after {len(got)} items"
            i += 1
            try:
                got.append(await asyncio.wait_for(q.get_async(), (i * 37 % 3100) / 1e6))
                if kind == "joinable":
                    q.task_done()
            except asyncio.TimeoutError:
                cancelled += 1
        return got, cancelled

    try:
        got, cancelled = asyncio.run(main())
    finally:
        p.join(30)
    assert p.exitcode == 0
    assert cancelled > 0, "no get was cancelled: the test tested nothing"
    # (A get cancelled after it took an item gives it back at the head:
    # nothing is lost, the order may differ.)
    assert sorted(got) == list(range(n)), "lost or duplicated"
    if kind == "joinable":
        assert q.join(timeout=10) is True
