"""procq: a faster, crash-proof drop-in for ``multiprocessing.Queue``.

Queues live in POSIX shared memory (``/dev/shm/procq-<name>``) and are
managed by procq's Rust core: ``put`` writes the item straight into shared
memory (no feeder thread), a robust process-shared lock survives processes
killed at any instant, and waits use futexes with monotonic timeouts.

    >>> import procq
    >>> q = procq.Queue()
    >>> q.put("Data A"); q.put("Data B")
    >>> q.get(), q.get()
    ('Data A', 'Data B')

``procq.Queue``, ``procq.JoinableQueue`` and ``procq.SimpleQueue`` take the
same arguments and raise the same exceptions (``queue.Empty``,
``queue.Full``, ``ValueError``) as their ``multiprocessing`` namesakes.
``q.shutdown()`` ends the stream as Python 3.13's ``queue.Queue.shutdown``
does, across processes: ``for item in q:`` stops once the queue is shut
down and drained, and later calls raise ``procq.ShutDown`` (which is
``queue.ShutDown`` on 3.13+).
numpy arrays travel without a copy through pickle (pickle protocol 5 with
out-of-band buffers); ``dumps=``/``loads=`` replace pickle.

Security: ``get()`` unpickles whatever a writer put in, and unpickling can
run any code, exactly as with ``multiprocessing.Queue``. A shared-memory
queue is readable and writable by its owner's user only (mode 0600). A
queue on a Redis server can be written by any client of that server, so
with pickle it needs ``trusted=True`` (else ``ValueError``); plain data
(``codec='bytes'``, ``codec='text'``, ``loads=json.loads``) needs no
opt-in.
"""

from queue import Empty, Full

try:  # Python 3.13+: the standard library's own exception
    from queue import ShutDown
except ImportError:  # pragma: no cover - Python < 3.13

    class ShutDown(Exception):
        """Raised by ``put()`` on a queue that was shut down, and by ``get()``
        once a shut-down queue is empty (``queue.ShutDown`` on 3.13+)."""

        __module__ = "procq"


from ._procq import JoinableQueue, Queue, SimpleQueue, __version__, collect_garbage

__all__ = [
    "Queue",
    "JoinableQueue",
    "SimpleQueue",
    "Empty",
    "Full",
    "ShutDown",
    "collect_garbage",
    "__version__",
]
