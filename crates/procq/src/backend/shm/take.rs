//! Large items are copied out of the queue without the lock: a consumer
//! *takes* the front item under the lock (its record header names the
//! consumer's slot, the slot's loan entry names the record), reads it
//! without the lock, and pops it under a second, short hold.
//!
//! Taking commits nothing: the record stays at the head, counted as an item,
//! so no producer can overwrite its bytes (the ring only reuses space behind
//! the head) and growth does not move it (see `Locked::grow`). Other readers
//! find it at the front and wait for it, so items keep their order. A take
//! is *live* while the slot's loan entry names the record and the slot's
//! owner lives, as a reservation is (see "Loans" in `layout`); a take that
//! is not live is an item again. So a consumer killed after taking and
//! before its pop committed leaves the item first in line, to be delivered
//! once, and its task count untouched; killed after the pop committed, it
//! is a consumer killed after its `get` took the item, as for small items.
//! The pop is one commit like any other, journal included.

use std::sync::atomic::Ordering;

use crate::error::Result;

use super::layout::LOAN_BYTES;
use super::locked::Locked;

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
    /// Takes the front item for this process to read without the lock if
    /// it is large (see "Loans" in `layout`): its record stays at the head,
    /// marked as this slot's, until [`finish_take`](Self::finish_take) pops
    /// it or [`untake`](Self::untake) gives it back. Nothing is committed:
    /// a process killed before the finish leaves an item whose take is not
    /// live, which the next reader takes (or pops) again. The caller has a
    /// slot and holds its loan.
    pub(super) fn take_front(&mut self) -> Result<TakeFront> {
        let sh = self.sh;
        let mem = sh.data()?;
        let Some(front) = self.state.ring.front(&mem).map_err(|c| self.corrupt(c.0))? else {
            return Ok(TakeFront::No);
        };
        if front
            .reserved
            .or(front.taken)
            .is_some_and(|tag| self.loan_is_live(tag, front.pos))
        {
            self.head_reserved = true;
            return Ok(TakeFront::Busy);
        }
        if front.reserved.is_some() || front.len < LOAN_BYTES {
            return Ok(TakeFront::No);
        }
        let loan = sh
            .header()
            .loans
            .get(sh.slot)
            .ok_or_else(|| self.corrupt("a loan without a slot"))?;
        self.state
            .ring
            .take(&mem, front.pos, sh.slot as u32)
            .map_err(|c| self.corrupt(c.0))?;
        loan.store(front.pos + 1, Ordering::Relaxed);
        Ok(TakeFront::Taken(Taken {
            pos: front.pos,
            off: front.off,
            len: front.len,
        }))
    }

    /// Pops the item this process has taken and read. `clear` (false only
    /// in the crash tests) clears the loan entry after the commit.
    pub(super) fn finish_take(&mut self, t: &Taken, clear: bool) -> Result<()> {
        let sh = self.sh;
        // The read may have run into a truncated file (see `sigbus`).
        sh.check_intact()?;
        let mem = sh.data()?;
        let loan = sh
            .header()
            .loans
            .get(sh.slot)
            .ok_or_else(|| self.corrupt("a loan without a slot"))?;
        let front = self.state.ring.front(&mem).map_err(|c| self.corrupt(c.0))?;
        let Some(front) = front.filter(|f| {
            f.pos == t.pos
                && f.taken == Some(sh.slot as u32)
                && loan.load(Ordering::Relaxed) == t.pos + 1
        }) else {
            return Err(self.corrupt("a taken item vanished"));
        };
        self.state.ring.pop(&front);
        self.popped(1, 0, front.len);
        // Readers that waited for this item may go on to the next.
        self.wake_items |= self.state.ring.count > 0;
        if clear {
            self.clear_loan();
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
