//! Liveness across PID namespaces and without `/proc`.
//!
//! Containers share `/dev/shm` across PID namespaces (`docker --ipc=host`,
//! Kubernetes memory volumes): a process in another namespace has a pid that
//! means nothing here, so it must not be taken for dead — its slot, its
//! tasks and the queue itself must survive — while a SIGKILL of either side
//! is still noticed. The same holds for a process that has no `/proc`.
//!
//! These tests need root (`unshare`). Without it they print SKIP; under CI
//! (`CI` set) they fail instead, so that they cannot silently stop running.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use procq::{Builder, Error, JoinableQueue, Queue};

const LIMIT: Duration = Duration::from_secs(60);
const SHORT: Duration = Duration::from_millis(300);

/// (live, dead) processes attached to a queue, as `stats` sees them.
type Seen = (u64, u64);

fn seen(name: &str) -> Seen {
    let st = procq::stats(name).unwrap();
    (st.attached_processes as u64, st.dead_processes as u64)
}

#[test]
fn child_entry() {
    let Some((role, args)) = common::role() else {
        return;
    };
    match role.as_str() {
        // Takes one task, reports what it sees of the queue's users, waits
        // for "go", then marks the task done and leaves.
        "worker" => {
            let q = JoinableQueue::<u64>::open(&args[0]).unwrap();
            let reports = Queue::<Seen>::open(&args[1]).unwrap();
            let ctl = Queue::<u64>::open(&args[2]).unwrap();
            q.get_timeout(LIMIT).unwrap();
            reports.put(&seen(&args[0])).unwrap();
            ctl.get_timeout(LIMIT).unwrap();
            reports.put(&seen(&args[0])).unwrap();
            q.task_done().unwrap();
        }
        // Takes one task, says so, and waits to be killed.
        "take-and-wait" => {
            let q = JoinableQueue::<u64>::open(&args[0]).unwrap();
            let reports = Queue::<Seen>::open(&args[1]).unwrap();
            q.get_timeout(LIMIT).unwrap();
            reports.put(&(0, 0)).unwrap();
            std::thread::sleep(LIMIT);
        }
        // Waits until every task is done (tasks of dead processes included).
        "join" => {
            let q = JoinableQueue::<u64>::open(&args[0]).unwrap();
            q.join_timeout(LIMIT).unwrap();
        }
        other => panic!("unknown role {other}"),
    }
}

/// How to start a child elsewhere.
#[derive(Clone, Copy)]
enum Place {
    /// A new PID namespace with its own `/proc` (`unshare -p -f --mount-proc`).
    OtherPidNamespace,
    /// A new mount namespace with an empty tmpfs over `/proc`.
    NoProc,
}

/// Whether children can be started at `place`; prints SKIP if not (and
/// fails under CI, which runs as root and must run these tests).
fn available(place: Place) -> bool {
    let probe = match place {
        Place::OtherPidNamespace => Command::new("unshare")
            .args(["-p", "-f", "--mount-proc", "true"])
            .stderr(Stdio::null())
            .status(),
        Place::NoProc => Command::new("unshare")
            .args(["-m", "sh", "-c", "mount -t tmpfs none /proc && true"])
            .stderr(Stdio::null())
            .status(),
    };
    if probe.is_ok_and(|s| s.success()) {
        return true;
    }
    let msg = "SKIP: `unshare` is missing or not permitted (needs root); \
               PID-namespace and no-/proc liveness tests did not run";
    assert!(
        std::env::var_os("CI").is_none(),
        "{msg} (under CI they must)"
    );
    eprintln!("\n*** {msg} ***\n");
    false
}

