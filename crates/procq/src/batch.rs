//! The batch calls of [`RawQueue`]: many items per lock hold
//! (`put_many`, `get_many` and their zero-copy forms).

use std::time::{Duration, Instant};

use crate::backend::BATCH_BYTES;
use crate::block::Block;
use crate::codec::Encoded;
use crate::error::Result;
use crate::raw::RawQueue;

impl RawQueue {
    /// Puts every byte string, in order, waiting for room as needed, under
    /// as few lock acquisitions as room allows (much faster than one `put`
    /// each for small items).
    ///
    /// # Errors
    ///
    /// As [`put`](Self::put); an item that is too large fails the call
    /// before anything is put.
    ///
    /// ```
    /// let q = procq::RawQueue::new(0)?;
    /// q.put_many([b"a".as_slice(), b"b"])?;
    /// q.put_many(vec![vec![1u8], vec![2, 3]])?;
    /// assert_eq!(q.get_many(10)?, [b"a".to_vec(), b"b".to_vec(), vec![1], vec![2, 3]]);
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn put_many<I>(&self, items: I) -> Result<()>
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        let items: Vec<I::Item> = items.into_iter().collect();
        let encoded: Vec<Encoded<'_>> = items
            .iter()
            .map(|b| Encoded {
                head: b.as_ref(),
                body: &[],
            })
            .collect();
        self.backend.put_many(&encoded, Block::Forever).map(|_| ())
    }

    /// Puts several items of two pieces each, `head` then `body` (see
    /// [`put_parts`](Self::put_parts)), in order under as few locks as
    /// possible, each piece copied straight into shared memory. Waits up to
    /// `timeout` for room (`None` = forever; zero = do not wait) and returns
    /// how many went in before it ran out (all of them without one).
    ///
    /// # Errors
    ///
    /// As [`put_parts`](Self::put_parts), except that running out of time
    /// is not an error.
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
        let block = timeout.map_or(Block::Forever, Block::timeout);
        self.backend.put_many(&encoded, block)
    }

    fn get_many_block(&self, max: usize, block: Block) -> Result<Vec<Vec<u8>>> {
        let mut items = Vec::new();
        let mut taken = 0u64;
        self.backend.pop(max, block, |bytes| {
            // Refusing an item (never the first) leaves it in the queue.
            if taken >= BATCH_BYTES {
                return false;
            }
            taken += bytes.len() as u64;
            items.push(bytes.to_vec());
            true
        })?;
        Ok(items)
    }

    /// Removes and returns up to `max` byte strings, waiting while the
    /// queue is empty. A batch stops early once it holds about 64 KiB, so
    /// that large items are not all copied under one lock hold.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    ///
    /// ```
    /// let q = procq::RawQueue::new(0)?;
    /// q.put_many([b"a", b"b"])?;
    /// assert_eq!(q.get_many(10)?, vec![b"a".to_vec(), b"b".to_vec()]);
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn get_many(&self, max: usize) -> Result<Vec<Vec<u8>>> {
        self.get_many_block(max, Block::Forever)
    }

    /// Like [`get_many`](Self::get_many), waiting at most `timeout` for the
    /// first item.
    ///
    /// # Errors
    ///
    /// As [`get_timeout`](Self::get_timeout).
    ///
    /// ```
    /// # use std::time::Duration;
    /// let q = procq::RawQueue::new(0)?;
    /// assert!(q.get_many_timeout(5, Duration::from_millis(5)).is_err());
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn get_many_timeout(&self, max: usize, timeout: Duration) -> Result<Vec<Vec<u8>>> {
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
    /// let q = procq::RawQueue::new(0)?;
    /// q.put(b"a")?;
    /// assert_eq!(q.get_many_deadline(5, Instant::now() + Duration::from_secs(1))?.len(), 1);
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn get_many_deadline(&self, max: usize, deadline: Instant) -> Result<Vec<Vec<u8>>> {
        self.get_many_block(max, Block::Until(deadline))
    }

    /// Like [`get_many`](Self::get_many) without waiting.
    ///
    /// # Errors
    ///
    /// [`Error::Empty`](crate::Error::Empty) if there is nothing, and the errors of
    /// [`get_timeout`](Self::get_timeout).
    ///
    /// ```
    /// let q = procq::RawQueue::new(0)?;
    /// assert!(matches!(q.get_many_nowait(5), Err(procq::Error::Empty)));
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn get_many_nowait(&self, max: usize) -> Result<Vec<Vec<u8>>> {
        self.get_many_block(max, Block::No)
    }

    /// Like [`get_many`](Self::get_many), but appends the items' bytes back
    /// to back to `buf` and each item's end offset to `ends`, so that a
    /// caller who reuses the two vectors allocates nothing per item. Waits
    /// up to `timeout` for the first (`None` = forever; zero = do not
    /// wait). Returns how many items it took.
    ///
    /// # Errors
    ///
    /// As [`get_timeout`](Self::get_timeout).
    ///
    /// ```
    /// let q = procq::RawQueue::new(0)?;
    /// q.put_many([b"ab".as_slice(), b"c"])?;
    /// let (mut buf, mut ends) = (Vec::new(), Vec::new());
    /// assert_eq!(q.get_many_into(10, None, &mut buf, &mut ends)?, 2);
    /// assert_eq!((buf.as_slice(), ends.as_slice()), (b"abc".as_slice(), [2, 3].as_slice()));
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn get_many_into(
        &self,
        max: usize,
        timeout: Option<Duration>,
        buf: &mut Vec<u8>,
        ends: &mut Vec<usize>,
    ) -> Result<usize> {
        let mut taken = 0u64;
        self.backend
            .pop(max, Block::from_timeout(timeout), |bytes| {
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
}
