//! The Python classes `Queue`, `JoinableQueue` and `SimpleQueue`, with the
//! standard library's signatures and docstrings, over [`Core`].

use std::sync::atomic::Ordering;

use pyo3::exceptions::{PyAssertionError, PyFileNotFoundError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple, PyType};

use crate::core::{is_url, Core, Kind, Options};
use crate::errors::{shut_down_type, to_py};
use crate::item::Codec;
use crate::wait::Wait;

/// Sorts out the first positional argument of `Queue(...)` and
/// `JoinableQueue(...)`: an int is the stdlib's `maxsize`, a str is a queue
/// URL (`Queue("redis://host:6379/0/jobs", maxsize=10)`). Any other str is
/// refused: `Queue("10")` is a `TypeError` in the standard library, and a
/// queue silently *named* "10" would hide the mistake.
fn first_arg(
    first: Option<&Bound<'_, PyAny>>,
    maxsize: Option<i64>,
    name: Option<&str>,
) -> PyResult<(Option<i64>, Option<String>)> {
    let Some(first) = first else {
        return Ok((maxsize, name.map(str::to_owned)));
    };
    if let Ok(url) = first.extract::<String>() {
        if !is_url(&url) {
            return Err(PyTypeError::new_err(format!(
                "the first argument of a procq queue is maxsize (an int) or a queue URL \
                 (redis://host:port/db/name), not the str {url:?}; give a shared-memory name \
                 as name={url:?}, or open an existing queue with .open({url:?})"
            )));
        }
        if name.is_some() {
            return Err(PyTypeError::new_err(
                "give the queue's URL or name either first or as name=, not both",
            ));
        }
        return Ok((maxsize, Some(url)));
    }
    if maxsize.is_some() {
        return Err(PyTypeError::new_err(
            "got multiple values for argument 'maxsize'",
        ));
    }
    Ok((Some(first.extract::<i64>()?), name.map(str::to_owned)))
}

/// Makes `types.GenericAlias(cls, item)` for `procq.Queue[int]` annotations.
fn generic_alias<'py>(
    cls: &Bound<'py, PyType>,
    item: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let py = cls.py();
    py.import("types")?
        .getattr("GenericAlias")?
        .call1((cls, item))
}

