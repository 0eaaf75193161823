//! [`JoinableQueue<T>`]: a [`Queue<T>`] that counts unfinished tasks.

use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::address::Address;
use crate::backend::{New, Open};
use crate::codec;
use crate::error::Result;
use crate::iter::Iter;
use crate::kind::Kind;
use crate::queue::Queue;
use crate::raw::RawQueue;
use crate::stats::Stats;
#[cfg(doc)]
use crate::Error;

/// A [`Queue<T>`] with task accounting, like Python's
/// `multiprocessing.JoinableQueue`: every `put` adds an unfinished task,
/// [`task_done`](Self::task_done) finishes one, and [`join`](Self::join)
/// waits until none are left, across all processes.
///
/// It has every method of `Queue` (each forwards to it; see there for
/// details), and [`as_queue`](Self::as_queue) lends it where a `&Queue<T>`
/// is wanted.
///
/// A process that exits or dies after `get` but before `task_done` has its
/// tasks written off (counted as done) once procq notices, so `join` never
/// waits forever for a dead worker; the item itself is lost, as with any
/// consumer that dies holding an item.
///
/// ```
/// let q = procq::JoinableQueue::new(0)?;
/// q.put(&"job".to_owned())?;
/// let job: String = q.get()?;
/// assert_eq!(job, "job");
/// q.task_done()?;
/// q.join()?; // returns at once: every task is done
/// # Ok::<(), procq::Error>(())
/// ```
pub struct JoinableQueue<T> {
    /// The underlying queue handle.
    queue: Queue<T>,
}

impl<T> Clone for JoinableQueue<T> {
    fn clone(&self) -> Self {
        JoinableQueue {
            queue: self.queue.clone(),
        }
    }
}

impl<T> std::fmt::Debug for JoinableQueue<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("JoinableQueue").field(&self.queue).finish()
    }
}

