//! [`Waiter`]: the waiting half of a blocking call — spin, then announce
//! and sleep on the queue's event counts.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::block::Block;
use crate::error::Result;

use super::locked::Locked;
use super::shared::Shared;
use super::sync::Wake;

/// Bounds of the adaptive spin before a waiter sleeps (iterations).
const SPIN_MIN: u32 = 16;
pub(super) const SPIN_MAX: u32 = 2048;
/// How often a blocked `put`/`get` wakes to check that its segment still
/// exists (a truncated file's waiters can never be woken otherwise).
const INTACT_CHECK_EVERY: Duration = Duration::from_secs(1);
/// How often a `get` that waits for a reserved front record (its producer
/// is copying) looks again: nobody announces that producer's death.
pub(super) const RESERVED_CHECK_EVERY: Duration = Duration::from_millis(5);
/// Longest a `put` that finds its queue full by count waits for it to be
/// half empty before it waits for any free slot (see [`Waiter`]): the most
/// a slot freed in the meantime waits for its producer.
const HALF_EMPTY_WAIT: Duration = Duration::from_millis(1);

/// What a blocked caller waits for.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Want {
    /// An item to get.
    Items,
    /// Room to put.
    Space,
}

/// The waiting half of a blocking call: spin first, then announce and sleep.
///
/// A waiter first spins *without* announcing itself, watching the item
/// count, so that a producer on another core does not have to make a
/// `FUTEX_WAKE` syscall for it. Only if the spin fails does it set the
/// event count's waiter bit (under the lock, so no wake-up can be lost) and
/// sleep. The spin length adapts to how often spinning pays off.
///
/// A `put` that finds its queue full by count (`maxsize` items) first
/// sleeps, without spinning, until the queue is half empty or
/// [`HALF_EMPTY_WAIT`] has passed, whichever comes first (a level wait, see
/// `sync::EventCount`), and only then waits as above for any free slot.
/// When producers outpace consumers, a full queue otherwise hands its
/// producer one slot at a time: every item a consumer takes then wakes a
/// producer (a `FUTEX_WAKE` paid by the consumer, or a spin by the
/// producer over the count the consumer keeps writing), that producer puts
/// one item and waits again. Waiting for half the queue lets the consumer
/// take half its items undisturbed and the producer refill them in one
/// burst, as with an unbounded queue. What it costs: a slot freed while its
/// producer waits for the half may wait for that producer up to
/// [`HALF_EMPTY_WAIT`]. A deadline still ends the wait at once, after one
/// more try (a slot may have freed without waking the level wait).
pub(super) struct Waiter<'a> {
    sh: &'a Shared,
    block: Block,
    want: Want,
    /// Spinning is tried once per wake-up.
    spun: bool,
    /// Counted once per call in the statistics.
    blocked: bool,
    /// A `put` may still wait for the queue to be half empty (until such a
    /// wait ran out of time with the queue still full).
    half_empty: bool,
}

