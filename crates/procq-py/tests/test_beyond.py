"""What procq adds to multiprocessing.Queue, each claim with a test:
exact qsize, no feeder-thread delay, unpicklable items rejected at once,
queues passed by any route, crash safety, batches, GIL release, fork."""

import multiprocessing
import os
import pickle
import queue
import random
import signal
import threading
import time

import pytest

import procq
import workers
from conftest import ALL_START_METHODS, race_to_create, run_all, tname


# --- exact qsize, no feeder thread ----------------------------------------------

def test_qsize_is_exact_across_processes(ctx):
    q = procq.Queue()
    procs = [ctx.Process(target=workers.put_many_items, args=(q, i * 500, 500)) for i in range(2)]
    run_all(procs)
    assert q.qsize() == 1000  # exact the moment the producers are done
    got = q.get_many(300, timeout=5)
    assert len(got) == 300 and q.qsize() == 700
    assert sorted(got + q.get_many(1000, timeout=5)) == list(range(1000))
    assert q.qsize() == 0 and q.empty()


def test_empty_is_false_as_soon_as_put_returns():
    q = procq.Queue()
    for i in range(1000):
        q.put(i)
        assert not q.empty() and q.qsize() == 1
        assert q.get_nowait() == i


def test_item_put_right_before_exit_is_not_lost(ctx):
    q = procq.Queue()
    run_all([ctx.Process(target=workers.put_then_exit, args=(q, "last words"))])
    assert not q.empty()
    assert q.get_nowait() == "last words"


# --- unpicklable items ---------------------------------------------------------

class Unpicklable:
    def __reduce__(self):
        raise RuntimeError("cannot pickle me")


def test_unpicklable_put_raises_at_once_and_queue_stays_usable():
    q = procq.Queue()
    q.put("before")
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        q.put(lambda: 0)
    with pytest.raises(RuntimeError, match="cannot pickle me"):
        q.put(Unpicklable())
    with pytest.raises(TypeError):
        q.put(threading.Lock())
    assert q.qsize() == 1
    q.put("after")
    assert q.get(timeout=5) == "before"
    assert q.get(timeout=5) == "after"
    assert q.empty()


def test_put_many_with_an_unpicklable_item_puts_nothing():
    q = procq.Queue()
    with pytest.raises(RuntimeError):
        q.put_many([1, 2, Unpicklable(), 4])
    assert q.empty()
    q.put_many([1, 2])
    assert q.get_many(10, timeout=5) == [1, 2]


# --- passing queues by any route -------------------------------------------------

@pytest.mark.parametrize("method", ALL_START_METHODS)
def test_queue_as_process_argument(method):
    ctx = multiprocessing.get_context(method)
    q = procq.Queue()
    p = ctx.Process(target=workers.echo_pid, args=(q, method))
    run_all([p])
    assert q.get(timeout=5) == (method, p.pid)


def test_one_queue_to_children_of_different_contexts():
    """No matching context needed: the queue is just a name."""
    q = procq.JoinableQueue()
    procs = [
        multiprocessing.get_context(m).Process(target=workers.echo_pid, args=(q, m))
        for m in ALL_START_METHODS
    ]
    run_all(procs)
    got = dict(q.get(timeout=5) for _ in procs)
    assert got == {m: p.pid for m, p in zip(ALL_START_METHODS, procs)}


@pytest.mark.parametrize("method", ALL_START_METHODS)
def test_queue_as_pool_initializer_argument(method):
    q = procq.Queue()
    with multiprocessing.get_context(method).Pool(
        2, initializer=workers.pool_init, initargs=(q,)
    ) as pool:
        pids = pool.map_async(workers.pool_task, range(6)).get(timeout=30)
    assert sorted(q.get(timeout=5) for _ in range(6)) == [x * x for x in range(6)]
    assert os.getpid() not in pids


@pytest.mark.parametrize("carrier", ["procq", "multiprocessing"])
def test_queue_sent_through_another_queue(ctx, carrier):
    inbox = procq.Queue() if carrier == "procq" else ctx.Queue()
    reply = procq.Queue()
    inbox.put((reply, "hello"))
    run_all([ctx.Process(target=workers.forward, args=(inbox,))])
    assert reply.get(timeout=5) == "HELLO"