/// Starts this test binary at `place` (`unshare` puts it there) as `role`
/// with `args`.
fn spawn_at(place: Place, role: &str, args: &[&str]) -> Child {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = Command::new("unshare");
    match place {
        // --kill-child: killing `unshare` kills the namespace's processes.
        Place::OtherPidNamespace => {
            cmd.args(["-p", "-f", "--mount-proc", "--kill-child=SIGKILL"])
                .arg(exe);
        }
        Place::NoProc => {
            cmd.args(["-m", "--kill-child=SIGKILL", "sh", "-c"])
                .arg(r#"mount -t tmpfs none /proc && exec "$0" "$@""#)
                .arg(exe);
        }
    }
    common::as_role(&mut cmd, role, args)
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn unshare")
}

/// A process at `place` and this one share a joinable queue: each sees the
/// other alive, the other's task is not written off, and the queue outlives
/// this process's departure.
fn both_sides_see_each_other_alive(place: Place) {
    if !available(place) {
        return;
    }
    let name = common::unique(match place {
        Place::OtherPidNamespace => "pidns",
        Place::NoProc => "noproc",
    });
    let q = Builder::new().name(&name).build_joinable::<u64>().unwrap();
    let reports = Queue::<Seen>::new(0).unwrap();
    let ctl = Queue::<u64>::new(0).unwrap();
    q.put(&1).unwrap();
    q.put(&2).unwrap();
    let mut child = spawn_at(place, "worker", &[&name, reports.name(), ctl.name()]);
    assert_eq!(
        reports.get_timeout(LIMIT).unwrap(),
        (2, 0),
        "the child sees this process alive"
    );
    assert_eq!(seen(&name), (2, 0), "this process sees the child alive");
    // This process takes and finishes the other task: only the child's is
    // left, and a join (which sweeps dead processes) must keep waiting.
    assert_eq!(q.get_timeout(LIMIT).unwrap(), 2);
    q.task_done().unwrap();
    assert!(
        matches!(q.join_timeout(SHORT), Err(Error::Timeout)),
        "the child's task was written off"
    );
    assert_eq!(q.unfinished_tasks().unwrap(), 1);
    // Leaving must not take the queue away from the child.
    drop(q);
    assert!(
        common::segment_exists(&name),
        "queue removed under the child"
    );
    ctl.put(&0).unwrap();
    assert_eq!(reports.get_timeout(LIMIT).unwrap(), (1, 0));
    common::wait_ok(&mut child, LIMIT);
    assert!(!common::segment_exists(&name), "the last user removes it");
}

#[test]
fn a_process_in_another_pid_namespace_is_alive() {
    both_sides_see_each_other_alive(Place::OtherPidNamespace);
}

#[test]
fn a_process_without_proc_is_alive_and_sees_others_alive() {
    both_sides_see_each_other_alive(Place::NoProc);
}

/// SIGKILL on either side of a namespace boundary is still noticed: the
/// dead process's task is written off.
fn kills_are_noticed(place: Place) {
    if !available(place) {
        return;
    }
    let q = Builder::new().build_joinable::<u64>().unwrap();
    let reports = Queue::<Seen>::new(0).unwrap();
    q.put(&1).unwrap();
    q.put(&2).unwrap();
    let mut inside = spawn_at(place, "take-and-wait", &[q.name(), reports.name()]);
    let mut outside = common::spawn("take-and-wait", &[q.name(), reports.name()]);
    reports.get_timeout(LIMIT).unwrap();
    reports.get_timeout(LIMIT).unwrap();
    assert_eq!(q.unfinished_tasks().unwrap(), 2);
    // Kill the one inside: seen from here.
    inside.kill().unwrap();
    inside.wait().unwrap();
    let _ = q.join_timeout(SHORT);
    assert_eq!(
        q.unfinished_tasks().unwrap(),
        1,
        "inside's task written off"
    );
    // Kill the one outside: seen from inside.
    outside.kill().unwrap();
    outside.wait().unwrap();
    let mut joiner = spawn_at(place, "join", &[q.name()]);
    common::wait_ok(&mut joiner, LIMIT);
    assert_eq!(q.unfinished_tasks().unwrap(), 0);
}

#[test]
fn kills_across_pid_namespaces_are_noticed() {
    kills_are_noticed(Place::OtherPidNamespace);
}

#[test]
fn kills_are_noticed_without_proc() {
    kills_are_noticed(Place::NoProc);
}
