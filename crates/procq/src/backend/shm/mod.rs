//! The shared-memory backend: a queue in a POSIX shared-memory segment
//! (`/dev/shm/procq-<name>`) that the processes of one user on this
//! machine map and use at once.
//!
//! [`Handle`] is what a [`Backend::Shm`](super::Backend) holds: one
//! handle's view of the process's attachment ([`Shared`]), and its own
//! `closed` flag. Everything else is the attachment and its parts, layered
//! so that each module imports only the ones below it:
//!
//! ```text
//! mod.rs      Handle: one handle; fork-safe re-attach; what Backend calls
//! attach.rs   create, open, inspect, detach; the per-process registry
//! ops.rs      put, get, task_done, join, shutdown (on an attachment)
//! fast.rs     a small item's put and get in one function (lock to commit)
//! poll.rs     the same as polls, for futures: try, else register a waker
//! inspect.rs  read-outs, removal, garbage collection
//! wait.rs     Waiter: spin, then sleep on an event count
//! watch.rs    Watchers: threads that wake futures (event counts, deadlines)
//! locked.rs   the lock held: recovery, commit, journal, ring edits
//! capacity.rs the lock held: growth, keeping pages, shrinking when idle
//! pop.rs      the lock held: the general pop (and its accounting)
//! take.rs     the lock held: taking a large item to read without it
//! shared.rs   Shared: one attachment's fields and shared checks
//! liveness.rs liveness tokens (open-file-description locks)
//! layout.rs   the header: identity, lock, state cells, slots, tokens
//! segment.rs  named segments: open, map, reserve, release, unlink
//! sigbus.rs   surviving the truncation of a mapped file
//! ring.rs     the ring buffer of records (pure arithmetic, proptested)
//! sync.rs     the robust futex lock and futex event counts
//! ```
//!
//! Porting to another OS means replacing `segment`, `sigbus`, `sync` and
//! `liveness`; the rest is portable Rust over atomics.

mod attach;
mod capacity;
mod fast;
#[cfg(test)]
mod hostile_tests;
mod inspect;
pub(crate) mod layout;
mod liveness;
mod locked;
mod ops;
mod poll;
mod pop;
mod ring;
mod segment;
mod shared;
mod sigbus;
mod sync;
mod take;
mod wait;
mod watch;

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use crate::block::Block;
use crate::codec::Encoded;
use crate::error::{Error, Result};
use crate::kind::Kind;
use crate::stats::Stats;

use attach::{CreateOptions, Expect};
use liveness::fork_generation;
pub(crate) use ops::BATCH_BYTES;
pub(crate) use poll::Park;
pub(crate) use shared::Shared;
use shared::{MAX_CAPACITY_LIMIT, MIN_CAPACITY_LIMIT};
#[cfg(any(test, feature = "testing"))]
pub(crate) use {
    capacity::{KeepStep, KEEP_KILL_AT},
    locked::Verdict,
    ops::{LoanStop, TakeStop, GROWTH_PATIENCE_MS},
};
#[cfg(any(test, feature = "testing"))]
pub(crate) use {ring::Memory, segment::DataArea};

pub(crate) use inspect::{collect_garbage, list_names, remove, stats};

/// Default initial ring size: small, so an idle queue costs little.
const DEFAULT_CAPACITY: u64 = 256 * 1024;

/// What a new shared-memory queue should be ([`Builder`](crate::Builder)'s
/// options that concern it).
#[derive(Debug, Clone)]
pub(crate) struct New {
    pub(crate) kind: Kind,
    pub(crate) fingerprint: u64,
    /// Item bound; 0 = unbounded.
    pub(crate) maxsize: u64,
    /// Initial ring size in bytes, if not the default.
    pub(crate) capacity: Option<u64>,
    /// Largest ring size in bytes, if not the default.
    pub(crate) max_bytes: Option<u64>,
    pub(crate) persistent: bool,
}

impl New {
    /// The creation parameters, with the sizes rounded and bounded.
    fn options(&self) -> CreateOptions {
        let max_capacity = self
            .max_bytes
            .unwrap_or_else(|| segment::shm_fs_size().max(1 << 30))
            .clamp(MIN_CAPACITY_LIMIT, MAX_CAPACITY_LIMIT)
            .next_power_of_two();
        CreateOptions {
            kind: self.kind,
            fingerprint: self.fingerprint,
            maxsize: self.maxsize,
            min_capacity: self
                .capacity
                .unwrap_or(DEFAULT_CAPACITY)
                .clamp(MIN_CAPACITY_LIMIT, max_capacity)
                .next_power_of_two(),
            max_capacity,
            persistent: self.persistent,
        }
    }
}

/// A fresh name for a queue created without one.
fn unique_name() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "q-{:x}-{:x}-{:x}",
        std::process::id(),
        (nanos as u64) & 0xffff_ffff_ffff,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// The per-handle part of a shared-memory queue: the attachment and this