impl<T: Serialize + DeserializeOwned + 'static> JoinableQueue<T> {
    /// Creates a joinable queue of at most `maxsize` items (0 = unbounded).
    ///
    /// # Errors
    ///
    /// As [`Queue::new`].
    ///
    /// ```
    /// let q = procq::JoinableQueue::<u8>::new(4)?;
    /// assert_eq!(q.maxsize(), 4);
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn new(maxsize: usize) -> Result<JoinableQueue<T>> {
        let new = New::with_maxsize(Kind::Joinable, codec::fingerprint::<T>(), maxsize);
        Ok(JoinableQueue::from_queue(Queue::from_raw(
            RawQueue::create(None, &new)?,
        )))
    }

    /// Opens an existing joinable queue by name or URL; never creates one.
    ///
    /// # Errors
    ///
    /// As [`Queue::open`]; a plain (not joinable) queue is refused with
    /// [`Error::InvalidQueue`].
    ///
    /// ```
    /// let q = procq::JoinableQueue::<u8>::new(0)?;
    /// let same = procq::JoinableQueue::<u8>::open(q.name())?;
    /// assert!(procq::JoinableQueue::<u8>::open(procq::Queue::<u8>::new(0)?.name()).is_err());
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn open(name: &str) -> Result<JoinableQueue<T>> {
        JoinableQueue::open_with(name, None)
    }

    /// Opens the joinable queue `name` (a shared-memory name or a Redis
    /// URL), creating it with this `maxsize` if it does not exist (see
    /// [`Queue::open_or_create`]).
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open) (without `NotFound`).
    ///
    /// ```
    /// let name = format!("doc-joinable-ooc-{}", std::process::id());
    /// let q = procq::JoinableQueue::<u8>::open_or_create(&name, 0)?;
    /// q.put(&1)?;
    /// let same = procq::JoinableQueue::<u8>::open_or_create(&name, 0)?;
    /// assert_eq!(same.get()?, 1);
    /// same.task_done()?;
    /// q.join()?;
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn open_or_create(name: &str, maxsize: usize) -> Result<JoinableQueue<T>> {
        JoinableQueue::open_with(name, Some(maxsize))
    }

    fn open_with(name: &str, create: Option<usize>) -> Result<JoinableQueue<T>> {
        let open = Open {
            kind: Kind::Joinable,
            require: Some(Kind::Joinable),
            fingerprint: codec::fingerprint::<T>(),
            create,
        };
        Ok(JoinableQueue::from_queue(Queue::from_raw(
            RawQueue::open_with(name, open)?,
        )))
    }

    pub(crate) fn from_queue(queue: Queue<T>) -> JoinableQueue<T> {
        JoinableQueue { queue }
    }

    /// [`Queue::put`]: adds an unfinished task.
    ///
    /// # Errors
    ///
    /// As [`Queue::put`].
    ///
    /// ```
    /// let q = procq::JoinableQueue::new(0)?;
    /// q.put(&1u8)?;
    /// assert_eq!(q.unfinished_tasks()?, 1);
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn put(&self, item: &T) -> Result<()> {
        self.queue.put(item)
    }

    /// [`Queue::put_timeout`].
    ///
    /// # Errors
    ///
    /// As [`Queue::put_timeout`].
    ///
    /// ```
    /// # use std::time::Duration;
    /// let q = procq::JoinableQueue::new(1)?;
    /// q.put(&1u8)?;
    /// assert!(matches!(q.put_timeout(&2, Duration::from_millis(5)), Err(procq::Error::Full)));
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn put_timeout(&self, item: &T, timeout: Duration) -> Result<()> {
        self.queue.put_timeout(item, timeout)
    }

    /// [`Queue::put_deadline`].
    ///
    /// # Errors
    ///
    /// As [`Queue::put_deadline`].
    ///
    /// ```
    /// # use std::time::{Duration, Instant};
    /// let q = procq::JoinableQueue::new(1)?;
    /// q.put_deadline(&1u8, Instant::now() + Duration::from_secs(1))?;
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn put_deadline(&self, item: &T, deadline: Instant) -> Result<()> {
        self.queue.put_deadline(item, deadline)
    }

    /// [`Queue::put_nowait`].
    ///
    /// # Errors
    ///
    /// As [`Queue::put_nowait`].
    ///
    /// ```
    /// let q = procq::JoinableQueue::new(1)?;
    /// q.put_nowait(&1u8)?;
    /// assert!(matches!(q.put_nowait(&2), Err(procq::Error::Full)));
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn put_nowait(&self, item: &T) -> Result<()> {
        self.queue.put_nowait(item)
    }

    /// [`Queue::put_many`]: one unfinished task per item.
    ///
    /// # Errors
    ///
    /// As [`Queue::put_many`].
    ///
    /// ```
    /// let q = procq::JoinableQueue::new(0)?;
    /// q.put_many(&[1u8, 2, 3])?;
    /// assert_eq!(q.unfinished_tasks()?, 3);
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn put_many<'a, I>(&self, items: I) -> Result<()>
    where
        I: IntoIterator<Item = &'a T>,
        T: 'a,
    {
        self.queue.put_many(items)
    }

    /// [`Queue::get`]: the task stays unfinished until
    /// [`task_done`](Self::task_done).
    ///
    /// # Errors
    ///
    /// As [`Queue::get`] (an item that does not decode is counted done).
    ///
    /// ```
    /// let q = procq::JoinableQueue::new(0)?;
    /// q.put(&5u8)?;
    /// assert_eq!(q.get()?, 5);
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn get(&self) -> Result<T> {
        self.queue.get()
    }

    /// [`Queue::get_timeout`].
    ///
    /// # Errors
    ///
    /// As [`Queue::get_timeout`].
    ///
    /// ```
    /// # use std::time::Duration;
    /// let q = procq::JoinableQueue::<u8>::new(0)?;
    /// assert!(matches!(q.get_timeout(Duration::from_millis(5)), Err(procq::Error::Empty)));
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn get_timeout(&self, timeout: Duration) -> Result<T> {
        self.queue.get_timeout(timeout)
    }

    /// [`Queue::get_deadline`].
    ///
    /// # Errors
    ///
    /// As [`Queue::get_deadline`].
    ///
    /// ```
    /// # use std::time::{Duration, Instant};
    /// let q = procq::JoinableQueue::<u8>::new(0)?;
    /// assert!(q.get_deadline(Instant::now() + Duration::from_millis(5)).is_err());
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn get_deadline(&self, deadline: Instant) -> Result<T> {
        self.queue.get_deadline(deadline)
    }

    /// [`Queue::get_nowait`].
    ///
    /// # Errors
    ///
    /// As [`Queue::get_nowait`].
    ///
    /// ```
    /// let q = procq::JoinableQueue::<u8>::new(0)?;
    /// assert!(matches!(q.get_nowait(), Err(procq::Error::Empty)));
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn get_nowait(&self) -> Result<T> {
        self.queue.get_nowait()
    }

    /// [`Queue::get_if`]: an item taken is a task to mark done; an item
    /// left is not.
    ///
    /// # Errors
    ///
    /// As [`Queue::get_if`].
    ///
    /// ```
    /// let q = procq::JoinableQueue::new(0)?;
    /// q.put(&7u32)?;
    /// assert_eq!(q.get_if(None, |n| *n > 10)?, None);
    /// assert_eq!(q.get_if(None, |_| true)?, Some(7));
    /// q.task_done()?;
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn get_if(
        &self,
        timeout: Option<Duration>,
        take: impl FnOnce(&T) -> bool,
    ) -> Result<Option<T>> {
        self.queue.get_if(timeout, take)
    }

    /// [`Queue::get_many`]: one task per item (finish them with
    /// [`task_done`](Self::task_done)).
    ///
    /// # Errors
    ///
    /// As [`Queue::get_many`].
    ///
    /// ```
    /// let q = procq::JoinableQueue::new(0)?;
    /// q.put_many(&[1u8, 2])?;
    /// assert_eq!(q.get_many(10)?, [1, 2]);
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn get_many(&self, max: usize) -> Result<Vec<T>> {
        self.queue.get_many(max)
    }

    /// [`Queue::get_many_timeout`].
    ///
    /// # Errors
    ///
    /// As [`Queue::get_many_timeout`].
    ///
    /// ```
    /// # use std::time::Duration;
    /// let q = procq::JoinableQueue::<u8>::new(0)?;
    /// assert!(q.get_many_timeout(5, Duration::from_millis(5)).is_err());
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn get_many_timeout(&self, max: usize, timeout: Duration) -> Result<Vec<T>> {
        self.queue.get_many_timeout(max, timeout)
    }

    /// [`Queue::get_many_deadline`].
    ///
    /// # Errors
    ///
    /// As [`Queue::get_many_deadline`].
    ///
    /// ```
    /// # use std::time::{Duration, Instant};
    /// let q = procq::JoinableQueue::<u8>::new(0)?;
    /// assert!(q.get_many_deadline(5, Instant::now() + Duration::from_millis(5)).is_err());
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn get_many_deadline(&self, max: usize, deadline: Instant) -> Result<Vec<T>> {
        self.queue.get_many_deadline(max, deadline)
    }

    /// [`Queue::get_many_nowait`].
    ///
    /// # Errors
    ///
    /// As [`Queue::get_many_nowait`].
    ///
    /// ```
    /// let q = procq::JoinableQueue::<u8>::new(0)?;
    /// assert!(matches!(q.get_many_nowait(5), Err(procq::Error::Empty)));
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn get_many_nowait(&self, max: usize) -> Result<Vec<T>> {
        self.queue.get_many_nowait(max)
    }

    /// [`Queue::iter`]: the items until the queue is shut down and
    /// drained; each is a task to finish with [`task_done`](Self::task_done).
    ///
    /// ```
    /// let q = procq::JoinableQueue::new(0)?;
    /// q.put_many(&[1u8, 2])?;
    /// q.shutdown(false)?;
    /// for job in &q {
    ///     let _job: u8 = job?;
    ///     q.task_done()?;
    /// }
    /// q.join()?;
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn iter(&self) -> Iter<'_, T> {
        self.queue.iter()
    }

    /// [`Queue::try_iter`]: the items there are now.
    ///
    /// ```
    /// let q = procq::JoinableQueue::new(0)?;
    /// q.put(&1u8)?;
    /// assert_eq!(q.try_iter().count(), 1);
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn try_iter(&self) -> Iter<'_, T> {
        self.queue.try_iter()
    }
}

