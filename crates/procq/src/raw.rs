//! [`RawQueue`]: the untyped queue of byte strings, for callers who
//! serialize items themselves (other languages, the CLI, custom codecs).

use std::sync::Arc;
use std::time::Duration;

use crate::codec::Encoded;
use crate::error::{Error, Result};
use crate::layout::Kind;
use crate::queue::{is_redis_url, open_redis, Backend, Builder, Handle};
use crate::shared::{Block, Expect, Shared, BATCH_BYTES};

/// The timeout convention of the two-piece and zero-copy calls: `None`
/// waits forever, zero does not wait.
fn block_for(timeout: Option<Duration>) -> Block {
    match timeout {
        None => Block::Forever,
        Some(d) if d.is_zero() => Block::No,
        Some(d) => Block::timeout(d),
    }
}

/// A queue of byte strings: the bytes given to [`put`](Self::put) are
/// exactly the bytes [`get`](Self::get) returns, with no codec in between.
///
/// A typed [`Queue<T>`](crate::Queue) stores the postcard encoding of each
/// item; a `RawQueue` can read and write those bytes too (for `Vec<u8>` and
/// `String` that is a varint length followed by the data, see the README).
///
/// ```
/// let q = procq::RawQueue::new(0)?;
/// q.put(b"")?;
/// q.put(&[1, 2, 3])?;
/// assert_eq!(q.get()?, b"");
/// assert_eq!(q.get_nowait()?, [1, 2, 3]);
/// # Ok::<(), procq::Error>(())
/// ```
#[derive(Clone)]
pub struct RawQueue {
    /// This handle: shared memory, or a Redis server.
    handle: Backend,
}

impl std::fmt::Debug for RawQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawQueue")
            .field("name", &self.handle.display_name())
            .finish()
    }
}

impl RawQueue {
    /// Creates an untyped queue of at most `maxsize` items (0 = unbounded).
    ///
    /// ```
    /// let q = procq::RawQueue::new(2)?;
    /// assert_eq!(q.maxsize(), 2);
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn new(maxsize: usize) -> Result<RawQueue> {
        Builder::new().maxsize(maxsize).build_raw()
    }

    /// Opens any procq queue by name, whatever its item type or kind. With
    /// the `redis` feature, `name` may be a queue URL (see
    /// [`Queue::open`](crate::Queue::open)); a missing Redis queue is created
    /// unbounded.
    ///
    /// ```
    /// let q = procq::Queue::<String>::new(0)?;
    /// q.put(&"hi".to_owned())?;
    /// let raw = procq::RawQueue::open(q.name())?;
    /// assert_eq!(raw.get()?, b"\x02hi"); // postcard: length, then bytes
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn open(name: &str) -> Result<RawQueue> {
        if is_redis_url(name) {
            return Ok(RawQueue::from_backend(open_redis(
                name,
                Kind::Queue,
                None,
                0,
                None,
            )?));
        }
        Ok(RawQueue::from_shared(Shared::open(
            name,
            Expect {
                kind: None,
                fingerprint: 0,
            },
        )?))
    }

    pub(crate) fn from_shared(shared: Arc<Shared>) -> RawQueue {
        RawQueue::from_backend(Backend::Shm(Handle::new(shared)))
    }

    pub(crate) fn from_backend(handle: Backend) -> RawQueue {
        RawQueue { handle }
    }

    pub(crate) fn into_backend(self) -> Backend {
        self.handle
    }

    fn put_block(&self, bytes: &[u8], block: Block) -> Result<()> {
        self.handle.put_encoded(
            &Encoded {
                head: bytes,
                body: &[],
            },
            block,
        )
    }

    /// Puts a byte string, waiting while the queue is full.
    ///
    /// ```
    /// procq::RawQueue::new(0)?.put(b"x")?;
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn put(&self, bytes: &[u8]) -> Result<()> {
        self.put_block(bytes, Block::Forever)
    }

    /// Puts a byte string, waiting at most `timeout`; [`Error::Full`] after.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let q = procq::RawQueue::new(1)?;
    /// q.put(b"a")?;
    /// assert!(q.put_timeout(b"b", Duration::from_millis(1)).is_err());
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn put_timeout(&self, bytes: &[u8], timeout: Duration) -> Result<()> {
        self.put_block(bytes, Block::timeout(timeout))
    }

