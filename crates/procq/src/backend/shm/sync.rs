//! Inter-process lock and wait primitives that live in shared memory.
//!
//! * [`RobustLock`]: a futex mutex whose word holds only plain values — the
//!   holder's *owner stamp* and a "someone sleeps" bit — and that survives a
//!   holder dying at any instant. It never keeps or follows a pointer in
//!   shared memory (a glibc robust `pthread_mutex_t` keeps the owner's
//!   robust-list pointers inside the mutex, so whoever can write the segment
//!   could turn an unlock into an arbitrary memory write).
//! * [`EventCount`]: a futex sequence word on which waiters sleep. Unlike a
//!   pthread condvar in shared memory (glibc ≥ 2.25 hangs after a crashed
//!   waiter, sourceware 21422; Boost.Interprocess #69/#163), a dead waiter
//!   leaves nothing behind but one "someone may be waiting" bit, which the
//!   next notification clears.
//!
//! # The lock
//!
//! The word is `0` when free, else `stamp << 1 | PARKED`. The algorithm is
//! Drepper's three-state futex mutex ("Futexes Are Tricky", mutex 3) with
//! the "locked" state replaced by the holder's stamp, in the shape of
//! parking_lot's `RawMutex` (fast path inline, slow path apart):
//!
//! * **lock**: one compare-and-swap `0 → stamp`. If that fails, spin
//!   *reading* the word (test-and-test-and-set: a failed CAS would pull the
//!   cache line away from the holder) and retry while it looks free, ending
//!   the spin with a few `sched_yield`s; then set `PARKED` and `FUTEX_WAIT`.
//!   A locker that slept takes the lock as `stamp | PARKED`, since others
//!   may still sleep.
//! * **unlock**: one compare-and-swap `stamp → 0`; only if `PARKED` was set,
//!   one `FUTEX_WAKE` of one waiter. No syscall when nobody sleeps.
//! * **robustness**: a holder that dies cannot unlock, and no kernel list
//!   announces its death (the kernel's robust-futex list is per thread and
//!   owned by glibc). So a sleeping locker wakes up every few milliseconds
//!   (a backoff from 1 to 50 ms) and, if the word has not changed, asks its
//!   [`Holders`] oracle whether the stamp's owner still lives (procq answers
//!   with kernel-tracked file locks, see `liveness`). A dead or unidentifiable
//!   owner's lock is taken over with one compare-and-swap from the exact
//!   stale word, so of several lockers only one wins; the winner gets
//!   [`Acquired::OwnerDied`] and repairs the protected state before using it.
//!   A stamp that cannot name any owner (garbage, a forged word) is taken over
//!   at once.
//! * **deadlines**: every wait takes an optional deadline on the monotonic
//!   clock (futex timeouts are relative `CLOCK_MONOTONIC` waits). A *live*
//!   holder that does not let go — stopped with SIGSTOP inside its critical
//!   section — is indistinguishable from a slow one, so only the caller's
//!   deadline bounds that wait: the locker gives up with
//!   [`Busy`] naming the holder. Without a deadline it sleeps (never spins)
//!   until the holder lets go or dies.
//!
//! Several locks may live in one segment (each is one cache line); the
//! stamp and the oracle are the caller's, so one process can use one stamp
//! for all of them.
//!
//! Futex calls never pass `FUTEX_PRIVATE_FLAG`: a private wake is invisible
//! to other processes.

use std::hint;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rustix::thread::futex;

/// Reads of the word before sleeping on a contended lock, the last
/// [`LOCK_YIELDS`] of them with a `sched_yield` in between.
const LOCK_SPINS: u32 = 200;
const LOCK_YIELDS: u32 = 8;
/// How long a waiter sleeps before it looks at the holder again, at first
/// and at most (it doubles in between): a dead holder is noticed within
/// about 1 ms at first, and a long wait costs a wake-up every 50 ms.
const FIRST_NAP: Duration = Duration::from_millis(1);
const LONGEST_NAP: Duration = Duration::from_millis(50);

