//! # procq — Python's `multiprocessing.Queue`, done right, in Rust
//!
//! A process-safe FIFO queue in shared memory. Many processes (and threads)
//! put to and get from one queue at once; items are any
//! `T: Serialize + DeserializeOwned`, encoded with postcard.
//!
//! ```
//! use procq::Queue;
//!
//! let q = Queue::new(0)?;            // maxsize 0 = unbounded
//! q.put(&"Data A".to_owned())?;
//! q.put(&"Data B".to_owned())?;
//! assert_eq!(q.get()?, "Data A");    // retrieved in the order added
//! assert_eq!(q.get()?, "Data B");
//! # Ok::<(), procq::Error>(())
//! ```
//!
//! Another process joins the queue with [`Queue::open`]`(name)`; a queue
//! also serializes as its name, so it can be handed to a child process as an
//! argument.
//!
//! What procq adds to Python's queue:
//! - no feeder thread: `put` has finished when it returns, so `empty()` is
//!   immediately false and exiting right after `put` never deadlocks;
//! - [`Queue::qsize`] is exact on every platform;
//! - a process killed at any instant, even holding the lock, never leaves
//!   the queue locked or corrupt (a robust futex lock plus an atomic
//!   commit, see the `sync` and `layout` modules and the README's
//!   "Guarantees"), and every call with a timeout returns in time even if
//!   another process is stopped holding the lock ([`Error::LockBusy`]);
//! - futex-based waiting with monotonic-clock timeouts, and no syscall when
//!   nobody waits.
//!
//! # Processes
//!
//! [`Process`] (from the `procq-process` crate, re-exported here) runs a
//! function in a new OS process, like Python's `multiprocessing.Process`;
//! queues go in its arguments as they are:
//!
//! ```
//! use procq::{Process, Queue};
//!
//! fn producer(q: Queue<Option<String>>) {
//!     for i in 0..3 {
//!         q.put(&Some(format!("Job-{i}"))).unwrap();
//!     }
//!     q.put(&None).unwrap(); // stop signal
//! }
//!
//! fn consumer(q: Queue<Option<String>>) -> usize {
//!     let mut n = 0;
//!     while let Some(_job) = q.get().unwrap() {
//!         n += 1;
//!     }
//!     n
//! }
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     procq::init(); // first line of main: a re-executed child runs its target here
//!     let q = Queue::new(0)?;
//!     let mut p1 = Process::new(producer, (q.clone(),));
//!     let mut p2 = Process::new(consumer, (q.clone(),));
//!     p1.start()?;
//!     p2.start()?;
//!     p1.join()?;
//!     assert_eq!(p2.join()?, 3);
//!     Ok(())
//! }
//! ```
//!
//! # Where things are
//!
//! Each backend sits behind one seam, `backend/mod.rs`, which holds every
//! `match` on where a queue lives (its module docs draw the module graph):
//! shared memory in `backend/shm/`, Redis in `backend/redis/` (the
//! `redis` feature). Above it, [`RawQueue`] holds the backend and [`Queue`] and
//! [`JoinableQueue`] encode and decode; [`Address`] is the one place that
//! tells a name from a URL.
//!
//! Linux only for now; the OS-specific parts are in `backend/shm/`:
//! `segment` (segments), `sigbus` (surviving truncated segments), `sync`
//! (futex lock and event counts) and `liveness` (file locks), and in
//! `procq-process`'s `entry` (how a `Process` child finds its target).

#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(any(test, feature = "testing"))]
#[doc(hidden)]
#[path = "fuzzing.rs"]
pub mod __fuzzing;
mod address;
mod backend;
mod batch;
mod block;
mod builder;
mod codec;
mod error;
mod future;
mod inspect;
mod iter;
mod joinable;
mod kind;
mod queue;
mod raw;
mod stats;

pub use address::{validate_name, Address, RedisUrl, ShmName, MAX_NAME_LEN};
pub use builder::Builder;
pub use error::{CodecError, Error, Result};
pub use future::{GetFuture, JoinFuture, PutFuture};
#[cfg(feature = "redis")]
pub use inspect::list_redis;
pub use inspect::{collect_garbage, collect_garbage_report, list, remove, stats, Garbage};
pub use iter::Iter;
pub use joinable::JoinableQueue;
pub use kind::Kind;
pub use procq_process::{init, test_support, Process, ProcessError, StartMethod, Target};
pub use queue::Queue;
pub use raw::RawQueue;
pub use stats::Stats;

/// The README's Rust examples, compiled and run as doc tests (so that the
/// quickstart a newcomer copies always works).
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