    /// Puts a byte string if there is room now, else [`Error::Full`].
    ///
    /// ```
    /// let q = procq::RawQueue::new(1)?;
    /// q.put_nowait(b"a")?;
    /// assert!(matches!(q.put_nowait(b"b"), Err(procq::Error::Full)));
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn put_nowait(&self, bytes: &[u8]) -> Result<()> {
        self.put_block(bytes, Block::No)
    }

    /// Puts one item made of two pieces, `head` then `body`, copying each
    /// straight into shared memory (no concatenation first). Waits up to
    /// `timeout` for room (`None` = forever; zero = do not wait).
    ///
    /// ```
    /// let q = procq::RawQueue::new(0)?;
    /// q.put_parts(b"tag:", b"payload", None)?;
    /// assert_eq!(q.get()?, b"tag:payload");
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn put_parts(&self, head: &[u8], body: &[u8], timeout: Option<Duration>) -> Result<()> {
        self.handle
            .put_encoded(&Encoded { head, body }, block_for(timeout))
    }

    /// Puts several byte strings in order under as few locks as possible;
    /// returns how many went in before the deadline (all of them without one).
    ///
    /// ```
    /// let q = procq::RawQueue::new(0)?;
    /// assert_eq!(q.put_many(&[b"a".as_slice(), b"b"], None)?, 2);
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn put_many(&self, items: &[&[u8]], timeout: Option<Duration>) -> Result<usize> {
        let encoded: Vec<Encoded<'_>> = items
            .iter()
            .map(|b| Encoded { head: b, body: &[] })
            .collect();
        self.put_encoded_many(&encoded, timeout)
    }

    /// [`put_many`](Self::put_many) for items made of two pieces each, `head`
    /// then `body` (see [`put_parts`](Self::put_parts)): each piece is
    /// copied straight into shared memory.
    ///
    /// ```
    /// let q = procq::RawQueue::new(0)?;
    /// let items = [(b"t:".as_slice(), b"one".as_slice()), (b"t:", b"two")];
    /// assert_eq!(q.put_many_parts(&items, None)?, 2);
    /// assert_eq!(q.get()?, b"t:one");
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn put_many_parts(
        &self,
        items: &[(&[u8], &[u8])],
        timeout: Option<Duration>,
    ) -> Result<usize> {
        let encoded: Vec<Encoded<'_>> = items
            .iter()
            .map(|&(head, body)| Encoded { head, body })
            .collect();
        self.put_encoded_many(&encoded, timeout)
    }