/// Bit 0 of the word: a locker may be sleeping on it.
const PARKED: u32 = 1;
/// Largest owner stamp (31 bits; bit 0 of the word is [`PARKED`]).
pub(crate) const MAX_STAMP: u32 = u32::MAX >> 1;

/// A robust mutex in shared memory: one word of plain values. Whoever
/// embeds it chooses its cache line (the queue header shares it only with
/// what the holder writes anyway: see `layout::Header::lock`).
#[repr(C)]
pub(crate) struct RobustLock {
    /// `0` when free, else `stamp << 1 | PARKED`.
    word: AtomicU32,
}
const _: () = assert!(std::mem::size_of::<RobustLock>() == 4);

/// How a lock was acquired.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Acquired {
    /// The previous holder released it normally.
    Clean,
    /// The previous holder died holding it (or the word named no live
    /// holder): the protected state is as it was left and must be repaired.
    OwnerDied,
}

/// What the owner of a stamp is, as far as the lock's user can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Holder {
    /// Alive (or cannot be proven dead): wait for it.
    Alive,
    /// Dead: take the lock over.
    Dead,
    /// The stamp names nobody (garbage or forged): take the lock over.
    Unknown,
}

/// Answers who holds a lock, for [`RobustLock::lock`].
pub(crate) trait Holders {
    /// Whether the owner of `stamp` lives. Only called after the word stayed
    /// unchanged for a while, so it may make a syscall.
    fn holder(&self, stamp: u32) -> Holder;
    /// Whether `stamp` can name an owner at all; must be cheap (no syscall).
    fn is_valid(&self, stamp: u32) -> bool;
}

/// The lock was still held by a live process when the deadline passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Busy {
    /// The holder's stamp.
    pub(crate) stamp: u32,
    /// How long this locker waited.
    pub(crate) waited: Duration,
}

impl RobustLock {
    /// Takes the lock as `stamp` (non-zero, at most [`MAX_STAMP`]), waiting
    /// until `deadline` (`None`: as long as the holder lives).
    #[inline]
    pub(crate) fn lock(
        &self,
        stamp: u32,
        deadline: Option<Instant>,
        holders: &impl Holders,
    ) -> Result<Acquired, Busy> {
        if self.try_lock(stamp) {
            return Ok(Acquired::Clean);
        }
        self.lock_slow(stamp, deadline, holders)
    }

