//! The queue operations on an attachment: put, get, task accounting and
//! join. Each takes the lock (see `locked`), tries, and waits (see `wait`)
//! until it can or its deadline passes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::block::Block;
use crate::codec::Encoded;
use crate::error::{Error, Result};

use super::fast::Small;
use super::layout::*;
use super::locked::{lock_deadline, within, LOCK_PATIENCE};
use super::locked::{Loan, Locked, Verdict};
use super::ring::{record_size, Memory};
use super::segment::DataArea;
use super::shared::Shared;
use super::sync::Acquired;
use super::take::{TakeFront, Taken};
use super::wait::{Waiter, Want};

/// How often `join` re-checks for dead consumers while it waits.
const JOIN_SWEEP_EVERY: Duration = Duration::from_millis(100);
/// Most payload bytes one lock hold of a batch call moves (and one
/// `get_many` returns), give or take one item: a batch of small items still
/// goes under one hold, a batch of large ones in chunks, so that the other
/// side never waits behind a multi-megabyte copy. Batching only pays for
/// small items anyway: past 64 KiB the copy costs far more than the call, and
/// handing many large buffers over at once makes the receiver's allocator
/// return and re-fault its memory (measured: 100 KB items through Python's
/// get_many went from 93 µs to ~15 µs per item).
pub(crate) const BATCH_BYTES: u64 = 64 << 10;
/// How long a put of a large item waits for room in a ring it holds back
/// from growing (see [`Shared::push_loaned`]) before it grows it all the
/// same: what a put into a queue nobody reads pays once per doubling past
/// `HOLD_GROWTH_FROM`.
const GROWTH_PATIENCE: Duration = Duration::from_millis(20);
/// Tests: [`GROWTH_PATIENCE`] in milliseconds for this process instead, if
/// not 0 (see `__fuzzing::hold_growth_for`).
#[cfg(any(test, feature = "testing"))]
pub(crate) static GROWTH_PATIENCE_MS: std::sync::atomic::AtomicU64 =
    std::sync::atomic::AtomicU64::new(0);

/// [`GROWTH_PATIENCE`], or what a test set for this process.
fn growth_patience() -> Duration {
    #[cfg(any(test, feature = "testing"))]
    match GROWTH_PATIENCE_MS.load(Ordering::Relaxed) {
        0 => {}
        ms => return Duration::from_millis(ms),
    }
    GROWTH_PATIENCE
}
/// Clears [`Shared::loaning`] when dropped (also when unwinding).
struct FreeLoan<'a>(&'a AtomicBool);

impl Drop for FreeLoan<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// Withdraws a reservation if dropped: armed while a caller's `fill` runs,
/// so that a panic in it leaves an orphan behind for nobody to wait for.
struct Withdraw<'a>(&'a Shared, Loan);

impl Drop for Withdraw<'_> {
    fn drop(&mut self) {
        if let Ok(mut g) = self.0.lock_until(None) {
            g.withdraw(&self.1);
        }
    }
}

/// Gives a taken item back if dropped: armed while a caller's closure
/// reads it, so that a panic in it leaves the item first in line.
struct Untake<'a>(&'a Shared, Taken);

impl Drop for Untake<'_> {
    fn drop(&mut self) {
        if let Ok(mut g) = self.0.lock_until(None) {
            g.untake(&self.1);
        }
    }
}

/// Where [`Shared::pop_taking`] stops (crash tests stop it early, as a
/// process killed at that point would).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TakeStop {
    /// Goes to the end.
    Never,
    /// Right after a large item was taken, before it is read.
    Taken,
    /// After the item was read, before it is popped.
    Read,
    /// After the pop committed, before the loan entry is cleared.
    Popped,
}

/// Where [`Shared::push_loaned`] stops (crash tests stop it early, as a
/// process killed at that point would).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LoanStop {
    /// Goes to the end.
    Never,
    /// Right after the reservation committed.
    Reserved,
    /// Half-way through the copy.
    HalfCopied,
    /// After the copy, before the publish.
    Copied,
    /// After the header became an item's, before the loan entry is cleared.
    HeaderPublished,
}

impl Shared {
    /// Puts one encoded item.
    #[inline]
    pub(crate) fn push(&self, item: &Encoded<'_>, block: Block, closed: &AtomicBool) -> Result<()> {
        self.check_size(item.len())?;
        let mut held = None;
        // A small item: one function, lock to commit (see `fast`); the
        // general path goes on with the lock if it must.
        if item.len() < LOAN_BYTES {
            if closed.load(Ordering::Relaxed) {
                return Err(Error::Closed);
            }
            match self.push_small(item, block)? {
                Small::Done(()) => return Ok(()),
                Small::Held(acquired) => held = Some(acquired),
            }
        }
        self.push_general(item, block, closed, held)
    }

