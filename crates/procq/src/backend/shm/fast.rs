//! The small-item fast path: a `put` or `get` of an item below
//! [`LOAN_BYTES`] in one function — lock, record, commit, unlock — when
//! nothing unusual is in the way.
//!
//! The general path (`ops`, `locked`) builds a guard with a working copy of
//! the state, plans through the growth logic, walks the front records for
//! takes, and wakes through flags; for the common case of a small item in a
//! queue with room (or an item to get), that layering cost more than the
//! data path itself (docs/performance-history.md, the callgrind table). Here the
//! same steps run straight, on the committed cell's words rather than a
//! `State`: the same lock, the same hostile-memory checks once per lock
//! hold ([`Shared::check_parts`], which the guard's check uses too), the
//! same record writes and reads ([`Ring`](super::ring::Ring)), the same
//! commit ([`Header::commit_words`], store for store what every commit
//! stores, so the crash protocol and its kill tests are unchanged), the
//! same statistics and wake-ups. A joinable queue's get commits the
//! journal entry of the getter's task count with its pop and then applies
//! it, as the general pop does (`Locked::popped`, `Locked::commit`).
//!
//! Anything unusual hands the held lock to the general path as a guard
//! ([`Small::Held`]), which reads and checks the state again and goes on:
//! a lock taken over from a dead holder (recovery), `current` not naming
//! the committed cell, a state that fails a check (the guard reports it), a
//! shutdown, a queue full by count or by bytes (growth, waiting), a front
//! record that is padding, freed, reserved, taken or large, a ring that a
//! get empties while it holds more memory than its minimum (keeping
//! pages), a joinable queue's get by an attachment without a slot (it
//! journals nothing), and anything out of bounds. Nothing is written to shared memory
//! before that decision except a put's record, which nothing reaches
//! without a commit (the general path writes it again). A call that then
//! waits tries the fast path again when it wakes (see `ops`).

use std::sync::atomic::Ordering;

use crate::block::Block;
use crate::codec::Encoded;
use crate::error::Result;
use crate::kind::Kind;

use super::layout::*;
use super::locked::Verdict;
use super::ring::{Memory, Ring};
use super::shared::Shared;
use super::sync::Acquired;

/// What a fast-path attempt came to.
pub(super) enum Small<R> {
    /// Done in one lock hold.
    Done(R),
    /// Not for the fast path: the lock is held, acquired as this says; the
    /// caller [adopts](Shared::adopt) it and goes on in the general path.
    Held(Acquired),
}

/// The queue lock held without a guard. Dropping it unlocks and nothing
/// else (a getter's closure that panics leaves the item, as the general
/// path does); [`Hold::keep`] keeps it held for the general path instead.
struct Hold<'a>(&'a Shared);

impl Drop for Hold<'_> {
    #[inline]
    fn drop(&mut self) {
        let sh = self.0;
        sh.header().lock.unlock(sh.token.stamp());
    }
}

impl Hold<'_> {
    /// Leaves the lock held, for the general path (see [`Small::Held`]).
    #[inline]
    fn keep<R>(self) -> Result<Small<R>> {
        std::mem::forget(self);
        Ok(Small::Held(Acquired::Clean))
    }
}

/// The committed state as its cell's words (see [`StateCell::load_words`]),
/// and its ring, checked.
struct Words {
    w: [u64; STATE_WORDS],
    ring: Ring,
}

impl Words {
    /// The words with `ring` and `unfinished` in place of the old ones.
    #[inline]
    fn with(&self, ring: &Ring, unfinished: u64) -> [u64; STATE_WORDS] {
        let mut w = self.w;
        w[W_HEAD] = ring.head;
        w[W_TAIL] = ring.tail;
        w[W_COUNT] = ring.count;
        w[W_UNFINISHED] = unfinished;
        w
    }
}

impl Shared {
    /// Takes the lock and reads the committed state, checked; `Err` (the
    /// lock held, acquired as it says) if the lock was taken over from a
    /// dead holder, the segment lost its pages, or the state is not a plain
    /// committed one that passes every check of [`Shared::check_state`].
    #[inline(always)]
    fn hold(&self, block: Block) -> Result<std::result::Result<(Hold<'_>, Words), Acquired>> {
        let acquired = self.acquire_for(block)?;
        if acquired != Acquired::Clean {
            return Ok(Err(acquired));
        }
        let hold = Hold(self);
        let h = self.header();
        if self.seg.faulted() || h.current.load(Ordering::Relaxed) != CURRENT_COMMITTED {
            std::mem::forget(hold);
            return Ok(Err(Acquired::Clean));
        }
        let w = h.committed.load_words();
        let ring = Ring {
            head: w[W_HEAD],
            tail: w[W_TAIL],
            cap: packed_cap(w[W_PACKED]),
            count: w[W_COUNT],
        };
        if self
            .check_parts(&ring, w[W_UNFINISHED], packed_journal(w[W_PACKED]))
            .is_err()
        {
            std::mem::forget(hold);
            return Ok(Err(Acquired::Clean));
        }
        Ok(Ok((hold, Words { w, ring })))
    }

