//! `procq._procq`: the Python extension behind `import procq`.
//!
//! Three classes with the standard library's names and signatures —
//! `Queue`, `JoinableQueue` (a subclass of `Queue`) and `SimpleQueue` —
//! over procq's shared-memory [`RawQueue`]. Items are encoded as described in
//! the `item` module (pickle protocol 5 with tagged fast paths for `bytes`,
//! `str`, `int`, `float`, `None` and `bool`, or raw bytes).
//!
//! # The GIL
//!
//! A call that has to wait, or that copies a large item (≥ 64 KiB), runs
//! with the GIL released (`Python::detach`), so other Python threads keep
//! running. Waits are cut into slices of [`SLICE`]; between slices the call
//! takes the GIL back and runs signal handlers, so Ctrl-C interrupts a
//! blocked `get()` as it does the standard library's.
//!
//! Small items take a fast path that keeps the GIL: one attempt that does
//! not wait. Giving the GIL away costs little by itself, but taking it back
//! waits up to the interpreter's switch interval (5 ms) whenever another
//! thread is busy, which would make every small `put` and `get` in a
//! multi-threaded program that slow. The fast path never waits for anything
//! but the queue's lock, which other processes hold only while they copy one
//! item's bytes.
//!
//! Lock order: code that holds the queue's lock never waits for the GIL.
//! The fast path takes the lock while holding the GIL; a detached call
//! takes the lock without the GIL and finishes with it before taking the
//! GIL back. So no thread can hold the lock while waiting for the GIL.
//!
//! # Pickling a queue
//!
//! `pickle.dumps(q)` gives the queue's kind, name and codec; unpickling
//! opens the queue by name. A queue can therefore go to another process by
//! any route — `Process` arguments under every start method, `Pool`
//! initializer arguments, another queue — and it stays alive as long as some
//! process holds a handle to it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use procq::{Builder, RawQueue};
use pyo3::exceptions::{
    PyAssertionError, PyFileExistsError, PyFileNotFoundError, PyOSError, PyRuntimeError,
    PyTypeError, PyValueError,
};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyList, PyTuple, PyType};

mod item;

use item::{build, encode, finish, Codec, LARGE};

/// Longest stretch a blocking call stays detached before it takes the GIL
/// back to run signal handlers (Ctrl-C).
const SLICE: Duration = Duration::from_millis(100);

/// The slice for `join()`: longer than the core's 100 ms interval between
/// sweeps for dead consumers, which a `join` only does while it keeps
/// waiting past one (a shorter slice would end each wait just before it).
const JOIN_SLICE: Duration = Duration::from_millis(250);

/// The slice for a queue on a Redis server: each slice is one blocking
/// command, so a longer one means fewer round trips while idle (and Ctrl-C
/// within half a second).
const REMOTE_SLICE: Duration = Duration::from_millis(500);

/// Scratch buffers larger than this are freed after use rather than kept.
/// Keeping them matters: allocating and freeing a large buffer per item
/// makes glibc trim and regrow its heap, and page-faulting fresh memory
/// cost 30× the copy itself for 1 MB items (measured with `perf`).
const SCRATCH_KEEP: usize = 8 << 20;

thread_local! {
    /// Reused per thread: where `put` joins a tag and a body, and where a
    /// detached `get` lands a record before it becomes a Python object.
    static SCRATCH: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

fn take_scratch() -> Vec<u8> {
    SCRATCH.with(std::cell::Cell::take)
}

fn return_scratch(buf: Vec<u8>) {
    if buf.capacity() <= SCRATCH_KEEP {
        SCRATCH.with(|c| c.set(buf));
    }
}

static EMPTY: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static FULL: PyOnceLock<Py<PyType>> = PyOnceLock::new();

/// `queue.Empty()`, exactly what the standard library raises.
fn empty_error(py: Python<'_>) -> PyErr {
    match EMPTY.import(py, "queue", "Empty") {
        Ok(ty) => PyErr::from_type(ty.clone(), ()),
        Err(e) => e,
    }
}

/// `queue.Full(*args)`.
fn full_error<A: pyo3::PyErrArguments + 'static>(py: Python<'_>, args: A) -> PyErr {
    match FULL.import(py, "queue", "Full") {
        Ok(ty) => PyErr::from_type(ty.clone(), args),
        Err(e) => e,
    }
}

