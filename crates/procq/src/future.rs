//! Futures: `get_async`, `put_async` and `join_async`, for any executor.
//!
//! Each future tries the operation when polled, under the queue lock, as
//! the blocking call would. If it has to wait, it registers its waker and
//! returns `Pending` without keeping the executor's thread: on shared
//! memory a small per-queue waiter thread sleeps on the queue's futex
//! words and wakes the registered tasks when they move (see
//! `backend/shm/watch.rs`), so no particular runtime is needed (tokio,
//! async-std, `futures::executor::block_on` alike). On Redis the first
//! poll starts the blocking call on a thread of its own, and the polls
//! only look at its outcome (see `backend/redis/calls.rs`).
//!
//! Cancel-safe: dropping a pending future (a timeout, the losing branch of
//! a `select!`, a cancelled task) loses nothing and leaves nothing
//! half-done. On shared memory an item is taken, or put, only by the poll
//! that returns it. On Redis a call under way when its future is dropped
//! makes no further attempt; items its last attempt took are given back (a
//! plain queue's to the head of the queue, a joinable queue's kept in
//! flight for this handle's next get), and a put whose script ran has put
//! its item.
//! A deadline (`_timeout`) counts from the call that made the future.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use serde::de::DeserializeOwned;

use crate::backend::Park;
use crate::block::Block;
use crate::codec::{self, Encoded};
use crate::error::{Error, Result};
use crate::raw::RawQueue;

/// The future of [`Queue::get_async`](crate::Queue::get_async): resolves to
/// the oldest item, or to the error [`get`](crate::Queue::get) (or
/// `get_timeout`) would return.
#[must_use = "futures do nothing unless awaited"]
pub struct GetFuture<'a, T> {
    raw: &'a RawQueue,
    block: Block,
    park: Park,
    /// Makes the item of its bytes (postcard, or a copy for `RawQueue`).
    decode: fn(&[u8]) -> Result<T>,
    /// It completed: polled again, it must not take another item.
    done: bool,
    _item: PhantomData<fn() -> T>,
}

impl<'a, T: DeserializeOwned + 'static> GetFuture<'a, T> {
    pub(crate) fn new(raw: &'a RawQueue, block: Block) -> GetFuture<'a, T> {
        GetFuture::with_decoder(raw, block, codec::decode::<T>)
    }
}

impl<'a, T> GetFuture<'a, T> {
    fn with_decoder(
        raw: &'a RawQueue,
        block: Block,
        decode: fn(&[u8]) -> Result<T>,
    ) -> GetFuture<'a, T> {
        GetFuture {
            raw,
            block,
            park: Park::default(),
            decode,
            done: false,
            _item: PhantomData,
        }
    }
}

impl<T> Future for GetFuture<'_, T> {
    type Output = Result<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        let this = self.get_mut();
        assert!(!this.done, "GetFuture polled after it completed");
        let mut out = None;
        let polled = this
            .raw
            .backend
            .poll_pop(1, this.block, &mut this.park, cx, |bytes| {
                let item = (this.decode)(bytes);
                let ok = item.is_ok();
                out = Some(item);
                ok
            });
        let result = match polled {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(e)) => Err(e),
            Poll::Ready(Ok(_)) => out.unwrap_or(Err(Error::Empty)),
        };
        this.done = true;
        Poll::Ready(result)
    }
}

impl<T> std::fmt::Debug for GetFuture<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GetFuture")
            .field("queue", &self.raw.display_name())
            .finish_non_exhaustive()
    }
}

/// The future of [`Queue::put_async`](crate::Queue::put_async): the item
/// was encoded when the future was made; it resolves once the item is in
/// the queue, or to the error [`put`](crate::Queue::put) would return.
#[must_use = "futures do nothing unless awaited"]
pub struct PutFuture<'a> {
    raw: &'a RawQueue,
    /// The encoded item, or why it did not encode (reported when polled).
    item: Option<Result<Vec<u8>>>,
    block: Block,
    park: Park,
}

impl<'a> PutFuture<'a> {
    pub(crate) fn new(raw: &'a RawQueue, item: Result<Vec<u8>>, block: Block) -> PutFuture<'a> {
        PutFuture {
            raw,
            item: Some(item),
            block,
            park: Park::default(),
        }
    }
}

impl Future for PutFuture<'_> {
    type Output = Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let this = self.get_mut();
        let bytes = match &this.item {
            Some(Ok(bytes)) => bytes,
            Some(Err(_)) => {
                let Some(Err(e)) = this.item.take() else {
                    unreachable!()
                };
                return Poll::Ready(Err(e));
            }
            None => panic!("PutFuture polled after it completed"),
        };
        let enc = Encoded {
            head: bytes,
            body: &[],
        };
        let polled = this
            .raw
            .backend
            .poll_put(&enc, this.block, &mut this.park, cx);
        if polled.is_ready() {
            this.item = None;
        }
        polled
    }
}

