//! [`JoinableQueue<T>`]: a [`Queue<T>`] that counts unfinished tasks.

use std::ops::Deref;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::Result;
use crate::layout::Kind;
use crate::queue::{is_redis_url, open_redis, Builder, Queue};
use crate::raw::RawQueue;
use crate::shared::{Block, Expect, Shared};

/// A [`Queue<T>`] with task accounting, like Python's
/// `multiprocessing.JoinableQueue`: every `put` adds an unfinished task,
/// [`task_done`](Self::task_done) finishes one, and [`join`](Self::join)
/// waits until none are left, across all processes.
///
/// All of `Queue`'s methods are available through `Deref`.
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

impl<T> Deref for JoinableQueue<T> {
    type Target = Queue<T>;
    fn deref(&self) -> &Queue<T> {
        &self.queue
    }
}

impl<T: Serialize + DeserializeOwned + 'static> JoinableQueue<T> {
    /// Creates a joinable queue of at most `maxsize` items (0 = unbounded).
    ///
    /// ```
    /// let q = procq::JoinableQueue::<u8>::new(4)?;
    /// assert_eq!(q.maxsize(), 4);
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn new(maxsize: usize) -> Result<JoinableQueue<T>> {
        Builder::new().maxsize(maxsize).build_joinable()
    }

    /// Opens an existing joinable queue by name.
    ///
    /// ```
    /// let q = procq::JoinableQueue::<u8>::new(0)?;
    /// let same = procq::JoinableQueue::<u8>::open(q.name())?;
    /// assert!(procq::JoinableQueue::<u8>::open(procq::Queue::<u8>::new(0)?.name()).is_err());
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn open(name: &str) -> Result<JoinableQueue<T>> {
        if is_redis_url(name) {
            return Ok(JoinableQueue::from_queue(Queue::from_backend(open_redis(
                name,
                Kind::Joinable,
                Some(Kind::Joinable),
                crate::codec::fingerprint::<T>(),
                None,
            )?)));
        }
        let expect = Expect {
            kind: Some(Kind::Joinable),
            fingerprint: crate::codec::fingerprint::<T>(),
        };
        Ok(JoinableQueue::from_queue(Queue::from_raw(
            RawQueue::from_shared(Shared::open(name, expect)?),
        )))
    }

    /// Opens the joinable queue `name` (a shared-memory name or a Redis
    /// URL), creating it with this `maxsize` if it does not exist (see
    /// [`Queue::open_or_create`]).
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
        if is_redis_url(name) {
            return Ok(JoinableQueue::from_queue(Queue::from_backend(open_redis(
                name,
                Kind::Joinable,
                Some(Kind::Joinable),
                crate::codec::fingerprint::<T>(),
                Some(maxsize as u64),
            )?)));
        }
        loop {
            match Builder::new().name(name).maxsize(maxsize).build_joinable() {
                Err(crate::Error::AlreadyExists(_)) => {}
                other => return other,
            }
            match JoinableQueue::open(name) {
                Err(crate::Error::NotFound(_)) => continue,
                other => return other,
            }
        }
    }

    pub(crate) fn from_queue(queue: Queue<T>) -> JoinableQueue<T> {
        JoinableQueue { queue }
    }
}

impl<T> JoinableQueue<T> {
    /// Marks one task (an item got from the queue) as done.
    ///
    /// Fails with [`Error::TaskDoneTooOften`](crate::Error::TaskDoneTooOften)
    /// if every item that was got is already done.
    ///
    /// ```
    /// let q = procq::JoinableQueue::<u8>::new(0)?;
    /// assert!(matches!(q.task_done(), Err(procq::Error::TaskDoneTooOften)));
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn task_done(&self) -> Result<()> {
        self.queue.handle.task_done()
    }

    /// Number of tasks put and not yet done (items in the queue included).
    ///
    /// ```
    /// let q = procq::JoinableQueue::new(0)?;
    /// q.put(&1u8)?;
    /// assert_eq!(q.unfinished_tasks()?, 1);
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn unfinished_tasks(&self) -> Result<u64> {
        self.queue.handle.unfinished()
    }

    /// Blocks until every item ever put has been marked done.
    ///
    /// ```
    /// let q = procq::JoinableQueue::<u8>::new(0)?;
    /// q.join()?; // nothing put: returns at once
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn join(&self) -> Result<()> {
        self.join_block(Block::Forever)
    }

    /// Like [`join`](Self::join), but gives up after `timeout` with
    /// [`Error::Full`](crate::Error::Full) (tasks are still outstanding).
    ///
    /// ```
    /// # use std::time::Duration;
    /// let q = procq::JoinableQueue::new(0)?;
    /// q.put(&1u8)?;
    /// assert!(q.join_timeout(Duration::from_millis(10)).is_err());
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn join_timeout(&self, timeout: Duration) -> Result<()> {
        self.join_block(Block::timeout(timeout))
    }

    /// Like [`join`](Self::join), but gives up at `deadline`.
    ///
    /// ```
    /// # use std::time::{Duration, Instant};
    /// let q = procq::JoinableQueue::<u8>::new(0)?;
    /// q.join_deadline(Instant::now() + Duration::from_millis(10))?;
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn join_deadline(&self, deadline: Instant) -> Result<()> {
        self.join_block(Block::Until(deadline))
    }
}

impl<T> JoinableQueue<T> {
    fn join_block(&self, block: Block) -> Result<()> {
        self.queue.handle.join(block)
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
