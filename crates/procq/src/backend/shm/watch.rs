//! Wakers for futures: how an `async` call waits for a shared-memory queue
//! without blocking its executor's thread.
//!
//! A blocking call sleeps on one of the queue's futex event counts (see
//! `sync::EventCount`). A future cannot: its executor thread must stay free,
//! and a futex word cannot be registered with a reactor (epoll) the way a
//! socket can. So a future that must wait registers its [`Waker`] here,
//! with the key it read from the event count under the queue lock, and
//! returns `Pending`:
//!
//! * [`Watch`]: one thread per attachment and event count (items, space,
//!   done), started on the first registration. While registrations exist it
//!   sleeps on the futex word, exactly as a blocked caller would (it sets
//!   the word's waiter bit, so notifiers wake it), and when the word moves it
//!   wakes every registered waker; their futures poll again, and those that
//!   lose the race register again. It also wakes them all once a second if
//!   the segment was truncated (the futures then report it). Idle for
//!   [`IDLE_EXIT`], it exits.
//! * [`Timer`]: one thread per attachment that wakes futures at their
//!   deadline (a timeout, or a retry after the lock stayed busy). It never
//!   touches the segment.
//!
//! So no executor is required (tokio, async-std, `futures::executor` and
//! any other work alike) and no dependency is added. The cost is two
//! threads per queue in a process that waits on it asynchronously, one
//! extra wake-up hop (futex → watcher thread → executor) per wait, and none
//! at all when the call does not wait. This is the "small dedicated waiter
//! thread" of issue #16; the alternative, an eventfd per waiter that every
//! notifier would have to write, would cost every put a syscall per waiting
//! process and cannot be cleaned up after a waiter is killed.
//!
//! A waker is never called with one of these mutexes held: waking can run
//! arbitrary code (PyO3's waker takes the GIL, which a thread registering
//! here may hold), and a panic in it is caught so the thread survives.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::task::Waker;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

use super::sync::EventCount;

/// How often a watcher wakes while futures wait, to notice a truncated
/// segment (nobody can wake a futex word whose page is gone).
const TICK: Duration = Duration::from_secs(1);
/// How long a watcher or timer thread stays without work before it exits.
const IDLE_EXIT: Duration = Duration::from_secs(5);
/// How long dropping a handle waits for an idle watcher to let go of the
/// attachment (it is woken for that, so this is only a bound).
const RELEASE_PATIENCE: Duration = Duration::from_secs(1);

/// Which event count a future waits on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Event {
    /// Items arrived (a `get` waits).
    Items,
    /// Room appeared (a `put` waits).
    Space,
    /// The unfinished-task count reached zero (a `join` waits).
    Done,
}

impl Event {
    const ALL: [Event; 3] = [Event::Items, Event::Space, Event::Done];

    pub(crate) fn of<S: Watched>(self, sh: &S) -> &EventCount {
        sh.event(self)
    }
}

/// What a watcher thread watches: one attachment (`Shared` implements it;
/// a trait so that this module stays below `shared` in the module graph).
pub(crate) trait Watched: Send + Sync + 'static {
    /// The event count `ev` of the queue.
    fn event(&self, ev: Event) -> &EventCount;
    /// Whether the segment is still there (see `sigbus`): a truncated one
    /// can never be woken, so its futures are woken to find out.
    fn is_intact(&self) -> bool;
}

/// The watchers and the timer of one attachment; no thread until a future
/// first waits.
#[derive(Default)]
pub(crate) struct Watchers {
    /// One per [`Event`], in the order of [`Event::ALL`].
    events: [Arc<Watch>; 3],
    timer: Arc<Timer>,
}

impl Watchers {
    fn watch(&self, ev: Event) -> &Arc<Watch> {
        &self.events[ev as usize]
    }

    /// Registers `waker` to be woken when `ev` moves away from `key` (read
    /// from it with `prepare` while the queue lock was held). `Ok(None)` if
    /// it has moved already: the caller should look at the queue again now.
    pub(crate) fn register<S: Watched>(
        &self,
        sh: &Arc<S>,
        ev: Event,
        key: u32,
        waker: &Waker,
    ) -> Result<Option<Registration>> {
        let watch = self.watch(ev);
        let mut st = lock(&watch.state);
        // Under the watch's mutex: the thread reads the word and scans the
        // registrations under it too, so either it sees this registration
        // or the word it sleeps on is not `key` any more (and it does not
        // sleep).
        if ev.of(&**sh).load() != key {
            return Ok(None);
        }
        let id = st.next_id;
        st.next_id += 1;
        st.regs.insert(id, (key, waker.clone()));
        if st.running {
            watch.cv.notify_all();
        } else {
            let (w, weak) = (watch.clone(), Arc::downgrade(sh));
            let spawned = std::thread::Builder::new()
                .name(format!("procq-watch-{ev:?}").to_lowercase())
                .spawn(move || watch_thread(w, weak, ev));
            if let Err(e) = spawned {
                st.regs.remove(&id);
                return Err(Error::io("starting procq's waiter thread", e));
            }
            st.running = true;
        }
        Ok(Some(Registration {
            watch: watch.clone(),
            id,
        }))
    }