def test_pickled_queues_keep_their_class_and_codec():
    for q in [procq.Queue(3), procq.JoinableQueue(codec="bytes"), procq.SimpleQueue()]:
        copy = pickle.loads(pickle.dumps(q))
        assert type(copy) is type(q)
        assert (copy.name, copy.codec) == (q.name, q.codec)
    assert pickle.loads(pickle.dumps(procq.Queue(3))).maxsize == 3


def test_open_by_name_in_a_spawned_process():
    q, out = procq.Queue(), procq.Queue()
    q.put(21)
    ctx = multiprocessing.get_context("spawn")
    run_all([ctx.Process(target=workers.open_by_name, args=(q.name, out.name))])
    assert out.get(timeout=5) == 42


# --- processes killed with SIGKILL ----------------------------------------------

def _start_and_wait_ready(ctx, target, q, *args):
    """Starts target(q, ready, *args) and waits until it reports ready."""
    ready = procq.Queue()
    p = ctx.Process(target=target, args=(q, ready) + args)
    p.start()
    assert ready.get(timeout=20) == p.pid
    # Keep our handle to `ready` until the child is dead: a queue whose only
    # user is killed stays in /dev/shm until procq.collect_garbage().
    p.procq_ready = ready
    return p


def _kill(p):
    os.kill(p.pid, signal.SIGKILL)
    p.join(10)
    assert p.exitcode == -signal.SIGKILL
    del p.procq_ready


def test_create_new_exactly_one_of_racing_processes_wins():
    """Six processes create one shared-memory name at once: one queue, and
    FileExistsError for the other five (create_new=True, or not: a taken
    name always fails on shared memory)."""
    name = tname("exclusive")
    assert sorted(race_to_create(name)) == ["created"] + ["exists"] * 5
    # The winner's queue went with its process: the name is free again.
    q = procq.Queue(name=name, create_new=True)
    with pytest.raises(FileExistsError):
        procq.JoinableQueue(name=name, create_new=True)
    with pytest.raises(FileExistsError):
        procq.SimpleQueue(name=name, create_new=True)
    q.close()


def test_queue_of_a_killed_last_user_is_garbage_collected():
    ctx = multiprocessing.get_context("fork")
    q = procq.Queue()
    name = q.name
    p = _start_and_wait_ready(ctx, workers.block_in_get, q)
    del q  # the child is now the only user
    p.procq_ready = None
    os.kill(p.pid, signal.SIGKILL)
    p.join(10)
    assert os.path.exists(f"/dev/shm/procq-{name}")
    assert name in procq.collect_garbage()
    assert not os.path.exists(f"/dev/shm/procq-{name}")


@pytest.mark.parametrize("target", [workers.ring_forever, workers.batch_ring_forever])
def test_sigkill_never_deadlocks_or_corrupts(target):
    ctx = multiprocessing.get_context("fork")
    n = 50
    original = set(range(n))
    q = procq.Queue()
    q.put_many(range(n))
    rng = random.Random(1234)
    lost_per_kill = 1 if target is workers.ring_forever else 8
    for _ in range(6):
        p = _start_and_wait_ready(ctx, target, q)
        time.sleep(rng.uniform(0.0, 0.15))
        _kill(p)
        # Whatever the instant, the queue still works and holds only whole,
        # distinct, original items; at most the ones the dead process held
        # in its hands are gone.
        items = q.get_many(10 * n, timeout=5)
        assert len(set(items)) == len(items)
        assert set(items) <= original
        assert n - lost_per_kill <= len(items) <= n
        n = len(items)
        q.put("probe", timeout=5)
        assert q.get(timeout=5) == "probe"
        q.put_many(items)
    assert q.qsize() == n > 0


def test_sigkill_while_putting_large_items():
    ctx = multiprocessing.get_context("fork")
    size = 4 << 20
    q = procq.Queue()
    for delay in (0.02, 0.05, 0.1):
        p = _start_and_wait_ready(ctx, workers.put_large_forever, q, size)
        time.sleep(delay)
        _kill(p)
        while True:
            try:
                item = q.get(timeout=0.5)
            except queue.Empty:
                break
            assert len(item) == size and item.count(b"x") == size
        q.put(b"ok")
        assert q.get(timeout=5) == b"ok"


