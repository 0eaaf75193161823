"""A Rust process and a Python process share queues (see examples/rust_peer.rs
and the item format in src/item.rs)."""

import os
import pathlib
import struct
import subprocess

import pytest

import procq

CRATE = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def rust_peer():
    """Path of the rust_peer example binary: $PROCQ_RUST_PEER, or built now."""
    path = os.environ.get("PROCQ_RUST_PEER")
    if path:
        return path
    out = subprocess.run(
        ["cargo", "build", "--release", "-q", "-p", "procq-py", "--example", "rust_peer",
         "--message-format=json"],
        cwd=CRATE, check=True, capture_output=True, text=True, timeout=900,
    ).stdout
    import json

    for line in out.splitlines():
        msg = json.loads(line)
        if msg.get("reason") == "compiler-artifact" and msg["target"]["name"] == "rust_peer":
            return msg["executable"]
    raise AssertionError("cargo did not report the rust_peer binary")


def run_peer(rust_peer, mode, inbox, outbox, count):
    return subprocess.run(
        [rust_peer, mode, inbox.name, outbox.name, str(count)],
        capture_output=True, text=True, timeout=60,
    )


def test_tagged_items_between_python_and_rust(rust_peer):
    inbox, outbox = procq.Queue(), procq.Queue()
    items = [b"bytes \x00\xff", "unicode ✓", 41, -(2**63), b"", "", bytes(range(256)) * 400]
    inbox.put_many(items)
    done = run_peer(rust_peer, "tagged", inbox, outbox, len(items))
    assert done.returncode == 0, done.stderr
    got = outbox.get_many(len(items), timeout=5)
    assert got == [b"\xff\x00 setyb", "UNICODE ✓", 42, -(2**63) + 1, b"", "", bytes(range(256))[::-1] * 400]


def test_rust_rejects_pickles_with_a_clear_error(rust_peer):
    inbox, outbox = procq.Queue(), procq.Queue()
    inbox.put([1, 2])  # a pickle: Rust cannot read it
    done = run_peer(rust_peer, "tagged", inbox, outbox, 1)
    assert done.returncode != 0 and "tag 0x80" in done.stderr


def test_raw_bytes_queue_between_python_and_rust(rust_peer):
    inbox, outbox = procq.Queue(codec="bytes"), procq.Queue(codec="bytes")
    items = [b"abc", b"", bytes(range(256)), b"x" * 300_000]
    for it in items:
        inbox.put(it)
    done = run_peer(rust_peer, "raw", inbox, outbox, len(items))
    assert done.returncode == 0, done.stderr
    assert [outbox.get(timeout=5) for _ in items] == [it[::-1] for it in items]


def test_joinable_bytes_queue_task_done_from_rust_side_format(rust_peer):
    """A joinable queue of raw bytes: Rust reads what Python put."""
    inbox, outbox = procq.JoinableQueue(codec="bytes"), procq.Queue(codec="bytes")
    inbox.put(b"job")
    done = run_peer(rust_peer, "raw", inbox, outbox, 1)
    assert done.returncode == 0, done.stderr
    assert outbox.get(timeout=5) == b"boj"


def test_python_reads_records_written_in_the_documented_format():
    """The format, byte for byte, as a non-Python writer produces it."""
    q = procq.Queue()
    raw = procq.Queue.open(q.name, codec="bytes")  # same queue, no codec
    records = [
        b"b" + b"raw", b"s" + "é".encode(), b"i" + struct.pack("<q", -7),
        b"f" + struct.pack("<d", 2.5), b"N", b"T", b"F",
    ]
    for r in records:
        raw.put(r)
    assert q.get_many(10, timeout=5) == [b"raw", "é", -7, 2.5, None, True, False]
    q.put("x")
    q.put(3)
    assert raw.get(timeout=5) == b"sx"
    assert raw.get(timeout=5) == b"i" + struct.pack("<q", 3)
    raw.put(b"?")  # unknown tag
    with pytest.raises(ValueError, match="tag"):
        q.get(timeout=5)
    raw.put(b"i123")  # wrong length for an int
    with pytest.raises(ValueError):
        q.get(timeout=5)
    assert q.empty()  # bad records are consumed, not stuck at the head


def test_text_codec_speaks_the_cli_and_rust_string_format():
    """codec='text' items are Rust String / `procq put` items, byte for byte."""
    q = procq.Queue(codec="text")
    raw = procq.Queue.open(q.name, codec="bytes")
    q.put("héllo")
    q.put(b"\xff\xfe")
    q.put("x" * 200)  # a two-byte length prefix
    assert raw.get(timeout=5) == b"\x06" + "héllo".encode()
    assert raw.get(timeout=5) == b"\x02\xff\xfe"
    assert raw.get(timeout=5) == b"\xc8\x01" + b"x" * 200
    # What `seq 2 | procq put` or a Rust Queue<String> writes:
    raw.put(b"\x011")
    raw.put(b"\x02\xff\xfe")
    assert q.get(timeout=5) == "1"
    assert q.get(timeout=5) == b"\xff\xfe"  # not UTF-8: bytes
    raw.put(b"\x05ab")  # length says 5, 2 bytes follow
    with pytest.raises(ValueError, match="length"):
        q.get(timeout=5)
    with pytest.raises(TypeError, match="text"):
        q.put(3)
    assert q.empty()

