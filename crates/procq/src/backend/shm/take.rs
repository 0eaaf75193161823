//! Large items are copied out of the queue without the lock, by several
//! consumers at once: a consumer *takes* an item under the lock (its record
//! header names the consumer's slot, the slot's loan entry names the
//! record), reads it without the lock, and pops it under a second, short
//! hold.
//!
//! Taking commits nothing: the record stays in place, counted as an item,
//! so no producer can overwrite its bytes (the ring only reuses space behind
//! the head) and growth does not move it (see `Locked::grow`). A take is
//! *live* while the slot's loan entry names the record and the slot's owner
//! lives, as a reservation is (see "Loans" in `layout`); a take that is not
//! live is an item again, for the next reader.
//!
//! A reader looks past the records being read (and those read and freed)
//! for the first item no live process reads: the first item, or a large
//! one behind a live take (a small one waits, and so does anything behind
//! a reservation: small items keep their order). Popping the head record
//! moves the head, past the freed records after it too. Popping a record
//! behind the head counts it out and marks it `DONE` in one commit: the
//! journal entry (`OP_FINISH`) names the slot, whose loan entry names the
//! record, and applying it marks the record, clears the loan entry and
//! sets the slot's count of taken tasks, idempotently, as every journal
//! entry (see "Commit protocol" in `layout`). Takes stop `MAX_SKIP`
//! records behind the head, so the freed records the head skips stay few.
//!
//! So a consumer killed after taking and before its pop committed leaves
//! the item in place, to be delivered once, and its task count untouched;
//! killed after the pop committed, it is a consumer killed after its `get`
//! took the item, as for small items.

use std::sync::atomic::Ordering;

use crate::error::Result;
use crate::kind::Kind;

use super::layout::{LOAN_BYTES, OP_FINISH};
use super::locked::Locked;
use super::ring::{Front, MAX_SKIP};

/// An item this process has taken (see "Loans" in `layout`): it reads
/// the payload without the lock, then pops it with
/// [`Locked::finish_take`] or gives it back with [`Locked::untake`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Taken {
    /// Position of the record.
    pos: u64,
    /// Offset of its payload in the data area.
    pub(super) off: u64,
    /// Payload length.
    pub(super) len: u64,
}

/// What [`Locked::take_front`] found.
#[derive(Debug)]
pub(crate) enum TakeFront {
    /// The front item, taken by this process.
    Taken(Taken),
    /// The front record is being copied into or out of by a live process:
    /// nothing can be had now.
    Busy,
    /// Anything else (no item, a small one, an orphan first): for
    /// [`Locked::pop_into`].
    No,
}

