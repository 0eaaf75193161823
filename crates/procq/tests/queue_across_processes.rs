//! The core queue across real processes: exactly-once delivery with many
//! producers and consumers, blocking and timeouts, growth and shrinking,
//! huge items, JoinableQueue, and the queue's lifetime.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use procq::{Builder, Error, JoinableQueue, Queue};

const LIMIT: Duration = Duration::from_secs(60);
const STOP: u64 = u64::MAX;

/// Dispatches child roles (does nothing in a normal test run).
#[test]
fn child_entry() {
    let Some((role, args)) = common::role() else {
        return;
    };
    let arg = |i: usize| args[i].as_str();
    let num = |i: usize| args[i].parse::<u64>().unwrap();
    match role.as_str() {
        "producer" => {
            let q = Queue::<u64>::open(arg(0)).unwrap();
            let id = num(1);
            for seq in 0..num(2) {
                q.put(&(id << 32 | seq)).unwrap();
            }
        }
        "consumer" => {
            let q = Queue::<u64>::open(arg(0)).unwrap();
            let results = Queue::<Vec<u64>>::open(arg(1)).unwrap();
            let mut got = Vec::new();
            loop {
                let v = q.get_timeout(LIMIT).unwrap();
                if v == STOP {
                    break;
                }
                got.push(v);
            }
            results.put(&got).unwrap();
        }
        "put-blobs" => {
            let q = Queue::<Vec<u8>>::open(arg(0)).unwrap();
            for i in 0..num(1) {
                q.put(&blob(i, num(2) as usize)).unwrap();
            }
        }
        "put-then-exit" => {
            let q = Queue::<u64>::open(arg(0)).unwrap();
            for i in 0..num(1) {
                q.put(&i).unwrap();
            }
            // Return at once: nothing may be left in a buffer.
        }
        // Puts 0, 1, ... each with a long timeout (each blocks: the test
        // keeps the queue full) and reports when each put returned.
        "put-and-report" => {
            let q = Queue::<u64>::open(arg(0)).unwrap();
            let woke = Queue::<u64>::open(arg(1)).unwrap();
            for i in 0..num(2) {
                q.put_timeout(&i, LIMIT).unwrap();
                woke.put(&now_ns()).unwrap();
            }
        }
        "put-after" => {
            let q = Queue::<u64>::open(arg(0)).unwrap();
            std::thread::sleep(Duration::from_millis(num(1)));
            q.put(&7).unwrap();
        }
        "worker" => {
            let q = JoinableQueue::<Option<u32>>::open(arg(0)).unwrap();
            let done = Queue::<u32>::open(arg(1)).unwrap();
            while let Some(job) = q.get_timeout(LIMIT).unwrap() {
                std::thread::sleep(Duration::from_millis(1));
                done.put(&job).unwrap();
                q.task_done().unwrap();
            }
            q.task_done().unwrap();
        }
        "hold" => {
            let _q = Queue::<u64>::open(arg(0)).unwrap();
            let up = Queue::<u64>::open(arg(1)).unwrap();
            let down = Queue::<u64>::open(arg(2)).unwrap();
            up.put(&1).unwrap();
            down.get_timeout(LIMIT).unwrap();
        }
        other => panic!("unknown role {other}"),
    }
}

fn blob(i: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|k| (i as usize).wrapping_mul(31).wrapping_add(k) as u8)
        .collect()
}

#[test]
fn many_producers_many_consumers_each_item_exactly_once() {
    const PRODUCERS: u64 = 4;
    const CONSUMERS: usize = 4;
    const PER: u64 = 5_000;
    // A small bound makes producers block and wake constantly.
    let q = Queue::<u64>::new(64).unwrap();
    let results = Queue::<Vec<u64>>::new(0).unwrap();
    let mut producers: Vec<_> = (0..PRODUCERS)
        .map(|id| common::spawn("producer", &[q.name(), &id.to_string(), &PER.to_string()]))
        .collect();
    let mut consumers: Vec<_> = (0..CONSUMERS)
        .map(|_| common::spawn("consumer", &[q.name(), results.name()]))
        .collect();
    for p in &mut producers {
        common::wait_ok(p, LIMIT);
    }
    for _ in 0..CONSUMERS {
        q.put(&STOP).unwrap();
    }
    let mut seen: HashMap<u64, u32> = HashMap::new();
    for _ in 0..CONSUMERS {
        let got = results.get_timeout(LIMIT).unwrap();
        // FIFO: each consumer sees each producer's items in order.
        let mut last: HashMap<u64, u64> = HashMap::new();
        for v in got {
            let (id, seq) = (v >> 32, v & 0xffff_ffff);
            if let Some(prev) = last.insert(id, seq) {
                assert!(seq > prev, "producer {id}: {seq} after {prev}");
            }
            *seen.entry(v).or_default() += 1;
        }
    }
    for c in &mut consumers {
        common::wait_ok(c, LIMIT);
    }
    assert_eq!(seen.len() as u64, PRODUCERS * PER, "every item received");
    assert!(seen.values().all(|&n| n == 1), "no item received twice");
    assert_eq!(q.qsize(), 0);
}