    /// Puts one item below [`LOAN_BYTES`] if the queue has room for it now
    /// at its current capacity (see the module docs).
    #[inline(always)]
    pub(super) fn push_small(&self, item: &Encoded<'_>, block: Block) -> Result<Small<()>> {
        debug_assert!(item.len() < LOAN_BYTES);
        let (hold, s) = match self.hold(block)? {
            Ok(held) => held,
            Err(acquired) => return Ok(Small::Held(acquired)),
        };
        let len = item.len();
        let mut ring = s.ring;
        if packed_shutdown(s.w[W_PACKED]).0 || (self.maxsize > 0 && ring.count >= self.maxsize) {
            return hold.keep();
        }
        let Some(plan) = ring.plan_push(len) else {
            return hold.keep(); // growth, or full by bytes
        };
        let Some(mem) = self.data_area() else {
            return hold.keep();
        };
        let Ok(off) = ring.write_headers(&mem, &plan, None) else {
            return hold.keep();
        };
        if !mem.write(off, item.head)
            || !(item.body.is_empty() || mem.write(off + item.head.len() as u64, item.body))
            // The copy may have run into a truncated file (see `sigbus`).
            || self.seg.faulted()
        {
            return hold.keep();
        }
        ring.commit_push(&plan);
        let h = self.header();
        h.commit_words(
            &s.with(&ring, s.w[W_UNFINISHED].saturating_add(1)),
            self.scratch(),
        );
        self.traffic().count(true, 1, len);
        drop(hold);
        h.items.notify_all();
        Ok(Small::Done(()))
    }

    /// Gets the item at the front, if it is a plain item below
    /// [`LOAN_BYTES`] (see the module docs): `f` sees its bytes and answers;
    /// the item is removed unless `f` leaves it (then `Done(0)`). On a
    /// joinable queue the commit carries the journal entry of the getter's
    /// count of taken tasks, applied after it, as the general pop's does.
    #[inline(always)]
    pub(super) fn pop_small(
        &self,
        block: Block,
        f: &mut impl FnMut(&[u8]) -> Verdict,
    ) -> Result<Small<usize>> {
        // One instance per kind: a plain queue's has no journal code.
        match self.kind {
            Kind::Queue => self.pop_small_of::<false>(block, f),
            Kind::Joinable => self.pop_small_of::<true>(block, f),
        }
    }

    /// [`pop_small`](Self::pop_small) on a queue that is joinable or not.
    #[inline(always)]
    fn pop_small_of<const JOINABLE: bool>(
        &self,
        block: Block,
        f: &mut impl FnMut(&[u8]) -> Verdict,
    ) -> Result<Small<usize>> {
        let (hold, s) = match self.hold(block)? {
            Ok(held) => held,
            Err(acquired) => return Ok(Small::Held(acquired)),
        };
        let mut ring = s.ring;
        let (shutdown, immediate) = packed_shutdown(s.w[W_PACKED]);
        if immediate || ring.count == 0 {
            return hold.keep();
        }
        let Some(mem) = self.data_area() else {
            return hold.keep();
        };
        let front = match ring.head_item(&mem) {
            Some(front) if front.len < LOAN_BYTES => front,
            _ => return hold.keep(),
        };
        // The pop that empties a ring holding more than its minimum
        // shrinks it, keeping its pages (see `capacity`).
        if ring.count == 1 && self.reserved_extent(ring.cap) > self.min_capacity {
            return hold.keep();
        }
        // A joinable queue's getter counts the task as its own, through the
        // journal (a slotless attachment's get journals nothing: the
        // general path).
        let journal = if JOINABLE {
            match self.slot_ref() {
                Some(slot) => Some(slot),
                None => return hold.keep(),
            }
        } else {
            None
        };
        let Some(verdict) = mem.read_with(front.off, front.len, f) else {
            return hold.keep();
        };
        // What `f` saw may be zeros from a truncated file (see `sigbus`).
        self.check_intact()?;
        if verdict == Verdict::Leave {
            return Ok(Small::Done(0));
        }
        // Taken, or refused: a refused first item is removed all the same.
        ring.pop(&front);
        let h = self.header();
        // On a joinable queue, the entry the general pop journals
        // (`Locked::journal`, numbered by `Locked::commit`): the slot's new
        // count of taken tasks rides in this commit and is applied to the
        // slot after it, so recovery replays it if this process dies in
        // between; the task stays unfinished until `task_done`.
        let mut w = s.with(
            &ring,
            s.w[W_UNFINISHED].saturating_sub(u64::from(!JOINABLE)),
        );
        let mut entry = (0, 0);
        if let Some(slot) = journal {
            let tasks = slot.tasks.load(Ordering::Relaxed).saturating_add(1);
            let tasks = tasks.min(u64::from(u32::MAX));
            w[W_PACKED] = packed_with_journal(w[W_PACKED], self.slot as u64 + 1, OP_SET, tasks);
            w[W_GEN] = w[W_GEN].wrapping_add(1).max(1);
            entry = (w[W_GEN], tasks);
        }
        h.commit_words(&w, self.scratch());
        if let Some(slot) = journal {
            slot.apply_set(entry.0, entry.1);
        }
        self.traffic().count(false, 1, front.len);
        drop(hold);
        // Producers of a full queue may wait for it to be half empty (see
        // `wait`); a shutdown wakes them whatever the level.
        h.space.notify_level(if shutdown { 0 } else { ring.count });
        Ok(Small::Done(1))
    }
}
