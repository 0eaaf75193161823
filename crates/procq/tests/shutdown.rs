//! `shutdown()` across real processes (issue #16): puts fail in every
//! process, gets drain and then fail, every blocked getter and putter of
//! every process wakes, `immediate` drops the rest and counts it done for
//! `join`, a queue stays shut down, and iteration ends at shutdown + drain.

mod common;

use std::collections::HashSet;
use std::process::Child;
use std::time::{Duration, Instant};

use procq::{Error, JoinableQueue, Queue};

const LIMIT: Duration = Duration::from_secs(60);

/// Dispatches child roles (does nothing in a normal test run).
#[test]
fn child_entry() {
    let Some((role, args)) = common::role() else {
        return;
    };
    let arg = |i: usize| args[i].as_str();
    let num = |i: usize| args[i].parse::<u64>().unwrap();
    match role.as_str() {
        // Iterates until shutdown + drain; reports what it got.
        "drain" => {
            let q = Queue::<u64>::open(arg(0)).unwrap();
            let results = Queue::<Vec<u64>>::open(arg(1)).unwrap();
            let got: Vec<u64> = q.iter().map(Result::unwrap).collect();
            assert!(q.is_shutdown(), "the iteration ended without a shutdown");
            results.put(&got).unwrap();
        }
        // Blocks in get() on an empty queue: must end with ShutDown.
        // Reports when it woke (if given a queue for that).
        "get-blocked" => {
            let q = Queue::<u64>::open(arg(0)).unwrap();
            match q.get() {
                Err(Error::ShutDown) => {}
                other => panic!("expected ShutDown, got {other:?}"),
            }
            if let Some(woke) = args.get(1) {
                Queue::<u64>::open(woke).unwrap().put(&now_ns()).unwrap();
            }
        }
        // Blocks in put() on a full queue: must end with ShutDown.
        "put-blocked" => {
            let q = Queue::<u64>::open(arg(0)).unwrap();
            match q.put(&99) {
                Err(Error::ShutDown) => {}
                other => panic!("expected ShutDown, got {other:?}"),
            }
            Queue::<u64>::open(arg(1)).unwrap().put(&now_ns()).unwrap();
        }
        // Puts its own numbered items until the queue is shut down;
        // reports how many were accepted.
        "produce" => {
            let q = Queue::<u64>::open(arg(0)).unwrap();
            let accepted = Queue::<(u64, u64)>::open(arg(1)).unwrap();
            let id = num(2);
            let mut n = 0u64;
            loop {
                match q.put(&(id << 32 | n)) {
                    Ok(()) => n += 1,
                    Err(Error::ShutDown) => break,
                    Err(e) => panic!("put: {e}"),
                }
            }
            accepted.put(&(id, n)).unwrap();
        }
        // Shuts the queue down (immediately if arg 1 is 1), reporting when
        // it started to (if given a queue for that).
        "shutdown" => {
            let q = Queue::<u64>::open(arg(0)).unwrap();
            if let Some(at) = args.get(2) {
                Queue::<u64>::open(at).unwrap().put(&now_ns()).unwrap();
            }
            q.shutdown(num(1) == 1).unwrap();
        }
        // Opens a queue shut down before: sees it, cannot put, drains
        // what is left, then gets ShutDown.
        "late-opener" => {
            let q = Queue::<u64>::open(arg(0)).unwrap();
            assert!(q.is_shutdown());
            assert!(matches!(q.put(&1), Err(Error::ShutDown)));
            assert!(matches!(q.put_nowait(&1), Err(Error::ShutDown)));
            assert!(matches!(q.put_many(&[1, 2]), Err(Error::ShutDown)));
            let left: Vec<u64> = q.try_iter().map(Result::unwrap).collect();
            assert_eq!(left.len() as u64, num(1));
            assert!(matches!(q.get(), Err(Error::ShutDown)));
            assert!(matches!(q.get_nowait(), Err(Error::ShutDown)));
            assert!(matches!(
                q.get_timeout(Duration::from_secs(5)),
                Err(Error::ShutDown)
            ));
        }
        // Takes one task, says so, and finishes it when told.
        "take-one" => {
            let q = JoinableQueue::<u64>::open(arg(0)).unwrap();
            let up = Queue::<u8>::open(arg(1)).unwrap();
            let down = Queue::<u8>::open(arg(2)).unwrap();
            q.get_timeout(LIMIT).unwrap();
            up.put(&1).unwrap();
            down.get_timeout(LIMIT).unwrap();
            q.task_done().unwrap();
        }
        "join" => {
            let q = JoinableQueue::<u64>::open(arg(0)).unwrap();
            q.join().unwrap();
        }
        other => panic!("unknown role {other}"),
    }
}

