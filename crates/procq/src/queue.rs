//! [`Queue<T>`]: the typed, process-safe FIFO, and its [`Builder`].

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::codec::{self, Encoded};
use crate::error::{Error, Result};
use crate::joinable::JoinableQueue;
use crate::layout::Kind;
use crate::liveness::fork_generation;
use crate::raw::RawQueue;
use crate::shared::{Block, CreateOptions, Expect, Shared, MAX_CAPACITY_LIMIT, MIN_CAPACITY_LIMIT};

/// Options for creating a queue. `Queue::new(maxsize)` is
/// `Builder::new().maxsize(maxsize).build()`.
///
/// ```
/// let q: procq::Queue<String> = procq::Builder::new()
///     .maxsize(100)
///     .capacity_bytes(1 << 20)
///     .build()?;
/// q.put(&"hello".to_owned())?;
/// assert_eq!(q.get()?, "hello");
/// # Ok::<(), procq::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Builder {
    /// Item bound; 0 = unbounded.
    maxsize: usize,
    /// Whether [`maxsize`](Builder::maxsize) was called: an existing Redis
    /// queue is then checked against it, else opened with whatever bound it has.
    maxsize_set: bool,
    /// Chosen name, or `None` for a fresh unique one.
    name: Option<String>,
    /// Initial (and minimum) ring size in bytes.
    capacity: u64,
    /// Largest ring size in bytes, or `None` for the default.
    max_bytes: Option<u64>,
    /// Whether the queue outlives every process using it.
    persistent: bool,
}

impl Default for Builder {
    fn default() -> Self {
        Builder::new()
    }
}

/// Default initial ring size: small, so an idle queue costs little.
const DEFAULT_CAPACITY: u64 = 256 * 1024;

impl Builder {
    /// Defaults: unbounded, a unique name, a 256 KiB ring that grows up to
    /// the size of `/dev/shm` (at least 1 GiB, at most 1 TiB), removed when
    /// the last process using it lets go.
    ///
    /// ```
    /// let q = procq::Builder::new().build::<u8>()?;
    /// assert_eq!(q.maxsize(), 0);
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn new() -> Builder {
        Builder {
            maxsize: 0,
            maxsize_set: false,
            name: None,
            capacity: DEFAULT_CAPACITY,
            max_bytes: None,
            persistent: false,
        }
    }

    /// Bounds the number of items; 0 (the default) means unbounded.
    ///
    /// ```
    /// let q = procq::Builder::new().maxsize(1).build::<u8>()?;
    /// q.put(&1)?;
    /// assert!(q.full());
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn maxsize(mut self, maxsize: usize) -> Builder {
        self.maxsize = maxsize;
        self.maxsize_set = true;
        self
    }

    /// Names the queue (see [`validate_name`](crate::validate_name)); creation
    /// fails with [`Error::AlreadyExists`] if the name is taken.
    ///
    /// With the `redis` feature the name may be a queue URL
    /// (`redis://host:port/db/name`, see [`Queue::open`]): building then
    /// opens the queue at that URL, creating it if missing; an existing one
    /// must be of the kind built and, if [`maxsize`](Self::maxsize) was
    /// set, have that bound. The shared-memory options (capacity, max
    /// bytes, persistence) do not apply to it.
    ///
    /// ```
    /// let name = format!("doc-builder-name-{}", std::process::id());
    /// let q = procq::Builder::new().name(&name).build::<u8>()?;
    /// assert_eq!(q.name(), name);
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> Builder {
        self.name = Some(name.into());
        self
    }

    /// Initial ring size in bytes (rounded up to a power of two, at least
    /// 4 KiB). The ring doubles when an item does not fit and shrinks back to
    /// this size when it drains.
    ///
    /// ```
    /// let q = procq::Builder::new().capacity_bytes(4096).build::<Vec<u8>>()?;
    /// q.put(&vec![7; 100_000])?; // grows past the initial size
    /// assert_eq!(q.get()?.len(), 100_000);
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn capacity_bytes(mut self, bytes: u64) -> Builder {
        self.capacity = bytes;
        self
    }

