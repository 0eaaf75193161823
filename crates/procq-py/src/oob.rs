//! Pickles with out-of-band buffers: numpy arrays, `pickle.PickleBuffer`s
//! and whatever else hands pickle its data as `PickleBuffer`s go into the
//! queue's memory without passing through pickle's output, and come out as `Frame`s (the `abi` module) that
//! numpy (or `memoryview`) uses in place.
//!
//! `pickle.dumps(obj, protocol=5, buffer_callback=...)` hands every buffer
//! that an object exports through `PickleBuffer` to the callback instead of
//! copying it into the pickle, which then only says "next buffer here"
//! (PEP 574). (`bytes` and `bytearray` are not among them: pickle writes
//! them in band. A top-level `bytes` item skips pickle altogether.) procq keeps those buffers and writes one record:
//!
//! ```text
//! 'o' | n: u32 | len_1 .. len_n: u64 | p: u64 | pickle (p bytes)
//!     | pad | buffer_1 | pad | buffer_2 | ... | pad | buffer_n
//! ```
//!
//! All integers are little-endian; each `pad` is zeros up to the next
//! multiple of [`FRAME_ALIGN`] bytes from the start of the record, so that a
//! buffer copied out with the record's alignment is 64-byte aligned again
//! (numpy is slower on misaligned arrays). `get` copies every buffer, in one
//! piece, out of shared memory into one fresh aligned [`Slab`] (the one copy
//! on the way out; it must leave the queue's memory before the item is
//! removed), then calls `pickle.loads(pickle, buffers=frames)` with one
//! frame per buffer: numpy rebuilds its arrays over the frames without
//! another copy, writable as they were.
//!
//! The way in copies every buffer straight from its object into shared
//! memory, once: an item with one buffer goes as two pieces (`put_parts`:
//! the header and pickle, then the buffer); one with several is laid out
//! by [`write`] in the room the core lends for it (`put_with`), which for a
//! large item is its record in shared memory, written without the lock.
//!
//! Parsing checks every length against the record (a record is bytes from
//! shared memory, which any process with access may have written): a bad
//! record raises `ValueError`, never reads out of bounds.

use std::ops::Range;
use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};

use crate::abi::{frame, Exported};
use crate::slab::{Slab, FRAME_ALIGN};

/// First byte of a record with out-of-band buffers.
pub(crate) const TAG_OOB: u8 = b'o';

/// Bytes before the lengths: tag and count.
const FIXED: usize = 1 + 4;

/// `pos` rounded up to a multiple of [`FRAME_ALIGN`] (`None` on overflow).
fn align_up(pos: usize) -> Option<usize> {
    pos.checked_add(FRAME_ALIGN - 1)
        .map(|p| p & !(FRAME_ALIGN - 1))
}

/// Appends zeros up to the next multiple of [`FRAME_ALIGN`].
fn pad(out: &mut Vec<u8>) {
    let to = align_up(out.len()).expect("a Vec's length is far from usize::MAX");
    out.resize(to, 0);
}

/// Pickles `obj` with protocol 5, collecting its out-of-band buffers.
/// Returns the pickle and the buffers' exports (empty if it has none).
pub(crate) fn dumps<'py>(
    dumps: &Bound<'py, PyAny>,
    obj: &Bound<'py, PyAny>,
    protocol: u8,
) -> PyResult<(Bound<'py, PyBytes>, Vec<Exported<'py>>)> {
    let py = obj.py();
    let buffers = PyList::empty(py);
    let kwargs = PyDict::new(py);
    // `list.append` returns None: every buffer is out-of-band.
    kwargs.set_item("buffer_callback", buffers.getattr("append")?)?;
    let pickled = dumps
        .call((obj, protocol), Some(&kwargs))?
        .cast_into::<PyBytes>()?;
    let mut exports = Vec::with_capacity(buffers.len());
    for pb in buffers.iter() {
        // A contiguous 1-D view of bytes; BufferError if not contiguous
        // (numpy never hands those out: it pickles them in-band).
        let raw = pb.call_method0("raw")?;
        exports.push(Exported::new(&raw)?);
    }
    Ok((pickled, exports))
}

/// The record's leading part: the header and the pickle, padded so that
/// the first buffer starts aligned.
pub(crate) fn head(pickle: &[u8], buffers: &[Exported<'_>]) -> Vec<u8> {
    let n = buffers.len();
    let mut out = Vec::with_capacity(FIXED + 8 * n + 8 + pickle.len() + FRAME_ALIGN);
    out.push(TAG_OOB);
    out.extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes());
    for b in buffers {
        out.extend_from_slice(&(b.as_slice().len() as u64).to_le_bytes());
    }
    out.extend_from_slice(&(pickle.len() as u64).to_le_bytes());
    out.extend_from_slice(pickle);
    pad(&mut out);
    out
}

