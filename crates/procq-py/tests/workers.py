"""Functions run in child processes (importable under spawn/forkserver)."""

import os
import queue
import time

import procq

WAIT = 10.0  # longest any worker waits for one item


# --- the article's examples -------------------------------------------------

def increment_worker(q, loops):
    """The article's token counter: take the value, add one, put it back."""
    for _ in range(loops):
        value = q.get(timeout=WAIT)
        time.sleep(0.01)
        value += 1
        q.put(value)


def producer(q, n, delay):
    for i in range(n):
        q.put(f"Job-{i}")
        time.sleep(delay)
    q.put(None)


def consumer(q, results):
    while True:
        data = q.get(timeout=WAIT)
        if data is None:
            break
        results.put(f"done {data}")


def joinable_worker(q):
    while True:
        item = q.get(timeout=WAIT)
        if item is None:
            q.task_done()
            return
        time.sleep(0.001)
        q.task_done()


# --- passing queues around -------------------------------------------------

def echo_pid(q, tag):
    q.put((tag, os.getpid()))


def forward(inbox):
    """Receives a queue through another queue and answers on it."""
    reply_q, message = inbox.get(timeout=WAIT)
    reply_q.put(message.upper())


_pool_q = None


def pool_init(q):
    global _pool_q
    _pool_q = q


def pool_task(x):
    _pool_q.put(x * x)
    return os.getpid()


def put_many_items(q, start, n):
    for i in range(start, start + n):
        q.put(i)


def put_then_exit(q, item):
    """Puts and exits at once: with multiprocessing.Queue the item could be
    lost if the feeder thread had not flushed it."""
    q.put(item)
    q.cancel_join_thread()


# --- crashes ---------------------------------------------------------------

def ring_forever(q, ready):
    """Takes items and puts them back as fast as it can, until killed."""
    ready.put(os.getpid())
    while True:
        x = q.get(timeout=WAIT)
        q.put(x)


def batch_ring_forever(q, ready):
    ready.put(os.getpid())
    while True:
        xs = q.get_many(8, timeout=WAIT)
        q.put_many(xs)


def consume_without_task_done(q, ready, n):
    """Takes n tasks and never marks them done, then waits to be killed."""
    for _ in range(n):
        q.get(timeout=WAIT)
    ready.put(os.getpid())
    time.sleep(60)


def put_large_forever(q, ready, size):
    ready.put(os.getpid())
    payload = b"x" * size
    while True:
        q.put(payload)
        try:
            q.get_nowait()
        except queue.Empty:
            pass


def block_in_get(q, ready):
    q.qsize()  # attach to q (a fork child attaches on first use) ...
    ready.put(os.getpid())  # ... before the parent may let go of it
    q.get(timeout=60)


# --- fork specifics --------------------------------------------------------

def fork_child_roundtrip(q, out):
    """Uses a queue inherited through fork (no pickling)."""
    item = q.get(timeout=WAIT)
    out.put(("child got", item))


def fork_child_task_done(jq, n):
    for _ in range(n):
        jq.get(timeout=WAIT)
        jq.task_done()


def open_by_name(name, out_name):
    q = procq.Queue.open(name)
    out = procq.Queue.open(out_name)
    out.put(q.get(timeout=WAIT) * 2)


# --- serializers and numpy ----------------------------------------------------

def json_dumps(obj):
    """A dumps= for tests: JSON as UTF-8 bytes."""
    import json

    return json.dumps(obj).encode()


def json_loads(data):
    import json

    return json.loads(data)


def echo_n(inbox, outbox, n):
    """Gets n items and puts each back (numpy arrays come back doubled)."""
    for _ in range(n):
        item = inbox.get(timeout=WAIT)
        if hasattr(item, "dtype"):
            assert item.flags.writeable and item.ctypes.data % 64 == 0
            item *= 2  # in place: the array owns writable memory
        outbox.put(item)


def forward_one(inbox, outbox):
    outbox.put(inbox.get(timeout=WAIT))


# --- shutdown (issue #16) -----------------------------------------------------

def drain_until_shutdown(q, results):
    """Iterate until shutdown + drain; report what was got."""
    got = list(q)
    assert q.is_shutdown
    results.put(got)


def get_expect_shutdown(q, results):
    """Block in get() on an empty queue: must raise procq.ShutDown."""
    try:
        q.get(timeout=60)
    except procq.ShutDown:
        results.put(("shutdown", time.monotonic()))
    except queue.Empty:
        results.put(("empty", time.monotonic()))


def put_expect_shutdown(q, results):
    """Block in put() on a full queue: must raise procq.ShutDown."""
    try:
        q.put("x", timeout=60)
    except procq.ShutDown:
        results.put(("shutdown", time.monotonic()))
    except queue.Full:
        results.put(("full", time.monotonic()))


def produce_until_shutdown(q, accepted, tag):
    """Put numbered items until the queue is shut down; report how many
    were accepted."""
    n = 0
    while True:
        try:
            q.put((tag, n))
        except procq.ShutDown:
            break
        n += 1
    accepted.put((tag, n))


def shutdown_queue(q, immediate):
    q.shutdown(immediate=immediate)


# --- async (issue #16) ---------------------------------------------------------

def put_after(q, delay, item):
    time.sleep(delay)
    q.put(item)


def get_after(q, delay):
    time.sleep(delay)
    q.get(timeout=WAIT)


def task_done_after(q, delay):
    q.get(timeout=WAIT)
    time.sleep(delay)
    q.task_done()


def produce_n(q, n):
    """Put 0..n, pausing now and then so that the getter waits often."""
    for i in range(n):
        q.put(i)
        if i % 7 == 0:
            time.sleep(0.0003)


def shutdown_after(q, delay):
    time.sleep(delay)
    q.shutdown()


def create_exclusive(name, start, results, done):
    """Races to create the queue ``name`` (a shared-memory name or a URL)
    with ``create_new=True``; says whether it won, and keeps its queue
    alive until ``done`` so that no loser can create it afterwards."""
    start.wait(WAIT)
    try:
        q = procq.Queue(name=name, create_new=True, trusted=True)
        results.put("created")
    except FileExistsError:
        q = None
        results.put("exists")
    done.wait(WAIT)
    if q is not None:
        q.close()