    /// Largest ring size in bytes (rounded up to a power of two). An item
    /// whose encoding is larger fails with [`Error::TooLarge`].
    ///
    /// ```
    /// let q = procq::Builder::new().max_bytes(1 << 16).build::<Vec<u8>>()?;
    /// assert!(matches!(q.put(&vec![0; 1 << 17]), Err(procq::Error::TooLarge { .. })));
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn max_bytes(mut self, bytes: u64) -> Builder {
        self.max_bytes = Some(bytes);
        self
    }

    /// Makes the queue outlive its processes: it stays in `/dev/shm` until
    /// removed with [`remove`](crate::remove) (or `procq rm`).
    ///
    /// ```
    /// let name = format!("doc-persistent-{}", std::process::id());
    /// drop(procq::Builder::new().name(&name).persistent(true).build::<u8>()?);
    /// let q = procq::Queue::<u8>::open(&name)?; // still there
    /// drop(q);
    /// procq::remove(&name)?;
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn persistent(mut self, persistent: bool) -> Builder {
        self.persistent = persistent;
        self
    }

    /// Creates a [`Queue<T>`].
    pub fn build<T: Serialize + DeserializeOwned + 'static>(&self) -> Result<Queue<T>> {
        Ok(Queue::from_raw(
            self.create(Kind::Queue, codec::fingerprint::<T>())?,
        ))
    }

    /// Creates a [`JoinableQueue<T>`].
    ///
    /// ```
    /// let q = procq::Builder::new().maxsize(8).build_joinable::<u32>()?;
    /// q.put(&1)?;
    /// q.get()?;
    /// q.task_done()?;
    /// q.join()?;
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn build_joinable<T: Serialize + DeserializeOwned + 'static>(
        &self,
    ) -> Result<JoinableQueue<T>> {
        Ok(JoinableQueue::from_queue(Queue::from_raw(
            self.create(Kind::Joinable, codec::fingerprint::<T>())?,
        )))
    }

    /// Creates an untyped [`RawQueue`] of byte strings.
    ///
    /// ```
    /// let q = procq::Builder::new().build_raw()?;
    /// q.put(b"abc")?;
    /// assert_eq!(q.get()?, b"abc");
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn build_raw(&self) -> Result<RawQueue> {
        self.create(Kind::Queue, 0)
    }

    /// Creates an untyped joinable queue: a [`RawQueue`] whose `get`s count
    /// as tasks (finish them with [`RawQueue::task_done`]); any typed
    /// [`JoinableQueue<T>`] can open it.
    ///
    /// ```
    /// let q = procq::Builder::new().build_raw_joinable()?;
    /// q.put(&[1])?;
    /// let typed = procq::JoinableQueue::<u8>::open(q.name())?;
    /// assert_eq!(typed.get()?, 1);
    /// typed.task_done()?;
    /// typed.join()?;
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn build_raw_joinable(&self) -> Result<RawQueue> {
        self.create(Kind::Joinable, 0)
    }

    pub(crate) fn create(&self, kind: Kind, fingerprint: u64) -> Result<RawQueue> {
        if let Some(url) = self.name.as_deref().filter(|n| is_redis_url(n)) {
            let maxsize = self.maxsize_set.then_some(self.maxsize as u64);
            return Ok(RawQueue::from_backend(open_redis(
                url,
                kind,
                Some(kind),
                fingerprint,
                maxsize,
            )?));
        }
        let max_capacity = self
            .max_bytes
            .unwrap_or_else(|| crate::shm::shm_fs_size().max(1 << 30))
            .clamp(MIN_CAPACITY_LIMIT, MAX_CAPACITY_LIMIT)
            .next_power_of_two();
        let opts = CreateOptions {
            kind,
            fingerprint,
            maxsize: self.maxsize as u64,
            min_capacity: self
                .capacity
                .clamp(MIN_CAPACITY_LIMIT, max_capacity)
                .next_power_of_two(),
            max_capacity,
            persistent: self.persistent,
        };
        let shared = match &self.name {
            Some(name) => Shared::create(name, &opts)?,
            None => loop {
                match Shared::create(&unique_name(), &opts) {
                    Err(Error::AlreadyExists(_)) => continue,
                    other => break other?,
                }
            },
        };
        Ok(RawQueue::from_shared(shared))
    }
}

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

/// The per-handle part of a queue: the attachment and this handle's
/// `closed` flag. Shared by [`RawQueue`], [`Queue`] and [`JoinableQueue`].
pub(crate) struct Handle {
    /// The attachment this handle was made with (one per queue per process).
    shared: Arc<Shared>,
    /// The attachment made for a forked child that inherited this handle
    /// (it knows the fork generation it belongs to).
    forked: Mutex<Option<Arc<Shared>>>,
    /// Set by `close()`; checked by every operation on this handle.
    pub(crate) closed: AtomicBool,
}