def test_sigkill_of_a_consumer_lets_join_return():
    ctx = multiprocessing.get_context("fork")
    q = procq.JoinableQueue()
    q.put_many(range(5))
    p = _start_and_wait_ready(ctx, workers.consume_without_task_done, q, 3)
    assert q.join(timeout=0.2) is False
    _kill(p)
    for _ in range(2):
        q.get(timeout=5)
        q.task_done()
    # The dead consumer's 3 tasks are written off: join returns.
    assert q.join(timeout=10) is True
    assert q.unfinished_tasks == 0


def test_sigkill_of_a_blocked_getter_leaves_others_working(ctx):
    q = procq.Queue()
    p = _start_and_wait_ready(ctx, workers.block_in_get, q)
    time.sleep(0.1)
    _kill(p)
    q.put("still works")
    assert q.get(timeout=5) == "still works"
    p2 = ctx.Process(target=workers.fork_child_roundtrip, args=(q, out := procq.Queue()))
    p2.start()
    q.put("for the next consumer")
    assert out.get(timeout=20) == ("child got", "for the next consumer")
    p2.join(10)


# --- batches -------------------------------------------------------------------

def test_put_many_get_many():
    q = procq.Queue()
    q.put_many(x for x in ["a", 1, None, b"b", [2]])  # any iterable
    assert q.get_many(2, timeout=5) == ["a", 1]
    assert q.get_many(100, timeout=5) == [None, b"b", [2]]
    with pytest.raises(queue.Empty):
        q.get_many(3, timeout=0.05)
    with pytest.raises(queue.Empty):
        q.get_many(3, block=False)
    with pytest.raises(ValueError):
        q.get_many(0)
    q.put_many([])
    assert q.empty()


def test_put_many_waits_for_room_and_reports_partial_puts():
    q = procq.Queue(3)
    with pytest.raises(queue.Full, match="first 3 of 5"):
        q.put_many(range(5), timeout=0.1)
    assert q.get_many(10, timeout=5) == [0, 1, 2]
    # A consumer thread makes room: a blocking put_many completes.
    q2 = procq.Queue(2)
    got = []

    def consume():
        while len(got) < 10:
            got.extend(q2.get_many(10, timeout=5))

    t = threading.Thread(target=consume)
    t.start()
    q2.put_many(range(10), timeout=10)
    t.join(10)
    assert got == list(range(10))


def test_get_many_across_processes(ctx):
    q = procq.Queue()
    procs = [ctx.Process(target=workers.put_many_items, args=(q, 0, 200))]
    run_all(procs)
    got = []
    while len(got) < 200:
        got += q.get_many(64, timeout=5)
    assert got == list(range(200))


# --- the GIL -----------------------------------------------------------------------

class Spinner:
    """A Python thread that records a timestamp per loop: it can only run
    while no other thread holds the GIL."""

    def __init__(self):
        self.samples = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run)

    def _run(self):
        append, now = self.samples.append, time.perf_counter
        while not self.stop.is_set():
            append(now())

    def __enter__(self):
        self.thread.start()
        time.sleep(0.02)
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(5)

    def progress(self, t0, t1):
        """Samples taken in [t0, t1] and the longest gap without one."""
        inside = [s for s in self.samples if t0 <= s <= t1]
        points = [t0] + inside + [t1]
        return len(inside), max(b - a for a, b in zip(points, points[1:]))


def test_gil_released_while_waiting():
    q = procq.Queue()
    with Spinner() as spin:
        t0 = time.perf_counter()
        with pytest.raises(queue.Empty):
            q.get(timeout=0.5)
        t1 = time.perf_counter()
    count, gap = spin.progress(t0, t1)
    # Holding the GIL would freeze the spinner for the whole 0.5 s.
    assert count > 1000 and gap < 0.25, (count, gap)


def test_gil_released_while_waiting_for_room():
    q = procq.Queue(1)
    q.put(0)
    with Spinner() as spin:
        t0 = time.perf_counter()
        with pytest.raises(queue.Full):
            q.put(1, timeout=0.5)
        t1 = time.perf_counter()
    count, gap = spin.progress(t0, t1)
    assert count > 1000 and gap < 0.25, (count, gap)


