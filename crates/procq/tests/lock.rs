//! The queue lock against stuck and dead holders, across real processes.
//!
//! A child takes the lock for real and stops (SIGSTOP) or dies (SIGKILL)
//! inside its critical section: `get` decodes the item while it holds the
//! lock, and the item type [`Trap`] raises the signal from its decoder.
//! Every call with a deadline must then return within its timeout plus
//! about a second with [`Error::LockBusy`] naming the holder; inspection and
//! garbage collection must not hang on the wedged queue; `remove` must
//! remove it; a call without a timeout must sleep, not spin, while it waits;
//! and a dead holder's lock is recovered.

mod common;

use common::Reaped;
use std::time::{Duration, Instant};

use procq::{Builder, Error, JoinableQueue, Queue};
use serde::{Deserialize, Deserializer, Serialize};

const LIMIT: Duration = Duration::from_secs(60);
/// How long past its own timeout a call may take to give up on the lock
/// (the promise is ~1 s; the rest is slack for a loaded machine).
const SLACK: Duration = Duration::from_millis(2500);

const STOP_INSIDE: u32 = 0xdead_0001;
const DIE_INSIDE: u32 = 0xdead_0002;

/// An item whose decoder, in a child process, stops or kills the process
/// when it sees a marker value: decoding runs under the queue lock.
#[derive(Serialize, Debug, PartialEq)]
struct Trap(u32);

impl<'de> Deserialize<'de> for Trap {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = u32::deserialize(d)?;
        if common::role().is_some() {
            let sig = match v {
                STOP_INSIDE => Some(libc::SIGSTOP),
                DIE_INSIDE => Some(libc::SIGKILL),
                _ => None,
            };
            if let Some(sig) = sig {
                // Thread-directed (not kill(getpid())): a process-directed
                // stop may be taken by another thread, and this one would
                // run on to its commit before it stops.
                // SAFETY: signals this very thread.
                unsafe { libc::raise(sig) };
            }
        }
        Ok(Trap(v))
    }
}

#[test]
fn child_entry() {
    let Some((role, args)) = common::role() else {
        return;
    };
    match role.as_str() {
        "get" => {
            let q = JoinableQueue::<Trap>::open(&args[0]).unwrap();
            q.get_timeout(LIMIT).unwrap();
        }
        "orphan" => {
            // Creates a queue and is killed holding it: garbage to collect.
            let _q = Builder::new().name(&args[0]).build::<u8>().unwrap();
            let ready = Queue::<u8>::open(&args[1]).unwrap();
            ready.put(&1).unwrap();
            std::thread::sleep(LIMIT);
        }
        other => panic!("unknown role {other}"),
    }
}

fn state_of(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 2..].chars().next()
}

fn wait_until_stopped(pid: u32) {
    let start = Instant::now();
    while state_of(pid) != Some('T') {
        assert!(start.elapsed() < LIMIT, "child {pid} never stopped");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Runs `f` on another thread; fails if it has not returned after `limit`
/// (so that a regression fails the test instead of hanging it).
fn within<R: Send + 'static>(limit: Duration, f: impl FnOnce() -> R + Send + 'static) -> R {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit)
        .unwrap_or_else(|_| panic!("call still blocked after {limit:?}"))
}

/// Asserts that `r` is `LockBusy` naming `pid`, reached after about
/// `timeout` (not before it, not much after it).
fn assert_busy<T: std::fmt::Debug>(
    what: &str,
    r: (procq::Result<T>, Duration),
    timeout: Duration,
    pid: u32,
) {
    let (r, took) = r;
    match r {
        Err(Error::LockBusy { pid: holder, .. }) => {
            assert_eq!(holder, pid, "{what}: names the holder")
        }
        other => panic!("{what}: expected LockBusy, got {other:?}"),
    }
    assert!(
        took + Duration::from_millis(50) >= timeout && took <= timeout + SLACK,
        "{what}: gave up after {took:?} (timeout {timeout:?})"
    );
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let t = Instant::now();
    let r = f();
    (r, t.elapsed())
}

/// CPU time this thread has used.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: plain out-parameter call.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

