"""The methods that carry items take their arguments as the standard
library's do: by position or keyword (also from **kwargs made at run time,
whose names are not interned), with the same wrong calls refused by the
same TypeError naming the same argument, and `block` read by its truth
value (as multiprocessing does from Python 3.12). procq parses these
arguments itself (src/fastcall.rs), so every call here is also made on
multiprocessing's queue, or, for procq's batch calls, checked against a
Python function of the documented signature."""

import inspect
import multiprocessing
import multiprocessing.queues
import queue
import re
import sys

import pytest

import procq

STD = multiprocessing.get_context("fork")
RUNTIME = "time" + "out"  # a keyword name made at run time: not interned


def outcome(call):
    """What a call did: its result, the queue exception it raised, or
    TypeError, with the names its message quotes if the arguments do not
    fit the signature (the wording differs between implementations; the
    names must not)."""
    try:
        return "ok", call()
    except (queue.Empty, queue.Full) as e:
        return (type(e).__name__,)
    except TypeError as e:
        binding = re.search("missing|unexpected keyword|multiple values|positional arg", str(e))
        return "TypeError", sorted(set(re.findall(r"'(\w+)'", str(e)))) if binding else []


def run(q, calls):
    return [outcome(lambda: getattr(q, name)(*args, **kwargs)) for name, args, kwargs in calls]


def _params(func):
    return [(p.name, p.default, p.kind) for p in inspect.signature(func).parameters.values()][1:]


# multiprocessing reads `block` by its truth value since Python 3.12; 3.9
# to 3.11 refuse a `block` that is not an int where it reaches a lock.
# procq reads it as 3.12 does on every version.
TRUTH = sys.version_info >= (3, 12)

# In order, on an empty queue of maxsize 10. The queue is full after the
# first block, empty after the gets; stdlib's feeder thread delays what
# `put` wrote, so every get that expects an item blocks.
QUEUE_CALLS = [
    ("put", (1,), {}), ("put", (2, True), {}), ("put", (3, True, 5), {}),
    ("put", (), {"obj": 4}), ("put", (5,), {"timeout": 5.0}),
    ("put", (), {"obj": 6, "block": True, RUNTIME: None}),
    ("put", (7,), {"block": False}), ("put_nowait", (8,), {}),
    ("put_nowait", (), {"obj": 9}), ("put", (10, 1), {}),
    # Full. A `timeout` that is no number is refused even when not blocking.
    ("put", (11, 0), {}), ("put", (11, False, "x"), {}), ("put", (11, True, "x"), {}),
    ("put", (11,), {"timeout": 0.01}), ("put_nowait", (11,), {}),
    *([("put", (11, None), {}), ("put", (11, "yes", 0.01), {})] if TRUTH else []),
    ("put", (), {}), ("put", (1, True, 5, 6), {}), ("put", (1,), {"obj": 2}),
    ("put", (1,), {"color": 2}), ("put", (), {"block": True}), ("put_nowait", (), {}),
    ("put_nowait", (1, 2), {}), ("put_nowait", (1,), {"obj": 2}), ("put_nowait", (), {"item": 1}),
    ("put_nowait", (1,), {"block": False}),
    ("get", (), {}), ("get", (True,), {}), ("get", (True, 5), {}),
    ("get", (), {"timeout": 5}), ("get", (), {"block": True, "timeout": 5.0}),
    ("get", (), {RUNTIME: 5}), ("get", (True, None), {}), ("get", ("yes",), {}),
    ("get", (1, 5), {}), ("get", (True, "x"), {}), ("get", (), {"timeout": []}),
    ("get", (), {"block": 1, "timeout": 5}),
    # Empty.
    ("get", (False,), {}), ("get", (0,), {}), ("get", (False, "x"), {}),
    ("get", (), {"block": False}), ("get", (True, 0.01), {}), ("get_nowait", (), {}),
    *([("get", (None,), {}), ("get", ([],), {"timeout": 5})] if TRUTH else []),
    ("get", (True, 5, 6), {}), ("get", (True,), {"block": True}), ("get", (), {"colour": 1}),
    ("get", (), {"block": True, "bogus": 2}), ("get_nowait", (1,), {}),
    ("get_nowait", (), {"block": False}),
]


@pytest.mark.parametrize("make", [procq.Queue, procq.JoinableQueue])
def test_queue_calls_match_stdlib(make):
    ours, theirs = make(10), STD.Queue(10)
    got = run(ours, QUEUE_CALLS)
    assert got == run(theirs, QUEUE_CALLS)
    assert [r[1] for r in got if r[0] == "ok" and r[1] is not None] == list(range(1, 11))
    assert got.count(("Full",)) == 3 + 2 * TRUTH and got.count(("Empty",)) == 5 + 2 * TRUTH
    assert ours.qsize() == 0
    with pytest.raises(TypeError):
        procq.Queue.get(theirs)  # the method of procq.Queue, on another object
    procq.Queue.put(ours, "unbound")
    assert procq.Queue.get(ours, timeout=5) == "unbound"
    assert make.get.__doc__.startswith("Remove and return an item")
    assert "queue.Full" in make.put.__doc__
    ours.close()
    with pytest.raises(ValueError, match="closed"):
        ours.get(timeout=1)
    theirs.close()
    theirs.join_thread()


