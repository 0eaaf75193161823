//! [`Queue<T>`]: the typed, process-safe FIFO. It encodes and decodes
//! items (see `codec`) and leaves everything else to the
//! [`RawQueue`] it wraps.

use std::fmt;
use std::marker::PhantomData;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::address::Address;
use crate::backend::{New, Open};
use crate::block::Block;
use crate::codec;
use crate::error::{Error, Result};
use crate::kind::Kind;
use crate::raw::RawQueue;
use crate::stats::Stats;

/// A process-safe FIFO queue of `T`, shared by every process that opens it.
///
/// The API is Python's `multiprocessing.Queue`: [`put`](Self::put) and
/// [`get`](Self::get) block (with `_timeout`, `_deadline` and `_nowait`
/// variants), [`qsize`](Self::qsize) is exact, and [`close`](Self::close)
/// closes this handle only. Items live in shared memory as soon as `put`
/// returns: there is no feeder thread, so a process may exit right after a
/// `put` without losing or blocking anything.
///
/// Cloning gives an independent handle to the same queue (its own `close`).
/// A queue serializes as its name, so it can be passed to another process
/// (see [`Process`](crate::Process)) and deserializes by opening it.
///
/// ```
/// use procq::Queue;
/// let q = Queue::new(0)?;          // unbounded
/// q.put(&"Data A".to_owned())?;
/// q.put(&"Data B".to_owned())?;
/// let other = Queue::<String>::open(q.name())?;   // any process can do this
/// assert_eq!(other.get()?, "Data A");
/// assert_eq!(q.get()?, "Data B");
/// # Ok::<(), procq::Error>(())
/// ```
pub struct Queue<T> {
    /// The untyped handle: shared memory, or a Redis server.
    pub(crate) raw: RawQueue,
    /// Items are encoded from `&T` and decoded into `T`.
    _item: PhantomData<fn(T) -> T>,
}

impl<T> Clone for Queue<T> {
    fn clone(&self) -> Self {
        Queue {
            raw: self.raw.clone(),
            _item: PhantomData,
        }
    }
}

