//! Read-outs of queues for tools and tests: statistics, listing, removal and
//! garbage collection of queues whose processes all died. Each takes an
//! address and leaves the backend's part to [`backend`](crate::backend).
//!
//! Inspection never joins a queue: the inspecting process is not counted
//! as a user and does not keep the queue alive.

use crate::address::Address;
use crate::backend;
use crate::error::{Error, Result};
use crate::stats::Stats;

/// Statistics of the queue called `name`, without attaching to it.
///
/// Takes the queue's lock for an exact read-out, waiting at most about a
/// second.
///
/// With the `redis` feature, `name` may be a queue URL: the Redis queue's
/// fields are filled in (consumers holding leases count as attached
/// processes) and the shared-memory ones are 0. Nothing is created.
///
/// # Errors
///
/// [`Error::NotFound`] if there is no such queue; [`Error::LockBusy`] if
/// another live process keeps its lock (one stopped inside its critical
/// section, say); [`Error::InvalidQueue`] for a segment that is not a
/// usable queue; [`Error::Redis`] if a Redis server cannot be reached.
///
/// ```
/// let q = procq::Queue::new(0)?;
/// q.put(&5u8)?;
/// let st = procq::stats(q.name())?;
/// assert_eq!((st.items, st.attached_processes), (1, 1));
/// # Ok::<(), procq::Error>(())
/// ```
pub fn stats(name: &str) -> Result<Stats> {
    backend::stats(&name.parse::<Address>()?)
}

/// Names of all procq queues on this machine (valid or not).
///
/// # Errors
///
/// [`Error::Io`] if `/dev/shm` cannot be read.
///
/// ```
/// let q = procq::Queue::<u8>::new(0)?;
/// assert!(procq::list()?.iter().any(|n| n == q.name()));
/// # Ok::<(), procq::Error>(())
/// ```
pub fn list() -> Result<Vec<String>> {
    backend::shm::list_names()
}

/// URLs of the procq queues in one Redis database, `server` being
/// `redis://[user:password@]host:port/db` (sorted; only with the `redis`
/// feature).
///
/// # Errors
///
/// [`Error::InvalidName`] for a URL that is not a database's;
/// [`Error::Redis`] if the server cannot be reached.
///
/// ```no_run
/// for url in procq::list_redis("redis://127.0.0.1:6379/0")? {
///     println!("{url}");
/// }
/// # Ok::<(), procq::Error>(())
/// ```
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub fn list_redis(server: &str) -> Result<Vec<String>> {
    backend::list_redis(server)
}

/// Removes a queue's name at once, whoever uses it. Processes that have it
/// open keep working with it; nobody can open it any more. A queue whose
/// lock is wedged (held by a stopped process) is removed too, after about
/// a second.
///
/// With the `redis` feature, `name` may be a queue URL: every key of that
/// queue (items, items in flight, bookkeeping) is deleted.
///
/// # Errors
///
/// [`Error::NotFound`] if there is no such queue;
/// [`Error::PermissionDenied`] for a segment of another user (it is left
/// alone); [`Error::Redis`] if a Redis server cannot be reached.
///
/// ```
/// let name = format!("doc-remove-{}", std::process::id());
/// let q = procq::Builder::new().name(&name).build::<u8>()?;
/// procq::remove(&name)?;
/// assert!(procq::Queue::<u8>::open(&name).is_err());
/// # Ok::<(), procq::Error>(())
/// ```
pub fn remove(name: &str) -> Result<()> {
    backend::remove(&name.parse::<Address>()?)
}

/// Removes every queue whose processes are all dead (and that is not
/// persistent); returns their names. A queue with any live user is never
/// touched. Never blocks on one queue: a queue whose lock another live
/// process keeps (one stopped inside its critical section, say) is skipped
/// after about a second, and the others are still collected (see
/// [`collect_garbage_report`] to learn which were skipped and why).
///
/// # Errors
///
/// [`Error::Io`] if `/dev/shm` cannot be read.
///
/// ```
/// let q = procq::Queue::<u8>::new(0)?;
/// let removed = procq::collect_garbage()?;
/// assert!(!removed.iter().any(|n| n == q.name()));
/// # Ok::<(), procq::Error>(())
/// ```
pub fn collect_garbage() -> Result<Vec<String>> {
    Ok(collect_garbage_report()?.removed)
}

/// What [`collect_garbage_report`] did.
///
/// ```
/// let report = procq::Garbage::default();
/// assert!(report.removed.is_empty() && report.skipped.is_empty());
/// ```
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct Garbage {
    /// Queues removed: every process that used them is dead.
    pub removed: Vec<String>,
    /// Queues that could not be examined, with the reason: a lock held
    /// too long by a live process ([`Error::LockBusy`]), a file that is not
    /// a valid queue, ... They were left alone.
    pub skipped: Vec<(String, Error)>,
}

/// Like [`collect_garbage`], and also says which queues were skipped and
/// why.
///
/// # Errors
///
/// [`Error::Io`] if `/dev/shm` cannot be read.
///
/// ```
/// let report = procq::collect_garbage_report()?;
/// for (name, why) in &report.skipped {
///     eprintln!("skipped {name}: {why}");
/// }
/// # Ok::<(), procq::Error>(())
/// ```
pub fn collect_garbage_report() -> Result<Garbage> {
    let (removed, skipped) = backend::shm::collect_garbage()?;
    Ok(Garbage { removed, skipped })
}