def test_gil_released_while_copying_large_items():
    big = b"x" * (256 << 20)
    q = procq.Queue()
    reader = pickle.loads(pickle.dumps(q))
    q.put(b"y" * (1 << 20))  # teaches the reader handle that items are large
    assert len(reader.get(timeout=10)) == 1 << 20
    with Spinner() as spin:
        t0 = time.perf_counter()
        q.put(big)
        t1 = time.perf_counter()
        got = reader.get(timeout=30)
        t2 = time.perf_counter()
    assert got == big
    for start, end in [(t0, t1), (t1, t2)]:
        count, gap = spin.progress(start, end)
        assert count > 100 and gap < 0.5 * (end - start), (end - start, count, gap)


# --- fork ---------------------------------------------------------------------------

def test_fork_child_uses_inherited_queue():
    ctx = multiprocessing.get_context("fork")
    q, out = procq.Queue(), procq.Queue()
    q.put("from parent")
    run_all([ctx.Process(target=workers.fork_child_roundtrip, args=(q, out))])
    assert out.get(timeout=5) == ("child got", "from parent")


def test_os_fork_child_puts_and_gets():
    q = procq.Queue()
    q.put("to child")
    pid = os.fork()
    if pid == 0:  # child: use the inherited handle, then leave at once
        code = 1
        try:
            if q.get(timeout=5) == "to child":
                q.put(("from child", os.getpid()))
                code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert q.get(timeout=5) == ("from child", pid)


def test_fork_child_task_done_lets_parent_join():
    ctx = multiprocessing.get_context("fork")
    jq = procq.JoinableQueue()
    jq.put_many(range(10))
    p = ctx.Process(target=workers.fork_child_task_done, args=(jq, 10))
    p.start()
    assert jq.join(timeout=20) is True
    p.join(10)
    assert p.exitcode == 0


class Interrupted(Exception):
    pass


def test_signal_handlers_run_while_blocked():
    """Ctrl-C (or any Python signal handler) interrupts a blocked get."""
    def handler(signum, frame):
        raise Interrupted

    old = signal.signal(signal.SIGALRM, handler)
    try:
        q = procq.Queue()
        signal.setitimer(signal.ITIMER_REAL, 0.2)
        start = time.monotonic()
        with pytest.raises(Interrupted):
            q.get(timeout=10)
        assert time.monotonic() - start < 2
        # the queue is unaffected
        q.put(1)
        assert q.get(timeout=5) == 1
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def test_a_stopped_lock_holder_times_calls_out_and_blocking_calls_wait():
    """A process stopped (SIGSTOP) inside the queue's critical section: a
    call with a timeout raises TimeoutError naming it (the queue is neither
    empty nor full), and a call without one waits, as the standard
    library's would, until the holder goes on."""
    ctx = multiprocessing.get_context("fork")
    q = procq.Queue()
    p = _start_and_wait_ready(ctx, workers.put_large_forever, q, 32 << 20)
    try:
        caught = None
        for _ in range(100):  # stop it until it is stopped holding the lock
            os.kill(p.pid, signal.SIGSTOP)
            try:
                q.put_nowait(b"probe")
            except TimeoutError as e:
                caught = e
                break
            except queue.Full:
                pass
            os.kill(p.pid, signal.SIGCONT)
            time.sleep(0.003)
        assert caught is not None, "never stopped the child while it held the lock"
        assert f"locked by process {p.pid}" in str(caught)
        with pytest.raises(TimeoutError):
            q.get(timeout=0.2)
        got = []
        waiter = threading.Thread(target=lambda: got.append(type(q.get(timeout=None))))
        waiter.start()
        waiter.join(2.5)  # the core gives up on the lock after 1 s per try
        assert waiter.is_alive(), "a get() without timeout gave up on a stopped holder"
        os.kill(p.pid, signal.SIGCONT)
        waiter.join(20)
        assert not waiter.is_alive() and got == [bytes]
    finally:
        os.kill(p.pid, signal.SIGCONT)
        _kill(p)
