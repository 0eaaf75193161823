"""Standard-library behaviour: every method, argument and exception of
multiprocessing.Queue / JoinableQueue / SimpleQueue, checked on procq and,
where the outcome is deterministic, on the standard library side by side."""

import inspect
import math
import multiprocessing
import multiprocessing.queues
import pickle
import queue
import threading
import time

import pytest

import procq
from conftest import tname

STD = multiprocessing.get_context("fork")


def make(impl, kind, *args):
    if impl == "procq":
        return getattr(procq, kind)(*args)
    return getattr(STD, kind)(*args)


IMPLS = ["multiprocessing", "procq"]


# --- side by side with the standard library ---------------------------------

@pytest.mark.parametrize("impl", IMPLS)
def test_same_exceptions_as_stdlib(impl):
    q = make(impl, "Queue", 2)
    with pytest.raises(queue.Empty):
        q.get_nowait()
    with pytest.raises(queue.Empty):
        q.get(False)
    with pytest.raises(queue.Empty):
        q.get(timeout=0.01)
    with pytest.raises(queue.Empty):
        q.get(True, -1)  # negative timeout: one try, as multiprocessing does
    q.put(1)
    q.put(2)
    with pytest.raises(queue.Full):
        q.put_nowait(3)
    with pytest.raises(queue.Full):
        q.put(3, False)
    with pytest.raises(queue.Full):
        q.put(3, timeout=0.01)
    with pytest.raises(queue.Full):
        q.put(3, True, -5)
    assert q.full()
    assert q.get(timeout=5) == 1
    assert q.get(timeout=5) == 2
    with pytest.raises(AssertionError):
        q.join_thread()  # only after close()
    q.close()
    q.close()  # closing twice is fine
    with pytest.raises(ValueError):
        q.put(4)
    with pytest.raises(ValueError):
        q.get(timeout=1)
    with pytest.raises(ValueError):
        q.put_nowait(4)
    with pytest.raises(ValueError):
        q.get_nowait()
    q.join_thread()
    q.cancel_join_thread()


@pytest.mark.parametrize("impl", IMPLS)
def test_same_joinable_behaviour_as_stdlib(impl):
    q = make(impl, "JoinableQueue")
    with pytest.raises(ValueError):
        q.task_done()  # nothing was put
    q.put("a")
    assert q.get(timeout=5) == "a"
    q.task_done()
    with pytest.raises(ValueError):
        q.task_done()  # one more than there were items
    q.put("b")
    assert q.get(timeout=5) == "b"
    q.task_done()
    q.join()  # all done: returns at once
    q.close()
    q.join_thread()


@pytest.mark.parametrize("impl", IMPLS)
def test_same_simple_queue_behaviour_as_stdlib(impl):
    q = make(impl, "SimpleQueue")
    assert q.empty()
    q.put([1, 2])
    q.put(None)
    # multiprocessing's SimpleQueue.empty() is exact too (a pipe poll).
    assert not q.empty()
    assert q.get() == [1, 2]
    assert q.get() is None
    assert q.empty()
    q.close()


def _params(func):
    return [
        (p.name, p.default, p.kind)
        for p in inspect.signature(func).parameters.values()
        if p.name != "self"
    ]


@pytest.mark.parametrize(
    "method", ["put", "get", "put_nowait", "get_nowait", "qsize", "empty", "full",
               "close", "join_thread", "cancel_join_thread"],
)
def test_method_signatures_match_stdlib(method):
    ours = _params(getattr(procq.Queue, method))
    theirs = _params(getattr(multiprocessing.queues.Queue, method))
    assert [(n, d) for n, d, _ in ours] == [(n, d) for n, d, _ in theirs]


def test_joinable_signatures_match_stdlib():
    assert _params(procq.JoinableQueue.task_done) == []
    # join() gains an optional timeout; calling it without one is the stdlib's.
    assert [(n, d) for n, d, _ in _params(procq.JoinableQueue.join)] == [("timeout", None)]
    assert issubclass(procq.JoinableQueue, procq.Queue)