impl<'a> Waiter<'a> {
    pub(super) fn new(sh: &'a Shared, block: Block, want: Want) -> Waiter<'a> {
        Waiter {
            sh,
            block,
            want,
            spun: false,
            blocked: false,
            half_empty: want == Want::Space,
        }
    }

    /// Whether what we wait for has (probably) happened.
    fn ready(&self) -> bool {
        let h = self.sh.header();
        if h.peek_shutdown() {
            return true;
        }
        let count = h.peek_count();
        match self.want {
            Want::Items => count > 0,
            Want::Space => self.sh.maxsize == 0 || count < self.sh.maxsize,
        }
    }

    /// Counts this call in the statistics as blocked, once.
    fn count_blocked(&mut self) {
        if !self.blocked {
            self.blocked = true;
            let c = &self.sh.header().counters;
            let counter = if self.want == Want::Items {
                &c.blocked_gets
            } else {
                &c.blocked_puts
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Called after the operation succeeded: rewards a spin that led to it.
    pub(super) fn succeeded(&self) {
        if self.spun && self.sh.spin {
            let b = self.sh.spin_budget.load(Ordering::Relaxed);
            self.sh
                .spin_budget
                .store((b * 2).min(SPIN_MAX), Ordering::Relaxed);
        }
    }

    /// Waits for a change, consuming the lock guard. `Ok(false)` when the
    /// deadline passed (or the call must not block).
    pub(super) fn wait(&mut self, mut g: Locked<'_>) -> Result<bool> {
        let h = self.sh.header();
        if let Block::No = self.block {
            return Ok(false);
        }
        self.count_blocked();
        if self.half_empty {
            let maxsize = self.sh.maxsize;
            if maxsize > 1 && g.state.ring.count >= maxsize && !g.state.shutdown {
                return self.wait_half_empty(g);
            }
            // Full for lack of bytes: the count says nothing about when
            // room comes back.
            self.half_empty = false;
        }
        // Spinning cannot help a get that waits for a front record being
        // copied (the item count already says "ready"): sleep at once.
        if self.sh.spin && !self.spun && !g.head_reserved {
            drop(g);
            self.spun = true;
            let budget = self.sh.spin_budget.load(Ordering::Relaxed);
            for _ in 0..budget {
                if self.ready() {
                    return Ok(true);
                }
                std::hint::spin_loop();
            }
            self.sh
                .spin_budget
                .store((budget / 2).max(SPIN_MIN), Ordering::Relaxed);
            return Ok(true); // go around once more, then announce and sleep
        }
        // An idle ring gives its memory back while its consumers wait.
        let mut until = self.block.deadline();
        if self.want == Want::Items {
            if let Some(again) = g.shrink_if_idle() {
                until = Some(until.map_or(again, |d| d.min(again)));
            }
        }
        let ev = if self.want == Want::Items {
            &h.items
        } else {
            &h.space
        };
        // Nobody can wake a sleeper whose futex word's page was truncated
        // away: wake up now and then to notice (the next lock reports it).
        let tick = Instant::now()
            + if g.head_reserved {
                RESERVED_CHECK_EVERY
            } else {
                INTACT_CHECK_EVERY
            };
        let until = Some(until.map_or(tick, |d| d.min(tick)));
        let key = ev.prepare();
        drop(g);
        self.spun = false;
        let woke = ev.wait(key, until);
        self.sh.check_intact()?;
        if woke == Wake::TimedOut && until == self.block.deadline() {
            h.counters.timeouts.fetch_add(1, Ordering::Relaxed);
            return Ok(false);
        }
        Ok(true)
    }

    /// Sleeps until the queue holds at most half the items it holds now,
    /// or until `until` (or the call's deadline, if sooner): a put that
    /// holds back the ring's growth (see `Shared::push_loaned`) lets the
    /// consumers make room. Returns whether it was woken (`false`: the time
    /// ran out, no room came).
    pub(super) fn wait_for_room(&mut self, g: Locked<'_>, until: Instant) -> Result<bool> {
        self.count_blocked();
        let until = self.block.deadline().map_or(until, |d| d.min(until));
        let mark = u32::try_from(g.state.ring.count / 2).unwrap_or(u32::MAX);
        let ev = &self.sh.header().space;
        let key = ev.prepare_level(mark);
        drop(g);
        let woke = ev.wait(key, Some(until));
        self.sh.check_intact()?;
        Ok(woke == Wake::Notified)
    }

    /// Sleeps until the queue is half empty or [`HALF_EMPTY_WAIT`] passed
    /// (see [`Waiter`]); `Ok(false)` only when the deadline had passed
    /// already.
    fn wait_half_empty(&mut self, g: Locked<'_>) -> Result<bool> {
        let now = Instant::now();
        let deadline = self.block.deadline();
        if deadline.is_some_and(|d| now >= d) {
            // The try just before this call was the last one.
            self.sh
                .header()
                .counters
                .timeouts
                .fetch_add(1, Ordering::Relaxed);
            return Ok(false);
        }
        let until = deadline.map_or(now + HALF_EMPTY_WAIT, |d| d.min(now + HALF_EMPTY_WAIT));
        let mark = u32::try_from(self.sh.maxsize / 2).unwrap_or(u32::MAX);
        let ev = &self.sh.header().space;
        let key = ev.prepare_level(mark);
        drop(g);
        if ev.wait(key, Some(until)) == Wake::TimedOut {
            // Not half empty that long (or a notifier that knows nothing of
            // level waits): if the next try finds the queue still full, wait
            // for any slot from now on.
            self.half_empty = false;
        }
        self.sh.check_intact()?;
        // Try again, at the deadline too: a slot may have been freed
        // without waking this wait.
        Ok(true)
    }
}
