//! [`Slab`]: aligned memory for the out-of-band buffers of items got from a
//! queue (numpy arrays are rebuilt over it), with a small cache of freed
//! slabs.
//!
//! Why a cache: a 16 MB array got from a queue needs 16 MB of fresh memory.
//! Fresh memory costs a page fault (and the kernel zeroing the page) for
//! every 4 KiB touched, and glibc gives large freed blocks back to the
//! kernel (`munmap`, or trimming the heap), so a loop that gets an array,
//! uses it and drops it paid for those faults on every item: a `perf`
//! profile of the numpy benchmark's consumer showed them costing about as
//! much as the copy itself. Freed slabs of at least [`CACHE_MIN`] bytes are
//! therefore kept, up to [`CACHE_BYTES`] per process, and reused for the
//! next item that fits, as the scratch buffers of `core` are.

use std::alloc::{alloc, dealloc, handle_alloc_error, Layout};
use std::ptr::{self, NonNull};
use std::sync::Mutex;

/// Alignment of a slab: a cache line, enough for any numpy dtype and for
/// SIMD loads.
pub(crate) const FRAME_ALIGN: usize = 64;

/// Freed slabs smaller than this are not kept (malloc reuses them well).
const CACHE_MIN: usize = 1 << 20;

/// Most bytes of freed slabs one process keeps for reuse.
const CACHE_BYTES: usize = 64 << 20;

/// One allocation, aligned to [`FRAME_ALIGN`].
struct Block {
    ptr: NonNull<u8>,
    layout: Layout,
}

// SAFETY: a `Block` is an owned allocation, like a `Box<[u8]>`; it is only
// moved between threads whole.
unsafe impl Send for Block {}

impl Block {
    fn new(size: usize) -> Block {
        let layout = Layout::from_size_align(size.max(1), FRAME_ALIGN)
            .unwrap_or_else(|_| handle_alloc_error(Layout::new::<u8>()));
        // SAFETY: `layout` has a non-zero size.
        let raw = unsafe { alloc(layout) };
        match NonNull::new(raw) {
            Some(ptr) => Block { ptr, layout },
            None => handle_alloc_error(layout),
        }
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        // SAFETY: allocated in `Block::new` with exactly this layout.
        unsafe { dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

/// Freed blocks kept for reuse, and their total size.
static CACHE: Mutex<(Vec<Block>, usize)> = Mutex::new((Vec::new(), 0));

/// A cached block of at least `size` bytes and at most twice that, if any.
fn reuse(size: usize) -> Option<Block> {
    if size < CACHE_MIN {
        return None;
    }
    // `try_lock`: never wait (a fork could have copied a held lock into
    // this process); without the lock, allocate afresh.
    let mut cache = CACHE.try_lock().ok()?;
    let (blocks, total) = &mut *cache;
    let best = blocks
        .iter()
        .enumerate()
        .filter(|(_, b)| b.layout.size() >= size && b.layout.size() / 2 <= size)
        .min_by_key(|(_, b)| b.layout.size())
        .map(|(i, _)| i)?;
    let block = blocks.swap_remove(best);
    *total -= block.layout.size();
    Some(block)
}

/// Keeps `block` for reuse if there is room in the cache, else frees it.
fn give_back(block: Block) {
    let size = block.layout.size();
    if size < CACHE_MIN {
        return;
    }
    let Ok(mut cache) = CACHE.try_lock() else {
        return;
    };
    let (blocks, total) = &mut *cache;
    if *total + size <= CACHE_BYTES {
        *total += size;
        blocks.push(block);
    }
}

/// Memory filled while the queue's lock is held (no GIL needed) and then
/// handed to Python as `Frame`s (see the `abi` module).
pub(crate) struct Slab {
    /// The allocation; `None` only while dropping.
    block: Option<Block>,
    /// Bytes in use (the block may be larger).
    len: usize,
}

// SAFETY: a `Slab` owns its block; nothing points into it until frames are
// made, and frames only read and write it through the buffer protocol, with
// the GIL held.
unsafe impl Send for Slab {}
// SAFETY: as above; `&Slab` gives no access to the bytes but through frame
// exports.
unsafe impl Sync for Slab {}

impl Slab {
    /// A copy of `bytes` in memory aligned to [`FRAME_ALIGN`].
    pub(crate) fn copy_of(bytes: &[u8]) -> Slab {
        let block = reuse(bytes.len()).unwrap_or_else(|| Block::new(bytes.len()));
        // SAFETY: the block holds at least `bytes.len()` bytes and belongs
        // to no one else, so it cannot overlap `bytes`.
        unsafe { ptr::copy_nonoverlapping(bytes.as_ptr(), block.ptr.as_ptr(), bytes.len()) };
        Slab {
            block: Some(block),
            len: bytes.len(),
        }
    }

    /// Bytes in the slab.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Its first byte.
    pub(crate) fn as_ptr(&self) -> *mut u8 {
        self.block
            .as_ref()
            .map_or(ptr::null_mut(), |b| b.ptr.as_ptr())
    }
}

impl Drop for Slab {
    fn drop(&mut self) {
        if let Some(block) = self.block.take() {
            give_back(block);
        }
    }
}
