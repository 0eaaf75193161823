//! `JoinableQueue` task counts across processes when `task_done()` comes from
//! another process than the one that called `get()` (allowed by Python's
//! `multiprocessing`): the getter hands its item to a finisher, which marks
//! it done. `join()` must neither return early (a task counted done twice:
//! once by the finisher, once again when the getter leaves) nor hang.

mod common;

use std::process::Child;
use std::time::Duration;

use procq::{Builder, Error, JoinableQueue, Queue};

const LIMIT: Duration = Duration::from_secs(60);
/// Long enough for a `join` that should block to show that it does.
const SHORT: Duration = Duration::from_millis(300);

#[test]
fn child_entry() {
    let Some((role, args)) = common::role() else {
        return;
    };
    match role.as_str() {
        // Gets one task, hands it to the finisher through `relay`, says so on
        // `reports`, then exits when told to on `ctl`.
        "getter" => {
            let q = JoinableQueue::<u64>::open(&args[0]).unwrap();
            let relay = Queue::<u64>::open(&args[1]).unwrap();
            let reports = Queue::<String>::open(&args[2]).unwrap();
            let ctl = Queue::<u64>::open(&args[3]).unwrap();
            let task = q.get_timeout(LIMIT).unwrap();
            relay.put(&task).unwrap();
            reports.put(&"got".to_owned()).unwrap();
            ctl.get_timeout(LIMIT).unwrap();
        }
        // Marks done each task it receives through `relay`, reporting the
        // outcome of each `task_done`.
        "finisher" => {
            let q = JoinableQueue::<u64>::open(&args[0]).unwrap();
            let relay = Queue::<u64>::open(&args[1]).unwrap();
            let reports = Queue::<String>::open(&args[2]).unwrap();
            loop {
                let task = relay.get_timeout(LIMIT).unwrap();
                if task == u64::MAX {
                    break;
                }
                let outcome = match q.task_done() {
                    Ok(()) => "done".to_owned(),
                    Err(Error::TaskDoneTooOften) => "too-often".to_owned(),
                    Err(e) => format!("error: {e}"),
                };
                reports.put(&outcome).unwrap();
            }
        }
        other => panic!("unknown role {other}"),
    }
}

struct Setup {
    q: JoinableQueue<u64>,
    relay: Queue<u64>,
    reports: Queue<String>,
    /// Where getters say they got their task.
    got: Queue<String>,
    ctl: Queue<u64>,
    finisher: Child,
}

impl Setup {
    fn new() -> Setup {
        let q = Builder::new().build_joinable::<u64>().unwrap();
        let relay = Queue::<u64>::new(0).unwrap();
        let reports = Queue::<String>::new(0).unwrap();
        let got = Queue::<String>::new(0).unwrap();
        let ctl = Queue::<u64>::new(0).unwrap();
        let finisher = common::spawn("finisher", &[q.name(), relay.name(), reports.name()]);
        Setup {
            q,
            relay,
            reports,
            got,
            ctl,
            finisher,
        }
    }

    fn getter(&self) -> Child {
        self.getter_via(&self.relay)
    }

    /// A getter that hands its task over through `relay`.
    fn getter_via(&self, relay: &Queue<u64>) -> Child {
        let g = common::spawn(
            "getter",
            &[
                self.q.name(),
                relay.name(),
                self.got.name(),
                self.ctl.name(),
            ],
        );
        assert_eq!(self.got.get_timeout(LIMIT).unwrap(), "got");
        g
    }

    fn report(&self) -> String {
        self.reports.get_timeout(LIMIT).unwrap()
    }

    fn finish(mut self) {
        self.relay.put(&u64::MAX).unwrap();
        common::wait_ok(&mut self.finisher, LIMIT);
    }
}

/// The getter leaves (exits, or is killed) after the finisher's `task_done`;
/// meanwhile the parent holds another task it has not finished. Counting the
/// handed-over task done a second time when the getter leaves would make
/// `join` return while the parent's task is still open.
fn getter_leaves_after_task_done(kill: bool) {
    let s = Setup::new();
    s.q.put(&1).unwrap();
    let mut getter = s.getter();
    assert_eq!(s.report(), "done", "the finisher's task_done is accepted");
    assert_eq!(s.q.unfinished_tasks().unwrap(), 0);
    s.q.join_timeout(LIMIT).unwrap();

    // A second task, taken and not finished by this process.
    s.q.put(&2).unwrap();
    assert_eq!(s.q.get_timeout(LIMIT).unwrap(), 2);
    if kill {
        getter.kill().unwrap();
        getter.wait().unwrap();
    } else {
        s.ctl.put(&0).unwrap();
        common::wait_ok(&mut getter, LIMIT);
    }
    // join() sweeps dead processes before it waits: the getter is gone now.
    assert!(
        matches!(s.q.join_timeout(SHORT), Err(Error::Timeout)),
        "join returned while this process still holds a task"
    );
    assert_eq!(s.q.unfinished_tasks().unwrap(), 1);
    s.q.task_done().unwrap();
    s.q.join_timeout(LIMIT).unwrap();
    s.finish();
}

#[test]
fn getter_exits_after_another_process_finished_its_task() {
    getter_leaves_after_task_done(false);
}

#[test]
fn getter_killed_after_another_process_finished_its_task() {
    getter_leaves_after_task_done(true);
}

/// The getter dies before the finisher's `task_done`: its task is written
/// off when it dies (join does not hang), and the finisher's late
/// `task_done` finds nothing left to finish.
#[test]
fn getter_killed_before_the_finisher_marks_its_task_done() {
    let s = Setup::new();
    // The getter hands its task to this process, which passes it on to the
    // finisher only once the getter is dead.
    let held = Queue::<u64>::new(0).unwrap();
    s.q.put(&1).unwrap();
    let mut getter = s.getter_via(&held);
    let task = held.get_timeout(LIMIT).unwrap();
    getter.kill().unwrap();
    getter.wait().unwrap();
    s.q.join_timeout(LIMIT)
        .expect("the dead getter's task is written off");
    assert_eq!(s.q.unfinished_tasks().unwrap(), 0);
    s.relay.put(&task).unwrap();
    assert_eq!(s.report(), "too-often");
    assert_eq!(s.q.unfinished_tasks().unwrap(), 0);
    s.finish();
}

/// Many tasks, several getters and finishers, every getter leaving at a
/// different moment: the count stays exact throughout.
#[test]
fn mixed_getters_and_finishers_keep_the_count_exact() {
    let s = Setup::new();
    for i in 0..6 {
        s.q.put(&i).unwrap();
    }
    let mut getters: Vec<Child> = (0..3).map(|_| s.getter()).collect();
    // Three tasks handed to the finisher, three still in the queue.
    for _ in 0..3 {
        assert_eq!(s.report(), "done");
    }
    assert_eq!(s.q.unfinished_tasks().unwrap(), 3);
    // This process takes the other three and keeps them open.
    for _ in 0..3 {
        s.q.get_timeout(LIMIT).unwrap();
    }
    // Getters leave in different ways.
    getters[0].kill().unwrap();
    getters[0].wait().unwrap();
    for _ in 1..3 {
        s.ctl.put(&0).unwrap();
    }
    for g in &mut getters[1..] {
        common::wait_ok(g, LIMIT);
    }
    assert!(matches!(s.q.join_timeout(SHORT), Err(Error::Timeout)));
    assert_eq!(s.q.unfinished_tasks().unwrap(), 3);
    for _ in 0..3 {
        s.q.task_done().unwrap();
    }
    s.q.join_timeout(LIMIT).unwrap();
    s.finish();
}