    // One variant without the `redis` feature.
    #[cfg_attr(not(feature = "redis"), allow(clippy::infallible_destructuring_match))]
    fn put_encoded_many(&self, items: &[Encoded<'_>], timeout: Option<Duration>) -> Result<usize> {
        let block = timeout.map_or(Block::Forever, Block::timeout);
        let h = match &self.handle {
            Backend::Shm(h) => h,
            #[cfg(feature = "redis")]
            Backend::Redis(r) => {
                let joined: Vec<Vec<u8>> = items.iter().map(Encoded::to_vec).collect();
                let slices: Vec<&[u8]> = joined.iter().map(Vec::as_slice).collect();
                return r.put(&slices, block);
            }
        };
        h.shared()?.push_many(items, block, &h.closed)
    }

    /// Calls `f` with the oldest item's bytes while they are still in shared
    /// memory (no copy), then removes the item. Waits up to `timeout`
    /// (`None` = forever; zero = do not wait). On Redis, `f` sees the bytes
    /// just received.
    ///
    /// ```
    /// let q = procq::RawQueue::new(0)?;
    /// q.put(b"hello")?;
    /// assert_eq!(q.get_with(None, |b| b.len())?, 5);
    /// # Ok::<(), procq::Error>(())
    /// ```
    // One variant without the `redis` feature.
    #[cfg_attr(not(feature = "redis"), allow(clippy::infallible_destructuring_match))]
    pub fn get_with<R>(&self, timeout: Option<Duration>, f: impl FnOnce(&[u8]) -> R) -> Result<R> {
        let block = block_for(timeout);
        let h = match &self.handle {
            Backend::Shm(h) => h,
            #[cfg(feature = "redis")]
            Backend::Redis(r) => {
                let item = r.get(1, block)?.into_iter().next().ok_or(Error::Empty)?;
                return Ok(f(&item));
            }
        };
        let mut f = Some(f);
        let mut out = None;
        h.shared()?.pop(1, block, &h.closed, |bytes| {
            out = f.take().map(|f| f(bytes));
            true
        })?;
        out.ok_or(Error::Empty)
    }

    /// Removes and returns up to `max` byte strings, waiting up to `timeout`
    /// for the first (`None` = forever; zero = do not wait). A batch stops
    /// early once it holds about a megabyte, so that large items are not all
    /// copied under one lock hold.
    ///
    /// ```
    /// let q = procq::RawQueue::new(0)?;
    /// q.put_many(&[b"a".as_slice(), b"b"], None)?;
    /// assert_eq!(q.get_many(10, None)?, vec![b"a".to_vec(), b"b".to_vec()]);
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn get_many(&self, max: usize, timeout: Option<Duration>) -> Result<Vec<Vec<u8>>> {
        let (mut buf, mut ends) = (Vec::new(), Vec::new());
        self.get_many_into(max, timeout, &mut buf, &mut ends)?;
        let mut start = 0;
        Ok(ends
            .iter()
            .map(|&end| {
                let item = buf[start..end].to_vec();
                start = end;
                item
            })
            .collect())
    }

    /// Like [`get_many`](Self::get_many), but appends the items' bytes back
    /// to back to `buf` and each item's end offset to `ends`, so that a
    /// caller who reuses the two vectors allocates nothing per item. Returns
    /// how many items it took.
    ///
    /// ```
    /// let q = procq::RawQueue::new(0)?;
    /// q.put_many(&[b"ab".as_slice(), b"c"], None)?;
    /// let (mut buf, mut ends) = (Vec::new(), Vec::new());
    /// assert_eq!(q.get_many_into(10, None, &mut buf, &mut ends)?, 2);
    /// assert_eq!((buf.as_slice(), ends.as_slice()), (b"abc".as_slice(), [2, 3].as_slice()));
    /// # Ok::<(), procq::Error>(())
    /// ```
    // One variant without the `redis` feature.
    #[cfg_attr(not(feature = "redis"), allow(clippy::infallible_destructuring_match))]
    pub fn get_many_into(
        &self,
        max: usize,
        timeout: Option<Duration>,
        buf: &mut Vec<u8>,
        ends: &mut Vec<usize>,
    ) -> Result<usize> {
        let block = block_for(timeout);
        let h = match &self.handle {
            Backend::Shm(h) => h,
            #[cfg(feature = "redis")]
            Backend::Redis(r) => {
                let items = r.get(max, block)?;
                for item in &items {
                    buf.extend_from_slice(item);
                    ends.push(buf.len());
                }
                return Ok(items.len());
            }
        };
        let mut taken = 0u64;
        h.shared()?.pop(max.max(1), block, &h.closed, |bytes| {
            // Refusing an item (never the first) leaves it in the queue.
            if taken >= BATCH_BYTES {
                return false;
            }
            taken += bytes.len() as u64;
            buf.extend_from_slice(bytes);
            ends.push(buf.len());
            true
        })
    }

    /// Removes and returns the oldest byte string, waiting while empty.
    ///
    /// ```
    /// let q = procq::RawQueue::new(0)?;
    /// q.put(b"x")?;
    /// assert_eq!(q.get()?, b"x");
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn get(&self) -> Result<Vec<u8>> {
        self.get_with(None, <[u8]>::to_vec)
    }

    /// Like [`get`](Self::get), [`Error::Empty`] after `timeout`.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let q = procq::RawQueue::new(0)?;
    /// assert!(matches!(q.get_timeout(Duration::from_millis(1)), Err(procq::Error::Empty)));
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn get_timeout(&self, timeout: Duration) -> Result<Vec<u8>> {
        self.get_with(Some(timeout.max(Duration::from_nanos(1))), <[u8]>::to_vec)
    }

    /// The oldest byte string if there is one, else [`Error::Empty`].
    ///
    /// ```
    /// assert!(procq::RawQueue::new(0)?.get_nowait().is_err());
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn get_nowait(&self) -> Result<Vec<u8>> {
        self.get_with(Some(Duration::ZERO), <[u8]>::to_vec)
    }

    /// Exact number of items (0 if the shared memory is corrupt or the
    /// Redis server unreachable).
    ///
    /// ```
    /// assert_eq!(procq::RawQueue::new(0)?.qsize(), 0);
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn qsize(&self) -> usize {
        self.handle.qsize()
    }

    /// The item bound; 0 = unbounded.
    ///
    /// ```
    /// assert_eq!(procq::RawQueue::new(0)?.maxsize(), 0);
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn maxsize(&self) -> usize {
        self.handle.maxsize()
    }

    /// The queue's name (its URL on Redis, see
    /// [`Queue::name`](crate::Queue::name)).
    ///
    /// ```
    /// assert!(procq::RawQueue::new(0)?.name().starts_with("q-"));
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn name(&self) -> &str {
        self.handle.name()
    }

    /// The name for logs and messages: a Redis URL without its password.
    ///
    /// ```
    /// let q = procq::RawQueue::new(0)?;
    /// assert_eq!(q.display_name(), q.name());
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn display_name(&self) -> std::borrow::Cow<'_, str> {
        self.handle.display_name()
    }

