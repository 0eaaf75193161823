//! The one error type of the crate.

use std::io;
use std::time::Duration;

/// What can go wrong with a queue operation.
///
/// The three unit variants mirror Python's `queue.Empty`, `queue.Full` and the
/// `ValueError` raised on a closed queue; the others carry what went wrong
/// underneath. A failed `put` never consumes the item: the caller passed
/// `&T` and still owns it.
///
/// ```
/// let q = procq::Queue::<u32>::new(1)?;
/// q.put(&1)?;
/// assert!(matches!(q.put_nowait(&2), Err(procq::Error::Full)));
/// assert_eq!(q.get()?, 1);
/// assert!(matches!(q.get_nowait(), Err(procq::Error::Empty)));
/// # Ok::<(), procq::Error>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `get_nowait` found the queue empty, or `get_timeout` ran out of time.
    #[error("queue is empty")]
    Empty,
    /// `put_nowait` found the queue full, or `put_timeout` ran out of time.
    #[error("queue is full")]
    Full,
    /// The handle was closed with `close()`; other handles are unaffected.
    #[error("queue handle is closed")]
    Closed,
    /// The queue was shut down ([`Queue::shutdown`](crate::Queue::shutdown),
    /// by any process): a `put` fails with it at once, a `get` once the
    /// items left are drained (at once after an immediate shutdown). It is
    /// the end of the stream: [`Queue::iter`](crate::Queue::iter) ends on
    /// it, and Python raises `queue.ShutDown`. A queue stays shut down.
    ///
    /// ```
    /// let q = procq::Queue::new(0)?;
    /// q.put(&1u8)?;
    /// q.shutdown(false)?;
    /// assert!(matches!(q.put(&2), Err(procq::Error::ShutDown)));
    /// assert_eq!(q.get()?, 1); // what was put before is still delivered
    /// assert!(matches!(q.get(), Err(procq::Error::ShutDown)));
    /// # Ok::<(), procq::Error>(())
    /// ```
    #[error("queue is shut down")]
    ShutDown,
    /// `join_timeout` or `join_deadline` ran out of time while tasks were
    /// still unfinished (nothing was changed).
    ///
    /// ```
    /// # use std::time::Duration;
    /// let q = procq::JoinableQueue::new(0)?;
    /// q.put(&1u8)?;
    /// assert!(matches!(q.join_timeout(Duration::from_millis(1)), Err(procq::Error::Timeout)));
    /// # Ok::<(), procq::Error>(())
    /// ```
    #[error("timed out with tasks still unfinished")]
    Timeout,
    /// An operating-system call failed (shared memory, mapping, futex).
    #[error("{context}: {source}")]
    Io {
        /// What procq was doing.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A queue's Redis server could not be reached, dropped the connection
    /// or did not answer in time (the `redis` feature). `context` names
    /// the server (never its password); `source.kind()` tells a refused
    /// connection (`ConnectionRefused`) from a timeout (`TimedOut`) or a
    /// lost one (`ConnectionReset`). The next call reconnects.
    ///
    /// ```
    /// let err = procq::Error::Redis {
    ///     context: "redis connect to redis://127.0.0.1:6379/0".into(),
    ///     source: std::io::ErrorKind::ConnectionRefused.into(),
    /// };
    /// assert!(err.to_string().starts_with("redis connect"));
    /// ```
    #[error("{context}: {source}")]
    Redis {
        /// What procq was doing, and with which server.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The item could not be serialized (`put`) or deserialized (`get`).
    ///
    /// A failed `put` leaves the queue unchanged; a failed `get` has removed
    /// the undecodable item, so the next `get` sees the next item.
    #[error("codec error: {0}")]
    Codec(CodecError),
    /// The encoded item is larger than the queue can ever hold.
    #[error("item of {size} bytes exceeds the queue's limit of {limit} bytes")]
    TooLarge {
        /// Encoded size of the item, in bytes.
        size: u64,
        /// Largest encoded item the queue accepts, in bytes.
        limit: u64,
    },
    /// No queue of that name exists (or it is being removed).
    #[error("no queue named {0:?}")]
    NotFound(String),
    /// A queue of that name already exists.
    #[error("a queue named {0:?} already exists")]
    AlreadyExists(String),
    /// The name is not a valid queue name.
    #[error("invalid queue name {name:?}: {reason}")]
    InvalidName {
        /// The rejected name.
        name: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// The shared memory is not a procq queue this version can use, was made
    /// for another item type or kind, or failed a consistency check.
    #[error("invalid queue {name:?}: {reason}")]
    InvalidQueue {
        /// Name of the queue.
        name: String,
        /// What check failed.
        reason: String,
    },
    /// The segment behind the name may not be used by this process: it is
    /// owned by another user, readable or writable by group or others, not
    /// a regular file, a symbolic link, or has more than one name. A queue
    /// is shared by the processes of one user (effective uid); anything
    /// else in `/dev/shm` is refused without being mapped, locked or
    /// removed. Tools map it like a permission error (the `procq` command
    /// exits with code 2, Python raises `PermissionError`).
    ///
    /// ```
    /// let err = procq::Error::PermissionDenied {
    ///     name: "jobs".into(),
    ///     reason: "owned by uid 65534, not by this process's uid 0".into(),
    /// };
    /// assert!(err.to_string().contains("owned by uid 65534"));
    /// ```
    #[error("queue {name:?} refused: {reason}")]
    PermissionDenied {
        /// Name of the queue.
        name: String,
        /// What is wrong with the segment (owner, mode, file type).
        reason: String,
    },
    /// This queue's backend cannot do that (yet): today, only
    /// [`RawQueue::get_with_or_leave`](crate::RawQueue::get_with_or_leave)
    /// (and the `get_if` built on it) on a Redis queue. Nothing was
    /// changed. Python raises `NotImplementedError`; the `procq` command
    /// exits with code 1.
    ///
    /// ```
    /// let err = procq::Error::Unsupported {
    ///     what: "shutdown",
    ///     backend: "redis",
    /// };
    /// assert_eq!(err.to_string(), "shutdown is not supported by the redis backend yet");
    /// ```
    #[error("{what} is not supported by the {backend} backend yet")]
    Unsupported {
        /// The operation refused.
        what: &'static str,
        /// The backend that refused it.
        backend: &'static str,
    },
    /// `task_done()` was called more times than there were items.
    #[error("task_done() called too many times")]
    TaskDoneTooOften,
    /// The queue's lock stayed held by another live process until the call's
    /// deadline: a call with a timeout (or `_nowait`, or an inspection such
    /// as [`stats`](crate::stats)) gives up after its timeout, or after about
    /// a second if that is shorter, instead of waiting on a holder that does
    /// not let go — typically one stopped (SIGSTOP, Ctrl-Z, a debugger)
    /// inside its critical section. Nothing was changed; retrying later is
    /// safe. A holder that *died* never causes this: its lock is recovered.
    #[error(
        "queue {name:?} is locked by process {pid} (waited {:.1} s; is it stopped?)",
        waited.as_secs_f64()
    )]
    LockBusy {
        /// Name of the queue.
        name: String,
        /// Pid of the holder in its own PID namespace (0 if unknown): in a
        /// container it may differ from what `ps` shows outside.
        pid: u32,
        /// How long the call waited for the lock.
        waited: Duration,
    },
}