    /// Wakes `waker` at `at` (until the returned alarm is dropped).
    pub(crate) fn alarm(&self, at: Instant, waker: &Waker) -> Result<Alarm> {
        self.timer.set(at, waker)
    }

    /// Makes a watcher that sleeps on the futex with nothing to wait for
    /// let go of the attachment now rather than at its next tick, so that a
    /// queue is detached (and removed) as soon as its last handle goes.
    /// Called when a handle is dropped, in the process that attached.
    pub(crate) fn release<S: Watched>(&self, sh: &S) {
        for ev in Event::ALL {
            let watch = self.watch(ev);
            let mut st = lock(&watch.state);
            if !(st.holding && st.regs.is_empty()) {
                continue;
            }
            // A wake-up without a change: every sleeper on this word (in
            // any process) looks at the queue once more and sleeps again.
            ev.of(sh).wake_sleepers();
            let until = Instant::now() + RELEASE_PATIENCE;
            while st.holding && st.regs.is_empty() {
                let Some(left) = until.checked_duration_since(Instant::now()) else {
                    break;
                };
                st = watch
                    .cv
                    .wait_timeout(st, left)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
        }
    }
}

/// Locks a mutex of this module: a waker that panicked never did so with
/// one held, so a poisoned lock still holds consistent data.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Calls each waker, surviving one that panics (the future it belonged to
/// then never learns; the thread must not die with the others).
fn wake_all(wakers: Vec<Waker>) {
    for w in wakers {
        let _ = catch_unwind(AssertUnwindSafe(|| w.wake()));
    }
}

/// The futures waiting on one event count of one attachment.
#[derive(Default)]
struct Watch {
    state: Mutex<WatchState>,
    /// Signalled on a new registration and when the thread lets go of the
    /// attachment.
    cv: Condvar,
}

#[derive(Default)]
struct WatchState {
    /// Registered futures: id → (the key they saw, their waker).
    regs: BTreeMap<u64, (u32, Waker)>,
    next_id: u64,
    /// A thread serves this watch.
    running: bool,
    /// The thread holds the attachment (it sleeps on the futex word).
    holding: bool,
}

/// A registered waker; dropping it (the future was dropped or polled
/// again) unregisters it.
pub(crate) struct Registration {
    watch: Arc<Watch>,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        lock(&self.watch.state).regs.remove(&self.id);
    }
}

fn watch_thread<S: Watched>(watch: Arc<Watch>, sh: Weak<S>, ev: Event) {
    let mut st = lock(&watch.state);
    loop {
        if st.regs.is_empty() {
            let (g, waited) = watch
                .cv
                .wait_timeout(st, IDLE_EXIT)
                .unwrap_or_else(|e| e.into_inner());
            st = g;
            if st.regs.is_empty() && waited.timed_out() {
                st.running = false;
                return;
            }
            continue;
        }
        let Some(shared) = sh.upgrade() else {
            // The attachment is gone: whoever still waits learns it when
            // polled (its handle cannot be gone, so this does not happen
            // while futures wait; be safe all the same).
            let wakers = std::mem::take(&mut st.regs).into_values().map(|r| r.1);
            st.running = false;
            drop(st);
            wake_all(wakers.collect());
            return;
        };
        let count = ev.of(&*shared);
        let cur = count.prepare();
        let broken = !shared.is_intact();
        let moved: Vec<u64> = st
            .regs
            .iter()
            .filter(|(_, (key, _))| broken || *key != cur)
            .map(|(&id, _)| id)
            .collect();
        let ready: Vec<Waker> = moved
            .iter()
            .filter_map(|id| st.regs.remove(id).map(|r| r.1))
            .collect();
        let sleep = !st.regs.is_empty();
        st.holding = sleep;
        drop(st);
        wake_all(ready);
        if sleep {
            count.wait(cur, Some(Instant::now() + TICK));
        }
        drop(shared);
        st = lock(&watch.state);
        if st.holding {
            st.holding = false;
            watch.cv.notify_all();
        }
    }
}

/// Wakes futures at their deadlines.
#[derive(Default)]
struct Timer {
    state: Mutex<TimerState>,
    /// Signalled when an earlier deadline is set.
    cv: Condvar,
}