impl<T> JoinableQueue<T> {
    /// This queue as a plain [`Queue<T>`] handle (the same handle: closing
    /// one closes the other), for code that takes a `&Queue<T>`.
    ///
    /// ```
    /// fn depth(q: &procq::Queue<u8>) -> usize { q.qsize() }
    /// let q = procq::JoinableQueue::new(0)?;
    /// q.put(&1u8)?;
    /// assert_eq!(depth(q.as_queue()), 1);
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn as_queue(&self) -> &Queue<T> {
        &self.queue
    }

    /// Marks one task (an item got from the queue) as done.
    ///
    /// On Redis acknowledgement is by item: this marks done the oldest item
    /// the calling thread got through this handle (the handle's oldest if
    /// that thread got none), so threads sharing a handle never finish each
    /// other's items.
    ///
    /// # Errors
    ///
    /// [`Error::TaskDoneTooOften`] if every item that was got is already
    /// done; [`Error::LockBusy`] if another process keeps the queue's lock
    /// for more than about a second.
    ///
    /// ```
    /// let q = procq::JoinableQueue::<u8>::new(0)?;
    /// assert!(matches!(q.task_done(), Err(procq::Error::TaskDoneTooOften)));
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn task_done(&self) -> Result<()> {
        self.queue.raw.task_done()
    }