/// Why an item could not be encoded or decoded ([`Error::Codec`]). Its
/// message says what went wrong; the encoding library's own error type is
/// not part of procq's API.
///
/// ```
/// let q = procq::RawQueue::new(0)?;
/// q.put(&[0xff, 0xfe])?; // not the encoding of a String
/// let typed = procq::Queue::<String>::open(q.name())?;
/// let Err(procq::Error::Codec(e)) = typed.get() else { panic!() };
/// assert!(!e.to_string().is_empty());
/// # Ok::<(), procq::Error>(())
/// ```
#[derive(Debug)]
pub struct CodecError(postcard::Error);

impl std::fmt::Display for CodecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for CodecError {}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An item that did not encode or decode.
    pub(crate) fn codec(e: postcard::Error) -> Self {
        Error::Codec(CodecError(e))
    }

    pub(crate) fn io(context: impl Into<String>, source: impl Into<io::Error>) -> Self {
        Error::Io {
            context: context.into(),
            source: source.into(),
        }
    }

    pub(crate) fn denied(name: &str, reason: impl Into<String>) -> Self {
        Error::PermissionDenied {
            name: name.to_owned(),
            reason: reason.into(),
        }
    }

    pub(crate) fn invalid(name: &str, reason: impl Into<String>) -> Self {
        Error::InvalidQueue {
            name: name.to_owned(),
            reason: reason.into(),
        }
    }
}
