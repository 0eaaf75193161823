//! Waiting: the standard library's `block`/`timeout` arguments, and
//! blocking calls cut into slices detached from the interpreter.

use std::time::{Duration, Instant};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

/// Longest stretch a blocking call stays detached before it takes the GIL
/// back to run signal handlers (Ctrl-C).
pub(crate) const SLICE: Duration = Duration::from_millis(100);

/// The slice for `join()`: longer than the core's 100 ms interval between
/// sweeps for dead consumers, which a `join` only does while it keeps
/// waiting past one (a shorter slice would end each wait just before it).
pub(crate) const JOIN_SLICE: Duration = Duration::from_millis(250);

/// The slice for a queue on a Redis server: each slice is one blocking
/// command, so a longer one means fewer round trips while idle (and Ctrl-C
/// within half a second).
pub(crate) const REMOTE_SLICE: Duration = Duration::from_millis(500);

/// How long a call may wait, from the standard library's `block` and
/// `timeout` arguments.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Wait {
    /// Do not wait (`block=False`, or a timeout ≤ 0 as in `multiprocessing`).
    Now,
    /// Wait until the deadline, or forever if `None`.
    Until(Option<Instant>),
}

impl Wait {
    pub(crate) fn new(block: bool, timeout: Option<f64>) -> PyResult<Wait> {
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

    pub(crate) fn waits(self) -> bool {
        matches!(self, Wait::Until(_))
    }
}

/// The time one detached attempt may take.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Step {
    /// Try once.
    NoWait,
    /// Wait up to this long.
    For(Duration),
}

impl Step {
    /// As the core's `Option<Duration>` ("zero" means do not wait).
    pub(crate) fn timeout(self) -> Option<Duration> {
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
pub(crate) fn blocking_sliced<T, F>(
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

/// Whether a `put` that failed with `e` may try again while
/// time is left: the queue was full, or its lock stayed held by a stopped
/// process for the core's patience (`LockBusy`), which a call that may still
/// wait sits out as the standard library's would.
pub(crate) fn is_full(e: &procq::Error) -> bool {
    matches!(e, procq::Error::Full) || is_busy(e)
}

/// Whether a `join` that failed with `e` may try again (see [`is_full`]).
pub(crate) fn is_timeout(e: &procq::Error) -> bool {
    matches!(e, procq::Error::Timeout) || is_busy(e)
}

/// Whether a `get` that failed with `e` may try again (see [`is_full`]).
pub(crate) fn is_empty(e: &procq::Error) -> bool {
    matches!(e, procq::Error::Empty) || is_busy(e)
}

/// The queue's lock is held by a live process that does not let go.
fn is_busy(e: &procq::Error) -> bool {
    matches!(e, procq::Error::LockBusy { .. })
}