    /// Marks `n` tasks done at once: like `n` calls of
    /// [`task_done`](Self::task_done), in one lock hold on shared memory and
    /// one round trip on Redis, so that a consumer of
    /// [`get_many`](Self::get_many) batches acknowledges at batch speed.
    ///
    /// # Errors
    ///
    /// [`Error::TaskDoneTooOften`], marking none, if fewer than `n` tasks
    /// can be marked (on Redis: fewer than `n` items got through this handle
    /// and not yet done).
    ///
    /// ```
    /// let q = procq::JoinableQueue::new(0)?;
    /// q.put_many(&[1u8, 2, 3])?;
    /// let batch = q.get_many(10)?;
    /// q.task_done_many(batch.len())?;
    /// q.join()?;
    /// assert!(matches!(q.task_done_many(1), Err(procq::Error::TaskDoneTooOften)));
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn task_done_many(&self, n: usize) -> Result<()> {
        self.queue.raw.task_done_many(n)
    }

    /// Number of tasks put and not yet done (items in the queue included).
    ///
    /// # Errors
    ///
    /// As [`Queue::stats`].
    ///
    /// ```
    /// let q = procq::JoinableQueue::new(0)?;
    /// q.put(&1u8)?;
    /// assert_eq!(q.unfinished_tasks()?, 1);
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn unfinished_tasks(&self) -> Result<u64> {
        self.queue.raw.unfinished_tasks()
    }

    /// Blocks until every item ever put has been marked done.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after [`close`](Self::close).
    ///
    /// ```
    /// let q = procq::JoinableQueue::<u8>::new(0)?;
    /// q.join()?; // nothing put: returns at once
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn join(&self) -> Result<()> {
        self.queue.raw.join()
    }

    /// Like [`join`](Self::join), waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] if tasks are still outstanding then, and the
    /// errors of [`join`](Self::join).
    ///
    /// ```
    /// # use std::time::Duration;
    /// let q = procq::JoinableQueue::new(0)?;
    /// q.put(&1u8)?;
    /// assert!(matches!(q.join_timeout(Duration::from_millis(10)), Err(procq::Error::Timeout)));
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn join_timeout(&self, timeout: Duration) -> Result<()> {
        self.queue.raw.join_timeout(timeout)
    }

    /// Like [`join`](Self::join), waiting until `deadline`.
    ///
    /// # Errors
    ///
    /// As [`join_timeout`](Self::join_timeout).
    ///
    /// ```
    /// # use std::time::{Duration, Instant};
    /// let q = procq::JoinableQueue::<u8>::new(0)?;
    /// q.join_deadline(Instant::now() + Duration::from_millis(10))?;
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn join_deadline(&self, deadline: Instant) -> Result<()> {
        self.queue.raw.join_deadline(deadline)
    }

    /// [`Queue::shutdown`]: puts fail from now on, gets once the queue is
    /// drained; with `immediate` the items left are dropped and counted
    /// done, so [`join`](Self::join) returns once the items already got
    /// are done.
    ///
    /// # Errors
    ///
    /// As [`Queue::shutdown`].
    ///
    /// ```
    /// let q = procq::JoinableQueue::new(0)?;
    /// q.put_many(&[1u8, 2, 3])?;
    /// q.shutdown(true)?;
    /// assert_eq!(q.unfinished_tasks()?, 0);
    /// q.join()?;
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn shutdown(&self, immediate: bool) -> Result<()> {
        self.queue.shutdown(immediate)
    }

    /// [`Queue::is_shutdown`].
    ///
    /// ```
    /// let q = procq::JoinableQueue::<u8>::new(0)?;
    /// q.shutdown(false)?;
    /// assert!(q.is_shutdown());
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn is_shutdown(&self) -> bool {
        self.queue.is_shutdown()
    }

