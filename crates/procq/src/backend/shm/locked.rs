//! [`Locked`]: the queue lock held, and every change made under it.
//!
//! Taking the lock ([`Shared::lock_until`]) repairs the queue if its last
//! holder died: the committed state is consistent by construction (see
//! `layout`), so recovery only replays the journal and reclaims the slots
//! of dead processes. Every mutation edits the guard's working copy of the
//! state and publishes it with [`Locked::commit`]; the one update outside
//! the state, a slot's count of taken tasks, goes through the journal
//! ([`Locked::journal`], applied right after the commit and replayed by
//! recovery). Dropping the guard unlocks and then wakes whoever the change
//! concerns.
//!
//! Large items are copied outside the lock: [`Locked::try_reserve`],
//! the copy, then [`Locked::publish`] (see "Loans" in `layout`); and out of
//! it: [`Locked::take_front`], the copy, then [`Locked::finish_take`].
//!
//! How the ring grows, keeps its pages and shrinks is in `capacity`; the
//! general pop is in `pop`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::block::Block;
use crate::codec::Encoded;
use crate::error::{Error, Result};
use crate::kind::Kind;

use super::layout::*;
use super::liveness::Token;
use super::ring::{Memory, Ring};
use super::shared::Shared;
use super::sync::{Acquired, Busy, Holder, Holders};

/// How long a call with a shorter (or no: `_nowait`) timeout, and an
/// inspection, waits for the lock before it reports [`Error::LockBusy`]:
/// critical sections take microseconds, so a holder that keeps the lock
/// this long is stopped or stuck, not slow.
pub(crate) const LOCK_PATIENCE: Duration = Duration::from_secs(1);

/// `Some(now + d)`.
pub(super) fn within(d: Duration) -> Option<Instant> {
    Some(Instant::now() + d)
}

/// Until when a call blocking like `block` waits for the queue lock: its
/// own deadline, but at least [`LOCK_PATIENCE`] from now; no limit for a
/// call that waits forever.
///
/// A call that waits forever reads no clock: `put` and `get` pay for no
/// `clock_gettime` (measured: 12% of a small item's `put` on the 2-core VM).
/// Nor does any other while the lock is free: the fast path works this out
/// only when its first attempt finds the lock taken (see
/// [`Shared::acquire_for`]; it was about 3% of a Python `get`).
#[inline]
pub(super) fn lock_deadline(block: Block) -> Option<Instant> {
    let patient = || Instant::now() + LOCK_PATIENCE;
    match block {
        Block::Forever => None,
        Block::No => Some(patient()),
        Block::Until(d) => Some(d.max(patient())),
    }
}

/// `CLOCK_MONOTONIC` in nanoseconds: one clock for every process.
pub(super) fn monotonic_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    (t.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(t.tv_nsec as u64)
}

/// Tells [`sync::RobustLock`] whether a stamp's owner lives, from this
/// attachment's point of view.
struct Oracle<'a> {
    token: &'a Token,
    table: &'a [TokenCell],
}

impl Holders for Oracle<'_> {
    fn holder(&self, stamp: u32) -> Holder {
        self.token.holder_of(self.table, stamp)
    }

    fn is_valid(&self, stamp: u32) -> bool {
        Token::stamp_is_valid(stamp)
    }
}

