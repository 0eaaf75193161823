//! `procq::Process` with queues: queues and joinable queues as arguments,
//! many children sharing queues, nested spawning, signals and join
//! timeouts (with a queue to know the child runs), daemon children, and a
//! dropped `Process`. (What needs no queue is tested in the
//! `procq-process` crate.)
//!
//! The test binary itself is re-executed for every child: `test_support!`
//! makes libtest run only its dispatching test there.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use procq::{JoinableQueue, Process, ProcessError, Queue};

procq::test_support!();

/// Upper bound for every wait: generous, only reached when something hangs.
const LIMIT: Duration = Duration::from_secs(20);

/// Says it is running, then idles (bounded, so a leaked child goes away).
fn idle(ready: Queue<u32>) {
    ready.put(&std::process::id()).unwrap();
    std::thread::sleep(Duration::from_secs(30));
}

/// Starts `idle` and waits until it runs. The queue is returned so that the
/// caller keeps it until the child is gone: a named segment whose last
/// holder is SIGKILLed is not removed (see the crate's "Limits").
fn spawn_idle() -> (Process, Queue<u32>) {
    let ready = Queue::new(0).unwrap();
    let p = Process::spawn(idle, (ready.clone(),)).unwrap();
    assert_eq!(ready.get_timeout(LIMIT).unwrap(), p.pid().unwrap());
    (p, ready)
}

#[test]
fn terminate_is_reported_as_sigterm() {
    let (mut p, _ready) = spawn_idle();
    assert!(p.is_alive());
    p.terminate().unwrap();
    match p.join_timeout(LIMIT) {
        Err(ProcessError::Signaled { signal: 15, .. }) => {}
        other => panic!("expected SIGTERM, got {other:?}"),
    }
    assert_eq!(p.exit_code(), Some(-15));
    // Signalling an exited, reaped child is a no-op, not a stray kill.
    p.kill().unwrap();
}

#[test]
fn kill_is_reported_as_sigkill() {
    let (mut p, _ready) = spawn_idle();
    p.kill().unwrap();
    match p.join_timeout(LIMIT) {
        Err(ProcessError::Signaled { signal: 9, .. }) => {}
        other => panic!("expected SIGKILL, got {other:?}"),
    }
    assert_eq!(p.exit_code(), Some(-9));
}

#[test]
fn join_timeout_expires_then_kill_works() {
    let (mut p, _ready) = spawn_idle();
    let start = Instant::now();
    match p.join_timeout(Duration::from_millis(200)) {
        Err(ProcessError::Timeout { .. }) => {}
        other => panic!("expected a timeout, got {other:?}"),
    }
    let waited = start.elapsed();
    assert!(waited >= Duration::from_millis(200), "{waited:?}");
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    assert!(p.is_alive());
    assert_eq!(p.exit_code(), None);
    p.kill().unwrap();
    assert!(matches!(
        p.join_timeout(LIMIT),
        Err(ProcessError::Signaled { signal: 9, .. })
    ));
    assert!(!p.is_alive());
}

#[test]
fn join_wakes_promptly_when_the_child_exits() {
    fn nap() {
        std::thread::sleep(Duration::from_millis(300));
    }
    let start = Instant::now();
    let mut p = Process::spawn(nap, ()).unwrap();
    p.join_timeout(LIMIT).unwrap();
    // Not a full LIMIT: join returns when the child exits.
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
}

const PRODUCERS: u64 = 16;
const CONSUMERS: usize = 16;
const PER_PRODUCER: u64 = 500;

fn produce(jobs: Queue<Option<u64>>, id: u64) {
    for seq in 0..PER_PRODUCER {
        jobs.put(&Some(id << 32 | seq)).unwrap();
    }
}

fn consume(jobs: Queue<Option<u64>>) -> Vec<u64> {
    let mut got = Vec::new();
    while let Some(item) = jobs.get_timeout(LIMIT).unwrap() {
        got.push(item);
    }
    got
}

#[test]
fn thirty_two_children_receive_every_item_exactly_once() {
    let jobs = Queue::<Option<u64>>::new(64).unwrap();
    let name = jobs.name().to_owned();
    let consumers: Vec<Process<Vec<u64>>> = (0..CONSUMERS)
        .map(|_| Process::spawn(consume, (jobs.clone(),)).unwrap())
        .collect();
    let producers: Vec<Process> = (0..PRODUCERS)
        .map(|id| Process::spawn(produce, (jobs.clone(), id)).unwrap())
        .collect();
    for mut p in producers {
        p.join_timeout(LIMIT).unwrap();
    }
    for _ in 0..CONSUMERS {
        jobs.put_timeout(&None, LIMIT).unwrap();
    }
    let mut seen = HashSet::new();
    for mut c in consumers {
        for item in c.join_timeout(LIMIT).unwrap() {
            assert!(seen.insert(item), "item {item:#x} received twice");
        }
    }
    let expected: HashSet<u64> = (0..PRODUCERS)
        .flat_map(|id| (0..PER_PRODUCER).map(move |seq| id << 32 | seq))
        .collect();
    assert_eq!(seen, expected);
    assert_eq!(jobs.qsize(), 0);
    drop(jobs);
    assert!(
        !std::path::Path::new(&format!("/dev/shm/procq-{name}")).exists(),
        "segment left behind"
    );
}

