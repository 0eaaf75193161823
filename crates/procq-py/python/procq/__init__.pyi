"""Type stubs for procq: a faster, crash-proof drop-in for multiprocessing.Queue."""

import sys
from queue import Empty as Empty, Full as Full
from types import GenericAlias, TracebackType
from typing import Any, Callable, Generic, Iterable, Iterator, Literal, TypeVar, overload

if sys.version_info >= (3, 13):
    from queue import ShutDown as ShutDown
else:
    class ShutDown(Exception):
        """Raised by ``put()`` after ``shutdown()``, and by ``get()`` once drained."""

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

__version__: str

_T = TypeVar("_T")
_Self = TypeVar("_Self")
_Codec = Literal["pickle", "bytes", "text"]
_Dumps = Callable[[Any], Any]  # returns bytes or another bytes-like object
_Loads = Callable[[bytes], Any]

def collect_garbage() -> list[str]:
    """Remove queues whose processes all died; return their names."""

class Queue(Generic[_T]):
    """A process-safe FIFO queue in shared memory (``multiprocessing.Queue``)."""

    @overload
    def __init__(
        self,
        maxsize: int = 0,
        *,
        codec: _Codec = "pickle",
        name: str | None = None,
        capacity_bytes: int | None = None,
        max_bytes: int | None = None,
        dumps: _Dumps | None = None,
        loads: _Loads | None = None,
        trusted: bool = False,
        create_new: bool = False,
    ) -> None:
        """A new shared-memory queue (``name``: a chosen name or a Redis URL)."""
    @overload
    def __init__(
        self,
        url: str,
        /,
        maxsize: int | None = None,
        *,
        codec: _Codec = "pickle",
        dumps: _Dumps | None = None,
        loads: _Loads | None = None,
        trusted: bool = False,
        create_new: bool = False,
    ) -> None:
        """The queue at a Redis URL (``redis://[user:pw@]host:port/db/name``),
        created if missing (``create_new=True``: ``FileExistsError`` if it
        exists); ``maxsize`` (if given) must match an existing one. With pickle
        (the default codec) it needs ``trusted=True``."""
    @classmethod
    def open(
        cls,
        name: str,
        *,
        codec: _Codec = "pickle",
        dumps: _Dumps | None = None,
        loads: _Loads | None = None,
        trusted: bool = False,
    ) -> Queue[Any]:
        """Open an existing queue by name."""
    def put(self, obj: _T, block: bool = True, timeout: float | None = None) -> None:
        """Put ``obj`` into the queue; ``queue.Full`` if no room in time."""
    def get(self, block: bool = True, timeout: float | None = None) -> _T:
        """Remove and return an item; ``queue.Empty`` if none in time."""
    def put_nowait(self, obj: _T) -> None:
        """Equivalent to ``put(obj, False)``."""
    def get_nowait(self) -> _T:
        """Equivalent to ``get(False)``."""
    def put_many(
        self, items: Iterable[_T], block: bool = True, timeout: float | None = None
    ) -> None:
        """Put every item, in order, under as few lock acquisitions as possible."""
    def put_many_nowait(self, items: Iterable[_T]) -> None:
        """Equivalent to ``put_many(items, False)``."""
    def get_many(
        self,
        max_items: int | None = None,
        block: bool = True,
        timeout: float | None = None,
        *,
        max_messages_to_get: int | None = None,
    ) -> list[_T]:
        """Remove and return 1 to ``max_items`` items (default: all there are);
        ``max_messages_to_get`` is faster-fifo's name for ``max_items``."""
    def get_many_nowait(
        self, max_items: int | None = None, *, max_messages_to_get: int | None = None
    ) -> list[_T]:
        """Equivalent to ``get_many(max_items, False)``."""
    def qsize(self) -> int:
        """Exact number of items, on every platform."""
    def empty(self) -> bool:
        """True if the queue is empty; ``OSError`` after ``close()``."""
    def full(self) -> bool: ...
    def close(self) -> None:
        """Close this handle; ``put``/``get`` on it then raise ``ValueError``."""
    async def get_async(self, timeout: float | None = None) -> _T:
        """``get()`` for asyncio: the event loop runs while it waits."""
    async def put_async(self, obj: _T, timeout: float | None = None) -> None:
        """``put()`` for asyncio: the event loop runs while it waits."""
    def shutdown(self, immediate: bool = False) -> None:
        """Shut the queue down for every process (Python 3.13's semantics)."""
    @property
    def is_shutdown(self) -> bool:
        """Whether the queue was shut down, by any process."""
    def __iter__(self) -> Iterator[_T]:
        """Get items until the queue is shut down and drained."""
    def __next__(self) -> _T: ...
    def __enter__(self: _Self) -> _Self: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        """Close this handle."""
    def join_thread(self) -> None:
        """No feeder thread to join; only valid after ``close()``."""
    def cancel_join_thread(self) -> None: ...
    def stats(self) -> dict[str, Any]:
        """A snapshot of the queue's counters."""
    @property
    def name(self) -> str:
        """The shared-memory name (``Queue.open(name)`` reaches the queue)."""
    @property
    def maxsize(self) -> int: ...
    @property
    def codec(self) -> _Codec | Literal["custom"]: ...
    @property
    def closed(self) -> bool: ...
    def __reduce__(self) -> tuple[Any, ...]: ...
    def __class_getitem__(cls, item: Any) -> GenericAlias: ...