/// A process-safe FIFO queue in shared memory: a drop-in for
/// ``multiprocessing.Queue``.
///
/// Queue(maxsize=0, *, codec='pickle', name=None, capacity_bytes=None,
///       max_bytes=None, dumps=None, loads=None, create_new=False)
///
/// ``maxsize`` bounds the number of items (0 or less: unbounded). Items are
/// any picklable objects; ``bytes``, ``str``, ``int``, ``float``, ``None``
/// and ``bool`` skip pickle, and the data of numpy arrays (anything that
/// pickles through ``pickle.PickleBuffer``) goes into shared memory out of
/// band, without a copy through pickle. With ``codec='bytes'`` items must
/// be bytes-like and are stored verbatim (for sharing with non-Python
/// processes). With ``codec='text'`` items are ``str`` (or ``bytes``) in
/// the format of Rust's ``Queue<String>`` and the ``procq`` command (a
/// varint length, then UTF-8); they come back as ``str`` (``bytes`` if not
/// UTF-8). ``dumps`` and ``loads`` (given together, instead of ``codec``)
/// replace pickle: a record is ``dumps(obj)`` (bytes-like) and ``get``
/// returns ``loads(record)`` (cloudpickle for lambdas, orjson or msgpack
/// for speed). ``name`` picks the shared-memory name (default: a unique
/// one); another process, in any language, can open the queue by it with
/// ``Queue.open(name)``. A ``name`` that is taken raises ``FileExistsError``
/// (``create_new`` changes nothing on shared memory). ``capacity_bytes`` is the initial (and smallest)
/// size of the shared-memory ring, 256 KiB by default; it grows as needed
/// up to ``max_bytes`` (default: the size of ``/dev/shm``), the largest
/// item that fits.
///
/// Differences from ``multiprocessing.Queue``: there is no feeder thread —
/// ``put`` has finished when it returns, so ``empty()`` is false and
/// ``qsize()`` counts the item at once, on every platform; an object that
/// cannot be pickled makes ``put`` raise at once; a process killed while
/// using the queue never corrupts or locks it for the others; the queue can
/// be pickled and sent to another process by any route; ``put_many`` and
/// ``get_many`` move batches.
///
/// Raises ``queue.Empty`` / ``queue.Full`` like the standard library,
/// ``ValueError`` from ``put``/``get`` once ``close()`` has been called and
/// ``OSError`` from ``empty()`` then.
///
/// Security: ``get()`` unpickles whatever a writer put in, and unpickling
/// can run any code. A shared-memory queue is readable and writable only by
/// its owner's user (mode 0600), as the processes of one program are. Do
/// not open a queue that other users can write to with the pickle codec.
///
/// Queue(url, maxsize=None, *, codec='pickle', dumps=None, loads=None,
///       trusted=False, create_new=False)
///
/// The same queue on a Redis server, for processes on several machines:
/// ``url`` is ``redis://[user:password@]host:port/db/name`` (options
/// ``?lease_ms=``, ``timeout_ms=``, ``heartbeat=0``; ``rediss://`` with the
/// ``tls`` build feature). The queue is created if missing; with
/// ``maxsize``, an existing queue must have that bound. With
/// ``create_new=True`` an existing queue raises ``FileExistsError``
/// instead: the check and the creation are one step on the server, so of
/// several processes creating one URL at once exactly one succeeds. Every method
/// behaves as on shared memory; ``JoinableQueue`` delivers at least once
/// (a consumer's unacknowledged items come back when it dies). Connection
/// problems raise ``OSError``; the next call reconnects. Any client of the
/// server can write into the queue, so with the pickle codec ``get()``
/// would run code that anyone with access to the server chose: such a queue
/// needs ``trusted=True`` (``ValueError`` without it), which says every
/// writer is trusted. ``codec='bytes'``, ``codec='text'`` and a safe
/// ``loads`` (``json.loads``) need no opt-in.
#[pyclass(module = "procq", subclass, frozen)]
pub struct Queue {
    pub(crate) core: Core,
}

#[pymethods]
impl Queue {
    #[new]
    #[pyo3(signature = (url_or_maxsize=None, /, maxsize=None, *, codec="pickle", name=None, capacity_bytes=None, max_bytes=None, dumps=None, loads=None, trusted=false, create_new=false))]
    #[allow(clippy::too_many_arguments)] // the Python signature
    fn new(
        py: Python<'_>,
        url_or_maxsize: Option<&Bound<'_, PyAny>>,
        maxsize: Option<i64>,
        codec: &str,
        name: Option<&str>,
        capacity_bytes: Option<u64>,
        max_bytes: Option<u64>,
        dumps: Option<Bound<'_, PyAny>>,
        loads: Option<Bound<'_, PyAny>>,
        trusted: bool,
        create_new: bool,
    ) -> PyResult<Self> {
        let (maxsize, name) = first_arg(url_or_maxsize, maxsize, name)?;
        let opts = Options {
            maxsize,
            codec: Codec::new(codec, dumps, loads)?,
            name: name.as_deref(),
            capacity_bytes,
            max_bytes,
            trusted,
            create_new,
        };
        Ok(Queue {
            core: Core::create(py, Kind::Queue, opts)?,
        })
    }

    /// Opens an existing queue by name (made by ``procq`` in any process,
    /// or by Rust's ``procq::RawQueue``/``Queue``). ``codec``, ``dumps``,
    /// ``loads`` and ``trusted`` are as for the constructor: a queue does
    /// not record how its items are encoded.
    #[classmethod]
    #[pyo3(signature = (name, *, codec="pickle", dumps=None, loads=None, trusted=false))]
    fn open(
        _cls: &Bound<'_, PyType>,
        py: Python<'_>,
        name: &str,
        codec: &str,
        dumps: Option<Bound<'_, PyAny>>,
        loads: Option<Bound<'_, PyAny>>,
        trusted: bool,
    ) -> PyResult<Self> {
        let codec = Codec::new(codec, dumps, loads)?;
        Ok(Queue {
            core: Core::open(py, Kind::Queue, name, codec, trusted)?,
        })
    }

