//! [`ProcessError`]: why starting, waiting for or running a process failed.

use std::io;

#[cfg(doc)]
use crate::{init, test_support, Process};
use rustix::io::Errno;

/// Why starting, waiting for or running a [`Process`] failed.
///
/// A child's failure always reaches the parent: its panic message, its exit
/// code or the signal that killed it.
///
/// ```
/// use std::time::Duration;
///
/// fn boom() { panic!("boom") }
///
/// fn main() {
///     procq_process::init();
///     let mut p = procq_process::Process::spawn(boom, ()).unwrap();
///     match p.join_timeout(Duration::from_secs(30)) {
///         Err(procq_process::ProcessError::Panicked { message, .. }) => assert!(message.contains("boom")),
///         other => panic!("unexpected {other:?}"),
///     }
///     assert_eq!(p.exit_code(), Some(101));
/// }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProcessError {
    /// This program did not call [`init`] (or, in a test file, use
    /// [`test_support!`]) before starting a process.
    #[error(
        "procq::init() was not called: call it on the first line of main() \
         (in test files, add procq::test_support!()) before starting a Process"
    )]
    NotInitialized,
    /// The child ran its `main` instead of its target: `main` does not call
    /// [`init`] first (or not on every path).
    #[error("process {pid} did not run its target: {detail}")]
    NotDispatched {
        /// The child's process id.
        pid: u32,
        /// What the child reported, or how it ended.
        detail: String,
    },
    /// The target panicked.
    #[error("process {pid} panicked: {message}")]
    Panicked {
        /// The child's process id.
        pid: u32,
        /// The panic message, with its location (`panicked at file:line:col`).
        message: String,
    },
    /// The child exited with a non-zero code without its target returning
    /// (for example `std::process::exit(3)` in the target).
    #[error("process {pid} exited with code {code}")]
    Exited {
        /// The child's process id.
        pid: u32,
        /// The exit code.
        code: i32,
    },
    /// The child was killed by a signal ([`Process::terminate`] sends
    /// SIGTERM = 15, [`Process::kill`] SIGKILL = 9).
    #[error("process {pid} was killed by signal {signal} ({})", signal_name(*signal))]
    Signaled {
        /// The child's process id.
        pid: u32,
        /// The signal number.
        signal: i32,
    },
    /// The child could not run its target (bad arguments, a different
    /// binary, a return value that did not encode).
    #[error("process {pid} failed: {message}")]
    Failed {
        /// The child's process id.
        pid: u32,
        /// What went wrong, as the child reported it.
        message: String,
    },
    /// [`Process::join_timeout`] ran out of time; the child still runs and
    /// may be joined again or killed.
    #[error("process {pid} still running after the join timeout")]
    Timeout {
        /// The child's process id.
        pid: u32,
    },
    /// [`Process::start`] was called twice.
    #[error("process already started")]
    AlreadyStarted,
    /// The process was joined, killed or inspected before it was started.
    #[error("process not started")]
    NotStarted,
    /// The outcome was already taken by an earlier successful `join`.
    #[error("process {pid} was already joined")]
    AlreadyJoined {
        /// The child's process id.
        pid: u32,
    },
    /// The arguments did not encode, or the return value did not decode.
    #[error("{context}: {source}")]
    Codec {
        /// What procq was doing.
        context: &'static str,
        /// The postcard error.
        #[source]
        source: postcard::Error,
    },
    /// An operating-system call failed.
    #[error("{context}: {source}")]
    Io {
        /// What procq was doing.
        context: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

pub(crate) fn io_err(context: &'static str) -> impl FnOnce(io::Error) -> ProcessError {
    move |source| ProcessError::Io { context, source }
}

pub(crate) fn errno(context: &'static str) -> impl FnOnce(Errno) -> ProcessError {
    move |e| ProcessError::Io {
        context,
        source: e.into(),
    }
}

fn signal_name(signal: i32) -> &'static str {
    match signal {
        1 => "SIGHUP",
        2 => "SIGINT",
        6 => "SIGABRT",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        13 => "SIGPIPE",
        15 => "SIGTERM",
        _ => "signal",
    }
}