#[test]
fn a_holder_stopped_inside_the_lock_bounds_every_call_with_a_deadline() {
    // Sorted first by name, so that garbage collection meets it first.
    let name = format!("lock-a-stuck-{}", std::process::id());
    let q = Builder::new().name(&name).build_joinable::<Trap>().unwrap();
    q.put(&Trap(STOP_INSIDE)).unwrap();
    q.put(&Trap(7)).unwrap();
    let child = Reaped(common::spawn("get", &[&name]));
    let pid = child.0.id();
    wait_until_stopped(pid);

    let one = Duration::from_secs(1);
    let zero = Duration::ZERO;
    let (q1, q2, q3, q4, n) = (q.clone(), q.clone(), q.clone(), q.clone(), name.clone());
    assert_busy(
        "get_timeout",
        within(LIMIT, move || timed(|| q1.get_timeout(one))),
        one,
        pid,
    );
    assert_busy(
        "get_nowait",
        within(LIMIT, move || timed(|| q2.get_nowait())),
        zero,
        pid,
    );
    let q6 = q.clone();
    assert_busy(
        "put_nowait",
        within(LIMIT, move || timed(|| q6.put_nowait(&Trap(8)))),
        zero,
        pid,
    );
    assert_busy(
        "put_timeout",
        within(LIMIT, move || timed(|| q3.put_timeout(&Trap(8), one))),
        one,
        pid,
    );
    assert_busy(
        "join_timeout",
        within(LIMIT, move || timed(|| q4.join_timeout(one))),
        one,
        pid,
    );
    assert_busy(
        "stats",
        within(LIMIT, move || timed(|| procq::stats(&n))),
        zero,
        pid,
    );

    // Garbage collection skips the wedged queue and still collects the rest.
    let orphan = format!("lock-b-orphan-{}", std::process::id());
    let ready = Queue::<u8>::new(0).unwrap();
    let mut o = Reaped(common::spawn("orphan", &[&orphan, ready.name()]));
    ready.get_timeout(LIMIT).unwrap();
    o.0.kill().unwrap();
    o.0.wait().unwrap();
    let (report, took) = within(LIMIT, || timed(procq::collect_garbage_report));
    let report = report.unwrap();
    assert!(
        report.removed.contains(&orphan),
        "orphan collected: {report:?}"
    );
    assert!(
        !report.removed.contains(&name),
        "a queue in use is never collected"
    );
    assert!(
        report
            .skipped
            .iter()
            .any(|(n, e)| n == &name && matches!(e, Error::LockBusy { .. })),
        "the wedged queue is reported busy: {report:?}"
    );
    assert!(took < SLACK * 2, "gc took {took:?}");

    // A call without a timeout waits for the stopped holder — asleep.
    let q5 = q.clone();
    let blocked = std::thread::spawn(move || {
        let cpu = thread_cpu();
        let item = q5.get();
        (item, thread_cpu() - cpu)
    });
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !blocked.is_finished(),
        "get() returned while the lock is held"
    );
    // SAFETY: continues our own child.
    unsafe { libc::kill(pid as i32, libc::SIGCONT) };
    let (item, cpu) = within(LIMIT, move || blocked.join().unwrap());
    assert_eq!(item.unwrap(), Trap(7), "the holder got the first item");
    assert!(
        cpu < Duration::from_millis(500),
        "get() spun: {cpu:?} of CPU in 2 s"
    );
    let mut child = child;
    common::wait_ok(&mut child.0, LIMIT);
    // The child left without task_done: its task was written off.
    q.task_done().unwrap();
    q.join_timeout(LIMIT).unwrap();
}

#[test]
fn remove_removes_a_queue_whose_lock_is_wedged() {
    let name = common::unique("lock-rm");
    let q = Builder::new().name(&name).build_joinable::<Trap>().unwrap();
    q.put(&Trap(STOP_INSIDE)).unwrap();
    let child = Reaped(common::spawn("get", &[&name]));
    wait_until_stopped(child.0.id());
    let n = name.clone();
    let (r, took) = within(LIMIT, move || timed(|| procq::remove(&n)));
    r.unwrap();
    assert!(took < SLACK, "remove took {took:?}");
    assert!(!common::segment_exists(&name));
    assert!(matches!(procq::stats(&name), Err(Error::NotFound(_))));
    // The holder goes on with the mapping it has.
    // SAFETY: continues our own child.
    unsafe { libc::kill(child.0.id() as i32, libc::SIGCONT) };
    let mut child = child;
    common::wait_ok(&mut child.0, LIMIT);
    drop(q);
}

#[test]
fn a_holder_killed_inside_the_lock_hands_it_over() {
    let q = Builder::new().build_joinable::<Trap>().unwrap();
    q.put(&Trap(DIE_INSIDE)).unwrap();
    q.put(&Trap(7)).unwrap();
    let mut child = common::spawn("get", &[q.name()]);
    let status = common::wait(&mut child, LIMIT);
    assert!(!status.success(), "the child died inside the lock");
    // The killed get never committed: its item is still first.
    let q1 = q.clone();
    let (a, b) = within(LIMIT, move || {
        (
            q1.get_timeout(LIMIT).unwrap(),
            q1.get_timeout(LIMIT).unwrap(),
        )
    });
    assert_eq!((a, b), (Trap(DIE_INSIDE), Trap(7)));
    assert!(q.stats().unwrap().recoveries >= 1);
    q.task_done().unwrap();
    q.task_done().unwrap();
    q.join_timeout(LIMIT).unwrap();
}

#[test]
fn a_holder_killed_while_others_wait_without_timeout_hands_it_over() {
    let q = Builder::new().build_joinable::<Trap>().unwrap();
    q.put(&Trap(STOP_INSIDE)).unwrap();
    q.put(&Trap(7)).unwrap();
    let child = Reaped(common::spawn("get", &[q.name()]));
    wait_until_stopped(child.0.id());
    let q1 = q.clone();
    let waiter = std::thread::spawn(move || q1.get());
    std::thread::sleep(Duration::from_millis(500));
    drop(child); // SIGKILL while stopped inside the lock
    let item = within(LIMIT, move || waiter.join().unwrap());
    // The dead holder had not committed: the waiter gets the first item.
    assert_eq!(item.unwrap(), Trap(STOP_INSIDE));
    q.task_done().unwrap();
}