impl<T> fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("name", &self.raw.display_name())
            .field("maxsize", &self.maxsize())
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl<T: Serialize + DeserializeOwned + 'static> Queue<T> {
    /// Creates a queue holding at most `maxsize` items (0 = unbounded).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the segment cannot be made (a full `/dev/shm`).
    ///
    /// ```
    /// let q = procq::Queue::<u64>::new(10)?;
    /// assert_eq!(q.maxsize(), 10);
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn new(maxsize: usize) -> Result<Queue<T>> {
        let new = New::with_maxsize(Kind::Queue, codec::fingerprint::<T>(), maxsize);
        Ok(Queue::from_raw(RawQueue::create(None, &new)?))
    }

    /// Opens an existing queue, from any process: `name` is a
    /// shared-memory name or, with the `redis` feature, a queue URL
    /// (`redis://[user:password@]host:port/<db>/<name>[?options]`, see the
    /// README). Never creates one: see [`open_or_create`](Self::open_or_create).
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] if there is none; [`Error::InvalidName`] for a
    /// name or URL that is not valid; [`Error::InvalidQueue`] if it is not
    /// a procq queue, has another layout version, or was created for a
    /// different item type; [`Error::PermissionDenied`] for a segment this
    /// process may not use; [`Error::Redis`] if a Redis server cannot be
    /// reached.
    ///
    /// ```
    /// let q = procq::Queue::<u64>::new(0)?;
    /// let same = procq::Queue::<u64>::open(q.name())?;
    /// assert!(procq::Queue::<String>::open(q.name()).is_err()); // other type
    /// assert!(matches!(procq::Queue::<u64>::open("nobody-made-me"), Err(procq::Error::NotFound(_))));
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn open(name: &str) -> Result<Queue<T>> {
        Ok(Queue::from_raw(RawQueue::open_with(
            name,
            Open {
                kind: Kind::Queue,
                require: None,
                fingerprint: codec::fingerprint::<T>(),
                create: None,
            },
        )?))
    }

    /// Opens the queue `name` (a shared-memory name or a Redis URL), creating
    /// it with this `maxsize` if it does not exist; a shared-memory queue is
    /// created non-persistent, like [`Builder::build`](crate::Builder::build).
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open) (without `NotFound`); on Redis, an existing
    /// queue with another `maxsize` is refused with [`Error::InvalidQueue`].
    ///
    /// ```
    /// let name = format!("doc-open-or-create-{}", std::process::id());
    /// let q = procq::Queue::<u8>::open_or_create(&name, 2)?;   // created
    /// let same = procq::Queue::<u8>::open_or_create(&name, 2)?; // opened
    /// q.put(&1)?;
    /// assert_eq!(same.maxsize(), 2);
    /// assert_eq!(same.get()?, 1);
    /// // With the `redis` feature, the same call takes a URL:
    /// // procq::Queue::<u8>::open_or_create("redis://127.0.0.1:6379/0/jobs", 2)?;
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn open_or_create(name: &str, maxsize: usize) -> Result<Queue<T>> {
        Ok(Queue::from_raw(RawQueue::open_with(
            name,
            Open {
                kind: Kind::Queue,
                require: None,
                fingerprint: codec::fingerprint::<T>(),
                create: Some(maxsize),
            },
        )?))
    }

    pub(crate) fn from_raw(raw: RawQueue) -> Queue<T> {
        Queue {
            raw,
            _item: PhantomData,
        }
    }

    fn put_block(&self, item: &T, block: Block) -> Result<()> {
        codec::with_encoded(item, |enc| self.raw.backend.put(&enc, block))
    }

    /// Puts an item, waiting while the queue is full.
    ///
    /// On shared memory, a large item (16 KiB or more) may also wait while
    /// consumers free space in a ring of 8 MiB or more instead of growing
    /// it, at most until nothing was freed for 20 ms ("Holding growth back"
    /// in ARCHITECTURE.md).
    ///
    /// # Errors
    ///
    /// [`Error::ShutDown`] once the queue is [shut down](Self::shutdown)
    /// (also for a call waiting when it happens);
    /// [`Error::Closed`] after [`close`](Self::close) (also for a call
    /// waiting when it happens); [`Error::Codec`] if the item does not
    /// encode; [`Error::TooLarge`] if its encoding is larger than the queue
    /// can ever hold; [`Error::InvalidQueue`] if the queue's memory is
    /// corrupt. A failed `put` leaves the queue unchanged.
    ///
    /// ```
    /// let q = procq::Queue::new(0)?;
    /// q.put(&42u32)?;
    /// assert_eq!(q.get()?, 42);
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn put(&self, item: &T) -> Result<()> {
        self.put_block(item, Block::Forever)
    }

    /// Puts an item, waiting at most `timeout` for room.
    ///
    /// # Errors
    ///
    /// [`Error::Full`] when the time runs out; [`Error::LockBusy`] if
    /// another process keeps the queue's lock past it (see there); and the
    /// errors of [`put`](Self::put).
    ///
    /// ```
    /// # use std::time::Duration;
    /// let q = procq::Queue::new(1)?;
    /// q.put(&1u8)?;
    /// assert!(matches!(q.put_timeout(&2, Duration::from_millis(10)), Err(procq::Error::Full)));
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn put_timeout(&self, item: &T, timeout: Duration) -> Result<()> {
        self.put_block(item, Block::timeout(timeout))
    }

    /// Puts an item, waiting for room until `deadline`.
    ///
    /// # Errors
    ///
    /// As [`put_timeout`](Self::put_timeout).
    ///
    /// ```
    /// # use std::time::{Duration, Instant};
    /// let q = procq::Queue::new(1)?;
    /// q.put_deadline(&1u8, Instant::now() + Duration::from_secs(1))?;
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn put_deadline(&self, item: &T, deadline: Instant) -> Result<()> {
        self.put_block(item, Block::Until(deadline))
    }

    /// Puts an item if there is room now.
    ///
    /// # Errors
    ///
    /// [`Error::Full`] if there is none, and the errors of
    /// [`put_timeout`](Self::put_timeout).
    ///
    /// ```
    /// let q = procq::Queue::new(1)?;
    /// q.put_nowait(&1u8)?;
    /// assert!(matches!(q.put_nowait(&2), Err(procq::Error::Full)));
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn put_nowait(&self, item: &T) -> Result<()> {
        self.put_block(item, Block::No)
    }

    // One variant without the `redis` feature.

    #[inline(always)]
    pub(crate) fn get_block(&self, block: Block) -> Result<T> {
        // The item and the error apart: no `Result` moved through the
        // closure (an `Error` is several words).
        let (mut out, mut bad) = (None, None);
        self.raw
            .backend
            .pop(1, block, |bytes| match codec::decode::<T>(bytes) {
                Ok(item) => {
                    out = Some(item);
                    true
                }
                Err(e) => {
                    bad = Some(e);
                    false
                }
            })?;
        match out {
            Some(item) => Ok(item),
            None => Err(bad.unwrap_or(Error::Empty)),
        }
    }

    /// Removes and returns the oldest item, waiting while the queue is empty.
    ///
    /// # Errors
    ///
    /// [`Error::Codec`] if the item cannot be decoded as `T`: it is removed
    /// anyway (and, on a joinable queue, counted done), so the next `get`
    /// sees the next item. [`Error::ShutDown`] once the queue is [shut
    /// down](Self::shutdown) and empty (also for a call waiting when it
    /// happens). [`Error::Closed`] after [`close`](Self::close)
    /// (also for a call waiting when it happens); [`Error::InvalidQueue`]
    /// if the queue's memory is corrupt.
    ///
    /// ```
    /// let q = procq::Queue::new(0)?;
    /// q.put(&"x".to_owned())?;
    /// assert_eq!(q.get()?, "x");
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn get(&self) -> Result<T> {
        self.get_block(Block::Forever)
    }

    /// Like [`get`](Self::get), waiting at most `timeout` (measured on the
    /// monotonic clock).
    ///
    /// # Errors
    ///
    /// [`Error::Empty`] when the time runs out; [`Error::LockBusy`] if
    /// another process keeps the queue's lock past it; and the errors of
    /// [`get`](Self::get).
    ///
    /// ```
    /// # use std::time::Duration;
    /// let q = procq::Queue::<u8>::new(0)?;
    /// assert!(matches!(q.get_timeout(Duration::from_millis(10)), Err(procq::Error::Empty)));
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn get_timeout(&self, timeout: Duration) -> Result<T> {
        self.get_block(Block::timeout(timeout))
    }

    /// Like [`get`](Self::get), waiting until `deadline`.
    ///
    /// # Errors
    ///
    /// As [`get_timeout`](Self::get_timeout).
    ///
    /// ```
    /// # use std::time::{Duration, Instant};
    /// let q = procq::Queue::<u8>::new(0)?;
    /// let r = q.get_deadline(Instant::now() + Duration::from_millis(5));
    /// assert!(matches!(r, Err(procq::Error::Empty)));
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn get_deadline(&self, deadline: Instant) -> Result<T> {
        self.get_block(Block::Until(deadline))
    }

    /// Removes and returns the oldest item if there is one now.
    ///
    /// # Errors
    ///
    /// [`Error::Empty`] if there is none, and the errors of
    /// [`get_timeout`](Self::get_timeout).
    ///
    /// ```
    /// let q = procq::Queue::<u8>::new(0)?;
    /// assert!(matches!(q.get_nowait(), Err(procq::Error::Empty)));
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn get_nowait(&self) -> Result<T> {
        self.get_block(Block::No)
    }

    /// Lets `take` see the oldest item and removes it only if `take`
    /// answers true (then returns `Ok(Some(item))`); otherwise the item
    /// stays first in line and the call returns `Ok(None)`. Waits up to
    /// `timeout` for an item (`None` = forever; zero = do not wait). See
    /// [`RawQueue::get_with_or_leave`](crate::RawQueue::get_with_or_leave).
    ///
    /// # Errors
    ///
    /// As [`get_timeout`](Self::get_timeout), except that an item that
    /// cannot be decoded as `T` stays in the queue too ([`Error::Codec`]);
    /// [`Error::Unsupported`] on Redis.
    ///
    /// ```
    /// let q = procq::Queue::new(0)?;
    /// q.put(&7u32)?;
    /// assert_eq!(q.get_if(None, |n| *n > 10)?, None);
    /// assert_eq!(q.get_if(None, |n| *n == 7)?, Some(7));
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn get_if(
        &self,
        timeout: Option<Duration>,
        take: impl FnOnce(&T) -> bool,
    ) -> Result<Option<T>> {
        let mut out = Ok(None);
        let block = Block::from_timeout(timeout);
        self.raw
            .backend
            .pop_or_leave(block, |bytes| match codec::decode::<T>(bytes) {
                Ok(item) => {
                    let took = take(&item);
                    if took {
                        out = Ok(Some(item));
                    }
                    took
                }
                Err(e) => {
                    out = Err(e);
                    false
                }
            })?;
        out
    }

    /// Puts every item, in order, waiting for room as needed: any
    /// iterator of `&T` (a slice, a `&Vec`, `iter()` of any collection).
    /// Items go in
    /// under as few lock acquisitions as room allows, which is much faster
    /// than one `put` each for small items.
    ///
    /// # Errors
    ///
    /// As [`put`](Self::put); an item that does not encode, or is too
    /// large, fails the call before anything is put. A shutdown while the
    /// call waits for room fails it with [`Error::ShutDown`]: the items
    /// put before stay in the queue, the rest are not put.
    ///
    /// ```
    /// let q = procq::Queue::new(0)?;
    /// q.put_many(&[1u32, 2, 3])?;
    /// let more = std::collections::VecDeque::from([4, 5]);
    /// q.put_many(&more)?;
    /// assert_eq!(q.get_many(10)?, vec![1, 2, 3, 4, 5]);
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn put_many<'a, I>(&self, items: I) -> Result<()>
    where
        I: IntoIterator<Item = &'a T>,
        T: 'a,
    {
        let (mut buf, mut ends) = (Vec::new(), Vec::new());
        codec::encode_many::<T, _>(items, &mut buf, &mut ends)?;
        let encoded = codec::split(&buf, &ends);
        self.raw
            .backend
            .put_many(&encoded, Block::Forever)
            .map(|_| ())
    }

    fn get_many_block(&self, max: usize, block: Block) -> Result<Vec<T>> {
        let mut items = Vec::new();
        let mut failed = None;
        self.raw
            .backend
            .pop(max, block, |bytes| match codec::decode::<T>(bytes) {
                Ok(v) => {
                    items.push(v);
                    true
                }
                Err(e) => {
                    if items.is_empty() {
                        failed = Some(e);
                    }
                    false
                }
            })?;
        match failed {
            Some(e) => Err(e),
            None => Ok(items),
        }
    }

    /// Removes up to `max` items at once, waiting until there is at least
    /// one. An undecodable item ends the batch: it is reported (and removed)
    /// by the next call, so no decoded item is ever dropped.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    ///
    /// ```
    /// let q = procq::Queue::new(0)?;
    /// q.put_many(&[1u8, 2, 3])?;
    /// assert_eq!(q.get_many(2)?, vec![1, 2]);
    /// assert_eq!(q.get_many(2)?, vec![3]);
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn get_many(&self, max: usize) -> Result<Vec<T>> {
        self.get_many_block(max, Block::Forever)
    }

    /// Like [`get_many`](Self::get_many), waiting at most `timeout` for
    /// the first item.
    ///
    /// # Errors
    ///
    /// As [`get_timeout`](Self::get_timeout).
    ///
    /// ```
    /// # use std::time::Duration;
    /// let q = procq::Queue::<u8>::new(0)?;
    /// assert!(q.get_many_timeout(5, Duration::from_millis(5)).is_err());
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn get_many_timeout(&self, max: usize, timeout: Duration) -> Result<Vec<T>> {
        self.get_many_block(max, Block::timeout(timeout))
    }

    /// Like [`get_many`](Self::get_many), waiting until `deadline` for the
    /// first item.
    ///
    /// # Errors
    ///
    /// As [`get_timeout`](Self::get_timeout).
    ///
    /// ```
    /// # use std::time::{Duration, Instant};
    /// let q = procq::Queue::new(0)?;
    /// q.put(&7u8)?;
    /// assert_eq!(q.get_many_deadline(5, Instant::now() + Duration::from_secs(1))?, [7]);
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn get_many_deadline(&self, max: usize, deadline: Instant) -> Result<Vec<T>> {
        self.get_many_block(max, Block::Until(deadline))
    }

    /// Like [`get_many`](Self::get_many) without waiting.
    ///
    /// # Errors
    ///
    /// [`Error::Empty`] if there is nothing, and the errors of
    /// [`get_timeout`](Self::get_timeout).
    ///
    /// ```
    /// let q = procq::Queue::<u8>::new(0)?;
    /// assert!(matches!(q.get_many_nowait(5), Err(procq::Error::Empty)));
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn get_many_nowait(&self, max: usize) -> Result<Vec<T>> {
        self.get_many_block(max, Block::No)
    }
}