SIMPLE_CALLS = [
    ("put", (1,), {}), ("put", (), {"obj": 2}), ("put", (), {}), ("put", (1, 2), {}),
    ("put", (1,), {"obj": 2}), ("put", (), {"item": 1}), ("get", (), {}), ("get", (), {}),
    ("get", (), {"colour": 1}), ("get", (1, 2), {}),
]


def test_simple_queue_calls_match_stdlib():
    ours, theirs = procq.SimpleQueue(), STD.SimpleQueue()
    got = run(ours, SIMPLE_CALLS)
    assert got == run(theirs, SIMPLE_CALLS)
    assert [r[1] for r in got if r[0] == "ok" and r[1] is not None] == [1, 2]
    # procq's extension: get(timeout=...).
    with pytest.raises(queue.Empty):
        ours.get(timeout=0.01)
    with pytest.raises(queue.Empty):
        ours.get(**{RUNTIME: 0.01})
    ours.put(3)
    assert ours.get(5) == 3
    for method in ("put", "get"):  # get adds an optional timeout
        theirs_params = _params(getattr(multiprocessing.queues.SimpleQueue, method))
        assert _params(getattr(procq.SimpleQueue, method))[: len(theirs_params)] == theirs_params
    assert procq.SimpleQueue.get.__doc__.startswith("Remove and return an item")
    with pytest.raises(TypeError):
        procq.SimpleQueue.get(procq.Queue())  # the method of another class
    ours.close()
    theirs.close()


# procq's batch calls, as Python functions of their documented signatures.
def put_many(self, items, block=True, timeout=None): ...
def put_many_nowait(self, items): ...
def get_many(self, max_items=None, block=True, timeout=None, *, max_messages_to_get=None): ...
def get_many_nowait(self, max_items=None, *, max_messages_to_get=None): ...
def simple_put_many(self, items): ...
def simple_get_many(self, max_items=None, timeout=None, *, max_messages_to_get=None): ...


BATCH = [
    (procq.Queue, put_many), (procq.Queue, put_many_nowait), (procq.Queue, get_many),
    (procq.Queue, get_many_nowait), (procq.SimpleQueue, simple_put_many),
    (procq.SimpleQueue, simple_get_many),
]

PUT_SPELLINGS = [
    ((["a"],), {}), ((["a"], True), {}), ((["a"], True, 5), {}), ((), {"items": ["a"]}),
    ((["a"],), {"timeout": 5.0}), ((), {"items": ["a"], "block": 1, RUNTIME: None}),
    ((["a"],), {"block": False}), ((), {}), ((["a"], True, 5, 6), {}),
    ((["a"],), {"items": ["b"]}), ((["a"],), {"color": 2}), ((), {"block": True}),
]

GET_SPELLINGS = [
    ((), {}), ((2,), {}), ((2, True), {}), ((2, True, 5), {}), ((2, "yes", 5), {}),
    ((), {"max_items": 2}), ((), {"max_messages_to_get": 2}), ((2,), {"timeout": 5}),
    ((), {"max_items": 2, RUNTIME: 5}), ((None,), {"block": False}), ((2, 5), {}),
    ((2, True, 5, 6), {}), ((2, True, 5, 6, 7), {}), ((2,), {"max_items": 2}),
    ((), {"colour": 1}), ((), {"max_items": 2, "bogus": 1}),
]


@pytest.mark.parametrize("cls, ref", BATCH, ids=[r.__name__ for _, r in BATCH])
def test_batch_calls_take_their_documented_signature(cls, ref):
    name = ref.__name__.removeprefix("simple_")
    q = cls()
    method = getattr(q, name)
    assert _params(getattr(cls, name)) == _params(ref)
    spellings = PUT_SPELLINGS if name.startswith("put") else GET_SPELLINGS
    for args, kwargs in spellings:
        expected = outcome(lambda: ref(q, *args, **kwargs))
        q.put_many(range(3))
        got = outcome(lambda: method(*args, **kwargs))
        if expected[0] == "ok":
            assert got[0] == "ok", (args, kwargs, got)
            assert got[1] is None if name.startswith("put") else len(got[1]) in (2, 3)
        else:
            assert got == expected, (args, kwargs)
        if q.qsize():
            q.get_many()
    q.close()