impl Shared {
    /// Checks a state read from shared memory (once per lock hold:
    /// everything after relies on it); answers what is wrong.
    #[inline]
    pub(super) fn check_state(&self, s: &State) -> std::result::Result<(), &'static str> {
        self.check_parts(&s.ring, s.unfinished, (s.journal_slot, s.journal_op))
    }

    /// [`check_state`](Self::check_state) of the fields that the checks
    /// read (the fast path has them as words, see `fast`): the ring, the
    /// unfinished tasks, the journal's slot and operation.
    #[inline(always)]
    pub(super) fn check_parts(
        &self,
        ring: &Ring,
        unfinished: u64,
        (journal_slot, journal_op): (u64, u64),
    ) -> std::result::Result<(), &'static str> {
        ring.validate(self.max_capacity).map_err(|c| c.0)?;
        if ring.cap < self.min_capacity {
            return Err("capacity below minimum");
        }
        if self.kind == Kind::Joinable && unfinished < ring.count {
            return Err("fewer unfinished tasks than items");
        }
        if journal_slot as usize > MAX_SLOTS || journal_op > OP_FINISH {
            return Err("bad journal entry");
        }
        Ok(())
    }

    /// The scratch cell this attachment commits through (see
    /// [`Header::commit`]).
    #[inline]
    pub(super) fn scratch(&self) -> u32 {
        if self.slot < MAX_SLOTS {
            CURRENT_SCRATCH + self.slot as u32
        } else {
            CURRENT_SPARE
        }
    }

    /// Takes the lock, repairing the queue if its last holder died: waits
    /// as long as a live holder keeps it, or, for an inspection-only
    /// attachment, [`LOCK_PATIENCE`].
    pub(crate) fn lock(&self) -> Result<Locked<'_>> {
        self.lock_until(self.inspector.then(|| Instant::now() + LOCK_PATIENCE))
    }

    /// Takes the lock, waiting for a live holder until `deadline` (`None`:
    /// without limit), and repairs the queue if its last holder died.
    pub(crate) fn lock_until(&self, deadline: Option<Instant>) -> Result<Locked<'_>> {
        let acquired = self.acquire(deadline)?;
        self.adopt(acquired)
    }

    /// Takes the lock word only (see [`lock_until`](Self::lock_until)):
    /// the caller must [`adopt`](Self::adopt) it, or, after a clean
    /// acquisition, check the state itself and unlock (see `fast`).
    #[inline]
    pub(super) fn acquire(&self, deadline: Option<Instant>) -> Result<Acquired> {
        self.header()
            .lock
            .lock(self.token.stamp(), deadline, &self.oracle())
            .map_err(|busy| self.busy(busy))
    }

    /// Who holds the lock, as this attachment can tell (for the lock's
    /// waits).
    #[inline]
    fn oracle(&self) -> Oracle<'_> {
        Oracle {
            token: &self.token,
            table: &self.header().tokens,
        }
    }

    /// [`acquire`](Self::acquire) for a call blocking like `block`: the
    /// lock's deadline ([`lock_deadline`], a clock read for a call that may
    /// not wait forever) is worked out only if the lock is held by another.
    #[inline(always)]
    pub(super) fn acquire_for(&self, block: Block) -> Result<Acquired> {
        if self.header().lock.try_lock(self.token.stamp()) {
            return Ok(Acquired::Clean);
        }
        self.acquire_contended(lock_deadline(block))
    }

    /// [`acquire_for`](Self::acquire_for) past a first attempt that found
    /// the lock taken.
    #[cold]
    #[inline(never)]
    fn acquire_contended(&self, deadline: Option<Instant>) -> Result<Acquired> {
        self.header()
            .lock
            .lock_slow(self.token.stamp(), deadline, &self.oracle())
            .map_err(|busy| self.busy(busy))
    }

    #[cold]
    fn busy(&self, busy: Busy) -> Error {
        Error::LockBusy {
            name: self.name.clone(),
            pid: Token::pid_of(&self.header().tokens, busy.stamp),
            waited: busy.waited,
        }
    }

    /// The guard of a lock this thread has just [`acquire`](Self::acquire)d
    /// as `acquired`: reads and checks the committed state, repairing the
    /// queue first if its last holder died.
    pub(super) fn adopt(&self, acquired: Acquired) -> Result<Locked<'_>> {
        let h = self.header();
        let mut g = Locked {
            sh: self,
            // Replaced by the committed state below, unless that is
            // unreadable (then the guard only unlocks).
            state: State::default(),
            journal_fresh: false,
            wake_items: false,
            wake_space: false,
            wake_done: false,
            head_reserved: false,
            held_back: false,
        };
        self.check_intact()?;
        match h.state() {
            Some(state) => g.state = state,
            None => return Err(g.corrupt("committed state index out of range")),
        }
        if acquired == Acquired::OwnerDied {
            h.counters.recoveries.fetch_add(1, Ordering::Relaxed);
            // The committed state is consistent by construction; what is left
            // is the journal and the slots of processes that died.
            g.validate()?;
            if h.in_scratch() {
                // The dead holder was between the two steps of a commit:
                // finish it (its scratch cell holds the whole new state).
                g.commit_again();
            }
            g.apply_journal();
            g.sweep();
            // Whatever the dead process was about to announce, announce it.
            g.wake_items = true;
            g.wake_space = true;
            g.wake_done = g.state.unfinished == 0;
        }
        g.validate()?;
        Ok(g)
    }
}

