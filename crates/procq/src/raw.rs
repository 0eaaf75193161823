//! [`RawQueue`]: the untyped queue of byte strings, for callers who
//! serialize items themselves (other languages, the CLI, custom codecs).
//! It is the one holder of a [`Backend`]: the typed queues wrap it.

use std::time::{Duration, Instant};

use crate::address::Address;
use crate::backend::{Backend, New, Open};
use crate::block::Block;
use crate::codec::Encoded;
use crate::error::{Error, Result};
use crate::kind::Kind;
use crate::stats::Stats;

/// A queue of byte strings: the bytes given to [`put`](Self::put) are
/// exactly the bytes [`get`](Self::get) returns, with no codec in between.
///
/// A typed [`Queue<T>`](crate::Queue) stores the postcard encoding of each
/// item; a `RawQueue` can read and write those bytes too (for `Vec<u8>` and
/// `String` that is a varint length followed by the data, see docs/design.md).
///
/// The blocking calls come in the same four forms as on `Queue`: wait as
/// long as it takes (`put`), at most a timeout (`put_timeout`), until a
/// deadline (`put_deadline`), or not at all (`put_nowait`). The zero-copy
/// calls ([`put_parts`](Self::put_parts), [`get_with`](Self::get_with),
/// [`put_many_parts`](Self::put_many_parts),
/// [`get_many_into`](Self::get_many_into)) take one `Option<Duration>`
/// instead: `None` waits forever, zero does not wait.
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
    pub(crate) backend: Backend,
}

impl std::fmt::Debug for RawQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawQueue")
            .field("name", &self.backend.display_name())
            .finish()
    }
}

impl RawQueue {
    /// Creates an untyped queue of at most `maxsize` items (0 = unbounded).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the segment cannot be made (a full `/dev/shm`).
    ///
    /// ```
    /// let q = procq::RawQueue::new(2)?;
    /// assert_eq!(q.maxsize(), 2);
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn new(maxsize: usize) -> Result<RawQueue> {
        RawQueue::create(None, &New::with_maxsize(Kind::Queue, 0, maxsize))
    }

