//! [`Iter`]: a queue as a stream of items that ends at
//! [`shutdown`](crate::Queue::shutdown) — crossbeam-channel's `iter()` and
//! `try_iter()`, with shutdown in the role of disconnection.

use std::iter::FusedIterator;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::block::Block;
use crate::error::{Error, Result};
use crate::queue::Queue;

/// The items of a queue, got one by one until the queue is shut down and
/// drained (from [`Queue::iter`], or `for x in &q`), or until it is empty
/// (from [`Queue::try_iter`]).
///
/// An item that does not decode is yielded as `Err` and the iterator goes
/// on (the item was removed, as by [`Queue::get`]). Any other error is
/// yielded once and ends the iteration, since the next `get` would fail the
/// same way: a closed handle, a corrupt or truncated queue. Shutdown, and
/// for `try_iter` an empty queue, end it without an error.
///
/// ```
/// let q = procq::Queue::new(0)?;
/// q.put(&"a".to_owned())?;
/// q.shutdown(false)?;
/// for item in &q {
///     assert_eq!(item?, "a");
/// }
/// # Ok::<(), procq::Error>(())
/// ```
pub struct Iter<'a, T> {
    queue: &'a Queue<T>,
    /// How each `get` waits: forever (`iter`) or not at all (`try_iter`).
    block: Block,
    /// The iteration has ended; it stays ended.
    done: bool,
}

impl<T> std::fmt::Debug for Iter<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Iter")
            .field("queue", &self.queue.display_name())
            .field("waits", &!matches!(self.block, Block::No))
            .field("done", &self.done)
            .finish()
    }
}

impl<'a, T> Iter<'a, T> {
    pub(crate) fn new(queue: &'a Queue<T>, block: Block) -> Iter<'a, T> {
        Iter {
            queue,
            block,
            done: false,
        }
    }
}

impl<T: Serialize + DeserializeOwned + 'static> Iterator for Iter<'_, T> {
    type Item = Result<T>;

    fn next(&mut self) -> Option<Result<T>> {
        if self.done {
            return None;
        }
        match self.queue.get_block(self.block) {
            Ok(item) => Some(Ok(item)),
            // One bad item; the next one may be fine.
            Err(e @ Error::Codec(_)) => Some(Err(e)),
            Err(Error::ShutDown | Error::Empty) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

impl<T: Serialize + DeserializeOwned + 'static> FusedIterator for Iter<'_, T> {}

impl<T: Serialize + DeserializeOwned + 'static> Queue<T> {
    /// An iterator that [`get`](Self::get)s items, waiting for each, and
    /// ends when the queue is [shut down](Self::shutdown) and drained: the
    /// end of the stream, without a sentinel item. `for x in &q` does the
    /// same.
    ///
    /// It yields `Err` for an item that does not decode (it was removed;
    /// the iterator goes on with the next) and, once, for an error that
    /// ends it: the handle was [closed](Self::close), the queue's memory is
    /// corrupt or gone. It never yields [`Error::ShutDown`].
    ///
    /// ```
    /// let q = procq::Queue::new(0)?;
    /// q.put_many(&[1u32, 2, 3])?;
    /// q.shutdown(false)?; // typically from the producer, in another process
    /// let got: Vec<u32> = q.iter().collect::<Result<_, _>>()?;
    /// assert_eq!(got, [1, 2, 3]);
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn iter(&self) -> Iter<'_, T> {
        Iter::new(self, Block::Forever)
    }

    /// An iterator that [`get_nowait`](Self::get_nowait)s items: it ends
    /// as soon as the queue is empty (or shut down and drained), and
    /// otherwise like [`iter`](Self::iter).
    ///
    /// ```
    /// let q = procq::Queue::new(0)?;
    /// q.put_many(&[1u32, 2])?;
    /// assert_eq!(q.try_iter().collect::<Result<Vec<_>, _>>()?, [1, 2]);
    /// assert_eq!(q.try_iter().count(), 0);
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn try_iter(&self) -> Iter<'_, T> {
        Iter::new(self, Block::No)
    }
}

impl<'a, T: Serialize + DeserializeOwned + 'static> IntoIterator for &'a Queue<T> {
    type Item = Result<T>;
    type IntoIter = Iter<'a, T>;

    /// [`Queue::iter`]: `for item in &q` runs until the queue is shut down
    /// and drained.
    fn into_iter(self) -> Iter<'a, T> {
        self.iter()
    }
}
