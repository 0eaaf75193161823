"""A closed handle, method by method, against the standard library.

Each method is called on a closed multiprocessing queue and on a closed
procq queue of the same class; both must succeed, or both must raise the
same exception class. The standard library's Queue closes its reading end
only once its feeder thread has stopped, so its side is put in that state
first (an item put and got, then ``close()`` and ``join_thread()``): that is
the closed state every Queue that has been used reaches.
"""

import multiprocessing
import threading
import time

import pytest

import procq

STD = multiprocessing.get_context("fork")

# (name, call) in the order they are tried; a call that raises leaves the
# handle as it was, so the order matters only for the calls that succeed.
QUEUE_CALLS = [
    ("qsize", lambda q: q.qsize()),
    ("empty", lambda q: q.empty()),
    ("full", lambda q: q.full()),
    ("put", lambda q: q.put(1)),
    ("put(block=False)", lambda q: q.put(1, False)),
    ("put(timeout=)", lambda q: q.put(1, timeout=0.05)),
    ("put_nowait", lambda q: q.put_nowait(1)),
    ("get", lambda q: q.get()),
    ("get(block=False)", lambda q: q.get(False)),
    ("get(timeout=)", lambda q: q.get(timeout=0.05)),
    ("get_nowait", lambda q: q.get_nowait()),
    ("close again", lambda q: q.close()),
    ("join_thread", lambda q: q.join_thread()),
    ("cancel_join_thread", lambda q: q.cancel_join_thread()),
]
JOINABLE_CALLS = QUEUE_CALLS + [
    ("task_done", lambda q: q.task_done()),
    ("join", lambda q: q.join()),
]
SIMPLE_CALLS = [
    ("empty", lambda q: q.empty()),
    ("put", lambda q: q.put(1)),
    ("get", lambda q: q.get()),
    ("close again", lambda q: q.close()),
]

# procq's extensions behave as their stdlib counterparts on a closed handle.
EXTENSIONS = {
    "Queue": [
        ("put_many", lambda q: q.put_many([1]), "put"),
        ("put_many_nowait", lambda q: q.put_many_nowait([1]), "put_nowait"),
        ("get_many", lambda q: q.get_many(1, timeout=0.05), "get"),
        ("get_many_nowait", lambda q: q.get_many_nowait(), "get_nowait"),
        ("stats", lambda q: q.stats(), "qsize"),
    ],
    "SimpleQueue": [
        ("put_many", lambda q: q.put_many([1]), "put"),
        ("get_many", lambda q: q.get_many(1, timeout=0.05), "get"),
        ("get(timeout=)", lambda q: q.get(timeout=0.05), "get"),
        ("qsize", lambda q: q.qsize(), None),
        ("stats", lambda q: q.stats(), None),
    ],
}
EXTENSIONS["JoinableQueue"] = EXTENSIONS["Queue"]


def outcome(call, q):
    try:
        call(q)
    except Exception as e:  # noqa: BLE001 - the class is what is compared
        return type(e)
    return "ok"


def closed_std(kind):
    q = getattr(STD, kind)()
    if kind == "SimpleQueue":
        q.close()
        return q
    q.put("x")
    assert q.get(timeout=10) == "x"
    if kind == "JoinableQueue":
        q.task_done()
    q.close()
    q.join_thread()  # the feeder thread has closed the reading end
    return q


def closed_procq(kind):
    q = getattr(procq, kind)()
    q.put("x")
    assert q.get(timeout=10) == "x"
    if kind == "JoinableQueue":
        q.task_done()
    q.close()
    return q


CASES = [("Queue", QUEUE_CALLS), ("JoinableQueue", JOINABLE_CALLS), ("SimpleQueue", SIMPLE_CALLS)]


@pytest.mark.parametrize("kind,calls", CASES, ids=[c[0] for c in CASES])
def test_closed_handle_matches_stdlib(kind, calls):
    std, ours = closed_std(kind), closed_procq(kind)
    expected = {name: outcome(call, std) for name, call in calls}
    got = {name: outcome(call, ours) for name, call in calls}
    assert got == expected
    # What the comparison pins down, spelled out.
    if kind == "SimpleQueue":
        assert expected["put"] is OSError and expected["empty"] is OSError
    else:
        assert expected["put"] is ValueError and expected["empty"] is OSError
        assert expected["qsize"] == "ok" and expected["join_thread"] == "ok"


@pytest.mark.parametrize("kind", ["Queue", "JoinableQueue", "SimpleQueue"])
def test_closed_handle_extensions(kind):
    std, ours = closed_std(kind), closed_procq(kind)
    for name, call, like in EXTENSIONS[kind]:
        if like is None:
            assert outcome(call, ours) == "ok", name
            continue
        std_call = dict(QUEUE_CALLS + SIMPLE_CALLS)[like]
        assert outcome(call, ours) == outcome(std_call, std), name


def test_closed_handle_leaves_the_queue_to_others():
    q = procq.SimpleQueue()
    other = procq.Queue.open(q.name)
    q.put("kept")
    q.close()
    with pytest.raises(OSError):
        q.get()
    assert other.get(timeout=5) == "kept"


def test_close_wakes_a_blocked_simplequeue_get_with_oserror():
    q = procq.SimpleQueue()
    errors = []

    def blocked():
        try:
            q.get(timeout=10)
        except Exception as e:  # noqa: BLE001
            errors.append(type(e))

    t = threading.Thread(target=blocked)
    t.start()
    time.sleep(0.2)
    q.close()
    t.join(10)
    assert not t.is_alive()
    assert errors == [OSError]