impl std::fmt::Debug for PutFuture<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PutFuture")
            .field("queue", &self.raw.display_name())
            .finish_non_exhaustive()
    }
}

/// The future of [`JoinableQueue::join_async`](crate::JoinableQueue::join_async):
/// resolves once every task is done, or to the error
/// [`join`](crate::JoinableQueue::join) (or `join_timeout`) would return.
#[must_use = "futures do nothing unless awaited"]
pub struct JoinFuture<'a> {
    raw: &'a RawQueue,
    block: Block,
    park: Park,
}

impl<'a> JoinFuture<'a> {
    pub(crate) fn new(raw: &'a RawQueue, block: Block) -> JoinFuture<'a> {
        JoinFuture {
            raw,
            block,
            park: Park::default(),
        }
    }
}

impl Future for JoinFuture<'_> {
    type Output = Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let this = self.get_mut();
        this.raw.backend.poll_join(this.block, &mut this.park, cx)
    }
}

impl std::fmt::Debug for JoinFuture<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinFuture")
            .field("queue", &self.raw.display_name())
            .finish_non_exhaustive()
    }
}

/// `item` encoded into one owned buffer, for a [`PutFuture`].
pub(crate) fn encode_owned<T: serde::Serialize + 'static>(item: &T) -> Result<Vec<u8>> {
    codec::with_encoded(item, |enc| Ok(enc.to_vec()))
}

impl<T: serde::Serialize + DeserializeOwned + 'static> crate::Queue<T> {
    /// [`get`](Self::get) as a future: waits for an item without blocking
    /// the executor's thread, under any executor. Dropping it before it
    /// completes takes nothing (on Redis: gives back what it took; see the
    /// module docs).
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    ///
    /// ```
    /// let q = procq::Queue::new(0)?;
    /// q.put(&7u32)?;
    /// let got = futures_executor::block_on(q.get_async())?;
    /// assert_eq!(got, 7);
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn get_async(&self) -> GetFuture<'_, T> {
        GetFuture::new(&self.raw, Block::Forever)
    }

    /// [`get_async`](Self::get_async) that gives up with [`Error::Empty`]
    /// `timeout` after this call.
    ///
    /// # Errors
    ///
    /// As [`get_timeout`](Self::get_timeout).
    ///
    /// ```
    /// # use std::time::Duration;
    /// let q = procq::Queue::<u8>::new(0)?;
    /// let r = futures_executor::block_on(q.get_async_timeout(Duration::from_millis(20)));
    /// assert!(matches!(r, Err(procq::Error::Empty)));
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn get_async_timeout(&self, timeout: std::time::Duration) -> GetFuture<'_, T> {
        GetFuture::new(&self.raw, Block::timeout(timeout))
    }

    /// [`put`](Self::put) as a future: the item is encoded now, and put
    /// when there is room, without blocking the executor's thread.
    /// Dropping it before it completes puts nothing (on Redis: unless its
    /// put was already on the way to the server; see the module docs).
    ///
    /// # Errors
    ///
    /// As [`put`](Self::put).
    ///
    /// ```
    /// let q = procq::Queue::new(1)?;
    /// futures_executor::block_on(q.put_async(&"x".to_owned()))?;
    /// assert_eq!(q.get()?, "x");
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn put_async(&self, item: &T) -> PutFuture<'_> {
        PutFuture::new(&self.raw, encode_owned(item), Block::Forever)
    }

    /// [`put_async`](Self::put_async) that gives up with [`Error::Full`]
    /// `timeout` after this call.
    ///
    /// # Errors
    ///
    /// As [`put_timeout`](Self::put_timeout).
    ///
    /// ```
    /// # use std::time::Duration;
    /// let q = procq::Queue::new(1)?;
    /// q.put(&1u8)?;
    /// let r = futures_executor::block_on(q.put_async_timeout(&2, Duration::from_millis(20)));
    /// assert!(matches!(r, Err(procq::Error::Full)));
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn put_async_timeout(&self, item: &T, timeout: std::time::Duration) -> PutFuture<'_> {
        PutFuture::new(&self.raw, encode_owned(item), Block::timeout(timeout))
    }
}

