//! Inter-process lock and wait primitives that live in shared memory.
//!
//! * [`RobustMutex`]: a process-shared, robust `pthread_mutex_t`. When its
//!   holder dies, the kernel's robust-futex list hands the lock to the next
//!   locker with `EOWNERDEAD`; procq repairs the queue state and calls
//!   `pthread_mutex_consistent` (the advice in the design notes: get
//!   robustness from glibc, never paper over it). The owner's pid is stamped
//!   beside the mutex so that a waiter can tell a slow holder from a dead one
//!   even when the kernel could not recover the lock (a corrupted segment).
//! * [`EventCount`]: a futex sequence word on which waiters sleep. Unlike a
//!   pthread condvar in shared memory (glibc ≥ 2.25 hangs after a crashed
//!   waiter, sourceware 21422; Boost.Interprocess #69/#163), a dead waiter
//!   leaves nothing behind but one "someone may be waiting" bit, which the
//!   next notification clears.
//!
//! Futex calls never pass `FUTEX_PRIVATE_FLAG`: a private wake is invisible
//! to other processes. Timeouts are relative, measured on `CLOCK_MONOTONIC`.

use std::cell::UnsafeCell;
use std::hint;
use std::io;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use rustix::thread::futex;

use crate::liveness::ProcessId;

/// Owner-stamp checks before sleeping on a contended lock, the last
/// [`LOCK_YIELDS`] of them with a `sched_yield` in between.
const LOCK_SPINS: u32 = 200;
const LOCK_YIELDS: u32 = 8;

/// Room reserved for a `pthread_mutex_t` (40 bytes on x86_64, 48 on aarch64).
const MUTEX_BYTES: usize = 48;
const _: () = assert!(std::mem::size_of::<libc::pthread_mutex_t>() <= MUTEX_BYTES);

/// A robust, process-shared mutex stored in shared memory.
#[repr(C, align(64))]
pub(crate) struct RobustMutex {
    /// The glibc mutex; only ever touched through `pthread_mutex_*`.
    mutex: UnsafeCell<[u64; MUTEX_BYTES / 8]>,
    /// Pid of the current holder, 0 when free. Written by the holder right
    /// after locking and cleared right before unlocking. On the mutex's own
    /// cache line: taking the lock moves one line, not two.
    owner: AtomicU32,
}
const _: () = assert!(std::mem::size_of::<RobustMutex>() == 64);

/// Offset of the owner stamp inside [`RobustMutex`] (for tests that forge one).
#[cfg(test)]
pub(crate) const OWNER_OFFSET: usize = std::mem::offset_of!(RobustMutex, owner);

// SAFETY: the mutex is only touched through `pthread_mutex_*`, which is
// thread- and process-safe for a PTHREAD_PROCESS_SHARED mutex, and `owner`
// is atomic.
unsafe impl Sync for RobustMutex {}
// SAFETY: as above; it holds no thread-affine state.
unsafe impl Send for RobustMutex {}

/// How a lock was acquired.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Acquired {
    /// The previous holder released it normally.
    Clean,
    /// The previous holder died while holding it: the protected state is as
    /// the dead process left it and must be repaired before `mark_consistent`.
    OwnerDied,
}

/// Why a lock could not be acquired.
#[derive(Debug)]
pub(crate) enum LockError {
    /// A previous repair was abandoned; the mutex can never be locked again.
    NotRecoverable,
    /// The recorded holder is dead but the lock was not handed over: the
    /// segment was corrupted or written by something that is not procq.
    DeadHolder(u32),
    /// Any other error code from glibc (e.g. `EINVAL` for a garbage mutex).
    Os(io::Error),
}

impl RobustMutex {
    /// Initializes the mutex in place.
    ///
    /// # Safety
    /// `this` must point to writable, suitably aligned shared memory that no
    /// other process uses yet.
    pub(crate) unsafe fn init(this: *const RobustMutex) -> io::Result<()> {
        let m = (*this).mutex.get().cast::<libc::pthread_mutex_t>();
        let mut attr = std::mem::MaybeUninit::<libc::pthread_mutexattr_t>::uninit();
        let check = |rc: i32| {
            if rc == 0 {
                Ok(())
            } else {
                Err(io::Error::from_raw_os_error(rc))
            }
        };
        check(libc::pthread_mutexattr_init(attr.as_mut_ptr()))?;
        let attr_ptr = attr.as_mut_ptr();
        let result = (|| {
            check(libc::pthread_mutexattr_setpshared(
                attr_ptr,
                libc::PTHREAD_PROCESS_SHARED,
            ))?;
            check(libc::pthread_mutexattr_setrobust(
                attr_ptr,
                libc::PTHREAD_MUTEX_ROBUST,
            ))?;
            check(libc::pthread_mutex_init(m, attr_ptr))
        })();
        libc::pthread_mutexattr_destroy(attr_ptr);
        (*this).owner.store(0, Ordering::Relaxed);
        result
    }

