//! Errors: the exceptions the standard library raises, made from procq's.

use pyo3::exceptions::{
    PyFileExistsError, PyFileNotFoundError, PyOSError, PyRuntimeError, PyValueError,
};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;

static EMPTY: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static FULL: PyOnceLock<Py<PyType>> = PyOnceLock::new();

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

/// Maps a core error to the exception the standard library would raise.
pub(crate) fn to_py(py: Python<'_>, name: &str, e: procq::Error) -> PyErr {
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