#[derive(Default)]
struct TimerState {
    /// (deadline, id) → waker.
    due: BTreeMap<(Instant, u64), Waker>,
    next_id: u64,
    running: bool,
}

/// A deadline set with [`Watchers::alarm`]; dropping it cancels it.
pub(crate) struct Alarm {
    timer: Arc<Timer>,
    key: (Instant, u64),
}

impl Alarm {
    /// Whether this alarm rings at `at` and wakes what `waker` wakes.
    pub(crate) fn is(&self, at: Instant, waker: &Waker) -> bool {
        self.key.0 == at
            && lock(&self.timer.state)
                .due
                .get(&self.key)
                .is_some_and(|w| w.will_wake(waker))
    }
}

impl Drop for Alarm {
    fn drop(&mut self) {
        lock(&self.timer.state).due.remove(&self.key);
    }
}

impl Timer {
    fn set(self: &Arc<Timer>, at: Instant, waker: &Waker) -> Result<Alarm> {
        let mut st = lock(&self.state);
        let key = (at, st.next_id);
        st.next_id += 1;
        let earliest = st.due.keys().next().is_none_or(|first| key < *first);
        st.due.insert(key, waker.clone());
        if !st.running {
            let t = self.clone();
            let spawned = std::thread::Builder::new()
                .name("procq-timer".into())
                .spawn(move || timer_thread(t));
            if let Err(e) = spawned {
                st.due.remove(&key);
                return Err(Error::io("starting procq's timer thread", e));
            }
            st.running = true;
        } else if earliest {
            self.cv.notify_all();
        }
        Ok(Alarm {
            timer: self.clone(),
            key,
        })
    }
}

fn timer_thread(timer: Arc<Timer>) {
    let mut st = lock(&timer.state);
    loop {
        let now = Instant::now();
        let Some(&(first, _)) = st.due.keys().next() else {
            let (g, waited) = timer
                .cv
                .wait_timeout(st, IDLE_EXIT)
                .unwrap_or_else(|e| e.into_inner());
            st = g;
            if st.due.is_empty() && waited.timed_out() {
                st.running = false;
                return;
            }
            continue;
        };
        if first > now {
            st = timer
                .cv
                .wait_timeout(st, first - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
            continue;
        }
        let later = st.due.split_off(&(now, u64::MAX));
        let ready = std::mem::replace(&mut st.due, later);
        drop(st);
        wake_all(ready.into_values().collect());
        st = lock(&timer.state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counter() -> (Arc<Count>, Waker) {
        let c = Arc::new(Count(AtomicUsize::new(0)));
        (c.clone(), Waker::from(c))
    }

    fn eventually(what: &str, f: impl Fn() -> bool) {
        let until = Instant::now() + Duration::from_secs(10);
        while !f() {
            assert!(Instant::now() < until, "{what}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn the_timer_wakes_at_the_deadline_and_a_dropped_alarm_never() {
        let timer = Arc::new(Timer::default());
        let (a, wa) = counter();
        let (b, wb) = counter();
        let start = Instant::now();
        let _alarm = timer.set(start + Duration::from_millis(50), &wa).unwrap();
        let cancelled = timer.set(start + Duration::from_millis(20), &wb).unwrap();
        drop(cancelled);
        eventually("the alarm rang", || a.0.load(Ordering::SeqCst) == 1);
        assert!(start.elapsed() >= Duration::from_millis(50));
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(b.0.load(Ordering::SeqCst), 0, "a dropped alarm rang");
        // An earlier deadline set while the thread sleeps toward a later
        // one is served first.
        let (c, wc) = counter();
        let (d, wd) = counter();
        let start = Instant::now();
        let _late = timer.set(start + Duration::from_secs(30), &wc).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        let _soon = timer.set(start + Duration::from_millis(40), &wd).unwrap();
        eventually("the earlier alarm rang", || d.0.load(Ordering::SeqCst) == 1);
        assert!(start.elapsed() < Duration::from_secs(10));
        assert_eq!(c.0.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_panicking_waker_does_not_kill_the_timer() {
        struct Bomb;
        impl Wake for Bomb {
            fn wake(self: Arc<Self>) {
                panic!("waker panics (on purpose)");
            }
        }
        let timer = Arc::new(Timer::default());
        let bomb = Waker::from(Arc::new(Bomb));
        let _a = timer.set(Instant::now(), &bomb).unwrap();
        let (c, wc) = counter();
        let _b = timer
            .set(Instant::now() + Duration::from_millis(30), &wc)
            .unwrap();
        eventually("the timer survived", || c.0.load(Ordering::SeqCst) == 1);
    }
}
