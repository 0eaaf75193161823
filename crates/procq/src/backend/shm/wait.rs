//! [`Waiter`]: the waiting half of a blocking call — spin, then announce
//! and sleep on the queue's event counts.

use std::cell::Cell;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::block::Block;
use crate::error::Result;

use super::locked::{monotonic_ns, Locked};
use super::segment::DataArea;
use super::shared::Shared;
use super::sync::{self, Wake};

/// Longest a waiter polls before it sleeps (ns): about what the futex
/// wake-up it saves costs the two sides on this kind of VM, several times
/// over, and short enough that a wait that will be long costs little.
const SPIN_CAP_NS: u64 = 100_000;
/// What a waiter polls at least (ns), also while its waits are long (unless
/// its core is wanted): an answer from a process running on another core
/// (a ping-pong partner) comes within it.
const SPIN_FLOOR_NS: u64 = 2_000;
/// Looks at the queue between two looks at the clock while polling.
const SPIN_CHUNK: u32 = 8;
/// A gap this long between two looks at the clock within one poll means
/// the poller was descheduled: its core is wanted by someone else.
const PREEMPTED_NS: u64 = 20_000;
/// For how long after that (or after finding more threads runnable than
/// CPUs) this process's waiters barely poll.
const CALM_NS: u64 = 10_000_000;
/// How often a waiter about to poll longer than the floor counts the
/// runnable threads (a read of `/proc/loadavg`, a few microseconds).
const COUNT_EVERY_NS: u64 = 10_000_000;
/// Longest wait counted in the moving average: a long idle wait says
/// "sleep" as loudly as a longer one, and the average recovers within a
/// few short waits once items flow again.
const WAITED_MAX_NS: u64 = 1_000_000;
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
/// sleep. A get whose front item is still being copied in (a large item's
/// reservation: the count says "ready" already) spins the same way on that
/// record's header, which the publish turns into an item's (so a publish
/// within the spin costs its producer no syscall), and then announces
/// itself and polls the event count before it sleeps.
///
/// The spin is measured in time, not in rounds: up to twice the moving
/// average of how long this process's waits lasted, at least
/// [`SPIN_FLOOR_NS`], at most [`SPIN_CAP_NS`], and only the floor when
/// the waits last longer than the cap (an idle queue: its waiters sleep,
/// burning no CPU after the floor) or this call has waited longer than the
/// cap already. Items arriving every few tens of microseconds
/// (1 MiB ones) are then polled for, as iceoryx2's subscriber polls,
/// instead of each costing a futex wake-up and a context switch.
///
/// Only while a core is free: on a machine whose cores are all wanted,
/// spinning takes the time the other side needs. So a poll that finds
/// itself descheduled (the clock jumps by [`PREEMPTED_NS`] between two
/// looks, and the thread's count of involuntary context switches moved:
/// an interrupt or the hypervisor taking the time says nothing about this
/// machine's cores) stops, and so does a waiter that finds more threads runnable
/// than its process has CPUs (`sync::runnable`, counted at most every
/// [`COUNT_EVERY_NS`]); for [`CALM_NS`] after that, this process's waiters
/// look only twice [`SPIN_CHUNK`] times before they sleep.
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
    /// So is watching a reserved front record's header.
    watched: bool,
    /// `CLOCK_MONOTONIC` ns when this call began to wait (0: not yet, or
    /// its first poll succeeded before the clock was read).
    since: Cell<u64>,
    /// The call waited (the moving average learns how long).
    waited: bool,
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
            watched: false,
            since: Cell::new(0),
            waited: false,
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

    /// Called after the operation succeeded: the moving average of how
    /// long waits last learns this one.
    pub(super) fn succeeded(&self) {
        if self.waited {
            self.learn();
        }
    }

    /// Adds how long this call waited to the moving average (weight 1/4).
    fn learn(&self) {
        if !self.sh.spin {
            return;
        }
        let since = self.since.get();
        let waited = if since == 0 {
            0
        } else {
            monotonic_ns().saturating_sub(since).min(WAITED_MAX_NS)
        };
        let avg = &self.sh.pacing.waited_ns[self.want as usize];
        let old = u64::from(avg.load(Ordering::Relaxed));
        avg.store(((old * 3 + waited) / 4) as u32, Ordering::Relaxed);
    }

    /// How long to poll from `now` (ns): see [`Waiter`].
    fn spin_limit(&self, now: u64) -> u64 {
        let p = &self.sh.pacing;
        let avg = u64::from(p.waited_ns[self.want as usize].load(Ordering::Relaxed));
        // A call that has waited long already (woken now and then to look
        // at a front item still being copied in) polls briefly.
        let long = now.saturating_sub(self.since.get()) > SPIN_CAP_NS;
        let mut limit = if self.crowded(now) {
            // Two rounds of looks, as many as the old shortest spin.
            0
        } else if long || avg > SPIN_CAP_NS {
            SPIN_FLOOR_NS
        } else {
            (2 * avg).clamp(SPIN_FLOOR_NS, SPIN_CAP_NS)
        };
        if let Some(d) = self.block.deadline() {
            let left = d.saturating_duration_since(Instant::now()).as_nanos();
            limit = limit.min(u64::try_from(left).unwrap_or(u64::MAX));
        }
        limit
    }

    /// Whether this process's core is wanted by someone else (see
    /// [`Waiter`]): a recent spin was preempted, or more threads are
    /// runnable than this process has CPUs (counted now and then).
    fn crowded(&self, now: u64) -> bool {
        let p = &self.sh.pacing;
        if now < p.calm_until.load(Ordering::Relaxed) {
            return true;
        }
        if now.saturating_sub(p.counted_at.load(Ordering::Relaxed)) < COUNT_EVERY_NS {
            return false;
        }
        p.counted_at.store(now, Ordering::Relaxed);
        if sync::runnable().is_some_and(|n| n > sync::cpus()) {
            p.calm_until.store(now + CALM_NS, Ordering::Relaxed);
            return true;
        }
        false
    }

    /// The data area and the offset of the front record's header, if that
    /// record is a reservation (found under the lock `g`).
    fn front_reservation(&self, g: &Locked<'_>) -> Option<(DataArea<'a>, u64)> {
        let mem = self.sh.data_area()?;
        let ring = &g.state.ring;
        let front = ring.front(&mem).ok()??;
        front.reserved?;
        Some((mem, ring.offset(front.pos)))
    }

    /// Polls `done` for up to the spin limit; whether it said yes. Notes
    /// the start of the wait, and a preemption (see [`Waiter`]).
    fn poll(&self, done: impl Fn() -> bool) -> bool {
        // An answer from the other core often comes before the clock
        // would have been read.
        for _ in 0..SPIN_CHUNK {
            if done() {
                return true;
            }
            std::hint::spin_loop();
        }
        let start = monotonic_ns();
        if self.since.get() == 0 {
            self.since.set(start);
        }
        let limit = self.spin_limit(start);
        let mut last = start;
        loop {
            for _ in 0..SPIN_CHUNK {
                if done() {
                    return true;
                }
                std::hint::spin_loop();
            }
            let now = monotonic_ns();
            if now.saturating_sub(last) >= PREEMPTED_NS && preempted() {
                self.sh
                    .pacing
                    .calm_until
                    .store(now + CALM_NS, Ordering::Relaxed);
                return false;
            }
            if now.saturating_sub(start) >= limit {
                return false;
            }
            last = now;
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
        self.waited = true;
        if self.half_empty {
            let maxsize = self.sh.maxsize;
            if maxsize > 1 && g.state.ring.count >= maxsize && !g.state.shutdown {
                return self.wait_half_empty(g);
            }
            // Full for lack of bytes: the count says nothing about when
            // room comes back.
            self.half_empty = false;
        }
        if self.sh.spin && !self.spun && !g.head_reserved {
            drop(g);
            self.spun = true;
            self.poll(|| self.ready());
            return Ok(true); // go around once more, then announce and sleep
        }
        // A get behind a front record being copied in (the item count says
        // "ready" already) watches that record's header, which the publish
        // turns into an item's, still unannounced: a publish while it
        // watches makes no `FUTEX_WAKE` syscall.
        if self.sh.spin && !self.watched && g.head_reserved {
            if let Some((mem, off)) = self.front_reservation(&g) {
                let kind = mem.load_u32(off);
                drop(g);
                self.watched = true;
                self.poll(|| mem.load_u32(off) != kind);
                self.sh.check_intact()?;
                return Ok(true); // as above
            }
        }
        if self.since.get() == 0 {
            self.since.set(monotonic_ns());
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
        let reserved = g.head_reserved;
        drop(g);
        self.spun = false;
        self.watched = false;
        // Announced already: the publish of the front item (or a shutdown)
        // moves the count. Only a move counts: a flag that stays set (a
        // shutdown while the item is copied in) would have the call go
        // round without ever reaching its deadline.
        let due = || self.block.deadline().is_some_and(|d| Instant::now() >= d);
        if reserved && self.sh.spin && !due() && self.poll(|| ev.load() != key) {
            self.sh.check_intact()?;
            return Ok(true);
        }
        let woke = ev.wait(key, until);
        self.sh.check_intact()?;
        if woke == Wake::TimedOut && until == self.block.deadline() {
            h.counters.timeouts.fetch_add(1, Ordering::Relaxed);
            self.learn();
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

thread_local! {
    /// This thread's preemptions when [`preempted`] last counted them.
    static PREEMPTIONS: Cell<Option<u64>> = const { Cell::new(None) };
}

/// Whether the kernel has taken this thread off its CPU for another since
/// the last call (or it cannot tell, or this is the first call): a gap in a
/// poll can also be an interrupt, or the hypervisor running another guest,
/// which say nothing about this machine's cores being wanted. Costs a read
/// of `/proc`: call it only after such a gap.
fn preempted() -> bool {
    let now = sync::preemptions();
    let before = PREEMPTIONS.with(|p| p.replace(now));
    match (before, now) {
        (Some(before), Some(now)) => now != before,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;

    /// The word a get behind a reservation watches is the one the
    /// producer's publish changes, so the watch ends at the publish.
    #[test]
    fn a_get_behind_a_reservation_watches_the_word_its_publish_changes() {
        let q = crate::RawQueue::new(4).unwrap();
        let sh = q.backend.shared();
        let (reserved, is_reserved) = mpsc::channel();
        let (go, gone) = mpsc::channel::<()>();
        std::thread::scope(|s| {
            let q = &q;
            let producer = s.spawn(move || {
                q.put_with(1 << 20, None, |buf| {
                    // Copied in already: only the publish is left.
                    buf.fill(3);
                    reserved.send(()).unwrap();
                    gone.recv_timeout(Duration::from_secs(60)).unwrap();
                })
            });
            is_reserved.recv_timeout(Duration::from_secs(60)).unwrap();
            let waiter = Waiter::new(&sh, Block::Forever, Want::Items);
            let mut g = sh.lock().unwrap();
            assert_eq!(g.pop_into(1, &mut |_| unreachable!()).unwrap(), 0);
            assert!(g.head_reserved, "the front record is a reservation");
            let (mem, off) = waiter.front_reservation(&g).expect("a reservation");
            let kind = mem.load_u32(off);
            drop(g);
            assert_eq!(
                mem.load_u32(off),
                kind,
                "nothing changes it until the publish"
            );
            go.send(()).unwrap();
            producer.join().unwrap().unwrap();
            assert_ne!(mem.load_u32(off), kind, "the publish changed it");
        });
        assert_eq!(q.get().unwrap(), vec![3u8; 1 << 20]);
    }

    /// Nothing to watch when the front item is ready (or there is none).
    #[test]
    fn only_a_reservation_is_watched() {
        let q = crate::RawQueue::new(4).unwrap();
        let sh = q.backend.shared();
        let waiter = Waiter::new(&sh, Block::Forever, Want::Items);
        assert!(waiter.front_reservation(&sh.lock().unwrap()).is_none());
        q.put_with(1 << 20, None, |buf| buf.fill(1)).unwrap();
        assert!(waiter.front_reservation(&sh.lock().unwrap()).is_none());
    }
}