    // `put`, `get`, `put_nowait`, `get_nowait`, `put_many`,
    // `put_many_nowait`, `get_many` and `get_many_nowait` are added by
    // `fastcall::install`: PyO3's calling convention under abi3-py39 costs
    // more than the queue itself.

    /// Return the number of items in the queue: exact at the instant it is
    /// read, on every platform (never ``NotImplementedError``).
    fn qsize(&self, py: Python<'_>) -> usize {
        self.core.qsize(py)
    }

    /// Return True if the queue is empty. False as soon as any ``put`` has
    /// returned, in any process. ``OSError`` after ``close()``, as in the
    /// standard library.
    fn empty(&self, py: Python<'_>) -> PyResult<bool> {
        self.core.empty(py)
    }

    /// Return True if the queue holds ``maxsize`` items (never, if unbounded).
    fn full(&self, py: Python<'_>) -> bool {
        self.core.full(py)
    }

    /// Indicate that this handle will not be used again: later ``put`` and
    /// ``get`` calls on it raise ``ValueError``, and calls blocked on it wake
    /// up and raise ``ValueError``. Items already put stay in the queue for
    /// other handles and processes; the queue is removed when the last
    /// handle in any process is gone.
    fn close(&self) {
        self.core.close();
    }

    /// Shut the queue down, for every process that uses it (Python 3.13's
    /// ``queue.Queue.shutdown``): from now on ``put`` raises
    /// ``procq.ShutDown`` (``queue.ShutDown`` on 3.13+), and ``get`` returns
    /// the items that remain, then raises it too. Every ``get`` and ``put``
    /// blocked in any process wakes at once. With ``immediate=True`` the
    /// items that remain are dropped instead (on a ``JoinableQueue`` they
    /// count as done, so ``join()`` returns).
    ///
    /// A queue that is shut down stays shut down, also for processes that
    /// open it later: to start over, create a new queue. The same on Redis
    /// queues, for every client of the server.
    #[pyo3(signature = (immediate=false))]
    fn shutdown(&self, py: Python<'_>, immediate: bool) -> PyResult<()> {
        self.core.shutdown(py, immediate)
    }

    /// Whether the queue was shut down, by any process.
    #[getter]
    fn is_shutdown(&self, py: Python<'_>) -> bool {
        self.core.is_shutdown(py)
    }

    /// ``await q.get_async(timeout=None)``: ``get()`` for asyncio. The event
    /// loop keeps running while it waits; ``queue.Empty`` if ``timeout``
    /// runs out; cancelling it takes nothing from the queue.
    #[pyo3(signature = (timeout=None))]
    async fn get_async(&self, timeout: Option<f64>) -> PyResult<Py<PyAny>> {
        self.core.get_async(timeout).await
    }

    /// ``await q.put_async(obj, timeout=None)``: ``put()`` for asyncio;
    /// ``queue.Full`` if ``timeout`` runs out; cancelling it puts nothing.
    #[pyo3(signature = (obj, timeout=None))]
    async fn put_async(&self, obj: Py<PyAny>, timeout: Option<f64>) -> PyResult<()> {
        self.core.put_async(obj, timeout).await
    }

    /// ``for item in q:`` gets items (waiting for each) until the queue is
    /// shut down and drained.
    fn __iter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        match self.core.get(py, Wait::Until(None)) {
            Ok(item) => Ok(Some(item)),
            Err(e) if e.is_instance(py, shut_down_type(py)?.as_any()) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// ``with procq.Queue() as q:`` closes this handle on exit (the queue
    /// itself lives on for its other handles).
    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, _exc: &Bound<'_, PyTuple>) -> bool {
        self.core.close();
        false
    }

    /// Join the background feeder thread. procq has none (``put`` writes
    /// straight to shared memory), so this returns at once; as in the
    /// standard library it may only be called after ``close()``.
    fn join_thread(&self) -> PyResult<()> {
        if !self.core.closed.load(Ordering::Relaxed) {
            return Err(PyAssertionError::new_err(format!(
                "Queue {:?} not closed",
                self.core.name()
            )));
        }
        Ok(())
    }