/// Maps a core error to the exception the standard library would raise.
fn to_py(py: Python<'_>, name: &str, e: procq::Error) -> PyErr {
    use procq::Error as E;
    match e {
        E::Empty => empty_error(py),
        E::Full => full_error(py, ()),
        E::Closed => PyValueError::new_err(format!("Queue {name:?} is closed")),
        E::TaskDoneTooOften => PyValueError::new_err("task_done() called too many times"),
        E::NotFound(_) => PyFileNotFoundError::new_err(e.to_string()),
        E::AlreadyExists(_) => PyFileExistsError::new_err(e.to_string()),
        E::TooLarge { .. } | E::InvalidName { .. } | E::InvalidQueue { .. } => {
            PyValueError::new_err(e.to_string())
        }
        E::Io { ref source, .. } => match source.raw_os_error() {
            // OSError(errno, message) picks the matching subclass.
            Some(errno) => PyOSError::new_err((errno, e.to_string())),
            None => PyOSError::new_err(e.to_string()),
        },
        other => PyRuntimeError::new_err(other.to_string()),
    }
}

/// How long a call may wait, from the standard library's `block` and
/// `timeout` arguments.
#[derive(Clone, Copy, Debug)]
enum Wait {
    /// Do not wait (`block=False`, or a timeout ≤ 0 as in `multiprocessing`).
    Now,
    /// Wait until the deadline, or forever if `None`.
    Until(Option<Instant>),
}

impl Wait {
    fn new(block: bool, timeout: Option<f64>) -> PyResult<Wait> {
        if !block {
            return Ok(Wait::Now);
        }
        match timeout {
            None => Ok(Wait::Until(None)),
            Some(t) if t.is_nan() => Err(PyValueError::new_err("timeout must not be NaN")),
            // multiprocessing treats a negative timeout as 0: one try.
            Some(t) if t <= 0.0 => Ok(Wait::Now),
            // Too far away to represent: forever.
            Some(t) => Ok(Wait::Until(
                Duration::try_from_secs_f64(t)
                    .ok()
                    .and_then(|d| Instant::now().checked_add(d)),
            )),
        }
    }

    fn waits(self) -> bool {
        matches!(self, Wait::Until(_))
    }
}

/// The time one detached attempt may take.
#[derive(Clone, Copy, Debug)]
enum Step {
    /// Try once.
    NoWait,
    /// Wait up to this long.
    For(Duration),
}

impl Step {
    /// As the core's `Option<Duration>` ("zero" means do not wait).
    fn timeout(self) -> Option<Duration> {
        Some(match self {
            Step::NoWait => Duration::ZERO,
            Step::For(d) => d.max(Duration::from_nanos(1)),
        })
    }
}

/// Runs `op` detached from the interpreter, in slices of at most `slice`
/// ([`SLICE`] on shared memory, [`REMOTE_SLICE`] on Redis), until it
/// succeeds, fails with an error `retry` does not accept, or the wait runs
/// out. Runs signal handlers between slices (their exception ends the call).
fn blocking_sliced<T, F>(
    py: Python<'_>,
    wait: Wait,
    slice: Duration,
    retry: fn(&procq::Error) -> bool,
    mut op: F,
) -> PyResult<procq::Result<T>>
where
    T: Send,
    F: FnMut(Step) -> procq::Result<T> + Send,
{
    loop {
        let step = match wait {
            Wait::Now => Step::NoWait,
            Wait::Until(None) => Step::For(slice),
            Wait::Until(Some(deadline)) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    Step::NoWait
                } else {
                    Step::For(left.min(slice))
                }
            }
        };
        let result = py.detach(|| op(step));
        let more_time = match (step, wait) {
            (Step::For(_), Wait::Until(None)) => true,
            (Step::For(_), Wait::Until(Some(deadline))) => Instant::now() < deadline,
            _ => false,
        };
        match &result {
            Err(e) if more_time && retry(e) => py.check_signals()?,
            _ => return Ok(result),
        }
    }
}

fn is_full(e: &procq::Error) -> bool {
    matches!(e, procq::Error::Full)
}

fn is_empty(e: &procq::Error) -> bool {
    matches!(e, procq::Error::Empty)
}

/// Whether `name` is a Redis URL rather than a shared-memory name.
fn is_url(name: &str) -> bool {
    name.starts_with("redis://") || name.starts_with("rediss://")
}

