//! `await q.get_async()`, `put_async`, `join_async`: the core's futures
//! (see `procq::GetFuture`) awaited in PyO3 coroutines on the running
//! asyncio loop.
//!
//! While a call waits, the event loop runs other tasks: the future
//! registers a waker with the core's waiter thread, which, when the queue
//! changes, takes the GIL and schedules the coroutine again with
//! `call_soon_threadsafe`. Cancelling the task drops the future, and a
//! future takes (or puts) its item only in the poll that completes it, so
//! a cancelled call loses nothing. Decoding and encoding happen with the
//! GIL, in the poll that completes (or starts) the call.

use std::time::Duration;

use pyo3::prelude::*;

use crate::core::Core;
use crate::item::{build, encode, finish};

/// `timeout=` as the core's futures take it: `None` waits forever, zero
/// (or less, as in `multiprocessing`) does not wait.
fn timeout_of(timeout: Option<f64>) -> PyResult<Option<Duration>> {
    match timeout {
        None => Ok(None),
        Some(t) if t.is_nan() => Err(pyo3::exceptions::PyValueError::new_err(
            "timeout must not be NaN",
        )),
        Some(t) if t <= 0.0 => Ok(Some(Duration::ZERO)),
        // Too far away to represent: forever.
        Some(t) => Ok(Duration::try_from_secs_f64(t).ok()),
    }
}

impl Core {
    pub(crate) async fn get_async(&self, timeout: Option<f64>) -> PyResult<Py<PyAny>> {
        self.check_open()?;
        let got = self.raw.get_async(timeout_of(timeout)?).await;
        Python::attach(|py| match got {
            Ok(bytes) => {
                let built = build(py, &bytes, &self.codec, false)?;
                Ok(finish(py, built, &self.codec)?.unbind())
            }
            Err(e) => Err(self.err(py, e)),
        })
    }

    pub(crate) async fn put_async(&self, obj: Py<PyAny>, timeout: Option<f64>) -> PyResult<()> {
        self.check_open()?;
        let timeout = timeout_of(timeout)?;
        let bytes = Python::attach(|py| -> PyResult<Vec<u8>> {
            Ok(encode(obj.bind(py), &self.codec)?.to_vec())
        })?;
        let put = self.raw.put_async(&bytes, timeout).await;
        Python::attach(|py| put.map_err(|e| self.err(py, e)))
    }

    /// `True` once every task is done; `False` if `timeout` ran out first
    /// (as `join(timeout)`).
    pub(crate) async fn join_async(&self, timeout: Option<f64>) -> PyResult<bool> {
        let Some(jq) = &self.joiner else {
            return Err(pyo3::exceptions::PyRuntimeError::new_err(
                "not a JoinableQueue",
            ));
        };
        match jq.join_async(timeout_of(timeout)?).await {
            Ok(()) => Ok(true),
            Err(procq::Error::Timeout | procq::Error::LockBusy { .. }) => Ok(false),
            Err(e) => Python::attach(|py| Err(self.err(py, e))),
        }
    }
}
