//! The queue operations as polls, for futures: put, get and join that
//! never sleep on the queue. Each poll takes the lock, tries once, and if
//! it must wait registers its waker (see `watch`) and returns `Pending`.
//!
//! A poll that returns `Pending` has changed nothing: an item is taken
//! (or put) only by the poll that returns it, under one lock hold, so a
//! future dropped while pending — a cancelled task, the losing branch of a
//! `select!` — loses nothing and leaves nothing half-done.
//!
//! The lock itself is taken with a short patience ([`POLL_LOCK_PATIENCE`]):
//! enough to take over from a dead holder (noticed after its first nap of
//! about a millisecond), and a bound on how long a poll can keep an
//! executor thread when a live holder is stopped inside its critical
//! section. Then the poll retries [`LOCK_RETRY`] later, and gives up with
//! `LockBusy` as a blocking call would: at its deadline, or a second after
//! it started if that is later.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::block::Block;
use crate::codec::Encoded;
use crate::error::{Error, Result};

use super::locked::{Locked, Verdict, LOCK_PATIENCE};
use super::shared::Shared;
use super::wait::RESERVED_CHECK_EVERY;
use super::watch::{Alarm, Event, Registration};

/// How long one poll waits for the queue lock.
const POLL_LOCK_PATIENCE: Duration = Duration::from_millis(10);
/// When a poll that found the lock busy tries again.
const LOCK_RETRY: Duration = Duration::from_millis(20);
/// How often a pending `join` looks for consumers that died (as the
/// blocking `join` does).
const JOIN_SWEEP_EVERY: Duration = Duration::from_millis(100);

/// What a future keeps between polls: its registrations (dropped with it,
/// which unregisters them) and its first poll's time.
#[derive(Default)]
pub(crate) struct Park {
    reg: Option<Registration>,
    alarm: Option<Alarm>,
    started: Option<Instant>,
    /// Counted once in the statistics as a blocked call.
    blocked: bool,
}

/// Ready with an error.
fn fail<T>(e: Error) -> Poll<Result<T>> {
    Poll::Ready(Err(e))
}

/// `?` for polls: returns `Ready(Err)` from the enclosing poll.
macro_rules! ready_try {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(e) => return fail(e),
        }
    };
}

impl Park {
    /// Whether `block` allows no more waiting.
    fn out_of_time(block: Block) -> bool {
        match block {
            Block::No => true,
            Block::Forever => false,
            Block::Until(d) => Instant::now() >= d,
        }
    }

    /// Wakes the task at `at` (keeping an alarm already set for it).
    fn wake_at(&mut self, sh: &Shared, at: Instant, cx: &Context<'_>) -> Result<()> {
        if !self.alarm.as_ref().is_some_and(|a| a.is(at, cx.waker())) {
            self.alarm = None;
            self.alarm = Some(sh.watchers.alarm(at, cx.waker())?);
        }
        Ok(())
    }
}

