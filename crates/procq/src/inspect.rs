//! Read-outs of queues for tools and tests: statistics, listing, removal and
//! garbage collection of queues whose processes all died.
//!
//! Inspection maps a queue without joining it: the inspecting process is
//! not counted as a user and does not keep the queue alive.

use crate::error::{Error, Result};
use crate::layout::Kind;
use crate::shared::Shared;
use crate::shm::{self, Segment};

/// Everything procq knows about one queue at one instant.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Queue name.
    pub name: String,
    /// `Queue` or `JoinableQueue`.
    pub kind: Kind,
    /// Item bound; 0 = unbounded.
    pub maxsize: u64,
    /// Items in the queue.
    pub items: u64,
    /// Tasks put and not yet done (joinable queues; else equals `items`).
    pub unfinished_tasks: u64,
    /// Ring bytes in use (records, headers and padding).
    pub bytes_used: u64,
    /// Current ring size in bytes.
    pub capacity_bytes: u64,
    /// Largest ring size in bytes.
    pub max_capacity_bytes: u64,
    /// Memory actually backing the segment (header included).
    pub resident_bytes: u64,
    /// Live processes attached.
    pub attached_processes: usize,
    /// Dead processes still recorded (reclaimed on the next sweep).
    pub dead_processes: usize,
    /// Whether the queue outlives its processes.
    pub persistent: bool,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_unix_ms: u64,
    /// Item type fingerprint (0 = untyped).
    pub fingerprint: u64,
    /// Items put since creation (approximate after a crash: a process
    /// killed right after its commit may not have counted its last item).
    pub items_put: u64,
    /// Items got since creation.
    pub items_got: u64,
    /// Payload bytes put since creation.
    pub bytes_put: u64,
    /// Payload bytes got since creation.
    pub bytes_got: u64,
    /// Puts that had to wait (approximate).
    pub blocked_puts: u64,
    /// Gets that had to wait (approximate).
    pub blocked_gets: u64,
    /// Waits that timed out (approximate).
    pub timeouts: u64,
    /// Lock recoveries after a holder died.
    pub recoveries: u64,
    /// Dead processes whose slots were reclaimed.
    pub reclaimed_processes: u64,
}

pub(crate) fn stats_of(shared: &Shared) -> Result<Stats> {
    let snap = shared.snapshot()?;
    let s = snap.state;
    Ok(Stats {
        name: shared.name().to_owned(),
        kind: shared.kind(),
        maxsize: shared.maxsize(),
        items: s.ring.count,
        unfinished_tasks: s.unfinished,
        bytes_used: s.ring.used(),
        capacity_bytes: s.ring.cap,
        max_capacity_bytes: snap.max_capacity,
        resident_bytes: snap.resident_bytes,
        attached_processes: snap.attached,
        dead_processes: snap.dead,
        persistent: snap.persistent,
        created_unix_ms: snap.created_unix_ms,
        fingerprint: snap.fingerprint,
        items_put: snap.traffic[0],
        bytes_put: snap.traffic[1],
        items_got: snap.traffic[2],
        bytes_got: snap.traffic[3],
        blocked_puts: snap.blocked_puts,
        blocked_gets: snap.blocked_gets,
        timeouts: snap.timeouts,
        recoveries: snap.recoveries,
        reclaimed_processes: snap.reclaimed,
    })
}

/// Statistics of the queue called `name`, without attaching to it.
///
/// Takes the queue's lock for an exact read-out, waiting at most about a
/// second: a queue whose lock another live process keeps (one stopped
/// inside its critical section, say) gives [`Error::LockBusy`].
///
/// ```
/// let q = procq::Queue::new(0)?;
/// q.put(&5u8)?;
/// let st = procq::stats(q.name())?;
/// assert_eq!((st.items, st.attached_processes), (1, 1));
/// # Ok::<(), procq::Error>(())
/// ```
///
/// With the `redis` feature, `name` may be a queue URL: the Redis queue's
/// fields are filled in (consumers holding leases count as attached
/// processes) and the shared-memory ones are 0. Nothing is created.
pub fn stats(name: &str) -> Result<Stats> {
    if crate::queue::is_redis_url(name) {
        #[cfg(feature = "redis")]
        return crate::redis_backend::stats(name);
        #[cfg(not(feature = "redis"))]
        return Err(crate::queue::redis_disabled(name));
    }
    stats_of(&Shared::inspect(name)?)
}