#[test]
fn unbounded_queue_grows_past_its_initial_capacity_and_gives_memory_back() {
    let q = Builder::new()
        .capacity_bytes(4096)
        .build::<Vec<u8>>()
        .unwrap();
    let idle = q.stats().unwrap();
    assert_eq!(idle.capacity_bytes, 4096);
    let (n, len) = (2_000u64, 10_000usize);
    let mut child = common::spawn("put-blobs", &[q.name(), &n.to_string(), &len.to_string()]);
    common::wait_ok(&mut child, LIMIT);
    let full = q.stats().unwrap();
    assert_eq!(full.items, n);
    assert!(
        full.capacity_bytes >= n * len as u64,
        "grew to {}",
        full.capacity_bytes
    );
    assert!(full.resident_bytes >= n * len as u64);
    for i in 0..n {
        assert_eq!(q.get_nowait().unwrap(), blob(i, len), "item {i}");
    }
    // Still big right after draining (a queue that refills at once keeps
    // its memory); given back once it has stayed empty for a moment.
    assert!(q.stats().unwrap().capacity_bytes > 4096);
    std::thread::sleep(Duration::from_millis(60));
    let drained = q.stats().unwrap();
    assert!(
        drained.capacity_bytes <= 32 * 1024,
        "shrank to {}",
        drained.capacity_bytes
    );
    assert!(
        drained.resident_bytes <= 2 * idle.resident_bytes + 64 * 1024,
        "memory back: idle {} drained {}",
        idle.resident_bytes,
        drained.resident_bytes
    );
}

#[test]
fn huge_and_empty_items_cross_processes() {
    let q = Queue::<Vec<u8>>::new(4).unwrap();
    let len = 256 << 20;
    let mut child = common::spawn("put-blobs", &[q.name(), "1", &len.to_string()]);
    let got = q.get_timeout(LIMIT).unwrap();
    common::wait_ok(&mut child, LIMIT);
    assert_eq!(got.len(), len);
    assert!(got == blob(0, len), "256 MiB item intact");
    drop(got);
    let mut child = common::spawn("put-blobs", &[q.name(), "3", "0"]);
    common::wait_ok(&mut child, LIMIT);
    assert_eq!(q.get_many(10).unwrap(), vec![Vec::<u8>::new(); 3]);
}

#[test]
fn blocking_get_is_woken_by_another_process_and_timeouts_hold() {
    let q = Queue::<u64>::new(1).unwrap();
    let t = Instant::now();
    assert!(matches!(
        q.get_timeout(Duration::from_millis(200)),
        Err(Error::Empty)
    ));
    let waited = t.elapsed();
    assert!(
        waited >= Duration::from_millis(200) && waited < Duration::from_millis(700),
        "{waited:?}"
    );

    let mut child = common::spawn("put-after", &[q.name(), "100"]);
    let t = Instant::now();
    assert_eq!(q.get_timeout(Duration::from_secs(20)).unwrap(), 7);
    assert!(t.elapsed() < Duration::from_secs(10));
    common::wait_ok(&mut child, LIMIT);

    q.put(&1).unwrap();
    let t = Instant::now();
    assert!(matches!(
        q.put_timeout(&2, Duration::from_millis(150)),
        Err(Error::Full)
    ));
    let waited = t.elapsed();
    assert!(
        waited >= Duration::from_millis(150) && waited < Duration::from_millis(650),
        "{waited:?}"
    );
}

/// `CLOCK_MONOTONIC` in nanoseconds: one clock for every process.
fn now_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// A put blocked on a full queue gets in at once when another process
/// frees one slot, whether it blocked a moment ago (it may still be waiting
/// for the queue to be half empty, see `shm::wait`) or long ago (it waits
/// for any slot). A lost wake-up shows as a wait of about a second (a
/// blocked call's periodic look at its segment), far above the bound.
#[test]
fn a_put_blocked_on_a_full_queue_gets_in_at_once_when_one_slot_frees() {
    const AT_ONCE: Duration = Duration::from_millis(500);
    let _dog = common::watchdog("put blocked on a full queue", 2 * LIMIT);
    let q = Queue::<u64>::new(8).unwrap();
    let woke = Queue::<u64>::new(0).unwrap();
    // How long the put has been blocked when the slot frees, in µs.
    let delays = [0u64, 300, 2_000, 50_000, 0, 50_000];
    q.put_many(&[u64::MAX; 8]).unwrap();
    let rounds = delays.len().to_string();
    let mut child = common::spawn("put-and-report", &[q.name(), woke.name(), &rounds]);
    let mut late = Vec::new();
    for (round, delay) in delays.iter().enumerate() {
        let start = Instant::now();
        while q.stats().unwrap().blocked_puts <= round as u64 {
            assert!(
                start.elapsed() < LIMIT,
                "round {round}: the put never blocked"
            );
            std::thread::sleep(Duration::from_micros(100));
        }
        std::thread::sleep(Duration::from_micros(*delay));
        let since = now_ns();
        q.get_nowait().unwrap();
        let at = woke.get_timeout(LIMIT).unwrap();
        late.push(Duration::from_nanos(at.saturating_sub(since)));
    }
    common::wait_ok(&mut child, LIMIT);
    assert!(late.iter().all(|l| *l < AT_ONCE), "{late:?}");
    // The queue is full of what the child put after the first 6 gets.
    assert_eq!(q.qsize(), 8);
}

