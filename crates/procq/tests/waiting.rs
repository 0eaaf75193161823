//! A blocked `get` polls only briefly: a process whose queue goes idle
//! sleeps, whatever its recent items taught its spin.
//!
//! A child gets a stream of items that each arrive a few tens of
//! microseconds after it starts waiting (what makes its spin poll longest),
//! then measures the CPU time its own thread uses across a `get` that
//! waits 200 ms on an empty queue, and across one that waits 200 ms for a
//! front item still being copied in by the parent. A waiter that polled
//! until its item came would burn most of those 200 ms.

mod common;

use std::time::Duration;

use procq::{Builder, Error, Queue, RawQueue};

const LIMIT: Duration = Duration::from_secs(60);
/// How long the measured gets wait for nothing.
const IDLE: Duration = Duration::from_millis(200);
/// Items of the stream that teaches the child's spin.
const ITEMS: usize = 300;
/// Large enough to be reserved, copied in and published (a loan).
const LARGE: usize = 1 << 20;
/// Most CPU a measured get may use: a tenth of its wait (a poller shows
/// nearly all of it, or whatever share of a core the machine gave it).
const MOST_CPU: Duration = Duration::from_millis(20);

/// CPU time (user + system) this thread has used.
fn thread_cpu() -> Duration {
    // SAFETY: `rusage` is plain data; all-zero is a valid value.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: fills our own valid `rusage`.
    let r = unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut u) };
    assert_eq!(r, 0, "getrusage: {}", std::io::Error::last_os_error());
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// CPU time this thread used while `f` ran.
fn cpu_of(f: impl FnOnce()) -> Duration {
    let before = thread_cpu();
    f();
    thread_cpu() - before
}

#[test]
fn child_entry() {
    let Some((role, args)) = common::role() else {
        return;
    };
    match role.as_str() {
        // Gets the stream, then reports the CPU of an idle get, waits for
        // the parent to start copying an item in, and reports the CPU of a
        // get that waits for it.
        "waiter" => {
            let q = RawQueue::open(&args[0]).unwrap();
            let report = Queue::<u64>::open(&args[1]).unwrap();
            let told = Queue::<u64>::open(&args[2]).unwrap();
            for _ in 0..ITEMS {
                q.get_timeout(LIMIT).unwrap();
            }
            let idle = cpu_of(|| assert!(matches!(q.get_timeout(IDLE), Err(Error::Empty))));
            report.put(&(idle.as_nanos() as u64)).unwrap();
            told.get_timeout(LIMIT).unwrap();
            let reserved = cpu_of(|| assert!(matches!(q.get_timeout(IDLE), Err(Error::Empty))));
            report.put(&(reserved.as_nanos() as u64)).unwrap();
        }
        other => panic!("unknown role {other}"),
    }
}

#[test]
fn a_get_that_waits_long_sleeps_after_a_stream_of_quick_items() {
    let _dog = common::watchdog("waiting", LIMIT);
    let tag = format!("procq-test-waiting-{}", std::process::id());
    let q = Builder::new().name(&tag).build_raw().unwrap();
    let report = Builder::new()
        .name(format!("{tag}-report"))
        .build::<u64>()
        .unwrap();
    let told = Builder::new()
        .name(format!("{tag}-told"))
        .build::<u64>()
        .unwrap();
    let mut child = common::Reaped(common::spawn(
        "waiter",
        &[q.name(), report.name(), told.name()],
    ));
    // Each item comes a little after the child begins to wait for it: its
    // spin learns short waits, which make it poll longest.
    let item = vec![7u8; 64];
    for _ in 0..ITEMS {
        std::thread::sleep(Duration::from_micros(30));
        q.put(&item).unwrap();
    }
    let idle = Duration::from_nanos(report.get_timeout(LIMIT).unwrap());
    eprintln!("CPU of a {IDLE:?} get: idle queue {idle:?}");
    assert!(
        idle < MOST_CPU,
        "an idle get of {IDLE:?} used {idle:?} of CPU"
    );
    // A large item whose copy lasts longer than the child's get waits.
    std::thread::scope(|s| {
        s.spawn(|| {
            q.put_with(LARGE, Some(LIMIT), |buf| {
                told.put(&1).unwrap();
                std::thread::sleep(IDLE * 2);
                buf.fill(1);
            })
            .unwrap();
        });
        let reserved = Duration::from_nanos(report.get_timeout(LIMIT).unwrap());
        eprintln!("CPU of a {IDLE:?} get: front item being copied in {reserved:?}");
        assert!(
            reserved < MOST_CPU,
            "a get that waited {IDLE:?} for an item being copied in used {reserved:?} of CPU"
        );
    });
    let status = common::wait(&mut child.0, LIMIT);
    assert!(status.success(), "child: {status}");
}