    /// Do not wait for the feeder thread at exit. procq has none, so this
    /// does nothing: data put is never lost nor waited for at exit.
    fn cancel_join_thread(&self) {}

    /// The queue's shared-memory name: ``Queue.open(name)`` in any process
    /// (or Rust's ``procq::RawQueue::open(name)``) reaches the same queue.
    #[getter]
    fn name(&self) -> &str {
        self.core.name()
    }

    /// The item bound; 0 means unbounded.
    #[getter]
    fn maxsize(&self) -> usize {
        self.core.raw.maxsize()
    }

    /// How items are stored: ``'pickle'``, ``'bytes'``, ``'text'`` or ``'custom'``
    /// (``dumps=``/``loads=``).
    #[getter]
    fn codec(&self) -> &'static str {
        self.core.codec.name()
    }

    /// Whether ``close()`` was called on this handle.
    #[getter]
    fn closed(&self) -> bool {
        self.core.closed.load(Ordering::Relaxed)
    }

    /// procq extension: a snapshot of the queue's counters as a dict
    /// (items, unfinished_tasks, bytes_used, attached_processes,
    /// dead_processes, items_put, items_got, recoveries, ...).
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        self.core.stats(py)
    }

    fn __reduce__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        self.core.reduce(py)
    }

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        let class = slf.get_type().name()?.to_string();
        Ok(slf.get().core.repr(&class))
    }

    #[classmethod]
    fn __class_getitem__<'py>(
        cls: &Bound<'py, PyType>,
        item: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        generic_alias(cls, item)
    }
}

/// A ``Queue`` that also counts unfinished tasks: a drop-in for
/// ``multiprocessing.JoinableQueue``.
///
/// JoinableQueue(maxsize=0, *, codec='pickle', name=None, capacity_bytes=None,
///               max_bytes=None, dumps=None, loads=None, create_new=False)
/// JoinableQueue(url, maxsize=None, *, codec='pickle', dumps=None, loads=None,
///               trusted=False, create_new=False)
///
/// Arguments, and the security note, as for ``Queue``.
///
/// Every ``put`` adds a task; ``task_done()`` marks one done; ``join()``
/// blocks until every task put, in any process, is done. A process that
/// dies after ``get`` and before ``task_done`` has its tasks written off, so
/// ``join()`` never waits forever for a dead worker.
#[pyclass(module = "procq", extends = Queue, subclass, frozen)]
pub struct JoinableQueue {}

impl JoinableQueue {
    fn make(core: Core) -> PyClassInitializer<JoinableQueue> {
        PyClassInitializer::from(Queue { core }).add_subclass(JoinableQueue {})
    }
}

#[pymethods]
impl JoinableQueue {
    #[new]
    #[pyo3(signature = (url_or_maxsize=None, /, maxsize=None, *, codec="pickle", name=None, capacity_bytes=None, max_bytes=None, dumps=None, loads=None, trusted=false, create_new=false))]
    #[allow(clippy::too_many_arguments)] // the Python signature
    fn new(
        py: Python<'_>,
        url_or_maxsize: Option<&Bound<'_, PyAny>>,
        maxsize: Option<i64>,
        codec: &str,
        name: Option<&str>,
        capacity_bytes: Option<u64>,
        max_bytes: Option<u64>,
        dumps: Option<Bound<'_, PyAny>>,
        loads: Option<Bound<'_, PyAny>>,
        trusted: bool,
        create_new: bool,
    ) -> PyResult<PyClassInitializer<Self>> {
        let (maxsize, name) = first_arg(url_or_maxsize, maxsize, name)?;
        let opts = Options {
            maxsize,
            codec: Codec::new(codec, dumps, loads)?,
            name: name.as_deref(),
            capacity_bytes,
            max_bytes,
            trusted,
            create_new,
        };
        Ok(JoinableQueue::make(Core::create(py, Kind::Joinable, opts)?))
    }