/// Names of all procq queues on this machine (valid or not).
///
/// ```
/// let q = procq::Queue::<u8>::new(0)?;
/// assert!(procq::list()?.iter().any(|n| n == q.name()));
/// # Ok::<(), procq::Error>(())
/// ```
pub fn list() -> Result<Vec<String>> {
    shm::list_names().map_err(|e| Error::io("listing /dev/shm", e))
}

/// URLs of the procq queues in one Redis database, `server` being
/// `redis://[user:password@]host:port/db` (sorted; only with the `redis`
/// feature).
///
/// ```no_run
/// for url in procq::list_redis("redis://127.0.0.1:6379/0")? {
///     println!("{url}");
/// }
/// # Ok::<(), procq::Error>(())
/// ```
#[cfg(feature = "redis")]
pub fn list_redis(server: &str) -> Result<Vec<String>> {
    crate::redis_backend::list(server)
}

/// Removes a queue's name at once, whoever uses it. Processes that have it
/// open keep working with it; nobody can open it any more. A queue whose
/// lock is wedged (held by a stopped process) is removed too, after about
/// a second.
///
/// ```
/// let name = format!("doc-remove-{}", std::process::id());
/// let q = procq::Builder::new().name(&name).build::<u8>()?;
/// procq::remove(&name)?;
/// assert!(procq::Queue::<u8>::open(&name).is_err());
/// # Ok::<(), procq::Error>(())
/// ```
///
/// With the `redis` feature, `name` may be a queue URL: every key of that
/// queue (items, items in flight, bookkeeping) is deleted.
pub fn remove(name: &str) -> Result<()> {
    if crate::queue::is_redis_url(name) {
        #[cfg(feature = "redis")]
        return crate::redis_backend::remove(name);
        #[cfg(not(feature = "redis"))]
        return Err(crate::queue::redis_disabled(name));
    }
    // Only a segment this process may use is removed (never another user's,
    // never through a symbolic link), and only while the name refers to the
    // file that was checked.
    let removed = match Shared::inspect(name) {
        Ok(shared) => shared.remove()?,
        Err(
            e @ (Error::NotFound(_) | Error::PermissionDenied { .. } | Error::InvalidName { .. }),
        ) => return Err(e),
        // Not a usable queue (foreign magic, other version, never
        // initialized): still ours to remove.
        Err(_) => Segment::remove_unusable(name)?,
    };
    if removed {
        Ok(())
    } else {
        Err(Error::NotFound(name.to_owned()))
    }
}

/// Removes every queue whose processes are all dead (and that is not
/// persistent); returns their names. A queue with any live user is never
/// touched. Never blocks on one queue: a queue whose lock another live
/// process keeps (one stopped inside its critical section, say) is skipped
/// after about a second, and the others are still collected (see
/// [`collect_garbage_report`] to learn which were skipped and why).
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
/// ```
/// let report = procq::collect_garbage_report()?;
/// for (name, why) in &report.skipped {
///     eprintln!("skipped {name}: {why}");
/// }
/// # Ok::<(), procq::Error>(())
/// ```
pub fn collect_garbage_report() -> Result<Garbage> {
    let mut report = Garbage::default();
    for name in list()? {
        // An inspection attachment: its lock waits give up after ~1 s.
        let outcome = Shared::inspect(&name).and_then(|shared| shared.collect_if_orphaned());
        match outcome {
            Ok(true) => report.removed.push(name),
            Ok(false) => {}
            // Removed meanwhile by someone else: nothing to report.
            Err(Error::NotFound(_)) => {}
            Err(e) => report.skipped.push((name, e)),
        }
    }
    Ok(report)
}
