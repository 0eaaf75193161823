//! `Core`: one handle to a queue, with every operation the three Python
//! classes share (encoding, the GIL fast path, waiting, errors).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use procq::{Builder, RawQueue};
use pyo3::exceptions::{PyOSError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};

use crate::errors::{full_error, to_py, too_large};
use crate::item::{
    build, build_landed, direct, encode, finish, land, uninit_bytes, Codec, Direct, LARGE,
};
use crate::oob;
use crate::wait::{
    blocking_sliced, is_empty, is_full, is_timeout, Step, Wait, JOIN_SLICE, REMOTE_SLICE, SLICE,
};

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

/// Whether `name` is a queue URL (`redis://`, `rediss://`, ...) rather
/// than a shared-memory name: the core's `Address` decides.
pub(crate) fn is_url(name: &str) -> bool {
    procq::Address::is_url(name)
}

/// What `help(procq.Queue)` and the errors say about pickles from a server.
const UNTRUSTED: &str = "get() unpickles whatever any client of that server put in, and \
unpickling runs code: pass trusted=True if every writer with access to the server is \
trusted, or store plain data with codec='bytes', codec='text', or dumps=/loads= such as \
json.dumps/json.loads";

/// Which Python class a handle belongs to (kept when pickled).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
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

    pub(crate) fn parse(s: &str) -> PyResult<Kind> {
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
pub(crate) struct Options<'a> {
    /// `None`: not given (0 for a new queue; an existing Redis queue keeps
    /// its bound).
    pub(crate) maxsize: Option<i64>,
    pub(crate) codec: Codec,
    pub(crate) name: Option<&'a str>,
    pub(crate) capacity_bytes: Option<u64>,
    pub(crate) max_bytes: Option<u64>,
    /// `trusted=`: pickles from a Redis server may be loaded.
    pub(crate) trusted: bool,
    /// `create_new=`: fail with `FileExistsError` if the queue exists (a
    /// Redis URL is otherwise opened when it exists; a shared-memory name
    /// that is taken always fails).
    pub(crate) create_new: bool,
}

/// One handle to a queue: what the three Python classes share.
pub(crate) struct Core {
    /// The untyped handle every operation goes through.
    pub(crate) raw: RawQueue,
    /// For `JoinableQueue`: a second handle that provides `join()`. It is
    /// never closed: as in the standard library, `join()` still works after
    /// `close()`.
    pub(crate) joiner: Option<RawQueue>,
    /// Whether the queue is on a Redis server: every call then releases the
    /// GIL (each is a network round trip).
    remote: bool,
    kind: Kind,
    pub(crate) codec: Codec,
    /// `trusted=` as given (kept when pickled).
    trusted: bool,
    /// `max_bytes=` as given to the constructor, for error messages.
    max_bytes: Option<u64>,
    /// Set by `close()`.
    pub(crate) closed: AtomicBool,
    /// Whether the last item got was large: then the next `get` skips the
    /// fast path, whose copy would hold the GIL (see the module docs).
    large: AtomicBool,
    /// The shape of the last item got, if it was large and became one
    /// `bytes` object (see [`Shape`]): the next `get` makes a `bytes` object
    /// of that size in advance, for a record of the same shape to be copied
    /// into straight from shared memory.
    shape: AtomicU64,
}

/// A large record's payload length and what its `bytes` object is (see
/// `item::direct`), packed into a `u64` (0: none).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Shape {
    len: usize,
    kind: Direct,
}

impl Shape {
    fn pack(self) -> u64 {
        let kind = match self.kind {
            Direct::Item => 1,
            Direct::Pickle => 2,
            Direct::Custom => 3,
        };
        (self.len as u64) << 2 | kind
    }

    fn unpack(v: u64) -> Option<Shape> {
        let kind = match v & 3 {
            1 => Direct::Item,
            2 => Direct::Pickle,
            3 => Direct::Custom,
            _ => return None,
        };
        Some(Shape {
            len: usize::try_from(v >> 2).ok()?,
            kind,
        })
    }
}

/// The buffer of a `bytes` object made in advance by `get` (see
/// [`Core::shape`]), to be filled without the GIL.
struct Dest {
    buf: *mut u8,
    shape: Shape,
}

// SAFETY: the buffer belongs to a `bytes` object no other code can see yet;
// only the one thread running the `get` writes it, while that `get` waits.
unsafe impl Send for Dest {}

