//! [`Shared`]: one process's attachment to one queue segment — what every
//! operation on it reads, and the checks they all make.
//!
//! The other modules of the backend add to it: `attach` makes and drops
//! one (create, open, inspect, detach), `locked` takes its lock, `ops` and
//! `wait` are the queue operations, `inspect` its read-outs.

use std::sync::atomic::AtomicBool;

use crate::error::{Error, Result};
use crate::kind::Kind;

use super::layout::{Header, Slot, Traffic, DATA_OFFSET};
#[cfg(doc)]
use super::liveness::fork_generation;
use super::liveness::Token;
use super::ring::RECORD_HEADER;
use super::segment::{DataArea, Segment};
use super::sync::{EventCount, Pacing};
use super::watch::{Event, Watched, Watchers};

/// Largest data area any queue may have (1 TiB of address space).
pub(crate) const MAX_CAPACITY_LIMIT: u64 = 1 << 40;
/// Smallest ring.
pub(crate) const MIN_CAPACITY_LIMIT: u64 = 4096;

/// This process's attachment to one queue.
pub(crate) struct Shared {
    /// Queue name (without the `/dev/shm` prefix).
    pub(super) name: String,
    /// The mapping.
    pub(super) seg: Segment,
    /// This attachment's liveness token (its lock stamp and slot owner).
    pub(super) token: Token,
    /// This process's pid (for messages; recorded in the slot).
    pub(super) pid: u32,
    /// [`fork_generation`] when attached: in a forked child this attachment
    /// (its token, its slot) is the parent's and must not be used.
    pub(super) generation: u64,
    /// An inspection-only attachment: no slot, and its locks give up after
    /// `LOCK_PATIENCE` (see `locked`).
    pub(super) inspector: bool,
    /// Index of this process's slot.
    pub(super) slot: usize,
    /// Kind, read once from the validated header.
    pub(super) kind: Kind,
    /// Item bound (0 = none), read once from the validated header.
    pub(super) maxsize: u64,
    /// Data-area size, read once from the validated header.
    pub(super) max_capacity: u64,
    /// Ring capacity floor, read once from the validated header.
    pub(super) min_capacity: u64,
    /// Whether spinning before sleeping can help on this machine.
    pub(super) spin: bool,
    /// How this process's waits went lately: how long its waiters poll
    /// before they sleep (see `wait::Waiter`).
    pub(super) pacing: Pacing,
    /// Whether a thread of this process holds the slot's loan (see "Loans"
    /// in `layout`): one reservation per slot at a time.
    pub(super) loaning: AtomicBool,
    /// Where futures of this process wait on this queue (see `watch`).
    pub(super) watchers: Watchers,
}

// SAFETY: all shared-memory access goes through atomics or byte copies made
// while holding the queue lock; the raw pointers in `Segment` stay valid for
// the life of `Shared`.
unsafe impl Send for Shared {}
// SAFETY: as above.
unsafe impl Sync for Shared {}

impl Shared {
    pub(super) fn header(&self) -> &Header {
        // SAFETY: the mapping is at least DATA_OFFSET ≥ size_of::<Header>()
        // bytes (checked at create/open), page aligned, and every field of
        // `Header` is valid for any bit pattern (atomics and byte arrays).
        unsafe { &*(self.seg.base() as *const Header) }
    }

    #[inline]
    pub(super) fn data(&self) -> Result<DataArea<'_>> {
        self.data_area()
            .ok_or_else(|| Error::invalid(&self.name, "data area outside mapping"))
    }

    /// [`data`](Self::data) without the error (the fast path hands that
    /// case to the general path, which reports it).
    #[inline(always)]
    pub(super) fn data_area(&self) -> Option<DataArea<'_>> {
        self.seg.area(DATA_OFFSET, self.max_capacity)
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn kind(&self) -> Kind {
        self.kind
    }

    pub(crate) fn maxsize(&self) -> u64 {
        self.maxsize
    }

    /// Largest payload a single item may have.
    pub(crate) fn max_item_bytes(&self) -> u64 {
        self.max_capacity - RECORD_HEADER
    }

    /// [`fork_generation`] this attachment belongs to.
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    /// Whether the mapping lost its file's pages, as an error.
    #[inline(always)]
    pub(super) fn check_intact(&self) -> Result<()> {
        if self.seg.faulted() {
            return Err(self.truncated());
        }
        Ok(())
    }

    #[cold]
    #[inline(never)]
    fn truncated(&self) -> Error {
        Error::invalid(
            &self.name,
            "segment file was truncated by another process (or a page could not be \
             allocated in /dev/shm): the queue's contents are gone",
        )
    }

    /// Where this process counts its traffic: its slot, or the retired
    /// totals for a slotless (persistent-creator or inspecting) attachment.
    #[inline]
    pub(super) fn traffic(&self) -> &Traffic {
        let h = self.header();
        h.slots
            .get(self.slot)
            .map_or(&h.counters.retired, |s| &s.traffic)
    }

    pub(super) fn slot_ref(&self) -> Option<&Slot> {
        self.header().slots.get(self.slot)
    }
}

impl Watched for Shared {
    fn event(&self, ev: Event) -> &EventCount {
        let h = self.header();
        match ev {
            Event::Items => &h.items,
            Event::Space => &h.space,
            Event::Done => &h.done,
        }
    }

    fn is_intact(&self) -> bool {
        self.check_intact().is_ok()
    }
}
