//! The backend seam: where a queue's items live, and every place the
//! backends part ways.
//!
//! A [`Backend`] is one handle's connection to its queue: a shared-memory
//! segment on this machine ([`shm`]) or a queue on a Redis server (the
//! `redis` feature; its code is in `backend/redis/`). As crossbeam-channel keeps
//! every `match` on its flavors in `channel.rs`, this module holds every
//! `match` on `Backend` and on [`Address`]: the handle types above it
//! ([`RawQueue`](crate::RawQueue), which alone holds a `Backend`, and
//! [`Queue`](crate::Queue) and [`JoinableQueue`](crate::JoinableQueue),
//! which only encode and decode) never look at which backend they use, and
//! never name a cargo feature.
//!
//! Every backend offers the same operations on the same vocabulary
//! ([`Block`] for how long to wait, [`Encoded`] items, [`Kind`],
//! [`Stats`]): put one or many, pop up to `max` through a callback that
//! sees each item's bytes, task accounting, join, close, and the
//! administrative calls on an [`Address`] (stats, remove). Adding a backend
//! is adding a folder beside `shm/` and one arm to each `match` here.
//!
//! # Module graph
//!
//! Each file imports only files below it (test modules aside; `lib.rs`
//! only declares and re-exports):
//!
//! ```text
//! builder.rs             Builder            -> joinable, queue, raw
//! joinable.rs            JoinableQueue<T>   -> queue, iter
//! iter.rs, future.rs     Iter; Get/Put/JoinFuture -> queue, raw, backend
//! queue.rs               Queue<T>           -> raw, codec
//! raw.rs, inspect.rs     RawQueue; stats/list/remove/collect_garbage
//!                                           -> backend, address
//! backend/mod.rs         Backend: every dispatch
//!                                           -> backend/shm, backend/redis, address
//!   backend/shm/mod.rs   Handle             -> attach, ops, poll, inspect
//!     attach, ops        attaching; operations   -> wait, locked
//!     poll               operations as polls     -> watch, locked
//!     watch              waiter threads for futures -> sync
//!     inspect, wait      read-outs; waiting      -> locked
//!     locked             the lock held          -> shared
//!     shared             Shared             -> layout, liveness, segment, ring, watch
//!     segment            segments           -> sigbus, address (name rules)
//!     liveness, layout   -> sync, ring;  sigbus, sync, ring: leaves
//! address.rs             Address            -> backend/redis (its URL parser)
//!   backend/redis/mod.rs RedisQueue (feature `redis`)
//! codec.rs, stats.rs, block.rs, kind.rs, error.rs: the vocabulary, leaves
//! ```
//!
//! `fuzzing.rs` (`procq::__fuzzing`, feature `testing`) sits beside
//! `lib.rs`: it drives the public API and writes `backend::shm::layout`
//! offsets.

#[cfg(feature = "redis")]
pub(crate) mod redis;
pub(crate) mod shm;

use std::task::{Context, Poll};

/// What a future keeps between polls: the shared-memory waker
/// registrations, or a Redis call under way on its worker thread (dropped
/// with the future, which cancels it: see `redis/calls.rs`).
#[derive(Default)]
pub(crate) struct Park {
    shm: shm::Park,
    #[cfg(feature = "redis")]
    redis: Option<redis::calls::Call>,
}

use std::borrow::Cow;
#[cfg(feature = "redis")]
use std::sync::atomic::Ordering;
#[cfg(feature = "redis")]
use std::sync::Arc;

use crate::address::Address;
use crate::block::Block;
use crate::codec::Encoded;
use crate::error::{Error, Result};
use crate::kind::Kind;
use crate::stats::Stats;

pub(crate) use shm::BATCH_BYTES;

#[cfg(feature = "redis")]
use redis::RedisQueue;

/// Where one handle's queue lives.
///
/// Without the `redis` feature this enum has one variant, so every `match`
/// on it compiles to the shared-memory path alone; with it, the
/// shared-memory path pays one well-predicted branch.
pub(crate) enum Backend {
    /// A shared-memory queue on this machine.
    Shm(shm::Handle),
    /// A queue on a Redis server.
    #[cfg(feature = "redis")]
    Redis(Arc<RedisQueue>),
}