impl Core {
    pub(crate) fn create(py: Python<'_>, kind: Kind, opts: Options<'_>) -> PyResult<Core> {
        let Options {
            maxsize,
            codec,
            name,
            capacity_bytes,
            max_bytes,
            trusted,
            create_new,
        } = opts;
        if let Some(name) = name {
            check_trust(name, &codec, trusted)?;
        }
        let mut builder = Builder::new().create_new(create_new);
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
        let mut core = Core::from_raw(raw, kind, codec, trusted);
        core.max_bytes = max_bytes;
        Ok(core)
    }

    pub(crate) fn open(
        py: Python<'_>,
        kind: Kind,
        name: &str,
        codec: Codec,
        trusted: bool,
    ) -> PyResult<Core> {
        check_trust(name, &codec, trusted)?;
        let raw = py
            .detach(|| RawQueue::open(name))
            .map_err(|e| to_py(py, name, e))?;
        if kind == Kind::Joinable && !raw.is_joinable() {
            return Err(PyValueError::new_err(format!(
                "{name:?} is not a JoinableQueue"
            )));
        }
        Ok(Core::from_raw(raw, kind, codec, trusted))
    }

    fn from_raw(raw: RawQueue, kind: Kind, codec: Codec, trusted: bool) -> Core {
        Core {
            joiner: (kind == Kind::Joinable).then(|| raw.clone()),
            remote: matches!(raw.address(), procq::Address::Redis(_)),
            raw,
            kind,
            codec,
            trusted,
            max_bytes: None,
            closed: AtomicBool::new(false),
            large: AtomicBool::new(false),
            shape: AtomicU64::new(0),
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

    pub(crate) fn name(&self) -> &str {
        self.raw.name()
    }

    /// The name for messages and `repr`: a Redis URL without its password.
    fn display_name(&self) -> std::borrow::Cow<'_, str> {
        self.raw.display_name()
    }

    pub(crate) fn err(&self, py: Python<'_>, e: procq::Error) -> PyErr {
        match e {
            procq::Error::Closed => self.closed_error(),
            procq::Error::TooLarge { size, limit } => {
                let ring = py
                    .detach(|| self.raw.stats())
                    .map(|s| s.max_capacity_bytes)
                    .ok();
                too_large(size, limit, ring, self.max_bytes)
            }
            e => to_py(py, &self.display_name(), e),
        }
    }

    /// What the standard library raises on a closed handle: `ValueError`
    /// from `Queue`, `OSError` from `SimpleQueue` (its pipe is closed).
    fn closed_error(&self) -> PyErr {
        match self.kind {
            Kind::Simple => PyOSError::new_err(format!(
                "handle is closed (SimpleQueue {:?})",
                self.display_name()
            )),
            _ => PyValueError::new_err(format!("Queue {:?} is closed", self.display_name())),
        }
    }

    pub(crate) fn check_open(&self) -> PyResult<()> {
        if self.closed.load(Ordering::Relaxed) {
            return Err(self.closed_error());
        }
        Ok(())
    }

    /// `empty()`: `OSError` on a closed handle, as the standard library's
    /// three queues raise (their reading end is closed).
    pub(crate) fn empty(&self, py: Python<'_>) -> PyResult<bool> {
        if self.closed.load(Ordering::Relaxed) {
            return Err(PyOSError::new_err(format!(
                "handle is closed (queue {:?})",
                self.display_name()
            )));
        }
        Ok(self.qsize(py) == 0)
    }

    pub(crate) fn put(&self, py: Python<'_>, obj: &Bound<'_, PyAny>, wait: Wait) -> PyResult<()> {
        self.check_open()?;
        let enc = encode(obj, &self.codec)?;
        let raw = &self.raw;
        if let Some((head, buffers)) = enc.scattered() {
            // Several out-of-band buffers: each goes from its object straight
            // into the room the core lends (its record, for a large item).
            let len = oob::record_len(head, &buffers);
            let attempt = |step: Step| {
                raw.put_with(len, step.timeout(), |dst| oob::write(dst, head, &buffers))
            };
            let result = blocking_sliced(py, wait, self.slice(), is_full, attempt)?;
            return result.map_err(|e| self.err(py, e));
        }
        let (head, body) = (enc.head(), enc.body());
        let large = enc.len() >= LARGE;
        // Tag and data are copied into shared memory piece by piece: no
        // concatenated copy first.
        let attempt = |step: Step| match step {
            Step::NoWait => raw.put_parts(head, body, Some(Duration::ZERO)),
            Step::For(d) => raw.put_parts(head, body, Some(d.max(Duration::from_nanos(1)))),
        };
        let result = if large || self.remote {
            blocking_sliced(py, wait, self.slice(), is_full, attempt)?
        } else {
            match raw.put_parts(head, body, Some(Duration::ZERO)) {
                Err(e) if wait.waits() && is_full(&e) => {
                    blocking_sliced(py, wait, self.slice(), is_full, attempt)?
                }
                other => other,
            }
        };
        result.map_err(|e| self.err(py, e))
    }

    pub(crate) fn get<'py>(&self, py: Python<'py>, wait: Wait) -> PyResult<Bound<'py, PyAny>> {
        self.check_open()?;
        if !self.large.load(Ordering::Relaxed) && !self.remote {
            // Fast path: build the object straight from shared memory.
            let got = self.raw.get_with(Some(Duration::ZERO), |record| {
                self.large.store(record.len() >= LARGE, Ordering::Relaxed);
                build(py, record, &self.codec, false)
            });
            match got {
                Ok(built) => return finish(py, built?, &self.codec),
                Err(e) if wait.waits() && is_empty(&e) => {}
                Err(e) => return Err(self.err(py, e)),
            }
        }
        let (raw, codec) = (&self.raw, &self.codec);
        // Large items tend to come in a stream of one size: if the last one
        // became a `bytes` object, make one of its size now, while the GIL
        // is held, for a record of the same shape to be copied into without
        // it — one copy out of shared memory instead of two (into the
        // landing buffer, then into the object). Another shape lands as
        // usual and the object is dropped.
        let ready = match Shape::unpack(self.shape.load(Ordering::Relaxed)) {
            Some(shape) if !self.remote => Some((uninit_bytes(py, shape.len)?, shape)),
            _ => None,
        };
        let dest = ready.as_ref().map(|&((_, buf), shape)| Dest { buf, shape });
        let mut landing = take_scratch();
        let into = &mut landing;
        let got = blocking_sliced(py, wait, self.slice(), is_empty, move |step| {
            // The record leaves shared memory here, without the GIL: the
            // buffers of an out-of-band pickle straight into the memory
            // their objects will use.
            raw.get_with(step.timeout(), |record| {
                let found = direct(record, codec).map(|(start, kind)| {
                    let len = record.len() - start;
                    (start, Shape { len, kind })
                });
                if let (Some(dest), Some((start, shape))) = (&dest, found) {
                    if shape == dest.shape {
                        // SAFETY: `dest.buf` holds `shape.len` bytes of a
                        // `bytes` object nobody else can see yet (see
                        // `Dest`), and `record[start..]` is that long.
                        unsafe {
                            std::ptr::copy_nonoverlapping(
                                record[start..].as_ptr(),
                                dest.buf,
                                shape.len,
                            )
                        };
                        return (None, record.len(), found);
                    }
                }
                (Some(land(record, codec, into)), record.len(), found)
            })
        });
        let result = match got {
            Ok(Ok((taken, len, found))) => {
                let large = len >= LARGE;
                self.large.store(large, Ordering::Relaxed);
                let shape = found.filter(|_| large).map_or(0, |(_, s)| s.pack());
                self.shape.store(shape, Ordering::Relaxed);
                match (taken, ready) {
                    (Some(taken), _) => build_landed(py, taken, &landing, codec),
                    (None, Some(((bytes, _), shape))) => Ok(shape.kind.built(bytes)),
                    (None, None) => unreachable!("filled without a destination"),
                }
            }
            Ok(Err(e)) => Err(self.err(py, e)),
            Err(e) => Err(e),
        };
        return_scratch(landing);
        finish(py, result?, codec)
    }

    pub(crate) fn put_many(
        &self,
        py: Python<'_>,
        items: &Bound<'_, PyAny>,
        wait: Wait,
    ) -> PyResult<()> {
        self.check_open()?;
        let objs = items
            .try_iter()?
            .collect::<PyResult<Vec<Bound<'_, PyAny>>>>()?;
        // Encode everything first: an item that cannot be encoded raises
        // before any item is put.
        let encoded = objs
            .iter()
            .map(|o| encode(o, &self.codec))
            .collect::<PyResult<Vec<_>>>()?;
        if encoded.is_empty() {
            return Ok(());
        }
        // A batch entry is two pieces: an item with several out-of-band
        // buffers is laid out whole first.
        let whole: Vec<Option<Vec<u8>>> = encoded
            .iter()
            .map(|e| e.scattered().is_some().then(|| e.to_vec()))
            .collect();
        let parts: Vec<(&[u8], &[u8])> = encoded
            .iter()
            .zip(&whole)
            .map(|(e, w)| match w {
                Some(record) => (record.as_slice(), &[][..]),
                None => (e.head(), e.body()),
            })
            .collect();
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
                Err(e) if wait.waits() && is_full(&e) => {
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

    pub(crate) fn get_many<'py>(
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
                Err(e) if wait.waits() && is_empty(&e) => {}
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
                .map(|r| build(py, r, &self.codec, true))
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
            match b.and_then(|b| finish(py, b, &self.codec)) {
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

    pub(crate) fn qsize(&self, py: Python<'_>) -> usize {
        if self.remote {
            py.detach(|| self.raw.qsize())
        } else {
            self.raw.qsize()
        }
    }

    pub(crate) fn full(&self, py: Python<'_>) -> bool {
        let max = self.raw.maxsize();
        max > 0 && self.qsize(py) >= max
    }

    pub(crate) fn close(&self) {
        if !self.closed.swap(true, Ordering::SeqCst) {
            // Wakes this handle's blocked calls, which then raise ValueError.
            self.raw.close();
        }
    }

    pub(crate) fn shutdown(&self, py: Python<'_>, immediate: bool) -> PyResult<()> {
        self.check_open()?;
        py.detach(|| self.raw.shutdown(immediate))
            .map_err(|e| self.err(py, e))
    }

    pub(crate) fn is_shutdown(&self, py: Python<'_>) -> bool {
        if self.remote {
            py.detach(|| self.raw.is_shutdown())
        } else {
            self.raw.is_shutdown()
        }
    }

    pub(crate) fn task_done(&self, py: Python<'_>) -> PyResult<()> {
        let result = if self.remote {
            py.detach(|| self.raw.task_done())
        } else {
            self.raw.task_done()
        };
        result.map_err(|e| self.err(py, e))
    }

    pub(crate) fn task_done_many(&self, py: Python<'_>, n: usize) -> PyResult<()> {
        let result = if self.remote {
            py.detach(|| self.raw.task_done_many(n))
        } else {
            self.raw.task_done_many(n)
        };
        result.map_err(|e| self.err(py, e))
    }

    pub(crate) fn join(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let Some(jq) = &self.joiner else {
            return Err(PyRuntimeError::new_err("not a JoinableQueue"));
        };
        let wait = Wait::new(true, timeout)?;
        let slice = self.slice().max(JOIN_SLICE);
        // The core reports a join that ran out of time as `Timeout`.
        let result = blocking_sliced(py, wait, slice, is_timeout, |step| match step {
            Step::NoWait => jq.join_timeout(Duration::ZERO),
            Step::For(d) => jq.join_timeout(d),
        })?;
        match result {
            Ok(()) => Ok(true),
            // Out of time, with tasks left or the lock held by a stopped
            // process: not every task is known to be done.
            Err(procq::Error::Timeout | procq::Error::LockBusy { .. }) => Ok(false),
            Err(e) => Err(self.err(py, e)),
        }
    }

    pub(crate) fn unfinished_tasks(&self, py: Python<'_>) -> PyResult<u64> {
        match &self.joiner {
            Some(jq) => py
                .detach(|| jq.unfinished_tasks())
                .map_err(|e| self.err(py, e)),
            None => Err(PyRuntimeError::new_err("not a JoinableQueue")),
        }
    }

    pub(crate) fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
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
        d.set_item("shutdown", st.shutdown)?;
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

    pub(crate) fn reduce<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let rebuild = py.import("procq._procq")?.getattr("_rebuild")?;
        let (dumps, loads) = self.codec.custom(py).unzip();
        let codec = match self.codec {
            // Rebuilt from dumps and loads.
            Codec::Custom { .. } => "pickle",
            _ => self.codec.name(),
        };
        let args = (
            self.kind.code(),
            self.name(),
            codec,
            dumps,
            loads,
            self.trusted,
        );
        PyTuple::new(py, [rebuild, args.into_pyobject(py)?.into_any()])
    }

    pub(crate) fn repr(&self, class: &str) -> String {
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

/// Refuses to open a queue on a server with the pickle codec unless the
/// caller said its writers are trusted (`trusted=True`).
fn check_trust(name: &str, codec: &Codec, trusted: bool) -> PyResult<()> {
    if is_url(name) && matches!(codec, Codec::Pickle) && !trusted {
        return Err(PyValueError::new_err(format!(
            "a procq queue on a server holds pickles by default, and {UNTRUSTED}"
        )));
    }
    Ok(())
}
