"""Out-of-band pickle buffers (pickle protocol 5 with a buffer_callback):
numpy arrays and PickleBuffers go into the queue's memory
without passing through the pickle, and come back as arrays over memory of
their own (one copy out of the queue, none through pickle).

numpy comes from PyPI in scripts/test.d/20-python.sh; without it the numpy
tests here skip (the PickleBuffer and record-format ones still run).
"""

import pickle
import struct

import pytest

import procq
import workers
from conftest import run_all

try:
    import numpy as np
except ImportError:  # pragma: no cover - the test script installs numpy
    np = None

needs_numpy = pytest.mark.skipif(np is None, reason="numpy is not installed")
ALIGN = 64


def raw_view(q):
    """A handle on the same queue that returns records verbatim."""
    return procq.Queue.open(q.name, codec="bytes")


def parse(record):
    """Splits an out-of-band record (see src/oob.rs) into its parts."""
    assert record[:1] == b"o"
    (n,) = struct.unpack_from("<I", record, 1)
    lengths = struct.unpack_from(f"<{n}Q", record, 5)
    (plen,) = struct.unpack_from("<Q", record, 5 + 8 * n)
    pos = 5 + 8 * n + 8
    pickled = record[pos:pos + plen]
    pos += plen
    buffers = []
    for length in lengths:
        pos = -(-pos // ALIGN) * ALIGN
        buffers.append(record[pos:pos + length])
        pos += length
    assert pos == len(record)
    return pickled, buffers


@needs_numpy
def test_array_round_trip_is_equal_writable_and_aligned():
    q = procq.Queue()
    arrays = [
        np.arange(10.0),
        np.arange(24, dtype=np.int16).reshape(2, 3, 4),
        np.asfortranarray(np.arange(12.0).reshape(3, 4)),
        np.arange(20)[::3],  # not contiguous: numpy pickles it in band
        np.zeros(0),
        np.array(7.5),
        np.zeros(3, dtype=[("x", "<i4"), ("y", "<f8")]),
    ]
    for a in arrays:
        q.put(a)
    for a in arrays:
        b = q.get(timeout=5)
        assert b.dtype == a.dtype and b.shape == a.shape
        assert np.array_equal(b, a)
        assert b.flags.writeable
        if a.size and (a.flags.c_contiguous or a.flags.f_contiguous):
            assert b.ctypes.data % ALIGN == 0


@needs_numpy
def test_large_array_is_not_copied_into_the_pickle():
    q = procq.Queue()
    a = np.random.default_rng(1).random(2_000_000)  # 16 MB
    q.put(a)
    record = raw_view(q).get(timeout=10)
    pickled, buffers = parse(record)
    assert len(pickled) < 1000  # only the recipe: the data went out of band
    assert buffers == [a.tobytes()]
    assert len(record) < a.nbytes + 2 * ALIGN + 1000


@needs_numpy
def test_several_buffers_in_one_item():
    q = procq.Queue()
    a, b = np.arange(100.0), np.arange(7, dtype=np.uint8)
    item = {"a": a, "b": b, "ba": bytearray(b"xyz"), "pb": pickle.PickleBuffer(b"abc"), "n": 1}
    q.put(item)
    pickled, buffers = parse(raw_view(q).get(timeout=5))
    # The arrays and the PickleBuffer; pickle writes a bytearray in band.
    assert sorted(map(len, buffers)) == [3, 7, 800]
    q.put(item)
    got = q.get(timeout=5)
    assert np.array_equal(got["a"], a) and np.array_equal(got["b"], b)
    assert got["ba"] == bytearray(b"xyz") and bytes(got["pb"]) == b"abc" and got["n"] == 1
    assert got["a"].ctypes.data % ALIGN == 0 and got["b"].ctypes.data % ALIGN == 0


@needs_numpy
def test_several_large_buffers_are_laid_out_in_place():
    """Several buffers, large and of odd lengths: the record is written in
    place (put_with) with every buffer aligned and zeros in between, by
    put, put_many and put_async alike."""
    import asyncio

    q = procq.Queue()
    arrays = [np.arange(n, dtype=np.uint8) * 3 for n in (100_003, 17, 65_537, 1)]
    q.put(arrays)
    record = raw_view(q).get(timeout=5)
    pickled, buffers = parse(record)
    assert buffers == [a.tobytes() for a in arrays]
    pos = record.index(pickled) + len(pickled)
    for b in buffers:
        start = -(-pos // ALIGN) * ALIGN
        assert record[pos:start] == bytes(start - pos), "padding is not zeros"
        pos = start + len(b)
    q.put(arrays)
    q.put_many([arrays, arrays])
    asyncio.run(q.put_async(arrays))
    for _ in range(4):
        got = q.get(timeout=5)
        assert len(got) == len(arrays)
        for g, a in zip(got, arrays):
            assert np.array_equal(g, a) and g.ctypes.data % ALIGN == 0
    assert q.empty()


def test_picklebuffer_and_bytearray_without_numpy():
    q = procq.Queue()
    q.put([bytearray(b"hello"), pickle.PickleBuffer(bytearray(b"world"))])
    ba, pb = q.get(timeout=5)
    assert ba == bytearray(b"hello") and isinstance(ba, bytearray)
    view = memoryview(pb)
    assert bytes(view) == b"world" and not view.readonly
    view[0] = ord("W")  # writable memory of its own
    assert bytes(view) == b"World"


@needs_numpy
def test_arrays_outlive_the_queue():
    q = procq.Queue()
    q.put([np.full(1000, 3.0), np.full(10, 4.0)])
    a, b = q.get(timeout=5)
    q.close()
    del q
    import gc

    gc.collect()
    assert a.sum() == 3000.0 and b.sum() == 40.0  # their memory is their own
    del a
    gc.collect()
    assert b.sum() == 40.0  # one frame freed, the other's memory still there


@needs_numpy
def test_get_many_with_arrays():
    q = procq.Queue()
    arrays = [np.full(50_000, float(i)) for i in range(5)]  # 400 KB each
    q.put_many(arrays)
    got = []
    while len(got) < 5:
        got += q.get_many(5, timeout=5)
    assert all(np.array_equal(x, y) for x, y in zip(got, arrays))
    assert all(x.flags.writeable and x.ctypes.data % ALIGN == 0 for x in got)


@needs_numpy
def test_arrays_between_processes(ctx):
    inbox, outbox = procq.Queue(), procq.Queue()
    arrays = [np.arange(n, dtype=np.float64) for n in (1, 1000, 1_000_000)]
    inbox.put_many(arrays)
    run_all([ctx.Process(target=workers.echo_n, args=(inbox, outbox, len(arrays)))], timeout=60)
    for a in arrays:
        assert np.array_equal(outbox.get(timeout=10), a * 2)


BAD_RECORDS = {
    "empty header": b"o",
    "no buffers": b"o" + struct.pack("<I", 0) + struct.pack("<Q", 0),
    "count past the record": b"o" + struct.pack("<I", 0xFFFFFFFF) + b"\0" * 16,
    "pickle past the record": b"o" + struct.pack("<IQQ", 1, 0, 1 << 40),
    "buffer past the record": b"o" + struct.pack("<IQQ", 1, 1 << 62, 1) + b"N" + b"\0" * 64,
    "bytes after the buffers": b"o" + struct.pack("<IQQ", 1, 1, 1) + b"N"
    + b"\0" * (ALIGN - 22) + b"x" + b"extra",
}


@pytest.mark.parametrize("record", BAD_RECORDS.values(), ids=BAD_RECORDS.keys())
def test_malformed_out_of_band_records_raise_value_error(record):
    q = procq.Queue()
    raw = raw_view(q)
    q.put(b"x" * 100_000)
    assert len(q.get(timeout=5)) == 100_000  # the next get copies without the GIL
    raw.put_many([record] * 3)
    for get in (q.get, q.get, lambda timeout: q.get_many(1, timeout=timeout)):
        # without the GIL, then the fast path, then a batch
        with pytest.raises(ValueError, match="procq's Python item format"):
            get(timeout=5)
    q.put("after")
    assert q.get(timeout=5) == "after"


def test_well_formed_hand_made_record_is_read():
    # The format is the documented one: a record built by hand (as another
    # language would) comes back as the object.
    body = pickle.dumps(pickle.PickleBuffer(b"abc"), 5, buffer_callback=lambda b: False)
    head = b"o" + struct.pack("<IQQ", 1, 3, len(body)) + body
    record = head + b"\0" * (-len(head) % ALIGN) + b"abc"
    q = procq.Queue()
    raw_view(q).put(record)
    assert bytes(q.get(timeout=5)) == b"abc"


@needs_numpy
def test_reused_array_memory_never_changes_a_live_array():
    # Freed array memory is kept for reuse (src/slab.rs): arrays still alive
    # must keep their data while others come and go.
    q = procq.Queue()
    kept = []
    for i in range(40):
        q.put(np.full(300_000, float(i)))  # 2.4 MB: above the reuse threshold
        a = q.get(timeout=5)
        if i % 3 == 0:
            kept.append((i, a))
        del a
    for i, a in kept:
        assert a[0] == a[-1] == float(i) and a.min() == a.max()