impl Shared {
    /// Takes the lock for one poll, or arranges a retry (`Pending`) if a
    /// live process keeps it.
    fn lock_for_poll(
        &self,
        block: Block,
        park: &mut Park,
        cx: &Context<'_>,
    ) -> Poll<Result<Locked<'_>>> {
        let started = *park.started.get_or_insert_with(Instant::now);
        match self.lock_until(Some(Instant::now() + POLL_LOCK_PATIENCE)) {
            Err(Error::LockBusy { name, pid, .. }) => {
                let give_up = block.deadline().map(|d| d.max(started + LOCK_PATIENCE));
                let now = Instant::now();
                if matches!(block, Block::No) || give_up.is_some_and(|g| now >= g) {
                    return fail(Error::LockBusy {
                        name,
                        pid,
                        waited: now - started,
                    });
                }
                let at = give_up.map_or(now + LOCK_RETRY, |g| g.min(now + LOCK_RETRY));
                park.reg = None;
                ready_try!(park.wake_at(self, at, cx));
                Poll::Pending
            }
            other => Poll::Ready(other),
        }
    }

    /// The waiting half of a poll that could not proceed: registers the
    /// waker for `ev` (and for the deadline) and returns `Pending`, or
    /// `out_of_time` if `block` allows no more waiting. `tick` wakes the
    /// task again after that long whatever happens (`join`'s sweeps).
    #[allow(clippy::too_many_arguments)]
    fn park<T>(
        self: &Arc<Self>,
        g: Locked<'_>,
        ev: Event,
        block: Block,
        park: &mut Park,
        cx: &Context<'_>,
        out_of_time: Error,
        tick: Option<Duration>,
    ) -> Poll<Result<T>> {
        let h = self.header();
        if Park::out_of_time(block) {
            if park.blocked && !matches!(block, Block::No) {
                h.counters.timeouts.fetch_add(1, Ordering::Relaxed);
            }
            return fail(out_of_time);
        }
        if !park.blocked {
            park.blocked = true;
            let counter = match ev {
                Event::Items => Some(&h.counters.blocked_gets),
                Event::Space => Some(&h.counters.blocked_puts),
                Event::Done => None,
            };
            if let Some(c) = counter {
                c.fetch_add(1, Ordering::Relaxed);
            }
        }
        // Under the lock, as a blocking waiter does: no wake-up is lost.
        let key = ev.of(&**self).prepare();
        drop(g);
        park.reg = None;
        match ready_try!(self.watchers.register(self, ev, key, cx.waker())) {
            Some(reg) => park.reg = Some(reg),
            // Moved already: poll again at once.
            None => cx.waker().wake_by_ref(),
        }
        let tick = tick.map(|t| Instant::now() + t);
        let at = match (block.deadline(), tick) {
            (Some(d), Some(t)) => Some(d.min(t)),
            (d, t) => d.or(t),
        };
        if let Some(at) = at {
            ready_try!(park.wake_at(self, at, cx));
        } else {
            park.alarm = None;
        }
        Poll::Pending
    }

    /// Puts one encoded item if there is room now; else waits (see `park`).
    pub(crate) fn poll_push(
        self: &Arc<Self>,
        item: &Encoded<'_>,
        block: Block,
        park: &mut Park,
        closed: &AtomicBool,
        cx: &Context<'_>,
    ) -> Poll<Result<()>> {
        ready_try!(self.check_size(item.len()));
        if closed.load(Ordering::Relaxed) {
            return fail(Error::Closed);
        }
        let mut g = match self.lock_for_poll(block, park, cx) {
            Poll::Ready(g) => ready_try!(g),
            Poll::Pending => return Poll::Pending,
        };
        if g.state.shutdown {
            return fail(Error::ShutDown);
        }
        if ready_try!(g.try_push(item)) {
            return Poll::Ready(Ok(()));
        }
        self.park(g, Event::Space, block, park, cx, Error::Full, None)
    }

    /// Removes up to `max` items if there are any now (see `Shared::pop`
    /// for `f`); else waits (see `park`).
    pub(crate) fn poll_pop<F: FnMut(&[u8]) -> bool>(
        self: &Arc<Self>,
        max: usize,
        block: Block,
        park: &mut Park,
        closed: &AtomicBool,
        cx: &Context<'_>,
        mut f: F,
    ) -> Poll<Result<usize>> {
        if closed.load(Ordering::Relaxed) {
            return fail(Error::Closed);
        }
        let mut g = match self.lock_for_poll(block, park, cx) {
            Poll::Ready(g) => ready_try!(g),
            Poll::Pending => return Poll::Pending,
        };
        if g.state.shutdown_immediate {
            // As `Shared::pop`: nothing put before an immediate shutdown is
            // handed out.
            ready_try!(g.drop_front());
        } else {
            let n = ready_try!(g.pop_into(max, &mut |b| Verdict::from(f(b))));
            if n > 0 {
                return Poll::Ready(Ok(n));
            }
        }
        // A live reservation (a large put still copying) is still an item.
        if g.state.shutdown && g.state.ring.count == 0 {
            return fail(Error::ShutDown);
        }
        // A record at the front that a live process is copying into or out
        // of: look again soon, in case that process dies.
        let tick = g.head_reserved.then_some(RESERVED_CHECK_EVERY);
        self.park(g, Event::Items, block, park, cx, Error::Empty, tick)
    }

    /// Ready once every task is done; else waits (see `park`), looking for
    /// dead consumers every [`JOIN_SWEEP_EVERY`].
    pub(crate) fn poll_join(
        self: &Arc<Self>,
        block: Block,
        park: &mut Park,
        closed: &AtomicBool,
        cx: &Context<'_>,
    ) -> Poll<Result<()>> {
        if closed.load(Ordering::Relaxed) {
            return fail(Error::Closed);
        }
        let mut g = match self.lock_for_poll(block, park, cx) {
            Poll::Ready(g) => ready_try!(g),
            Poll::Pending => return Poll::Pending,
        };
        if g.state.unfinished == 0 {
            return Poll::Ready(Ok(()));
        }
        g.sweep();
        if g.state.unfinished == 0 {
            return Poll::Ready(Ok(()));
        }
        let tick = Some(JOIN_SWEEP_EVERY);
        self.park(g, Event::Done, block, park, cx, Error::Timeout, tick)
    }
}
