//! [`Builder`]: the options of a new queue.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::address::Address;
use crate::backend::New;
use crate::codec;
use crate::error::Result;
use crate::joinable::JoinableQueue;
use crate::kind::Kind;
use crate::queue::Queue;
use crate::raw::RawQueue;
#[cfg(doc)]
use crate::Error;

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
    /// Initial (and minimum) ring size in bytes, or `None` for the default.
    capacity: Option<u64>,
    /// Largest ring size in bytes, or `None` for the default.
    max_bytes: Option<u64>,
    /// Whether the queue outlives every process using it.
    persistent: bool,
    /// Whether an existing Redis queue is an error rather than opened.
    create_new: bool,
}

impl Default for Builder {
    fn default() -> Self {
        Builder::new()
    }
}

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
            capacity: None,
            max_bytes: None,
            persistent: false,
            create_new: false,
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
    /// set, have that bound (or, with [`create_new`](Self::create_new), is
    /// [`Error::AlreadyExists`]). The shared-memory options (capacity, max
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

    /// Makes building fail with [`Error::AlreadyExists`] if a queue of that
    /// name exists, on Redis too (like `O_EXCL`, or std's
    /// `OpenOptions::create_new`). A shared-memory name that is taken
    /// always fails so; a Redis URL is otherwise opened if it exists. The
    /// check and the creation are one atomic step on the server: of
    /// several processes creating one name at once, exactly one succeeds
    /// (`procq create` builds this way).
    ///
    /// ```
    /// let name = format!("doc-builder-create-new-{}", std::process::id());
    /// let q = procq::Builder::new().name(&name).create_new(true).build::<u8>()?;
    /// let again = procq::Builder::new().name(&name).create_new(true).build::<u8>();
    /// assert!(matches!(again, Err(procq::Error::AlreadyExists(_))));
    /// # drop(q);
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn create_new(mut self, create_new: bool) -> Builder {
        self.create_new = create_new;
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
        self.capacity = Some(bytes);
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
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`] for a name or URL that is not valid;
    /// [`Error::AlreadyExists`] if a shared-memory queue of that name
    /// exists; [`Error::Io`] if the segment cannot be made (a full
    /// `/dev/shm`). On Redis, [`Error::InvalidQueue`] for an existing queue
    /// of another kind or bound, and [`Error::Redis`] if the server cannot
    /// be reached.
    ///
    /// ```
    /// let q = procq::Builder::new().maxsize(2).build::<String>()?;
    /// assert_eq!(q.maxsize(), 2);
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn build<T: Serialize + DeserializeOwned + 'static>(&self) -> Result<Queue<T>> {
        Ok(Queue::from_raw(
            self.create(Kind::Queue, codec::fingerprint::<T>())?,
        ))
    }

    /// Creates a [`JoinableQueue<T>`].
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`] for a name or URL that is not valid;
    /// [`Error::AlreadyExists`] if a shared-memory queue of that name
    /// exists; [`Error::Io`] if the segment cannot be made (a full
    /// `/dev/shm`). On Redis, [`Error::InvalidQueue`] for an existing queue
    /// of another kind or bound, and [`Error::Redis`] if the server cannot
    /// be reached.
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
    /// # Errors
    ///
    /// As [`build`](Self::build).
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
    /// # Errors
    ///
    /// As [`build`](Self::build).
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

    /// Creates the queue: at the address given by [`name`](Self::name), or
    /// a fresh shared-memory one.
    pub(crate) fn create(&self, kind: Kind, fingerprint: u64) -> Result<RawQueue> {
        let address = self
            .name
            .as_deref()
            .map(str::parse::<Address>)
            .transpose()?;
        let new = New {
            kind,
            fingerprint,
            maxsize: self.maxsize_set.then_some(self.maxsize),
            capacity: self.capacity,
            max_bytes: self.max_bytes,
            persistent: self.persistent,
            create_new: self.create_new,
        };
        RawQueue::create(address.as_ref(), &new)
    }
}
