//! Handles used in a child created by `fork()` (Python's `fork` start
//! method): the child attaches as itself, even when another thread of the
//! parent was attaching at the moment of the fork, and fails clearly rather
//! than borrow the parent's attachment when it cannot attach.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use procq::{Builder, Queue};

/// Forks; the child runs `f` and exits with its return value as status.
fn fork_and_run(f: impl FnOnce() -> i32) -> libc::pid_t {
    // SAFETY: the child only runs `f` and `_exit`s; procq is built to be
    // used after fork (that is what this file tests).
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(101);
        // SAFETY: leaves the child without running the parent's atexit
        // handlers or test harness.
        unsafe { libc::_exit(code) };
    }
    pid
}

/// Waits for a forked child; kills it and fails if it takes longer than
/// `limit` (a deadlocked child must fail the test, not hang it).
fn wait_child(pid: libc::pid_t, limit: Duration) -> i32 {
    let start = Instant::now();
    loop {
        let mut status = 0;
        // SAFETY: plain waitpid on our own child.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        assert!(r >= 0, "waitpid failed");
        if r == pid {
            assert!(libc::WIFEXITED(status), "child {pid} died: status {status}");
            return libc::WEXITSTATUS(status);
        }
        if start.elapsed() > limit {
            // SAFETY: our own child.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            panic!("forked child {pid} hung for {limit:?} (deadlocked?)");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn children_forked_while_another_thread_attaches_can_use_the_queue() {
    let q = Queue::<u64>::new(0).unwrap();
    // A queue nobody in this process keeps open: every `open` attaches
    // afresh (maps it, takes its lock, claims a slot) and every drop detaches.
    let other = format!("fork-other-{}", std::process::id());
    /// Removes the persistent queue even if the test fails.
    struct Remove(String);
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = procq::remove(&self.0);
        }
    }
    let _remove = Remove(other.clone());
    let keeper = Builder::new()
        .name(&other)
        .persistent(true)
        .build::<u64>()
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let attacher = {
        let stop = stop.clone();
        let other = other.clone();
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let h = Queue::<u64>::open(&other).unwrap();
                h.put(&n).unwrap();
                h.get().unwrap();
                n += 1;
            }
            n
        })
    };
    let children = 40;
    for i in 0..children {
        let q2 = &q;
        let other2 = &other;
        let pid = fork_and_run(move || {
            // Both the inherited handle and a fresh open must work at once.
            let ok = q2.put(&i).is_ok()
                && Queue::<u64>::open(other2)
                    .and_then(|h| h.put(&0).and_then(|()| h.get()))
                    .is_ok();
            i32::from(!ok)
        });
        assert_eq!(wait_child(pid, Duration::from_secs(20)), 0, "child {i}");
        std::thread::sleep(Duration::from_millis(1));
    }
    stop.store(true, Ordering::Relaxed);
    let attaches = attacher.join().unwrap();
    let mut got: Vec<u64> = (0..children).map(|_| q.get_nowait().unwrap()).collect();
    got.sort();
    assert_eq!(got, (0..children).collect::<Vec<_>>());
    eprintln!("{children} forks during {attaches} attaches");
    drop(keeper);
}

#[test]
fn a_child_that_cannot_attach_fails_instead_of_borrowing_the_parents_slot() {
    let q = Queue::<u64>::new(0).unwrap();
    // The name is gone: a child can no longer attach by it.
    procq::remove(q.name()).unwrap();
    q.put(&1).unwrap(); // this process keeps its attachment
    let pid = fork_and_run(|| match q.put(&2) {
        Err(procq::Error::NotFound(_)) => 0,
        Err(e) => {
            eprintln!("unexpected error: {e}");
            2
        }
        Ok(()) => 1,
    });
    assert_eq!(
        wait_child(pid, Duration::from_secs(20)),
        0,
        "the child must fail with NotFound, not use the parent's slot"
    );
    assert_eq!(q.get_nowait().unwrap(), 1);
    assert!(q.get_nowait().is_err(), "nothing was put by the child");
}