    /// Opens an existing joinable queue by name (arguments as for
    /// ``Queue.open``).
    #[classmethod]
    #[pyo3(signature = (name, *, codec="pickle", dumps=None, loads=None, trusted=false))]
    fn open(
        cls: &Bound<'_, PyType>,
        name: &str,
        codec: &str,
        dumps: Option<Bound<'_, PyAny>>,
        loads: Option<Bound<'_, PyAny>>,
        trusted: bool,
    ) -> PyResult<Py<JoinableQueue>> {
        let py = cls.py();
        let codec = Codec::new(codec, dumps, loads)?;
        Py::new(
            py,
            JoinableQueue::make(Core::open(py, Kind::Joinable, name, codec, trusted)?),
        )
    }

    /// Indicate that a formerly enqueued task is complete.
    ///
    /// Used by queue consumers: for each ``get()`` used to fetch a task, a
    /// subsequent ``task_done()`` tells the queue that the processing on the
    /// task is complete. Raises ``ValueError`` if no task is outstanding:
    /// procq counts a task from the ``get()`` that took it (the standard
    /// library counts from ``put()``), which is what lets it write off the
    /// tasks of a consumer that died.
    fn task_done(slf: &Bound<'_, Self>) -> PyResult<()> {
        slf.as_super().get().core.task_done(slf.py())
    }

    /// Mark ``n`` tasks done at once, like ``n`` calls of ``task_done()``
    /// in one step (one round trip on Redis), so that a consumer of
    /// ``get_many`` batches acknowledges at batch speed. Raises
    /// ``ValueError``, marking none, if fewer than ``n`` tasks are
    /// outstanding (on Redis: got through this queue object and not done).
    fn task_done_many(slf: &Bound<'_, Self>, n: usize) -> PyResult<()> {
        slf.as_super().get().core.task_done_many(slf.py(), n)
    }

    /// Block until all items in the queue have been gotten and processed.
    ///
    /// The count of unfinished tasks goes up whenever an item is added to
    /// the queue and down whenever a consumer calls ``task_done()``. When it
    /// drops to zero, ``join()`` unblocks.
    ///
    /// procq extension: with a ``timeout`` (seconds), give up after that
    /// long. Returns True if every task is done, False on timeout.
    #[pyo3(signature = (timeout=None))]
    fn join(slf: &Bound<'_, Self>, timeout: Option<f64>) -> PyResult<bool> {
        slf.as_super().get().core.join(slf.py(), timeout)
    }

    /// ``await q.join_async(timeout=None)``: ``join()`` for asyncio (the
    /// event loop keeps running); ``False`` if ``timeout`` runs out first.
    #[pyo3(signature = (timeout=None))]
    async fn join_async(slf: Py<Self>, timeout: Option<f64>) -> PyResult<bool> {
        let base: Py<Queue> = Python::attach(|py| slf.bind(py).clone().into_super().unbind());
        base.get().core.join_async(timeout).await
    }

    /// Number of tasks put and not yet marked done (items still in the
    /// queue included).
    #[getter]
    fn unfinished_tasks(slf: &Bound<'_, Self>) -> PyResult<u64> {
        slf.as_super().get().core.unfinished_tasks(slf.py())
    }
}

/// A simplified, unbounded queue: a drop-in for
/// ``multiprocessing.SimpleQueue`` (same shared-memory queue as ``Queue``).
///
/// SimpleQueue(*, codec='pickle', name=None, capacity_bytes=None, max_bytes=None,
///             dumps=None, loads=None, trusted=False, create_new=False)
///
/// Arguments, and the security note (``get()`` unpickles what a writer put
/// in), as for ``Queue``.
#[pyclass(module = "procq", subclass, frozen)]
pub struct SimpleQueue {
    pub(crate) core: Core,
}

#[pymethods]
impl SimpleQueue {
    #[new]
    #[pyo3(signature = (*, codec="pickle", name=None, capacity_bytes=None, max_bytes=None, dumps=None, loads=None, trusted=false, create_new=false))]
    #[allow(clippy::too_many_arguments)] // the Python signature
    fn new(
        py: Python<'_>,
        codec: &str,
        name: Option<&str>,
        capacity_bytes: Option<u64>,
        max_bytes: Option<u64>,
        dumps: Option<Bound<'_, PyAny>>,
        loads: Option<Bound<'_, PyAny>>,
        trusted: bool,
        create_new: bool,
    ) -> PyResult<Self> {
        let opts = Options {
            maxsize: None,
            codec: Codec::new(codec, dumps, loads)?,
            name,
            capacity_bytes,
            max_bytes,
            trusted,
            create_new,
        };
        Ok(SimpleQueue {
            core: Core::create(py, Kind::Simple, opts)?,
        })
    }

