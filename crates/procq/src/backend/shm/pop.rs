//! Popping items under the lock: the general path of every `get` (the
//! small-item fast path in `fast` and large-item takes in `take` end in
//! [`Locked::popped`] too).

use std::sync::atomic::Ordering;

use crate::error::Result;
use crate::kind::Kind;

use super::layout::OP_SET;
use super::locked::{monotonic_ns, Locked, Verdict};
use super::ring::{Front, Memory};

/// Most orphaned reservations one `pop_into` removes (the caller comes
/// back for the rest).
const MAX_ORPHANS_PER_POP: u64 = 1024;

impl Locked<'_> {
    /// Pops up to `max` items. `f` sees each item's bytes before it is
    /// removed and answers whether to take it; a refused item is still
    /// removed if it is the first (so a bad item never blocks the queue), and
    /// otherwise left for the next call; a left one stays in any case. Orphaned reservations at the front
    /// are removed on the way (not delivered, not counted); a live one
    /// stops the call (see [`Locked::head_reserved`]).
    pub(super) fn pop_into(
        &mut self,
        max: usize,
        f: &mut impl FnMut(&[u8]) -> Verdict,
    ) -> Result<usize> {
        self.pop_into_from(None, max, f)
    }

    /// [`pop_into`](Self::pop_into), starting from `first`, the front
    /// record as [`Ring::front`](super::ring::Ring::front) found it under
    /// this hold with the ring unchanged since (`None`: read it here).
    pub(super) fn pop_into_from(
        &mut self,
        mut first: Option<Front>,
        max: usize,
        f: &mut impl FnMut(&[u8]) -> Verdict,
    ) -> Result<usize> {
        let sh = self.sh;
        let mem = sh.data()?;
        let mut n = 0;
        let mut orphans = 0u64;
        let mut got_bytes = 0u64;
        while n < max {
            let front = match first.take() {
                Some(front) => front,
                None => match self.state.ring.front(&mem).map_err(|c| self.corrupt(c.0))? {
                    Some(front) => front,
                    None => break,
                },
            };
            if front
                .taken
                .is_some_and(|tag| self.loan_is_live(tag, front.pos))
            {
                // Another consumer is reading it: wait for it (items stay in
                // order). A dead reader's take is an item again.
                self.head_reserved = true;
                break;
            }
            if let Some(tag) = front.reserved {
                if self.loan_is_live(tag, front.pos) {
                    self.head_reserved = true;
                    break;
                }
                // Only dead producers leave orphans, but hostile memory can
                // hold any number: bound the work of one lock hold.
                if orphans >= MAX_ORPHANS_PER_POP {
                    break;
                }
                let s = &mut self.state;
                s.ring.pop(&front);
                s.unfinished = s.unfinished.saturating_sub(1);
                self.wake_done |= s.unfinished == 0;
                orphans += 1;
                continue;
            }
            let verdict = mem
                .read_with(front.off, front.len, &mut *f)
                .ok_or_else(|| self.corrupt("item out of bounds"))?;
            // What `f` saw may be zeros from a truncated file (see `sigbus`).
            sh.check_intact()?;
            let accepted = verdict == Verdict::Take;
            if verdict == Verdict::Leave || (!accepted && n > 0) {
                break;
            }
            self.state.ring.pop(&front);
            // Counters come from shared memory: never trust them not to wrap.
            got_bytes = got_bytes.wrapping_add(front.len);
            n += 1;
            if !accepted {
                break;
            }
        }
        if n == 0 && orphans == 0 {
            return Ok(0);
        }
        self.popped(n as u64, orphans, got_bytes);
        Ok(n)
    }

    /// Accounts for `n` items (`got_bytes` payload bytes) and `orphans`
    /// orphaned reservations popped from the working state, and commits.
    pub(super) fn popped(&mut self, n: u64, orphans: u64, got_bytes: u64) {
        let sh = self.sh;
        if sh.kind == Kind::Queue {
            let s = &mut self.state;
            s.unfinished = s.unfinished.saturating_sub(n);
        }
        if orphans > 0 {
            self.sh
                .header()
                .counters
                .orphans
                .fetch_add(orphans, Ordering::Relaxed);
        }
        // Only a ring that holds more than its minimum can shrink, so only
        // then is the clock read (a queue of small items never pays for it).
        if self.state.ring.count == 0 && self.reserved_extent() > sh.min_capacity {
            self.shrink_keeping_pages();
            self.state.empty_since = monotonic_ns();
        }
        if sh.kind == Kind::Joinable && n > 0 {
            let taken = sh.slot_ref().map_or(0, |s| s.tasks.load(Ordering::Relaxed));
            self.journal(sh.slot, OP_SET, taken.saturating_add(n));
        }
        self.commit();
        self.wake_space = true;
        sh.traffic().count(false, n, got_bytes);
    }
}