impl<T> Queue<T> {
    /// Exact number of items in the queue right now (it may change as soon
    /// as this returns). Works on every platform. Returns 0 if the queue's
    /// shared memory is corrupt; [`stats`](Self::stats) reports such errors.
    ///
    /// ```
    /// let q = procq::Queue::new(0)?;
    /// q.put(&1u8)?;
    /// assert_eq!(q.qsize(), 1);
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn qsize(&self) -> usize {
        self.raw.qsize()
    }

    /// Whether the queue is empty right now. False as soon as any `put`
    /// has returned, in any process.
    ///
    /// ```
    /// let q = procq::Queue::new(0)?;
    /// assert!(q.empty());
    /// q.put(&1u8)?;
    /// assert!(!q.empty());
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn empty(&self) -> bool {
        self.qsize() == 0
    }

    /// Whether the queue holds `maxsize` items right now (never, if unbounded).
    ///
    /// ```
    /// let q = procq::Queue::new(1)?;
    /// q.put(&1u8)?;
    /// assert!(q.full());
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn full(&self) -> bool {
        let max = self.maxsize() as u64;
        max > 0 && self.qsize() as u64 >= max
    }

    /// Alias of [`qsize`](Self::qsize), as in crossbeam-channel.
    ///
    /// ```
    /// let q = procq::Queue::<u8>::new(0)?;
    /// assert_eq!(q.len(), 0);
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn len(&self) -> usize {
        self.qsize()
    }