#[test]
fn a_process_may_exit_right_after_put() {
    let q = Queue::<u64>::new(0).unwrap();
    let mut child = common::spawn("put-then-exit", &[q.name(), "10000"]);
    common::wait_ok(&mut child, LIMIT);
    // No feeder thread: everything is in the queue the moment put returned.
    assert_eq!(q.qsize(), 10_000);
    assert!(!q.empty());
    for i in 0..10_000 {
        assert_eq!(q.get_nowait().unwrap(), i);
    }
    assert!(q.empty());
}

#[test]
fn close_wakes_this_handles_waiters_and_spares_other_handles() {
    let q = Queue::<u64>::new(0).unwrap();
    let other = Queue::<u64>::open(q.name()).unwrap();
    std::thread::scope(|s| {
        let waiter = s.spawn(|| q.get_timeout(Duration::from_secs(20)));
        std::thread::sleep(Duration::from_millis(50));
        q.close();
        assert!(matches!(waiter.join().unwrap(), Err(Error::Closed)));
    });
    assert!(matches!(q.put(&1), Err(Error::Closed)));
    other.put(&5).unwrap();
    assert_eq!(other.get().unwrap(), 5);
}

#[test]
fn joinable_queue_join_waits_for_task_done_in_other_processes() {
    let q = JoinableQueue::<Option<u32>>::new(0).unwrap();
    let done = Queue::<u32>::new(0).unwrap();
    for job in 0..60 {
        q.put(&Some(job)).unwrap();
    }
    assert!(
        q.join_timeout(Duration::from_millis(50)).is_err(),
        "tasks outstanding"
    );
    let mut workers: Vec<_> = (0..3)
        .map(|_| common::spawn("worker", &[q.name(), done.name()]))
        .collect();
    q.join_timeout(LIMIT).unwrap();
    assert_eq!(
        done.qsize(),
        60,
        "join returned only after all 60 tasks were done"
    );
    for _ in 0..3 {
        q.put(&None).unwrap();
    }
    for w in &mut workers {
        common::wait_ok(w, LIMIT);
    }
    q.join_timeout(LIMIT).unwrap();
    assert_eq!(q.unfinished_tasks().unwrap(), 0);
    assert!(matches!(q.task_done(), Err(Error::TaskDoneTooOften)));
    let mut jobs: Vec<u32> = done.get_many(100).unwrap();
    jobs.sort();
    assert_eq!(jobs, (0..60).collect::<Vec<_>>());
}

#[test]
fn queue_lives_while_any_process_holds_it_and_is_removed_after() {
    let name = common::unique("lifetime");
    let q = Builder::new().name(&name).build::<u64>().unwrap();
    assert!(matches!(
        Builder::new().name(&name).build::<u64>(),
        Err(Error::AlreadyExists(_))
    ));
    let up = Queue::<u64>::new(0).unwrap();
    let down = Queue::<u64>::new(0).unwrap();
    let mut child = common::spawn("hold", &[&name, up.name(), down.name()]);
    up.get_timeout(LIMIT).unwrap();
    drop(q);
    assert!(common::segment_exists(&name), "child still holds it");
    assert_eq!(procq::stats(&name).unwrap().attached_processes, 1);
    down.put(&0).unwrap();
    common::wait_ok(&mut child, LIMIT);
    assert!(!common::segment_exists(&name), "removed with its last user");
    assert!(matches!(Queue::<u64>::open(&name), Err(Error::NotFound(_))));
}

#[test]
fn opening_with_the_wrong_item_type_or_kind_is_refused() {
    let q = Queue::<u64>::new(0).unwrap();
    let err = Queue::<String>::open(q.name()).unwrap_err();
    assert!(err.to_string().contains("different item type"), "{err}");
    assert!(JoinableQueue::<u64>::open(q.name()).is_err());
    assert!(
        procq::RawQueue::open(q.name()).is_ok(),
        "raw handles accept any queue"
    );
}