/// Sorts out the first positional argument of `Queue(...)` and
/// `JoinableQueue(...)`: an int is the stdlib's `maxsize`, a str is a queue
/// URL (`Queue("redis://host:6379/0/jobs", maxsize=10)`) or name.
fn first_arg(
    first: Option<&Bound<'_, PyAny>>,
    maxsize: Option<i64>,
    name: Option<&str>,
) -> PyResult<(Option<i64>, Option<String>)> {
    let Some(first) = first else {
        return Ok((maxsize, name.map(str::to_owned)));
    };
    if let Ok(url) = first.extract::<String>() {
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

/// Which Python class a handle belongs to (kept when pickled).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Queue,
    Joinable,
    Simple,
}

impl Kind {
    fn code(self) -> &'static str {
        match self {
            Kind::Queue => "queue",
            Kind::Joinable => "joinable",
            Kind::Simple => "simple",
        }
    }

    fn parse(s: &str) -> PyResult<Kind> {
        match s {
            "queue" => Ok(Kind::Queue),
            "joinable" => Ok(Kind::Joinable),
            "simple" => Ok(Kind::Simple),
            other => Err(PyValueError::new_err(format!(
                "unknown procq queue kind {other:?}"
            ))),
        }
    }
}

/// Creation arguments shared by the three constructors.
struct Options<'a> {
    /// `None`: not given (0 for a new queue; an existing Redis queue keeps
    /// its bound).
    maxsize: Option<i64>,
    codec: &'a str,
    name: Option<&'a str>,
    capacity_bytes: Option<u64>,
    max_bytes: Option<u64>,
}

/// One handle to a queue: what the three Python classes share.
struct Core {
    /// The untyped handle every operation goes through.
    raw: RawQueue,
    /// For `JoinableQueue`: a second handle that provides `join()`. It is
    /// never closed: as in the standard library, `join()` still works after
    /// `close()`.
    joiner: Option<RawQueue>,
    /// Whether the queue is on a Redis server: every call then releases the
    /// GIL (each is a network round trip).
    remote: bool,
    kind: Kind,
    codec: Codec,
    /// Set by `close()`.
    closed: AtomicBool,
    /// Whether the last item got was large: then the next `get` skips the
    /// fast path, whose copy would hold the GIL (see the module docs).
    large: AtomicBool,
}

impl Core {
    fn create(py: Python<'_>, kind: Kind, opts: Options<'_>) -> PyResult<Core> {
        let Options {
            maxsize,
            codec,
            name,
            capacity_bytes,
            max_bytes,
        } = opts;
        let codec = Codec::parse(codec)?;
        let mut builder = Builder::new();
        if let Some(maxsize) = maxsize {
            // As in multiprocessing, a maxsize ≤ 0 means unbounded.
            builder = builder.maxsize(usize::try_from(maxsize.max(0)).unwrap_or(usize::MAX));
        }
        if let Some(name) = name {
            builder = builder.name(name);
        }
        if let Some(bytes) = capacity_bytes {
            builder = builder.capacity_bytes(bytes);
        }
        if let Some(bytes) = max_bytes {
            builder = builder.max_bytes(bytes);
        }
        let label = name.unwrap_or("<new>");
        let raw = py
            .detach(|| match kind {
                Kind::Joinable => builder.build_raw_joinable(),
                _ => builder.build_raw(),
            })
            .map_err(|e| to_py(py, label, e))?;
        Ok(Core::from_raw(raw, kind, codec))
    }

    fn open(py: Python<'_>, kind: Kind, name: &str, codec: &str) -> PyResult<Core> {
        let codec = Codec::parse(codec)?;
        let raw = py
            .detach(|| {
                if kind == Kind::Joinable && is_url(name) {
                    // Never creates a plain queue under a joinable's URL.
                    Builder::new().name(name).build_raw_joinable()
                } else {
                    RawQueue::open(name)
                }
            })
            .map_err(|e| to_py(py, name, e))?;
        if kind == Kind::Joinable && !raw.is_joinable() {
            return Err(PyValueError::new_err(format!(
                "{name:?} is not a JoinableQueue"
            )));
        }
        Ok(Core::from_raw(raw, kind, codec))
    }

    fn from_raw(raw: RawQueue, kind: Kind, codec: Codec) -> Core {
        Core {
            joiner: (kind == Kind::Joinable).then(|| raw.clone()),
            remote: is_url(raw.name()),
            raw,
            kind,
            codec,
            closed: AtomicBool::new(false),
            large: AtomicBool::new(false),
        }
    }

    /// The slice of a blocking call on this queue.
    fn slice(&self) -> Duration {
        if self.remote {
            REMOTE_SLICE
        } else {
            SLICE
        }
    }

    fn name(&self) -> &str {
        self.raw.name()
    }