    /// [`Queue::qsize`].
    ///
    /// ```
    /// let q = procq::JoinableQueue::new(0)?;
    /// q.put(&1u8)?;
    /// assert_eq!(q.qsize(), 1);
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn qsize(&self) -> usize {
        self.queue.qsize()
    }

    /// [`Queue::empty`].
    ///
    /// ```
    /// assert!(procq::JoinableQueue::<u8>::new(0)?.empty());
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn empty(&self) -> bool {
        self.queue.empty()
    }

    /// [`Queue::full`].
    ///
    /// ```
    /// let q = procq::JoinableQueue::new(1)?;
    /// q.put(&1u8)?;
    /// assert!(q.full());
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn full(&self) -> bool {
        self.queue.full()
    }

    /// [`Queue::len`].
    ///
    /// ```
    /// assert_eq!(procq::JoinableQueue::<u8>::new(0)?.len(), 0);
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// [`Queue::is_empty`].
    ///
    /// ```
    /// assert!(procq::JoinableQueue::<u8>::new(0)?.is_empty());
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// [`Queue::is_full`].
    ///
    /// ```
    /// assert!(!procq::JoinableQueue::<u8>::new(1)?.is_full());
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn is_full(&self) -> bool {
        self.queue.is_full()
    }

    /// [`Queue::capacity`].
    ///
    /// ```
    /// assert_eq!(procq::JoinableQueue::<u8>::new(3)?.capacity(), Some(3));
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn capacity(&self) -> Option<usize> {
        self.queue.capacity()
    }

    /// [`Queue::maxsize`].
    ///
    /// ```
    /// assert_eq!(procq::JoinableQueue::<u8>::new(0)?.maxsize(), 0);
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn maxsize(&self) -> usize {
        self.queue.maxsize()
    }

    /// [`Queue::name`]: pass it to [`open`](Self::open) in another process.
    ///
    /// ```
    /// let q = procq::JoinableQueue::<u8>::new(0)?;
    /// assert!(procq::JoinableQueue::<u8>::open(q.name()).is_ok());
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn name(&self) -> &str {
        self.queue.name()
    }

    /// [`Queue::address`].
    ///
    /// ```
    /// let q = procq::JoinableQueue::<u8>::new(0)?;
    /// assert!(matches!(q.address(), procq::Address::Shm(_)));
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn address(&self) -> Address {
        self.queue.address()
    }

    /// [`Queue::display_name`].
    ///
    /// ```
    /// let q = procq::JoinableQueue::<u8>::new(0)?;
    /// assert_eq!(q.display_name(), q.name());
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn display_name(&self) -> std::borrow::Cow<'_, str> {
        self.queue.display_name()
    }

    /// [`Queue::close`]: closes this handle only.
    ///
    /// ```
    /// let q = procq::JoinableQueue::<u8>::new(0)?;
    /// q.close();
    /// assert!(matches!(q.put(&1), Err(procq::Error::Closed)));
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn close(&self) {
        self.queue.close()
    }

    /// [`Queue::is_closed`].
    ///
    /// ```
    /// let q = procq::JoinableQueue::<u8>::new(0)?;
    /// q.close();
    /// assert!(q.is_closed());
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn is_closed(&self) -> bool {
        self.queue.is_closed()
    }

    /// [`Queue::stats`].
    ///
    /// # Errors
    ///
    /// As [`Queue::stats`].
    ///
    /// ```
    /// let q = procq::JoinableQueue::new(0)?;
    /// q.put(&1u8)?;
    /// assert_eq!(q.stats()?.unfinished_tasks, 1);
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn stats(&self) -> Result<Stats> {
        self.queue.stats()
    }
}

impl<T> Serialize for JoinableQueue<T> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.queue.serialize(s)
    }
}

impl<'de, T: Serialize + DeserializeOwned + 'static> Deserialize<'de> for JoinableQueue<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        JoinableQueue::open(&name).map_err(serde::de::Error::custom)
    }
}

impl<'a, T: Serialize + DeserializeOwned + 'static> IntoIterator for &'a JoinableQueue<T> {
    type Item = Result<T>;
    type IntoIter = Iter<'a, T>;

    /// [`JoinableQueue::iter`].
    fn into_iter(self) -> Iter<'a, T> {
        self.iter()
    }
}