/// Waits until the queue's statistics say `n` calls have blocked.
fn wait_blocked(name: &str, gets: u64, puts: u64) {
    let start = Instant::now();
    loop {
        let s = procq::stats(name).unwrap();
        if s.blocked_gets >= gets && s.blocked_puts >= puts {
            return;
        }
        assert!(start.elapsed() < LIMIT, "the children never blocked: {s:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Whether `child` is still running after `d`.
fn still_running(child: &mut Child, d: Duration) -> bool {
    std::thread::sleep(d);
    child.try_wait().unwrap().is_none()
}

/// `CLOCK_MONOTONIC` in nanoseconds: one clock for every process.
fn now_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// Blocked callers wake at least once a second anyway (to notice a
/// truncated segment), so "woken by the shutdown" must mean well within
/// that: this bound is far above scheduling noise on a loaded machine and
/// far below the tick. Several waiters, each of which would wake at a
/// random moment of its tick if the shutdown did not wake it, make a pass
/// by luck vanishingly unlikely.
const AT_ONCE: Duration = Duration::from_millis(500);

/// Asserts that each of `n` reported wake-up times is within [`AT_ONCE`]
/// of `since`.
fn assert_woke_at_once(woke: &Queue<u64>, n: usize, since: u64) {
    for _ in 0..n {
        let t = woke.get_timeout(LIMIT).unwrap();
        let late = Duration::from_nanos(t.saturating_sub(since));
        assert!(late < AT_ONCE, "a waiter woke {late:?} after the shutdown");
    }
}

#[test]
fn shutdown_wakes_blocked_getters_in_every_process_at_once() {
    for _round in 0..2 {
        let q = Queue::<u64>::new(0).unwrap();
        let woke = Queue::<u64>::new(0).unwrap();
        let mut getters: Vec<_> = (0..4)
            .map(|_| common::spawn("get-blocked", &[q.name(), woke.name()]))
            .collect();
        wait_blocked(q.name(), 4, 0);
        // Let them fall asleep (past the spin).
        std::thread::sleep(Duration::from_millis(50));
        // From yet another process: nobody here shares memory with anybody.
        let at = Queue::<u64>::new(0).unwrap();
        let mut closer = common::spawn("shutdown", &[q.name(), "0", at.name()]);
        common::wait_ok(&mut closer, LIMIT);
        for g in &mut getters {
            common::wait_ok(g, LIMIT);
        }
        assert_woke_at_once(&woke, 4, at.get_nowait().unwrap());
    }
}

#[test]
fn shutdown_wakes_blocked_putters_in_every_process_at_once_and_keeps_the_items() {
    let q = Queue::<u64>::new(2).unwrap();
    let woke = Queue::<u64>::new(0).unwrap();
    q.put_many(&[1, 2]).unwrap();
    let mut putters: Vec<_> = (0..4)
        .map(|_| common::spawn("put-blocked", &[q.name(), woke.name()]))
        .collect();
    wait_blocked(q.name(), 0, 4);
    std::thread::sleep(Duration::from_millis(50));
    let since = now_ns();
    q.shutdown(false).unwrap();
    for p in &mut putters {
        common::wait_ok(p, LIMIT);
    }
    assert_woke_at_once(&woke, 4, since);
    // No blocked put slipped in; what was put before is still there.
    assert_eq!(q.try_iter().map(Result::unwrap).collect::<Vec<_>>(), [1, 2]);
    assert!(matches!(q.get_nowait(), Err(Error::ShutDown)));
}

#[test]
fn shutdown_racing_producers_and_blocked_consumers_loses_nothing() {
    const PRODUCERS: u64 = 3;
    const CONSUMERS: usize = 4;
    // A small bound: producers block for room and consumers for items,
    // constantly, while the shutdown lands.
    let q = Queue::<u64>::new(16).unwrap();
    let accepted = Queue::<(u64, u64)>::new(0).unwrap();
    let results = Queue::<Vec<u64>>::new(0).unwrap();
    let mut consumers: Vec<_> = (0..CONSUMERS)
        .map(|_| common::spawn("drain", &[q.name(), results.name()]))
        .collect();
    wait_blocked(q.name(), CONSUMERS as u64, 0);
    let mut producers: Vec<_> = (0..PRODUCERS)
        .map(|id| common::spawn("produce", &[q.name(), accepted.name(), &id.to_string()]))
        .collect();
    // Let items flow a while, then shut down in the middle of it.
    let start = Instant::now();
    while q.stats().unwrap().items_got < 2_000 {
        assert!(start.elapsed() < LIMIT, "no traffic");
        std::thread::sleep(Duration::from_millis(5));
    }
    q.shutdown(false).unwrap();
    for p in &mut producers {
        common::wait_ok(p, LIMIT);
    }
    for c in &mut consumers {
        common::wait_ok(c, LIMIT);
    }
    let mut seen = HashSet::new();
    for _ in 0..CONSUMERS {
        for v in results.get_nowait().unwrap() {
            assert!(seen.insert(v), "{v:#x} delivered twice");
        }
    }
    // Exactly the accepted puts were delivered: producer `id`'s items
    // 0..n, where n is how many of its puts returned Ok.
    let mut total = 0;
    for _ in 0..PRODUCERS {
        let (id, n) = accepted.get_nowait().unwrap();
        for seq in 0..n {
            assert!(
                seen.contains(&(id << 32 | seq)),
                "producer {id}: item {seq} lost"
            );
        }
        total += n;
    }
    assert_eq!(seen.len() as u64, total, "only accepted puts delivered");
    assert!(total >= 2_000);
    assert_eq!(q.qsize(), 0);
}

#[test]
fn every_accepted_put_is_delivered_when_shutdown_races_producers() {
    // The same race with the consumer here, iterating to the end.
    const PRODUCERS: u64 = 3;
    let q = Queue::<u64>::new(8).unwrap();
    let accepted = Queue::<(u64, u64)>::new(0).unwrap();
    let mut producers: Vec<_> = (0..PRODUCERS)
        .map(|id| common::spawn("produce", &[q.name(), accepted.name(), &id.to_string()]))
        .collect();
    let mut got = 0u64;
    for item in &q {
        item.unwrap();
        got += 1;
        if got == 3_000 {
            q.shutdown(false).unwrap();
        }
    }
    for p in &mut producers {
        common::wait_ok(p, LIMIT);
    }
    let total: u64 = (0..PRODUCERS)
        .map(|_| accepted.get_nowait().unwrap().1)
        .sum();
    assert_eq!(got, total, "every accepted put delivered, nothing else");
}

#[test]
fn a_shut_down_queue_stays_shut_down_for_processes_that_open_it_later() {
    let q = Queue::<u64>::new(0).unwrap();
    q.put_many(&[1, 2, 3]).unwrap();
    q.shutdown(false).unwrap();
    q.shutdown(false).unwrap(); // again: harmless
    assert!(q.stats().unwrap().shutdown);
    let mut late = common::spawn("late-opener", &[q.name(), "3"]);
    common::wait_ok(&mut late, LIMIT);
    assert!(q.is_shutdown());
    assert!(matches!(q.put(&4), Err(Error::ShutDown)));
}

#[test]
fn immediate_shutdown_drops_items_counts_them_done_and_wakes_joiners() {
    let q = JoinableQueue::<u64>::new(0).unwrap();
    let up = Queue::<u8>::new(0).unwrap();
    let down = Queue::<u8>::new(0).unwrap();
    q.put_many(&[1, 2, 3, 4, 5]).unwrap();
    let mut worker = common::spawn("take-one", &[q.name(), up.name(), down.name()]);
    up.get_timeout(LIMIT).unwrap();
    let mut joiner = common::spawn("join", &[q.name()]);
    q.shutdown(true).unwrap();
    // The four items left are gone and done; the one taken is not done.
    assert_eq!(q.qsize(), 0);
    assert_eq!(q.unfinished_tasks().unwrap(), 1);
    assert!(matches!(q.get_nowait(), Err(Error::ShutDown)));
    assert!(matches!(
        q.join_timeout(Duration::from_millis(100)),
        Err(Error::Timeout)
    ));
    assert!(
        still_running(&mut joiner, Duration::from_millis(200)),
        "join returned early"
    );
    // The worker finishes its task: every joiner, here and there, returns.
    down.put(&1).unwrap();
    common::wait_ok(&mut worker, LIMIT);
    common::wait_ok(&mut joiner, LIMIT);
    q.join().unwrap();
}

#[test]
fn immediate_shutdown_wakes_blocked_getters_and_joiners_with_nothing_taken() {
    let q = JoinableQueue::<u64>::new(0).unwrap();
    let mut getter = common::spawn("get-blocked", &[q.name()]);
    wait_blocked(q.name(), 1, 0);
    let mut joiners: Vec<_> = (0..2).map(|_| common::spawn("join", &[q.name()])).collect();
    let mut closer = common::spawn("shutdown", &[q.name(), "1"]);
    common::wait_ok(&mut closer, LIMIT);
    common::wait_ok(&mut getter, LIMIT);
    for j in &mut joiners {
        common::wait_ok(j, LIMIT);
    }
}

#[test]
fn iteration_ends_at_shutdown_and_drain_and_try_iter_when_empty() {
    let q = Queue::<u64>::new(0).unwrap();
    q.put_many(&[1, 2]).unwrap();
    assert_eq!(q.try_iter().map(Result::unwrap).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(q.try_iter().count(), 0, "try_iter ends when empty");
    // iter() waits for items until the shutdown, from another process.
    let results = Queue::<Vec<u64>>::new(0).unwrap();
    let mut consumer = common::spawn("drain", &[q.name(), results.name()]);
    q.put_many(&[3, 4, 5]).unwrap();
    let mut closer = common::spawn("shutdown", &[q.name(), "0"]);
    common::wait_ok(&mut closer, LIMIT);
    common::wait_ok(&mut consumer, LIMIT);
    assert_eq!(results.get_nowait().unwrap(), [3, 4, 5]);
}

#[test]
fn iteration_reports_an_undecodable_item_and_goes_on() {
    let q = Queue::<String>::new(0).unwrap();
    let raw = procq::RawQueue::open(q.name()).unwrap();
    q.put(&"a".to_owned()).unwrap();
    raw.put(&[0xff, 0xff]).unwrap(); // not a String
    q.put(&"b".to_owned()).unwrap();
    q.shutdown(false).unwrap();
    let got: Vec<_> = q.iter().collect();
    assert_eq!(got.len(), 3);
    assert_eq!(got[0].as_ref().unwrap(), "a");
    assert!(matches!(got[1], Err(Error::Codec(_))));
    assert_eq!(got[2].as_ref().unwrap(), "b");
}

#[test]
fn iteration_on_a_closed_handle_yields_closed_once_and_ends() {
    let q = Queue::<u64>::new(0).unwrap();
    q.close();
    let mut it = q.iter();
    assert!(matches!(it.next(), Some(Err(Error::Closed))));
    assert!(it.next().is_none());
    assert!(it.next().is_none());
    assert!(matches!(q.shutdown(false), Err(Error::Closed)));
}