    /// The name for messages and `repr`: a Redis URL without its password.
    fn display_name(&self) -> std::borrow::Cow<'_, str> {
        self.raw.display_name()
    }

    fn err(&self, py: Python<'_>, e: procq::Error) -> PyErr {
        to_py(py, &self.display_name(), e)
    }

    fn check_open(&self) -> PyResult<()> {
        if self.closed.load(Ordering::Relaxed) {
            return Err(PyValueError::new_err(format!(
                "Queue {:?} is closed",
                self.display_name()
            )));
        }
        Ok(())
    }

    fn put(&self, py: Python<'_>, obj: &Bound<'_, PyAny>, wait: Wait) -> PyResult<()> {
        self.check_open()?;
        let enc = encode(obj, self.codec)?;
        let (head, body) = (enc.head(), enc.body());
        let large = enc.len() >= LARGE;
        // Tag and data are copied into shared memory piece by piece: no
        // concatenated copy first.
        let raw = &self.raw;
        let attempt = |step: Step| match step {
            Step::NoWait => raw.put_parts(head, body, Some(Duration::ZERO)),
            Step::For(d) => raw.put_parts(head, body, Some(d.max(Duration::from_nanos(1)))),
        };
        let result = if large || self.remote {
            blocking_sliced(py, wait, self.slice(), is_full, attempt)?
        } else {
            match raw.put_parts(head, body, Some(Duration::ZERO)) {
                Err(procq::Error::Full) if wait.waits() => {
                    blocking_sliced(py, wait, self.slice(), is_full, attempt)?
                }
                other => other,
            }
        };
        result.map_err(|e| self.err(py, e))
    }

    fn get<'py>(&self, py: Python<'py>, wait: Wait) -> PyResult<Bound<'py, PyAny>> {
        self.check_open()?;
        if !self.large.load(Ordering::Relaxed) && !self.remote {
            // Fast path: build the object straight from shared memory.
            let got = self.raw.get_with(Some(Duration::ZERO), |record| {
                self.large.store(record.len() >= LARGE, Ordering::Relaxed);
                build(py, record, self.codec, false)
            });
            match got {
                Ok(built) => return finish(py, built?),
                Err(procq::Error::Empty) if wait.waits() => {}
                Err(e) => return Err(self.err(py, e)),
            }
        }
        let raw = &self.raw;
        let mut landing = take_scratch();
        let got = blocking_sliced(py, wait, self.slice(), is_empty, |step| {
            raw.get_with(step.timeout(), |record| {
                landing.clear();
                landing.extend_from_slice(record);
            })
        });
        let result = match got {
            Ok(Ok(())) => {
                self.large.store(landing.len() >= LARGE, Ordering::Relaxed);
                build(py, &landing, self.codec, true)
            }
            Ok(Err(e)) => Err(self.err(py, e)),
            Err(e) => Err(e),
        };
        return_scratch(landing);
        finish(py, result?)
    }

    fn put_many(&self, py: Python<'_>, items: &Bound<'_, PyAny>, wait: Wait) -> PyResult<()> {
        self.check_open()?;
        let objs = items
            .try_iter()?
            .collect::<PyResult<Vec<Bound<'_, PyAny>>>>()?;
        // Encode everything first: an item that cannot be encoded raises
        // before any item is put.
        let encoded = objs
            .iter()
            .map(|o| encode(o, self.codec))
            .collect::<PyResult<Vec<_>>>()?;
        if encoded.is_empty() {
            return Ok(());
        }
        let parts: Vec<(&[u8], &[u8])> = encoded.iter().map(|e| (e.head(), e.body())).collect();
        let total: usize = encoded.iter().map(|e| e.len()).sum();
        // Each item's tag and data are copied straight into shared memory
        // (no joined copy first); the core takes a large batch in chunks.
        let raw = &self.raw;
        let mut done = 0;
        let mut attempt = |step: Step| {
            done += raw.put_many_parts(&parts[done..], step.timeout())?;
            if done == parts.len() {
                Ok(())
            } else {
                Err(procq::Error::Full)
            }
        };
        let slice = self.slice();
        let result = if total >= LARGE || self.remote {
            blocking_sliced(py, wait, slice, is_full, &mut attempt)?
        } else {
            match attempt(Step::NoWait) {
                Err(procq::Error::Full) if wait.waits() => {
                    blocking_sliced(py, wait, slice, is_full, &mut attempt)?
                }
                other => other,
            }
        };
        match result {
            Ok(()) => Ok(()),
            Err(procq::Error::Full) => Err(full_error(
                py,
                format!(
                    "queue full: the first {done} of {} items were put",
                    parts.len()
                ),
            )),
            Err(e) => Err(self.err(py, e)),
        }
    }

    fn get_many<'py>(
        &self,
        py: Python<'py>,
        max_items: usize,
        wait: Wait,
    ) -> PyResult<Bound<'py, PyList>> {
        self.check_open()?;
        if max_items == 0 {
            return Err(PyValueError::new_err("max_items must be at least 1"));
        }
        let raw = &self.raw;
        // Items land back to back in a reused buffer: no allocation per item
        // (a batch of fresh 100 KB buffers costs page faults, not copies).
        let mut buf = take_scratch();
        buf.clear();
        let mut ends: Vec<usize> = Vec::with_capacity(max_items.min(1024));
        let mut got = None;
        if !self.large.load(Ordering::Relaxed) && !self.remote {
            match raw.get_many_into(max_items, Some(Duration::ZERO), &mut buf, &mut ends) {
                Ok(n) => got = Some(Ok(n)),
                Err(procq::Error::Empty) if wait.waits() => {}
                Err(e) => got = Some(Err(e)),
            }
        }
        let got = match got {
            Some(r) => Ok(r),
            None => blocking_sliced(py, wait, self.slice(), is_empty, |step| {
                raw.get_many_into(max_items, step.timeout(), &mut buf, &mut ends)
            }),
        };
        let mut start = 0;
        let records: Vec<&[u8]> = ends
            .iter()
            .map(|&end| {
                let r = &buf[start..end];
                start = end;
                r
            })
            .collect();
        if let Some(last) = records.last() {
            self.large.store(last.len() >= LARGE, Ordering::Relaxed);
        }
        let result = match got {
            Ok(Ok(_)) => Ok(records
                .iter()
                .map(|r| build(py, r, self.codec, true))
                .collect::<Vec<_>>()),
            Ok(Err(e)) => Err(self.err(py, e)),
            Err(e) => Err(e),
        };
        drop(records);
        return_scratch(buf);
        let built = result?;
        // Every object was built before any pickle is loaded, so that an
        // error in one item does not lose the others' objects half-made.
        let list = PyList::empty(py);
        let mut first_error = None;
        for b in built {
            match b.and_then(|b| finish(py, b)) {
                Ok(obj) => list.append(obj)?,
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            // The items are gone from the queue either way; report the
            // failure rather than drop items silently.
            Some(e) => Err(e),
            None => Ok(list),
        }
    }

    fn qsize(&self, py: Python<'_>) -> usize {
        if self.remote {
            py.detach(|| self.raw.qsize())
        } else {
            self.raw.qsize()
        }
    }

    fn full(&self, py: Python<'_>) -> bool {
        let max = self.raw.maxsize();
        max > 0 && self.qsize(py) >= max
    }

    fn close(&self) {
        if !self.closed.swap(true, Ordering::SeqCst) {
            // Wakes this handle's blocked calls, which then raise ValueError.
            self.raw.close();
        }
    }

    fn task_done(&self, py: Python<'_>) -> PyResult<()> {
        let result = if self.remote {
            py.detach(|| self.raw.task_done())
        } else {
            self.raw.task_done()
        };
        result.map_err(|e| self.err(py, e))
    }

    fn join(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let Some(jq) = &self.joiner else {
            return Err(PyRuntimeError::new_err("not a JoinableQueue"));
        };
        let wait = Wait::new(true, timeout)?;
        let slice = self.slice().max(JOIN_SLICE);
        // The core reports a join that ran out of time as `Full`.
        let result = blocking_sliced(py, wait, slice, is_full, |step| jq.join(step.timeout()))?;
        match result {
            Ok(()) => Ok(true),
            Err(procq::Error::Full) => Ok(false),
            Err(e) => Err(self.err(py, e)),
        }
    }

    fn unfinished_tasks(&self, py: Python<'_>) -> PyResult<u64> {
        match &self.joiner {
            Some(jq) => py
                .detach(|| jq.unfinished_tasks())
                .map_err(|e| self.err(py, e)),
            None => Err(PyRuntimeError::new_err("not a JoinableQueue")),
        }
    }

    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let st = py
            .detach(|| self.raw.stats())
            .map_err(|e| self.err(py, e))?;
        let d = PyDict::new(py);
        let kind = match st.kind {
            procq::Kind::Joinable => "joinable",
            _ => "queue",
        };
        d.set_item("name", &st.name)?;
        d.set_item("kind", kind)?;
        d.set_item("maxsize", st.maxsize)?;
        d.set_item("items", st.items)?;
        d.set_item("unfinished_tasks", st.unfinished_tasks)?;
        d.set_item("bytes_used", st.bytes_used)?;
        d.set_item("capacity_bytes", st.capacity_bytes)?;
        d.set_item("max_capacity_bytes", st.max_capacity_bytes)?;
        d.set_item("resident_bytes", st.resident_bytes)?;
        d.set_item("attached_processes", st.attached_processes)?;
        d.set_item("dead_processes", st.dead_processes)?;
        d.set_item("items_put", st.items_put)?;
        d.set_item("items_got", st.items_got)?;
        d.set_item("bytes_put", st.bytes_put)?;
        d.set_item("bytes_got", st.bytes_got)?;
        d.set_item("blocked_puts", st.blocked_puts)?;
        d.set_item("blocked_gets", st.blocked_gets)?;
        d.set_item("timeouts", st.timeouts)?;
        d.set_item("recoveries", st.recoveries)?;
        d.set_item("reclaimed_processes", st.reclaimed_processes)?;
        Ok(d)
    }

    fn reduce<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let rebuild = py.import("procq._procq")?.getattr("_rebuild")?;
        let args = (self.kind.code(), self.name(), self.codec.name());
        PyTuple::new(py, [rebuild, args.into_pyobject(py)?.into_any()])
    }

    fn repr(&self, class: &str) -> String {
        let max = self.raw.maxsize();
        let closed = if self.closed.load(Ordering::Relaxed) {
            " closed"
        } else {
            ""
        };
        match self.kind {
            Kind::Simple => format!("<procq.{class} name='{}'{closed}>", self.display_name()),
            _ => format!(
                "<procq.{class} name='{}' maxsize={max}{closed}>",
                self.display_name()
            ),
        }
    }
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
/// Queue(maxsize=0, *, codec='pickle', name=None, capacity_bytes=None, max_bytes=None)
///
/// ``maxsize`` bounds the number of items (0 or less: unbounded). Items are
/// any picklable objects; ``bytes``, ``str``, ``int``, ``float``, ``None``
/// and ``bool`` skip pickle. With ``codec='bytes'`` items must be
/// bytes-like and are stored verbatim (for sharing with non-Python
/// processes). With ``codec='text'`` items are ``str`` (or ``bytes``) in the
/// format of Rust's ``Queue<String>`` and the ``procq`` command (a varint
/// length, then UTF-8); they come back as ``str`` (``bytes`` if not UTF-8). ``name`` picks the shared-memory name (default: a unique
/// one); another process, in any language, can open the queue by it.
/// ``capacity_bytes`` is the initial (and smallest) size of the
/// shared-memory ring, 256 KiB by default; it grows as needed up to
/// ``max_bytes`` (default: the size of ``/dev/shm``), the largest item
/// that fits.
///
/// Differences from ``multiprocessing.Queue``: there is no feeder thread —
/// ``put`` has finished when it returns, so ``empty()`` is false and
/// ``qsize()`` counts the item at once, on every platform; an object that
/// cannot be pickled makes ``put`` raise at once; a process killed while
/// using the queue never corrupts or locks it for the others; the queue can
/// be pickled and sent to another process by any route; ``put_many`` and
/// ``get_many`` move batches.
///
/// Raises ``queue.Empty`` / ``queue.Full`` like the standard library, and
/// ``ValueError`` once ``close()`` has been called.
///
/// Queue(url, maxsize=None, *, codec='pickle')
///
/// The same queue on a Redis server, for processes on several machines:
/// ``url`` is ``redis://[user:password@]host:port/db/name`` (options
/// ``?lease_ms=``, ``timeout_ms=``, ``heartbeat=0``; ``rediss://`` with the
/// ``tls`` build feature). The queue is created if missing; with
/// ``maxsize``, an existing queue must have that bound. Every method
/// behaves as on shared memory; ``JoinableQueue`` delivers at least once
/// (a consumer's unacknowledged items come back when it dies). Connection
/// problems raise ``OSError``; the next call reconnects.
#[pyclass(module = "procq", subclass, frozen)]
pub struct Queue {
    core: Core,
}