impl Handle {
    pub(crate) fn new(shared: Arc<Shared>) -> Handle {
        Handle {
            shared,
            forked: Mutex::new(None),
            closed: AtomicBool::new(false),
        }
    }

    /// The attachment to use from this process.
    ///
    /// A child created by `fork()` inherits the parent's attachment, whose
    /// slot and liveness token (and so its task accounting and liveness)
    /// belong to the parent. The first use in the child attaches afresh, as
    /// the child. If that fails (the queue was removed, say), the call fails
    /// with that error: the parent's attachment is never used by the child.
    pub(crate) fn shared(&self) -> Result<Cow<'_, Arc<Shared>>> {
        let generation = fork_generation();
        if generation == self.shared.generation() {
            return Ok(Cow::Borrowed(&self.shared));
        }
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

    /// The attachment this handle was made with, for facts that never
    /// change (kind, maxsize); valid in a forked child too.
    pub(crate) fn made_with(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The queue's name (the same in every process and after a fork).
    pub(crate) fn name(&self) -> &str {
        self.shared.name()
    }

    pub(crate) fn put_encoded(&self, item: &Encoded<'_>, block: Block) -> Result<()> {
        self.shared()?.push(item, block, &self.closed)
    }

    pub(crate) fn close(&self) {
        if !self.closed.swap(true, Ordering::SeqCst) {
            // Interrupt this handle's own blocked callers (other handles
            // wake, see nothing new, and sleep again).
            self.made_with().wake_all();
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
    /// This handle: shared memory, or a Redis server.
    pub(crate) handle: Backend,
    /// Items are encoded from `&T` and decoded into `T`.
    _item: PhantomData<fn(T) -> T>,
}

/// Where a [`Queue`]'s items live. Without the `redis` feature this enum has
/// one variant, so every `match` on it compiles to the shared-memory path
/// alone; with it, the shared-memory path pays one well-predicted branch.
pub(crate) enum Backend {
    /// A shared-memory queue on this machine.
    Shm(Handle),
    /// A queue on a Redis server (see the `redis_backend` module).
    #[cfg(feature = "redis")]
    Redis(Box<crate::redis_backend::RedisQueue>),
}

/// The operations every handle type ([`Queue`], [`JoinableQueue`],
/// [`RawQueue`]) shares, for both places items can live.
impl Backend {
    /// The shared-memory attachment (unit tests of shared memory only).
    #[cfg(test)]
    pub(crate) fn shared(&self) -> Cow<'_, Arc<Shared>> {
        match self {
            Backend::Shm(h) => h.shared().unwrap(),
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

    /// The name for messages and `Debug`: never a password.
    pub(crate) fn display_name(&self) -> Cow<'_, str> {
        match self {
            Backend::Shm(h) => Cow::Borrowed(h.name()),
            #[cfg(feature = "redis")]
            Backend::Redis(r) => Cow::Owned(r.redacted_url()),
        }
    }

    pub(crate) fn kind(&self) -> Kind {
        match self {
            Backend::Shm(h) => h.made_with().kind(),
            #[cfg(feature = "redis")]
            Backend::Redis(r) => r.kind(),
        }
    }

    pub(crate) fn maxsize(&self) -> usize {
        match self {
            Backend::Shm(h) => h.made_with().maxsize() as usize,
            #[cfg(feature = "redis")]
            Backend::Redis(r) => r.maxsize() as usize,
        }
    }

    /// Items in the queue; 0 if its memory is corrupt or its server
    /// unreachable (`stats` reports why).
    pub(crate) fn qsize(&self) -> usize {
        match self {
            Backend::Shm(h) => h
                .shared()
                .and_then(|s| s.state())
                .map_or(0, |s| s.ring.count as usize),
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
            Backend::Shm(h) => h.closed.load(Ordering::Relaxed),
            #[cfg(feature = "redis")]
            Backend::Redis(r) => r.closed.load(Ordering::Relaxed),
        }
    }

    /// Puts one encoded item (Redis takes it as one string).
    pub(crate) fn put_encoded(&self, item: &Encoded<'_>, block: Block) -> Result<()> {
        match self {
            Backend::Shm(h) => h.put_encoded(item, block),
            #[cfg(feature = "redis")]
            Backend::Redis(r) => {
                if item.body.is_empty() {
                    r.put(&[item.head], block).map(|_| ())
                } else {
                    r.put(&[&item.to_vec()], block).map(|_| ())
                }
            }
        }
    }

    pub(crate) fn task_done(&self) -> Result<()> {
        match self {
            Backend::Shm(h) => h.shared()?.task_done(),
            #[cfg(feature = "redis")]
            Backend::Redis(r) => r.task_done(),
        }
    }

    pub(crate) fn unfinished(&self) -> Result<u64> {
        match self {
            Backend::Shm(h) => Ok(h.shared()?.state()?.unfinished),
            #[cfg(feature = "redis")]
            Backend::Redis(r) => r.unfinished(),
        }
    }

    /// Waits until no task is outstanding; [`Error::Full`] if `block` runs out.
    pub(crate) fn join(&self, block: Block) -> Result<()> {
        match self {
            Backend::Shm(h) => h.shared()?.join(block, &h.closed),
            #[cfg(feature = "redis")]
            Backend::Redis(r) => r.join(block),
        }
    }

    pub(crate) fn stats(&self) -> Result<crate::Stats> {
        match self {
            Backend::Shm(h) => {
                let shared = h.shared()?;
                crate::inspect::stats_of(&shared)
            }
            #[cfg(feature = "redis")]
            Backend::Redis(r) => crate::redis_backend::stats(r.url()),
        }
    }
}

impl Clone for Backend {
    fn clone(&self) -> Self {
        match self {
            Backend::Shm(h) => Backend::Shm(h.clone()),
            #[cfg(feature = "redis")]
            Backend::Redis(r) => Backend::Redis(Box::new(r.clone_handle())),
        }
    }
}

/// The error for a Redis URL when the `redis` feature is off.
#[cfg(not(feature = "redis"))]
pub(crate) fn redis_disabled(url: &str) -> Error {
    Error::InvalidName {
        name: url.to_owned(),
        reason: "redis:// URLs need procq's `redis` cargo feature",
    }
}

/// Whether `name` is a Redis URL rather than a shared-memory queue name.
pub(crate) fn is_redis_url(name: &str) -> bool {
    name.starts_with("redis://") || name.starts_with("rediss://")
}

/// Opens (creating if missing) a Redis queue, or explains that the feature
/// is off.
pub(crate) fn open_redis(
    url: &str,
    kind: Kind,
    require: Option<Kind>,
    fingerprint: u64,
    maxsize: Option<u64>,
) -> Result<Backend> {
    #[cfg(feature = "redis")]
    {
        Ok(Backend::Redis(Box::new(
            crate::redis_backend::RedisQueue::open(url, kind, require, fingerprint, maxsize)?,
        )))
    }
    #[cfg(not(feature = "redis"))]
    {
        let _ = (kind, require, maxsize, fingerprint);
        Err(redis_disabled(url))
    }
}

impl<T> Clone for Queue<T> {
    fn clone(&self) -> Self {
        Queue {
            handle: self.handle.clone(),
            _item: PhantomData,
        }
    }
}

impl<T> fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("name", &self.handle.display_name())
            .field("maxsize", &self.maxsize())
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl<T: Serialize + DeserializeOwned + 'static> Queue<T> {
    /// Creates a queue holding at most `maxsize` items (0 = unbounded).
    ///
    /// ```
    /// let q = procq::Queue::<u64>::new(10)?;
    /// assert_eq!(q.maxsize(), 10);
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn new(maxsize: usize) -> Result<Queue<T>> {
        Builder::new().maxsize(maxsize).build()
    }

    /// Opens an existing queue by name, from any process.
    ///
    /// Fails with [`Error::NotFound`] if there is none, and with
    /// [`Error::InvalidQueue`] if it is not a procq queue, has another layout
    /// version, or was created for a different item type.
    ///
    /// ```
    /// let q = procq::Queue::<u64>::new(0)?;
    /// let same = procq::Queue::<u64>::open(q.name())?;
    /// assert!(procq::Queue::<String>::open(q.name()).is_err()); // other type
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn open(name: &str) -> Result<Queue<T>> {
        if is_redis_url(name) {
            return Ok(Queue::from_backend(open_redis(
                name,
                Kind::Queue,
                None,
                codec::fingerprint::<T>(),
                None,
            )?));
        }
        let shared = Shared::open(
            name,
            Expect {
                kind: None,
                fingerprint: codec::fingerprint::<T>(),
            },
        )?;
        Ok(Queue::from_raw(RawQueue::from_shared(shared)))
    }

    /// Opens the queue `name` (a shared-memory name or a Redis URL), creating
    /// it with this `maxsize` if it does not exist. An existing queue with
    /// another `maxsize` is refused with [`Error::InvalidQueue`] on Redis; a
    /// shared-memory queue is created non-persistent, like
    /// [`Builder::build`].
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
        if is_redis_url(name) {
            return Ok(Queue::from_backend(open_redis(
                name,
                Kind::Queue,
                None,
                codec::fingerprint::<T>(),
                Some(maxsize as u64),
            )?));
        }
        loop {
            match Builder::new().name(name).maxsize(maxsize).build() {
                Err(Error::AlreadyExists(_)) => {}
                other => return other,
            }
            match Queue::open(name) {
                Err(Error::NotFound(_)) => continue, // removed meanwhile: create again
                other => return other,
            }
        }
    }

    pub(crate) fn from_raw(raw: RawQueue) -> Queue<T> {
        Queue::from_backend(raw.into_backend())
    }

    pub(crate) fn from_backend(handle: Backend) -> Queue<T> {
        Queue {
            handle,
            _item: PhantomData,
        }
    }

    fn put_block(&self, item: &T, block: Block) -> Result<()> {
        codec::with_encoded(item, |enc| self.handle.put_encoded(&enc, block))
    }

    /// Decodes items taken from Redis. An undecodable item ends the batch
    /// like on shared memory: the items before it are returned, it and the
    /// rest are kept for the next call, which reports it (and, on a joinable
    /// queue, acknowledges it: the caller never saw it).
    #[cfg(feature = "redis")]
    fn decode_redis(r: &crate::redis_backend::RedisQueue, raw: Vec<Vec<u8>>) -> Result<Vec<T>> {
        let mut items = Vec::with_capacity(raw.len());
        let mut iter = raw.into_iter();
        while let Some(bytes) = iter.next() {
            match codec::decode::<T>(&bytes) {
                Ok(v) => items.push(v),
                Err(e) => {
                    if items.is_empty() {
                        r.stash(iter);
                        if r.kind() == Kind::Joinable {
                            let _ = r.task_done();
                        }
                        return Err(e);
                    }
                    r.stash(std::iter::once(bytes).chain(iter));
                    break;
                }
            }
        }
        Ok(items)
    }

    /// Puts an item, waiting while the queue is full.
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

    /// Puts an item, waiting at most `timeout` for room; [`Error::Full`] after.
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

    /// Puts an item, waiting for room until `deadline`; [`Error::Full`] after.
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

    /// Puts an item if there is room now, else fails with [`Error::Full`].
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
    #[cfg_attr(not(feature = "redis"), allow(clippy::infallible_destructuring_match))]
    fn get_block(&self, block: Block) -> Result<T> {
        let h = match &self.handle {
            Backend::Shm(h) => h,
            #[cfg(feature = "redis")]
            Backend::Redis(r) => {
                let raw = r.get(1, block)?;
                return Queue::<T>::decode_redis(r, raw)?.pop().ok_or(Error::Empty);
            }
        };
        let mut out = None;
        h.shared()?.pop(1, block, &h.closed, |bytes| {
            let item = codec::decode::<T>(bytes);
            let ok = item.is_ok();
            out = Some(item);
            ok
        })?;
        let item = out.unwrap_or(Err(Error::Empty));
        if item.is_err() {
            self.undecodable_taken(h);
        }
        item
    }

    /// A joinable queue counts an item that could not be decoded as done:
    /// the caller never saw it, so it can never call `task_done` for it.
    fn undecodable_taken(&self, h: &Handle) {
        if h.made_with().kind() == Kind::Joinable {
            if let Ok(shared) = h.shared() {
                let _ = shared.task_done();
            }
        }
    }

    /// Removes and returns the oldest item, waiting while the queue is empty.
    ///
    /// If the item cannot be decoded as `T`, it is removed anyway and
    /// [`Error::Codec`] is returned: the next `get` sees the next item.
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

    /// Like [`get`](Self::get), but gives up with [`Error::Empty`] after
    /// `timeout` (measured on the monotonic clock).
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

    /// Like [`get`](Self::get), but gives up with [`Error::Empty`] at `deadline`.
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

    /// Removes and returns the oldest item if there is one, else
    /// [`Error::Empty`].
    ///
    /// ```
    /// let q = procq::Queue::<u8>::new(0)?;
    /// assert!(matches!(q.get_nowait(), Err(procq::Error::Empty)));
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn get_nowait(&self) -> Result<T> {
        self.get_block(Block::No)
    }

    /// Puts every item, in order, waiting for room as needed. Items go in
    /// under as few lock acquisitions as room allows, which is much faster
    /// than one `put` each for small items.
    ///
    /// ```
    /// let q = procq::Queue::new(0)?;
    /// q.put_many(&[1u32, 2, 3])?;
    /// assert_eq!(q.get_many(10)?, vec![1, 2, 3]);
    /// # Ok::<(), procq::Error>(())
    /// ```
    // One variant without the `redis` feature.
    #[cfg_attr(not(feature = "redis"), allow(clippy::infallible_destructuring_match))]
    pub fn put_many(&self, items: &[T]) -> Result<()> {
        let h = match &self.handle {
            Backend::Shm(h) => h,
            #[cfg(feature = "redis")]
            Backend::Redis(r) => {
                let encoded = items
                    .iter()
                    .map(|item| postcard::to_allocvec(item))
                    .collect::<std::result::Result<Vec<_>, _>>()?;
                let slices: Vec<&[u8]> = encoded.iter().map(Vec::as_slice).collect();
                return r.put(&slices, Block::Forever).map(|_| ());
            }
        };
        let mut buf = Vec::new();
        let mut ends = Vec::with_capacity(items.len());
        for item in items {
            buf = postcard::to_extend(item, buf)?;
            ends.push(buf.len());
        }
        let mut start = 0;
        let encoded: Vec<Encoded<'_>> = ends
            .iter()
            .map(|&end| {
                let e = Encoded {
                    head: &buf[start..end],
                    body: &[],
                };
                start = end;
                e
            })
            .collect();
        h.shared()?
            .push_many(&encoded, Block::Forever, &h.closed)
            .map(|_| ())
    }

    // One variant without the `redis` feature.
    #[cfg_attr(not(feature = "redis"), allow(clippy::infallible_destructuring_match))]
    fn get_many_block(&self, max: usize, block: Block) -> Result<Vec<T>> {
        let h = match &self.handle {
            Backend::Shm(h) => h,
            #[cfg(feature = "redis")]
            Backend::Redis(r) => {
                let raw = r.get(max, block)?;
                return Queue::<T>::decode_redis(r, raw);
            }
        };
        let mut items = Vec::new();
        let mut failed = None;
        h.shared()?.pop(max.max(1), block, &h.closed, |bytes| {
            match codec::decode::<T>(bytes) {
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
            }
        })?;
        match failed {
            Some(e) => {
                self.undecodable_taken(h);
                Err(e)
            }
            None => Ok(items),
        }
    }

    /// Removes up to `max` items at once, waiting until there is at least
    /// one. An undecodable item ends the batch: it is reported (and removed)
    /// by the next call, so no decoded item is ever dropped.
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

    /// Like [`get_many`](Self::get_many), giving up with [`Error::Empty`]
    /// after `timeout`.
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

    /// Like [`get_many`](Self::get_many) without waiting: [`Error::Empty`]
    /// if there is nothing.
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
        self.handle.qsize()
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
        self.handle.maxsize()
    }

    /// The queue's name: pass it to [`open`](Queue::open) in another process.
    ///
    /// ```
    /// let q = procq::Queue::<u8>::new(0)?;
    /// assert!(!q.name().is_empty());
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn name(&self) -> &str {
        self.handle.name()
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
        self.handle.close();
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
        self.handle.is_closed()
    }

    /// A read-out of the queue's counters (see [`Stats`](crate::Stats)).
    ///
    /// ```
    /// let q = procq::Queue::new(0)?;
    /// q.put(&1u8)?;
    /// assert_eq!(q.stats()?.items, 1);
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn stats(&self) -> Result<crate::Stats> {
        self.handle.stats()
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