    /// Takes the lock as `stamp` if it is free now: [`lock`](Self::lock)'s
    /// first step, for a caller that works out its deadline only when it
    /// must wait (then it goes on with [`lock_slow`](Self::lock_slow)).
    #[inline(always)]
    pub(crate) fn try_lock(&self, stamp: u32) -> bool {
        debug_assert!(stamp != 0 && stamp <= MAX_STAMP);
        // AcqRel: the holder's earlier writes (e.g. its identity in the
        // segment) are visible to whoever reads its stamp here.
        self.word
            .compare_exchange(0, stamp << 1, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    }

    /// [`lock`](Self::lock) after its first attempt ([`try_lock`](Self::try_lock))
    /// found the lock taken.
    #[cold]
    pub(crate) fn lock_slow(
        &self,
        stamp: u32,
        deadline: Option<Instant>,
        holders: &impl Holders,
    ) -> Result<Acquired, Busy> {
        // Spin while the holder is (probably) running: critical sections are
        // a bounds check and a memcpy, far shorter than a futex sleep.
        if may_spin() {
            for i in 0..LOCK_SPINS {
                let v = self.word.load(Ordering::Relaxed);
                if v == 0 {
                    if self
                        .word
                        .compare_exchange_weak(0, stamp << 1, Ordering::AcqRel, Ordering::Relaxed)
                        .is_ok()
                    {
                        return Ok(Acquired::Clean);
                    }
                } else if !holders.is_valid(v >> 1) {
                    break; // garbage: handled below
                }
                if i < LOCK_SPINS - LOCK_YIELDS {
                    hint::spin_loop();
                } else {
                    // Let a descheduled holder run (processes may outnumber cores).
                    std::thread::yield_now();
                }
            }
        }
        let started = Instant::now();
        let mut nap = FIRST_NAP;
        // The word as it was when a nap ended without a wake-up: if it is
        // still the same after the next look, its holder is examined.
        let mut unchanged: Option<u32> = None;
        loop {
            let v = self.word.load(Ordering::Acquire);
            if v == 0 {
                // Others may be asleep: keep PARKED so that our unlock wakes one.
                match self.word.compare_exchange(
                    0,
                    stamp << 1 | PARKED,
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => return Ok(Acquired::Clean),
                    Err(_) => continue,
                }
            }
            let holder = v >> 1;
            let verdict = if !holders.is_valid(holder) {
                Holder::Unknown
            } else if unchanged == Some(v) {
                holders.holder(holder)
            } else {
                Holder::Alive
            };
            if verdict != Holder::Alive {
                // Take over from the exact stale word: if it changed (the
                // holder was alive after all, or another locker won), look again.
                match self.word.compare_exchange(
                    v,
                    stamp << 1 | (v & PARKED),
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => return Ok(Acquired::OwnerDied),
                    Err(_) => {
                        unchanged = None;
                        continue;
                    }
                }
            }
            let now = Instant::now();
            let left = match deadline {
                Some(d) if now >= d => {
                    return Err(Busy {
                        stamp: holder,
                        waited: now - started,
                    })
                }
                Some(d) => (d - now).min(nap),
                None => nap,
            };
            if v & PARKED == 0
                && self
                    .word
                    .compare_exchange(v, v | PARKED, Ordering::Relaxed, Ordering::Relaxed)
                    .is_err()
            {
                unchanged = None;
                continue;
            }
            match futex::wait(
                &self.word,
                futex::Flags::empty(),
                v | PARKED,
                Some(&timespec(left)),
            ) {
                Err(rustix::io::Errno::TIMEDOUT) => {
                    // Nobody woke us: if the word is still the same, its
                    // holder gets examined on the next look.
                    unchanged = Some(v | PARKED);
                    nap = (nap * 2).min(LONGEST_NAP);
                }
                _ => unchanged = None,
            }
        }
    }

    /// Releases the lock taken as `stamp`. Returns `false` (and leaves the
    /// word alone) if the lock is no longer ours: another locker took it
    /// over, believing us dead.
    #[inline]
    pub(crate) fn unlock(&self, stamp: u32) -> bool {
        match self
            .word
            .compare_exchange(stamp << 1, 0, Ordering::Release, Ordering::Relaxed)
        {
            Ok(_) => true,
            Err(_) => self.unlock_slow(stamp),
        }
    }

    #[cold]
    fn unlock_slow(&self, stamp: u32) -> bool {
        if self
            .word
            .compare_exchange(stamp << 1 | PARKED, 0, Ordering::Release, Ordering::Relaxed)
            .is_err()
        {
            return false;
        }
        let _ = futex::wake(&self.word, futex::Flags::empty(), 1);
        true
    }

    /// The raw word (for tests and diagnostics).
    #[cfg(test)]
    pub(crate) fn word(&self) -> u32 {
        self.word.load(Ordering::Relaxed)
    }
}

/// A futex-backed event count: "wait until something changed since I looked".
///
/// The word counts notifications in steps of two; bit 0 means "someone may be
/// sleeping". A waiter calls [`prepare`](Self::prepare) while it still holds
/// the queue lock (after seeing that it must wait), releases the lock, then
/// [`wait`](Self::wait)s on the returned key. A notifier that changes the
/// queue calls [`notify_all`](Self::notify_all) after its commit; it pays for
/// a `FUTEX_WAKE` syscall only when the bit is set. Because the key is read
/// under the same lock that orders the commit, no wake-up can be lost.
///
/// # Waiting for a level
///
/// A waiter may instead ask to be woken only once a level (the queue's item
/// count) has fallen to a mark: [`prepare_level`](Self::prepare_level)
/// records the mark in a second word instead of setting the waiter bit, and
/// [`notify_level`](Self::notify_level) wakes such waiters only when the
/// level it reports is at or below the highest mark recorded. A producer of
/// a full queue uses it to sleep until the queue is half empty and then
/// refill it in one burst, instead of being woken, and waking, for every
/// single slot a consumer frees (see `wait`). The same ordering argument
/// holds: the mark is recorded before the key is read, and a notifier
/// clears the marks before it moves the count, so a level waiter either
/// sees the move or leaves its mark for the next notifier. Level waiters
/// always sleep with a timeout: a notifier that does not know about marks
/// (or dies between clearing them and moving the count) delays them, it
/// cannot strand them.
#[repr(C, align(64))]
pub(crate) struct EventCount {
    /// Notification counter (bits 1..) and waiter flag (bit 0).
    seq: AtomicU32,
    /// Level waiters: 0 if none, else the highest mark + 1 recorded since
    /// the last level wake-up. In the padding of `seq`'s cache line, which
    /// a notifier reads anyway.
    level: AtomicU32,
}
const _: () = assert!(std::mem::size_of::<EventCount>() == 64);

/// Outcome of [`EventCount::wait`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Wake {
    /// The count moved (or a spurious wake-up): look at the queue again.
    Notified,
    /// The deadline passed.
    TimedOut,
}