#[pymethods]
impl Queue {
    #[new]
    #[pyo3(signature = (url_or_maxsize=None, /, maxsize=None, *, codec="pickle", name=None, capacity_bytes=None, max_bytes=None))]
    fn new(
        py: Python<'_>,
        url_or_maxsize: Option<&Bound<'_, PyAny>>,
        maxsize: Option<i64>,
        codec: &str,
        name: Option<&str>,
        capacity_bytes: Option<u64>,
        max_bytes: Option<u64>,
    ) -> PyResult<Self> {
        let (maxsize, name) = first_arg(url_or_maxsize, maxsize, name)?;
        let opts = Options {
            maxsize,
            codec,
            name: name.as_deref(),
            capacity_bytes,
            max_bytes,
        };
        Ok(Queue {
            core: Core::create(py, Kind::Queue, opts)?,
        })
    }

    /// Opens an existing queue by name (made by ``procq`` in any process,
    /// or by Rust's ``procq::RawQueue``/``Queue``).
    #[classmethod]
    #[pyo3(signature = (name, *, codec="pickle"))]
    fn open(_cls: &Bound<'_, PyType>, py: Python<'_>, name: &str, codec: &str) -> PyResult<Self> {
        Ok(Queue {
            core: Core::open(py, Kind::Queue, name, codec)?,
        })
    }