    /// Alias of [`empty`](Self::empty).
    ///
    /// ```
    /// assert!(procq::Queue::<u8>::new(0)?.is_empty());
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.empty()
    }

    /// Alias of [`full`](Self::full).
    ///
    /// ```
    /// assert!(!procq::Queue::<u8>::new(1)?.is_full());
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn is_full(&self) -> bool {
        self.full()
    }

    /// The item bound, `None` if unbounded (crossbeam-channel's name).
    ///
    /// ```
    /// assert_eq!(procq::Queue::<u8>::new(3)?.capacity(), Some(3));
    /// assert_eq!(procq::Queue::<u8>::new(0)?.capacity(), None);
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn capacity(&self) -> Option<usize> {
        match self.maxsize() {
            0 => None,
            n => Some(n),
        }
    }

    /// The item bound given at creation; 0 means unbounded.
    ///
    /// ```
    /// assert_eq!(procq::Queue::<u8>::new(0)?.maxsize(), 0);
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn maxsize(&self) -> usize {
        self.raw.maxsize()
    }

    /// The queue's name: pass it to [`open`](Queue::open) in another process.
    ///
    /// ```
    /// let q = procq::Queue::<u8>::new(0)?;
    /// assert!(!q.name().is_empty());
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn name(&self) -> &str {
        self.raw.name()
    }

    /// Where the queue lives (see [`Address`]): its name, or its Redis
    /// URL (shown without password).
    ///
    /// ```
    /// let q = procq::Queue::<u8>::new(0)?;
    /// assert_eq!(q.address().to_string(), q.name());
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn address(&self) -> Address {
        self.raw.address()
    }

    /// The name for logs and messages: a Redis URL without its password.
    ///
    /// ```
    /// let q = procq::Queue::<u8>::new(0)?;
    /// assert_eq!(q.display_name(), q.name());
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn display_name(&self) -> std::borrow::Cow<'_, str> {
        self.raw.display_name()
    }

    /// Closes this handle: later calls on it fail with [`Error::Closed`], and
    /// calls blocked on it wake up with that error. Other handles (clones,
    /// other processes) are unaffected and items already put stay available.
    ///
    /// ```
    /// let q = procq::Queue::new(0)?;
    /// let other = q.clone();
    /// q.put(&1u8)?;
    /// q.close();
    /// assert!(matches!(q.get(), Err(procq::Error::Closed)));
    /// assert_eq!(other.get()?, 1);
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn close(&self) {
        self.raw.close();
    }

    /// Whether [`close`](Self::close) was called on this handle.
    ///
    /// ```
    /// let q = procq::Queue::<u8>::new(0)?;
    /// q.close();
    /// assert!(q.is_closed());
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn is_closed(&self) -> bool {
        self.raw.is_closed()
    }

    /// Shuts the queue down, for every process that uses it (Python 3.13's
    /// `Queue.shutdown`): from now on every [`put`](Self::put) fails with
    /// [`Error::ShutDown`], and [`get`](Self::get) hands out the items that
    /// remain, then fails with it too. Every `get` and `put` waiting in any
    /// process wakes at once. With `immediate`, the items that remain are
    /// dropped instead (on a [`JoinableQueue`](crate::JoinableQueue) they
    /// count as done, so [`join`](crate::JoinableQueue::join) returns).
    ///
    /// A queue that is shut down stays shut down, also for processes that
    /// open it later: there is no way to reopen it. To start over, remove it
    /// ([`procq::remove`](crate::remove), or when its last user lets go) and
    /// create a new queue, under the same name if you like. Calling it again
    /// is harmless; `immediate` then still drops what is left.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after [`close`](Self::close) on this handle;
    /// [`Error::LockBusy`] if another process keeps the queue's lock for
    /// more than about a second; [`Error::InvalidQueue`] if its memory is
    /// corrupt; on a Redis queue, [`Error::Redis`] if the server cannot be
    /// reached and [`Error::NotFound`] if the queue was removed.
    ///
    /// ```
    /// let q = procq::Queue::new(0)?;
    /// q.put_many(&[1u8, 2])?;
    /// q.shutdown(false)?;
    /// assert!(q.is_shutdown());
    /// assert!(matches!(q.put(&3), Err(procq::Error::ShutDown)));
    /// assert_eq!(q.get()?, 1); // what is left is still handed out
    /// q.shutdown(true)?; // ... unless it is dropped
    /// assert!(matches!(q.get(), Err(procq::Error::ShutDown)));
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn shutdown(&self, immediate: bool) -> Result<()> {
        self.raw.shutdown(immediate)
    }

    /// Whether the queue was [shut down](Self::shutdown), by any process.
    /// (A Redis queue, which cannot be shut down yet, always says no.)
    ///
    /// ```
    /// let q = procq::Queue::<u8>::new(0)?;
    /// let other = procq::Queue::<u8>::open(q.name())?;
    /// other.shutdown(false)?;
    /// assert!(q.is_shutdown());
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn is_shutdown(&self) -> bool {
        self.raw.is_shutdown()
    }

    /// A read-out of the queue's counters (see [`Stats`]).
    ///
    /// # Errors
    ///
    /// [`Error::LockBusy`] if another process keeps the lock for more than
    /// about a second; [`Error::InvalidQueue`] for corrupt memory; on
    /// Redis, [`Error::Redis`] if the server cannot be reached.
    ///
    /// ```
    /// let q = procq::Queue::new(0)?;
    /// q.put(&1u8)?;
    /// assert_eq!(q.stats()?.items, 1);
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn stats(&self) -> Result<Stats> {
        self.raw.stats()
    }
}

impl<T> Serialize for Queue<T> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de, T: Serialize + DeserializeOwned + 'static> Deserialize<'de> for Queue<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Queue::open(&name).map_err(serde::de::Error::custom)
    }
}
