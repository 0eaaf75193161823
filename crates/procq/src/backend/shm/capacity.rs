//! The ring's capacity: how it grows, keeps its pages when it empties,
//! and gives them back once idle.
//!
//! # Keeping pages
//!
//! A ring that has grown is used as a whole: its positions run through all
//! of `cap` before they wrap, whatever the queue's depth, so a ring grown
//! by a burst makes every later item land in memory no cache holds (1 MiB
//! items moved 2–4× slower through a 128 MiB ring than through an 8 MiB
//! one, measured in docs/performance-history.md). So the moment a busy ring
//! empties, [`Locked::popped`] gives it a small modulus again
//! ([`HOT_CAPACITY`], or the initial capacity if larger) *without* giving
//! its pages back: [`Header::kept`] says how many bytes of the data area
//! stay reserved, and a later growth into them skips the `fallocate` and
//! touches pages every process has already mapped. The pages go back to
//! the system only once the queue has stayed empty for [`SHRINK_AFTER`]
//! ([`Locked::shrink_if_idle`]). The order of the stores keeps
//! `kept` from ever claiming a page that is not reserved (a growth that
//! trusts it writes without `fallocate`, where a hole on a full
//! `/dev/shm` would raise `SIGBUS`): [`Locked::grow`] raises it after the
//! `fallocate`; the release lowers it before the punch, and punches the
//! whole data area above the initial capacity, so pages a killed release
//! left unclaimed go back at the next one.
//!
//! A burst of large items is also kept from growing the ring as deep as
//! the scheduling lets the producers run ahead: a blocking put of a large
//! item does not double a ring of [`HOLD_GROWTH_FROM`] bytes or more that
//! holds items while the consumers free space (see `Shared::push_loaned`).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

use super::layout::DATA_OFFSET;
use super::locked::{monotonic_ns, Locked};
use super::ring::{record_size, Push};
use super::segment::DataArea;
use super::shared::Shared;

/// How long a ring must stay empty before it shrinks back (hysteresis: a
/// queue that drains and refills constantly must not free and re-reserve
/// its memory every time).
pub(super) const SHRINK_AFTER: Duration = Duration::from_millis(20);
/// The modulus a busy ring above it takes when it empties (keeping its
/// pages, see "Keeping pages"): an 8 MiB ring holds seven 1 MiB items and
/// stays within the caches of the 2-core machine the bench runs on.
const HOT_CAPACITY: u64 = 8 << 20;
/// Ring size from which a blocking put of a large item lets the consumers
/// make room before it doubles the ring (see [`Shared::push_loaned`]): a
/// burst of large items otherwise grows the ring as deep as the scheduling
/// lets the producers run ahead (256 MiB–1 GiB at 1 MiB, 4 producers and
/// 4 consumers on 2 cores), and every process faults in each new page and
/// copies into memory no cache holds. The hot ring's size: with a ring
/// that stays within the caches while the consumers keep up, the bench's
/// 64 KiB and 1 MiB rows cost 35–60% of the CPU per item they cost with a
/// 32 MiB one, for one producer and consumer as for four of each
/// (docs/performance-history.md, "Large items, fourth pass").
pub(crate) const HOLD_GROWTH_FROM: u64 = HOT_CAPACITY;
/// Tests: the step of "Keeping pages" ([`KeepStep`] as a number) at which
/// this process SIGKILLs itself, holding the lock; 0: none (see
/// `__fuzzing::kill_at_keep_step`).
#[cfg(any(test, feature = "testing"))]
pub(crate) static KEEP_KILL_AT: std::sync::atomic::AtomicUsize =
    std::sync::atomic::AtomicUsize::new(0);

/// The points between the stores of "Keeping pages" where the crash tests
/// kill a process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeepStep {
    /// Growth: the new half reserved, not yet claimed in `kept`.
    Reserved = 1,
    /// A ring that emptied: its pages claimed in `kept`, the smaller
    /// modulus not yet committed.
    Claimed = 2,
    /// Release: the shrink to the initial capacity committed, `kept` still
    /// claiming the pages.
    Shrunk = 3,
    /// Release: `kept` lowered, the pages not yet punched.
    Unclaimed = 4,
}

/// Kills this process here if a test asked for `step`.
#[inline]
pub(super) fn keep_step(step: KeepStep) {
    #[cfg(any(test, feature = "testing"))]
    if KEEP_KILL_AT.load(Ordering::Relaxed) == step as usize {
        let _ =
            rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL);
        std::process::abort(); // not reached: SIGKILL is immediate
    }
    let _ = step;
}

impl Shared {
    /// [`Locked::reserved_extent`] of a ring of capacity `cap`.
    #[inline]
    pub(super) fn reserved_extent(&self, cap: u64) -> u64 {
        let kept = self.header().kept.load(Ordering::Relaxed);
        if kept.is_power_of_two() && kept <= self.max_capacity {
            kept.max(cap)
        } else {
            cap
        }
    }
}