    /// Opens an existing procq queue by name, whatever its item type or
    /// kind; never creates one. With the `redis` feature, `name` may be a
    /// queue URL (see [`Queue::open`](crate::Queue::open)).
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] if there is no such queue,
    /// [`Error::InvalidName`] for a name or URL that is not valid, and the
    /// errors of [`Queue::open`](crate::Queue::open).
    ///
    /// ```
    /// let q = procq::Queue::<String>::new(0)?;
    /// q.put(&"hi".to_owned())?;
    /// let raw = procq::RawQueue::open(q.name())?;
    /// assert_eq!(raw.get()?, b"\x02hi"); // postcard: length, then bytes
    /// assert!(matches!(procq::RawQueue::open("no-such-queue"), Err(procq::Error::NotFound(_))));
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn open(name: &str) -> Result<RawQueue> {
        RawQueue::open_with(
            name,
            Open {
                kind: Kind::Queue,
                require: None,
                fingerprint: 0,
                create: None,
            },
        )
    }

    /// Opens the queue `name` (a shared-memory name or a Redis URL),
    /// creating it with this `maxsize` if it does not exist (see
    /// [`Queue::open_or_create`](crate::Queue::open_or_create)).
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open) (without `NotFound`).
    ///
    /// ```
    /// let name = format!("doc-raw-ooc-{}", std::process::id());
    /// let q = procq::RawQueue::open_or_create(&name, 1)?; // created
    /// q.put(b"x")?;
    /// assert_eq!(procq::RawQueue::open_or_create(&name, 1)?.get()?, b"x"); // opened
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn open_or_create(name: &str, maxsize: usize) -> Result<RawQueue> {
        RawQueue::open_with(
            name,
            Open {
                kind: Kind::Queue,
                require: None,
                fingerprint: 0,
                create: Some(maxsize),
            },
        )
    }

    /// Creates a queue at `address` (a fresh shared-memory one if `None`).
    pub(crate) fn create(address: Option<&Address>, new: &New) -> Result<RawQueue> {
        Ok(RawQueue::from_backend(Backend::create(address, new)?))
    }

    /// Opens (or, per `open.create`, creates) the queue `name`.
    pub(crate) fn open_with(name: &str, open: Open) -> Result<RawQueue> {
        let address: Address = name.parse()?;
        Ok(RawQueue::from_backend(Backend::open(&address, open)?))
    }

    pub(crate) fn from_backend(backend: Backend) -> RawQueue {
        RawQueue { backend }
    }

    fn put_block(&self, bytes: &[u8], block: Block) -> Result<()> {
        let item = Encoded {
            head: bytes,
            body: &[],
        };
        self.backend.put(&item, block)
    }

    /// Puts a byte string, waiting while the queue is full.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after [`close`](Self::close),
    /// [`Error::TooLarge`] for an item the queue can never hold, and
    /// [`Error::InvalidQueue`] if its memory is corrupt.
    ///
    /// ```
    /// procq::RawQueue::new(0)?.put(b"x")?;
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn put(&self, bytes: &[u8]) -> Result<()> {
        self.put_block(bytes, Block::Forever)
    }

    /// Puts a byte string, waiting at most `timeout` for room.
    ///
    /// # Errors
    ///
    /// [`Error::Full`] when the time runs out, [`Error::LockBusy`] if
    /// another process keeps the queue's lock past it, and the errors of
    /// [`put`](Self::put).
    ///
    /// ```
    /// # use std::time::Duration;
    /// let q = procq::RawQueue::new(1)?;
    /// q.put(b"a")?;
    /// assert!(matches!(q.put_timeout(b"b", Duration::from_millis(1)), Err(procq::Error::Full)));
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn put_timeout(&self, bytes: &[u8], timeout: Duration) -> Result<()> {
        self.put_block(bytes, Block::timeout(timeout))
    }

    /// Puts a byte string, waiting for room until `deadline`.
    ///
    /// # Errors
    ///
    /// As [`put_timeout`](Self::put_timeout).
    ///
    /// ```
    /// # use std::time::{Duration, Instant};
    /// let q = procq::RawQueue::new(1)?;
    /// q.put_deadline(b"a", Instant::now() + Duration::from_secs(1))?;
    /// assert!(q.put_deadline(b"b", Instant::now()).is_err());
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn put_deadline(&self, bytes: &[u8], deadline: Instant) -> Result<()> {
        self.put_block(bytes, Block::Until(deadline))
    }

    /// Puts a byte string if there is room now.
    ///
    /// # Errors
    ///
    /// [`Error::Full`] if there is none, and the errors of
    /// [`put_timeout`](Self::put_timeout).
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
    /// # Errors
    ///
    /// As [`put_timeout`](Self::put_timeout).
    ///
    /// ```
    /// let q = procq::RawQueue::new(0)?;
    /// q.put_parts(b"tag:", b"payload", None)?;
    /// assert_eq!(q.get()?, b"tag:payload");
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn put_parts(&self, head: &[u8], body: &[u8], timeout: Option<Duration>) -> Result<()> {
        self.backend
            .put(&Encoded { head, body }, Block::from_timeout(timeout))
    }

    /// Puts one item of `len` bytes that `f` writes in place: a large item
    /// (16 KiB or more) straight into its record in shared memory, with no
    /// copy and without holding the queue's lock, so that other producers
    /// and consumers go on meanwhile. The buffer's initial contents are
    /// unspecified; `f` should write all of it. Waits up to `timeout` for
    /// room (`None` = forever; zero = do not wait) before calling `f`.
    ///
    /// If `f` panics, nothing is put (the panic goes on). If the process
    /// dies while `f` runs, nothing is put either: consumers never see a
    /// partly written item, and the space is reclaimed. Until `f` returns,
    /// consumers wait for this item, and the items put after it wait
    /// behind it, so keep `f` short. On Redis, `f` writes into a buffer
    /// that is then sent.
    ///
    /// # Errors
    ///
    /// As [`put_timeout`](Self::put_timeout) (with [`Error::Full`] also for
    /// a zero timeout); [`Error::TooLarge`] before `f` is called.
    ///
    /// ```
    /// let q = procq::RawQueue::new(0)?;
    /// q.put_with(100_000, None, |buf| buf.fill(7))?;
    /// assert_eq!(q.get()?, vec![7; 100_000]);
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn put_with(
        &self,
        len: usize,
        timeout: Option<Duration>,
        f: impl FnOnce(&mut [u8]),
    ) -> Result<()> {
        self.backend
            .put_with(len as u64, Block::from_timeout(timeout), f)
    }

    /// Calls `f` with the oldest item's bytes while they are still in shared
    /// memory (no copy), then removes the item. Waits up to `timeout`
    /// (`None` = forever; zero = do not wait). On Redis, `f` sees the bytes
    /// just received.
    ///
    /// On shared memory the item is removed only after `f` returns: if `f`
    /// panics, or the process dies while it runs, the item stays in the
    /// queue, first in line. `f` runs while this process holds the queue's
    /// lock, except for an item of 16 KiB or more: then the other
    /// processes go on putting, and getting the large items behind it,
    /// meanwhile (a small item behind it waits), so keep `f` short.
    ///
    /// # Errors
    ///
    /// As [`get_timeout`](Self::get_timeout) (with [`Error::Empty`] also
    /// for a zero timeout).
    ///
    /// ```
    /// let q = procq::RawQueue::new(0)?;
    /// q.put(b"hello")?;
    /// assert_eq!(q.get_with(None, |b| b.len())?, 5);
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn get_with<R>(&self, timeout: Option<Duration>, f: impl FnOnce(&[u8]) -> R) -> Result<R> {
        let mut f = Some(f);
        let mut out = None;
        self.backend.pop(1, Block::from_timeout(timeout), |bytes| {
            out = f.take().map(|f| f(bytes));
            true
        })?;
        out.ok_or(Error::Empty)
    }

    /// Lets `f` see the oldest item's bytes in shared memory (no copy) and
    /// decide: `Some(r)` takes the item (and returns `Ok(Some(r))`), `None`
    /// leaves it where it is, first in line for the next getter, and returns
    /// `Ok(None)`. For a caller that can tell only from the bytes whether it
    /// can use an item (a viewer that cannot show it, a router that is not
    /// its addressee). Waits up to `timeout` (`None` = forever; zero = do
    /// not wait) for an item; runs like [`get_with`](Self::get_with), and a
    /// panic in `f` (or the death of the process while it runs) leaves the
    /// item in place too.
    ///
    /// # Errors
    ///
    /// As [`get_with`](Self::get_with); [`Error::Unsupported`] on Redis,
    /// where a get moves the item before anyone sees it.
    ///
    /// ```
    /// let q = procq::RawQueue::new(0)?;
    /// q.put(b"\xff\xfe")?;
    /// let text = q.get_with_or_leave(None, |b| std::str::from_utf8(b).ok().map(str::to_owned))?;
    /// assert_eq!(text, None);
    /// assert_eq!(q.qsize(), 1, "still there");
    /// assert_eq!(q.get()?, b"\xff\xfe");
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn get_with_or_leave<R>(
        &self,
        timeout: Option<Duration>,
        f: impl FnOnce(&[u8]) -> Option<R>,
    ) -> Result<Option<R>> {
        let mut out = None;
        self.backend
            .pop_or_leave(Block::from_timeout(timeout), |bytes| {
                out = f(bytes);
                out.is_some()
            })?;
        Ok(out)
    }

    fn get_block(&self, block: Block) -> Result<Vec<u8>> {
        let mut out = None;
        self.backend.pop(1, block, |bytes| {
            out = Some(bytes.to_vec());
            true
        })?;
        out.ok_or(Error::Empty)
    }

    /// Removes and returns the oldest byte string, waiting while empty.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after [`close`](Self::close) (also for a call
    /// waiting when it happens), [`Error::InvalidQueue`] if the queue's
    /// memory is corrupt.
    ///
    /// ```
    /// let q = procq::RawQueue::new(0)?;
    /// q.put(b"x")?;
    /// assert_eq!(q.get()?, b"x");
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn get(&self) -> Result<Vec<u8>> {
        self.get_block(Block::Forever)
    }

    /// Like [`get`](Self::get), waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`Error::Empty`] when the time runs out, [`Error::LockBusy`] if
    /// another process keeps the queue's lock past it, and the errors of
    /// [`get`](Self::get).
    ///
    /// ```
    /// # use std::time::Duration;
    /// let q = procq::RawQueue::new(0)?;
    /// assert!(matches!(q.get_timeout(Duration::from_millis(1)), Err(procq::Error::Empty)));
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn get_timeout(&self, timeout: Duration) -> Result<Vec<u8>> {
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
    /// let q = procq::RawQueue::new(0)?;
    /// let r = q.get_deadline(Instant::now() + Duration::from_millis(5));
    /// assert!(matches!(r, Err(procq::Error::Empty)));
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn get_deadline(&self, deadline: Instant) -> Result<Vec<u8>> {
        self.get_block(Block::Until(deadline))
    }

    /// The oldest byte string if there is one now.
    ///
    /// # Errors
    ///
    /// [`Error::Empty`] if there is none, and the errors of
    /// [`get_timeout`](Self::get_timeout).
    ///
    /// ```
    /// assert!(matches!(procq::RawQueue::new(0)?.get_nowait(), Err(procq::Error::Empty)));
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn get_nowait(&self) -> Result<Vec<u8>> {
        self.get_block(Block::No)
    }

    /// Exact number of items (0 if the shared memory is corrupt or the
    /// Redis server unreachable).
    ///
    /// ```
    /// assert_eq!(procq::RawQueue::new(0)?.qsize(), 0);
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn qsize(&self) -> usize {
        self.backend.qsize()
    }

    /// The item bound; 0 = unbounded.
    ///
    /// ```
    /// assert_eq!(procq::RawQueue::new(0)?.maxsize(), 0);
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn maxsize(&self) -> usize {
        self.backend.maxsize()
    }

    /// The queue's name (its URL on Redis, see
    /// [`Queue::name`](crate::Queue::name)).
    ///
    /// ```
    /// assert!(procq::RawQueue::new(0)?.name().starts_with("q-"));
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn name(&self) -> &str {
        self.backend.name()
    }

    /// Where the queue lives (see [`Address`]).
    ///
    /// ```
    /// let q = procq::RawQueue::new(0)?;
    /// assert!(matches!(q.address(), procq::Address::Shm(_)));
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn address(&self) -> Address {
        self.backend.address()
    }

    /// The name for logs and messages: a Redis URL without its password.
    ///
    /// ```
    /// let q = procq::RawQueue::new(0)?;
    /// assert_eq!(q.display_name(), q.name());
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn display_name(&self) -> std::borrow::Cow<'_, str> {
        self.backend.display_name()
    }

    /// Whether this is a joinable queue (its `get`s count as tasks).
    ///
    /// ```
    /// assert!(procq::Builder::new().build_raw_joinable()?.is_joinable());
    /// assert!(!procq::RawQueue::new(0)?.is_joinable());
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn is_joinable(&self) -> bool {
        self.backend.kind() == Kind::Joinable
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
        self.backend.close();
    }

    /// Whether [`close`](Self::close) was called on this handle.
    ///
    /// ```
    /// let q = procq::RawQueue::new(0)?;
    /// q.close();
    /// assert!(q.is_closed());
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn is_closed(&self) -> bool {
        self.backend.is_closed()
    }

    /// Shuts the queue down for every process (see
    /// [`Queue::shutdown`](crate::Queue::shutdown)).
    ///
    /// # Errors
    ///
    /// As [`Queue::shutdown`](crate::Queue::shutdown).
    ///
    /// ```
    /// let q = procq::RawQueue::new(0)?;
    /// q.put(b"last")?;
    /// q.shutdown(false)?;
    /// assert!(matches!(q.put(b"x"), Err(procq::Error::ShutDown)));
    /// assert_eq!(q.get()?, b"last");
    /// assert!(matches!(q.get(), Err(procq::Error::ShutDown)));
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn shutdown(&self, immediate: bool) -> Result<()> {
        self.backend.shutdown(immediate)
    }

    /// Whether the queue was shut down, by any process (see
    /// [`Queue::is_shutdown`](crate::Queue::is_shutdown)).
    ///
    /// ```
    /// let q = procq::RawQueue::new(0)?;
    /// assert!(!q.is_shutdown());
    /// q.shutdown(false)?;
    /// assert!(q.is_shutdown());
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn is_shutdown(&self) -> bool {
        self.backend.is_shutdown()
    }

    /// Marks one task done on a joinable queue (see
    /// [`JoinableQueue::task_done`](crate::JoinableQueue::task_done)). On
    /// Redis it acknowledges the oldest item the calling thread got through
    /// this handle (the handle's oldest if that thread got none).
    ///
    /// # Errors
    ///
    /// [`Error::TaskDoneTooOften`] if every item got is already done.
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
        self.backend.task_done()
    }

    /// Marks `n` tasks done at once on a joinable queue (see
    /// [`JoinableQueue::task_done_many`](crate::JoinableQueue::task_done_many)).
    ///
    /// # Errors
    ///
    /// [`Error::TaskDoneTooOften`], marking none, if fewer than `n` tasks
    /// can be marked.
    ///
    /// ```
    /// let q = procq::Builder::new().build_raw_joinable()?;
    /// q.put_many([b"a".as_slice(), b"b"])?;
    /// assert_eq!(q.get_many(10)?.len(), 2);
    /// q.task_done_many(2)?;
    /// q.join()?;
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn task_done_many(&self, n: usize) -> Result<()> {
        self.backend.task_done_many(n)
    }

    /// Tasks put and not yet done, on a joinable queue (see
    /// [`JoinableQueue::unfinished_tasks`](crate::JoinableQueue::unfinished_tasks)).
    ///
    /// # Errors
    ///
    /// [`Error::LockBusy`] if another process keeps the lock for more than
    /// about a second; [`Error::InvalidQueue`] for corrupt memory.
    ///
    /// ```
    /// let q = procq::Builder::new().build_raw_joinable()?;
    /// q.put(b"job")?;
    /// assert_eq!(q.unfinished_tasks()?, 1);
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn unfinished_tasks(&self) -> Result<u64> {
        self.backend.unfinished()
    }

    /// Waits until every task of a joinable queue is done (see
    /// [`JoinableQueue::join`](crate::JoinableQueue::join)).
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after [`close`](Self::close).
    ///
    /// ```
    /// let q = procq::Builder::new().build_raw_joinable()?;
    /// q.put(b"job")?;
    /// q.get()?;
    /// q.task_done()?;
    /// q.join()?;
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn join(&self) -> Result<()> {
        self.backend.join(Block::Forever)
    }

    /// Like [`join`](Self::join), waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] if tasks are still unfinished then, and the
    /// errors of [`join`](Self::join).
    ///
    /// ```
    /// # use std::time::Duration;
    /// let q = procq::Builder::new().build_raw_joinable()?;
    /// q.put(b"job")?;
    /// assert!(matches!(q.join_timeout(Duration::from_millis(5)), Err(procq::Error::Timeout)));
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn join_timeout(&self, timeout: Duration) -> Result<()> {
        self.backend.join(Block::timeout(timeout))
    }

    /// Like [`join`](Self::join), waiting until `deadline`.
    ///
    /// # Errors
    ///
    /// As [`join_timeout`](Self::join_timeout).
    ///
    /// ```
    /// # use std::time::{Duration, Instant};
    /// let q = procq::Builder::new().build_raw_joinable()?;
    /// q.join_deadline(Instant::now() + Duration::from_millis(5))?; // nothing put
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn join_deadline(&self, deadline: Instant) -> Result<()> {
        self.backend.join(Block::Until(deadline))
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
    /// assert_eq!(procq::RawQueue::new(0)?.stats()?.items, 0);
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn stats(&self) -> Result<Stats> {
        self.backend.stats()
    }
}