/// handle's `closed` flag.
pub(crate) struct Handle {
    /// The attachment this handle was made with (one per queue per process).
    shared: Arc<Shared>,
    /// The attachment made for a forked child that inherited this handle
    /// (it knows the fork generation it belongs to).
    forked: Mutex<Option<Arc<Shared>>>,
    /// Set by `close()`; checked by every operation on this handle.
    closed: AtomicBool,
}

impl Handle {
    fn new(shared: Arc<Shared>) -> Handle {
        Handle {
            shared,
            forked: Mutex::new(None),
            closed: AtomicBool::new(false),
        }
    }

    /// Creates a queue named `name` (a fresh unique name if `None`).
    ///
    /// # Errors
    ///
    /// [`Error::AlreadyExists`] if the name is taken; errors of the file
    /// system (a full `/dev/shm`).
    pub(crate) fn create(name: Option<&str>, new: &New) -> Result<Handle> {
        let opts = new.options();
        let shared = match name {
            Some(name) => Shared::create(name, &opts)?,
            None => loop {
                match Shared::create(&unique_name(), &opts) {
                    Err(Error::AlreadyExists(_)) => continue,
                    other => break other?,
                }
            },
        };
        Ok(Handle::new(shared))
    }

    /// Opens the existing queue `name`, which must be of `kind` (any if
    /// `None`) and made for items of `fingerprint` (any if 0, or if it is
    /// untyped).
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] if there is none; [`Error::InvalidQueue`] if it
    /// is of another kind or type, or not a usable queue;
    /// [`Error::PermissionDenied`] for a segment of another user.
    pub(crate) fn open(name: &str, kind: Option<Kind>, fingerprint: u64) -> Result<Handle> {
        Ok(Handle::new(Shared::open(
            name,
            Expect { kind, fingerprint },
        )?))
    }

    /// The attachment to use from this process.
    ///
    /// A child created by `fork()` inherits the parent's attachment, whose
    /// slot and liveness token (and so its task accounting and liveness)
    /// belong to the parent. The first use in the child attaches afresh, as
    /// the child. If that fails (the queue was removed, say), the call fails
    /// with that error: the parent's attachment is never used by the child.
    #[inline]
    fn shared(&self) -> Result<Cow<'_, Arc<Shared>>> {
        let generation = fork_generation();
        if generation == self.shared.generation() {
            return Ok(Cow::Borrowed(&self.shared));
        }
        self.forked_shared(generation)
    }

    /// `f` on [`shared`](Self::shared)'s attachment, with no `Cow` or
    /// `Arc` to handle in the common case (one process, no fork): for
    /// `put` and `get`, where that was about 25 instructions.
    #[inline(always)]
    fn on_shared<R>(&self, f: impl FnOnce(&Shared) -> Result<R>) -> Result<R> {
        let generation = fork_generation();
        let forked;
        let shared = if generation == self.shared.generation() {
            &*self.shared
        } else {
            forked = self.forked_shared(generation)?;
            &**forked
        };
        f(shared)
    }

    /// [`shared`](Self::shared) in a forked child.
    #[cold]
    fn forked_shared(&self, generation: u64) -> Result<Cow<'_, Arc<Shared>>> {
        let reattach = || {
            let any = Expect {
                kind: None,
                fingerprint: 0,
            };
            Shared::open(self.shared.name(), any)
        };
        // Another thread may have held the lock at fork time: never wait.
        let Ok(mut forked) = self.forked.try_lock() else {
            return Ok(Cow::Owned(reattach()?));
        };
        match &*forked {
            Some(shared) if shared.generation() == generation => Ok(Cow::Owned(shared.clone())),
            _ => {
                let shared = reattach()?;
                *forked = Some(shared.clone());
                Ok(Cow::Owned(shared))
            }
        }
    }

    /// The attachment (tests that look at the segment).
    #[cfg(any(test, feature = "testing"))]
    pub(crate) fn attachment(&self) -> Arc<Shared> {
        self.shared().unwrap().into_owned()
    }

    /// The queue's name (the same in every process and after a fork).
    pub(crate) fn name(&self) -> &str {
        self.shared.name()
    }

    /// The kind, fixed at creation (valid in a forked child too).
    pub(crate) fn kind(&self) -> Kind {
        self.shared.kind()
    }

    /// The item bound, fixed at creation.
    pub(crate) fn maxsize(&self) -> u64 {
        self.shared.maxsize()
    }

    /// Items in the queue; 0 if its memory is corrupt (`stats` says why).
    pub(crate) fn qsize(&self) -> usize {
        self.shared()
            .and_then(|s| s.state())
            .map_or(0, |s| s.ring.count as usize)
    }

    pub(crate) fn close(&self) {
        if !self.closed.swap(true, Ordering::SeqCst) {
            // Interrupt this handle's own blocked callers (other handles
            // wake, see nothing new, and sleep again).
            self.shared.wake_all();
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    #[inline]
    pub(crate) fn put(&self, item: &Encoded<'_>, block: Block) -> Result<()> {
        self.on_shared(|shared| shared.push(item, block, &self.closed))
    }

    pub(crate) fn put_with(
        &self,
        len: u64,
        block: Block,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<()> {
        self.shared()?.push_with(len, block, &self.closed, fill)
    }

    pub(crate) fn put_many(&self, items: &[Encoded<'_>], block: Block) -> Result<usize> {
        self.shared()?.push_many(items, block, &self.closed)
    }

    /// Removes up to `max` items (at least one), waiting per `block` for
    /// the first; `f` sees each item's bytes in shared memory and says
    /// whether to take it. A refused first item is removed all the same
    /// (a bad item never blocks the queue) and, on a joinable queue,
    /// counted done: the caller never got it, so it can never call
    /// `task_done` for it. A refused later item stays for the next call.
    #[inline]
    pub(crate) fn pop(
        &self,
        max: usize,
        block: Block,
        mut f: impl FnMut(&[u8]) -> bool,
    ) -> Result<usize> {
        self.on_shared(|shared| {
            let mut first = FirstItem::default();
            let n = shared.pop(max.max(1), block, &self.closed, |bytes| first.saw(f(bytes)))?;
            first.settle(shared);
            Ok(n)
        })
    }

    /// Lets `f` see the oldest item (waiting per `block`) and removes it
    /// only if `f` answers true; else it stays first in line.
    pub(crate) fn pop_or_leave(&self, block: Block, f: impl FnOnce(&[u8]) -> bool) -> Result<bool> {
        self.shared()?.pop_or_leave(block, &self.closed, f)
    }

    /// [`put`](Self::put) as a poll (see `poll`).
    pub(crate) fn poll_put(
        &self,
        item: &Encoded<'_>,
        block: Block,
        park: &mut Park,
        cx: &Context<'_>,
    ) -> Poll<Result<()>> {
        match self.shared() {
            Ok(shared) => shared.poll_push(item, block, park, &self.closed, cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    /// [`pop`](Self::pop) as a poll (see `poll`).
    pub(crate) fn poll_pop(
        &self,
        max: usize,
        block: Block,
        park: &mut Park,
        cx: &Context<'_>,
        mut f: impl FnMut(&[u8]) -> bool,
    ) -> Poll<Result<usize>> {
        let shared = match self.shared() {
            Ok(shared) => shared,
            Err(e) => return Poll::Ready(Err(e)),
        };
        let mut first = FirstItem::default();
        let polled = shared.poll_pop(max.max(1), block, park, &self.closed, cx, |bytes| {
            first.saw(f(bytes))
        });
        if let Poll::Ready(Ok(_)) = polled {
            first.settle(&shared);
        }
        polled
    }

    /// [`join`](Self::join) as a poll (see `poll`).
    pub(crate) fn poll_join(
        &self,
        block: Block,
        park: &mut Park,
        cx: &Context<'_>,
    ) -> Poll<Result<()>> {
        match self.shared() {
            Ok(shared) => shared.poll_join(block, park, &self.closed, cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    pub(crate) fn task_done(&self) -> Result<()> {
        self.shared()?.task_done()
    }

    pub(crate) fn task_done_many(&self, n: usize) -> Result<()> {
        self.shared()?.task_done_many(n as u64)
    }

    /// Shuts the queue down for every process (see `Locked::shut_down`).
    pub(crate) fn shutdown(&self, immediate: bool) -> Result<()> {
        if self.is_closed() {
            return Err(Error::Closed);
        }
        self.shared()?.shutdown(immediate)
    }

    /// Whether the queue was shut down; false if its memory is corrupt.
    pub(crate) fn is_shutdown(&self) -> bool {
        self.shared().is_ok_and(|s| s.header().peek_shutdown())
    }

    pub(crate) fn unfinished(&self) -> Result<u64> {
        Ok(self.shared()?.state()?.unfinished)
    }

    pub(crate) fn join(&self, block: Block) -> Result<()> {
        self.shared()?.join(block, &self.closed)
    }

    pub(crate) fn stats(&self) -> Result<Stats> {
        let shared = self.shared()?;
        inspect::stats_of(&shared)
    }
}

/// Whether the first item a `pop` saw was refused (see [`Handle::pop`]).
#[derive(Default)]
struct FirstItem {
    seen: bool,
    refused: bool,
}

impl FirstItem {
    /// Notes the answer for one item; returns it.
    fn saw(&mut self, take: bool) -> bool {
        if !self.seen {
            self.seen = true;
            self.refused = !take;
        }
        take
    }

    /// A refused first item was removed all the same: on a joinable queue
    /// it counts as done, since its getter never got it.
    fn settle(&self, shared: &Shared) {
        if self.refused && shared.kind() == Kind::Joinable {
            let _ = shared.task_done();
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        // A watcher thread may hold the attachment while it sleeps: let it
        // go now, so that the last handle detaches at once. (Not in a
        // forked child: the attachment and its threads are the parent's.)
        if self.shared.generation() == fork_generation() {
            self.shared.watchers.release(&*self.shared);
        }
    }
}

impl Clone for Handle {
    fn clone(&self) -> Self {
        // In a forked child that cannot attach, the clone keeps the parent's
        // attachment and so fails (re-attaches) on use like the original.
        let shared = self
            .shared()
            .map_or_else(|_| self.shared.clone(), Cow::into_owned);
        Handle::new(shared)
    }
}