    // `put`, `get`, `put_many` and `get_many` are added by
    // `fastcall::install` (see `Queue`).

    /// Return True if the queue is empty (``OSError`` after ``close()``,
    /// as in the standard library).
    fn empty(&self, py: Python<'_>) -> PyResult<bool> {
        self.core.empty(py)
    }

    /// Return the number of items in the queue (procq extension).
    fn qsize(&self, py: Python<'_>) -> usize {
        self.core.qsize(py)
    }

    /// Close this handle: later ``put``/``get``/``empty`` calls on it raise
    /// ``OSError``, as the standard library's do. The queue and its items
    /// stay for other handles.
    fn close(&self) {
        self.core.close();
    }

    /// ``with procq.SimpleQueue() as q:`` closes this handle on exit.
    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, _exc: &Bound<'_, PyTuple>) -> bool {
        self.core.close();
        false
    }

    /// The queue's shared-memory name.
    #[getter]
    fn name(&self) -> &str {
        self.core.name()
    }

    /// How items are stored: ``'pickle'``, ``'bytes'``, ``'text'`` or ``'custom'``
    /// (``dumps=``/``loads=``).
    #[getter]
    fn codec(&self) -> &'static str {
        self.core.codec.name()
    }

    /// Whether ``close()`` was called on this handle.
    #[getter]
    fn closed(&self) -> bool {
        self.core.closed.load(Ordering::Relaxed)
    }

    /// procq extension: a snapshot of the queue's counters as a dict
    /// (items, unfinished_tasks, bytes_used, attached_processes,
    /// dead_processes, items_put, items_got, recoveries, ...).
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        self.core.stats(py)
    }

    fn __reduce__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        self.core.reduce(py)
    }

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        let class = slf.get_type().name()?.to_string();
        Ok(slf.get().core.repr(&class))
    }

    #[classmethod]
    fn __class_getitem__<'py>(
        cls: &Bound<'py, PyType>,
        item: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        generic_alias(cls, item)
    }
}

/// Unpickles a queue: opens it by name (see `__reduce__`).
#[pyfunction]
#[pyo3(signature = (kind, name, codec, dumps=None, loads=None, trusted=false))]
pub(crate) fn _rebuild(
    py: Python<'_>,
    kind: &str,
    name: &str,
    codec: &str,
    dumps: Option<Bound<'_, PyAny>>,
    loads: Option<Bound<'_, PyAny>>,
    trusted: bool,
) -> PyResult<Py<PyAny>> {
    let kind = Kind::parse(kind)?;
    let codec = Codec::new(codec, dumps, loads)?;
    let core = Core::open(py, kind, name, codec, trusted).map_err(|e| {
        if e.is_instance_of::<PyFileNotFoundError>(py) {
            PyFileNotFoundError::new_err(format!(
                "cannot unpickle the procq queue {name:?}: a pickled queue is only its name, and \
                 no queue of that name exists any more (a queue is removed when the last handle \
                 to it, in any process, is closed or garbage-collected: keep the sender's handle \
                 open until the receiver has opened it)"
            ))
        } else {
            e
        }
    })?;
    Ok(match kind {
        Kind::Queue => Py::new(py, Queue { core })?.into_any(),
        Kind::Joinable => Py::new(py, JoinableQueue::make(core))?.into_any(),
        Kind::Simple => Py::new(py, SimpleQueue { core })?.into_any(),
    })
}

/// Removes every queue whose processes all died (a queue whose last user
/// was killed stays in ``/dev/shm`` until then); returns their names. A
/// queue with any live user is never touched.
#[pyfunction]
pub(crate) fn collect_garbage(py: Python<'_>) -> PyResult<Vec<String>> {
    py.detach(procq::collect_garbage)
        .map_err(|e| to_py(py, "/dev/shm", e))
}
