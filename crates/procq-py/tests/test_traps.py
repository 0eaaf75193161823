"""Traps a user falls into, each with the error or alias that avoids it:
a str where maxsize goes, misleading messages, faster-fifo's spellings."""

import gc
import pickle
import queue

import pytest

import procq
from conftest import tname


# --- a positional str is maxsize or a URL, never a name ------------------------

@pytest.mark.parametrize("cls", [procq.Queue, procq.JoinableQueue])
@pytest.mark.parametrize("arg", ["10", "jobs", ""])
def test_positional_str_that_is_not_a_url_is_a_type_error(cls, arg):
    import multiprocessing

    with pytest.raises(TypeError):
        multiprocessing.Queue(arg)  # what the standard library does
    with pytest.raises(TypeError, match="name="):
        cls(arg)


def test_names_go_through_name_or_open():
    name = tname("named")
    q = procq.Queue(name=name)
    q.put(1)
    assert procq.Queue.open(name).get(timeout=5) == 1
    assert procq.Queue(10).maxsize == 10


# --- messages that say what happened ---------------------------------------------

def test_task_done_message_states_procqs_rule():
    q = procq.JoinableQueue()
    q.put("job")  # the stdlib would accept a task_done() now; procq counts from get()
    with pytest.raises(ValueError) as e:
        q.task_done()
    msg = str(e.value)
    assert "no task outstanding" in msg and "get()" in msg and "too many" not in msg
    assert q.get(timeout=5) == "job"
    q.task_done()
    assert q.join(timeout=5)


def test_too_large_message_names_max_bytes_as_given():
    q = procq.Queue(max_bytes=1024)
    with pytest.raises(ValueError) as e:
        q.put(b"x" * 5000)
    msg = str(e.value)
    # The limit the user set, and why the queue's limit differs from it.
    assert "max_bytes=1024" in msg and "4096" in msg and "4080" in msg, msg
    assert q.qsize() == 0


def test_unpickling_a_queue_that_is_gone_says_a_pickled_queue_is_its_name():
    q = procq.Queue()
    data = pickle.dumps(q)
    q.close()
    del q
    gc.collect()
    with pytest.raises(FileNotFoundError, match="only its name"):
        pickle.loads(data)


# --- faster-fifo's spellings ------------------------------------------------------

def test_get_many_accepts_faster_fifos_max_messages_to_get():
    q = procq.Queue()
    q.put_many(range(10))
    assert q.get_many(max_messages_to_get=3) == [0, 1, 2]
    assert q.get_many(2) == [3, 4]
    assert q.get_many(max_items=2, timeout=1) == [5, 6]
    assert q.get_many() == [7, 8, 9]  # no count: all there is
    with pytest.raises(queue.Empty):
        q.get_many(timeout=0.05)
    with pytest.raises(TypeError, match="not both"):
        q.get_many(1, max_messages_to_get=1)
    with pytest.raises(ValueError):
        q.get_many(0)


def test_get_many_refuses_a_bool_first_argument():
    # faster-fifo's first positional argument is `block`: get_many(True)
    # must not quietly mean "at most one item".
    q = procq.Queue()
    q.put_many([1, 2])
    with pytest.raises(TypeError, match="block="):
        q.get_many(True)
    assert q.get_many(block=True, timeout=1) == [1, 2]


def test_put_many_nowait_and_get_many_nowait():
    q = procq.Queue(3)
    q.put_many_nowait([1, 2])
    with pytest.raises(queue.Full, match="first 1 of 2"):
        q.put_many_nowait([3, 4])
    assert q.get_many_nowait() == [1, 2, 3]
    with pytest.raises(queue.Empty):
        q.get_many_nowait()
    q.put_many_nowait(["a", "b"])
    assert q.get_many_nowait(max_messages_to_get=1) == ["a"]
    assert q.get_nowait() == "b"


def test_simple_queue_get_many_alias():
    q = procq.SimpleQueue()
    q.put_many("abc")
    assert q.get_many(max_messages_to_get=2, timeout=1) == ["a", "b"]
    assert q.get_many() == ["c"]


def test_a_segment_open_to_others_is_a_permission_error():
    # The core refuses a segment that other users could read or write (its
    # trust model: one uid); Python sees PermissionError, not RuntimeError.
    import os

    name = tname("perm")
    path = f"/dev/shm/procq-{name}"
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    try:
        os.fchmod(fd, 0o644)
        os.write(fd, b"\0" * 4096)
        with pytest.raises(PermissionError, match="refused"):
            procq.Queue.open(name)
    finally:
        os.close(fd)
        os.unlink(path)