/// What an opener accepts and, if it may create the queue, creates.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Open {
    /// The kind a new queue gets.
    pub(crate) kind: Kind,
    /// The kind an existing queue must have (`None`: any).
    pub(crate) require: Option<Kind>,
    /// The item type's fingerprint (0: untyped, accepts any).
    pub(crate) fingerprint: u64,
    /// `None`: open only (never create). `Some(maxsize)`: create the queue
    /// with this bound if it is missing.
    pub(crate) create: Option<usize>,
}

/// What [`Builder`](crate::Builder) asks for.
#[derive(Debug, Clone)]
pub(crate) struct New {
    pub(crate) kind: Kind,
    pub(crate) fingerprint: u64,
    /// Item bound, `None` if not set (0 for a new queue; an existing Redis
    /// queue is then taken with whatever bound it has).
    pub(crate) maxsize: Option<usize>,
    /// Initial and largest ring sizes and persistence: shared memory only.
    pub(crate) capacity: Option<u64>,
    pub(crate) max_bytes: Option<u64>,
    pub(crate) persistent: bool,
    /// Whether an existing queue of that name is an error
    /// ([`Error::AlreadyExists`]) on Redis too (shared memory always says so).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) create_new: bool,
}

impl New {
    /// A queue with every default but its bound (what `Queue::new(maxsize)`
    /// makes).
    pub(crate) fn with_maxsize(kind: Kind, fingerprint: u64, maxsize: usize) -> New {
        New {
            kind,
            fingerprint,
            maxsize: Some(maxsize),
            capacity: None,
            max_bytes: None,
            persistent: false,
            create_new: false,
        }
    }

    fn shm(&self) -> shm::New {
        shm::New {
            kind: self.kind,
            fingerprint: self.fingerprint,
            maxsize: self.maxsize.unwrap_or(0) as u64,
            capacity: self.capacity,
            max_bytes: self.max_bytes,
            persistent: self.persistent,
        }
    }
}

impl Backend {
    /// Creates a queue (a fresh shared-memory one if `address` is `None`).
    ///
    /// A shared-memory name that is taken fails with
    /// [`Error::AlreadyExists`]. A Redis queue is created if missing and
    /// otherwise opened, provided it is of `new.kind` and, if
    /// `new.maxsize` is set, has that bound; with `new.create_new` an
    /// existing one is [`Error::AlreadyExists`] too.
    pub(crate) fn create(address: Option<&Address>, new: &New) -> Result<Backend> {
        match address {
            None => Ok(Backend::Shm(shm::Handle::create(None, &new.shm())?)),
            Some(Address::Shm(name)) => Ok(Backend::Shm(shm::Handle::create(
                Some(name.as_str()),
                &new.shm(),
            )?)),
            Some(Address::Redis(url)) => {
                #[cfg(feature = "redis")]
                {
                    let maxsize = new.maxsize.map(|m| m as u64);
                    let q = RedisQueue::open(
                        url.as_str(),
                        new.kind,
                        Some(new.kind),
                        new.fingerprint,
                        maxsize,
                        if new.create_new {
                            redis::Create::New
                        } else {
                            redis::Create::IfMissing
                        },
                    );
                    Ok(Backend::Redis(Arc::new(q.map_err(redis_error)?)))
                }
                #[cfg(not(feature = "redis"))]
                match url.never {}
            }
        }
    }

    /// Opens the queue at `address`; creates it only if `open.create` says
    /// so (`open_or_create`). A missing queue is [`Error::NotFound`] on
    /// every backend.
    pub(crate) fn open(address: &Address, open: Open) -> Result<Backend> {
        match address {
            Address::Shm(name) => {
                let name = name.as_str();
                let Some(maxsize) = open.create else {
                    return Ok(Backend::Shm(shm::Handle::open(
                        name,
                        open.require,
                        open.fingerprint,
                    )?));
                };
                let new = shm::New {
                    kind: open.kind,
                    fingerprint: open.fingerprint,
                    maxsize: maxsize as u64,
                    capacity: None,
                    max_bytes: None,
                    persistent: false,
                };
                loop {
                    match shm::Handle::create(Some(name), &new) {
                        Err(Error::AlreadyExists(_)) => {}
                        other => return Ok(Backend::Shm(other?)),
                    }
                    match shm::Handle::open(name, open.require, open.fingerprint) {
                        // Removed meanwhile: create it again.
                        Err(Error::NotFound(_)) => continue,
                        other => return Ok(Backend::Shm(other?)),
                    }
                }
            }
            Address::Redis(url) => {
                #[cfg(feature = "redis")]
                {
                    // One script opens, and creates only if allowed: a
                    // plain `open` never creates, even of a queue removed
                    // meanwhile.
                    let q = RedisQueue::open(
                        url.as_str(),
                        open.kind,
                        open.require,
                        open.fingerprint,
                        open.create.map(|m| m as u64),
                        if open.create.is_some() {
                            redis::Create::IfMissing
                        } else {
                            redis::Create::Never
                        },
                    );
                    Ok(Backend::Redis(Arc::new(q.map_err(redis_error)?)))
                }
                #[cfg(not(feature = "redis"))]
                match url.never {}
            }
        }
    }