impl Locked<'_> {
    /// Where a `len`-byte item goes, growing the ring if it must; `None` if
    /// the queue is full (or cannot grow now: see [`Locked::grow`]). With
    /// `hold`, a ring of [`HOLD_GROWTH_FROM`] bytes or more that holds
    /// items is not grown: `None`, and [`Locked::held_back`] set.
    pub(super) fn plan(
        &mut self,
        len: u64,
        mem: &DataArea<'_>,
        hold: bool,
    ) -> Result<Option<Push>> {
        let sh = self.sh;
        if sh.maxsize > 0 && self.state.ring.count >= sh.maxsize {
            return Ok(None);
        }
        loop {
            match self.state.ring.plan_push(len) {
                Some(plan) => return Ok(Some(plan)),
                None if self.state.ring.cap < sh.max_capacity => {
                    let ring = &self.state.ring;
                    // At least four such records (header and padding
                    // included) fit in the ring it keeps.
                    let four = record_size(len).map_or(u64::MAX, |r| r.saturating_mul(4));
                    if hold && ring.count > 0 && ring.cap >= HOLD_GROWTH_FROM.max(four) {
                        self.held_back = true;
                        return Ok(None);
                    }
                    if !self.grow(mem)? {
                        return Ok(None);
                    }
                }
                None => return Ok(None),
            }
        }
    }

    /// Whether a live reservation or take lies in the part of the ring
    /// that growth would move (positions with the `cap` bit set): its
    /// producer is still writing, or its consumer reading, at the old
    /// offset.
    fn growth_blocked(&self, mem: &DataArea<'_>) -> bool {
        let ring = &self.state.ring;
        self.sh.header().loans.iter().any(|l| {
            let pos = l.load(Ordering::Relaxed).wrapping_sub(1);
            pos & ring.cap != 0
                && ring
                    .loaned_at(mem, pos)
                    .is_some_and(|tag| self.loan_is_live(tag, pos))
        })
    }

    /// Bytes at the start of the data area whose pages are reserved: the
    /// ring's own, or more if an empty ring kept its pages
    /// ([`Header::kept`], ignored unless a power of two within the data
    /// area).
    pub(super) fn reserved_extent(&self) -> u64 {
        self.sh.reserved_extent(self.state.ring.cap)
    }

    /// Gives an empty ring above [`HOT_CAPACITY`] that modulus again,
    /// keeping its pages (see "Keeping pages"); the caller commits.
    pub(super) fn shrink_keeping_pages(&mut self) {
        let hot = self.sh.min_capacity.max(HOT_CAPACITY);
        if self.state.ring.count != 0 || self.state.ring.cap <= hot {
            return;
        }
        // Pages `[0, cap)` are reserved: claim them before the commit
        // that stops the ring from covering them.
        let extent = self.reserved_extent();
        self.sh.header().kept.store(extent, Ordering::Relaxed);
        keep_step(KeepStep::Claimed);
        self.state.ring.shrink_empty(hot);
    }

    /// Shrinks an idle ring back to its initial size and gives the memory
    /// back, kept pages included, once it has stayed empty for
    /// [`SHRINK_AFTER`]. Returns when to look again if it is empty but not
    /// yet idle long enough.
    pub(super) fn shrink_if_idle(&mut self) -> Option<Instant> {
        let sh = self.sh;
        let extent = self.reserved_extent();
        let s = &mut self.state;
        if s.ring.count != 0 || extent <= sh.min_capacity || s.empty_since == 0 {
            return None;
        }
        let idle = Duration::from_nanos(monotonic_ns().saturating_sub(s.empty_since));
        if idle < SHRINK_AFTER {
            return Some(Instant::now() + (SHRINK_AFTER - idle));
        }
        s.ring.shrink_empty(sh.min_capacity);
        self.commit();
        keep_step(KeepStep::Shrunk);
        // Still under the lock: nobody can grow into this range yet. The
        // claim goes first (a kill before the punch leaves pages
        // unclaimed, which the next release punches: it punches all of
        // the data area above the initial capacity, holes cost nothing).
        sh.header().kept.store(0, Ordering::Relaxed);
        keep_step(KeepStep::Unclaimed);
        let _ = sh.seg.release(
            DATA_OFFSET + sh.min_capacity,
            sh.max_capacity - sh.min_capacity,
        );
        None
    }

    /// Doubles the ring, reserving the new memory first; `Ok(false)` if a
    /// live reservation would have to move (the caller waits for room).
    pub(super) fn grow(&mut self, mem: &DataArea<'_>) -> Result<bool> {
        if self.growth_blocked(mem) {
            return Ok(false);
        }
        let cap = self.state.ring.cap;
        // Pages an empty ring kept need no reservation (see "Keeping
        // pages").
        if self.reserved_extent() < 2 * cap {
            self.sh.seg.allocate(DATA_OFFSET + cap, cap).map_err(|e| {
                Error::io(
                    format!(
                        "growing queue {:?} to {} bytes (is /dev/shm full? see --shm-size)",
                        self.sh.name,
                        2 * cap
                    ),
                    e,
                )
            })?;
            keep_step(KeepStep::Reserved);
            // Claimed only once reserved.
            self.sh.header().kept.store(2 * cap, Ordering::Relaxed);
        }
        self.state.ring.grow(mem).map_err(|c| self.corrupt(c.0))?;
        self.commit();
        Ok(true)
    }
}