    /// [`push`](Self::push) of an item the fast path did not put: `held`
    /// says how the fast path acquired the lock it left held.
    #[inline(never)]
    fn push_general(
        &self,
        item: &Encoded<'_>,
        block: Block,
        closed: &AtomicBool,
        held: Option<Acquired>,
    ) -> Result<()> {
        // One loan per slot: another thread of this process that holds it
        // makes this put copy under the lock. (Never with the lock held:
        // the fast path takes only small items.)
        if held.is_none()
            && item.len() >= LOAN_BYTES
            && self.slot < MAX_SLOTS
            && !self.loaning.swap(true, Ordering::Acquire)
        {
            let _free = FreeLoan(&self.loaning);
            let copy = |mem: &DataArea<'_>, off: u64| {
                mem.write(off, item.head) && mem.write(off + item.head.len() as u64, item.body)
            };
            return self.push_loaned(item.len(), block, closed, LoanStop::Never, copy);
        }
        let mut held = match held {
            Some(acquired) => Some(self.adopt(acquired)?),
            None => None,
        };
        let lock_deadline = lock_deadline(block);
        let mut waiter = Waiter::new(self, block, Want::Space);
        loop {
            let small = (item.len() < LOAN_BYTES).then_some(|| self.push_small(item, block));
            let Ok(mut g) = self.round(&mut held, closed, lock_deadline, small)? else {
                waiter.succeeded();
                return Ok(());
            };
            if g.state.shutdown {
                return Err(Error::ShutDown);
            }
            if g.try_push(item)? {
                waiter.succeeded();
                return Ok(());
            }
            if !waiter.wait(g)? {
                return Err(Error::Full);
            }
        }
    }

    /// The guard for one round of a general path's loop: the one the
    /// fast path left held, else (unless `closed`) the lock taken again —
    /// through `small`, the fast path, if there is one (after a wait, a
    /// small item tries it again), whose answer `Done` ends the call
    /// (`Err` here).
    fn round<'a, R>(
        &'a self,
        held: &mut Option<Locked<'a>>,
        closed: &AtomicBool,
        lock_deadline: Option<Instant>,
        small: Option<impl FnOnce() -> Result<Small<R>>>,
    ) -> Result<std::result::Result<Locked<'a>, R>> {
        if let Some(g) = held.take() {
            return Ok(Ok(g));
        }
        if closed.load(Ordering::Relaxed) {
            return Err(Error::Closed);
        }
        match small {
            Some(small) => match small()? {
                Small::Done(r) => Ok(Err(r)),
                Small::Held(acquired) => self.adopt(acquired).map(Ok),
            },
            None => self.lock_until(lock_deadline).map(Ok),
        }
    }

    /// Puts one `len`-byte item that `fill` writes in place: in its
    /// reserved record in shared memory if it is large (and no other thread
    /// of this process holds the slot's loan), else in a buffer that is then
    /// put. If `fill` panics, nothing is put.
    pub(crate) fn push_with(
        &self,
        len: u64,
        block: Block,
        closed: &AtomicBool,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<()> {
        self.check_size(len)?;
        if len >= LOAN_BYTES && self.slot < MAX_SLOTS && !self.loaning.swap(true, Ordering::Acquire)
        {
            let _free = FreeLoan(&self.loaning);
            let fill = |mem: &DataArea<'_>, off: u64| mem.with_mut(off, len, fill).is_some();
            return self.push_loaned(len, block, closed, LoanStop::Never, fill);
        }
        let mut buf = vec![0; len as usize];
        fill(&mut buf);
        let item = Encoded {
            head: &buf,
            body: &[],
        };
        self.push(&item, block, closed)
    }

    /// Puts one large item: reserves its record, lets `fill` write it at
    /// the payload offset without the lock, publishes it (see "Loans" in
    /// `layout`). If `fill` panics, the reservation is withdrawn. `stop` ends
    /// it early, as a process killed there would (for the crash tests).
    pub(crate) fn push_loaned(
        &self,
        len: u64,
        block: Block,
        closed: &AtomicBool,
        stop: LoanStop,
        fill: impl FnOnce(&DataArea<'_>, u64) -> bool,
    ) -> Result<()> {
        let lock_deadline = lock_deadline(block);
        let mut waiter = Waiter::new(self, block, Want::Space);
        // A blocking put does not grow a ring of `HOLD_GROWTH_FROM` bytes
        // or more while consumers make room: it waits for the queue to be
        // half as deep, as long as they keep freeing space, and grows the
        // ring only once the head has not moved for `GROWTH_PATIENCE` (or
        // at its deadline).
        let mut hold = !matches!(block, Block::No);
        // The head before the last wait for room, and whether that wait
        // was woken.
        let mut waited: Option<(u64, bool)> = None;
        let loan = loop {
            if closed.load(Ordering::Relaxed) {
                return Err(Error::Closed);
            }
            let mut g = self.lock_until(lock_deadline)?;
            if g.state.shutdown {
                return Err(Error::ShutDown);
            }
            if let Some(loan) = g.try_reserve(len, hold)? {
                break loan;
            }
            if g.held_back {
                let head = g.state.ring.head;
                if waited.is_some_and(|(before, woken)| !woken && head == before) {
                    // No space was freed all that time: grow after all.
                    hold = false;
                    continue;
                }
                let woken = waiter.wait_for_room(g, Instant::now() + growth_patience())?;
                waited = Some((head, woken));
                continue;
            }
            if !waiter.wait(g)? {
                return Err(Error::Full);
            }
        };
        if stop == LoanStop::Reserved {
            return Ok(());
        }
        let mem = self.data()?;
        let unwinding = Withdraw(self, loan);
        let copied = fill(&mem, loan.off);
        std::mem::forget(unwinding);
        if stop == LoanStop::HalfCopied || stop == LoanStop::Copied {
            return Ok(());
        }
        // Whatever happens, the reservation must be published or withdrawn:
        // wait for the lock as long as it takes (a live holder lets go).
        let mut g = self.lock_until(None)?;
        if !copied {
            g.withdraw(&loan);
            return Err(g.corrupt("payload out of bounds"));
        }
        if stop == LoanStop::HeaderPublished {
            return g.publish_header(&loan);
        }
        if let Err(e) = g.publish(&loan, len) {
            g.withdraw(&loan);
            return Err(e);
        }
        waiter.succeeded();
        Ok(())
    }

    /// Puts several encoded items in order, as many per lock as fit.
    pub(crate) fn push_many(
        &self,
        items: &[Encoded<'_>],
        block: Block,
        closed: &AtomicBool,
    ) -> Result<usize> {
        for item in items {
            self.check_size(item.len())?;
        }
        let mut done = 0;
        let lock_deadline = lock_deadline(block);
        let mut waiter = Waiter::new(self, block, Want::Space);
        while done < items.len() {
            if closed.load(Ordering::Relaxed) {
                return Err(Error::Closed);
            }
            let mut g = self.lock_until(lock_deadline)?;
            if g.state.shutdown {
                // The items before this chunk are in and stay for the
                // consumers; the caller learns that the rest is refused.
                return Err(Error::ShutDown);
            }
            let mut held = 0u64;
            while done < items.len() && held < BATCH_BYTES && g.try_push(&items[done])? {
                held += items[done].len();
                done += 1;
            }
            if done == items.len() {
                break;
            }
            if held >= BATCH_BYTES {
                // A batch of large items: let consumers in between chunks
                // instead of holding the lock for the whole copy.
                drop(g);
                continue;
            }
            if !waiter.wait(g)? {
                return Ok(done);
            }
        }
        Ok(done)
    }

    pub(super) fn check_size(&self, len: u64) -> Result<()> {
        match record_size(len) {
            Some(rec) if rec <= self.max_capacity => Ok(()),
            _ => Err(Error::TooLarge {
                size: len,
                limit: self.max_item_bytes(),
            }),
        }
    }

    /// Removes up to `max` items, waiting (per `block`) for the first one;
    /// `f` sees each item's bytes while the lock is held (see `pop_into`),
    /// except a large item got alone, which `f` reads without the lock
    /// (see `take`).
    #[inline]
    pub(crate) fn pop<F: FnMut(&[u8]) -> bool>(
        &self,
        max: usize,
        block: Block,
        closed: &AtomicBool,
        mut f: F,
    ) -> Result<usize> {
        let f = |b: &[u8]| Verdict::from(f(b));
        self.pop_taking(max, block, closed, TakeStop::Never, f)
    }

    /// Lets `f` see the oldest item, waiting (per `block`) for one, and
    /// removes it only if `f` answers true; else it stays first in line.
    /// Returns `f`'s answer.
    pub(crate) fn pop_or_leave(
        &self,
        block: Block,
        closed: &AtomicBool,
        f: impl FnOnce(&[u8]) -> bool,
    ) -> Result<bool> {
        let mut f = Some(f);
        let mut took = false;
        self.pop_taking(1, block, closed, TakeStop::Never, |b| {
            took = f.take().is_some_and(|f| f(b));
            if took {
                Verdict::Take
            } else {
                Verdict::Leave
            }
        })?;
        Ok(took)
    }

    /// [`pop`](Self::pop) with `f` answering a [`Verdict`]: returns 0
    /// (without waiting) if `f` left the item; stops a take at `stop` (for
    /// the crash tests).
    #[inline]
    pub(crate) fn pop_taking<F: FnMut(&[u8]) -> Verdict>(
        &self,
        max: usize,
        block: Block,
        closed: &AtomicBool,
        stop: TakeStop,
        mut f: F,
    ) -> Result<usize> {
        let mut held = None;
        // One small item: one function, lock to commit (see `fast`); the
        // general path goes on with the lock if it must.
        if self.small_pop(max, stop) {
            if closed.load(Ordering::Relaxed) {
                return Err(Error::Closed);
            }
            match self.pop_small(block, &mut f)? {
                Small::Done(n) => return Ok(n),
                Small::Held(acquired) => held = Some(acquired),
            }
        }
        self.pop_general(max, block, closed, stop, f, held)
    }

    /// Whether a pop of `max` items stopping at `stop` may take the fast
    /// path (see `fast`): one item, to the end.
    #[inline]
    fn small_pop(&self, max: usize, stop: TakeStop) -> bool {
        max == 1 && stop == TakeStop::Never
    }

    /// [`pop_taking`](Self::pop_taking) past the fast path: `held` says
    /// how the fast path acquired the lock it left held.
    #[inline(never)]
    fn pop_general<F: FnMut(&[u8]) -> Verdict>(
        &self,
        max: usize,
        block: Block,
        closed: &AtomicBool,
        stop: TakeStop,
        mut f: F,
        held: Option<Acquired>,
    ) -> Result<usize> {
        let lock_deadline = lock_deadline(block);
        let mut held = match held {
            Some(acquired) => Some(self.adopt(acquired)?),
            None => None,
        };
        let mut waiter = Waiter::new(self, block, Want::Items);
        loop {
            let small = self
                .small_pop(max, stop)
                .then_some(|| self.pop_small(block, &mut f));
            let mut g = match self.round(&mut held, closed, lock_deadline, small)? {
                Ok(g) => g,
                Err(n) => {
                    waiter.succeeded();
                    return Ok(n);
                }
            };
            if g.state.shutdown_immediate {
                // Items put before an immediate shutdown are never handed
                // out; one still being copied is dropped once published.
                g.drop_front()?;
            } else {
                // One item alone, and this slot's loan free (another thread
                // of this process may hold it): a large one is read
                // without the lock.
                let mut busy = false;
                let (first, take) = if max == 1 {
                    g.peek_front()?
                } else {
                    (None, false)
                };
                if take && self.slot < MAX_SLOTS && !self.loaning.swap(true, Ordering::Acquire) {
                    let free = FreeLoan(&self.loaning);
                    match g.take_front()? {
                        TakeFront::Taken(t) => {
                            drop(g);
                            let popped = self.read_taken(t, stop, &mut f)?;
                            drop(free);
                            waiter.succeeded();
                            return Ok(usize::from(popped));
                        }
                        TakeFront::Busy => busy = true,
                        TakeFront::No => {}
                    }
                }
                if !busy {
                    let mut left = false;
                    // Not after a take: the front may have changed since.
                    let first = first.filter(|_| !take);
                    let n = g.pop_into_from(first, max, &mut |b| {
                        let v = f(b);
                        left |= v == Verdict::Leave;
                        v
                    })?;
                    if n > 0 || left {
                        waiter.succeeded();
                        return Ok(n);
                    }
                }
            }
            // A live reservation still counts: its put began before the
            // shutdown and is an item once published.
            if g.state.shutdown && g.state.ring.count == 0 {
                // Shut down and drained: the end of the stream.
                return Err(Error::ShutDown);
            }
            if !waiter.wait(g)? {
                return Err(Error::Empty);
            }
        }
    }

    /// Lets `f` read the item this process has taken, without the lock,
    /// then pops it (see `take`), or gives it back if `f` leaves it or
    /// panics. Returns whether it was popped.
    fn read_taken(
        &self,
        t: Taken,
        stop: TakeStop,
        f: &mut impl FnMut(&[u8]) -> Verdict,
    ) -> Result<bool> {
        if stop == TakeStop::Taken {
            return Ok(true);
        }
        let mem = self.data()?;
        let unwinding = Untake(self, t);
        let read = mem.read_with(t.off, t.len, |bytes| f(bytes));
        std::mem::forget(unwinding);
        // Whatever happens, the take must end: wait for the lock as long
        // as it takes (a live holder lets go).
        let mut g = self.lock_until(None)?;
        let Some(verdict) = read else {
            g.untake(&t);
            return Err(g.corrupt("item out of bounds"));
        };
        if verdict == Verdict::Leave {
            g.untake(&t);
            return Ok(false);
        }
        if stop == TakeStop::Read {
            return Ok(true);
        }
        // A refused item is popped all the same, as `pop_into` does with a
        // refused first item.
        let popped = g.finish_take(&t, stop != TakeStop::Popped);
        if popped.is_err() {
            g.untake(&t);
        }
        popped.map(|()| true)
    }

    /// Marks one task done.
    ///
    /// The task is credited to this process's slot if it took any, else to
    /// any process that did: `multiprocessing` lets one process `get` and
    /// another call `task_done`, and a task must not be counted done again
    /// when its getter leaves. So `unfinished` stays equal to the items in
    /// the ring plus the tasks taken and not done over all slots.
    pub(crate) fn task_done(&self) -> Result<()> {
        self.task_done_many(1)
    }

    /// Marks `n` tasks done under one lock hold;
    /// [`Error::TaskDoneTooOften`], marking none, if fewer than `n` items
    /// were got and not yet done. Each task is credited to a process that
    /// got one (this one first), one slot per commit, as `task_done` does.
    pub(crate) fn task_done_many(&self, n: u64) -> Result<()> {
        if n == 0 {
            return Ok(());
        }
        let mut g = self.lock()?;
        if g.state.unfinished < g.state.ring.count.saturating_add(n) {
            return Err(Error::TaskDoneTooOften);
        }
        let h = self.header();
        let taken = |slot: &Slot| {
            (slot.owner.load(Ordering::Relaxed) != 0)
                .then(|| slot.tasks.load(Ordering::Relaxed))
                .filter(|&t| t > 0)
        };
        let mut left = n;
        while left > 0 {
            let credited = self
                .slot_ref()
                .and_then(taken)
                .map(|t| (self.slot, t))
                .or_else(|| {
                    h.slots
                        .iter()
                        .enumerate()
                        .find_map(|(i, slot)| taken(slot).map(|t| (i, t)))
                });
            // No process holds a task (they were written off): the rest
            // are done with no slot to credit.
            let k = credited.map_or(left, |(_, t)| left.min(t));
            if let Some((i, t)) = credited {
                g.journal(i, OP_SET, t - k);
            }
            g.state.unfinished -= k;
            left -= k;
            g.wake_done = g.state.unfinished == 0;
            g.commit();
        }
        Ok(())
    }

    /// Waits until every item put has been marked done;
    /// [`Error::Timeout`] if `block` runs out first.
    pub(crate) fn join(&self, block: Block, closed: &AtomicBool) -> Result<()> {
        let lock_deadline = lock_deadline(block);
        loop {
            if closed.load(Ordering::Relaxed) {
                return Err(Error::Closed);
            }
            let mut g = self.lock_until(lock_deadline)?;
            if g.state.unfinished == 0 {
                return Ok(());
            }
            // Write off tasks of consumers that died: a dead process cannot
            // announce its own death, so look before every wait.
            g.sweep();
            if g.state.unfinished == 0 {
                return Ok(());
            }
            if matches!(block, Block::Until(d) if Instant::now() >= d) || matches!(block, Block::No)
            {
                return Err(Error::Timeout);
            }
            let key = self.header().done.prepare();
            drop(g);
            // ...and look again now and then while waiting.
            let tick = Instant::now() + JOIN_SWEEP_EVERY;
            let until = block.deadline().map_or(tick, |d| d.min(tick));
            self.header().done.wait(key, Some(until));
        }
    }

    /// Shuts the queue down for every process (see `Locked::shut_down`).
    /// Takes the lock with the patience of an inspection: a shutdown never
    /// waits forever behind a stopped holder.
    pub(crate) fn shutdown(&self, immediate: bool) -> Result<()> {
        self.lock_until(within(LOCK_PATIENCE))?
            .shut_down(immediate)?;
        Ok(())
    }

    /// The committed state (takes the lock: exact; gives up with
    /// `LockBusy` after [`LOCK_PATIENCE`]).
    pub(crate) fn state(&self) -> Result<State> {
        Ok(self.lock_until(within(LOCK_PATIENCE))?.state)
    }

    /// Wakes every waiter of this queue (used by `close`).
    pub(crate) fn wake_all(&self) {
        let h = self.header();
        h.items.bump();
        h.space.bump();
        h.done.bump();
    }
}