/// The lock guard. Unlocks on drop, then wakes whoever the change concerns.
pub(crate) struct Locked<'a> {
    pub(super) sh: &'a Shared,
    /// Working copy of the committed state; published by `commit`.
    pub(crate) state: State,
    /// `journal` wrote an entry that the next `commit` numbers and applies.
    journal_fresh: bool,
    pub(super) wake_items: bool,
    pub(super) wake_space: bool,
    pub(super) wake_done: bool,
    /// Set by `pop_into` (and `take_front`) when the front record is a
    /// live reservation or a live take (its producer or consumer is still
    /// copying): a waiter then looks again soon, in case that process dies.
    pub(super) head_reserved: bool,
    /// Set by [`Locked::plan`] when it held back a growth it could have
    /// made (see `capacity::HOLD_GROWTH_FROM`).
    pub(super) held_back: bool,
}

/// What a getter's closure says about the item it saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Take it.
    Take,
    /// Refuse it: removed all the same if it is the first of the call (a
    /// bad item never blocks the queue), else left for the next call.
    Refuse,
    /// Leave it where it is, first in line.
    Leave,
}

impl From<bool> for Verdict {
    fn from(take: bool) -> Verdict {
        if take {
            Verdict::Take
        } else {
            Verdict::Refuse
        }
    }
}

/// A record reserved by this process (see "Loans" in `layout`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Loan {
    /// Position of the record.
    pos: u64,
    /// Offset of its payload in the data area.
    pub(super) off: u64,
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        let h = self.sh.header();
        h.lock.unlock(self.sh.token.stamp());
        if self.wake_items {
            h.items.notify_all();
        }
        if self.wake_space {
            // Producers of a full queue may wait for it to be half empty
            // (see `wait`); a shutdown wakes them whatever the level.
            let level = if self.state.shutdown {
                0
            } else {
                self.state.ring.count
            };
            h.space.notify_level(level);
        }
        if self.wake_done {
            h.done.notify_all();
        }
    }
}

impl<'a> Locked<'a> {
    /// This process's loan entry (see "Loans" in `layout`), for a caller
    /// that has a slot.
    pub(super) fn own_loan(&self) -> Result<&'a AtomicU64> {
        let sh = self.sh;
        sh.header()
            .loans
            .get(sh.slot)
            .ok_or_else(|| self.corrupt("a loan without a slot"))
    }
}