impl<T: serde::Serialize + DeserializeOwned + 'static> crate::JoinableQueue<T> {
    /// [`Queue::get_async`](crate::Queue::get_async).
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    pub fn get_async(&self) -> GetFuture<'_, T> {
        self.as_queue().get_async()
    }

    /// [`Queue::get_async_timeout`](crate::Queue::get_async_timeout).
    ///
    /// # Errors
    ///
    /// As [`get_timeout`](Self::get_timeout).
    pub fn get_async_timeout(&self, timeout: std::time::Duration) -> GetFuture<'_, T> {
        self.as_queue().get_async_timeout(timeout)
    }

    /// [`Queue::put_async`](crate::Queue::put_async).
    ///
    /// # Errors
    ///
    /// As [`put`](Self::put).
    pub fn put_async(&self, item: &T) -> PutFuture<'_> {
        self.as_queue().put_async(item)
    }

    /// [`Queue::put_async_timeout`](crate::Queue::put_async_timeout).
    ///
    /// # Errors
    ///
    /// As [`put_timeout`](Self::put_timeout).
    pub fn put_async_timeout(&self, item: &T, timeout: std::time::Duration) -> PutFuture<'_> {
        self.as_queue().put_async_timeout(item, timeout)
    }

    /// [`join`](Self::join) as a future: waits until every task is done
    /// without blocking the executor's thread.
    ///
    /// # Errors
    ///
    /// As [`join`](Self::join).
    ///
    /// ```
    /// let q = procq::JoinableQueue::new(0)?;
    /// q.put(&1u8)?;
    /// q.get()?;
    /// q.task_done()?;
    /// futures_executor::block_on(q.join_async())?;
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn join_async(&self) -> JoinFuture<'_> {
        JoinFuture::new(&self.as_queue().raw, Block::Forever)
    }

    /// [`join_async`](Self::join_async) that gives up with
    /// [`Error::Timeout`] `timeout` after this call.
    ///
    /// # Errors
    ///
    /// As [`join_timeout`](Self::join_timeout).
    ///
    /// ```
    /// # use std::time::Duration;
    /// let q = procq::JoinableQueue::new(0)?;
    /// q.put(&1u8)?;
    /// let r = futures_executor::block_on(q.join_async_timeout(Duration::from_millis(20)));
    /// assert!(matches!(r, Err(procq::Error::Timeout)));
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn join_async_timeout(&self, timeout: std::time::Duration) -> JoinFuture<'_> {
        JoinFuture::new(&self.as_queue().raw, Block::timeout(timeout))
    }
}

impl RawQueue {
    /// [`get_with`](Self::get_with) as a future resolving to the item's
    /// bytes (see [`Queue::get_async`](crate::Queue::get_async)); `timeout`
    /// as for the zero-copy calls: `None` waits forever, zero does not
    /// wait.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get), and [`Error::Empty`] when the time runs out.
    ///
    /// ```
    /// let q = procq::RawQueue::new(0)?;
    /// q.put(b"abc")?;
    /// assert_eq!(futures_executor::block_on(q.get_async(None))?, b"abc");
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn get_async(&self, timeout: Option<std::time::Duration>) -> GetFuture<'_, Vec<u8>> {
        GetFuture::with_decoder(self, Block::from_timeout(timeout), |b| Ok(b.to_vec()))
    }

    /// [`put`](Self::put) as a future (see
    /// [`Queue::put_async`](crate::Queue::put_async)); the bytes are copied
    /// now. `timeout` as for [`get_async`](Self::get_async).
    ///
    /// # Errors
    ///
    /// As [`put`](Self::put), and [`Error::Full`] when the time runs out.
    ///
    /// ```
    /// let q = procq::RawQueue::new(0)?;
    /// futures_executor::block_on(q.put_async(b"abc", None))?;
    /// assert_eq!(q.get()?, b"abc");
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn put_async(&self, bytes: &[u8], timeout: Option<std::time::Duration>) -> PutFuture<'_> {
        PutFuture::new(self, Ok(bytes.to_vec()), Block::from_timeout(timeout))
    }

    /// [`join`](Self::join) as a future (see
    /// [`JoinableQueue::join_async`](crate::JoinableQueue::join_async));
    /// `timeout` as for [`get_async`](Self::get_async).
    ///
    /// # Errors
    ///
    /// As [`join`](Self::join), and [`Error::Timeout`] when the time runs
    /// out.
    ///
    /// ```
    /// let q = procq::Builder::new().build_joinable::<u8>()?;
    /// let raw = procq::RawQueue::open(q.name())?;
    /// futures_executor::block_on(raw.join_async(None))?; // nothing put
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn join_async(&self, timeout: Option<std::time::Duration>) -> JoinFuture<'_> {
        JoinFuture::new(self, Block::from_timeout(timeout))
    }
}
