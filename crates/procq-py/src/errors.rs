//! Errors: the exceptions the standard library raises, made from procq's.

use pyo3::exceptions::{
    PyFileExistsError, PyFileNotFoundError, PyNotImplementedError, PyOSError, PyPermissionError,
    PyRuntimeError, PyTimeoutError, PyValueError,
};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;

static EMPTY: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static FULL: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static SHUT_DOWN: PyOnceLock<Py<PyType>> = PyOnceLock::new();

/// `queue.Empty()`, exactly what the standard library raises.
pub(crate) fn empty_error(py: Python<'_>) -> PyErr {
    match EMPTY.import(py, "queue", "Empty") {
        Ok(ty) => PyErr::from_type(ty.clone(), ()),
        Err(e) => e,
    }
}

/// `queue.Full(*args)`.
pub(crate) fn full_error<A: pyo3::PyErrArguments + 'static>(py: Python<'_>, args: A) -> PyErr {
    match FULL.import(py, "queue", "Full") {
        Ok(ty) => PyErr::from_type(ty.clone(), args),
        Err(e) => e,
    }
}

/// `procq.ShutDown()`: `queue.ShutDown` itself on Python 3.13+ (defined in
/// `procq/__init__.py`, which is loaded before any queue exists).
pub(crate) fn shut_down_error(py: Python<'_>) -> PyErr {
    match shut_down_type(py) {
        Ok(ty) => PyErr::from_type(ty.clone(), ()),
        Err(e) => e,
    }
}

/// The class of [`shut_down_error`].
pub(crate) fn shut_down_type(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    SHUT_DOWN.import(py, "procq", "ShutDown")
}

/// Maps a core error to the exception the standard library would raise.
pub(crate) fn to_py(py: Python<'_>, name: &str, e: procq::Error) -> PyErr {
    use procq::Error as E;
    match e {
        E::Empty => empty_error(py),
        E::Full => full_error(py, ()),
        E::Closed => PyValueError::new_err(format!("Queue {name:?} is closed")),
        E::ShutDown => shut_down_error(py),
        E::Unsupported { .. } => PyNotImplementedError::new_err(e.to_string()),
        E::TaskDoneTooOften => PyValueError::new_err(TASK_DONE_TOO_OFTEN),
        // A live process keeps the lock (stopped inside its critical
        // section): the caller's time ran out, but the queue is neither
        // empty nor full, so not queue.Empty / queue.Full.
        E::LockBusy { .. } => PyTimeoutError::new_err(e.to_string()),
        E::NotFound(_) => PyFileNotFoundError::new_err(e.to_string()),
        // A segment of another user, or open to group or others: refused
        // before it is mapped.
        E::PermissionDenied { .. } => PyPermissionError::new_err(e.to_string()),
        E::AlreadyExists(_) => PyFileExistsError::new_err(e.to_string()),
        E::TooLarge { .. } | E::InvalidName { .. } | E::InvalidQueue { .. } => {
            PyValueError::new_err(e.to_string())
        }
        E::Io { ref source, .. } | E::Redis { ref source, .. } => match source.raw_os_error() {
            // OSError(errno, message) picks the matching subclass.
            Some(errno) => PyOSError::new_err((errno, e.to_string())),
            None => PyOSError::new_err(e.to_string()),
        },
        other => PyRuntimeError::new_err(other.to_string()),
    }
}

/// procq's rule for `task_done()`, which differs from the standard
/// library's (that only counts puts).
const TASK_DONE_TOO_OFTEN: &str = "task_done() called with no task outstanding: procq counts \
a task from the get() that took it out of the queue (the standard library counts from put()), \
and every item got from this queue is already marked done (on a Redis queue: every item got \
through this handle)";

/// `ValueError` for an item larger than the queue can ever hold, with the
/// numbers the user chose: `size` the encoded item, `limit` the largest
/// record, `ring` the largest ring (if known), `asked` the `max_bytes=` given.
pub(crate) fn too_large(size: u64, limit: u64, ring: Option<u64>, asked: Option<u64>) -> PyErr {
    let mut msg = format!(
        "item too large for this queue: it encodes to {size} bytes, and the largest item the \
         queue can hold is {limit} bytes"
    );
    if let Some(ring) = ring {
        msg.push_str(&format!(
            " (its ring grows to at most {ring} bytes, less {} bytes of framing per item",
            ring.saturating_sub(limit)
        ));
        match asked {
            Some(asked) if asked != ring => msg.push_str(&format!(
                "; max_bytes={asked} was rounded up to a power of two, at least 4096)"
            )),
            _ => msg.push_str("; raise max_bytes= to hold larger items)"),
        }
    }
    PyValueError::new_err(msg)
}