fn grandchild(x: u64) -> (u32, u32, u64) {
    (
        std::process::id(),
        std::os::unix::process::parent_id(),
        x * 2,
    )
}

fn middle(x: u64, log: Queue<String>) -> (u32, u32, u32, u64) {
    log.put(&"middle started".to_owned()).unwrap();
    let mut p = Process::spawn(grandchild, (x + 1,)).unwrap();
    let (gc_pid, gc_parent, value) = p.join_timeout(LIMIT).unwrap();
    log.put(&"grandchild joined".to_owned()).unwrap();
    (std::process::id(), gc_pid, gc_parent, value)
}

#[test]
fn children_can_start_children() {
    let log = Queue::new(0).unwrap();
    let mut p = Process::spawn(middle, (20, log.clone())).unwrap();
    let (middle_pid, gc_pid, gc_parent, value) = p.join_timeout(LIMIT).unwrap();
    assert_eq!(value, 42);
    assert_eq!(Some(middle_pid), p.pid());
    assert_eq!(gc_parent, middle_pid);
    let me = std::process::id();
    assert!(gc_pid != me && gc_pid != middle_pid);
    assert_eq!(log.get_nowait().unwrap(), "middle started");
    assert_eq!(log.get_nowait().unwrap(), "grandchild joined");
}

fn worker(jobs: JoinableQueue<Option<u32>>, done: Queue<u32>) {
    while let Some(job) = jobs.get_timeout(LIMIT).unwrap() {
        done.put(&(job * 10)).unwrap();
        jobs.task_done().unwrap();
    }
    jobs.task_done().unwrap();
}

#[test]
fn queue_and_joinable_queue_as_arguments() {
    let jobs = JoinableQueue::new(0).unwrap();
    let done = Queue::new(0).unwrap();
    let mut workers: Vec<Process> = (0..3)
        .map(|_| Process::spawn(worker, (jobs.clone(), done.clone())).unwrap())
        .collect();
    for job in 1..=20 {
        jobs.put(&Some(job)).unwrap();
    }
    jobs.join_timeout(LIMIT).unwrap();
    // join() returned: every job was processed and reported.
    assert_eq!(done.qsize(), 20);
    let mut results: Vec<u32> = (0..20).map(|_| done.get_nowait().unwrap()).collect();
    results.sort_unstable();
    assert_eq!(results, (1..=20).map(|j| j * 10).collect::<Vec<_>>());
    for _ in &workers {
        jobs.put(&None).unwrap();
    }
    for w in &mut workers {
        w.join_timeout(LIMIT).unwrap();
    }
    assert_eq!(jobs.unfinished_tasks().unwrap(), 0);
}

fn echo_through(q: Queue<u32>) -> u32 {
    q.put(&5).unwrap();
    q.get_timeout(LIMIT).unwrap()
}

#[test]
fn a_queue_the_parent_dropped_still_reaches_the_child() {
    // The parent's only handle is inside the arguments; Process keeps it
    // alive until the child has opened the queue.
    let mut p = Process::spawn(echo_through, (Queue::new(0).unwrap(),)).unwrap();
    assert_eq!(p.join_timeout(LIMIT).unwrap(), 5);
}

fn sleep_long() {
    std::thread::sleep(Duration::from_secs(30));
}

/// Starts `sleep_long` (a daemon or not), reports its pid, then idles until
/// killed.
fn start_grandchild_and_idle(daemon: bool, report: Queue<u32>) {
    let mut p = Process::new(sleep_long, ()).daemon(daemon);
    p.start().unwrap();
    report.put(&p.pid().unwrap()).unwrap();
    std::thread::sleep(Duration::from_secs(30));
}

/// Whether `pid` runs (a zombie counts as dead).
fn running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat.rsplit(')').next().unwrap().trim_start();
            !state.starts_with('Z') && !state.starts_with('X')
        }
        Err(_) => false,
    }
}

fn grandchild_after_parent_dies(daemon: bool) -> u32 {
    let report = Queue::new(0).unwrap();
    let mut parent = Process::spawn(start_grandchild_and_idle, (daemon, report.clone())).unwrap();
    let grandchild = report.get_timeout(LIMIT).unwrap();
    assert!(running(grandchild));
    parent.kill().unwrap();
    assert!(parent.join_timeout(LIMIT).is_err());
    grandchild
}

#[test]
fn daemon_child_dies_with_its_parent() {
    let grandchild = grandchild_after_parent_dies(true);
    let deadline = Instant::now() + LIMIT;
    while running(grandchild) {
        assert!(
            Instant::now() < deadline,
            "daemon {grandchild} outlived its parent"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn non_daemon_child_outlives_its_parent() {
    let grandchild = grandchild_after_parent_dies(false);
    std::thread::sleep(Duration::from_millis(300));
    let alive = running(grandchild);
    // Clean up the orphan (pid reuse within this window is not a concern).
    let _ = std::process::Command::new("kill")
        .args(["-9", &grandchild.to_string()])
        .status();
    assert!(alive, "non-daemon child died with its parent");
}

#[test]
fn dropping_a_process_leaves_the_child_running() {
    fn put_later(q: Queue<u32>) {
        std::thread::sleep(Duration::from_millis(100));
        q.put(&9).unwrap();
    }
    let q = Queue::new(0).unwrap();
    drop(Process::spawn(put_later, (q.clone(),)).unwrap());
    assert_eq!(q.get_timeout(LIMIT).unwrap(), 9);
}
