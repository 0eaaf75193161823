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
pub(super) struct Waiter<'a> {
    sh: &'a Shared,
    block: Block,
    want: Want,
    /// Spinning is tried once per wake-up.
    spun: bool,
    /// Counted once per call in the statistics.
    blocked: bool,
}

impl<'a> Waiter<'a> {
    pub(super) fn new(sh: &'a Shared, block: Block, want: Want) -> Waiter<'a> {
        Waiter {
            sh,
            block,
            want,
            spun: false,
            blocked: false,
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
        if !self.blocked {
            self.blocked = true;
            let counter = if self.want == Want::Items {
                &h.counters.blocked_gets
            } else {
                &h.counters.blocked_puts
            };
            counter.fetch_add(1, Ordering::Relaxed);
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
}
