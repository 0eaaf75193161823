"""``dumps=``/``loads=``: the user's serializer instead of pickle."""

import json
import pickle

import pytest

import procq
import workers
from conftest import run_all


def test_custom_serializer_round_trip_and_record_format():
    q = procq.Queue(dumps=workers.json_dumps, loads=workers.json_loads)
    assert q.codec == "custom"
    items = [{"a": [1, 2.5, None]}, "text", 3, [True, False]]
    for it in items:
        q.put(it)
    # The record is exactly what dumps returned: readable by any language.
    raw = procq.Queue.open(q.name, codec="bytes")
    assert raw.get(timeout=5) == json.dumps(items[0]).encode()
    assert [q.get(timeout=5) for _ in range(3)] == items[1:]
    q.put_many(items)
    assert q.get_many(10) == items


def test_custom_serializer_sees_every_item():
    # No fast path bypasses dumps/loads: ints and bytes go through them too.
    seen = []

    def dumps(obj):
        seen.append(obj)
        return pickle.dumps(obj)

    q = procq.Queue(dumps=dumps, loads=pickle.loads)
    q.put(1)
    q.put(b"raw")
    assert [q.get(timeout=5), q.get(timeout=5)] == [1, b"raw"]
    assert seen == [1, b"raw"]


def test_dumps_may_return_any_bytes_like():
    q = procq.SimpleQueue(dumps=lambda o: bytearray(o.encode()), loads=lambda b: b.decode())
    q.put("é")
    assert q.get(timeout=5) == "é"


@pytest.mark.parametrize("kwargs, error", [
    (dict(dumps=workers.json_dumps), TypeError),
    (dict(loads=workers.json_loads), TypeError),
    (dict(dumps=1, loads=2), TypeError),
    (dict(dumps=workers.json_dumps, loads=workers.json_loads, codec="bytes"), ValueError),
])
def test_bad_serializer_arguments(kwargs, error):
    with pytest.raises(error):
        procq.Queue(**kwargs)


def test_dumps_errors_leave_the_queue_unchanged():
    q = procq.Queue(dumps=json.dumps, loads=json.loads)  # json.dumps returns str
    with pytest.raises(TypeError, match="bytes"):
        q.put({"a": 1})
    q2 = procq.Queue(dumps=workers.json_dumps, loads=workers.json_loads)
    with pytest.raises(TypeError):
        q2.put(object())  # not JSON-serializable
    assert q.qsize() == 0 and q2.qsize() == 0


def test_loads_error_reaches_the_caller():
    q = procq.Queue(dumps=workers.json_dumps, loads=workers.json_loads)
    procq.Queue.open(q.name, codec="bytes").put(b"{not json")
    with pytest.raises(ValueError):
        q.get(timeout=5)
    q.put([1])
    assert q.get(timeout=5) == [1]


def test_pickled_queue_keeps_its_serializer(ctx):
    q = procq.Queue(dumps=workers.json_dumps, loads=workers.json_loads)
    again = pickle.loads(pickle.dumps(q))
    assert again.codec == "custom"
    out = procq.Queue()
    q.put({"k": "v"})
    run_all([ctx.Process(target=workers.forward_one, args=(q, out))])
    assert out.get(timeout=5) == {"k": "v"}


def test_open_takes_the_serializer():
    q = procq.Queue(dumps=workers.json_dumps, loads=workers.json_loads)
    q.put({"x": 1})
    other = procq.Queue.open(q.name, dumps=workers.json_dumps, loads=workers.json_loads)
    assert other.get(timeout=5) == {"x": 1}