    fn raw(&self) -> *mut libc::pthread_mutex_t {
        self.mutex.get().cast()
    }

    /// Locks, waiting as long as the holder is alive.
    ///
    /// `me` is stamped as owner. Spins briefly with `trylock` first: the
    /// critical sections are short, and a futex sleep costs microseconds.
    pub(crate) fn lock(&self, me: u32) -> Result<Acquired, LockError> {
        // Test-and-test-and-set: a failed `trylock` is an atomic RMW that
        // pulls the mutex's cache line away from the holder and slows down
        // its unlock. So spin *reading* the owner stamp (a shared read) and
        // only try when the lock looks free.
        for i in 0..LOCK_SPINS {
            if self.owner.load(Ordering::Relaxed) == 0 {
                // SAFETY: the mutex was initialized by `init` in a mapping
                // that outlives `self`; glibc does its own synchronization.
                match unsafe { libc::pthread_mutex_trylock(self.raw()) } {
                    libc::EBUSY => {}
                    rc => return self.finish(rc, me),
                }
            }
            if i < LOCK_SPINS - LOCK_YIELDS {
                hint::spin_loop();
            } else {
                // Let a descheduled holder run (processes may outnumber cores).
                std::thread::yield_now();
            }
        }
        loop {
            let mut ts = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            // SAFETY: plain out-parameter call.
            unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
            ts.tv_sec += 1;
            // SAFETY: as above; `ts` is a valid absolute deadline.
            match unsafe { libc::pthread_mutex_timedlock(self.raw(), &ts) } {
                libc::ETIMEDOUT => {
                    let holder = self.owner.load(Ordering::Relaxed);
                    if holder != 0 && holder != me && !ProcessId::pid_exists(holder) {
                        return Err(LockError::DeadHolder(holder));
                    }
                }
                rc => return self.finish(rc, me),
            }
        }
    }

    fn finish(&self, rc: i32, me: u32) -> Result<Acquired, LockError> {
        let acquired = match rc {
            0 => Acquired::Clean,
            libc::EOWNERDEAD => Acquired::OwnerDied,
            libc::ENOTRECOVERABLE => return Err(LockError::NotRecoverable),
            rc => return Err(LockError::Os(io::Error::from_raw_os_error(rc))),
        };
        self.owner.store(me, Ordering::Relaxed);
        Ok(acquired)
    }

    /// Declares the state repaired after [`Acquired::OwnerDied`].
    pub(crate) fn mark_consistent(&self) {
        // SAFETY: called by the current holder after EOWNERDEAD.
        unsafe { libc::pthread_mutex_consistent(self.raw()) };
    }

    /// Unlocks. Must be called by the holder.
    pub(crate) fn unlock(&self) {
        self.owner.store(0, Ordering::Relaxed);
        // SAFETY: the calling thread holds the lock (guaranteed by the guard
        // types in `queue`).
        unsafe { libc::pthread_mutex_unlock(self.raw()) };
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
#[repr(C, align(64))]
pub(crate) struct EventCount {
    /// Notification counter (bits 1..) and waiter flag (bit 0).
    seq: AtomicU32,
}

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

    /// Unconditionally bumps the count and wakes everyone (used by `close`,
    /// which must interrupt this process's own waiters).
    pub(crate) fn bump(&self) {
        self.seq.fetch_add(2, Ordering::SeqCst);
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

/// Whether spinning can pay off: never on a single CPU.
pub(crate) fn may_spin() -> bool {
    use std::sync::OnceLock;
    static MULTI: OnceLock<bool> = OnceLock::new();
    *MULTI.get_or_init(|| {
        std::thread::available_parallelism()
            .map(|n| n.get() > 1)
            .unwrap_or(false)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn boxed_event() -> Arc<EventCount> {
        Arc::new(EventCount {
            seq: AtomicU32::new(0),
        })
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
    fn robust_mutex_survives_a_dead_holder_thread() {
        // A thread that exits holding a robust mutex leaves EOWNERDEAD, just
        // like a dead process does (the kernel walks each thread's list).
        let m: Arc<RobustMutex> = Arc::new(RobustMutex {
            mutex: UnsafeCell::new([0; MUTEX_BYTES / 8]),
            owner: AtomicU32::new(0),
        });
        // SAFETY: freshly allocated, not shared yet.
        unsafe { RobustMutex::init(&*m).unwrap() };
        let m2 = m.clone();
        std::thread::spawn(move || {
            assert_eq!(m2.lock(1).unwrap(), Acquired::Clean);
        })
        .join()
        .unwrap();
        assert_eq!(m.lock(2).unwrap(), Acquired::OwnerDied);
        m.mark_consistent();
        m.unlock();
        assert_eq!(m.lock(2).unwrap(), Acquired::Clean);
        m.unlock();
    }
}