impl EventCount {
    /// Registers interest; returns the key to wait on.
    pub(crate) fn prepare(&self) -> u32 {
        self.seq.fetch_or(1, Ordering::SeqCst) | 1
    }

    /// Wakes every waiter if any registered since the last notification.
    #[inline]
    pub(crate) fn notify_all(&self) {
        let v = self.seq.load(Ordering::SeqCst);
        if v & 1 != 0
            && self
                .seq
                .compare_exchange(v, v.wrapping_add(1), Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
        {
            let _ = futex::wake(&self.seq, futex::Flags::empty(), i32::MAX as u32);
        }
    }

    /// Registers interest in the level falling to `mark` or below (see
    /// "Waiting for a level"); returns the key to wait on. Call it under
    /// the lock that orders the changes of the level.
    pub(crate) fn prepare_level(&self, mark: u32) -> u32 {
        self.level
            .fetch_max(mark.saturating_add(1), Ordering::SeqCst);
        self.seq.load(Ordering::SeqCst)
    }

    /// What [`notify_all`](Self::notify_all) does, and also wakes the level
    /// waiters if `level` is at or below a mark one of them recorded. One
    /// `FUTEX_WAKE` at most; none when nobody waits for this.
    #[inline]
    pub(crate) fn notify_level(&self, level: u64) {
        let marked = self.level.load(Ordering::SeqCst);
        if marked != 0 && level < u64::from(marked) && self.level.swap(0, Ordering::SeqCst) != 0 {
            // The marks are cleared first: a level waiter that records one
            // after this either reads the moved count as its key or is
            // woken by the next notifier. Everyone is woken, so the waiter
            // bit is cleared as `notify_all` clears it.
            let _ = self
                .seq
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| {
                    Some((v | 1).wrapping_add(1))
                });
            let _ = futex::wake(&self.seq, futex::Flags::empty(), i32::MAX as u32);
        } else {
            self.notify_all();
        }
    }

    /// Unconditionally bumps the count and wakes everyone (used by `close`,
    /// which must interrupt this process's own waiters).
    pub(crate) fn bump(&self) {
        self.seq.fetch_add(2, Ordering::SeqCst);
        let _ = futex::wake(&self.seq, futex::Flags::empty(), i32::MAX as u32);
    }

    /// The word as it is now (a key to compare with one from `prepare`).
    pub(crate) fn load(&self) -> u32 {
        self.seq.load(Ordering::SeqCst)
    }

    /// Wakes every sleeper without moving the count: they find nothing
    /// new and sleep again (used to make a watcher thread let go, see
    /// `watch`).
    pub(crate) fn wake_sleepers(&self) {
        let _ = futex::wake(&self.seq, futex::Flags::empty(), i32::MAX as u32);
    }