def test_constructor_defaults():
    q = procq.Queue()
    assert q.maxsize == 0 and q.codec == "pickle"
    assert procq.Queue(5).maxsize == 5
    assert procq.Queue(maxsize=3).maxsize == 3
    # maxsize <= 0 means unbounded, as in multiprocessing.
    q = procq.Queue(-1)
    assert q.maxsize == 0
    for i in range(1000):
        q.put_nowait(i)
    assert not q.full() and q.qsize() == 1000


# --- put / get ------------------------------------------------------------

def test_fifo_order():
    q = procq.Queue()
    for i in range(100):
        q.put(i)
    assert [q.get(timeout=5) for _ in range(100)] == list(range(100))


def test_get_blocks_until_put_from_thread():
    q = procq.Queue()
    t = threading.Timer(0.1, q.put, args=("late",))
    t.start()
    start = time.monotonic()
    assert q.get(timeout=5) == "late"
    assert 0.05 < time.monotonic() - start < 4
    t.join(5)


def test_get_without_timeout_blocks_until_item():
    q = procq.Queue()
    t = threading.Timer(0.1, q.put, args=(7,))
    t.start()
    assert q.get() == 7  # the Timer bounds this wait
    t.join(5)


def test_put_blocks_until_room():
    q = procq.Queue(1)
    q.put("first")
    t = threading.Timer(0.1, q.get)
    t.start()
    start = time.monotonic()
    q.put("second", timeout=5)
    assert time.monotonic() - start > 0.05
    t.join(5)
    assert q.get(timeout=5) == "second"


def test_block_false_ignores_timeout():
    q = procq.Queue(1)
    start = time.monotonic()
    with pytest.raises(queue.Empty):
        q.get(block=False, timeout=10)
    q.put(1)
    with pytest.raises(queue.Full):
        q.put(2, block=False, timeout=10)
    assert time.monotonic() - start < 1


def test_zero_timeout_does_not_wait():
    q = procq.Queue()
    start = time.monotonic()
    with pytest.raises(queue.Empty):
        q.get(timeout=0)
    assert time.monotonic() - start < 0.5


def test_bad_timeouts():
    q = procq.Queue()
    with pytest.raises(TypeError):
        q.get(timeout="soon")
    with pytest.raises(ValueError):
        q.get(timeout=math.nan)
    q.put(1, timeout=math.inf)  # inf means forever
    assert q.get(timeout=math.inf) == 1


def test_exceptions_are_the_stdlib_classes():
    q = procq.Queue(1)
    with pytest.raises(queue.Empty) as e:
        q.get_nowait()
    assert type(e.value) is queue.Empty
    q.put(0)
    with pytest.raises(queue.Full) as e:
        q.put_nowait(0)
    assert type(e.value) is queue.Full
    assert procq.Empty is queue.Empty and procq.Full is queue.Full


@pytest.mark.parametrize(
    "item",
    [
        0, 1, -1, 2**63 - 1, -(2**63), 2**64, -(2**100), 1.5, -0.0, math.inf,
        True, False, None, b"", b"\x00\xff" * 10, "", "héllo wörld ✓", "\ud800",
        (1, "a"), [1, [2, [3]]], {"k": {1, 2}}, bytearray(b"ba"), frozenset({1}),
        range(3), complex(1, 2),
    ],
    ids=repr,
)
def test_items_round_trip(item):
    q = procq.Queue()
    q.put(item)
    got = q.get(timeout=5)
    assert type(got) is type(item)
    if isinstance(item, float) and math.isnan(item):
        assert math.isnan(got)
    else:
        assert got == item


class MyInt(int):
    pass


class MyStr(str):
    pass


def test_subclasses_keep_their_type():
    q = procq.Queue()
    q.put(MyInt(5))
    q.put(MyStr("s"))
    a, b = q.get(timeout=5), q.get(timeout=5)
    assert type(a) is MyInt and a == 5
    assert type(b) is MyStr and b == "s"