impl Locked<'_> {
    pub(super) fn corrupt(&self, what: &str) -> Error {
        Error::invalid(&self.sh.name, format!("corrupted shared memory: {what}"))
    }

    /// Checks the working state read from shared memory (once per lock
    /// hold: everything after relies on it).
    #[inline]
    pub(super) fn validate(&self) -> Result<()> {
        // The checks answer a word (cheap to return on every lock); only a
        // failure builds the `Error`.
        self.sh
            .check_state(&self.state)
            .map_err(|what| self.corrupt(what))
    }

    /// Removes the name of a queue nobody uses any more, exactly once: only
    /// the process that flags the segment as removed (under the lock) may,
    /// and only while the name still refers to this segment. A holder of a
    /// queue that was removed meanwhile (`procq::remove`) finds it flagged
    /// and leaves the name alone — it may belong to a new queue by now.
    /// The name goes before the flag is set, so a process killed in between
    /// leaves a nameless segment (harmless), never a flagged one that
    /// blocks the name.
    pub(super) fn retire_name(&mut self) -> Result<bool> {
        let sh = self.sh;
        let h = sh.header();
        if h.unlinked.load(Ordering::Relaxed) != 0 {
            return Ok(false);
        }
        // On an error (the name could not be looked up or removed) the
        // segment stays openable, for `collect_garbage` to try again.
        let removed = sh.seg.unlink_if_same(&sh.name)?;
        h.unlinked.store(1, Ordering::Relaxed);
        Ok(removed)
    }

    /// Publishes the working state.
    pub(super) fn commit(&mut self) {
        // A journal entry written since the last commit gets the next
        // generation. Only such an entry needs applying here: an older one
        // was applied by the commit that wrote it (or by recovery), and
        // checking it again would read another process's slot on every put.
        let fresh = std::mem::take(&mut self.journal_fresh);
        if fresh {
            self.state.journal_gen = self.state.journal_gen.wrapping_add(1).max(1);
        }
        self.sh.header().commit(&self.state, self.sh.scratch());
        if fresh {
            self.apply_journal();
        }
    }

    /// Stores the committed state, unchanged, back where it belongs (after
    /// a holder died in the middle of a commit).
    fn commit_again(&mut self) {
        self.sh.header().commit(&self.state, CURRENT_COMMITTED);
    }

    /// Records a slot update to apply right after the next commit.
    pub(super) fn journal(&mut self, slot: usize, op: u64, arg: u64) {
        if slot >= MAX_SLOTS {
            return; // persistent creators have no slot
        }
        self.state.journal_slot = slot as u64 + 1;
        self.state.journal_op = op;
        // The journal keeps 32 bits of argument.
        self.state.journal_arg = arg.min(u64::from(u32::MAX));
        self.journal_fresh = true; // numbered by `commit`
    }

    /// Applies the committed journal entry to its slot unless already done.
    ///
    /// Idempotent: the entry holds the slot's new count (not a change to
    /// it), and the slot records the full 64-bit generation of the last entry
    /// it applied *after* applying it, so a replay after a crash between the
    /// two stores only stores the same values again.
    pub(super) fn apply_journal(&self) {
        let s = &self.state;
        let Some(slot) = (s.journal_slot as usize)
            .checked_sub(1)
            .and_then(|i| self.sh.header().slots.get(i))
        else {
            return;
        };
        if slot.applied.load(Ordering::Relaxed) == s.journal_gen {
            return;
        }
        match s.journal_op {
            OP_SET => slot.tasks.store(s.journal_arg, Ordering::Relaxed),
            OP_FINISH => {
                let i = s.journal_slot as usize - 1;
                if let Some(loan) = self.sh.header().loans.get(i) {
                    let pos = loan.load(Ordering::Relaxed).wrapping_sub(1);
                    if let Ok(mem) = self.sh.data() {
                        s.ring.mark_done(&mem, pos, i as u32);
                    }
                    loan.store(0, Ordering::Relaxed);
                }
                slot.tasks.store(s.journal_arg, Ordering::Relaxed);
            }
            OP_RECLAIM => {
                // The slot's reservation, if any, becomes an orphan.
                if let Some(loan) = self.sh.header().loans.get(s.journal_slot as usize - 1) {
                    loan.store(0, Ordering::Relaxed);
                }
                slot.tasks.store(0, Ordering::Relaxed);
                slot.pid.store(0, Ordering::Relaxed);
                slot.owner_gen.store(0, Ordering::Relaxed);
                slot.owner.store(0, Ordering::Relaxed);
            }
            _ => {}
        }
        slot.applied.store(s.journal_gen, Ordering::Relaxed);
    }

    /// Claims a free slot for the calling process.
    pub(super) fn claim_slot(&mut self) -> Result<usize> {
        let (owner, gen) = self.sh.token.owner();
        for attempt in 0..2 {
            let slots = &self.sh.header().slots;
            if let Some(i) = slots
                .iter()
                .position(|s| s.owner.load(Ordering::Relaxed) == 0)
            {
                let slot = &slots[i];
                // A fresh slot has "seen" the current journal entry, so a
                // later recovery never replays an old entry onto it.
                slot.tasks.store(0, Ordering::Relaxed);
                self.sh.header().loans[i].store(0, Ordering::Relaxed);
                slot.applied
                    .store(self.state.journal_gen, Ordering::Relaxed);
                slot.traffic.retire_into(&self.sh.header().counters.retired);
                slot.pid.store(self.sh.pid, Ordering::Relaxed);
                slot.owner_gen.store(gen, Ordering::Relaxed);
                slot.owner.store(owner, Ordering::Relaxed);
                return Ok(i);
            }
            if attempt == 0 {
                self.sweep();
            }
        }
        Err(Error::invalid(
            &self.sh.name,
            format!("more than {MAX_SLOTS} processes attached"),
        ))
    }

    /// Reclaims the slots of processes that are no longer alive (their
    /// liveness tokens are gone: see `liveness`).
    pub(super) fn sweep(&mut self) {
        let h = self.sh.header();
        for i in 0..MAX_SLOTS {
            let slot = &h.slots[i];
            let owner = slot.owner.load(Ordering::Relaxed);
            if owner == 0 || i == self.sh.slot {
                continue;
            }
            let gen = slot.owner_gen.load(Ordering::Relaxed);
            if !self.sh.token.is_alive(&h.tokens, owner, gen) {
                self.reclaim(i);
                h.counters.reclaimed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Writes off a slot's unfinished tasks and frees it.
    pub(super) fn reclaim(&mut self, i: usize) {
        let h = self.sh.header();
        let Some(slot) = h.slots.get(i) else {
            return;
        };
        slot.traffic.retire_into(&h.counters.retired);
        let taken = slot.tasks.load(Ordering::Relaxed);
        let s = &mut self.state;
        let before = s.unfinished;
        s.unfinished = s.unfinished.saturating_sub(taken).max(s.ring.count);
        self.wake_done |= before != 0 && s.unfinished == 0;
        self.journal(i, OP_RECLAIM, 0);
        self.commit();
    }

    /// Pushes one item if it fits now; `Ok(false)` if the queue is full.
    pub(super) fn try_push(&mut self, item: &Encoded<'_>) -> Result<bool> {
        let sh = self.sh;
        let len = item.len();
        let mem = sh.data()?;
        let Some(plan) = self.plan(len, &mem, false)? else {
            return Ok(false);
        };
        let off = self
            .state
            .ring
            .write_headers(&mem, &plan, None)
            .map_err(|c| self.corrupt(c.0))?;
        if !mem.write(off, item.head) || !mem.write(off + item.head.len() as u64, item.body) {
            return Err(self.corrupt("payload out of bounds"));
        }
        // The copy may have run into a truncated file (see `sigbus`).
        sh.check_intact()?;
        let s = &mut self.state;
        s.ring.commit_push(&plan);
        s.unfinished = s.unfinished.saturating_add(1);
        self.wake_items = true;
        self.commit();
        sh.traffic().count(true, 1, len);
        Ok(true)
    }

    /// Reserves the record of a `len`-byte item for this process to copy
    /// into without the lock (see "Loans" in `layout`); `Ok(None)` if the
    /// queue is full, or if `hold` held back the ring's growth (see
    /// [`Locked::plan`]). The caller must [`publish`](Self::publish) or
    /// [`withdraw`](Self::withdraw) it, and has a slot (`sh.slot`).
    pub(super) fn try_reserve(&mut self, len: u64, hold: bool) -> Result<Option<Loan>> {
        let sh = self.sh;
        let mem = sh.data()?;
        let Some(plan) = self.plan(len, &mem, hold)? else {
            return Ok(None);
        };
        let loan = self.own_loan()?;
        let off = self
            .state
            .ring
            .write_headers(&mem, &plan, Some(sh.slot as u32))
            .map_err(|c| self.corrupt(c.0))?;
        // Before the commit: a reservation is never reachable without it.
        loan.store(plan.pos() + 1, Ordering::Relaxed);
        let s = &mut self.state;
        s.ring.commit_push(&plan);
        s.unfinished = s.unfinished.saturating_add(1);
        self.commit();
        Ok(Some(Loan {
            pos: plan.pos(),
            off,
        }))
    }

    /// Publishes this process's reservation: it becomes an item that
    /// readers can take.
    pub(super) fn publish(&mut self, loan: &Loan, len: u64) -> Result<()> {
        let sh = self.sh;
        self.publish_header(loan)?;
        self.withdraw(loan);
        self.wake_items = true;
        sh.traffic().count(true, 1, len);
        Ok(())
    }

    /// The first step of [`publish`](Self::publish): the reserved header
    /// becomes an item's.
    pub(super) fn publish_header(&mut self, loan: &Loan) -> Result<()> {
        let sh = self.sh;
        // The copy may have run into a truncated file (see `sigbus`).
        sh.check_intact()?;
        let mem = sh.data()?;
        self.state
            .ring
            .publish(&mem, loan.pos, sh.slot as u32)
            .map_err(|c| self.corrupt(c.0))
    }

    /// Gives up this process's reservation: it is an orphan from now on,
    /// which readers remove without delivering (also the last step of
    /// [`publish`](Self::publish), where the record is an item already).
    pub(super) fn withdraw(&mut self, _loan: &Loan) {
        if let Some(l) = self.sh.header().loans.get(self.sh.slot) {
            l.store(0, Ordering::Relaxed);
        }
        // A reader or a grower may be waiting for this reservation.
        self.wake_items = true;
        self.wake_space = true;
    }

    /// Shuts the queue down (see `Queue::shutdown`): from this commit on,
    /// puts (and reservations) fail and gets fail once the ring is empty;
    /// `immediate` also drops the items left, counting them done. Wakes
    /// every waiter of every process, which then sees the flag. Idempotent.
    pub(super) fn shut_down(&mut self, immediate: bool) -> Result<()> {
        let s = &mut self.state;
        if !s.shutdown || (immediate && !s.shutdown_immediate) {
            s.shutdown = true;
            s.shutdown_immediate |= immediate;
            self.commit();
        }
        if self.state.shutdown_immediate {
            self.drop_front()?;
        }
        // Also when it was shut down already: a waiter that slept through
        // the first wake-up (say, after a recovery) must not sleep on.
        self.wake_items = true;
        self.wake_space = true;
        Ok(())
    }

    /// After an immediate shutdown: removes the records from the head up to
    /// the first live reservation or take, counting each as a done task (Python
    /// 3.13's `shutdown(immediate=True)` lets `join` return). A live
    /// reservation is a put that began before the shutdown and is still
    /// copying: it stays, and the getter that finds it published later
    /// drops it the same way, so no item put before an immediate shutdown is
    /// ever delivered after it, and a producer's record is never pulled
    /// from under its copy. A live take is a get that began before the
    /// shutdown: it completes, and the records behind it go once it has.
    pub(super) fn drop_front(&mut self) -> Result<()> {
        let sh = self.sh;
        let mem = sh.data()?;
        let mut dropped = 0u64;
        // The count was validated; the bound only guards the loop.
        let bound = self.state.ring.count;
        while dropped <= bound {
            let Some(front) = self.state.ring.front(&mem).map_err(|c| self.corrupt(c.0))? else {
                break;
            };
            if front
                .reserved
                .or(front.taken)
                .is_some_and(|tag| self.loan_is_live(tag, front.pos))
            {
                self.head_reserved = true;
                break;
            }
            self.state.ring.pop(&front);
            dropped += 1;
        }
        if dropped > 0 {
            let s = &mut self.state;
            s.unfinished = s.unfinished.saturating_sub(dropped);
            if s.ring.count == 0 && s.ring.cap > sh.min_capacity {
                s.empty_since = monotonic_ns();
            }
            self.wake_done |= s.unfinished == 0;
            self.commit();
            self.wake_space = true;
        }
        Ok(())
    }

    /// Whether the reservation tagged `tag` at `pos` is live: its slot's
    /// loan entry names it and the slot's owner lives (see "Loans" in
    /// `layout`). Makes a syscall in the last case.
    pub(super) fn loan_is_live(&self, tag: u32, pos: u64) -> bool {
        let h = self.sh.header();
        let (Some(loan), Some(slot)) = (h.loans.get(tag as usize), h.slots.get(tag as usize))
        else {
            return false;
        };
        if loan.load(Ordering::Relaxed) != pos.wrapping_add(1) {
            return false;
        }
        let owner = slot.owner.load(Ordering::Relaxed);
        let gen = slot.owner_gen.load(Ordering::Relaxed);
        owner != 0 && self.sh.token.is_alive(&h.tokens, owner, gen)
    }
}