    /// The shared-memory attachment (tests of shared memory only).
    #[cfg(any(test, feature = "testing"))]
    pub(crate) fn shared(&self) -> std::sync::Arc<shm::Shared> {
        match self {
            Backend::Shm(h) => h.attachment(),
            #[cfg(feature = "redis")]
            Backend::Redis(_) => unreachable!("not a shared-memory queue"),
        }
    }

    /// The name, or the URL as given (it may hold a password: it is what
    /// another process needs to open the queue).
    pub(crate) fn name(&self) -> &str {
        match self {
            Backend::Shm(h) => h.name(),
            #[cfg(feature = "redis")]
            Backend::Redis(r) => r.url(),
        }
    }

    /// Where the queue lives (shown without a password).
    pub(crate) fn address(&self) -> Address {
        match self {
            Backend::Shm(h) => Address::shm_unchecked(h.name()),
            #[cfg(feature = "redis")]
            Backend::Redis(r) => Address::redis_unchecked(r.url()),
        }
    }

    /// The name for messages and `Debug`: never a password.
    pub(crate) fn display_name(&self) -> Cow<'_, str> {
        Address::redact(self.name())
    }

    pub(crate) fn kind(&self) -> Kind {
        match self {
            Backend::Shm(h) => h.kind(),
            #[cfg(feature = "redis")]
            Backend::Redis(r) => r.kind(),
        }
    }

    pub(crate) fn maxsize(&self) -> usize {
        match self {
            Backend::Shm(h) => h.maxsize() as usize,
            #[cfg(feature = "redis")]
            Backend::Redis(r) => r.maxsize() as usize,
        }
    }

    /// Items in the queue; 0 if its memory is corrupt or its server
    /// unreachable (`stats` reports why).
    pub(crate) fn qsize(&self) -> usize {
        match self {
            Backend::Shm(h) => h.qsize(),
            #[cfg(feature = "redis")]
            Backend::Redis(r) => r.qsize().unwrap_or(0),
        }
    }

    pub(crate) fn close(&self) {
        match self {
            Backend::Shm(h) => h.close(),
            #[cfg(feature = "redis")]
            Backend::Redis(r) => r.close(),
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        match self {
            Backend::Shm(h) => h.is_closed(),
            #[cfg(feature = "redis")]
            Backend::Redis(r) => r.closed.load(Ordering::Relaxed),
        }
    }

    /// Puts one encoded item (Redis takes it as one string).
    pub(crate) fn put(&self, item: &Encoded<'_>, block: Block) -> Result<()> {
        match self {
            Backend::Shm(h) => h.put(item, block),
            #[cfg(feature = "redis")]
            Backend::Redis(r) => {
                let put = if item.body.is_empty() {
                    r.put(&[item.head], block)
                } else {
                    r.put(&[&item.to_vec()], block)
                };
                put.map(|_| ()).map_err(redis_error)
            }
        }
    }

    /// Puts one `len`-byte item that `fill` writes (in place in shared
    /// memory for a large item; see `shm::ops`).
    pub(crate) fn put_with(
        &self,
        len: u64,
        block: Block,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<()> {
        match self {
            Backend::Shm(h) => h.put_with(len, block, fill),
            #[cfg(feature = "redis")]
            Backend::Redis(r) => {
                let mut buf = vec![0; len as usize];
                fill(&mut buf);
                r.put(&[&buf], block).map(|_| ()).map_err(redis_error)
            }
        }
    }

    /// Puts `items` in order, as many per round trip (lock hold) as room
    /// allows; returns how many went in before `block` ran out.
    pub(crate) fn put_many(&self, items: &[Encoded<'_>], block: Block) -> Result<usize> {
        match self {
            Backend::Shm(h) => h.put_many(items, block),
            #[cfg(feature = "redis")]
            Backend::Redis(r) => {
                let joined: Vec<Vec<u8>> = items.iter().map(Encoded::to_vec).collect();
                let slices: Vec<&[u8]> = joined.iter().map(Vec::as_slice).collect();
                r.put(&slices, block).map_err(redis_error)
            }
        }
    }

    /// Removes up to `max` items (at least one), waiting per `block` for the
    /// first; `f` sees each item's bytes and says whether to take it.
    /// Returns how many items were removed.
    ///
    /// The same on every backend: a refused *first* item is removed all the
    /// same (a bad item never blocks the queue) and, on a joinable queue,
    /// counted done, since the caller can never call `task_done` for it;
    /// a refused later item, and those after it, stay for the next call.
    pub(crate) fn pop(
        &self,
        max: usize,
        block: Block,
        f: impl FnMut(&[u8]) -> bool,
    ) -> Result<usize> {
        match self {
            Backend::Shm(h) => h.pop(max, block, f),
            #[cfg(feature = "redis")]
            Backend::Redis(r) => r.pop(max, block, f).map_err(redis_error),
        }
    }

    /// Lets `f` see the oldest item's bytes (waiting per `block`) and
    /// removes it only if `f` answers true; else it stays first in line.
    /// Returns `f`'s answer. Shared memory only: a Redis get moves the item
    /// before anyone sees it.
    pub(crate) fn pop_or_leave(&self, block: Block, f: impl FnOnce(&[u8]) -> bool) -> Result<bool> {
        match self {
            Backend::Shm(h) => h.pop_or_leave(block, f),
            #[cfg(feature = "redis")]
            Backend::Redis(_) => Err(Error::Unsupported {
                what: "leaving an item seen by get",
                backend: "redis",
            }),
        }
    }

    /// Shuts the queue down for every process and client (see
    /// [`Queue::shutdown`](crate::Queue::shutdown)).
    pub(crate) fn shutdown(&self, immediate: bool) -> Result<()> {
        match self {
            Backend::Shm(h) => h.shutdown(immediate),
            #[cfg(feature = "redis")]
            Backend::Redis(r) => r.shutdown(immediate).map_err(redis_error),
        }
    }

    /// Whether the queue was shut down.
    pub(crate) fn is_shutdown(&self) -> bool {
        match self {
            Backend::Shm(h) => h.is_shutdown(),
            #[cfg(feature = "redis")]
            Backend::Redis(r) => r.is_shutdown(),
        }
    }

    pub(crate) fn task_done(&self) -> Result<()> {
        match self {
            Backend::Shm(h) => h.task_done(),
            #[cfg(feature = "redis")]
            Backend::Redis(r) => r.task_done(1).map_err(redis_error),
        }
    }

    /// Marks `n` tasks done at once (one lock hold on shared memory, one
    /// round trip on Redis); [`Error::TaskDoneTooOften`], marking none, if
    /// fewer are outstanding (on Redis: held by this handle).
    pub(crate) fn task_done_many(&self, n: usize) -> Result<()> {
        match self {
            Backend::Shm(h) => h.task_done_many(n),
            #[cfg(feature = "redis")]
            Backend::Redis(r) => r.task_done(n).map_err(redis_error),
        }
    }

    pub(crate) fn unfinished(&self) -> Result<u64> {
        match self {
            Backend::Shm(h) => h.unfinished(),
            #[cfg(feature = "redis")]
            Backend::Redis(r) => r.unfinished().map_err(redis_error),
        }
    }

    /// Waits until no task is outstanding; [`Error::Timeout`] if `block`
    /// runs out first.
    pub(crate) fn join(&self, block: Block) -> Result<()> {
        match self {
            Backend::Shm(h) => h.join(block),
            #[cfg(feature = "redis")]
            Backend::Redis(r) => r.join(block).map_err(|e| match e {
                Error::Full => Error::Timeout,
                other => redis_error(other),
            }),
        }
    }

    /// [`put`](Self::put) as a poll, for futures (see `shm/poll.rs`):
    /// `Pending` changes nothing and arranges a wake-up.
    pub(crate) fn poll_put(
        &self,
        item: &Encoded<'_>,
        block: Block,
        park: &mut Park,
        cx: &Context<'_>,
    ) -> Poll<Result<()>> {
        match self {
            Backend::Shm(h) => h.poll_put(item, block, &mut park.shm, cx),
            #[cfg(feature = "redis")]
            Backend::Redis(r) => {
                let op = || redis::calls::Op::Put {
                    item: item.to_vec(),
                };
                poll_call(r, park, op, block, cx).map_ok(|_| ())
            }
        }
    }

    /// [`pop`](Self::pop) as a poll (see [`poll_put`](Self::poll_put)).
    pub(crate) fn poll_pop(
        &self,
        max: usize,
        block: Block,
        park: &mut Park,
        cx: &Context<'_>,
        f: impl FnMut(&[u8]) -> bool,
    ) -> Poll<Result<usize>> {
        match self {
            Backend::Shm(h) => h.poll_pop(max, block, &mut park.shm, cx, f),
            #[cfg(feature = "redis")]
            Backend::Redis(r) => {
                let op = || redis::calls::Op::Get { max };
                match poll_call(r, park, op, block, cx) {
                    Poll::Ready(Ok(redis::calls::Outcome::Taken(items))) => {
                        Poll::Ready(Ok(r.deliver(items, f)))
                    }
                    Poll::Ready(Ok(_)) => Poll::Ready(Err(Error::Empty)),
                    Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    /// [`join`](Self::join) as a poll (see [`poll_put`](Self::poll_put)).
    pub(crate) fn poll_join(
        &self,
        block: Block,
        park: &mut Park,
        cx: &Context<'_>,
    ) -> Poll<Result<()>> {
        match self {
            Backend::Shm(h) => h.poll_join(block, &mut park.shm, cx),
            #[cfg(feature = "redis")]
            Backend::Redis(r) => {
                let op = || redis::calls::Op::Join;
                poll_call(r, park, op, block, cx).map(|done| match done {
                    Ok(_) => Ok(()),
                    Err(Error::Full) => Err(Error::Timeout),
                    Err(e) => Err(e),
                })
            }
        }
    }

    pub(crate) fn stats(&self) -> Result<Stats> {
        match self {
            Backend::Shm(h) => h.stats(),
            #[cfg(feature = "redis")]
            Backend::Redis(r) => redis::stats(r.url()).map_err(redis_error),
        }
    }
}

/// Polls a future's Redis call, starting it on its first poll.
#[cfg(feature = "redis")]
fn poll_call(
    r: &Arc<RedisQueue>,
    park: &mut Park,
    op: impl FnOnce() -> redis::calls::Op,
    block: Block,
    cx: &Context<'_>,
) -> Poll<Result<redis::calls::Outcome>> {
    let call = match &mut park.redis {
        Some(call) => call,
        slot => match redis::calls::Call::start(r, op(), block) {
            Ok(call) => slot.insert(call),
            Err(e) => return Poll::Ready(Err(e)),
        },
    };
    call.poll(cx).map_err(redis_error)
}

impl Clone for Backend {
    fn clone(&self) -> Self {
        match self {
            Backend::Shm(h) => Backend::Shm(h.clone()),
            #[cfg(feature = "redis")]
            Backend::Redis(r) => Backend::Redis(Arc::new(r.clone_handle())),
        }
    }
}

/// Statistics of the queue at `address`, without joining it.
pub(crate) fn stats(address: &Address) -> Result<Stats> {
    match address {
        Address::Shm(name) => shm::stats(name.as_str()),
        #[cfg(feature = "redis")]
        Address::Redis(url) => redis::stats(url.as_str()).map_err(redis_error),
        #[cfg(not(feature = "redis"))]
        Address::Redis(url) => match url.never {},
    }
}

/// Removes the queue at `address` (its name, or every key of it).
pub(crate) fn remove(address: &Address) -> Result<()> {
    match address {
        Address::Shm(name) => shm::remove(name.as_str()),
        #[cfg(feature = "redis")]
        Address::Redis(url) => redis::remove(url.as_str()).map_err(redis_error),
        #[cfg(not(feature = "redis"))]
        Address::Redis(url) => match url.never {},
    }
}

/// URLs of the queues in the Redis database `server`.
#[cfg(feature = "redis")]
pub(crate) fn list_redis(server: &str) -> Result<Vec<String>> {
    redis::list(server).map_err(redis_error)
}

/// A failure of the Redis backend as the API reports it: a lost or refused
/// connection is [`Error::Redis`], not [`Error::Io`] (the backend itself
/// still speaks of `Io`; its other errors pass as they are).
#[cfg(feature = "redis")]
fn redis_error(e: Error) -> Error {
    match e {
        Error::Io { context, source } => Error::Redis { context, source },
        other => other,
    }
}