/// The length of the record made of `head` (from [`head`], so aligned)
/// and `buffers`, each after the padding that aligns it.
pub(crate) fn record_len(head: &[u8], buffers: &[&[u8]]) -> usize {
    buffers.iter().enumerate().fold(head.len(), |pos, (i, b)| {
        let start = if i == 0 {
            pos
        } else {
            align_up(pos).unwrap_or(usize::MAX)
        };
        start.saturating_add(b.len())
    })
}

/// Lays the record out in `dst` (exactly [`record_len`] bytes): `head`,
/// then each buffer at its aligned offset, zeros in between.
pub(crate) fn write(dst: &mut [u8], head: &[u8], buffers: &[&[u8]]) {
    dst[..head.len()].copy_from_slice(head);
    let mut pos = head.len();
    for (i, b) in buffers.iter().enumerate() {
        if i > 0 {
            let start = align_up(pos).expect("the record fits in memory");
            dst[pos..start].fill(0);
            pos = start;
        }
        dst[pos..pos + b.len()].copy_from_slice(b);
        pos += b.len();
    }
    debug_assert_eq!(pos, dst.len());
}

/// Where the parts of an out-of-band record are.
#[derive(Debug)]
pub(crate) struct Layout {
    /// The pickle.
    pub(crate) pickle: Range<usize>,
    /// Each buffer.
    pub(crate) buffers: Vec<Range<usize>>,
}

impl Layout {
    /// Reads and checks the layout of `record` (whose first byte is
    /// [`TAG_OOB`]); `Err` says what is wrong.
    pub(crate) fn parse(record: &[u8]) -> Result<Layout, &'static str> {
        let short = "record shorter than its header";
        let word = |at: usize, len: usize| -> Result<u64, &'static str> {
            let bytes = record
                .get(at..at.checked_add(len).ok_or(short)?)
                .ok_or(short)?;
            let mut le = [0u8; 8];
            le[..len].copy_from_slice(bytes);
            Ok(u64::from_le_bytes(le))
        };
        let n = word(1, 4)? as usize;
        if n == 0 {
            return Err("no out-of-band buffers");
        }
        // Bound n by the record before allocating for it.
        let lengths_end = n
            .checked_mul(8)
            .and_then(|l| l.checked_add(FIXED))
            .filter(|&end| end <= record.len())
            .ok_or(short)?;
        let pickle_len = word(lengths_end, 8)?;
        let mut pos = lengths_end + 8;
        let pickle_end = usize::try_from(pickle_len)
            .ok()
            .and_then(|l| pos.checked_add(l))
            .filter(|&end| end <= record.len())
            .ok_or("pickle longer than the record")?;
        let pickle = pos..pickle_end;
        pos = pickle_end;
        let mut buffers = Vec::with_capacity(n);
        for i in 0..n {
            let len = word(FIXED + 8 * i, 8)?;
            let start = align_up(pos).ok_or("buffer past the record")?;
            let end = usize::try_from(len)
                .ok()
                .and_then(|l| start.checked_add(l))
                .filter(|&end| end <= record.len())
                .ok_or("buffer past the record")?;
            buffers.push(start..end);
            pos = end;
        }
        if pos != record.len() {
            return Err("bytes after the last buffer");
        }
        Ok(Layout { pickle, buffers })
    }

    /// Where the buffers start in the record (a multiple of [`FRAME_ALIGN`]).
    fn first(&self) -> usize {
        self.buffers[0].start
    }
}

/// The buffers of one record, copied out of the queue.
pub(crate) struct Landed {
    /// Every buffer, with the record's padding, in one aligned allocation.
    slab: Arc<Slab>,
    /// Each buffer's place in `slab`.
    spans: Vec<Range<usize>>,
}

impl Landed {
    /// Copies the buffers of `record` (laid out as `layout` says) into a
    /// fresh slab. Needs no GIL: may run while the queue's lock is held.
    pub(crate) fn copy(record: &[u8], layout: &Layout) -> Landed {
        let first = layout.first();
        Landed {
            slab: Arc::new(Slab::copy_of(&record[first..])),
            spans: layout
                .buffers
                .iter()
                .map(|b| b.start - first..b.end - first)
                .collect(),
        }
    }

    /// One `Frame` per buffer, for `pickle.loads(..., buffers=...)`.
    pub(crate) fn frames<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let list = PyList::empty(py);
        for span in &self.spans {
            list.append(frame(py, &self.slab, span.start, span.len())?)?;
        }
        Ok(list)
    }
}