def test_nan_round_trips():
    q = procq.Queue()
    q.put(math.nan)
    assert math.isnan(q.get(timeout=5))


@pytest.mark.parametrize("size", [1 << 10, 100 << 10, 8 << 20])
def test_large_items(size):
    q = procq.Queue()
    data = bytes(range(256)) * (size // 256)
    q.put(data)
    q.put(data.decode("latin-1"))
    q.put([data])
    assert q.get(timeout=10) == data
    assert q.get(timeout=10) == data.decode("latin-1")
    assert q.get(timeout=10) == [data]


@pytest.mark.parametrize("codec", ["pickle", "bytes", "custom"])
def test_large_items_of_changing_shapes_come_back_whole(codec):
    # After a large item that became one bytes object, a get makes the next
    # one's bytes object in advance, of the same size, and copies a record
    # of the same shape straight into it: every change of size or kind, and
    # same-shaped items with other contents, must still come back whole.
    big = bytes(range(256)) * 400
    other = big[:-1] + b"!"
    if codec == "pickle":
        q = procq.Queue()
        items = [big, big, other, big[:-1], [big], [other], big, "x" * 100_000, big,
                 7, big, bytearray(big), big, b"", big]
    elif codec == "bytes":
        q = procq.Queue(codec="bytes")
        items = [big, big, other, big[:-1], big, b"", big, other]
    else:
        q = procq.Queue(dumps=pickle.dumps, loads=pickle.loads)
        items = [[big], [big], [other], [big[:-1]], big, [big], {"k": other}]
    reader = pickle.loads(pickle.dumps(q))  # another handle, as another process has
    for x in items:  # one at a time: each get finds one item
        q.put(x)
        got = reader.get(timeout=10)
        assert type(got) is type(x) and got == x
    for x in items:
        q.put(x)
    for x in items:  # back to back
        got = reader.get(timeout=10)
        assert type(got) is type(x) and got == x


# --- qsize / empty / full ---------------------------------------------------

def test_qsize_empty_full():
    q = procq.Queue(3)
    assert (q.qsize(), q.empty(), q.full()) == (0, True, False)
    q.put(1)
    assert (q.qsize(), q.empty(), q.full()) == (1, False, False)
    q.put(2)
    q.put(3)
    assert (q.qsize(), q.empty(), q.full()) == (3, False, True)
    q.get(timeout=5)
    assert (q.qsize(), q.empty(), q.full()) == (2, False, False)


# --- close ---------------------------------------------------------------

def test_close_only_closes_this_handle():
    q = procq.Queue()
    other = pickle.loads(pickle.dumps(q))  # a second handle, same queue
    q.put("kept")
    q.close()
    assert q.closed and not other.closed
    assert q.qsize() == 1  # inspection still works
    with pytest.raises(ValueError):
        q.put_many([1])
    with pytest.raises(ValueError):
        q.get_many(1, timeout=1)
    assert other.get(timeout=5) == "kept"


def test_close_wakes_blocked_get():
    q = procq.Queue()
    errors = []

    def blocked():
        try:
            q.get(timeout=10)
        except Exception as e:  # noqa: BLE001 - we record what was raised
            errors.append(e)

    t = threading.Thread(target=blocked)
    t.start()
    time.sleep(0.1)
    start = time.monotonic()
    q.close()
    t.join(5)
    assert not t.is_alive()
    assert time.monotonic() - start < 2
    assert len(errors) == 1 and isinstance(errors[0], ValueError)


# --- JoinableQueue ---------------------------------------------------------

def test_join_waits_for_task_done_from_thread():
    q = procq.JoinableQueue()
    q.put("job")
    assert q.join(timeout=0.05) is False  # still outstanding
    assert q.unfinished_tasks == 1

    def work():
        q.get(timeout=5)
        time.sleep(0.1)
        q.task_done()

    t = threading.Thread(target=work)
    t.start()
    assert q.join(timeout=5) is True
    t.join(5)
    assert q.unfinished_tasks == 0


def test_task_done_before_get_is_refused():
    """A documented difference: the standard library lets task_done() run
    ahead of get() (it only counts puts); procq counts a task done only
    after some process got it, so that it can write off the tasks of a
    consumer that dies."""
    q = procq.JoinableQueue()
    q.put("b")
    with pytest.raises(ValueError):
        q.task_done()
    q.get(timeout=5)
    q.task_done()
    assert q.join(timeout=5)


def test_joinable_works_after_close():
    q = procq.JoinableQueue()
    q.put(1)
    other = pickle.loads(pickle.dumps(q))
    q.close()
    assert other.get(timeout=5) == 1
    q.task_done()  # like the stdlib, task_done/join ignore close()
    assert q.join(timeout=5)


def test_simple_queue_get_timeout_extension():
    q = procq.SimpleQueue()
    with pytest.raises(queue.Empty):
        q.get(timeout=0.05)
    q.close()
    with pytest.raises(OSError):  # as multiprocessing.SimpleQueue (see test_closed.py)
        q.put(1)


# --- codecs and names ----------------------------------------------------------

def test_bytes_codec():
    q = procq.Queue(codec="bytes")
    q.put(b"abc")
    q.put(bytearray(b"de"))
    q.put(memoryview(b"xfgx")[1:3])
    assert [q.get(timeout=5) for _ in range(3)] == [b"abc", b"de", b"fg"]
    with pytest.raises(TypeError):
        q.put("text")
    with pytest.raises(TypeError):
        q.put(5)
    assert q.empty()


def test_unknown_codec():
    with pytest.raises(ValueError):
        procq.Queue(codec="json")


def test_named_queues():
    name = tname("named")
    q = procq.Queue(name=name)
    assert q.name == name
    with pytest.raises(FileExistsError):
        procq.Queue(name=name)
    same = procq.Queue.open(name)
    same.put("via open")
    assert q.get(timeout=5) == "via open"
    with pytest.raises(FileNotFoundError):
        procq.Queue.open(tname("missing"))
    with pytest.raises(ValueError):
        procq.Queue(name="bad/name")
    with pytest.raises(ValueError):
        procq.JoinableQueue.open(name)  # a plain queue is not joinable


# --- documentation -----------------------------------------------------------

def test_help_reads_like_the_stdlib():
    text = pydoc_text(procq.Queue)
    for needle in [
        "put(self, /, obj, block=True, timeout=None)",
        "get(self, /, block=True, timeout=None)",
        "Remove and return an item from the queue",
        "queue.Full",
        "multiprocessing.Queue",
    ]:
        assert needle in text, needle
    assert "task_done" in pydoc_text(procq.JoinableQueue)
    assert procq.Queue.__module__ == "procq"
    assert "procq.Queue" in repr(procq.Queue())


def pydoc_text(obj):
    import pydoc

    return pydoc.render_doc(obj, renderer=pydoc.plaintext)


def test_typing_files_are_shipped():
    from importlib import resources

    files = resources.files("procq")
    assert (files / "py.typed").is_file()
    stub = (files / "__init__.pyi").read_text()
    for name in ["class Queue", "class JoinableQueue", "class SimpleQueue", "def get_many"]:
        assert name in stub
    assert procq.Queue[int] is not None  # generic alias, as in the stubs


def test_ring_size_arguments():
    q = procq.Queue(capacity_bytes=1 << 20, max_bytes=1 << 16)
    assert q.stats()["capacity_bytes"] == 1 << 16 or q.stats()["max_capacity_bytes"] == 1 << 16
    q.put(b"x" * 1000)
    with pytest.raises(ValueError, match="too large"):
        q.put(b"x" * (1 << 17))  # larger than the ring can ever be
    assert q.qsize() == 1
    assert q.get(timeout=5) == b"x" * 1000