    /// Whether this is a joinable queue (its `get`s count as tasks).
    ///
    /// ```
    /// assert!(procq::Builder::new().build_raw_joinable()?.is_joinable());
    /// assert!(!procq::RawQueue::new(0)?.is_joinable());
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn is_joinable(&self) -> bool {
        self.handle.kind() == Kind::Joinable
    }

    /// Closes this handle (see [`Queue::close`](crate::Queue::close)).
    ///
    /// ```
    /// let q = procq::RawQueue::new(0)?;
    /// q.close();
    /// assert!(matches!(q.put(b"x"), Err(procq::Error::Closed)));
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn close(&self) {
        self.handle.close();
    }

    /// Marks one task done on a joinable queue (see
    /// [`JoinableQueue::task_done`](crate::JoinableQueue::task_done)). On
    /// Redis it acknowledges this handle's oldest unacknowledged item.
    ///
    /// ```
    /// let q = procq::Builder::new().build_joinable::<u8>()?;
    /// q.put(&1)?;
    /// let raw = procq::RawQueue::open(q.name())?;
    /// raw.get()?;
    /// raw.task_done()?;
    /// q.join()?;
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn task_done(&self) -> Result<()> {
        self.handle.task_done()
    }

    /// Tasks put and not yet done, on a joinable queue (see
    /// [`JoinableQueue::unfinished_tasks`](crate::JoinableQueue::unfinished_tasks)).
    ///
    /// ```
    /// let q = procq::Builder::new().build_raw_joinable()?;
    /// q.put(b"job")?;
    /// assert_eq!(q.unfinished_tasks()?, 1);
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn unfinished_tasks(&self) -> Result<u64> {
        self.handle.unfinished()
    }

    /// Waits until every task of a joinable queue is done, at most `timeout`
    /// (`None` = forever); [`Error::Full`] if tasks are still outstanding
    /// then (see [`JoinableQueue::join`](crate::JoinableQueue::join)).
    ///
    /// ```
    /// # use std::time::Duration;
    /// let q = procq::Builder::new().build_raw_joinable()?;
    /// q.put(b"job")?;
    /// assert!(matches!(q.join(Some(Duration::from_millis(5))), Err(procq::Error::Full)));
    /// q.get()?;
    /// q.task_done()?;
    /// q.join(None)?;
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn join(&self, timeout: Option<Duration>) -> Result<()> {
        self.handle.join(block_for(timeout))
    }

    /// A read-out of the queue's counters (see [`crate::stats`] for Redis).
    ///
    /// ```
    /// assert_eq!(procq::RawQueue::new(0)?.stats()?.items, 0);
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn stats(&self) -> Result<crate::Stats> {
        self.handle.stats()
    }
}