    /// Put ``obj`` into the queue.
    ///
    /// If ``block`` is true and ``timeout`` is None (the default), block
    /// until a free slot is available. If ``timeout`` is a positive number,
    /// block at most ``timeout`` seconds and raise ``queue.Full`` if no slot
    /// became free. Otherwise (``block`` false, or ``timeout`` ≤ 0) put the
    /// item if a slot is free right now, else raise ``queue.Full``.
    ///
    /// The item is in shared memory when ``put`` returns. An object that
    /// cannot be pickled raises here and leaves the queue unchanged.
    #[pyo3(signature = (obj, block=true, timeout=None))]
    fn put(
        &self,
        py: Python<'_>,
        obj: &Bound<'_, PyAny>,
        block: bool,
        timeout: Option<f64>,
    ) -> PyResult<()> {
        self.core.put(py, obj, Wait::new(block, timeout)?)
    }

    /// Remove and return an item from the queue.
    ///
    /// If ``block`` is true and ``timeout`` is None (the default), block
    /// until an item is available. If ``timeout`` is a positive number, block
    /// at most ``timeout`` seconds and raise ``queue.Empty`` if no item
    /// arrived. Otherwise (``block`` false, or ``timeout`` ≤ 0) return an
    /// item if one is available right now, else raise ``queue.Empty``.
    #[pyo3(signature = (block=true, timeout=None))]
    fn get<'py>(
        &self,
        py: Python<'py>,
        block: bool,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.core.get(py, Wait::new(block, timeout)?)
    }

    /// Equivalent to ``put(obj, False)``.
    fn put_nowait(&self, py: Python<'_>, obj: &Bound<'_, PyAny>) -> PyResult<()> {
        self.core.put(py, obj, Wait::Now)
    }

    /// Equivalent to ``get(False)``.
    fn get_nowait<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.core.get(py, Wait::Now)
    }

    /// Put every item of the iterable ``items``, in order, under as few lock
    /// acquisitions as room allows (much faster than one ``put`` each for
    /// small items). All items are pickled before any is put: one that
    /// cannot be pickled raises and nothing is put. ``block`` and
    /// ``timeout`` are as for ``put``; if time runs out, ``queue.Full`` is
    /// raised and only the leading items it names were put.
    #[pyo3(signature = (items, block=true, timeout=None))]
    fn put_many(
        &self,
        py: Python<'_>,
        items: &Bound<'_, PyAny>,
        block: bool,
        timeout: Option<f64>,
    ) -> PyResult<()> {
        self.core.put_many(py, items, Wait::new(block, timeout)?)
    }

    /// Remove and return a list of up to ``max_items`` items (at least one).
    ///
    /// Waits for the first item as ``get`` does (``block``, ``timeout``,
    /// ``queue.Empty``), then takes whatever else is there, up to
    /// ``max_items``, without waiting.
    #[pyo3(signature = (max_items, block=true, timeout=None))]
    fn get_many<'py>(
        &self,
        py: Python<'py>,
        max_items: usize,
        block: bool,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyList>> {
        self.core
            .get_many(py, max_items, Wait::new(block, timeout)?)
    }

    /// Return the number of items in the queue: exact at the instant it is
    /// read, on every platform (never ``NotImplementedError``).
    fn qsize(&self, py: Python<'_>) -> usize {
        self.core.qsize(py)
    }

    /// Return True if the queue is empty. False as soon as any ``put`` has
    /// returned, in any process.
    fn empty(&self, py: Python<'_>) -> bool {
        self.core.qsize(py) == 0
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

    /// How items are stored: ``'pickle'`` or ``'bytes'``.
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
/// JoinableQueue(maxsize=0, *, codec='pickle', name=None, capacity_bytes=None, max_bytes=None)
/// JoinableQueue(url, maxsize=None, *, codec='pickle')
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
    #[pyo3(signature = (url_or_maxsize=None, /, maxsize=None, *, codec="pickle", name=None, capacity_bytes=None, max_bytes=None))]
    fn new(
        py: Python<'_>,
        url_or_maxsize: Option<&Bound<'_, PyAny>>,
        maxsize: Option<i64>,
        codec: &str,
        name: Option<&str>,
        capacity_bytes: Option<u64>,
        max_bytes: Option<u64>,
    ) -> PyResult<PyClassInitializer<Self>> {
        let (maxsize, name) = first_arg(url_or_maxsize, maxsize, name)?;
        let opts = Options {
            maxsize,
            codec,
            name: name.as_deref(),
            capacity_bytes,
            max_bytes,
        };
        Ok(JoinableQueue::make(Core::create(py, Kind::Joinable, opts)?))
    }

    /// Opens an existing joinable queue by name.
    #[classmethod]
    #[pyo3(signature = (name, *, codec="pickle"))]
    fn open(cls: &Bound<'_, PyType>, name: &str, codec: &str) -> PyResult<Py<JoinableQueue>> {
        let py = cls.py();
        Py::new(
            py,
            JoinableQueue::make(Core::open(py, Kind::Joinable, name, codec)?),
        )
    }

    /// Indicate that a formerly enqueued task is complete.
    ///
    /// Used by queue consumers: for each ``get()`` used to fetch a task, a
    /// subsequent ``task_done()`` tells the queue that the processing on the
    /// task is complete. Raises ``ValueError`` if called more times than
    /// there were items placed in the queue.
    fn task_done(slf: &Bound<'_, Self>) -> PyResult<()> {
        slf.as_super().get().core.task_done(slf.py())
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
/// SimpleQueue(*, codec='pickle', name=None, capacity_bytes=None, max_bytes=None)
#[pyclass(module = "procq", subclass, frozen)]
pub struct SimpleQueue {
    core: Core,
}

#[pymethods]
impl SimpleQueue {
    #[new]
    #[pyo3(signature = (*, codec="pickle", name=None, capacity_bytes=None, max_bytes=None))]
    fn new(
        py: Python<'_>,
        codec: &str,
        name: Option<&str>,
        capacity_bytes: Option<u64>,
        max_bytes: Option<u64>,
    ) -> PyResult<Self> {
        let opts = Options {
            maxsize: None,
            codec,
            name,
            capacity_bytes,
            max_bytes,
        };
        Ok(SimpleQueue {
            core: Core::create(py, Kind::Simple, opts)?,
        })
    }

    /// Put an item into the queue (never blocks: the queue is unbounded).
    fn put(&self, py: Python<'_>, obj: &Bound<'_, PyAny>) -> PyResult<()> {
        self.core.put(py, obj, Wait::Until(None))
    }

    /// Remove and return an item from the queue, blocking until there is
    /// one.
    ///
    /// procq extension: with a ``timeout`` (seconds), raise ``queue.Empty``
    /// if no item arrived in time.
    #[pyo3(signature = (timeout=None))]
    fn get<'py>(&self, py: Python<'py>, timeout: Option<f64>) -> PyResult<Bound<'py, PyAny>> {
        self.core.get(py, Wait::new(true, timeout)?)
    }

    /// Put every item of ``items``, in order (see ``Queue.put_many``).
    fn put_many(&self, py: Python<'_>, items: &Bound<'_, PyAny>) -> PyResult<()> {
        self.core.put_many(py, items, Wait::Until(None))
    }

    /// Remove and return up to ``max_items`` items (see ``Queue.get_many``).
    #[pyo3(signature = (max_items, timeout=None))]
    fn get_many<'py>(
        &self,
        py: Python<'py>,
        max_items: usize,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyList>> {
        self.core.get_many(py, max_items, Wait::new(true, timeout)?)
    }

    /// Return True if the queue is empty.
    fn empty(&self, py: Python<'_>) -> bool {
        self.core.qsize(py) == 0
    }

    /// Return the number of items in the queue (procq extension).
    fn qsize(&self, py: Python<'_>) -> usize {
        self.core.qsize(py)
    }

    /// Close this handle: later ``put``/``get`` calls on it raise
    /// ``ValueError``. The queue and its items stay for other handles.
    fn close(&self) {
        self.core.close();
    }

    /// The queue's shared-memory name.
    #[getter]
    fn name(&self) -> &str {
        self.core.name()
    }

    /// How items are stored: ``'pickle'`` or ``'bytes'``.
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
fn _rebuild(py: Python<'_>, kind: &str, name: &str, codec: &str) -> PyResult<Py<PyAny>> {
    let kind = Kind::parse(kind)?;
    let core = Core::open(py, kind, name, codec)?;
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
fn collect_garbage(py: Python<'_>) -> PyResult<Vec<String>> {
    py.detach(procq::collect_garbage)
        .map_err(|e| to_py(py, "/dev/shm", e))
}

/// The compiled part of `procq` (import `procq`, not this module).
#[pymodule]
fn _procq(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Queue>()?;
    m.add_class::<JoinableQueue>()?;
    m.add_class::<SimpleQueue>()?;
    m.add_function(wrap_pyfunction!(_rebuild, m)?)?;
    m.add_function(wrap_pyfunction!(collect_garbage, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("LARGE_ITEM_BYTES", LARGE)?;
    Ok(())
}