impl Locked<'_> {
    /// The front record, and whether a get of one item must go through
    /// [`take_front`](Self::take_front): only a large item or a taken
    /// record may be taken or make the get wait. A small item first in line
    /// (the common case), a reservation or an empty ring are
    /// [`pop_into`](Self::pop_into)'s, which `take_front` would answer
    /// with [`TakeFront::No`] after walking the same records: the peeked
    /// front goes to `pop_into_from` instead, so a small get reads its
    /// header once and leaves the slot's loan alone.
    pub(super) fn peek_front(&self) -> Result<(Option<Front>, bool)> {
        let mem = self.sh.data()?;
        let front = self.state.ring.front(&mem).map_err(|c| self.corrupt(c.0))?;
        let take = front
            .is_some_and(|f| f.reserved.is_none() && (f.taken.is_some() || f.len >= LOAN_BYTES));
        Ok((front, take))
    }

    /// Takes the first item that no live process is reading, for this
    /// process to read without the lock, if it is large or the first (see
    /// the module docs): its record stays in place, marked as this slot's,
    /// until [`finish_take`](Self::finish_take) pops it or
    /// [`untake`](Self::untake) gives it back. Nothing is committed: a
    /// process killed before the finish leaves an item whose take is not
    /// live, which the next reader takes (or pops) again. The caller has a
    /// slot and holds its loan.
    pub(super) fn take_front(&mut self) -> Result<TakeFront> {
        let sh = self.sh;
        let mem = sh.data()?;
        let ring = self.state.ring;
        let mut pos = ring.head;
        // Whether a record before `pos` is being read by a live process.
        let mut behind = false;
        let mut found = None;
        // Bounded: takes stop `MAX_SKIP` records behind the head.
        for _ in 0..MAX_SKIP + 2 {
            if ring.count == 0 || pos >= ring.tail {
                break;
            }
            match ring.record_at(&mem, pos).map_err(|c| self.corrupt(c.0))? {
                // Padding, or a record read and freed.
                Err(next) => pos = next,
                Ok(rec) if rec.taken.is_some_and(|tag| self.loan_is_live(tag, rec.pos)) => {
                    behind = true;
                    pos = rec.new_head;
                }
                Ok(rec) => {
                    found = Some(rec);
                    break;
                }
            }
        }
        let takes = |rec: &Front| rec.reserved.is_none() && (rec.len >= LOAN_BYTES || !behind);
        match found {
            // Behind a live take: only a large item, so that freed records
            // stay few and small items keep their order behind it.
            Some(rec) if takes(&rec) && (behind || rec.len >= LOAN_BYTES) => {
                let loan = self.own_loan()?;
                self.state
                    .ring
                    .take(&mem, rec.pos, sh.slot as u32)
                    .map_err(|c| self.corrupt(c.0))?;
                loan.store(rec.pos + 1, Ordering::Relaxed);
                Ok(TakeFront::Taken(Taken {
                    pos: rec.pos,
                    off: rec.off,
                    len: rec.len,
                }))
            }
            // A small item, a reservation or an orphan first in line:
            // `pop_into`'s.
            _ if !behind => Ok(TakeFront::No),
            _ => {
                self.head_reserved = true;
                Ok(TakeFront::Busy)
            }
        }
    }

    /// Pops the item this process has taken and read: from the head, or,
    /// behind a record still being read, by counting it out and marking
    /// it freed in the same commit (through the journal, so a process
    /// killed in between leaves it marked by the next locker). `clear`
    /// (false only in the crash tests) clears the loan entry after a pop
    /// from the head.
    pub(super) fn finish_take(&mut self, t: &Taken, clear: bool) -> Result<()> {
        let sh = self.sh;
        // The read may have run into a truncated file (see `sigbus`).
        sh.check_intact()?;
        let mem = sh.data()?;
        let loan = self.own_loan()?;
        let tag = sh.slot as u32;
        if loan.load(Ordering::Relaxed) != t.pos + 1 || !self.state.ring.taken_by(&mem, t.pos, tag)
        {
            return Err(self.corrupt("a taken item vanished"));
        }
        let front = self.state.ring.front(&mem).map_err(|c| self.corrupt(c.0))?;
        match front {
            Some(front) if front.pos == t.pos => {
                self.state.ring.pop(&front);
                // Records read behind it may follow: their space too.
                self.state.ring.skip_freed(&mem);
                self.popped(1, 0, front.len);
                // Readers that waited for this item may go on to the next.
                self.wake_items |= self.state.ring.count > 0;
                if clear {
                    self.clear_loan();
                }
            }
            Some(_) => {
                self.state.ring.pop_behind();
                let joinable = sh.kind == Kind::Joinable;
                if !joinable {
                    let s = &mut self.state;
                    s.unfinished = s.unfinished.saturating_sub(1);
                }
                let tasks = sh.slot_ref().map_or(0, |s| s.tasks.load(Ordering::Relaxed));
                self.journal(
                    sh.slot,
                    OP_FINISH,
                    tasks.saturating_add(u64::from(joinable)),
                );
                self.commit();
                // One item fewer: a put waiting for room under `maxsize`
                // may go on (the bytes stay taken until the head passes).
                self.wake_space = true;
                sh.traffic().count(false, 1, t.len);
            }
            None => return Err(self.corrupt("a taken item vanished")),
        }
        Ok(())
    }

    /// Gives back the item this process has taken: it is first in line
    /// again, for any reader.
    pub(super) fn untake(&mut self, t: &Taken) {
        if let Ok(mem) = self.sh.data() {
            self.state.ring.untake(&mem, t.pos, self.sh.slot as u32);
        }
        self.clear_loan();
        self.wake_items = true;
    }

    fn clear_loan(&self) {
        if let Some(l) = self.sh.header().loans.get(self.sh.slot) {
            l.store(0, Ordering::Relaxed);
        }
    }
}