class JoinableQueue(Queue[_T]):
    """A ``Queue`` with task accounting (``multiprocessing.JoinableQueue``)."""

    @overload
    def __init__(
        self,
        maxsize: int = 0,
        *,
        codec: _Codec = "pickle",
        name: str | None = None,
        capacity_bytes: int | None = None,
        max_bytes: int | None = None,
        dumps: _Dumps | None = None,
        loads: _Loads | None = None,
        trusted: bool = False,
        create_new: bool = False,
    ) -> None:
        """A new shared-memory queue (``name``: a chosen name or a Redis URL)."""
    @overload
    def __init__(
        self,
        url: str,
        /,
        maxsize: int | None = None,
        *,
        codec: _Codec = "pickle",
        dumps: _Dumps | None = None,
        loads: _Loads | None = None,
        trusted: bool = False,
        create_new: bool = False,
    ) -> None:
        """The queue at a Redis URL (``redis://[user:pw@]host:port/db/name``),
        created if missing (``create_new=True``: ``FileExistsError`` if it
        exists); ``maxsize`` (if given) must match an existing one. With pickle
        (the default codec) it needs ``trusted=True``."""
    @classmethod
    def open(
        cls,
        name: str,
        *,
        codec: _Codec = "pickle",
        dumps: _Dumps | None = None,
        loads: _Loads | None = None,
        trusted: bool = False,
    ) -> JoinableQueue[Any]: ...
    def task_done(self) -> None:
        """Mark one task got from the queue as done; ``ValueError`` if none is."""
    def task_done_many(self, n: int) -> None:
        """Mark ``n`` tasks done at once; ``ValueError``, marking none, if fewer are outstanding."""
    def join(self, timeout: float | None = None) -> bool:
        """Block until every task is done; False if ``timeout`` ran out."""
    async def join_async(self, timeout: float | None = None) -> bool:
        """``join()`` for asyncio: the event loop runs while it waits."""
    @property
    def unfinished_tasks(self) -> int: ...

class SimpleQueue(Generic[_T]):
    """An unbounded queue (``multiprocessing.SimpleQueue``)."""

    def __init__(
        self,
        *,
        codec: _Codec = "pickle",
        name: str | None = None,
        capacity_bytes: int | None = None,
        max_bytes: int | None = None,
        dumps: _Dumps | None = None,
        loads: _Loads | None = None,
        trusted: bool = False,
        create_new: bool = False,
    ) -> None: ...
    def put(self, obj: _T) -> None: ...
    def get(self, timeout: float | None = None) -> _T: ...
    def put_many(self, items: Iterable[_T]) -> None: ...
    def get_many(
        self,
        max_items: int | None = None,
        timeout: float | None = None,
        *,
        max_messages_to_get: int | None = None,
    ) -> list[_T]: ...
    def empty(self) -> bool: ...
    def qsize(self) -> int: ...
    def stats(self) -> dict[str, Any]: ...
    def close(self) -> None: ...
    def __enter__(self: _Self) -> _Self: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool: ...
    @property
    def name(self) -> str: ...
    @property
    def codec(self) -> _Codec | Literal["custom"]: ...
    @property
    def closed(self) -> bool: ...
    def __reduce__(self) -> tuple[Any, ...]: ...
    def __class_getitem__(cls, item: Any) -> GenericAlias: ...