    /// Sleeps until the count moves away from `key`, or until `deadline`.
    /// (Callers spin before they announce themselves, see `shared::Waiter`.)
    pub(crate) fn wait(&self, key: u32, deadline: Option<Instant>) -> Wake {
        loop {
            let timeout = match deadline {
                None => None,
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => Some(left),
                    _ => return Wake::TimedOut,
                },
            };
            let ts = timeout.map(timespec);
            match futex::wait(&self.seq, futex::Flags::empty(), key, ts.as_ref()) {
                Ok(()) | Err(rustix::io::Errno::AGAIN) => return Wake::Notified,
                Err(rustix::io::Errno::INTR) => continue,
                Err(rustix::io::Errno::TIMEDOUT) => continue, // re-checked above
                Err(_) => return Wake::Notified,
            }
        }
    }

    /// Current raw value (for statistics).
    #[cfg(test)]
    pub(crate) fn value(&self) -> u32 {
        self.seq.load(Ordering::Relaxed)
    }
}

fn timespec(d: Duration) -> futex::Timespec {
    futex::Timespec {
        tv_sec: d.as_secs() as _,
        tv_nsec: d.subsec_nanos() as _,
    }
}

/// How one process's waits on one queue went lately: what the spin of
/// `wait::Waiter` adapts to. Per process, not in shared memory: nothing
/// another process writes can make this one spin.
#[derive(Default)]
pub(crate) struct Pacing {
    /// Moving average of how long this process's blocked calls waited, in
    /// nanoseconds (capped), for items (`[0]`) and for room (`[1]`).
    pub(crate) waited_ns: [AtomicU32; 2],
    /// `CLOCK_MONOTONIC` nanoseconds before which a waiter polls only
    /// briefly: a spin of this process was preempted, or more threads were
    /// runnable than this process has CPUs, so its core is wanted by
    /// someone else.
    pub(crate) calm_until: AtomicU64,
    /// `CLOCK_MONOTONIC` nanoseconds when [`runnable`] was last asked.
    pub(crate) counted_at: AtomicU64,
}

/// How many threads of the whole system are runnable right now (the
/// fourth field of `/proc/loadavg`, counting the caller), if it can tell.
/// A few microseconds: ask it now and then, not per wait.
pub(crate) fn runnable() -> Option<usize> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let field = text.split_whitespace().nth(3)?;
    field.split('/').next()?.parse().ok()
}

/// How many times the kernel has taken the calling thread off its CPU for
/// another (`nonvoluntary_ctxt_switches` in `/proc/thread-self/status`), if
/// it can tell. Tens of microseconds: ask it only now and then.
pub(crate) fn preemptions() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/status").ok()?;
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("nonvoluntary_ctxt_switches:"))?;
    line.trim().parse().ok()
}

/// CPUs this process may run on.
pub(crate) fn cpus() -> usize {
    use std::sync::OnceLock;
    static CPUS: OnceLock<usize> = OnceLock::new();
    *CPUS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Whether spinning can pay off: never on a single CPU.
pub(crate) fn may_spin() -> bool {
    cpus() > 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn boxed_event() -> Arc<EventCount> {
        Arc::new(EventCount {
            seq: AtomicU32::new(0),
            level: AtomicU32::new(0),
        })
    }

    /// What tells a poll's gap that another thread took its CPU (not an
    /// interrupt or the hypervisor): this thread's count moves when it
    /// shares its CPU with a spinning thread.
    #[test]
    fn preemptions_count_the_times_another_thread_took_the_cpu() {
        use rustix::thread::{sched_getcpu, sched_setaffinity, CpuSet};
        use std::sync::atomic::AtomicBool;
        use std::time::{Duration, Instant};
        let before = preemptions().expect("Linux counts them");
        let mut one = CpuSet::new();
        one.set(sched_getcpu());
        let deadline = Instant::now() + Duration::from_secs(60);
        let stop = AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                sched_setaffinity(None, &one).unwrap();
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    std::hint::spin_loop();
                }
            });
            sched_setaffinity(None, &one).unwrap();
            while preemptions() == Some(before) && Instant::now() < deadline {
                std::hint::spin_loop();
            }
            stop.store(true, Ordering::Relaxed);
        });
        assert!(preemptions().unwrap() > before, "never preempted");
    }

    #[test]
    fn notify_without_waiters_is_free_and_keeps_value() {
        let ev = boxed_event();
        ev.notify_all();
        assert_eq!(ev.value(), 0);
        let key = ev.prepare();
        assert_eq!(key, 1);
        ev.notify_all();
        assert_eq!(ev.value(), 2);
        assert_eq!(ev.wait(key, None), Wake::Notified);
    }

    #[test]
    fn wait_times_out_on_monotonic_deadline() {
        let ev = boxed_event();
        let key = ev.prepare();
        let t = Instant::now();
        assert_eq!(
            ev.wait(key, Some(t + Duration::from_millis(50))),
            Wake::TimedOut
        );
        assert!(t.elapsed() >= Duration::from_millis(50));
    }

    #[test]
    fn waiter_is_woken_by_another_thread() {
        let ev = boxed_event();
        let key = ev.prepare();
        let ev2 = ev.clone();
        let h = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            ev2.notify_all();
        });
        assert_eq!(
            ev.wait(key, Some(Instant::now() + Duration::from_secs(10))),
            Wake::Notified
        );
        h.join().unwrap();
    }

    #[test]
    fn a_level_waiter_is_woken_only_at_or_below_its_mark() {
        let ev = boxed_event();
        let key = ev.prepare_level(4);
        assert_eq!(key & 1, 0, "a level waiter does not set the waiter bit");
        for level in [9, 6, 5] {
            ev.notify_level(level);
            assert_eq!(ev.load(), key, "woken at level {level}");
        }
        ev.notify_level(4);
        assert_ne!(ev.load(), key);
        assert_eq!(ev.wait(key, None), Wake::Notified);
        // The marks went with that wake-up: nothing left to wake.
        let moved = ev.load();
        ev.notify_level(0);
        assert_eq!(ev.load(), moved);
    }

    #[test]
    fn level_and_plain_waiters_are_each_woken_by_their_own_rule() {
        let ev = boxed_event();
        let level_key = ev.prepare_level(2);
        // A plain waiter is woken by any notification, and so is everyone
        // sleeping on the word (the level waiter looks and sleeps again).
        let key = ev.prepare();
        ev.notify_level(7);
        assert_ne!(ev.load(), key);
        assert_eq!(ev.load() & 1, 0, "the waiter bit is cleared");
        // The level waiter's mark stays for the next notifier.
        let key = ev.prepare_level(2);
        assert_ne!(key, level_key);
        ev.notify_level(3);
        assert_eq!(ev.load(), key);
        ev.notify_level(1);
        assert_ne!(ev.load(), key);
        assert_eq!(ev.load() & 1, 0);
        // The highest mark counts when several waiters record one.
        let key = ev.prepare_level(1);
        ev.prepare_level(5);
        ev.notify_level(5);
        assert_ne!(ev.load(), key);
    }

    #[test]
    fn a_sleeping_level_waiter_is_woken_by_another_thread() {
        let ev = boxed_event();
        let key = ev.prepare_level(10);
        let ev2 = ev.clone();
        let h = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            ev2.notify_level(11);
            ev2.notify_level(10);
        });
        assert_eq!(
            ev.wait(key, Some(Instant::now() + Duration::from_secs(10))),
            Wake::Notified
        );
        h.join().unwrap();
    }

    /// Stamps 1..=100 are valid; `dead` holds the ones whose owner died.
    struct Table {
        dead: std::sync::Mutex<Vec<u32>>,
    }

    impl Holders for Table {
        fn holder(&self, stamp: u32) -> Holder {
            if self.dead.lock().unwrap().contains(&stamp) {
                Holder::Dead
            } else {
                Holder::Alive
            }
        }
        fn is_valid(&self, stamp: u32) -> bool {
            (1..=100).contains(&stamp)
        }
    }

    fn table() -> Arc<Table> {
        Arc::new(Table {
            dead: std::sync::Mutex::new(Vec::new()),
        })
    }

    fn new_lock() -> Arc<RobustLock> {
        Arc::new(RobustLock {
            word: AtomicU32::new(0),
        })
    }

    #[test]
    fn uncontended_lock_stamps_the_word_and_unlock_clears_it() {
        let (l, t) = (new_lock(), table());
        assert_eq!(l.lock(5, None, &*t), Ok(Acquired::Clean));
        assert_eq!(l.word(), 5 << 1);
        assert!(l.unlock(5));
        assert_eq!(l.word(), 0);
        assert!(!l.unlock(5), "not ours any more");
    }

    #[test]
    fn threads_exclude_each_other() {
        let (l, t) = (new_lock(), table());
        let counter = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let handles: Vec<_> = (1..=4u32)
            .map(|stamp| {
                let (l, t, counter) = (l.clone(), t.clone(), counter.clone());
                std::thread::spawn(move || {
                    for _ in 0..20_000 {
                        l.lock(stamp, None, &*t).unwrap();
                        // A non-atomic read-modify-write: torn if two hold it.
                        let v = counter.load(Ordering::Relaxed);
                        counter.store(v + 1, Ordering::Relaxed);
                        assert!(l.unlock(stamp));
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(counter.load(Ordering::Relaxed), 80_000);
        assert_eq!(l.word(), 0);
    }

    #[test]
    fn a_live_holder_times_out_waiters_at_their_deadline() {
        let (l, t) = (new_lock(), table());
        l.lock(1, None, &*t).unwrap();
        let start = Instant::now();
        let busy = l
            .lock(2, Some(start + Duration::from_millis(100)), &*t)
            .unwrap_err();
        assert_eq!(busy.stamp, 1);
        // Not before the deadline; `waited` counts from the call's own
        // start, which a loaded machine may delay past `start` (it failed
        // once with 88 ms against a bound of 90).
        let elapsed = start.elapsed();
        assert!(elapsed >= Duration::from_millis(100), "{elapsed:?}");
        assert!(busy.waited <= elapsed, "{busy:?} {elapsed:?}");
        assert!(elapsed < Duration::from_secs(5));
        assert!(l.unlock(1));
    }

    #[test]
    fn a_dead_holder_is_taken_over_once() {
        let (l, t) = (new_lock(), table());
        l.lock(1, None, &*t).unwrap();
        t.dead.lock().unwrap().push(1);
        let deadline = Some(Instant::now() + Duration::from_secs(10));
        assert_eq!(l.lock(2, deadline, &*t), Ok(Acquired::OwnerDied));
        assert!(!l.unlock(1), "the dead holder's unlock must not release it");
        assert!(l.unlock(2));
        assert_eq!(l.lock(3, deadline, &*t), Ok(Acquired::Clean));
        assert!(l.unlock(3));
    }

    #[test]
    fn a_garbage_word_is_taken_over_at_once() {
        let (l, t) = (new_lock(), table());
        for garbage in [1u32, 0xffff_fffe, 0xdead_beef, 101 << 1] {
            l.word.store(garbage, Ordering::Relaxed);
            let start = Instant::now();
            assert_eq!(
                l.lock(7, None, &*t),
                Ok(Acquired::OwnerDied),
                "{garbage:#x}"
            );
            assert!(start.elapsed() < Duration::from_secs(2));
            assert!(l.unlock(7));
        }
    }

    #[test]
    fn a_sleeping_waiter_is_woken_by_unlock() {
        let (l, t) = (new_lock(), table());
        l.lock(1, None, &*t).unwrap();
        let (l2, t2) = (l.clone(), t.clone());
        let h = std::thread::spawn(move || {
            let r = l2.lock(2, None, &*t2);
            assert!(l2.unlock(2));
            r
        });
        // Wait until the waiter has gone to sleep (on a loaded machine the
        // thread may take a while to get there).
        let start = Instant::now();
        while l.word() & PARKED == 0 {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "the waiter sleeps"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(l.unlock(1));
        assert_eq!(h.join().unwrap(), Ok(Acquired::Clean));
        assert_eq!(l.word(), 0);
    }
}
